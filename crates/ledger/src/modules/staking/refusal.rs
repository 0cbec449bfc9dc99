//! Why staking refused an action: a frozen code and its numbers. The sentences are rendered
//! here, outside consensus.

use crate::exec::Coded;
use exo_types::Amount;
use std::fmt;

/// A refused staking action. Codes are frozen: a new refusal takes the next free code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The sender is already a validator.
    AlreadyValidator,
    /// The sender nominates; it must unbond its nomination before it registers.
    IsNominator,
    /// Another validator registered this consensus key.
    ConsensusKeyTaken,
    SelfBondTooLow {
        bond: Amount,
        min: Amount,
    },
    CommissionTooHigh {
        bps: u32,
        max: u32,
    },
    /// The p2p address is empty or not printable ASCII.
    BadP2pAddress,
    TooManyValidators {
        max: u32,
    },
    NotAValidator,
    /// A validator cannot nominate.
    IsValidator,
    TooManyTargets {
        targets: u32,
        max: u32,
    },
    /// Target `index` of the nomination is not a validator.
    UnknownTarget {
        index: u32,
    },
    DuplicateTarget {
        index: u32,
    },
    NominationTooLow {
        bond: Amount,
        min: Amount,
    },
    TooManyNominators {
        max: u32,
    },
    /// Target `index` already has the most nominators a validator may have.
    ValidatorFull {
        index: u32,
        max: u32,
    },
    ZeroAmount,
    UnbondTooMuch {
        amount: Amount,
        active: Amount,
    },
    TooManyUnbondingChunks {
        max: u32,
    },
    /// Nothing is released yet; the next chunk is released at block time `next_release`, in
    /// seconds since the Unix epoch (0: none).
    NothingToWithdraw {
        next_release: u64,
    },
    AlreadyChilled,
    Jailed {
        until: u64,
    },
    /// `Unjail` of a validator that stands already.
    AlreadyActive,
    /// A standing validator must chill before it unbonds its whole self-bond.
    MustChillFirst,
}

fn narrow<T: TryFrom<u128>>(v: u128) -> Option<T> {
    T::try_from(v).ok()
}

impl Coded for Refusal {
    fn code(&self) -> u16 {
        match self {
            Self::AlreadyValidator => 1,
            Self::IsNominator => 2,
            Self::ConsensusKeyTaken => 3,
            Self::SelfBondTooLow { .. } => 4,
            Self::CommissionTooHigh { .. } => 5,
            Self::BadP2pAddress => 6,
            Self::TooManyValidators { .. } => 7,
            Self::NotAValidator => 8,
            Self::IsValidator => 9,
            Self::TooManyTargets { .. } => 10,
            Self::UnknownTarget { .. } => 11,
            Self::DuplicateTarget { .. } => 12,
            Self::NominationTooLow { .. } => 13,
            Self::TooManyNominators { .. } => 14,
            Self::ValidatorFull { .. } => 15,
            Self::ZeroAmount => 16,
            Self::UnbondTooMuch { .. } => 17,
            Self::TooManyUnbondingChunks { .. } => 18,
            Self::NothingToWithdraw { .. } => 19,
            Self::AlreadyChilled => 20,
            Self::Jailed { .. } => 21,
            Self::AlreadyActive => 22,
            Self::MustChillFirst => 23,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::AlreadyValidator => "already_validator",
            Self::IsNominator => "is_nominator",
            Self::ConsensusKeyTaken => "consensus_key_taken",
            Self::SelfBondTooLow { .. } => "self_bond_too_low",
            Self::CommissionTooHigh { .. } => "commission_too_high",
            Self::BadP2pAddress => "bad_p2p_address",
            Self::TooManyValidators { .. } => "too_many_validators",
            Self::NotAValidator => "not_a_validator",
            Self::IsValidator => "is_validator",
            Self::TooManyTargets { .. } => "too_many_targets",
            Self::UnknownTarget { .. } => "unknown_target",
            Self::DuplicateTarget { .. } => "duplicate_target",
            Self::NominationTooLow { .. } => "nomination_too_low",
            Self::TooManyNominators { .. } => "too_many_nominators",
            Self::ValidatorFull { .. } => "validator_full",
            Self::ZeroAmount => "zero_amount",
            Self::UnbondTooMuch { .. } => "unbond_too_much",
            Self::TooManyUnbondingChunks { .. } => "too_many_unbonding_chunks",
            Self::NothingToWithdraw { .. } => "nothing_to_withdraw",
            Self::AlreadyChilled => "already_chilled",
            Self::Jailed { .. } => "jailed",
            Self::AlreadyActive => "already_active",
            Self::MustChillFirst => "must_chill_first",
        }
    }
    fn fields(&self) -> Vec<u128> {
        match self {
            Self::AlreadyValidator
            | Self::IsNominator
            | Self::ConsensusKeyTaken
            | Self::BadP2pAddress
            | Self::NotAValidator
            | Self::IsValidator
            | Self::ZeroAmount
            | Self::AlreadyChilled
            | Self::AlreadyActive
            | Self::MustChillFirst => vec![],
            Self::SelfBondTooLow { bond, min } | Self::NominationTooLow { bond, min } => {
                vec![bond.0, min.0]
            }
            Self::CommissionTooHigh { bps, max } => vec![(*bps).into(), (*max).into()],
            Self::TooManyValidators { max }
            | Self::TooManyNominators { max }
            | Self::TooManyUnbondingChunks { max } => vec![(*max).into()],
            Self::TooManyTargets { targets, max } => vec![(*targets).into(), (*max).into()],
            Self::UnknownTarget { index } | Self::DuplicateTarget { index } => {
                vec![(*index).into()]
            }
            Self::ValidatorFull { index, max } => vec![(*index).into(), (*max).into()],
            Self::UnbondTooMuch { amount, active } => vec![amount.0, active.0],
            Self::NothingToWithdraw { next_release } => vec![(*next_release).into()],
            Self::Jailed { until } => vec![(*until).into()],
        }
    }
    fn from_fields(code: u16, f: &[u128]) -> Option<Self> {
        Some(match (code, f) {
            (1, []) => Self::AlreadyValidator,
            (2, []) => Self::IsNominator,
            (3, []) => Self::ConsensusKeyTaken,
            (4, [b, m]) => Self::SelfBondTooLow {
                bond: Amount(*b),
                min: Amount(*m),
            },
            (5, [b, m]) => Self::CommissionTooHigh {
                bps: narrow(*b)?,
                max: narrow(*m)?,
            },
            (6, []) => Self::BadP2pAddress,
            (7, [m]) => Self::TooManyValidators { max: narrow(*m)? },
            (8, []) => Self::NotAValidator,
            (9, []) => Self::IsValidator,
            (10, [t, m]) => Self::TooManyTargets {
                targets: narrow(*t)?,
                max: narrow(*m)?,
            },
            (11, [i]) => Self::UnknownTarget { index: narrow(*i)? },
            (12, [i]) => Self::DuplicateTarget { index: narrow(*i)? },
            (13, [b, m]) => Self::NominationTooLow {
                bond: Amount(*b),
                min: Amount(*m),
            },
            (14, [m]) => Self::TooManyNominators { max: narrow(*m)? },
            (15, [i, m]) => Self::ValidatorFull {
                index: narrow(*i)?,
                max: narrow(*m)?,
            },
            (16, []) => Self::ZeroAmount,
            (17, [a, b]) => Self::UnbondTooMuch {
                amount: Amount(*a),
                active: Amount(*b),
            },
            (18, [m]) => Self::TooManyUnbondingChunks { max: narrow(*m)? },
            (19, [h]) => Self::NothingToWithdraw {
                next_release: narrow(*h)?,
            },
            (20, []) => Self::AlreadyChilled,
            (21, [h]) => Self::Jailed { until: narrow(*h)? },
            (22, []) => Self::AlreadyActive,
            (23, []) => Self::MustChillFirst,
            _ => return None,
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyValidator => write!(f, "the sender is already a validator"),
            Self::IsNominator => write!(f, "the sender nominates: unbond the nomination first"),
            Self::ConsensusKeyTaken => write!(f, "another validator registered this consensus key"),
            Self::SelfBondTooLow { bond, min } => {
                write!(f, "self-bond {bond} is below the minimum {min}")
            }
            Self::CommissionTooHigh { bps, max } => {
                write!(f, "commission of {bps} bps is over {max} bps")
            }
            Self::BadP2pAddress => write!(f, "the p2p address must be printable ASCII, not empty"),
            Self::TooManyValidators { max } => write!(f, "the chain has its {max} validators"),
            Self::NotAValidator => write!(f, "the sender is not a validator"),
            Self::IsValidator => write!(f, "a validator cannot nominate"),
            Self::TooManyTargets { targets, max } => {
                write!(f, "{targets} targets, at most {max} allowed")
            }
            Self::UnknownTarget { index } => write!(f, "target {index} is not a validator"),
            Self::DuplicateTarget { index } => write!(f, "target {index} is named twice"),
            Self::NominationTooLow { bond, min } => {
                write!(f, "nomination bond {bond} is below the minimum {min}")
            }
            Self::TooManyNominators { max } => write!(f, "the chain has its {max} nominators"),
            Self::ValidatorFull { index, max } => {
                write!(f, "target {index} already has {max} nominators")
            }
            Self::ZeroAmount => write!(f, "amount must be greater than zero"),
            Self::UnbondTooMuch { amount, active } => {
                write!(f, "cannot unbond {amount}: the active bond is {active}")
            }
            Self::TooManyUnbondingChunks { max } => {
                write!(f, "{max} unbonding chunks already: withdraw or wait")
            }
            Self::NothingToWithdraw { next_release: 0 } => write!(f, "nothing is unbonding"),
            Self::NothingToWithdraw { next_release } => {
                write!(
                    f,
                    "nothing released yet; the next chunk at {next_release} (seconds since the Unix epoch)"
                )
            }
            Self::AlreadyChilled => write!(f, "the validator is already chilled"),
            Self::Jailed { until } => write!(f, "the validator is jailed until height {until}"),
            Self::AlreadyActive => write!(f, "the validator already stands for election"),
            Self::MustChillFirst => {
                write!(
                    f,
                    "a standing validator must chill before unbonding its whole self-bond"
                )
            }
        }
    }
}
