//! Requester side of `render`: tile plans and PNG assembly.

use crate::CombineError;
use exo_app_render::ppm;

/// A tile of a frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Largest frame this helper assembles (pixels), bounding the requester's memory.
pub const MAX_PIXELS: u64 = 64 << 20;

/// Splits a `width x height` frame into tiles of at most `tile_w x tile_h`, row by row.
pub fn plan_tiles(
    width: u32,
    height: u32,
    tile_w: u32,
    tile_h: u32,
) -> Result<Vec<Tile>, CombineError> {
    if width == 0 || height == 0 || tile_w == 0 || tile_h == 0 {
        return Err(CombineError::BadPlan(
            "frame and tile sizes must be positive".into(),
        ));
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(CombineError::BadPlan(format!(
            "{width}x{height} is too large"
        )));
    }
    let mut tiles = Vec::new();
    for y in (0..height).step_by(tile_h as usize) {
        for x in (0..width).step_by(tile_w as usize) {
            tiles.push(Tile {
                x,
                y,
                w: tile_w.min(width - x),
                h: tile_h.min(height - y),
            });
        }
    }
    Ok(tiles)
}

/// The `render` arguments of one tile.
pub fn tile_args(width: u32, height: u32, tile: &Tile, samples: u32, frame: u32) -> Vec<String> {
    [
        width, height, tile.x, tile.y, tile.w, tile.h, samples, frame,
    ]
    .iter()
    .map(u32::to_string)
    .collect()
}

/// Places the tiles' `tile.ppm` outputs into one row-major RGB8 frame. Every pixel must be
/// covered exactly once, and each PPM must have its tile's size.
pub fn assemble_rgb(
    width: u32,
    height: u32,
    tiles: &[(Tile, &[u8])],
) -> Result<Vec<u8>, CombineError> {
    if width == 0 || height == 0 || width as u64 * height as u64 > MAX_PIXELS {
        return Err(CombineError::BadPlan(format!(
            "bad frame size {width}x{height}"
        )));
    }
    let (wu, hu) = (width as usize, height as usize);
    let mut rgb = vec![0u8; wu * hu * 3];
    let mut covered = vec![false; wu * hu];
    for (unit, (tile, bytes)) in tiles.iter().enumerate() {
        let fits = tile.w > 0
            && tile.h > 0
            && tile.x.checked_add(tile.w).is_some_and(|e| e <= width)
            && tile.y.checked_add(tile.h).is_some_and(|e| e <= height);
        if !fits {
            return Err(CombineError::TileOutOfFrame {
                unit,
                x: tile.x,
                y: tile.y,
                w: tile.w,
                h: tile.h,
                width,
                height,
            });
        }
        let (w, h, px) =
            ppm::decode(bytes).map_err(|reason| CombineError::BadOutput { unit, reason })?;
        if (w, h) != (tile.w, tile.h) {
            return Err(CombineError::BadOutput {
                unit,
                reason: format!("PPM is {w}x{h}, tile is {}x{}", tile.w, tile.h),
            });
        }
        for row in 0..tile.h as usize {
            let y = tile.y as usize + row;
            for col in 0..tile.w as usize {
                let x = tile.x as usize + col;
                let cell = &mut covered[y * wu + x];
                if *cell {
                    return Err(CombineError::Overlap {
                        x: x as u32,
                        y: y as u32,
                    });
                }
                *cell = true;
            }
            let src = &px[row * tile.w as usize * 3..(row + 1) * tile.w as usize * 3];
            let dst = (y * wu + tile.x as usize) * 3;
            rgb[dst..dst + src.len()].copy_from_slice(src);
        }
    }
    let missing = covered.iter().filter(|c| !**c).count() as u64;
    if missing > 0 {
        return Err(CombineError::Missing { missing });
    }
    Ok(rgb)
}

/// [`assemble_rgb`], encoded as an 8-bit RGB PNG.
pub fn assemble_png(
    width: u32,
    height: u32,
    tiles: &[(Tile, &[u8])],
) -> Result<Vec<u8>, CombineError> {
    let rgb = assemble_rgb(width, height, tiles)?;
    encode_png(width, height, &rgb)
}

/// Encodes row-major RGB8 pixels as PNG.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, CombineError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| CombineError::Png(e.to_string()))?;
        w.write_image_data(rgb)
            .map_err(|e| CombineError::Png(e.to_string()))?;
        w.finish().map_err(|e| CombineError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_assemble() {
        let tiles = plan_tiles(5, 3, 2, 2).unwrap();
        assert_eq!(tiles.len(), 6);
        assert_eq!(
            tiles[2],
            Tile {
                x: 4,
                y: 0,
                w: 1,
                h: 2
            }
        );
        let ppms: Vec<Vec<u8>> = tiles
            .iter()
            .map(|t| ppm::encode(t.w, t.h, &vec![t.x as u8; (t.w * t.h * 3) as usize]))
            .collect();
        let parts: Vec<(Tile, &[u8])> = tiles
            .iter()
            .copied()
            .zip(ppms.iter().map(Vec::as_slice))
            .collect();
        let rgb = assemble_rgb(5, 3, &parts).unwrap();
        assert_eq!(&rgb[..15], &[0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 4, 4, 4]);
        assert!(assemble_png(5, 3, &parts).unwrap().starts_with(b"\x89PNG"));
        assert_eq!(
            assemble_rgb(5, 3, &parts[..5]),
            Err(CombineError::Missing { missing: 1 })
        );
        let mut twice = parts.clone();
        twice.push(parts[0]);
        assert_eq!(
            assemble_rgb(5, 3, &twice),
            Err(CombineError::Overlap { x: 0, y: 0 })
        );
        let bad = [(
            Tile {
                x: 4,
                y: 0,
                w: 2,
                h: 1,
            },
            parts[0].1,
        )];
        assert!(matches!(
            assemble_rgb(5, 3, &bad),
            Err(CombineError::TileOutOfFrame { .. })
        ));
        assert!(matches!(
            assemble_rgb(5, 3, &[(tiles[0], &b"junk"[..])]),
            Err(CombineError::BadOutput { .. })
        ));
    }
}
