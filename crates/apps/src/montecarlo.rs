//! Requester side of `montecarlo`: the job plan (samples split over units, one random stream
//! each) and the exact merge of the units' `sums.txt` into an estimate.

use crate::CombineError;
pub use exo_app_montecarlo::{
    Estimate, McError, OptionSpec, Partial, Sums, UnitArgs, key_values, reference_price,
};

/// The default seed of a job's streams when the plan names none.
pub const DEFAULT_SEED: u64 = 1;

fn plan_error(e: impl std::fmt::Display) -> CombineError {
    CombineError::BadPlan(e.to_string())
}

/// Splits a montecarlo job into `units` argument lines.
///
/// `params` are `key=value` tokens: the option (`kernel`, `type`, `spot`, `strike`, `rate`,
/// `vol`, `maturity`, `steps`, `average`), `paths` (the total number of simulated paths, an
/// even number: each sample is an antithetic pair) and optionally `seed`. Unit `i` simulates its
/// share of the pairs from stream `i` of the seed.
pub fn plan(params: &[String], units: u32) -> Result<Vec<String>, CombineError> {
    let kv = key_values(params).map_err(plan_error)?;
    const OPTION_KEYS: &[&str] = &[
        "kernel", "type", "spot", "strike", "rate", "vol", "maturity", "steps", "average",
    ];
    let mut option = Vec::new();
    let (mut paths, mut seed) = (None, DEFAULT_SEED);
    for &(k, v) in &kv {
        match k {
            "paths" => {
                paths = Some(
                    v.parse::<u64>()
                        .map_err(|_| plan_error(format!("paths={v:?} is not a whole number")))?,
                )
            }
            "seed" => {
                seed = v
                    .parse()
                    .map_err(|_| plan_error(format!("seed={v:?} is not a whole number")))?
            }
            _ if OPTION_KEYS.contains(&k) => option.push((k, v)),
            _ => {
                return Err(plan_error(format!(
                    "unknown montecarlo parameter {k}=; expected paths, seed, {}",
                    OPTION_KEYS.join(", ")
                )));
            }
        }
    }
    let spec = OptionSpec::from_pairs(&option).map_err(plan_error)?;
    let paths = paths.ok_or_else(|| plan_error("missing paths= (the total number of paths)"))?;
    if paths % 2 != 0 {
        return Err(plan_error(format!(
            "paths={paths} must be even: each sample is an antithetic pair of paths"
        )));
    }
    let pairs = paths / 2;
    if units == 0 || pairs < u64::from(units).max(2) {
        return Err(plan_error(format!(
            "{paths} paths cannot give each of {units} units a pair (and the estimate two)"
        )));
    }
    if pairs > exo_app_montecarlo::MAX_PAIRS_TOTAL {
        return Err(plan_error(format!("paths={paths} is too many")));
    }
    let (base, extra) = (pairs / u64::from(units), pairs % u64::from(units));
    let mut lines = Vec::with_capacity(units as usize);
    for stream in 0..u64::from(units) {
        let unit = UnitArgs {
            spec,
            pairs: base + u64::from(stream < extra),
            seed,
            stream,
        };
        if unit.pairs > exo_app_montecarlo::MAX_PAIRS_PER_UNIT {
            return Err(plan_error(format!(
                "{} pairs per unit is too many: use more units",
                unit.pairs
            )));
        }
        lines.push(unit.to_line());
    }
    Ok(lines)
}

/// The merged result of a montecarlo job.
#[derive(Clone, Debug, PartialEq)]
pub struct Combined {
    pub spec: OptionSpec,
    pub sums: Sums,
    pub estimate: Estimate,
    /// The closed form, when the option has one: (its name, the price).
    pub reference: Option<(&'static str, f64)>,
    pub units: usize,
}

/// Whether a unit's output looks like a montecarlo `sums.txt`.
pub fn recognises(sums_txt: &[u8]) -> bool {
    sums_txt.starts_with(exo_app_montecarlo::FORMAT.as_bytes())
}

/// Merges the units' `sums.txt` exactly (the same set of units gives the same bits in any order)
/// and estimates the price with its standard error and 95% interval.
pub fn combine(outputs: &[&[u8]]) -> Result<Combined, CombineError> {
    let mut partials = Vec::with_capacity(outputs.len());
    for (unit, bytes) in outputs.iter().enumerate() {
        let text = std::str::from_utf8(bytes).map_err(|_| CombineError::BadOutput {
            unit,
            reason: "sums.txt is not UTF-8".into(),
        })?;
        partials.push(Partial::decode(text).map_err(|e| CombineError::BadOutput {
            unit,
            reason: e.to_string(),
        })?);
    }
    let inconsistent = |e: McError| CombineError::Inconsistent(e.to_string());
    let (spec, sums) = exo_app_montecarlo::merge(&partials).map_err(inconsistent)?;
    let estimate = Estimate::from_sums(&spec, &sums).map_err(inconsistent)?;
    Ok(Combined {
        reference: reference_price(&spec),
        spec,
        sums,
        estimate,
        units: partials.len(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_plan_gives_every_unit_its_share_and_its_own_stream() {
        let lines = plan(
            &tokens("spot=0.0067 strike=0.0067 rate=0.05 vol=0.2 maturity=1 paths=20 seed=9"),
            3,
        )
        .unwrap();
        let units: Vec<UnitArgs> = lines
            .iter()
            .map(|l| UnitArgs::from_args(&tokens(l)).unwrap())
            .collect();
        assert_eq!(units.iter().map(|u| u.pairs).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(
            units.iter().map(|u| u.stream).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(units.iter().all(|u| u.seed == 9));
        assert!(lines.iter().all(|l| l.len() <= 256), "{lines:?}");
        assert!(plan(&tokens("spot=1 strike=1 vol=0.2 maturity=1 paths=21"), 2).is_err());
        assert!(plan(&tokens("spot=1 strike=1 vol=0.2 maturity=1 paths=4"), 3).is_err());
        assert!(plan(&tokens("spot=1 strike=1 vol=0.2 maturity=1"), 3).is_err());
        assert!(plan(&tokens("spot=1e301 strike=1 vol=0.2 maturity=1 paths=8"), 2).is_err());
    }

    #[test]
    fn combining_the_units_outputs_gives_an_estimate_with_its_interval() {
        let lines = plan(
            &tokens("spot=100 strike=95 rate=0.01 vol=0.25 maturity=0.5 type=put paths=40000"),
            4,
        )
        .unwrap();
        let outputs: Vec<Vec<u8>> = lines
            .iter()
            .map(|l| {
                let args = UnitArgs::from_args(&tokens(l)).unwrap();
                exo_app_montecarlo::simulate(&args)
                    .unwrap()
                    .encode()
                    .into_bytes()
            })
            .collect();
        let refs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
        assert!(refs.iter().all(|o| recognises(o)));
        let combined = combine(&refs).unwrap();
        let mut reversed = refs.clone();
        reversed.reverse();
        assert_eq!(combine(&reversed).unwrap(), combined);
        let (name, bs) = combined.reference.unwrap();
        assert_eq!(name, "black_scholes");
        let e = combined.estimate;
        assert_eq!(e.samples, 20_000);
        assert!(
            (e.price - bs).abs() < 4.0 * e.standard_error,
            "{e:?} vs {bs}"
        );
        let half = exo_app_montecarlo::Z_95 * e.standard_error;
        assert!((e.high - e.price - half).abs() < 1e-12 && (e.price - e.low - half).abs() < 1e-12);
        assert!(matches!(
            combine(&[b"exo-montecarlo 1\nspec x\n"]),
            Err(CombineError::BadOutput { unit: 0, .. })
        ));
    }
}
