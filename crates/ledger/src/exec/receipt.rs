//! Receipts: what happened to a transaction, as codes and numbers.
//!
//! A receipt says which module refused the transaction, with the module's frozen code and its
//! numbers, and which ids the transaction created. Sentences are rendered from those by
//! [`std::fmt::Display`], outside consensus: rewording one never changes a state root.

use crate::{
    modules::{bank, market, staking},
    state::Record,
};
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::Amount;
use std::fmt;

/// A refusal with a frozen code and its numbers, so that a receipt stores no prose.
pub trait Coded: Sized {
    /// Frozen within its module.
    fn code(&self) -> u16;
    /// A stable name for APIs and scripts.
    fn name(&self) -> &'static str;
    /// The numbers the sentence is made of, in a frozen order per code.
    fn fields(&self) -> Vec<u128>;
    /// The refusal of `code` with `fields`, if the pair is well formed.
    fn from_fields(code: u16, fields: &[u128]) -> Option<Self>;
}

/// Which module answered. Frozen; the same byte as the module's state namespace and action
/// encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ModuleId {
    Exec = 0,
    Bank = 1,
    Evidence = 2,
    Market = 3,
    Staking = 4,
}

impl ModuleId {
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Bank => "bank",
            Self::Evidence => "evidence",
            Self::Market => "market",
            Self::Staking => "staking",
        }
    }
}

/// Why the block runner refused a transaction before its action ran (the prechecks), or why
/// a step of it broke a bound. Codes are frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precheck {
    BadSignature,
    WrongChain,
    Oversize {
        size: u32,
        max: u32,
    },
    ReplayedNonce {
        expected: u64,
        got: u64,
    },
    GappedNonce {
        expected: u64,
        got: u64,
    },
    FeeTooLow {
        min: Amount,
        got: Amount,
    },
    /// The sender cannot pay the fee.
    InsufficientFunds {
        needed: Amount,
        available: Amount,
    },
    /// The action would have written a record over its bound; nothing of it was kept.
    RecordTooLarge {
        size: u64,
        max: u64,
    },
}

fn amount(v: u128) -> Amount {
    Amount(v)
}

fn narrow<T: TryFrom<u128>>(v: u128) -> Option<T> {
    T::try_from(v).ok()
}

impl Coded for Precheck {
    fn code(&self) -> u16 {
        match self {
            Self::BadSignature => 1,
            Self::WrongChain => 2,
            Self::Oversize { .. } => 3,
            Self::ReplayedNonce { .. } => 4,
            Self::GappedNonce { .. } => 5,
            Self::FeeTooLow { .. } => 6,
            Self::InsufficientFunds { .. } => 7,
            Self::RecordTooLarge { .. } => 8,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::WrongChain => "wrong_chain",
            Self::Oversize { .. } => "oversize",
            Self::ReplayedNonce { .. } => "replayed_nonce",
            Self::GappedNonce { .. } => "gapped_nonce",
            Self::FeeTooLow { .. } => "fee_too_low",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::RecordTooLarge { .. } => "record_too_large",
        }
    }
    fn fields(&self) -> Vec<u128> {
        match self {
            Self::BadSignature | Self::WrongChain => vec![],
            Self::Oversize { size, max } => vec![(*size).into(), (*max).into()],
            Self::ReplayedNonce { expected, got } | Self::GappedNonce { expected, got } => {
                vec![(*expected).into(), (*got).into()]
            }
            Self::FeeTooLow { min, got } => vec![min.0, got.0],
            Self::InsufficientFunds { needed, available } => vec![needed.0, available.0],
            Self::RecordTooLarge { size, max } => vec![(*size).into(), (*max).into()],
        }
    }
    fn from_fields(code: u16, f: &[u128]) -> Option<Self> {
        Some(match (code, f) {
            (1, []) => Self::BadSignature,
            (2, []) => Self::WrongChain,
            (3, [s, m]) => Self::Oversize {
                size: narrow(*s)?,
                max: narrow(*m)?,
            },
            (4, [e, g]) => Self::ReplayedNonce {
                expected: narrow(*e)?,
                got: narrow(*g)?,
            },
            (5, [e, g]) => Self::GappedNonce {
                expected: narrow(*e)?,
                got: narrow(*g)?,
            },
            (6, [m, g]) => Self::FeeTooLow {
                min: amount(*m),
                got: amount(*g),
            },
            (7, [n, a]) => Self::InsufficientFunds {
                needed: amount(*n),
                available: amount(*a),
            },
            (8, [s, m]) => Self::RecordTooLarge {
                size: narrow(*s)?,
                max: narrow(*m)?,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for Precheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignature => write!(f, "bad signature"),
            Self::WrongChain => write!(f, "signed for another chain"),
            Self::Oversize { size, max } => {
                write!(
                    f,
                    "transaction of {size} bytes is over the {max}-byte limit"
                )
            }
            Self::ReplayedNonce { expected, got } => {
                write!(f, "nonce {got} already used (next is {expected})")
            }
            Self::GappedNonce { expected, got } => {
                write!(f, "nonce {got} leaves a gap (next is {expected})")
            }
            Self::FeeTooLow { min, got } => write!(f, "fee {got} is below the minimum {min}"),
            Self::InsufficientFunds { needed, available } => {
                write!(f, "insufficient funds: needs {needed}, has {available}")
            }
            Self::RecordTooLarge { size, max } => write!(
                f,
                "the action would write a record of {size} bytes, over its bound of {max}"
            ),
        }
    }
}

impl Coded for bank::Refusal {
    fn code(&self) -> u16 {
        match self {
            Self::ZeroAmount => 1,
            Self::InsufficientFunds { .. } => 2,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::ZeroAmount => "zero_amount",
            Self::InsufficientFunds { .. } => "insufficient_funds",
        }
    }
    fn fields(&self) -> Vec<u128> {
        match self {
            Self::ZeroAmount => vec![],
            Self::InsufficientFunds { needed, available } => vec![needed.0, available.0],
        }
    }
    fn from_fields(code: u16, f: &[u128]) -> Option<Self> {
        Some(match (code, f) {
            (1, []) => Self::ZeroAmount,
            (2, [n, a]) => Self::InsufficientFunds {
                needed: amount(*n),
                available: amount(*a),
            },
            _ => return None,
        })
    }
}

impl fmt::Display for bank::Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroAmount => write!(f, "amount must be greater than zero"),
            Self::InsufficientFunds { needed, available } => {
                write!(f, "insufficient funds: needs {needed}, has {available}")
            }
        }
    }
}

/// Why a transaction was rejected: the module that said no, and its refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    Exec(Precheck),
    Bank(bank::Refusal),
    Market(market::Refusal),
    Staking(staking::Refusal),
}

impl Rejection {
    pub fn module(&self) -> ModuleId {
        match self {
            Self::Exec(_) => ModuleId::Exec,
            Self::Bank(_) => ModuleId::Bank,
            Self::Market(_) => ModuleId::Market,
            Self::Staking(_) => ModuleId::Staking,
        }
    }

    /// A stable machine-readable name for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Exec(r) => r.name(),
            Self::Bank(r) => r.name(),
            Self::Market(r) => r.name(),
            Self::Staking(r) => r.name(),
        }
    }

    /// The module's frozen numeric code.
    pub fn number(&self) -> u16 {
        match self {
            Self::Exec(r) => r.code(),
            Self::Bank(r) => r.code(),
            Self::Market(r) => r.code(),
            Self::Staking(r) => r.code(),
        }
    }

    /// The numbers of the refusal, in its code's order.
    pub fn fields(&self) -> Vec<u128> {
        match self {
            Self::Exec(r) => r.fields(),
            Self::Bank(r) => r.fields(),
            Self::Market(r) => r.fields(),
            Self::Staking(r) => r.fields(),
        }
    }
}

impl From<Precheck> for Rejection {
    fn from(r: Precheck) -> Self {
        Self::Exec(r)
    }
}
impl From<bank::Refusal> for Rejection {
    fn from(r: bank::Refusal) -> Self {
        Self::Bank(r)
    }
}
impl From<market::Refusal> for Rejection {
    fn from(r: market::Refusal) -> Self {
        Self::Market(r)
    }
}
impl From<staking::Refusal> for Rejection {
    fn from(r: staking::Refusal) -> Self {
        Self::Staking(r)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exec(r) => r.fmt(f),
            Self::Bank(r) => r.fmt(f),
            Self::Market(r) => r.fmt(f),
            Self::Staking(r) => r.fmt(f),
        }
    }
}

/// Most numbers a refusal carries.
const MAX_FIELDS: usize = 8;

fn put_rejection(r: &Rejection, out: &mut Vec<u8>) {
    (r.module() as u8).write(out);
    r.number().write(out);
    let fields = r.fields();
    (fields.len() as u8).write(out);
    for v in fields {
        v.write(out);
    }
}

fn take_rejection(buf: &mut Copying<'_>) -> Result<Rejection, Error> {
    let module = u8::read(buf)?;
    let code = u16::read(buf)?;
    let n = usize::from(u8::read(buf)?);
    if n > MAX_FIELDS {
        return Err(Error::Invalid("Rejection", "too many fields"));
    }
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(u128::read(buf)?);
    }
    let bad = Error::Invalid("Rejection", "unknown code or fields");
    Ok(match module {
        0 => Rejection::Exec(Precheck::from_fields(code, &fields).ok_or(bad)?),
        1 => Rejection::Bank(bank::Refusal::from_fields(code, &fields).ok_or(bad)?),
        3 => Rejection::Market(market::Refusal::from_fields(code, &fields).ok_or(bad)?),
        4 => Rejection::Staking(staking::Refusal::from_fields(code, &fields).ok_or(bad)?),
        other => return Err(Error::InvalidEnum(other)),
    })
}

/// The outcome of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Ok,
    Rejected(Rejection),
}

/// An id a transaction created, so that its sender need not guess it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    Provider(u64),
    Offer(u64),
    Job(u64),
}

impl Created {
    fn kind(self) -> (u8, u64) {
        match self {
            Self::Provider(id) => (0, id),
            Self::Offer(id) => (1, id),
            Self::Job(id) => (2, id),
        }
    }
}

/// Most ids one transaction creates.
pub const MAX_CREATED: usize = 4;

/// What happened to a transaction in a finalized block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub height: u64,
    pub index: u32,
    pub status: TxStatus,
    /// The fee actually charged: zero when the transaction was rejected before payment
    /// (bad signature, wrong chain, bad nonce, fee too low, cannot pay the fee).
    pub fee_paid: Amount,
    /// The ids the transaction created, in the order it created them.
    pub created: Vec<Created>,
}

impl Receipt {
    /// The job a `SubmitJob` created.
    pub fn job_id(&self) -> Option<u64> {
        self.created.iter().find_map(|c| match c {
            Created::Job(id) => Some(*id),
            _ => None,
        })
    }
}

impl Record for Receipt {
    const WHAT: &'static str = "receipt";
    // height, index, status tag, module, code, field count, fields, fee, created count, ids.
    const MAX_BYTES: usize = 8 + 4 + 1 + 1 + 2 + 1 + 16 * MAX_FIELDS + 16 + 1 + 9 * MAX_CREATED;
    fn put(&self, out: &mut Vec<u8>) {
        self.height.write(out);
        self.index.write(out);
        match &self.status {
            TxStatus::Ok => 0u8.write(out),
            TxStatus::Rejected(r) => {
                1u8.write(out);
                put_rejection(r, out);
            }
        }
        self.fee_paid.write(out);
        (self.created.len() as u8).write(out);
        for c in &self.created {
            let (kind, id) = c.kind();
            kind.write(out);
            id.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        let height = u64::read(buf)?;
        let index = u32::read(buf)?;
        let status = match u8::read(buf)? {
            0 => TxStatus::Ok,
            1 => TxStatus::Rejected(take_rejection(buf)?),
            tag => return Err(Error::InvalidEnum(tag)),
        };
        let fee_paid = Amount::read(buf)?;
        let n = usize::from(u8::read(buf)?);
        if n > MAX_CREATED {
            return Err(Error::Invalid("Receipt", "too many created ids"));
        }
        let mut created = Vec::new();
        for _ in 0..n {
            let kind = u8::read(buf)?;
            let id = u64::read(buf)?;
            created.push(match kind {
                0 => Created::Provider(id),
                1 => Created::Offer(id),
                2 => Created::Job(id),
                tag => return Err(Error::InvalidEnum(tag)),
            });
        }
        Ok(Self {
            height,
            index,
            status,
            fee_paid,
            created,
        })
    }
}

/// What a block builder does with a transaction it has just executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inclusion {
    /// It paid its fee: it goes into the block, accepted or rejected.
    Include,
    /// It would be rejected before paying (a nonce gap, a balance short of the fee) but may
    /// succeed later: leave it out and keep it pending.
    LeaveOut,
    /// It can never execute (a duplicate, a used nonce, a bad signature, another chain):
    /// leave it out and forget it.
    Drop,
}

impl Inclusion {
    /// The builder's decision for a transaction whose execution gave `receipt` (`None` for a
    /// duplicate).
    pub fn of(receipt: &Option<Receipt>) -> Self {
        match receipt {
            None => Self::Drop,
            Some(Receipt {
                status:
                    TxStatus::Rejected(Rejection::Exec(
                        Precheck::GappedNonce { .. } | Precheck::InsufficientFunds { .. },
                    )),
                ..
            }) => Self::LeaveOut,
            Some(Receipt {
                status: TxStatus::Rejected(Rejection::Exec(_)),
                fee_paid,
                ..
            }) if fee_paid.0 == 0 => Self::Drop,
            Some(_) => Self::Include,
        }
    }
}
