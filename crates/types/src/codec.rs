//! Small helpers for variable-length fields with explicit bounds.

use bytes::BufMut;
use commonware_codec::{Buf, Error, RangeCfg, Read, Write};

/// Writes a length-prefixed byte string.
pub fn write_bytes(bytes: &[u8], buf: &mut impl BufMut) {
    bytes.len().write(buf);
    buf.put_slice(bytes);
}

/// Reads a length-prefixed byte string of at most `max` bytes.
pub fn read_bounded_bytes(buf: &mut impl Buf, max: usize) -> Result<Vec<u8>, Error> {
    let len = usize::read_cfg(buf, &RangeCfg::new(0..=max))?;
    if buf.remaining() < len {
        return Err(Error::EndOfBuffer);
    }
    let mut out = vec![0u8; len];
    buf.copy_to_slice(&mut out);
    Ok(out)
}

/// Reads a length-prefixed UTF-8 string of at most `max` bytes.
pub fn read_bounded_string(buf: &mut impl Buf, max: usize) -> Result<String, Error> {
    let bytes = read_bounded_bytes(buf, max)?;
    String::from_utf8(bytes).map_err(|_| Error::Invalid("string", "not utf-8"))
}

/// The encoded size of a length-prefixed byte string.
pub fn bytes_encode_size(bytes: &[u8]) -> usize {
    use commonware_codec::EncodeSize;
    bytes.len().encode_size() + bytes.len()
}
