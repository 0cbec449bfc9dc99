//! Consensus evidence: the faults of validators, recorded once each for slashing, and the
//! committee written at genesis.
//!
//! The chain verifies the signed votes before a block may carry a fault; this module records
//! who, when and what. It must never verify signatures itself: that needs the committee's
//! keys, which the chain holds.

use crate::state::{Halt, Key, Namespace, Record, StateCache, keys, load, store};
use commonware_codec::{Copying, EncodeSize, Error, Read, ReadExt, Write};
use exo_types::{Address, Digest};

/// The evidence module's tables. Frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// A recorded fault by the hash of its record.
    Fault = 0,
    /// A committee member by public key.
    Validator = 1,
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

/// A proven consensus fault. The chain verifies the signed votes before a block may carry it.
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
    fn write(&self, buf: &mut impl bytes::BufMut) {
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
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, Error> {
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

/// A fault as stored: the evidence and the height that recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub evidence: Evidence,
    pub height: u64,
}

impl Record for Recorded {
    const WHAT: &'static str = "evidence";
    const MAX_BYTES: usize = 32 + 8 + 8 + 1 + 32 + 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.evidence.write(out);
        self.height.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            evidence: Evidence::read(buf)?,
            height: u64::read(buf)?,
        })
    }
}

/// A committee member's record (present while it is a member).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member;

impl Record for Member {
    const WHAT: &'static str = "validator";
    const MAX_BYTES: usize = 1;
    fn put(&self, out: &mut Vec<u8>) {
        1u8.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        match u8::read(buf)? {
            1 => Ok(Self),
            tag => Err(Error::InvalidEnum(tag)),
        }
    }
}

pub fn fault_key(evidence: &Evidence) -> Key {
    let hash = exo_types::hash_bytes(&commonware_codec::Encode::encode(evidence));
    keys::key(Namespace::Evidence, Table::Fault as u8, hash.as_ref())
}

pub fn validator_key(validator: &Address) -> Key {
    keys::key(
        Namespace::Evidence,
        Table::Validator as u8,
        validator.as_ref(),
    )
}

/// Writes the first committee.
pub fn genesis(cache: &mut StateCache, validators: &[Address]) -> Result<(), Halt> {
    for validator in validators {
        store(cache, validator_key(validator), &Member)?;
    }
    Ok(())
}

/// Records a verified fault once; returns whether it was new.
pub fn record(cache: &mut StateCache, evidence: &Evidence, height: u64) -> Result<bool, Halt> {
    let key = fault_key(evidence);
    if load::<Recorded>(cache, &key)?.is_some() {
        return Ok(false);
    }
    store(
        cache,
        key,
        &Recorded {
            evidence: evidence.clone(),
            height,
        },
    )?;
    Ok(true)
}
