//! The JSON bodies of the HTTP API, shared by the server and the client.
//!
//! Amounts travel as decimal strings of base units (JSON numbers cannot carry a u128 without
//! loss), hashes and addresses as lower-case hex. These types are the contract: a field is
//! renamed or removed only together with the client. Each derives its JSON schema
//! ([`utoipa::ToSchema`]), from which the server's OpenAPI document is made; a field whose JSON
//! is a text form (`#[serde(with = ...)]`) names the schema of that form ([`schema`]).

use exo_types::{Address, Amount, Digest, TxHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod market;
mod staking;
pub use market::*;
pub use staking::*;

/// Header a node sets when it asks another node's API for a blob or a unit's outputs on behalf
/// of its own client: the other node answers from its own store and never asks its peers in
/// turn, so a miss cannot bounce between nodes.
pub const PEER_HEADER: &str = "x-exo-peer";

/// Headers of a signed blob upload (`PUT /v1/blobs?hash=`): the uploader's address and its
/// signature over [`exo_types::BlobClaim`] (chain id, blob hash), both in hex.
pub const SIGNER_HEADER: &str = "x-exo-signer";
pub const SIGNATURE_HEADER: &str = "x-exo-signature";

/// The 32 bytes of an address (an ed25519 public key).
pub fn address_bytes(address: &Address) -> exo_types::Hash32 {
    use commonware_codec::Encode;
    let mut bytes = [0u8; 32];
    let encoded = address.encode();
    let len = encoded.len().min(32);
    bytes[..len].copy_from_slice(&encoded[..len]);
    bytes
}

/// The headers of a signed upload of blob `hash` to chain `chain_id` by `key`.
pub fn blob_upload_headers(
    chain_id: &str,
    hash: exo_types::Hash32,
    key: &exo_types::PrivateKey,
) -> [(&'static str, String); 2] {
    let claim = exo_types::BlobClaim {
        chain_id: chain_id.to_string(),
        hash,
    };
    signed_headers(key, &claim.sign(key))
}

/// The headers of a request `key` signed with `signature`: its address and the signature, both
/// in hex.
pub fn signed_headers(
    key: &exo_types::PrivateKey,
    signature: &exo_types::Signature,
) -> [(&'static str, String); 2] {
    use commonware_codec::Encode;
    use commonware_cryptography::Signer;
    [
        (SIGNER_HEADER, exo_types::address_to_hex(&key.public_key())),
        (SIGNATURE_HEADER, hex::encode(signature.encode())),
    ]
}

/// The JSON schemas of the text forms: what `#[serde(with = ...)]` writes in place of a Rust
/// type that has no JSON form of its own.
pub mod schema {
    use std::borrow::Cow;
    use utoipa::{
        PartialSchema, ToSchema,
        openapi::{
            RefOr,
            schema::{ObjectBuilder, Schema, Type},
        },
    };

    macro_rules! text_schema {
        ($($(#[$doc:meta])* $name:ident = $pattern:literal, $description:literal;)*) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl $name {
                /// The pattern every valid value matches.
                pub const PATTERN: &'static str = $pattern;
            }

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(Self::PATTERN))
                        .description(Some($description))
                        .into()
                }
            }

            impl ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )*};
    }

    text_schema! {
        /// A 32-byte hash or digest.
        Hash = "^[0-9a-fA-F]{64}$",
            "32 bytes in hex (64 digits): a transaction hash, a block or state digest, a BLAKE3 \
             content hash or result digest. The node writes lower case and reads either.";
        /// An account's address.
        Address = "^[0-9a-fA-F]{64}$",
            "An account's address, its ed25519 public key in hex (64 digits). Hex that is not a \
             valid public key is refused (`bad_address`).";
        /// An amount of tokens.
        BaseUnits = "^[0-9]{1,39}$",
            "An amount in base units (1 EXO = 10^9) as a decimal string: a 128-bit number, which \
             a JSON number cannot carry without loss.";
        /// An unsigned number of up to 128 bits.
        Decimal = "^[0-9]{1,39}$",
            "An unsigned number of up to 128 bits as a decimal string.";
        /// An ed25519 signature.
        Signature = "^[0-9a-fA-F]{128}$",
            "An ed25519 signature in hex (128 digits).";
    }
}

/// Every error answer: a stable machine-readable code and one sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub chain_id: String,
    /// Highest block this node has seen (proposed or executed), finalized or not.
    pub height: u64,
    pub finalized_height: u64,
    /// Time of the last finalized block, in milliseconds since the Unix epoch: commit and
    /// reveal deadlines and expiries are measured against it, not against a local clock.
    pub finalized_time_ms: u64,
    pub epoch: u64,
    /// Root of the finalized state; `null` before the first finalized block.
    #[schema(value_type = Option<schema::Hash>)]
    #[serde(with = "hex_digest_opt")]
    pub state_root: Option<Digest>,
    /// Connected peers.
    pub peers: u64,
    /// Smallest fee a transaction may offer, in base units.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub min_fee: Amount,
}

/// `POST /v1/txs` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Hex of the transaction's canonical encoding (a `0x` prefix is allowed).
    #[schema(pattern = "^(0x)?([0-9a-fA-F]{2})*$")]
    pub tx: String,
}

/// `POST /v1/txs` answer: the transaction is in the mempool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex_digest")]
    pub hash: TxHash,
}

/// Where a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In this node's mempool, not yet in a finalized block.
    Pending,
    /// Executed in a finalized block.
    Ok,
    /// In a finalized block, but rejected; `reason` says why.
    Rejected,
}

impl TxStatus {
    /// Whether the transaction is in a finalized block (its outcome can no longer change).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Why a transaction was rejected: the module that refused it, a stable code, the refusal's
/// numbers (decimal strings, in the code's order) and the sentence rendered from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<schema::Decimal>)]
    pub fields: Vec<String>,
    pub message: String,
}

/// An id a transaction created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Created {
    /// `provider`, `offer` or `job`.
    pub kind: String,
    pub id: u64,
}

/// `GET /v1/txs/{hash}`. Only `hash` and `status` are present while the transaction is
/// pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex_digest")]
    pub hash: TxHash,
    pub status: TxStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(
        default,
        with = "base_units_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<schema::BaseUnits>)]
    pub fee_paid: Option<Amount>,
    /// The ids the transaction created (the job of a `SubmitJob`), from its receipt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<Created>,
}

impl Receipt {
    /// The id of the `kind` the transaction created, if it created one.
    pub fn created(&self, kind: &str) -> Option<u64> {
        self.created.iter().find(|c| c.kind == kind).map(|c| c.id)
    }
}

/// `GET /v1/accounts/{address}`. An account never touched reads as zero balance, nonce 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub address: Address,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

/// `GET /v1/blocks/{height}` and each `block` event of `GET /v1/events`: a finalized block's
/// header and the hashes of its transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Block {
    pub height: u64,
    /// When the block was made, in milliseconds since the Unix epoch (its proposer's clock,
    /// bounded by the validators').
    pub timestamp_ms: u64,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex_digest")]
    pub digest: Digest,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex_digest")]
    pub parent: Digest,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex_digest")]
    pub state_root: Digest,
    pub epoch: u64,
    pub view: u64,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub proposer: Address,
    #[schema(value_type = Vec<schema::Hash>)]
    #[serde(with = "hex_digests")]
    pub tx_hashes: Vec<TxHash>,
    /// Evidence records of consensus faults carried by the block.
    pub evidence: u64,
}

/// The `lagged` event of `GET /v1/events`: the subscriber fell behind and missed blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lagged {
    pub skipped: u64,
}

/// Lower-case hex of a digest (64 characters).
pub fn digest_to_hex(digest: &Digest) -> String {
    use commonware_codec::Encode;
    hex::encode(digest.encode())
}

/// Parses a 64-character hex digest.
pub fn digest_from_hex(text: &str) -> Option<Digest> {
    use commonware_codec::DecodeExt;
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    Digest::decode(hex::decode(text).ok()?).ok()
}

/// Serde for amounts as decimal strings of base units.
pub mod base_units {
    use exo_types::Amount;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&amount.0.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(d)?;
        Amount::parse_base_units(&text).map_err(D::Error::custom)
    }
}

/// Serde for optional amounts as decimal strings of base units.
pub mod base_units_opt {
    use exo_types::Amount;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(amount: &Option<Amount>, s: S) -> Result<S::Ok, S::Error> {
        match amount {
            Some(amount) => s.serialize_some(&amount.0.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| Amount::parse_base_units(&text).map_err(D::Error::custom))
            .transpose()
    }
}

/// Serde for digests as hex.
pub mod hex_digest {
    use exo_types::Digest;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::digest_to_hex(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        super::digest_from_hex(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not a 64-character hex hash")))
    }
}

/// Serde for optional digests as hex or `null`.
pub mod hex_digest_opt {
    use exo_types::Digest;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(digest: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
        match digest {
            Some(digest) => s.serialize_some(&super::digest_to_hex(digest)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                super::digest_from_hex(&text).ok_or_else(|| {
                    D::Error::custom(format!("{text:?} is not a 64-character hex hash"))
                })
            })
            .transpose()
    }
}

/// Serde for lists of digests as hex.
pub mod hex_digests {
    use exo_types::Digest;
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(digests: &[Digest], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(digests.len()))?;
        for digest in digests {
            seq.serialize_element(&super::digest_to_hex(digest))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Digest>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                super::digest_from_hex(text).ok_or_else(|| {
                    D::Error::custom(format!("{text:?} is not a 64-character hex hash"))
                })
            })
            .collect()
    }
}

/// Serde for addresses as hex.
pub mod hex_address {
    use exo_types::{Address, address_from_hex, address_to_hex};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&address_to_hex(address))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        address_from_hex(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not a hex address")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use exo_types::hash_bytes;

    #[test]
    fn receipt_round_trips_and_omits_absent_fields() {
        let pending = Receipt {
            hash: hash_bytes(b"x"),
            status: TxStatus::Pending,
            reason: None,
            height: None,
            index: None,
            fee_paid: None,
            created: Vec::new(),
        };
        let json = serde_json::to_value(&pending).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 2);
        assert_eq!(json["status"], "pending");
        let back: Receipt = serde_json::from_value(json).unwrap();
        assert_eq!(back, pending);

        let done = Receipt {
            status: TxStatus::Ok,
            height: Some(3),
            index: Some(0),
            fee_paid: Some(Amount(u128::MAX)),
            ..pending
        };
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["fee_paid"], u128::MAX.to_string());
        assert_eq!(serde_json::from_value::<Receipt>(json).unwrap(), done);
    }

    #[test]
    fn digests_must_be_exactly_64_hex_characters() {
        let digest = hash_bytes(b"y");
        assert_eq!(digest_from_hex(&digest_to_hex(&digest)), Some(digest));
        assert_eq!(digest_from_hex("zz"), None);
        assert_eq!(digest_from_hex(&"0".repeat(62)), None);
        assert_eq!(digest_from_hex(&"0".repeat(66)), None);
    }
}
