//! Records kept in state, with their frozen encodings.

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, Read, ReadExt, Write};
use exo_types::{Address, Amount, Digest, read_bounded_string, write_bytes};
use std::fmt;

/// An account's balance and the nonce its next transaction must carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: Amount,
    pub nonce: u64,
}

impl Write for Account {
    fn write(&self, buf: &mut impl BufMut) {
        self.balance.write(buf);
        self.nonce.write(buf);
    }
}
impl EncodeSize for Account {
    fn encode_size(&self) -> usize {
        16 + 8
    }
}
impl Read for Account {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            balance: Amount::read(buf)?,
            nonce: u64::read(buf)?,
        })
    }
}

/// Chain-wide facts updated by every block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMeta {
    /// Height of the last executed block.
    pub height: u64,
    /// Transactions executed so far, accepted or rejected.
    pub tx_count: u64,
    /// Total supply; only explicit minting or burning may change it.
    pub supply: Amount,
    /// Consensus faults recorded so far.
    pub evidence_count: u64,
    /// Provider bond burnt by slashing so far (already taken out of `supply`).
    pub slashed: Amount,
}

impl Write for ChainMeta {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.tx_count.write(buf);
        self.supply.write(buf);
        self.evidence_count.write(buf);
        self.slashed.write(buf);
    }
}
impl EncodeSize for ChainMeta {
    fn encode_size(&self) -> usize {
        8 + 8 + 16 + 8 + 16
    }
}
impl Read for ChainMeta {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            height: u64::read(buf)?,
            tx_count: u64::read(buf)?,
            supply: Amount::read(buf)?,
            evidence_count: u64::read(buf)?,
            slashed: Amount::read(buf)?,
        })
    }
}

/// Why a transaction was rejected. Tags are frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    BadSignature,
    WrongChain {
        expected: String,
    },
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
    InsufficientFunds {
        needed: Amount,
        available: Amount,
    },
    Overflow,
    ZeroAmount,
    /// A compute-market action refused, with a sentence that says why.
    Refused {
        refusal: Refusal,
        detail: String,
    },
}

/// Why a compute-market action was refused. Codes are frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidResources = 1,
    ProviderExists = 2,
    NotAProvider = 3,
    ProviderRetired = 4,
    BondTooLow = 5,
    ProviderBusy = 6,
    InvalidOffer = 7,
    TooManyOffers = 8,
    BookFull = 9,
    UnknownOffer = 10,
    NotYourOffer = 11,
    InvalidJob = 12,
    UnknownApp = 13,
    TooManyJobs = 14,
    UnknownJob = 15,
    NotYourJob = 16,
    JobClosed = 17,
    AppExists = 18,
    InvalidApp = 19,
    UnknownReplica = 20,
    NotYourReplica = 21,
    CommitClosed = 22,
    RevealNotOpen = 23,
    CommitmentMismatch = 24,
}

impl Refusal {
    const ALL: [Self; 24] = [
        Self::InvalidResources,
        Self::ProviderExists,
        Self::NotAProvider,
        Self::ProviderRetired,
        Self::BondTooLow,
        Self::ProviderBusy,
        Self::InvalidOffer,
        Self::TooManyOffers,
        Self::BookFull,
        Self::UnknownOffer,
        Self::NotYourOffer,
        Self::InvalidJob,
        Self::UnknownApp,
        Self::TooManyJobs,
        Self::UnknownJob,
        Self::NotYourJob,
        Self::JobClosed,
        Self::AppExists,
        Self::InvalidApp,
        Self::UnknownReplica,
        Self::NotYourReplica,
        Self::CommitClosed,
        Self::RevealNotOpen,
        Self::CommitmentMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidResources => "invalid_resources",
            Self::ProviderExists => "provider_exists",
            Self::NotAProvider => "not_a_provider",
            Self::ProviderRetired => "provider_retired",
            Self::BondTooLow => "bond_too_low",
            Self::ProviderBusy => "provider_busy",
            Self::InvalidOffer => "invalid_offer",
            Self::TooManyOffers => "too_many_offers",
            Self::BookFull => "book_full",
            Self::UnknownOffer => "unknown_offer",
            Self::NotYourOffer => "not_your_offer",
            Self::InvalidJob => "invalid_job",
            Self::UnknownApp => "unknown_app",
            Self::TooManyJobs => "too_many_jobs",
            Self::UnknownJob => "unknown_job",
            Self::NotYourJob => "not_your_job",
            Self::JobClosed => "job_closed",
            Self::AppExists => "app_exists",
            Self::InvalidApp => "invalid_app",
            Self::UnknownReplica => "unknown_replica",
            Self::NotYourReplica => "not_your_replica",
            Self::CommitClosed => "commit_closed",
            Self::RevealNotOpen => "reveal_not_open",
            Self::CommitmentMismatch => "commitment_mismatch",
        }
    }

    fn from_u16(code: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u16 == code)
    }

    /// The rejection with its explanation.
    pub fn because(self, detail: impl Into<String>) -> Rejection {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_LEN {
            let mut cut = MAX_DETAIL_LEN;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        Rejection::Refused {
            refusal: self,
            detail,
        }
    }
}

/// Longest explanation kept in a receipt.
pub const MAX_DETAIL_LEN: usize = 256;

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignature => write!(f, "bad signature"),
            Self::WrongChain { expected } => write!(f, "wrong chain (this is {expected})"),
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
            Self::FeeTooLow { min, got } => {
                write!(f, "fee {got} is below the minimum {min}")
            }
            Self::InsufficientFunds { needed, available } => {
                write!(f, "insufficient funds: needs {needed}, has {available}")
            }
            Self::Overflow => write!(f, "amount overflow"),
            Self::ZeroAmount => write!(f, "amount must be greater than zero"),
            Self::Refused { detail, .. } => write!(f, "{detail}"),
        }
    }
}

impl Rejection {
    /// A stable machine-readable code for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::WrongChain { .. } => "wrong_chain",
            Self::Oversize { .. } => "oversize",
            Self::ReplayedNonce { .. } => "replayed_nonce",
            Self::GappedNonce { .. } => "gapped_nonce",
            Self::FeeTooLow { .. } => "fee_too_low",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::Overflow => "overflow",
            Self::ZeroAmount => "zero_amount",
            Self::Refused { refusal, .. } => refusal.code(),
        }
    }
}

impl Write for Rejection {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::BadSignature => 0u8.write(buf),
            Self::WrongChain { expected } => {
                1u8.write(buf);
                write_bytes(expected.as_bytes(), buf);
            }
            Self::Oversize { size, max } => {
                2u8.write(buf);
                size.write(buf);
                max.write(buf);
            }
            Self::ReplayedNonce { expected, got } => {
                3u8.write(buf);
                expected.write(buf);
                got.write(buf);
            }
            Self::GappedNonce { expected, got } => {
                4u8.write(buf);
                expected.write(buf);
                got.write(buf);
            }
            Self::FeeTooLow { min, got } => {
                5u8.write(buf);
                min.write(buf);
                got.write(buf);
            }
            Self::InsufficientFunds { needed, available } => {
                6u8.write(buf);
                needed.write(buf);
                available.write(buf);
            }
            Self::Overflow => 7u8.write(buf),
            Self::ZeroAmount => 8u8.write(buf),
            Self::Refused { refusal, detail } => {
                9u8.write(buf);
                (*refusal as u16).write(buf);
                write_bytes(detail.as_bytes(), buf);
            }
        }
    }
}
impl EncodeSize for Rejection {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::BadSignature | Self::Overflow | Self::ZeroAmount => 0,
            Self::WrongChain { expected } => exo_types::bytes_encode_size(expected.as_bytes()),
            Self::Oversize { .. } => 8,
            Self::ReplayedNonce { .. } | Self::GappedNonce { .. } => 16,
            Self::FeeTooLow { .. } | Self::InsufficientFunds { .. } => 32,
            Self::Refused { detail, .. } => 2 + exo_types::bytes_encode_size(detail.as_bytes()),
        }
    }
}
impl Read for Rejection {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(match u8::read(buf)? {
            0 => Self::BadSignature,
            1 => Self::WrongChain {
                expected: read_bounded_string(buf, exo_types::MAX_CHAIN_ID_LEN)?,
            },
            2 => Self::Oversize {
                size: u32::read(buf)?,
                max: u32::read(buf)?,
            },
            3 => Self::ReplayedNonce {
                expected: u64::read(buf)?,
                got: u64::read(buf)?,
            },
            4 => Self::GappedNonce {
                expected: u64::read(buf)?,
                got: u64::read(buf)?,
            },
            5 => Self::FeeTooLow {
                min: Amount::read(buf)?,
                got: Amount::read(buf)?,
            },
            6 => Self::InsufficientFunds {
                needed: Amount::read(buf)?,
                available: Amount::read(buf)?,
            },
            7 => Self::Overflow,
            8 => Self::ZeroAmount,
            9 => Self::Refused {
                refusal: Refusal::from_u16(u16::read(buf)?)
                    .ok_or(Error::Invalid("Refusal", "unknown code"))?,
                detail: read_bounded_string(buf, MAX_DETAIL_LEN)?,
            },
            tag => return Err(Error::InvalidEnum(tag)),
        })
    }
}

/// The outcome of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Ok,
    Rejected(Rejection),
}

impl Write for TxStatus {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Ok => 0u8.write(buf),
            Self::Rejected(r) => {
                1u8.write(buf);
                r.write(buf);
            }
        }
    }
}
impl EncodeSize for TxStatus {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::Ok => 0,
            Self::Rejected(r) => r.encode_size(),
        }
    }
}
impl Read for TxStatus {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        match u8::read(buf)? {
            0 => Ok(Self::Ok),
            1 => Ok(Self::Rejected(Rejection::read(buf)?)),
            tag => Err(Error::InvalidEnum(tag)),
        }
    }
}

/// What happened to a transaction in a finalized block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub height: u64,
    pub index: u32,
    pub status: TxStatus,
    /// The fee actually charged: zero when the transaction was rejected before payment
    /// (bad signature, wrong chain, bad nonce, fee too low, cannot pay the fee).
    pub fee_paid: Amount,
}

impl Write for Receipt {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.index.write(buf);
        self.status.write(buf);
        self.fee_paid.write(buf);
    }
}
impl EncodeSize for Receipt {
    fn encode_size(&self) -> usize {
        8 + 4 + self.status.encode_size() + 16
    }
}
impl Read for Receipt {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            height: u64::read(buf)?,
            index: u32::read(buf)?,
            status: TxStatus::read(buf)?,
            fee_paid: Amount::read(buf)?,
        })
    }
}

/// The kind of consensus fault a validator was caught in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    ConflictingNotarize = 0,
    ConflictingFinalize = 1,
    NullifyFinalize = 2,
}

impl EvidenceKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::ConflictingNotarize => "conflicting_notarize",
            Self::ConflictingFinalize => "conflicting_finalize",
            Self::NullifyFinalize => "nullify_finalize",
        }
    }
}

/// A proven consensus fault, recorded for slashing. The chain verifies the signed votes before
/// a block may carry the evidence; the ledger records who, when and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub offender: Address,
    pub epoch: u64,
    pub view: u64,
    pub kind: EvidenceKind,
    /// Hash of the signed votes that prove the fault.
    pub proof_hash: Digest,
}

impl Write for Evidence {
    fn write(&self, buf: &mut impl BufMut) {
        self.offender.write(buf);
        self.epoch.write(buf);
        self.view.write(buf);
        (self.kind as u8).write(buf);
        self.proof_hash.write(buf);
    }
}
impl EncodeSize for Evidence {
    fn encode_size(&self) -> usize {
        self.offender.encode_size() + 8 + 8 + 1 + self.proof_hash.encode_size()
    }
}
impl Read for Evidence {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            offender: Address::read(buf)?,
            epoch: u64::read(buf)?,
            view: u64::read(buf)?,
            kind: match u8::read(buf)? {
                0 => EvidenceKind::ConflictingNotarize,
                1 => EvidenceKind::ConflictingFinalize,
                2 => EvidenceKind::NullifyFinalize,
                tag => return Err(Error::InvalidEnum(tag)),
            },
            proof_hash: Digest::read(buf)?,
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
                    TxStatus::Rejected(
                        Rejection::GappedNonce { .. } | Rejection::InsufficientFunds { .. },
                    ),
                fee_paid,
                ..
            }) if fee_paid.0 == 0 => Self::LeaveOut,
            Some(Receipt {
                status: TxStatus::Rejected(_),
                fee_paid,
                ..
            }) if fee_paid.0 == 0 => Self::Drop,
            Some(_) => Self::Include,
        }
    }
}
