//! Requester side of `montecarlo`: the exact reduction.

use crate::CombineError;
pub use exo_app_montecarlo::{OptionSpec, Sums};

/// Adds the units' `sums.txt` outputs as integers: the same set of units gives the same bits in
/// any order. Returns the merged sums and (price, standard error).
pub fn merge(spec: &OptionSpec, outputs: &[&[u8]]) -> Result<(Sums, f64, f64), CombineError> {
    let mut total = Sums::default();
    for (unit, bytes) in outputs.iter().enumerate() {
        let text = std::str::from_utf8(bytes).map_err(|_| CombineError::BadOutput {
            unit,
            reason: "sums.txt is not UTF-8".into(),
        })?;
        let s = Sums::decode(text).map_err(|reason| CombineError::BadOutput { unit, reason })?;
        total = total.merge(s);
    }
    let (price, se) = total.price(spec);
    Ok((total, price, se))
}
