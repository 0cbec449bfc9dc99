//! Why the market refused an action: a frozen code and its numbers. The sentences are
//! rendered here, outside consensus.

use crate::exec::Coded;
use exo_types::{Amount, MAX_JOB_UNITS, MAX_TRUST};
use std::fmt;

/// What is wrong with a job's specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobProblem {
    Units {
        units: u32,
    },
    Trust {
        trust: u8,
    },
    UnitArgs {
        lines: u32,
        units: u32,
    },
    Requirements,
    ZeroFuel,
    ZeroPrice,
    InputNames,
    /// More units than a waiting list can hold in the worst case.
    UnitsOverWaitingBound {
        max: u32,
    },
}

/// What is wrong with an app's publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProblem {
    Name,
    Royalty { max: Amount },
    Full { max: u32 },
}

/// A refused market action. Codes are frozen: a new refusal takes the next free code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidResources,
    ProviderExists,
    NotAProvider,
    ProviderRetired,
    BondTooLow {
        bond: Amount,
        min: Amount,
    },
    ProviderBusy {
        active: u32,
    },
    /// The offer breaks the market's bounds (slots, resources); `expiry` is set, with the block
    /// time in seconds, when it expires at or before that time.
    InvalidOffer {
        expiry: Option<(u64, u64)>,
    },
    TooManyOffers {
        held: u32,
        max: u32,
    },
    BookFull {
        max: u32,
    },
    UnknownOffer {
        offer: u64,
    },
    NotYourOffer {
        offer: u64,
    },
    InvalidJob(JobProblem),
    UnknownApp,
    TooManyJobs {
        max: u32,
    },
    UnknownJob {
        job: u64,
    },
    NotYourJob {
        job: u64,
    },
    JobClosed {
        job: u64,
    },
    AppExists,
    InvalidApp(AppProblem),
    UnknownReplica {
        job: u64,
        unit: u32,
        replica: u32,
    },
    NotYourReplica {
        job: u64,
        unit: u32,
        replica: u32,
    },
    RevealNotOpen {
        job: u64,
        unit: u32,
        replica: u32,
    },
    CommitmentMismatch {
        job: u64,
        unit: u32,
        replica: u32,
    },
    /// The worst-case escrow does not fit in an amount.
    EscrowOverflow,
    /// The requester holds its maximum of open jobs.
    TooManyOpenJobs {
        held: u32,
        max: u32,
    },
    /// The developer published its maximum of apps.
    TooManyApps {
        held: u32,
        max: u32,
    },
    /// The offer expires later than the longest lifetime allows: `max` is the latest expiry.
    OfferTooLong {
        expiry: u64,
        max: u64,
    },
    /// The provider's open replicas and free offered slots would pass its cap.
    TooManySlots {
        held: u32,
        max: u32,
    },
    /// The proof names a capacity round that is not open: none is, it closed, or another is.
    CapacityRoundNotOpen {
        round: u64,
    },
    /// The offer was posted during the round (only offers on the book before it may answer).
    OfferAfterCapacityRound {
        offer: u64,
        round: u64,
    },
    CapacityAlreadyProven {
        offer: u64,
        round: u64,
    },
    /// The nonces do not solve the round's challenge for the offer and slots named.
    InvalidCapacityProof {
        offer: u64,
    },
    /// The offer asks more than capacity may ask to earn rewards.
    CapacityPriceTooHigh {
        offer: u64,
        max: Amount,
    },
    /// The offer has no free slot now (all sold, or its provider cannot be matched).
    NoFreeSlots {
        offer: u64,
    },
}

fn n<T: TryFrom<u128>>(v: u128) -> Option<T> {
    T::try_from(v).ok()
}

fn replica_fields(job: u64, unit: u32, replica: u32) -> Vec<u128> {
    vec![job.into(), unit.into(), replica.into()]
}

impl Coded for Refusal {
    fn code(&self) -> u16 {
        match self {
            Self::InvalidResources => 1,
            Self::ProviderExists => 2,
            Self::NotAProvider => 3,
            Self::ProviderRetired => 4,
            Self::BondTooLow { .. } => 5,
            Self::ProviderBusy { .. } => 6,
            Self::InvalidOffer { .. } => 7,
            Self::TooManyOffers { .. } => 8,
            Self::BookFull { .. } => 9,
            Self::UnknownOffer { .. } => 10,
            Self::NotYourOffer { .. } => 11,
            Self::InvalidJob(_) => 12,
            Self::UnknownApp => 13,
            Self::TooManyJobs { .. } => 14,
            Self::UnknownJob { .. } => 15,
            Self::NotYourJob { .. } => 16,
            Self::JobClosed { .. } => 17,
            Self::AppExists => 18,
            Self::InvalidApp(_) => 19,
            Self::UnknownReplica { .. } => 20,
            Self::NotYourReplica { .. } => 21,
            // 22 was "commit closed", never used; it stays retired.
            Self::RevealNotOpen { .. } => 23,
            Self::CommitmentMismatch { .. } => 24,
            Self::EscrowOverflow => 25,
            Self::TooManyOpenJobs { .. } => 26,
            Self::TooManyApps { .. } => 27,
            Self::OfferTooLong { .. } => 28,
            Self::TooManySlots { .. } => 29,
            Self::CapacityRoundNotOpen { .. } => 30,
            Self::OfferAfterCapacityRound { .. } => 31,
            Self::CapacityAlreadyProven { .. } => 32,
            Self::InvalidCapacityProof { .. } => 33,
            Self::CapacityPriceTooHigh { .. } => 34,
            Self::NoFreeSlots { .. } => 35,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidResources => "invalid_resources",
            Self::ProviderExists => "provider_exists",
            Self::NotAProvider => "not_a_provider",
            Self::ProviderRetired => "provider_retired",
            Self::BondTooLow { .. } => "bond_too_low",
            Self::ProviderBusy { .. } => "provider_busy",
            Self::InvalidOffer { .. } => "invalid_offer",
            Self::TooManyOffers { .. } => "too_many_offers",
            Self::BookFull { .. } => "book_full",
            Self::UnknownOffer { .. } => "unknown_offer",
            Self::NotYourOffer { .. } => "not_your_offer",
            Self::InvalidJob(_) => "invalid_job",
            Self::UnknownApp => "unknown_app",
            Self::TooManyJobs { .. } => "too_many_jobs",
            Self::UnknownJob { .. } => "unknown_job",
            Self::NotYourJob { .. } => "not_your_job",
            Self::JobClosed { .. } => "job_closed",
            Self::AppExists => "app_exists",
            Self::InvalidApp(_) => "invalid_app",
            Self::UnknownReplica { .. } => "unknown_replica",
            Self::NotYourReplica { .. } => "not_your_replica",
            Self::RevealNotOpen { .. } => "reveal_not_open",
            Self::CommitmentMismatch { .. } => "commitment_mismatch",
            Self::EscrowOverflow => "overflow",
            Self::TooManyOpenJobs { .. } => "too_many_open_jobs",
            Self::TooManyApps { .. } => "too_many_apps",
            Self::OfferTooLong { .. } => "offer_too_long",
            Self::TooManySlots { .. } => "too_many_slots",
            Self::CapacityRoundNotOpen { .. } => "capacity_round_not_open",
            Self::OfferAfterCapacityRound { .. } => "offer_after_capacity_round",
            Self::CapacityAlreadyProven { .. } => "capacity_already_proven",
            Self::InvalidCapacityProof { .. } => "invalid_capacity_proof",
            Self::CapacityPriceTooHigh { .. } => "capacity_price_too_high",
            Self::NoFreeSlots { .. } => "no_free_slots",
        }
    }

    fn fields(&self) -> Vec<u128> {
        match self {
            Self::InvalidResources
            | Self::ProviderExists
            | Self::NotAProvider
            | Self::ProviderRetired
            | Self::UnknownApp
            | Self::AppExists
            | Self::EscrowOverflow => vec![],
            Self::BondTooLow { bond, min } => vec![bond.0, min.0],
            Self::ProviderBusy { active } => vec![(*active).into()],
            Self::InvalidOffer { expiry: None } => vec![],
            Self::InvalidOffer {
                expiry: Some((expiry, now)),
            } => vec![(*expiry).into(), (*now).into()],
            Self::TooManyOffers { held, max }
            | Self::TooManyOpenJobs { held, max }
            | Self::TooManyApps { held, max }
            | Self::TooManySlots { held, max } => vec![(*held).into(), (*max).into()],
            Self::OfferTooLong { expiry, max } => vec![(*expiry).into(), (*max).into()],
            Self::BookFull { max } | Self::TooManyJobs { max } => vec![(*max).into()],
            Self::UnknownOffer { offer }
            | Self::NotYourOffer { offer }
            | Self::InvalidCapacityProof { offer }
            | Self::NoFreeSlots { offer } => vec![(*offer).into()],
            Self::CapacityRoundNotOpen { round } => vec![(*round).into()],
            Self::OfferAfterCapacityRound { offer, round }
            | Self::CapacityAlreadyProven { offer, round } => {
                vec![(*offer).into(), (*round).into()]
            }
            Self::CapacityPriceTooHigh { offer, max } => vec![(*offer).into(), max.0],
            Self::UnknownJob { job } | Self::NotYourJob { job } | Self::JobClosed { job } => {
                vec![(*job).into()]
            }
            Self::InvalidJob(p) => match p {
                JobProblem::Units { units } => vec![1, (*units).into()],
                JobProblem::Trust { trust } => vec![2, (*trust).into()],
                JobProblem::UnitArgs { lines, units } => vec![3, (*lines).into(), (*units).into()],
                JobProblem::Requirements => vec![4],
                JobProblem::ZeroFuel => vec![5],
                JobProblem::ZeroPrice => vec![6],
                JobProblem::InputNames => vec![7],
                JobProblem::UnitsOverWaitingBound { max } => vec![8, (*max).into()],
            },
            Self::InvalidApp(p) => match p {
                AppProblem::Name => vec![1],
                AppProblem::Royalty { max } => vec![2, max.0],
                AppProblem::Full { max } => vec![3, (*max).into()],
            },
            Self::UnknownReplica { job, unit, replica }
            | Self::NotYourReplica { job, unit, replica }
            | Self::RevealNotOpen { job, unit, replica }
            | Self::CommitmentMismatch { job, unit, replica } => {
                replica_fields(*job, *unit, *replica)
            }
        }
    }

    fn from_fields(code: u16, f: &[u128]) -> Option<Self> {
        let replica = |f: &[u128]| -> Option<(u64, u32, u32)> {
            match f {
                [j, u, r] => Some((n(*j)?, n(*u)?, n(*r)?)),
                _ => None,
            }
        };
        Some(match (code, f) {
            (1, []) => Self::InvalidResources,
            (2, []) => Self::ProviderExists,
            (3, []) => Self::NotAProvider,
            (4, []) => Self::ProviderRetired,
            (5, [b, m]) => Self::BondTooLow {
                bond: Amount(*b),
                min: Amount(*m),
            },
            (6, [a]) => Self::ProviderBusy { active: n(*a)? },
            (7, []) => Self::InvalidOffer { expiry: None },
            (7, [e, h]) => Self::InvalidOffer {
                expiry: Some((n(*e)?, n(*h)?)),
            },
            (8, [h, m]) => Self::TooManyOffers {
                held: n(*h)?,
                max: n(*m)?,
            },
            (9, [m]) => Self::BookFull { max: n(*m)? },
            (10, [o]) => Self::UnknownOffer { offer: n(*o)? },
            (11, [o]) => Self::NotYourOffer { offer: n(*o)? },
            (12, [1, u]) => Self::InvalidJob(JobProblem::Units { units: n(*u)? }),
            (12, [2, t]) => Self::InvalidJob(JobProblem::Trust { trust: n(*t)? }),
            (12, [3, l, u]) => Self::InvalidJob(JobProblem::UnitArgs {
                lines: n(*l)?,
                units: n(*u)?,
            }),
            (12, [4]) => Self::InvalidJob(JobProblem::Requirements),
            (12, [5]) => Self::InvalidJob(JobProblem::ZeroFuel),
            (12, [6]) => Self::InvalidJob(JobProblem::ZeroPrice),
            (12, [7]) => Self::InvalidJob(JobProblem::InputNames),
            (12, [8, m]) => Self::InvalidJob(JobProblem::UnitsOverWaitingBound { max: n(*m)? }),
            (13, []) => Self::UnknownApp,
            (14, [m]) => Self::TooManyJobs { max: n(*m)? },
            (15, [j]) => Self::UnknownJob { job: n(*j)? },
            (16, [j]) => Self::NotYourJob { job: n(*j)? },
            (17, [j]) => Self::JobClosed { job: n(*j)? },
            (18, []) => Self::AppExists,
            (19, [1]) => Self::InvalidApp(AppProblem::Name),
            (19, [2, m]) => Self::InvalidApp(AppProblem::Royalty { max: Amount(*m) }),
            (19, [3, m]) => Self::InvalidApp(AppProblem::Full { max: n(*m)? }),
            (20, f) => {
                let (job, unit, replica) = replica(f)?;
                Self::UnknownReplica { job, unit, replica }
            }
            (21, f) => {
                let (job, unit, replica) = replica(f)?;
                Self::NotYourReplica { job, unit, replica }
            }
            (23, f) => {
                let (job, unit, replica) = replica(f)?;
                Self::RevealNotOpen { job, unit, replica }
            }
            (24, f) => {
                let (job, unit, replica) = replica(f)?;
                Self::CommitmentMismatch { job, unit, replica }
            }
            (25, []) => Self::EscrowOverflow,
            (26, [h, m]) => Self::TooManyOpenJobs {
                held: n(*h)?,
                max: n(*m)?,
            },
            (27, [h, m]) => Self::TooManyApps {
                held: n(*h)?,
                max: n(*m)?,
            },
            (28, [e, m]) => Self::OfferTooLong {
                expiry: n(*e)?,
                max: n(*m)?,
            },
            (29, [h, m]) => Self::TooManySlots {
                held: n(*h)?,
                max: n(*m)?,
            },
            (30, [r]) => Self::CapacityRoundNotOpen { round: n(*r)? },
            (31, [o, r]) => Self::OfferAfterCapacityRound {
                offer: n(*o)?,
                round: n(*r)?,
            },
            (32, [o, r]) => Self::CapacityAlreadyProven {
                offer: n(*o)?,
                round: n(*r)?,
            },
            (33, [o]) => Self::InvalidCapacityProof { offer: n(*o)? },
            (34, [o, m]) => Self::CapacityPriceTooHigh {
                offer: n(*o)?,
                max: Amount(*m),
            },
            (35, [o]) => Self::NoFreeSlots { offer: n(*o)? },
            _ => return None,
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidResources => f.write_str(
                "the resources are out of the market's bounds (`exo provider` checks them and says which)",
            ),
            Self::ProviderExists => {
                f.write_str("this account already registered a provider; use update instead")
            }
            Self::NotAProvider => f.write_str("this account has no provider"),
            Self::ProviderRetired => f.write_str("the provider is retired"),
            Self::BondTooLow { bond, min } => {
                write!(f, "bond {bond} is below the minimum {min}")
            }
            Self::ProviderBusy { active } => write!(
                f,
                "the provider still runs {active} assignments; retire once they end"
            ),
            Self::InvalidOffer { expiry: None } => f.write_str(
                "the offer is out of the market's bounds (slots, or the provider's resources)",
            ),
            Self::InvalidOffer {
                expiry: Some((expiry, now)),
            } => write!(
                f,
                "expiry {expiry} (seconds since the Unix epoch) is not after the block time, {now}"
            ),
            Self::TooManyOffers { held, max } => write!(
                f,
                "the provider already has {held} offers on the book (at most {max})"
            ),
            Self::BookFull { max } => write!(f, "the book holds its maximum of {max} offers"),
            Self::UnknownOffer { offer } => write!(f, "offer {offer} is not on the book"),
            Self::NotYourOffer { offer } => write!(f, "offer {offer} belongs to another account"),
            Self::InvalidJob(p) => match p {
                JobProblem::Units { units } => {
                    write!(f, "a job has 1 to {MAX_JOB_UNITS} units, not {units}")
                }
                JobProblem::Trust { trust } => {
                    write!(f, "trust must be 1 to {MAX_TRUST}, not {trust}")
                }
                JobProblem::UnitArgs { lines, units } => write!(
                    f,
                    "unit arguments list {lines} lines for {units} units"
                ),
                JobProblem::Requirements => f.write_str(
                    "the job's requirements are out of the market's bounds (`exo job submit` checks them and says which)",
                ),
                JobProblem::ZeroFuel => f.write_str("the fuel limit must be positive"),
                JobProblem::ZeroPrice => f.write_str("the maximum price must be positive"),
                JobProblem::InputNames => {
                    f.write_str("input names must be distinct plain file names")
                }
                JobProblem::UnitsOverWaitingBound { max } => write!(
                    f,
                    "a job has at most {max} units (its list of waiting units must fit one record); split it"
                ),
            },
            Self::UnknownApp => {
                f.write_str("the named developer published no app with this module")
            }
            Self::TooManyJobs { max } => {
                write!(f, "the chain already runs its maximum of {max} jobs")
            }
            Self::UnknownJob { job } => write!(f, "job {job} does not exist"),
            Self::NotYourJob { job } => write!(f, "job {job} belongs to another account"),
            Self::JobClosed { job } => write!(f, "job {job} is already closed"),
            Self::AppExists => {
                f.write_str("this account already published an app with this module")
            }
            Self::InvalidApp(p) => match p {
                AppProblem::Name => f.write_str(
                    "name and version must be 1 to 64 printable characters without spaces",
                ),
                AppProblem::Royalty { max } => {
                    write!(f, "royalty is over {max} per compute unit")
                }
                AppProblem::Full { max } => write!(f, "the chain holds its maximum of {max} apps"),
            },
            Self::UnknownReplica { job, unit, replica } => {
                write!(f, "job {job} unit {unit} has no replica {replica}")
            }
            Self::NotYourReplica { job, unit, replica } => write!(
                f,
                "replica {replica} of job {job} unit {unit} is assigned to another provider"
            ),
            Self::RevealNotOpen { job, unit, replica } => write!(
                f,
                "replica {replica} of job {job} unit {unit} cannot reveal now (reveals open once \
                 every replica committed)"
            ),
            Self::CommitmentMismatch { job, unit, replica } => write!(
                f,
                "the reveal for replica {replica} of job {job} unit {unit} does not open its \
                 commitment"
            ),
            Self::EscrowOverflow => f.write_str("the job's worst-case escrow overflows"),
            Self::TooManyOpenJobs { held, max } => write!(
                f,
                "this account already has {held} open jobs (at most {max}); wait for one to end or cancel one"
            ),
            Self::TooManyApps { held, max } => write!(
                f,
                "this account already published {held} apps (at most {max})"
            ),
            Self::OfferTooLong { expiry, max } => write!(
                f,
                "expiry {expiry} (seconds since the Unix epoch) is past the latest allowed, {max}; repost the offer before it expires"
            ),
            Self::TooManySlots { held, max } => write!(
                f,
                "the provider already holds {held} slots in running replicas and offers (at most {max}); offer fewer, or wait for replicas to end"
            ),
            Self::CapacityRoundNotOpen { round } => write!(
                f,
                "capacity round {round} is not open (it closed, or another round is the open one)"
            ),
            Self::OfferAfterCapacityRound { offer, round } => write!(
                f,
                "offer {offer} was posted after capacity round {round} opened; it can answer the next round"
            ),
            Self::CapacityAlreadyProven { offer, round } => write!(
                f,
                "offer {offer} already proved its capacity in round {round}"
            ),
            Self::InvalidCapacityProof { offer } => write!(
                f,
                "the nonces do not solve the round's challenge for offer {offer} and the slots named"
            ),
            Self::CapacityPriceTooHigh { offer, max } => write!(
                f,
                "offer {offer} asks more than {max} per compute unit, the most at which capacity earns rewards"
            ),
            Self::NoFreeSlots { offer } => write!(
                f,
                "offer {offer} has no free slot to prove (all sold, or its provider cannot be matched now)"
            ),
        }
    }
}
