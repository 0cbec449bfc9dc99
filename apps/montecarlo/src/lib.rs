//! The `montecarlo` task app's kernel: European option pricing under geometric Brownian motion,
//! with an exact reduction across units.
//!
//! Each unit simulates its own paths (random stream keyed by the job seed and the unit index) and
//! reports integer sums of fixed-point payoffs. Integer addition is associative, so the requester
//! combines any number of units in any order into exactly the same price; float sums would depend
//! on the order in which units arrive.
//!
//! It must never read the clock or OS randomness.

use exo_guest::Rng;

/// Payoffs are summed as integers in units of `1 / FIXED_SCALE`.
pub const FIXED_SCALE: f64 = 1_000_000.0;
pub const MAX_PATHS: u64 = 1 << 32;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionSpec {
    pub spot: f64,
    pub strike: f64,
    pub rate: f64,
    pub vol: f64,
    pub maturity_years: f64,
    pub call: bool,
}

/// One unit's contribution: exact integer sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub paths: u64,
    pub sum: u128,
    pub sum_sq: u128,
}

impl Sums {
    pub fn merge(self, o: Sums) -> Sums {
        Sums {
            paths: self.paths.saturating_add(o.paths),
            sum: self.sum.saturating_add(o.sum),
            sum_sq: self.sum_sq.saturating_add(o.sum_sq),
        }
    }

    pub fn encode(&self) -> String {
        format!(
            "paths={}\nsum={}\nsum_sq={}\n",
            self.paths, self.sum, self.sum_sq
        )
    }

    pub fn decode(text: &str) -> Result<Sums, String> {
        let mut s = Sums::default();
        let mut seen = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("bad line {line:?}"))?;
            let bad = || format!("bad value in {line:?}");
            match k {
                "paths" => s.paths = v.parse().map_err(|_| bad())?,
                "sum" => s.sum = v.parse().map_err(|_| bad())?,
                "sum_sq" => s.sum_sq = v.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown key {k:?}")),
            }
            seen += 1;
        }
        if seen != 3 {
            return Err("expected paths, sum and sum_sq".into());
        }
        Ok(s)
    }

    /// Discounted price and its standard error.
    pub fn price(&self, spec: &OptionSpec) -> (f64, f64) {
        if self.paths == 0 {
            return (0.0, 0.0);
        }
        let n = self.paths as f64;
        let mean = self.sum as f64 / FIXED_SCALE / n;
        let mean_sq = self.sum_sq as f64 / (FIXED_SCALE * FIXED_SCALE) / n;
        let var = (mean_sq - mean * mean).max(0.0);
        let df = (-spec.rate * spec.maturity_years).exp();
        (df * mean, df * (var / n).sqrt())
    }
}

impl OptionSpec {
    /// Parses `spot strike rate vol maturity_years paths [call|put]`, returning the spec and
    /// the path count.
    pub fn from_args(args: &[String]) -> Result<(OptionSpec, u64), String> {
        if args.len() != 6 && args.len() != 7 {
            return Err(
                "usage: montecarlo spot strike rate vol maturity_years paths [call|put]".into(),
            );
        }
        let mut v = [0.0f64; 5];
        for (i, a) in args.iter().take(5).enumerate() {
            v[i] = a
                .parse()
                .map_err(|_| format!("argument {} is not a number: {a:?}", i + 1))?;
            if !v[i].is_finite() {
                return Err(format!("argument {} is not finite", i + 1));
            }
        }
        let paths: u64 = args[5]
            .parse()
            .map_err(|_| "paths is not a u64".to_string())?;
        let call = match args.get(6).map(String::as_str) {
            None | Some("call") => true,
            Some("put") => false,
            Some(o) => return Err(format!("expected call or put, got {o:?}")),
        };
        let spec = OptionSpec {
            spot: v[0],
            strike: v[1],
            rate: v[2],
            vol: v[3],
            maturity_years: v[4],
            call,
        };
        if spec.spot <= 0.0 || spec.strike <= 0.0 || spec.vol < 0.0 || spec.maturity_years <= 0.0 {
            return Err("spot, strike and maturity must be positive, vol non-negative".into());
        }
        if paths == 0 || paths > MAX_PATHS {
            return Err(format!("paths must be in 1..={MAX_PATHS}"));
        }
        Ok((spec, paths))
    }
}

/// Simulates `paths` terminal prices with antithetic pairs and returns the payoff sums.
pub fn simulate(spec: &OptionSpec, paths: u64, rng: &mut Rng) -> Sums {
    let t = spec.maturity_years;
    let drift = (spec.rate - 0.5 * spec.vol * spec.vol) * t;
    let diffusion = spec.vol * t.sqrt();
    let payoff = |z: f64| {
        let st = spec.spot * (drift + diffusion * z).exp();
        let p = if spec.call {
            st - spec.strike
        } else {
            spec.strike - st
        };
        // Saturating float-to-int conversion: huge payoffs cannot wrap the sum.
        (p.max(0.0) * FIXED_SCALE).round() as u64
    };
    let mut s = Sums::default();
    let mut pending: Option<f64> = None;
    for _ in 0..paths {
        let z = match pending.take() {
            Some(z) => z,
            None => {
                let (a, b) = normal_pair(rng);
                pending = Some(b);
                a
            }
        };
        // Antithetic variates: average the payoffs of z and -z.
        let x = (payoff(z) as u128 + payoff(-z) as u128) / 2;
        s.paths += 1;
        s.sum += x;
        s.sum_sq += x * x;
    }
    s
}

/// Box–Muller. `ln`, `sqrt` and `cos` come from the libm compiled into the guest, so every
/// machine computes the same bits.
fn normal_pair(rng: &mut Rng) -> (f64, f64) {
    let u1 = 1.0 - rng.next_f64(); // (0, 1]
    let u2 = rng.next_f64();
    let r = (-2.0 * u1.ln()).sqrt();
    let th = std::f64::consts::TAU * u2;
    (r * th.cos(), r * th.sin())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn close_to_black_scholes_and_exact_merge() {
        let spec = OptionSpec {
            spot: 100.0,
            strike: 100.0,
            rate: 0.05,
            vol: 0.2,
            maturity_years: 1.0,
            call: true,
        };
        let a = simulate(&spec, 20_000, &mut Rng::for_stream(1, 0));
        let b = simulate(&spec, 20_000, &mut Rng::for_stream(1, 1));
        let (price, se) = a.merge(b).price(&spec);
        // Black–Scholes: 10.4506.
        assert!((price - 10.4506).abs() < 4.0 * se + 0.05, "{price} +- {se}");
        assert_eq!(a.merge(b), b.merge(a));
        assert_eq!(Sums::decode(&a.encode()).unwrap(), a);
    }
}
