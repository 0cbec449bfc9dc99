//! The `montecarlo` task app's kernels: option prices under geometric Brownian motion, with an
//! exact reduction across units.
//!
//! Two kernels:
//! - `european`: a European call or put on the terminal price (Black–Scholes has the answer,
//!   [`black_scholes`], which the tests use);
//! - `asian`: a call or put on the average of the price at `steps` equally spaced dates, the
//!   arithmetic average (no closed form) or the geometric one ([`geometric_asian`] is exact).
//!
//! Each sample is an antithetic pair of paths (`z` and `-z`). A unit simulates `pairs` samples
//! from its own stream (the job's seed and the unit's stream number) and reports the *exact* sum
//! of the pairs' payoffs and of their squares ([`exact`]): no payoff is rounded to a currency
//! unit, nothing can overflow, and the requester adds the units' integers in any order to the
//! same bits ([`Partial::merge`]). The estimate, its standard error and a 95% confidence interval
//! are computed once, from the merged integers ([`Estimate`]).
//!
//! Inputs the reduction cannot carry (a path that could leave the range of `f64`, prices so
//! small that the estimate would be a subnormal float, more samples than the sums have room for)
//! are refused with a [`McError`] before anything is simulated.
//!
//! It must never read the clock or OS randomness: replicas are compared byte for byte.

pub mod exact;

use exact::{ExactError, Nat, PRODUCT_SHIFT, SUM_SHIFT, ldexp};
use exo_guest::Rng;
use std::fmt::Write as _;

/// Most samples (antithetic pairs) one unit simulates.
pub const MAX_PAIRS_PER_UNIT: u64 = 1 << 40;
/// Most samples a merged estimate counts: the exact sums keep 64 bits of headroom above the
/// largest payoff, so any count below `2^62` fits with room to spare.
pub const MAX_PAIRS_TOTAL: u64 = 1 << 62;
/// Most monitoring dates of an Asian option.
pub const MAX_STEPS: u32 = 1_000;
/// Largest simulated price allowed, with the worst draw: `2^1000`, so that every payoff, sum and
/// estimate is a finite float.
pub const MAX_PRICE_BOUND: f64 = 1.0715086071862673e301;
/// Smallest spot or strike: below it an estimate and its error would be subnormal floats
/// (fewer significant bits than any other scale).
pub const MIN_PRICE: f64 = 1e-250;
/// The largest `|z|` Box–Muller can draw from 53-bit uniforms: `sqrt(-2 ln 2^-53)` ≈ 8.572.
const MAX_ABS_Z: f64 = 8.58;
/// The 97.5% quantile of the standard normal: a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;
/// Format line of a unit's `sums.txt`.
pub const FORMAT: &str = "exo-montecarlo 1";

/// Why a montecarlo input or output was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum McError {
    #[error("{0}")]
    Usage(String),
    #[error("{name} = {value} is out of range: {expected}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        expected: String,
    },
    #[error(
        "cannot represent this option: a simulated price could reach {bound:e}, beyond 2^1000 \
         (lower the spot, the volatility, the maturity or the number of steps)"
    )]
    PriceTooLarge { bound: f64 },
    #[error(
        "cannot represent this option: {name} = {value:e} is below {MIN_PRICE:e}, where the \
         estimate would be a subnormal float; rescale the currency unit"
    )]
    PriceTooSmall { name: &'static str, value: f64 },
    #[error("exact sum: {0}")]
    Exact(#[from] ExactError),
    #[error("sums.txt: {0}")]
    BadPartial(String),
    #[error("units disagree on the option: {0:?} and {1:?}")]
    SpecMismatch(String, String),
    #[error(
        "two units simulated the same stream {stream} of seed {seed}: their paths are not independent"
    )]
    DuplicateStream { seed: u64, stream: u64 },
    #[error("{0} samples are too few for a standard error (need at least 2)")]
    TooFewSamples(u64),
    #[error("more than {MAX_PAIRS_TOTAL} samples in one estimate")]
    TooManySamples,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    Arithmetic,
    Geometric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    European,
    Asian { steps: u32, average: Average },
}

/// An option under geometric Brownian motion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionSpec {
    pub kernel: Kernel,
    pub call: bool,
    pub spot: f64,
    pub strike: f64,
    pub rate: f64,
    pub vol: f64,
    pub maturity_years: f64,
}

/// One unit's work: the option, how many samples, and which random stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitArgs {
    pub spec: OptionSpec,
    pub pairs: u64,
    pub seed: u64,
    pub stream: u64,
}

/// Splits `key=value` tokens, refusing duplicates and tokens without `=`.
pub fn key_values(tokens: &[String]) -> Result<Vec<(&str, &str)>, McError> {
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| McError::Usage(format!("expected key=value, got {t:?}")))?;
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(McError::Usage(format!("{k} is given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn number(name: &'static str, text: &str) -> Result<f64, McError> {
    let v: f64 = text
        .parse()
        .map_err(|_| McError::Usage(format!("{name}={text:?} is not a number")))?;
    if !v.is_finite() {
        return Err(McError::Usage(format!("{name} must be finite")));
    }
    Ok(v)
}

fn integer(name: &'static str, text: &str) -> Result<u64, McError> {
    text.parse()
        .map_err(|_| McError::Usage(format!("{name}={text:?} is not a whole number")))
}

fn in_range(name: &'static str, v: f64, lo: f64, hi: f64) -> Result<f64, McError> {
    if v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(McError::OutOfRange {
            name,
            value: v,
            expected: format!("{lo} to {hi}"),
        })
    }
}

/// The shorter of a float's plain and exponent forms; both read back as the same bits
/// (`1e-250` would otherwise take 250 zeros of a unit's 256-byte argument line).
fn short(x: f64) -> String {
    let (plain, exp) = (format!("{x}"), format!("{x:e}"));
    if exp.len() < plain.len() { exp } else { plain }
}

impl OptionSpec {
    /// The option from `key=value` pairs (`kernel`, `type`, `spot`, `strike`, `rate`, `vol`,
    /// `maturity`, and for `asian` `steps` and `average`); other keys are left to the caller.
    pub fn from_pairs(kv: &[(&str, &str)]) -> Result<OptionSpec, McError> {
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let need = |k: &'static str| get(k).ok_or_else(|| McError::Usage(format!("missing {k}=")));
        let call = match get("type").unwrap_or("call") {
            "call" => true,
            "put" => false,
            o => return Err(McError::Usage(format!("type={o:?}: expected call or put"))),
        };
        let kernel = match get("kernel").unwrap_or("european") {
            "european" => {
                if get("steps").is_some() || get("average").is_some() {
                    return Err(McError::Usage(
                        "steps= and average= are for kernel=asian".into(),
                    ));
                }
                Kernel::European
            }
            "asian" => {
                let steps = integer("steps", get("steps").unwrap_or("12"))?;
                if steps == 0 || steps > u64::from(MAX_STEPS) {
                    return Err(McError::OutOfRange {
                        name: "steps",
                        value: steps as f64,
                        expected: format!("1 to {MAX_STEPS}"),
                    });
                }
                let average = match get("average").unwrap_or("arithmetic") {
                    "arithmetic" => Average::Arithmetic,
                    "geometric" => Average::Geometric,
                    o => {
                        return Err(McError::Usage(format!(
                            "average={o:?}: expected arithmetic or geometric"
                        )));
                    }
                };
                Kernel::Asian {
                    steps: steps as u32,
                    average,
                }
            }
            o => {
                return Err(McError::Usage(format!(
                    "kernel={o:?}: expected european or asian"
                )));
            }
        };
        let spec = OptionSpec {
            kernel,
            call,
            spot: number("spot", need("spot")?)?,
            strike: number("strike", need("strike")?)?,
            rate: number("rate", get("rate").unwrap_or("0"))?,
            vol: number("vol", need("vol")?)?,
            maturity_years: number("maturity", need("maturity")?)?,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Refuses what is out of range or what the exact reduction cannot represent.
    pub fn validate(&self) -> Result<(), McError> {
        in_range("rate", self.rate, -1.0, 1.0)?;
        in_range("vol", self.vol, 0.0, 5.0)?;
        in_range("maturity", self.maturity_years, 1e-6, 100.0)?;
        for (name, value) in [("spot", self.spot), ("strike", self.strike)] {
            if value.is_nan() || value <= 0.0 {
                return Err(McError::OutOfRange {
                    name,
                    value,
                    expected: "a positive price".into(),
                });
            }
            if value < MIN_PRICE {
                return Err(McError::PriceTooSmall { name, value });
            }
        }
        let steps = match self.kernel {
            Kernel::European => 1.0,
            Kernel::Asian { steps, .. } => f64::from(steps),
        };
        // The worst draw at every step: |z| at its largest, all in one direction.
        let drift = (self.rate - 0.5 * self.vol * self.vol).abs() * self.maturity_years;
        let diffusion = self.vol * MAX_ABS_Z * (self.maturity_years * steps).sqrt();
        let bound = self.spot * (drift + diffusion).exp();
        if bound.is_nan() || bound >= MAX_PRICE_BOUND || self.strike >= MAX_PRICE_BOUND {
            return Err(McError::PriceTooLarge {
                bound: bound.max(self.strike),
            });
        }
        Ok(())
    }

    /// The canonical `key=value` text of the option (round-trip float formatting), which every
    /// unit of a job repeats and the merge compares.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        match self.kernel {
            Kernel::European => s.push_str("kernel=european"),
            Kernel::Asian { steps, average } => {
                let a = match average {
                    Average::Arithmetic => "arithmetic",
                    Average::Geometric => "geometric",
                };
                let _ = write!(s, "kernel=asian steps={steps} average={a}");
            }
        }
        let _ = write!(
            s,
            " type={} spot={} strike={} rate={} vol={} maturity={}",
            if self.call { "call" } else { "put" },
            short(self.spot),
            short(self.strike),
            short(self.rate),
            short(self.vol),
            short(self.maturity_years)
        );
        s
    }

    pub fn discount(&self) -> f64 {
        (-self.rate * self.maturity_years).exp()
    }

    fn payoff(&self, underlying: f64) -> f64 {
        let p = if self.call {
            underlying - self.strike
        } else {
            self.strike - underlying
        };
        p.max(0.0)
    }
}

impl UnitArgs {
    /// Parses a unit's arguments: the option's `key=value` pairs plus `pairs`, `seed` and
    /// `stream`.
    pub fn from_args(args: &[String]) -> Result<UnitArgs, McError> {
        let kv = key_values(args)?;
        const KNOWN: &[&str] = &[
            "kernel", "type", "spot", "strike", "rate", "vol", "maturity", "steps", "average",
            "pairs", "seed", "stream",
        ];
        if let Some((k, _)) = kv.iter().find(|(k, _)| !KNOWN.contains(k)) {
            return Err(McError::Usage(format!(
                "unknown argument {k}=; expected {}",
                KNOWN.join(", ")
            )));
        }
        let get = |k: &'static str| {
            kv.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| McError::Usage(format!("missing {k}=")))
        };
        let pairs = integer("pairs", get("pairs")?)?;
        if pairs == 0 || pairs > MAX_PAIRS_PER_UNIT {
            return Err(McError::OutOfRange {
                name: "pairs",
                value: pairs as f64,
                expected: format!("1 to {MAX_PAIRS_PER_UNIT}"),
            });
        }
        Ok(UnitArgs {
            spec: OptionSpec::from_pairs(&kv)?,
            pairs,
            seed: integer("seed", get("seed")?)?,
            stream: integer("stream", get("stream")?)?,
        })
    }

    /// The argument line that [`UnitArgs::from_args`] parses back.
    pub fn to_line(&self) -> String {
        format!(
            "{} pairs={} seed={} stream={}",
            self.spec.canonical(),
            self.pairs,
            self.seed,
            self.stream
        )
    }
}

/// What units report and the requester merges: exact sums over samples, a sample being an
/// antithetic pair of payoffs `(a, b)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    /// Samples.
    pub pairs: u64,
    /// `Σ (a + b)` in units of `2^-1074`.
    pub sum: Nat,
    /// `Σ (a + b)^2` in units of `2^-2148`.
    pub sum_sq: Nat,
}

impl Sums {
    /// Adds one sample exactly.
    pub fn add_pair(&mut self, a: f64, b: f64) -> Result<(), McError> {
        self.sum.add_f64(a)?;
        self.sum.add_f64(b)?;
        self.sum_sq.add_product(a, a, 0)?;
        self.sum_sq.add_product(b, b, 0)?;
        self.sum_sq.add_product(a, b, 1)?;
        self.pairs = self.pairs.checked_add(1).ok_or(McError::TooManySamples)?;
        Ok(())
    }

    /// Integer addition: associative and commutative, so any order of units gives these bits.
    pub fn merge(&self, other: &Sums) -> Result<Sums, McError> {
        let pairs = self
            .pairs
            .checked_add(other.pairs)
            .filter(|p| *p <= MAX_PAIRS_TOTAL)
            .ok_or(McError::TooManySamples)?;
        Ok(Sums {
            pairs,
            sum: self.sum.add(&other.sum)?,
            sum_sq: self.sum_sq.add(&other.sum_sq)?,
        })
    }
}

/// One unit's `sums.txt`: the option it priced, its stream, and its exact sums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    /// [`OptionSpec::canonical`].
    pub spec: String,
    pub seed: u64,
    pub stream: u64,
    pub sums: Sums,
}

/// Bound on a `sums.txt` read back: its two integers are at most [`exact::MAX_BITS`] bits.
pub const MAX_PARTIAL_BYTES: usize = 8 * 1024;

impl Partial {
    pub fn encode(&self) -> String {
        format!(
            "{FORMAT}\nspec {}\nseed {}\nstream {}\npairs {}\nsum {}\nsum_sq {}\n",
            self.spec,
            self.seed,
            self.stream,
            self.sums.pairs,
            self.sums.sum.to_hex(),
            self.sums.sum_sq.to_hex()
        )
    }

    /// Parses [`Partial::encode`]; the option must parse too.
    pub fn decode(text: &str) -> Result<Partial, McError> {
        let bad = |m: String| McError::BadPartial(m);
        if text.len() > MAX_PARTIAL_BYTES {
            return Err(bad(format!("over {MAX_PARTIAL_BYTES} bytes")));
        }
        let mut lines = text.lines();
        if lines.next() != Some(FORMAT) {
            return Err(bad(format!("the first line is not {FORMAT:?}")));
        }
        let mut field = |key: &str| -> Result<&str, McError> {
            let line = lines.next().ok_or_else(|| bad(format!("missing {key}")))?;
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or_else(|| bad(format!("expected {key}, got {line:?}")))
        };
        let spec = field("spec")?.to_string();
        let tokens: Vec<String> = spec.split(' ').map(String::from).collect();
        OptionSpec::from_pairs(&key_values(&tokens)?)?;
        let int = |name: &'static str, v: &str| integer(name, v);
        let seed = int("seed", field("seed")?)?;
        let stream = int("stream", field("stream")?)?;
        let pairs = int("pairs", field("pairs")?)?;
        let sum = Nat::from_hex(field("sum")?)?;
        let sum_sq = Nat::from_hex(field("sum_sq")?)?;
        if pairs > MAX_PAIRS_TOTAL {
            return Err(McError::TooManySamples);
        }
        Ok(Partial {
            spec,
            seed,
            stream,
            sums: Sums { pairs, sum, sum_sq },
        })
    }
}

/// Merges units' partials: every unit must price the same option from a distinct stream.
/// The result does not depend on the order of `partials`.
pub fn merge(partials: &[Partial]) -> Result<(OptionSpec, Sums), McError> {
    let first = partials
        .first()
        .ok_or_else(|| McError::BadPartial("no unit reported".into()))?;
    let mut streams = std::collections::BTreeSet::new();
    let mut total = Sums::default();
    for p in partials {
        if p.spec != first.spec {
            return Err(McError::SpecMismatch(first.spec.clone(), p.spec.clone()));
        }
        if !streams.insert((p.seed, p.stream)) {
            return Err(McError::DuplicateStream {
                seed: p.seed,
                stream: p.stream,
            });
        }
        total = total.merge(&p.sums)?;
    }
    let tokens: Vec<String> = first.spec.split(' ').map(String::from).collect();
    let spec = OptionSpec::from_pairs(&key_values(&tokens)?)?;
    Ok((spec, total))
}

/// A discounted price estimate with its standard error and 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub samples: u64,
    pub price: f64,
    pub standard_error: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// From exact sums: the mean and the sample variance are computed in integers (the
    /// variance's numerator `n Σy² - (Σy)²` exactly), then rounded once each.
    pub fn from_sums(spec: &OptionSpec, sums: &Sums) -> Result<Estimate, McError> {
        let n = sums.pairs;
        if n < 2 {
            return Err(McError::TooFewSamples(n));
        }
        // A sample is y = (a + b) / 2: Σy = sum / 2, Σy² = sum_sq / 4.
        let (f, e) = sums.sum.to_f64_parts();
        let mean = ldexp(f / n as f64, e - i64::from(SUM_SHIFT) - 1);
        let numerator = sums
            .sum_sq
            .mul(&Nat::from_u64(n))?
            .sub(&sums.sum.mul(&sums.sum)?)
            .map_err(|_| McError::BadPartial("the sum of squares is below its minimum".into()))?;
        // Var(y) = numerator / 4 / (n (n - 1)) in units of 2^-2148; se = sqrt(Var(y) / n).
        let (mut g, mut e) = numerator.to_f64_parts();
        e -= i64::from(PRODUCT_SHIFT) + 2;
        if e % 2 != 0 {
            g *= 2.0;
            e -= 1;
        }
        let se = ldexp((g / (n - 1) as f64).sqrt() / n as f64, e / 2);
        let df = spec.discount();
        let (price, standard_error) = (df * mean, df * se);
        Ok(Estimate {
            samples: n,
            price,
            standard_error,
            low: price - Z_95 * standard_error,
            high: price + Z_95 * standard_error,
        })
    }
}

/// Simulates `args.pairs` antithetic samples from the unit's stream.
pub fn simulate(args: &UnitArgs) -> Result<Partial, McError> {
    let spec = &args.spec;
    spec.validate()?;
    let mut rng = Rng::for_stream(args.seed, args.stream);
    let mut normals = Normals::default();
    let mut sums = Sums::default();
    match spec.kernel {
        Kernel::European => {
            let t = spec.maturity_years;
            let drift = (spec.rate - 0.5 * spec.vol * spec.vol) * t;
            let diffusion = spec.vol * t.sqrt();
            for _ in 0..args.pairs {
                let z = normals.next(&mut rng);
                let a = spec.payoff(spec.spot * (drift + diffusion * z).exp());
                let b = spec.payoff(spec.spot * (drift - diffusion * z).exp());
                sums.add_pair(a, b)?;
            }
        }
        Kernel::Asian { steps, average } => {
            let dt = spec.maturity_years / f64::from(steps);
            let drift = (spec.rate - 0.5 * spec.vol * spec.vol) * dt;
            let diffusion = spec.vol * dt.sqrt();
            let m = f64::from(steps);
            for _ in 0..args.pairs {
                // Log-prices of the path and of its mirror, and their running averages.
                let (mut la, mut lb) = (spec.spot.ln(), spec.spot.ln());
                let (mut acc_a, mut acc_b) = (0.0f64, 0.0f64);
                for _ in 0..steps {
                    let z = normals.next(&mut rng);
                    la += drift + diffusion * z;
                    lb += drift - diffusion * z;
                    match average {
                        Average::Arithmetic => {
                            acc_a += la.exp();
                            acc_b += lb.exp();
                        }
                        Average::Geometric => {
                            acc_a += la;
                            acc_b += lb;
                        }
                    }
                }
                let (avg_a, avg_b) = match average {
                    Average::Arithmetic => (acc_a / m, acc_b / m),
                    Average::Geometric => ((acc_a / m).exp(), (acc_b / m).exp()),
                };
                sums.add_pair(spec.payoff(avg_a), spec.payoff(avg_b))?;
            }
        }
    }
    Ok(Partial {
        spec: spec.canonical(),
        seed: args.seed,
        stream: args.stream,
        sums,
    })
}

/// Standard normals by Box–Muller, two per draw. `ln`, `sqrt`, `cos` and `sin` come from the libm
/// compiled into the guest, so every machine computes the same bits.
#[derive(Default)]
struct Normals {
    spare: Option<f64>,
}

impl Normals {
    fn next(&mut self, rng: &mut Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - rng.next_f64(); // (0, 1]
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// The standard normal distribution function, by composite Simpson integration of the density
/// (absolute error below 1e-13): slow, but exact enough for a reference price.
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs().min(40.0);
    let n = 4_000usize;
    let h = a / n as f64;
    let density = |t: f64| (-0.5 * t * t).exp() / (std::f64::consts::TAU).sqrt();
    let mut s = density(0.0) + density(a);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * density(i as f64 * h);
    }
    let half = s * h / 3.0;
    if x >= 0.0 { 0.5 + half } else { 0.5 - half }
}

/// The lognormal reference: `e^{-rT} E[(X - K)^+]` (or the put) for `ln X ~ N(mean, var)`.
fn lognormal_option(spec: &OptionSpec, mean: f64, var: f64) -> f64 {
    let df = spec.discount();
    let forward = (mean + 0.5 * var).exp();
    if var <= 0.0 {
        return df * spec.payoff(forward);
    }
    let sd = var.sqrt();
    let d2 = (mean - spec.strike.ln()) / sd;
    let d1 = d2 + sd;
    if spec.call {
        df * (forward * normal_cdf(d1) - spec.strike * normal_cdf(d2))
    } else {
        df * (spec.strike * normal_cdf(-d2) - forward * normal_cdf(-d1))
    }
}

/// Black–Scholes price of a European option (for `kernel=european`).
pub fn black_scholes(spec: &OptionSpec) -> f64 {
    let t = spec.maturity_years;
    let mean = spec.spot.ln() + (spec.rate - 0.5 * spec.vol * spec.vol) * t;
    lognormal_option(spec, mean, spec.vol * spec.vol * t)
}

/// Exact price of a discretely monitored geometric-average Asian option with `steps` equally
/// spaced dates (the last at maturity).
pub fn geometric_asian(spec: &OptionSpec, steps: u32) -> f64 {
    let m = f64::from(steps);
    let dt = spec.maturity_years / m;
    let nu = spec.rate - 0.5 * spec.vol * spec.vol;
    let mean = spec.spot.ln() + nu * dt * (m + 1.0) / 2.0;
    let var = spec.vol * spec.vol * dt * (m + 1.0) * (2.0 * m + 1.0) / (6.0 * m);
    lognormal_option(spec, mean, var)
}

/// The closed-form price of the option when there is one.
pub fn reference_price(spec: &OptionSpec) -> Option<(&'static str, f64)> {
    match spec.kernel {
        Kernel::European => Some(("black_scholes", black_scholes(spec))),
        Kernel::Asian {
            steps,
            average: Average::Geometric,
        } => Some(("geometric_asian_closed_form", geometric_asian(spec, steps))),
        Kernel::Asian { .. } => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(line: &str) -> UnitArgs {
        let tokens: Vec<String> = line.split(' ').map(String::from).collect();
        UnitArgs::from_args(&tokens).unwrap()
    }

    fn estimate_of(units: &[UnitArgs]) -> (Estimate, Sums) {
        let partials: Vec<Partial> = units.iter().map(|u| simulate(u).unwrap()).collect();
        let (spec, sums) = merge(&partials).unwrap();
        (Estimate::from_sums(&spec, &sums).unwrap(), sums)
    }

    fn split(line: &str, units: u64) -> Vec<UnitArgs> {
        (0..units)
            .map(|s| args(&format!("{line} seed=7 stream={s}")))
            .collect()
    }

    #[test]
    fn an_at_the_money_call_agrees_with_black_scholes() {
        let units = split(
            "spot=100 strike=100 rate=0.05 vol=0.2 maturity=1 pairs=50000",
            4,
        );
        let (est, _) = estimate_of(&units);
        let bs = black_scholes(&units[0].spec);
        assert!((bs - 10.450_583_572_185_565).abs() < 1e-9, "{bs}");
        assert!(
            (est.price - bs).abs() < 4.0 * est.standard_error,
            "{est:?} vs {bs}"
        );
    }

    #[test]
    fn a_call_on_an_underlying_at_0_0067_is_unbiased() {
        // A fixed currency unit of 1e-6 used to put this five standard errors low at 16M paths;
        // exact sums leave only sampling error.
        let units = split(
            "spot=0.0067 strike=0.0067 rate=0.05 vol=0.2 maturity=1 pairs=250000",
            4,
        );
        let (est, _) = estimate_of(&units);
        let bs = black_scholes(&units[0].spec);
        let off = (est.price - bs) / est.standard_error;
        assert!(off.abs() < 4.0, "{est:?} vs {bs}: {off} standard errors");
        // The same option in a unit a million times larger gives the same estimate scaled:
        // the reduction has no scale of its own (up to one rounding of the spot).
        let big = split(
            "spot=6700 strike=6700 rate=0.05 vol=0.2 maturity=1 pairs=250000",
            4,
        );
        let (est_big, _) = estimate_of(&big);
        let ratio = est_big.price / est.price;
        assert!((ratio - 1e6).abs() < 1e-3, "{ratio}");
    }

    #[test]
    fn merging_units_in_any_order_gives_the_same_bits() {
        let units = split(
            "kernel=asian steps=8 spot=3e-7 strike=2.9e-7 vol=0.4 maturity=0.5 pairs=2000",
            5,
        );
        let partials: Vec<Partial> = units.iter().map(|u| simulate(u).unwrap()).collect();
        let forward = merge(&partials).unwrap();
        let mut reversed = partials.clone();
        reversed.reverse();
        assert_eq!(merge(&reversed).unwrap().1, forward.1);
        // Grouped differently: (0+1) + (2+3+4).
        let left = partials[0].sums.merge(&partials[1].sums).unwrap();
        let right = partials[2]
            .sums
            .merge(&partials[3].sums)
            .unwrap()
            .merge(&partials[4].sums)
            .unwrap();
        assert_eq!(right.merge(&left).unwrap(), forward.1);
        // And through the text the units write.
        let decoded: Vec<Partial> = partials
            .iter()
            .map(|p| Partial::decode(&p.encode()).unwrap())
            .collect();
        assert_eq!(decoded, partials);
    }

    #[test]
    fn a_geometric_asian_agrees_with_its_closed_form() {
        let units = split(
            "kernel=asian steps=12 average=geometric spot=50 strike=52 rate=0.03 vol=0.3 maturity=1 pairs=20000",
            3,
        );
        let (est, _) = estimate_of(&units);
        let exact = geometric_asian(&units[0].spec, 12);
        assert!(
            (est.price - exact).abs() < 4.0 * est.standard_error,
            "{est:?} vs {exact}"
        );
        // The arithmetic average is at least the geometric one on every path.
        let arith = split(
            "kernel=asian steps=12 average=arithmetic spot=50 strike=52 rate=0.03 vol=0.3 maturity=1 pairs=20000",
            3,
        );
        assert!(estimate_of(&arith).0.price > est.price);
        // One step is the European option.
        let one = OptionSpec {
            kernel: Kernel::European,
            ..units[0].spec
        };
        assert!((geometric_asian(&one, 1) - black_scholes(&one)).abs() < 1e-12);
    }

    #[test]
    fn unrepresentable_inputs_are_refused_with_a_reason() {
        let refuse = |line: &str| {
            let tokens: Vec<String> = line.split(' ').map(String::from).collect();
            UnitArgs::from_args(&tokens).unwrap_err()
        };
        let base = "rate=0.05 vol=0.2 maturity=1 pairs=10 seed=1 stream=0";
        assert!(matches!(
            refuse(&format!("spot=1e301 strike=1 {base}")),
            McError::PriceTooLarge { .. }
        ));
        assert!(matches!(
            refuse(&format!("spot=1e-300 strike=1e-300 {base}")),
            McError::PriceTooSmall { name: "spot", .. }
        ));
        assert!(matches!(
            refuse(&format!("spot=nan strike=1 {base}")),
            McError::Usage(_)
        ));
        assert!(matches!(
            refuse(&format!("spot=-1 strike=1 {base}")),
            McError::OutOfRange { name: "spot", .. }
        ));
        assert!(matches!(
            refuse("spot=1 strike=1 vol=0.2 maturity=1 pairs=0 seed=1 stream=0"),
            McError::OutOfRange { name: "pairs", .. }
        ));
        assert!(matches!(
            refuse(&format!("spot=1 strike=1 colour=red {base}")),
            McError::Usage(_)
        ));
        let text = refuse(&format!("spot=1e301 strike=1 {base}")).to_string();
        assert!(text.contains("cannot represent"), "{text}");
        // Large prices that fit are priced, and their squares do not overflow.
        let big = args(&format!("spot=1e150 strike=1e150 {base}"));
        let partial = simulate(&big).unwrap();
        assert!(partial.sums.sum_sq.bits() > 1024);
        let mut two = split(
            "spot=1e150 strike=1e150 rate=0.05 vol=0.2 maturity=1 pairs=100",
            2,
        );
        two.truncate(2);
        let (est, _) = estimate_of(&two);
        assert!(est.price.is_finite() && est.standard_error.is_finite() && est.price > 0.0);
    }

    #[test]
    fn a_merge_refuses_mixed_options_and_repeated_streams() {
        let a = simulate(&args(
            "spot=1 strike=1 vol=0.2 maturity=1 pairs=10 seed=1 stream=0",
        ))
        .unwrap();
        let b = simulate(&args(
            "spot=2 strike=1 vol=0.2 maturity=1 pairs=10 seed=1 stream=1",
        ))
        .unwrap();
        assert!(matches!(
            merge(&[a.clone(), b]),
            Err(McError::SpecMismatch(..))
        ));
        assert!(matches!(
            merge(&[a.clone(), a.clone()]),
            Err(McError::DuplicateStream { .. })
        ));
        assert!(Partial::decode("exo-montecarlo 2\n").is_err());
        let mut text = a.encode();
        text = text.replace("sum ", "sum zz");
        assert!(Partial::decode(&text).is_err());
    }

    #[test]
    fn the_canonical_option_reads_back_as_the_same_bits_and_stays_short() {
        for line in [
            "spot=1e-250 strike=3.3e-249 rate=0.05 vol=0.2 maturity=1",
            "kernel=asian steps=7 average=geometric type=put spot=0.30000000000000004 strike=123456789.125 rate=-0.01 vol=0.35 maturity=0.25",
        ] {
            let tokens: Vec<String> = line.split(' ').map(String::from).collect();
            let spec = OptionSpec::from_pairs(&key_values(&tokens).unwrap()).unwrap();
            let text = spec.canonical();
            let again: Vec<String> = text.split(' ').map(String::from).collect();
            assert_eq!(
                OptionSpec::from_pairs(&key_values(&again).unwrap()).unwrap(),
                spec
            );
            assert!(text.len() < 160, "{text}");
        }
    }

    #[test]
    fn the_standard_error_of_known_samples_is_exact() {
        // Samples 1, 2, 3, 4 (pairs (1,1), (2,2), ...): mean 2.5, sample variance 5/3.
        let mut sums = Sums::default();
        for y in [1.0, 2.0, 3.0, 4.0] {
            sums.add_pair(y, y).unwrap();
        }
        let spec = args("spot=1 strike=1 vol=0.2 maturity=1 pairs=1 seed=0 stream=0").spec;
        let est = Estimate::from_sums(&spec, &sums).unwrap();
        let expect_se = (5.0f64 / 3.0 / 4.0).sqrt();
        assert_eq!(est.price, 2.5);
        assert!((est.standard_error - expect_se).abs() < 1e-15);
        assert!(matches!(
            Estimate::from_sums(&spec, &Sums::default()),
            Err(McError::TooFewSamples(0))
        ));
    }
}
