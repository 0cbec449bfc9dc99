//! Binary PPM (P6) for tiles: a tiny self-describing header followed by RGB8 pixels.

/// Encodes `w x h` RGB8 pixels as P6.
pub fn encode(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
    out.extend_from_slice(rgb);
    out
}

/// Decodes a P6 file written by [`encode`] (or any P6 with maxval 255 and single-space or
/// newline separators), returning `(w, h, pixels)`.
pub fn decode(bytes: &[u8]) -> Result<(u32, u32, &[u8]), String> {
    let mut fields = Vec::with_capacity(4);
    let mut pos = 0;
    while fields.len() < 4 {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return Err("truncated PPM header".into());
        }
        fields.push(std::str::from_utf8(&bytes[start..pos]).map_err(|_| "bad PPM header")?);
    }
    // Exactly one whitespace byte separates the header from the pixels.
    pos += 1;
    if fields[0] != "P6" || fields[3] != "255" {
        return Err("not a P6 PPM with maxval 255".into());
    }
    let w: u32 = fields[1].parse().map_err(|_| "bad PPM width")?;
    let h: u32 = fields[2].parse().map_err(|_| "bad PPM height")?;
    let need = (w as u64) * (h as u64) * 3;
    let pixels = bytes.get(pos..).unwrap_or(&[]);
    if pixels.len() as u64 != need {
        return Err(format!(
            "PPM {w}x{h} needs {need} pixel bytes, has {}",
            pixels.len()
        ));
    }
    Ok((w, h, pixels))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn round_trip() {
        let px = [1u8, 2, 3, 4, 5, 6];
        let enc = super::encode(2, 1, &px);
        assert_eq!(super::decode(&enc).unwrap(), (2, 1, &px[..]));
        assert!(super::decode(b"P6\n2 1\n255\n\x01").is_err());
        assert!(super::decode(b"P3\n1 1\n255\n").is_err());
    }
}
