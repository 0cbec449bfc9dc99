//! Signed claims a node's API checks before it stores anything for a client: not transactions
//! (nothing here reaches the chain), but statements bound to one chain and one purpose, each
//! under its own signature namespace so that no signature made for a transaction, consensus or
//! another claim can be replayed as one of these.

use crate::{Address, Hash32, PrivateKey, Signature, codec::write_bytes};
use commonware_cryptography::{Signer, Verifier};

/// Signatures over an [`OutputsClaim`] use this namespace.
pub const OUTPUTS_NAMESPACE: &[u8] = b"exodus-outputs-v1";
/// Signatures over a [`BlobClaim`] use this namespace.
pub const BLOB_NAMESPACE: &[u8] = b"exodus-blob-v1";
/// Signatures over an [`OutputsBatchClaim`] use this namespace.
pub const OUTPUTS_BATCH_NAMESPACE: &[u8] = b"exodus-outputs-batch-v1";

/// "I upload the blob `hash` to this chain's nodes", signed by an account: a node stores a
/// blob only for a funded account, and counts it against that account's quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobClaim {
    pub chain_id: String,
    pub hash: Hash32,
}

impl BlobClaim {
    /// The signed bytes: the chain id (length-prefixed), then the blob hash. Frozen.
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chain_id.len() + 8 + 32);
        write_bytes(self.chain_id.as_bytes(), &mut out);
        out.extend_from_slice(&self.hash);
        out
    }

    pub fn sign(&self, key: &PrivateKey) -> Signature {
        key.sign(BLOB_NAMESPACE, &self.message())
    }

    /// Whether `signature` is `signer`'s over this claim.
    pub fn verify(&self, signer: &Address, signature: &Signature) -> bool {
        signer.verify(BLOB_NAMESPACE, &self.message(), signature)
    }
}

/// "The archive `archive` holds the outputs of replica `replica` of unit `unit` of job `job`",
/// signed by that replica's provider: only a unit's assigned providers may offer archives for
/// it before its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputsClaim {
    pub chain_id: String,
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    pub archive: Hash32,
}

impl OutputsClaim {
    /// The signed bytes: the chain id (length-prefixed), then job, unit and replica big-endian,
    /// then the archive hash. Frozen: changing them breaks every worker in the field.
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chain_id.len() + 8 + 8 + 4 + 4 + 32);
        write_bytes(self.chain_id.as_bytes(), &mut out);
        out.extend_from_slice(&self.job.to_be_bytes());
        out.extend_from_slice(&self.unit.to_be_bytes());
        out.extend_from_slice(&self.replica.to_be_bytes());
        out.extend_from_slice(&self.archive);
        out
    }

    pub fn sign(&self, key: &PrivateKey) -> Signature {
        key.sign(OUTPUTS_NAMESPACE, &self.message())
    }

    /// Whether `signature` is `signer`'s over this claim.
    pub fn verify(&self, signer: &Address, signature: &Signature) -> bool {
        signer.verify(OUTPUTS_NAMESPACE, &self.message(), signature)
    }
}

/// Several [`OutputsClaim`]s of one signer under one signature: "each archive holds the
/// outputs of the replica it names", signed by the provider of every replica named. One
/// signature for a batch of uploads instead of one each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputsBatchClaim {
    pub chain_id: String,
    /// (job, unit, replica, archive hash), in the order of the batch.
    pub items: Vec<(u64, u32, u32, Hash32)>,
}

impl OutputsBatchClaim {
    /// The signed bytes: the chain id (length-prefixed), the number of items (4 bytes,
    /// big-endian), then each item's job, unit and replica big-endian and its archive hash.
    /// Frozen: changing them breaks every worker in the field.
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chain_id.len() + 12 + self.items.len() * 48);
        write_bytes(self.chain_id.as_bytes(), &mut out);
        out.extend_from_slice(&(self.items.len() as u32).to_be_bytes());
        for (job, unit, replica, archive) in &self.items {
            out.extend_from_slice(&job.to_be_bytes());
            out.extend_from_slice(&unit.to_be_bytes());
            out.extend_from_slice(&replica.to_be_bytes());
            out.extend_from_slice(archive);
        }
        out
    }

    pub fn sign(&self, key: &PrivateKey) -> Signature {
        key.sign(OUTPUTS_BATCH_NAMESPACE, &self.message())
    }

    /// Whether `signature` is `signer`'s over this claim.
    pub fn verify(&self, signer: &Address, signature: &Signature) -> bool {
        signer.verify(OUTPUTS_BATCH_NAMESPACE, &self.message(), signature)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn claim() -> OutputsClaim {
        OutputsClaim {
            chain_id: "exo-test".into(),
            job: 7,
            unit: 3,
            replica: 1,
            archive: [0xab; 32],
        }
    }

    #[test]
    fn golden_outputs_claim_bytes() {
        assert_eq!(
            hex::encode(claim().message()),
            "0865786f2d74657374\
             0000000000000007\
             00000003\
             00000001\
             abababababababababababababababababababababababababababababababab"
        );
    }

    #[test]
    fn golden_blob_claim_bytes_and_namespace() {
        let claim = BlobClaim {
            chain_id: "exo-test".into(),
            hash: [0xcd; 32],
        };
        assert_eq!(
            hex::encode(claim.message()),
            "0865786f2d74657374\
             cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
        );
        let key = PrivateKey::from_seed(1);
        let signature = claim.sign(&key);
        assert!(claim.verify(&key.public_key(), &signature));
        // An outputs claim's signature never passes for a blob claim.
        let outputs = key.sign(OUTPUTS_NAMESPACE, &claim.message());
        assert!(!claim.verify(&key.public_key(), &outputs));
    }

    #[test]
    fn an_outputs_claim_verifies_only_for_its_signer_and_its_content() {
        let key = PrivateKey::from_seed(1);
        let other = PrivateKey::from_seed(2);
        let signature = claim().sign(&key);
        assert!(claim().verify(&key.public_key(), &signature));
        assert!(!claim().verify(&other.public_key(), &signature));
        let mut moved = claim();
        moved.replica = 2;
        assert!(!moved.verify(&key.public_key(), &signature));
        let mut elsewhere = claim();
        elsewhere.chain_id = "exo-other".into();
        assert!(!elsewhere.verify(&key.public_key(), &signature));
        // A transaction signature over the same bytes is not a claim signature.
        let tx_signature = key.sign(crate::TX_NAMESPACE, &claim().message());
        assert!(!claim().verify(&key.public_key(), &tx_signature));
    }

    #[test]
    fn golden_outputs_batch_claim_bytes_and_namespace() {
        let batch = OutputsBatchClaim {
            chain_id: "exo-test".into(),
            items: vec![(7, 3, 1, [0xab; 32]), (8, 0, 2, [0xcd; 32])],
        };
        assert_eq!(
            hex::encode(batch.message()),
            "0865786f2d74657374\
             00000002\
             0000000000000007\
             00000003\
             00000001\
             abababababababababababababababababababababababababababababababab\
             0000000000000008\
             00000000\
             00000002\
             cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
        );
        let key = PrivateKey::from_seed(1);
        let signature = batch.sign(&key);
        assert!(batch.verify(&key.public_key(), &signature));
        assert!(!batch.verify(&PrivateKey::from_seed(2).public_key(), &signature));
        // Reordered, shortened or moved to another replica, it is another claim.
        let mut reordered = batch.clone();
        reordered.items.reverse();
        assert!(!reordered.verify(&key.public_key(), &signature));
        let mut shortened = batch.clone();
        shortened.items.pop();
        assert!(!shortened.verify(&key.public_key(), &signature));
        // A one-item batch's signature is not an outputs claim's, nor the other way round.
        let single = OutputsBatchClaim {
            chain_id: "exo-test".into(),
            items: vec![(7, 3, 1, [0xab; 32])],
        };
        assert!(!claim().verify(&key.public_key(), &single.sign(&key)));
        assert!(!single.verify(&key.public_key(), &claim().sign(&key)));
    }
}
