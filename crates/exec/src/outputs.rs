//! Loading a unit's inputs for `/in` (the guest's filesystem itself is [`crate::vfs`]).

use crate::error::ExecError;
use crate::spec::{Input, InputData};
use crate::vfs::MAX_NAME_BYTES;
use std::fs;
use std::io::Read;

/// How many files and directories `/out` may hold.
pub const MAX_OUTPUT_ENTRIES: u64 = 10_000;
/// The time every clock and every timestamp shows (2000-01-01T00:00:00Z).
pub const FIXED_EPOCH_SECS: u64 = 946_684_800;

pub fn check_input_name(name: &str) -> Result<(), ExecError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_NAME_BYTES
        || name.bytes().any(|b| b == b'/' || b == b'\\' || b == 0);
    if bad {
        return Err(ExecError::InvalidSpec(format!(
            "input name {name:?} must be a flat file name (no '/', not '.' or '..', at most {MAX_NAME_BYTES} bytes)"
        )));
    }
    Ok(())
}

/// Loads the inputs into memory as `(name, bytes)`, refusing bad or duplicate names and more
/// than `max_bytes` in total (checked from metadata before a host file is read).
pub fn load_inputs(
    inputs: &[Input<'_>],
    max_bytes: u64,
) -> Result<Vec<(String, Vec<u8>)>, ExecError> {
    let mut names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ExecError::InvalidSpec("duplicate input name".into()));
    }
    let too_large = || ExecError::InvalidSpec(format!("inputs exceed {max_bytes} bytes"));
    let mut total = 0u64;
    let mut loaded = Vec::with_capacity(inputs.len());
    for input in inputs {
        check_input_name(&input.name)?;
        let bytes = match &input.data {
            InputData::Bytes(b) => {
                total = total.saturating_add(b.len() as u64);
                if total > max_bytes {
                    return Err(too_large());
                }
                b.to_vec()
            }
            InputData::Path(src) => {
                let meta = fs::metadata(src).map_err(|e| ExecError::io("read input", src, e))?;
                if !meta.is_file() {
                    return Err(ExecError::InvalidSpec(format!(
                        "input {} is not a regular file",
                        src.display()
                    )));
                }
                total = total.saturating_add(meta.len());
                if total > max_bytes {
                    return Err(too_large());
                }
                // Read no more than the metadata promised, in case the file grows meanwhile.
                let mut bytes = Vec::with_capacity(meta.len() as usize);
                let f = fs::File::open(src).map_err(|e| ExecError::io("read input", src, e))?;
                f.take(meta.len())
                    .read_to_end(&mut bytes)
                    .map_err(|e| ExecError::io("read input", src, e))?;
                bytes
            }
        };
        loaded.push((input.name.clone(), bytes));
    }
    Ok(loaded)
}
