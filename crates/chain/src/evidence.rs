//! Consensus faults as evidence: signed conflicting votes that anyone can check.

use bytes::BufMut;
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::types::Epoch;
use commonware_consensus::{
    Epochable, Viewable,
    simplex::{
        scheme::ed25519::Scheme,
        types::{
            Activity, Attributable, ConflictingFinalize, ConflictingNotarize, NullifyFinalize,
        },
    },
};
use commonware_cryptography::{ed25519, sha256};
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use exo_ledger::{Evidence, EvidenceKind};

/// A proof that one validator signed two votes it must never sign together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceProof {
    ConflictingNotarize(ConflictingNotarize<Scheme, sha256::Digest>),
    ConflictingFinalize(ConflictingFinalize<Scheme, sha256::Digest>),
    NullifyFinalize(NullifyFinalize<Scheme, sha256::Digest>),
}

impl EvidenceProof {
    /// Extracts a proof from consensus activity, if the activity is a fault.
    pub fn from_activity(activity: &Activity<Scheme, sha256::Digest>) -> Option<Self> {
        match activity {
            Activity::ConflictingNotarize(p) => Some(Self::ConflictingNotarize(p.clone())),
            Activity::ConflictingFinalize(p) => Some(Self::ConflictingFinalize(p.clone())),
            Activity::NullifyFinalize(p) => Some(Self::NullifyFinalize(p.clone())),
            _ => None,
        }
    }

    /// The epoch of the conflicting votes, whose committee must have signed them.
    pub fn epoch(&self) -> Epoch {
        match self {
            Self::ConflictingNotarize(p) => p.epoch(),
            Self::ConflictingFinalize(p) => p.epoch(),
            Self::NullifyFinalize(p) => p.epoch(),
        }
    }

    /// Checks the signatures against the committee and names the offender.
    ///
    /// Returns `None` when the proof does not hold: such a block is invalid.
    pub fn verify(
        &self,
        rng: &mut impl rand::CryptoRng,
        verifier: &Scheme,
        committee: &Set<ed25519::PublicKey>,
    ) -> Option<Evidence> {
        let (valid, signer, epoch, view, kind) = match self {
            Self::ConflictingNotarize(p) => (
                p.verify(rng, verifier, &Sequential),
                p.signer(),
                p.epoch(),
                p.view(),
                EvidenceKind::ConflictingNotarize,
            ),
            Self::ConflictingFinalize(p) => (
                p.verify(rng, verifier, &Sequential),
                p.signer(),
                p.epoch(),
                p.view(),
                EvidenceKind::ConflictingFinalize,
            ),
            Self::NullifyFinalize(p) => (
                p.verify(rng, verifier, &Sequential),
                p.signer(),
                p.epoch(),
                p.view(),
                EvidenceKind::NullifyFinalize,
            ),
        };
        if !valid {
            return None;
        }
        let offender = committee.get(usize::from(signer))?.clone();
        Some(Evidence {
            offender,
            epoch: epoch.get(),
            view: view.get(),
            kind,
            proof_hash: exo_types::hash_bytes(&self.encode()),
        })
    }
}

impl Write for EvidenceProof {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::ConflictingNotarize(p) => {
                0u8.write(buf);
                p.write(buf);
            }
            Self::ConflictingFinalize(p) => {
                1u8.write(buf);
                p.write(buf);
            }
            Self::NullifyFinalize(p) => {
                2u8.write(buf);
                p.write(buf);
            }
        }
    }
}

impl EncodeSize for EvidenceProof {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::ConflictingNotarize(p) => p.encode_size(),
            Self::ConflictingFinalize(p) => p.encode_size(),
            Self::NullifyFinalize(p) => p.encode_size(),
        }
    }
}

impl Read for EvidenceProof {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Self::ConflictingNotarize(ConflictingNotarize::read(buf)?)),
            1 => Ok(Self::ConflictingFinalize(ConflictingFinalize::read(buf)?)),
            2 => Ok(Self::NullifyFinalize(NullifyFinalize::read(buf)?)),
            tag => Err(CodecError::InvalidEnum(tag)),
        }
    }
}
