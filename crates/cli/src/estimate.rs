//! `exo job submit --estimate`: run a job's unit 0 on this machine, in the sandbox a provider
//! uses, before paying for the job: its fuel sets the job's fuel limit (with a margin) and, at
//! the book's cheapest ask, the expected cost.
//!
//! The default fuel limit is a worst case (10^10 fuel per unit): the escrow of a small job is
//! then hundreds of times what it costs. The estimate brings the escrow near the real cost; the
//! units that burn more than unit 0 plus the margin end `out_of_fuel`, so a requester whose
//! units differ widely should give `--fuel-limit` itself.

use crate::{CliError, job::Prepared};
use exo_client::Client;
use exo_exec::{
    Outcome,
    cli::{LocalRun, run_local},
};
use exo_ledger::fuel_cost;
use exo_types::Amount;
use serde_json::{Value, json};

/// The fuel limit is unit 0's fuel plus this share of it (in percent).
pub const FUEL_MARGIN_PERCENT: u64 = 50;
/// The least fuel limit an estimate sets: fuel counts differ by a little between hosts' inputs
/// (argument lengths, file sizes), and a unit that burns next to nothing should not fail on it.
pub const MIN_FUEL_LIMIT: u64 = 10_000_000;
/// Wall-clock bound of the local run.
const TIMEOUT_MS: u64 = 120_000;

/// What the local run of unit 0 says about the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    pub fuel_used: u64,
    pub wall_time_us: u64,
    /// The fuel limit the job is submitted with.
    pub fuel_limit: u64,
    /// The cheapest ask with a free slot, at or below the job's maximum price.
    pub ask: Option<Amount>,
    /// `units x trust x fuel_used` at `ask`, before fees and royalties.
    pub expected_cost: Option<Amount>,
}

/// The fuel limit for a unit that burnt `fuel_used`: the margin on top, within
/// `[MIN_FUEL_LIMIT, cap]`.
pub fn fuel_limit_for(fuel_used: u64, cap: u64) -> u64 {
    let margin = fuel_used.saturating_mul(FUEL_MARGIN_PERCENT) / 100;
    fuel_used
        .saturating_add(margin)
        .max(MIN_FUEL_LIMIT)
        .min(cap)
}

/// Runs unit 0 of `prepared` here and prices the job at `client`'s book.
pub async fn unit_zero(
    client: &Client,
    prepared: &Prepared,
    units: u32,
    trust: u8,
) -> Result<Estimate, CliError> {
    let dir = tempfile::tempdir().map_err(|e| CliError::Other(format!("estimate: {e}")))?;
    let module = prepared.module_bytes(client).await?;
    let module_path = dir.path().join("app.wasm");
    write(&module_path, &module)?;
    let inputs_dir = dir.path().join("in");
    std::fs::create_dir(&inputs_dir).map_err(|e| CliError::Other(format!("estimate: {e}")))?;
    let mut inputs = Vec::new();
    for (name, bytes) in prepared.input_bytes()? {
        let path = inputs_dir.join(&name);
        write(&path, &bytes)?;
        inputs.push((name, path));
    }
    let cap = prepared.requirements.fuel_limit;
    let run = LocalRun {
        module: module_path,
        inputs,
        args: prepared
            .unit_args
            .first()
            .map(|line| {
                line.split(' ')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        unit_index: 0,
        seed: 0,
        fuel_limit: cap,
        memory_mib: prepared.requirements.min_memory_mib,
        timeout_ms: TIMEOUT_MS,
        max_output_bytes: 64 * 1024 * 1024,
        out_dir: None,
        cache_dir: std::env::temp_dir().join("exo-exec-cache"),
    };
    let report = run_local(&run).map_err(|e| CliError::Other(format!("estimate: {e}")))?;
    if report.outcome != Outcome::Ok {
        let stderr = String::from_utf8_lossy(&report.stderr);
        return Err(CliError::Invalid(format!(
            "unit 0 ended {} here after {} fuel, so it would fail on providers too: nothing was \
             submitted{}",
            report.outcome,
            report.fuel_used,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- stderr\n{}", stderr.trim_end())
            }
        )));
    }
    let depth = client.depth().await?;
    let ask = depth
        .levels
        .iter()
        .find(|l| l.slots > 0 && l.price_per_unit <= prepared.max_price)
        .map(|l| l.price_per_unit);
    let replicas = u128::from(units).saturating_mul(u128::from(trust.max(1)));
    let expected_cost = ask
        .and_then(|price| fuel_cost(report.fuel_used, price))
        .and_then(|per_replica| per_replica.checked_mul(replicas));
    Ok(Estimate {
        fuel_used: report.fuel_used,
        wall_time_us: report.wall_time_us,
        fuel_limit: fuel_limit_for(report.fuel_used, cap),
        ask,
        expected_cost,
    })
}

impl Estimate {
    /// Which bound of [`fuel_limit_for`] set the limit, so the printed figure explains itself.
    fn fuel_limit_reason(&self) -> String {
        let with_margin = fuel_limit_for(self.fuel_used, u64::MAX);
        if self.fuel_limit < with_margin {
            "the --fuel-limit cap".to_string()
        } else if with_margin == MIN_FUEL_LIMIT {
            "the minimum fuel limit".to_string()
        } else {
            format!("+{FUEL_MARGIN_PERCENT}%")
        }
    }

    /// The lines `exo job submit` prints before it submits.
    pub fn text(&self, units: u32, trust: u8) -> String {
        let mut text = format!(
            "estimate: unit 0 burnt {} fuel here in {:.1} ms; fuel limit set to {} ({})",
            self.fuel_used,
            self.wall_time_us as f64 / 1_000.0,
            self.fuel_limit,
            self.fuel_limit_reason()
        );
        match (self.ask, self.expected_cost) {
            (Some(ask), Some(cost)) => text.push_str(&format!(
                "\nestimate: about {} EXO for {units} units x {} replicas at the cheapest ask, {} \
                 EXO per compute unit (before fees and royalties)",
                cost.to_exo_string(),
                trust.max(1),
                ask.to_exo_string()
            )),
            _ => text.push_str(
                "\nestimate: no offer with a free slot at or below --max-price on the book now",
            ),
        }
        text
    }

    pub fn json(&self) -> Value {
        json!({
            "fuel_used": self.fuel_used,
            "wall_time_us": self.wall_time_us,
            "fuel_limit": self.fuel_limit,
            "ask": self.ask.map(|a| a.to_exo_string()),
            "expected_cost": self.expected_cost.map(|a| a.to_exo_string()),
        })
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::Other(format!("estimate: cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuel_limit_is_the_fuel_burnt_plus_the_margin_within_its_bounds() {
        assert_eq!(fuel_limit_for(1_000_000_000, u64::MAX), 1_500_000_000);
        assert_eq!(fuel_limit_for(10, u64::MAX), MIN_FUEL_LIMIT);
        assert_eq!(fuel_limit_for(1_000_000_000, 1_200_000_000), 1_200_000_000);
        assert_eq!(fuel_limit_for(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn the_printed_fuel_limit_names_the_bound_that_set_it() {
        let estimate = |fuel_used, cap| Estimate {
            fuel_used,
            wall_time_us: 1_000,
            fuel_limit: fuel_limit_for(fuel_used, cap),
            ask: None,
            expected_cost: None,
        };
        assert!(
            estimate(59_854, u64::MAX)
                .text(1, 1)
                .contains("(the minimum fuel limit)")
        );
        assert!(
            estimate(1_000_000_000, u64::MAX)
                .text(1, 1)
                .contains("(+50%)")
        );
        assert!(
            estimate(1_000_000_000, 1_200_000_000)
                .text(1, 1)
                .contains("(the --fuel-limit cap)")
        );
    }
}
