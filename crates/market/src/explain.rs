//! Why a demand slot stayed unmatched, in numbers a requester can act on.

use std::fmt;

use crate::order::{Constraint, GpuRequirement, Requirements};
use crate::resources::{DeviceClass, Runtime};

/// How far explanations count the offers that meet every requirement. Counting all of them
/// would cost a sweep of the book per unmatched demand; past this many the exact number no
/// longer changes what a requester should do.
pub const PASSED_COUNT_LIMIT: u64 = 100;

/// How many live offers each requirement excludes, counted independently: an offer with too
/// few cores and the wrong region counts under both. Independent counts show which requirement
/// is the binding one, which a first-failure attribution would hide behind list order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExclusionCounts(pub [u64; Constraint::ALL.len()]);

impl ExclusionCounts {
    pub fn get(&self, c: Constraint) -> u64 {
        self.0.get(c.index()).copied().unwrap_or(0)
    }

    pub(crate) fn set(&mut self, c: Constraint, n: u64) {
        if let Some(slot) = self.0.get_mut(c.index()) {
            *slot = n;
        }
    }

    /// The constraint that excludes the most offers; ties go to the earlier one in
    /// [`Constraint::ALL`], so the choice is deterministic.
    pub fn largest(&self) -> (Constraint, u64) {
        let mut best = (Constraint::Cores, self.get(Constraint::Cores));
        for c in Constraint::ALL {
            let n = self.get(c);
            if n > best.1 {
                best = (c, n);
            }
        }
        best
    }
}

/// One requirement with the value the demand asked for, so that an explanation can be read
/// without the demand at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Cores(u32),
    Memory(u64),
    Cpu(u64),
    Gpu(GpuRequirement),
    Class(DeviceClass),
    Region(String),
    Runtime(Runtime),
    Fuel(u64),
    Reputation(u32),
    /// The unit's exclusion list (other replicas' holders and penalised providers).
    Excluded,
}

impl Requirement {
    /// The requirement of kind `c` in `req`. A kind the demand left open (no gpu, class or region
    /// asked) never excludes anything, so it is never chosen as binding; `Excluded` stands in.
    pub(crate) fn of(req: &Requirements, c: Constraint) -> Requirement {
        match c {
            Constraint::Cores => Requirement::Cores(req.min_cores),
            Constraint::Memory => Requirement::Memory(req.min_memory_mib),
            Constraint::Cpu => Requirement::Cpu(req.min_cpu_score),
            Constraint::Gpu => req
                .gpu
                .clone()
                .map_or(Requirement::Excluded, Requirement::Gpu),
            Constraint::Class => req.class.map_or(Requirement::Excluded, Requirement::Class),
            Constraint::Region => req
                .region
                .clone()
                .map_or(Requirement::Excluded, Requirement::Region),
            Constraint::Runtime => Requirement::Runtime(req.runtime),
            Constraint::Fuel => Requirement::Fuel(req.fuel_limit),
            Constraint::Reputation => Requirement::Reputation(req.min_reputation),
            Constraint::Excluded => Requirement::Excluded,
        }
    }

    pub fn constraint(&self) -> Constraint {
        match self {
            Requirement::Cores(_) => Constraint::Cores,
            Requirement::Memory(_) => Constraint::Memory,
            Requirement::Cpu(_) => Constraint::Cpu,
            Requirement::Gpu(_) => Constraint::Gpu,
            Requirement::Class(_) => Constraint::Class,
            Requirement::Region(_) => Constraint::Region,
            Requirement::Runtime(_) => Constraint::Runtime,
            Requirement::Fuel(_) => Constraint::Fuel,
            Requirement::Reputation(_) => Constraint::Reputation,
            Requirement::Excluded => Constraint::Excluded,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Cores(n) => write!(f, "at least {n} cores"),
            Requirement::Memory(n) => write!(f, "at least {n} MiB of memory"),
            Requirement::Cpu(n) => write!(f, "a cpu score of at least {n}"),
            Requirement::Gpu(g) => {
                match &g.model {
                    Some(model) => write!(f, "gpu {model}")?,
                    None => f.write_str("a gpu")?,
                }
                if g.min_count > 1 {
                    write!(f, " x{}", g.min_count)?;
                }
                if g.min_memory_mib > 0 {
                    write!(f, " with {} MiB each", g.min_memory_mib)?;
                }
                Ok(())
            }
            Requirement::Class(c) => write!(f, "device class {c}"),
            Requirement::Region(r) => write!(f, "region {r}"),
            Requirement::Runtime(r) => write!(f, "runtime {r}"),
            Requirement::Fuel(n) => write!(f, "a max unit fuel of at least {n}"),
            Requirement::Reputation(n) => write!(f, "a reputation of at least {n}"),
            Requirement::Excluded => f.write_str("a provider not excluded from this unit"),
        }
    }
}

/// The verdict, derived from the numbers in [`Explanation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No live offer at all.
    EmptyBook,
    /// No live offer meets every requirement; `binding` is the one that excludes the most.
    NoProvider { binding: Requirement },
    /// Some offers meet every requirement, but the cheapest asks more than the demand pays.
    PriceTooLow,
    /// Offers meet every requirement at an acceptable price, but all their slots are taken
    /// (busy before this block, or filled by demands ahead in the order).
    SlotsTaken,
}

/// Why one demand slot stayed unmatched. Counts are over the live offers of the batch, ignoring
/// slots, so they describe the market rather than the order in which demands were served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Offers not expired at the batch's time.
    pub live_offers: u64,
    pub excluded_by: ExclusionCounts,
    /// Offers meeting every requirement, from providers not excluded from the unit, counted up
    /// to about [`PASSED_COUNT_LIMIT`].
    pub passed: u64,
    /// False when counting stopped at the limit: then there are at least `passed` such offers.
    pub passed_exact: bool,
    /// Lowest ask among the `passed` offers.
    pub best_ask: Option<u128>,
    pub max_price_per_unit: u128,
    pub reason: Reason,
}

impl Explanation {
    /// Derives the verdict from the counts. The order of the checks is the order in which a
    /// requester would fix things: first the requirements, then the price, then patience.
    pub fn new(
        req: &Requirements,
        live_offers: u64,
        excluded_by: ExclusionCounts,
        passed: u64,
        passed_exact: bool,
        best_ask: Option<u128>,
        max_price_per_unit: u128,
    ) -> Self {
        let reason = if live_offers == 0 {
            Reason::EmptyBook
        } else if passed == 0 {
            Reason::NoProvider {
                binding: Requirement::of(req, excluded_by.largest().0),
            }
        } else if best_ask.is_some_and(|ask| ask > max_price_per_unit) {
            Reason::PriceTooLow
        } else {
            Reason::SlotsTaken
        };
        Explanation {
            live_offers,
            excluded_by,
            passed,
            passed_exact,
            best_ask,
            max_price_per_unit,
            reason,
        }
    }
}

impl Explanation {
    /// `passed` as a human reads it: "at least 100" when the count stopped at the limit.
    fn passed_text(&self) -> String {
        if self.passed_exact {
            self.passed.to_string()
        } else {
            format!("at least {}", self.passed)
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.live_offers;
        match &self.reason {
            Reason::EmptyBook => f.write_str("no live offers on the book"),
            Reason::NoProvider { binding } => {
                let c = binding.constraint();
                let k = self.excluded_by.get(c);
                if c == Constraint::Excluded {
                    write!(
                        f,
                        "every provider that meets the requirements is excluded from this unit \
                         ({k} of {n} offers excluded)"
                    )
                } else if k == n {
                    write!(
                        f,
                        "no provider with {binding} ({k} of {n} offers excluded by {c})"
                    )
                } else {
                    write!(
                        f,
                        "no provider meets all requirements at once; {binding} excludes the most \
                         ({k} of {n} offers)"
                    )
                }
            }
            Reason::PriceTooLow => {
                let ask = self.best_ask.unwrap_or_default();
                write!(
                    f,
                    "best ask {ask} > max price {} ({} of {n} offers meet the requirements)",
                    self.max_price_per_unit,
                    self.passed_text()
                )
            }
            Reason::SlotsTaken => {
                let ask = self.best_ask.unwrap_or_default();
                write!(
                    f,
                    "all matching slots taken ({} of {n} offers meet the requirements, best ask \
                     {ask} <= max price {})",
                    self.passed_text(),
                    self.max_price_per_unit
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Requirements {
        Requirements {
            min_cores: 1,
            min_memory_mib: 0,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 1,
            min_reputation: 0,
        }
    }

    #[test]
    fn requirements_read_as_phrases() {
        let gpu = |model: Option<&str>, min_count, min_memory_mib| {
            Requirement::Gpu(GpuRequirement {
                model: model.map(Into::into),
                min_count,
                min_memory_mib,
            })
        };
        assert_eq!(gpu(Some("h100"), 1, 0).to_string(), "gpu h100");
        assert_eq!(
            gpu(Some("h100"), 2, 81_920).to_string(),
            "gpu h100 x2 with 81920 MiB each"
        );
        assert_eq!(gpu(None, 1, 0).to_string(), "a gpu");
        assert_eq!(Requirement::Cores(8).to_string(), "at least 8 cores");
        assert_eq!(
            Requirement::Class(DeviceClass::Server).to_string(),
            "device class server"
        );
        assert_eq!(
            Requirement::Runtime(Runtime::Wasm32Wasip2).to_string(),
            "runtime wasm32-wasip2"
        );
    }

    #[test]
    fn the_verdict_follows_the_numbers() {
        let mut counts = ExclusionCounts::default();
        counts.set(Constraint::Memory, 4);
        counts.set(Constraint::Region, 4);
        // Ties go to the earlier constraint.
        assert_eq!(counts.largest(), (Constraint::Memory, 4));

        let e = Explanation::new(&req(), 0, counts, 0, true, None, 5);
        assert_eq!(e.reason, Reason::EmptyBook);
        let e = Explanation::new(&req(), 4, counts, 0, true, None, 5);
        assert_eq!(
            e.reason,
            Reason::NoProvider {
                binding: Requirement::Memory(0)
            }
        );
        let e = Explanation::new(&req(), 4000, counts, PASSED_COUNT_LIMIT, false, Some(9), 5);
        assert_eq!(e.reason, Reason::PriceTooLow);
        assert_eq!(
            e.to_string(),
            "best ask 9 > max price 5 (at least 100 of 4000 offers meet the requirements)"
        );
        let e = Explanation::new(&req(), 4, counts, 2, true, Some(5), 5);
        assert_eq!(e.reason, Reason::SlotsTaken);
    }
}
