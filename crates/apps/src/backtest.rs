//! Requester side of `backtest`: grid splitting and ranking.

use crate::CombineError;
pub use exo_app_backtest::Row;

/// Splits the fast-window range `fast_lo..=fast_hi` (by `fast_step`) into at most `units`
/// contiguous slices and returns each unit's arguments; every unit tests its fast windows against
/// the whole slow range.
#[allow(clippy::too_many_arguments)]
pub fn split_grid(
    fast: (u32, u32, u32),
    slow: (u32, u32, u32),
    cost_bps: u32,
    units: u32,
) -> Result<Vec<Vec<String>>, CombineError> {
    let (lo, hi, step) = fast;
    if lo == 0 || lo > hi || step == 0 || units == 0 {
        return Err(CombineError::BadPlan("bad fast range or unit count".into()));
    }
    let values: Vec<u32> = (lo..=hi).step_by(step as usize).collect();
    let per = values.len().div_ceil(units as usize);
    Ok(values
        .chunks(per)
        .map(|c| {
            let first = c[0];
            let last = c[c.len() - 1];
            [first, last, step, slow.0, slow.1, slow.2, cost_bps]
                .iter()
                .map(u32::to_string)
                .collect()
        })
        .collect())
}

/// Merges the units' `results.csv` outputs and ranks them best first (see
/// [`exo_app_backtest::rank`]).
pub fn rank(outputs: &[&[u8]]) -> Result<Vec<Row>, CombineError> {
    let mut rows = Vec::new();
    for (unit, bytes) in outputs.iter().enumerate() {
        let text = std::str::from_utf8(bytes).map_err(|_| CombineError::BadOutput {
            unit,
            reason: "results.csv is not UTF-8".into(),
        })?;
        let parsed = exo_app_backtest::parse_rows(text)
            .map_err(|reason| CombineError::BadOutput { unit, reason })?;
        rows.extend(parsed);
    }
    exo_app_backtest::rank(&mut rows);
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range() {
        let plan = split_grid((5, 50, 5), (20, 200, 20), 5, 3).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0][..3], ["5", "20", "5"]);
        assert_eq!(plan[2][..2], ["45", "50"]);
        assert!(split_grid((5, 4, 1), (20, 200, 20), 5, 3).is_err());
    }

    #[test]
    fn ranks_merged_rows() {
        let a = b"fast,slow,total_return,sharpe,max_drawdown,trades\n5,20,0.5,0.3,0.2,10\n";
        let b = b"fast,slow,total_return,sharpe,max_drawdown,trades\n10,40,0.9,0.6,0.1,4\n";
        let rows = rank(&[a, b]).unwrap();
        assert_eq!((rows[0].fast, rows[1].fast), (10, 5));
        assert!(rank(&[b"1,2,3"]).is_err());
    }
}
