//! Exodus's vocabulary: addresses, amounts, transactions and their canonical binary codec.
//!
//! Everything here is plain data with a frozen, bounded encoding (Commonware codec). Nothing
//! hashes or signs JSON: the bytes a validator signs or hashes are exactly the bytes produced
//! here, and every decoder rejects oversize or trailing input instead of allocating blindly.
//!
//! This crate must never do I/O, read a clock, draw randomness or depend on an async runtime.

mod amount;
mod capacity;
mod claims;
mod codec;
mod digest;
mod market;
mod tx;

pub use amount::{Amount, AmountError, BASE_UNITS_PER_EXO, EXO_DECIMALS};
pub use capacity::{CAPACITY_CONTEXT, CAPACITY_SOLUTIONS, CapacityChallenge, CapacityProof};
pub use claims::{
    BLOB_NAMESPACE, BlobClaim, OUTPUTS_BATCH_NAMESPACE, OUTPUTS_NAMESPACE, OutputsBatchClaim,
    OutputsClaim,
};
pub use codec::{bytes_encode_size, read_bounded_bytes, read_bounded_string, write_bytes};
pub use digest::{RESULT_DIGEST_CONTEXT, UNFINISHED_DIGEST_CONTEXT, Unfinished, result_digest};
pub use exo_market;
pub use market::{
    Hash32, InputRef, JobSpec, MAX_APP_NAME_LEN, MAX_INPUT_NAME_LEN, MAX_JOB_INPUTS, MAX_JOB_UNITS,
    MAX_RESULTS_PER_TX, MAX_TRUST, MAX_UNIT_ARGS_LEN, ResultCommit, ResultReveal,
    result_commitment, result_seal,
};
pub use tx::{
    Action, Address, ChainId, MAX_CHAIN_ID_LEN, MAX_NOMINATION_TARGETS, MAX_P2P_ADDRESS_LEN,
    MAX_TX_BYTES, PrivateKey, Signature, SignedTx, TX_NAMESPACE, TxHash, UnsignedTx,
    address_from_hex, address_to_hex, hash_bytes,
};

/// The SHA-256 digest used for transaction and block hashes.
pub type Digest = commonware_cryptography::sha256::Digest;
