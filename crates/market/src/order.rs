//! The two sides of the book: offers of capacity and demands for work-unit slots.

use std::fmt;

use thiserror::Error;

use crate::ids::{JobId, OfferId, ProviderId};
use crate::resources::{
    DeviceClass, MAX_CORES, MAX_CPU_SCORE, MAX_GPU_COUNT, MAX_GPU_MEMORY_MIB, MAX_MEMORY_MIB,
    MAX_UNIT_FUEL, NameError, ResourceError, Resources, Runtime, validate_name,
};

/// Most concurrent units one offer may sell. The ledger keeps the sum over a provider's offers
/// within what its machine can run; this bound only caps a single offer.
pub const MAX_SLOTS_PER_OFFER: u32 = 1024;
/// Most units one demand may list. Bigger jobs are fed to the matcher in pieces.
pub const MAX_UNITS_PER_DEMAND: usize = 65_536;
/// Most replicas of one unit. Replica indices are `0..MAX_REPLICAS`.
pub const MAX_REPLICAS: u32 = 16;
/// Most providers excluded from one unit: the holders of its other replicas plus those
/// penalised for it. A unit that has lost this many providers should be failed, not retried.
pub const MAX_EXCLUDE_PER_UNIT: usize = 64;

/// A provider's standing offer to run up to `slots` more units at `price_per_unit`.
///
/// `slots` is the number of units this offer can still take *now*: the ledger decrements it by
/// each match (see `OfferFill`) and gives slots back when units finish. A provider may post
/// several offers (for example a supply curve: 4 slots at 10, 4 more at 14); its capacity in a
/// batch is the sum of its live offers' slots, and the matcher never exceeds any offer's slots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offer {
    pub id: OfferId,
    pub provider: ProviderId,
    /// The provider's resources when the offer was posted.
    pub resources: Resources,
    /// The provider's reputation when the offer was posted. Higher is better; the ledger defines
    /// the scale.
    pub reputation: u32,
    /// Units the offer can still take. Zero means every slot is busy.
    pub slots: u32,
    /// Asked price, in base units per compute unit ([`crate::FUEL_PER_UNIT`] fuel).
    pub price_per_unit: u128,
    /// Block time the offer was posted at, in seconds since the Unix epoch.
    pub posted_secs: u64,
    /// First block time, in seconds since the Unix epoch, at which the offer is no longer live.
    pub expiry_secs: u64,
}

/// Why an [`Offer`] is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OfferError {
    #[error("the offer's resources are invalid: {0}")]
    Resources(#[from] ResourceError),
    #[error("an offer may sell at most {MAX_SLOTS_PER_OFFER} slots, but this one sells {0}")]
    Slots(u32),
    #[error("the offer expires at second {expiry} but was posted at second {posted}")]
    Expiry { posted: u64, expiry: u64 },
}

impl Offer {
    /// Checks the offer's own bounds. Zero slots is allowed because a stored offer whose slots
    /// are all busy is still a valid offer; requiring at least one slot when posting is the
    /// ledger's rule.
    pub fn validate(&self) -> Result<(), OfferError> {
        self.resources.validate()?;
        if self.slots > MAX_SLOTS_PER_OFFER {
            return Err(OfferError::Slots(self.slots));
        }
        if self.expiry_secs <= self.posted_secs {
            return Err(OfferError::Expiry {
                posted: self.posted_secs,
                expiry: self.expiry_secs,
            });
        }
        Ok(())
    }

    /// Whether the offer can be matched at block time `now_secs`: posted at or before it, not
    /// yet expired.
    pub fn is_live(&self, now_secs: u64) -> bool {
        self.posted_secs <= now_secs && now_secs < self.expiry_secs
    }
}

/// A GPU a unit needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpuRequirement {
    /// A model name, or `None` for any model.
    pub model: Option<String>,
    pub min_count: u32,
    /// Memory of each GPU; zero means no minimum.
    pub min_memory_mib: u64,
}

/// What a machine must have to run a job's units. Every field is a lower bound or an exact
/// match, so the check is a handful of comparisons.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirements {
    pub min_cores: u32,
    pub min_memory_mib: u64,
    /// Minimum single-core benchmark score, in fuel per second.
    pub min_cpu_score: u64,
    pub gpu: Option<GpuRequirement>,
    pub class: Option<DeviceClass>,
    pub region: Option<String>,
    pub runtime: Runtime,
    /// Fuel a unit may burn; the offer's `max_unit_fuel` must be at least this.
    pub fuel_limit: u64,
    pub min_reputation: u32,
}

/// One requirement, used to say which ones an offer fails and which one an unmatched demand
/// hit. `Excluded` is not a field of [`Requirements`]: it is the per-unit list of providers that
/// must not get the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Constraint {
    Cores,
    Memory,
    Cpu,
    Gpu,
    Class,
    Region,
    Runtime,
    Fuel,
    Reputation,
    Excluded,
}

impl Constraint {
    /// Every constraint, in the order explanations list them and break ties.
    pub const ALL: [Constraint; 10] = [
        Constraint::Cores,
        Constraint::Memory,
        Constraint::Cpu,
        Constraint::Gpu,
        Constraint::Class,
        Constraint::Region,
        Constraint::Runtime,
        Constraint::Fuel,
        Constraint::Reputation,
        Constraint::Excluded,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Constraint::Cores => "cores",
            Constraint::Memory => "memory",
            Constraint::Cpu => "cpu",
            Constraint::Gpu => "gpu",
            Constraint::Class => "class",
            Constraint::Region => "region",
            Constraint::Runtime => "runtime",
            Constraint::Fuel => "fuel",
            Constraint::Reputation => "reputation",
            Constraint::Excluded => "exclusion",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Constraint`]s, as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConstraintSet(u16);

impl ConstraintSet {
    pub const fn contains(self, c: Constraint) -> bool {
        self.0 & (1 << c as u16) != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    #[must_use]
    pub const fn with(self, c: Constraint) -> Self {
        ConstraintSet(self.0 | (1 << c as u16))
    }
    /// Members in [`Constraint::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Constraint> {
        Constraint::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

/// Why a [`Requirements`] is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequirementsError {
    #[error("at most {MAX_CORES} cores can be required, but {0} were")]
    Cores(u32),
    #[error("at most {MAX_MEMORY_MIB} MiB of memory can be required, but {0} MiB was")]
    Memory(u64),
    #[error("a cpu score of at most {MAX_CPU_SCORE} can be required, but {0} was")]
    CpuScore(u64),
    #[error("a gpu requirement must ask for 1 to {MAX_GPU_COUNT} gpus, but asks for {0}")]
    GpuCount(u32),
    #[error("at most {MAX_GPU_MEMORY_MIB} MiB per gpu can be required, but {0} MiB was")]
    GpuMemory(u64),
    #[error("the required gpu model name is invalid: {0}")]
    GpuModel(NameError),
    #[error("the required region name is invalid: {0}")]
    Region(NameError),
    #[error("the fuel limit must be between 1 and {MAX_UNIT_FUEL}, but is {0}")]
    FuelLimit(u64),
}

impl Requirements {
    /// The plainest demand: one core, `min_memory_mib`, units of up to `fuel_limit` in the
    /// `wasm32-wasip1` runtime, and no other bound (score, GPU, class, region, reputation).
    pub fn wasm(min_memory_mib: u64, fuel_limit: u64) -> Self {
        Requirements {
            min_cores: 1,
            min_memory_mib,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit,
            min_reputation: 0,
        }
    }

    pub fn validate(&self) -> Result<(), RequirementsError> {
        if self.min_cores > MAX_CORES {
            return Err(RequirementsError::Cores(self.min_cores));
        }
        if self.min_memory_mib > MAX_MEMORY_MIB {
            return Err(RequirementsError::Memory(self.min_memory_mib));
        }
        if self.min_cpu_score > MAX_CPU_SCORE {
            return Err(RequirementsError::CpuScore(self.min_cpu_score));
        }
        if let Some(gpu) = &self.gpu {
            if !(1..=MAX_GPU_COUNT).contains(&gpu.min_count) {
                return Err(RequirementsError::GpuCount(gpu.min_count));
            }
            if gpu.min_memory_mib > MAX_GPU_MEMORY_MIB {
                return Err(RequirementsError::GpuMemory(gpu.min_memory_mib));
            }
            if let Some(model) = &gpu.model {
                validate_name(model).map_err(RequirementsError::GpuModel)?;
            }
        }
        if let Some(region) = &self.region {
            validate_name(region).map_err(RequirementsError::Region)?;
        }
        if !(1..=MAX_UNIT_FUEL).contains(&self.fuel_limit) {
            return Err(RequirementsError::FuelLimit(self.fuel_limit));
        }
        Ok(())
    }

    /// Every requirement `resources` (at `reputation`) fails. `Excluded` is never in the set:
    /// exclusion is per unit, not a property of the machine.
    pub fn unmet(&self, resources: &Resources, reputation: u32) -> ConstraintSet {
        let mut set = ConstraintSet::default();
        if resources.cores < self.min_cores {
            set = set.with(Constraint::Cores);
        }
        if resources.memory_mib < self.min_memory_mib {
            set = set.with(Constraint::Memory);
        }
        if resources.cpu_score < self.min_cpu_score {
            set = set.with(Constraint::Cpu);
        }
        if let Some(need) = &self.gpu {
            let ok = resources.gpu.as_ref().is_some_and(|have| {
                have.count >= need.min_count
                    && have.memory_mib >= need.min_memory_mib
                    && need.model.as_ref().is_none_or(|m| *m == have.model)
            });
            if !ok {
                set = set.with(Constraint::Gpu);
            }
        }
        if self.class.is_some_and(|c| c != resources.class) {
            set = set.with(Constraint::Class);
        }
        if self.region.as_ref().is_some_and(|r| *r != resources.region) {
            set = set.with(Constraint::Region);
        }
        if !resources.runtimes.contains(self.runtime) {
            set = set.with(Constraint::Runtime);
        }
        if resources.max_unit_fuel < self.fuel_limit {
            set = set.with(Constraint::Fuel);
        }
        if reputation < self.min_reputation {
            set = set.with(Constraint::Reputation);
        }
        set
    }

    /// Whether `offer` meets every requirement. This is the reference check; the matcher runs
    /// an equivalent one on a compact copy of the book.
    pub fn admits(&self, offer: &Offer) -> bool {
        self.unmet(&offer.resources, offer.reputation).is_empty()
    }
}

/// The open replicas of one work unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitDemand {
    /// The unit's index within its job.
    pub unit: u32,
    /// Replica indices that need a provider, strictly increasing, each below [`MAX_REPLICAS`].
    pub replicas: Vec<u32>,
    /// Providers that must not get any replica of this unit: those holding another replica
    /// (replicas must be independent) and those penalised for it. Strictly increasing.
    pub exclude: Vec<ProviderId>,
}

/// A job's open work-unit slots, as the ledger hands them to the matcher each block.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Demand {
    pub job: JobId,
    pub requirements: Requirements,
    /// The most the requester pays, in base units per compute unit.
    pub max_price_per_unit: u128,
    pub submitted_height: u64,
    /// Units with open replicas, strictly increasing by unit index.
    pub units: Vec<UnitDemand>,
}

/// Why a [`Demand`] is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DemandError {
    #[error("the requirements are invalid: {0}")]
    Requirements(#[from] RequirementsError),
    #[error("a demand must list 1 to {MAX_UNITS_PER_DEMAND} units, but lists {0}")]
    UnitCount(usize),
    #[error(
        "units must be listed in strictly increasing order, but unit {unit} follows {previous}"
    )]
    UnitOrder { previous: u32, unit: u32 },
    #[error("unit {unit} lists no replica to assign")]
    NoReplica { unit: u32 },
    #[error("unit {unit} lists replica {replica}, but replicas are numbered below {MAX_REPLICAS}")]
    Replica { unit: u32, replica: u32 },
    #[error(
        "unit {unit} must list replicas in strictly increasing order, but {replica} follows {previous}"
    )]
    ReplicaOrder {
        unit: u32,
        previous: u32,
        replica: u32,
    },
    #[error("unit {unit} excludes {count} providers, more than the {MAX_EXCLUDE_PER_UNIT} allowed")]
    ExcludeCount { unit: u32, count: usize },
    #[error(
        "unit {unit} must list excluded providers in strictly increasing order, but {provider} follows {previous}"
    )]
    ExcludeOrder {
        unit: u32,
        previous: ProviderId,
        provider: ProviderId,
    },
}

impl UnitDemand {
    fn validate(&self) -> Result<(), DemandError> {
        let unit = self.unit;
        if self.replicas.is_empty() {
            return Err(DemandError::NoReplica { unit });
        }
        let mut previous: Option<u32> = None;
        for &replica in &self.replicas {
            if replica >= MAX_REPLICAS {
                return Err(DemandError::Replica { unit, replica });
            }
            if let Some(previous) = previous
                && replica <= previous
            {
                return Err(DemandError::ReplicaOrder {
                    unit,
                    previous,
                    replica,
                });
            }
            previous = Some(replica);
        }
        if self.exclude.len() > MAX_EXCLUDE_PER_UNIT {
            return Err(DemandError::ExcludeCount {
                unit,
                count: self.exclude.len(),
            });
        }
        for pair in self.exclude.windows(2) {
            if let [previous, provider] = *pair
                && provider <= previous
            {
                return Err(DemandError::ExcludeOrder {
                    unit,
                    previous,
                    provider,
                });
            }
        }
        Ok(())
    }
}

impl Demand {
    /// Checks bounds and canonical order. Canonical order is what lets the matcher walk units
    /// and replicas without sorting, and lets two validators encode the same demand identically.
    pub fn validate(&self) -> Result<(), DemandError> {
        self.requirements.validate()?;
        if self.units.is_empty() || self.units.len() > MAX_UNITS_PER_DEMAND {
            return Err(DemandError::UnitCount(self.units.len()));
        }
        let mut previous: Option<u32> = None;
        for unit in &self.units {
            if let Some(previous) = previous
                && unit.unit <= previous
            {
                return Err(DemandError::UnitOrder {
                    previous,
                    unit: unit.unit,
                });
            }
            previous = Some(unit.unit);
            unit.validate()?;
        }
        Ok(())
    }

    /// Number of (unit, replica) slots this demand asks to fill.
    pub fn slot_count(&self) -> usize {
        self.units.iter().map(|u| u.replicas.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Gpu, RuntimeSet};

    fn machine() -> Resources {
        Resources {
            cores: 8,
            cpu_score: 1_000,
            memory_mib: 16_384,
            gpu: Some(Gpu {
                model: "rtx4090".into(),
                count: 1,
                memory_mib: 24_576,
            }),
            class: DeviceClass::Pc,
            region: "eu-west".into(),
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
            max_unit_fuel: 1_000_000,
        }
    }

    fn loose() -> Requirements {
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

    fn only(c: Constraint) -> ConstraintSet {
        ConstraintSet::default().with(c)
    }

    #[test]
    fn loose_requirements_admit_the_machine() {
        assert!(loose().unmet(&machine(), 0).is_empty());
    }

    #[test]
    fn each_requirement_is_checked_on_its_own() {
        let m = machine();
        let gpu = |model: Option<&str>, min_count, min_memory_mib| {
            Some(GpuRequirement {
                model: model.map(Into::into),
                min_count,
                min_memory_mib,
            })
        };
        let cases: Vec<(Requirements, Option<Constraint>)> = vec![
            (
                Requirements {
                    min_cores: 8,
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    min_cores: 9,
                    ..loose()
                },
                Some(Constraint::Cores),
            ),
            (
                Requirements {
                    min_memory_mib: 16_384,
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    min_memory_mib: 16_385,
                    ..loose()
                },
                Some(Constraint::Memory),
            ),
            (
                Requirements {
                    min_cpu_score: 1_000,
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    min_cpu_score: 1_001,
                    ..loose()
                },
                Some(Constraint::Cpu),
            ),
            (
                Requirements {
                    gpu: gpu(Some("rtx4090"), 1, 24_576),
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    gpu: gpu(None, 1, 0),
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    gpu: gpu(Some("a100"), 1, 0),
                    ..loose()
                },
                Some(Constraint::Gpu),
            ),
            (
                Requirements {
                    gpu: gpu(None, 2, 0),
                    ..loose()
                },
                Some(Constraint::Gpu),
            ),
            (
                Requirements {
                    gpu: gpu(None, 1, 24_577),
                    ..loose()
                },
                Some(Constraint::Gpu),
            ),
            (
                Requirements {
                    class: Some(DeviceClass::Pc),
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    class: Some(DeviceClass::Server),
                    ..loose()
                },
                Some(Constraint::Class),
            ),
            (
                Requirements {
                    region: Some("eu-west".into()),
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    region: Some("us-east".into()),
                    ..loose()
                },
                Some(Constraint::Region),
            ),
            (
                Requirements {
                    runtime: Runtime::Wasm32Wasip2,
                    ..loose()
                },
                Some(Constraint::Runtime),
            ),
            (
                Requirements {
                    fuel_limit: 1_000_000,
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    fuel_limit: 1_000_001,
                    ..loose()
                },
                Some(Constraint::Fuel),
            ),
            (
                Requirements {
                    min_reputation: 7,
                    ..loose()
                },
                None,
            ),
            (
                Requirements {
                    min_reputation: 8,
                    ..loose()
                },
                Some(Constraint::Reputation),
            ),
        ];
        for (req, expected) in cases {
            let expected = expected.map_or(ConstraintSet::default(), only);
            assert_eq!(req.unmet(&m, 7), expected, "{req:?}");
        }
    }

    #[test]
    fn a_gpu_requirement_fails_a_machine_without_gpu() {
        let m = Resources {
            gpu: None,
            ..machine()
        };
        let req = Requirements {
            gpu: Some(GpuRequirement {
                model: None,
                min_count: 1,
                min_memory_mib: 0,
            }),
            ..loose()
        };
        assert_eq!(req.unmet(&m, 0), only(Constraint::Gpu));
    }

    #[test]
    fn several_failures_are_all_reported() {
        let req = Requirements {
            min_cores: 64,
            region: Some("ap-south".into()),
            ..loose()
        };
        let unmet = req.unmet(&machine(), 0);
        assert_eq!(
            unmet.iter().collect::<Vec<_>>(),
            vec![Constraint::Cores, Constraint::Region]
        );
    }

    fn demand() -> Demand {
        Demand {
            job: JobId(1),
            requirements: loose(),
            max_price_per_unit: 10,
            submitted_height: 1,
            units: vec![
                UnitDemand {
                    unit: 0,
                    replicas: vec![0, 1],
                    exclude: vec![],
                },
                UnitDemand {
                    unit: 3,
                    replicas: vec![2],
                    exclude: vec![ProviderId(1), ProviderId(4)],
                },
            ],
        }
    }

    #[test]
    fn demands_must_be_canonical_and_bounded() {
        assert_eq!(demand().validate(), Ok(()));
        assert_eq!(demand().slot_count(), 3);

        let mut d = demand();
        d.units.swap(0, 1);
        assert_eq!(
            d.validate(),
            Err(DemandError::UnitOrder {
                previous: 3,
                unit: 0
            })
        );

        let mut d = demand();
        d.units[0].replicas = vec![1, 1];
        assert_eq!(
            d.validate(),
            Err(DemandError::ReplicaOrder {
                unit: 0,
                previous: 1,
                replica: 1
            })
        );

        let mut d = demand();
        d.units[0].replicas = vec![MAX_REPLICAS];
        assert!(matches!(d.validate(), Err(DemandError::Replica { .. })));

        let mut d = demand();
        d.units[1].exclude.reverse();
        assert!(matches!(
            d.validate(),
            Err(DemandError::ExcludeOrder { .. })
        ));

        let mut d = demand();
        d.units[1].exclude = (0..=MAX_EXCLUDE_PER_UNIT as u64).map(ProviderId).collect();
        assert!(matches!(
            d.validate(),
            Err(DemandError::ExcludeCount { .. })
        ));

        let mut d = demand();
        d.units.clear();
        assert_eq!(d.validate(), Err(DemandError::UnitCount(0)));

        let mut d = demand();
        d.requirements.fuel_limit = 0;
        assert_eq!(
            d.validate(),
            Err(DemandError::Requirements(RequirementsError::FuelLimit(0)))
        );
    }

    #[test]
    fn offer_bounds() {
        let offer = Offer {
            id: OfferId(1),
            provider: ProviderId(1),
            resources: machine(),
            reputation: 0,
            slots: 0,
            price_per_unit: 0,
            posted_secs: 5,
            expiry_secs: 6,
        };
        assert_eq!(offer.validate(), Ok(()));
        assert!(offer.is_live(5));
        assert!(!offer.is_live(6));
        assert!(!offer.is_live(4));
        let bad = Offer {
            expiry_secs: 5,
            ..offer.clone()
        };
        assert_eq!(
            bad.validate(),
            Err(OfferError::Expiry {
                posted: 5,
                expiry: 5
            })
        );
        let bad = Offer {
            slots: MAX_SLOTS_PER_OFFER + 1,
            ..offer
        };
        assert_eq!(
            bad.validate(),
            Err(OfferError::Slots(MAX_SLOTS_PER_OFFER + 1))
        );
    }
}
