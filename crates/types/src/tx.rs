//! Transactions: `{chain_id, sender, nonce, fee, action, signature}`.

use crate::{
    Amount, CapacityProof, Digest,
    codec::{bytes_encode_size, read_bounded_string, write_bytes},
    market::{Hash32, JobSpec, MAX_RESULTS_PER_TX, ResultCommit, ResultReveal},
};
use bytes::BufMut;
use commonware_codec::{Buf, Encode, EncodeSize, Error, RangeCfg, Read, ReadExt, Write};
use commonware_cryptography::{Hasher, Sha256, Signer, Verifier, ed25519};
use exo_market::Resources;

pub use ed25519::{PrivateKey, Signature};

/// An account address is its ed25519 public key.
pub type Address = ed25519::PublicKey;
/// The hash of a signed transaction's canonical encoding.
pub type TxHash = Digest;
/// The name of a chain; transactions signed for another chain are rejected.
pub type ChainId = String;

/// Signatures over transactions use this namespace, so that no signature made for consensus
/// or for the network handshake can ever authorize spending.
pub const TX_NAMESPACE: &[u8] = b"exodus-tx-v1";
/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_LEN: usize = 32;
/// Largest encoded transaction, in bytes. Bigger ones are refused before decoding.
pub const MAX_TX_BYTES: usize = 64 * 1024;
/// Most validators one nomination backs.
pub const MAX_NOMINATION_TARGETS: usize = 16;
/// Longest p2p address a validator announces (`host:port`), in bytes.
pub const MAX_P2P_ADDRESS_LEN: usize = 64;

/// What a transaction does.
///
/// Each action belongs to one ledger module; its encoding is the module's byte, then the
/// action's tag within that module. Both are frozen: a new action takes the next free tag of
/// its module, a new module the next free byte, and an old value is never reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Moves `amount` from the sender to `to`.
    Transfer { to: Address, amount: Amount },
    /// Registers the sender's machine as a provider, locking `bond`.
    RegisterProvider { resources: Resources, bond: Amount },
    /// Replaces the sender's provider description; offers posted later carry it.
    UpdateProvider { resources: Resources },
    /// Retires the sender's provider and returns its bond once no assignment is running.
    RetireProvider,
    /// Offers `slots` concurrent units at `price_per_unit` until block time `expiry_secs`
    /// (seconds since the Unix epoch).
    PostOffer {
        slots: u32,
        price_per_unit: Amount,
        expiry_secs: u64,
    },
    /// Withdraws one of the sender's offers.
    CancelOffer { offer: u64 },
    /// Submits a job; its worst-case cost goes into escrow.
    SubmitJob(Box<JobSpec>),
    /// Cancels the sender's job: unassigned units are refunded.
    CancelJob { job: u64 },
    /// Publishes a task app so jobs can name it by its module hash.
    PublishApp {
        module_hash: Hash32,
        name: String,
        version: String,
        royalty_per_unit: Amount,
    },
    /// Commits to results of assigned replicas.
    CommitResults(Vec<ResultCommit>),
    /// Opens earlier commitments.
    RevealResults(Vec<ResultReveal>),
    /// Proves an offer's free slots in the open capacity round.
    ProveCapacity(CapacityProof),
    /// Registers the sender as a validator candidate, locking `self_bond`.
    RegisterValidator {
        consensus_key: Address,
        p2p_address: String,
        commission_bps: u32,
        self_bond: Amount,
    },
    /// Replaces the sender's validator address and commission.
    UpdateValidator {
        p2p_address: String,
        commission_bps: u32,
    },
    /// Backs `targets` with the sender's nomination bond, adding `bond` to it.
    Nominate { targets: Vec<Address>, bond: Amount },
    /// Starts unbonding `amount` of the sender's active bond.
    Unbond { amount: Amount },
    /// Returns every unbonding chunk whose period is over.
    Withdraw,
    /// Stops standing for election; the bond stays.
    Chill,
    /// Stands for election again after a chill or once a jail term is over.
    Unjail,
}

impl Action {
    /// The bank's module byte.
    pub const MODULE_BANK: u8 = 1;
    /// The compute market's module byte.
    pub const MODULE_MARKET: u8 = 3;
    /// The staking module's byte.
    pub const MODULE_STAKING: u8 = 4;

    const TAG_TRANSFER: u8 = 0;
    const TAG_REGISTER_PROVIDER: u8 = 1;
    const TAG_UPDATE_PROVIDER: u8 = 2;
    const TAG_RETIRE_PROVIDER: u8 = 3;
    const TAG_POST_OFFER: u8 = 4;
    const TAG_CANCEL_OFFER: u8 = 5;
    const TAG_SUBMIT_JOB: u8 = 6;
    const TAG_CANCEL_JOB: u8 = 7;
    const TAG_PUBLISH_APP: u8 = 8;
    const TAG_COMMIT_RESULTS: u8 = 9;
    const TAG_REVEAL_RESULTS: u8 = 10;
    const TAG_PROVE_CAPACITY: u8 = 11;

    // The staking module's tags.
    const TAG_REGISTER_VALIDATOR: u8 = 0;
    const TAG_UPDATE_VALIDATOR: u8 = 1;
    const TAG_NOMINATE: u8 = 2;
    const TAG_UNBOND: u8 = 3;
    const TAG_WITHDRAW: u8 = 4;
    const TAG_CHILL: u8 = 5;
    const TAG_UNJAIL: u8 = 6;

    /// The module that executes this action.
    pub fn module(&self) -> u8 {
        match self {
            Self::Transfer { .. } => Self::MODULE_BANK,
            Self::RegisterValidator { .. }
            | Self::UpdateValidator { .. }
            | Self::Nominate { .. }
            | Self::Unbond { .. }
            | Self::Withdraw
            | Self::Chill
            | Self::Unjail => Self::MODULE_STAKING,
            _ => Self::MODULE_MARKET,
        }
    }

    /// A short name for logs, receipts and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Transfer { .. } => "transfer",
            Self::RegisterProvider { .. } => "register_provider",
            Self::UpdateProvider { .. } => "update_provider",
            Self::RetireProvider => "retire_provider",
            Self::PostOffer { .. } => "post_offer",
            Self::CancelOffer { .. } => "cancel_offer",
            Self::SubmitJob(_) => "submit_job",
            Self::CancelJob { .. } => "cancel_job",
            Self::PublishApp { .. } => "publish_app",
            Self::CommitResults(_) => "commit_results",
            Self::RevealResults(_) => "reveal_results",
            Self::ProveCapacity(_) => "prove_capacity",
            Self::RegisterValidator { .. } => "register_validator",
            Self::UpdateValidator { .. } => "update_validator",
            Self::Nominate { .. } => "nominate",
            Self::Unbond { .. } => "unbond",
            Self::Withdraw => "withdraw",
            Self::Chill => "chill",
            Self::Unjail => "unjail",
        }
    }
}

impl Write for Action {
    fn write(&self, buf: &mut impl BufMut) {
        self.module().write(buf);
        match self {
            Self::Transfer { to, amount } => {
                Self::TAG_TRANSFER.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Self::RegisterProvider { resources, bond } => {
                Self::TAG_REGISTER_PROVIDER.write(buf);
                resources.write(buf);
                bond.write(buf);
            }
            Self::UpdateProvider { resources } => {
                Self::TAG_UPDATE_PROVIDER.write(buf);
                resources.write(buf);
            }
            Self::RetireProvider => Self::TAG_RETIRE_PROVIDER.write(buf),
            Self::PostOffer {
                slots,
                price_per_unit,
                expiry_secs,
            } => {
                Self::TAG_POST_OFFER.write(buf);
                slots.write(buf);
                price_per_unit.write(buf);
                expiry_secs.write(buf);
            }
            Self::CancelOffer { offer } => {
                Self::TAG_CANCEL_OFFER.write(buf);
                offer.write(buf);
            }
            Self::SubmitJob(spec) => {
                Self::TAG_SUBMIT_JOB.write(buf);
                spec.write(buf);
            }
            Self::CancelJob { job } => {
                Self::TAG_CANCEL_JOB.write(buf);
                job.write(buf);
            }
            Self::PublishApp {
                module_hash,
                name,
                version,
                royalty_per_unit,
            } => {
                Self::TAG_PUBLISH_APP.write(buf);
                module_hash.write(buf);
                write_bytes(name.as_bytes(), buf);
                write_bytes(version.as_bytes(), buf);
                royalty_per_unit.write(buf);
            }
            Self::CommitResults(commits) => {
                Self::TAG_COMMIT_RESULTS.write(buf);
                commits.write(buf);
            }
            Self::RevealResults(reveals) => {
                Self::TAG_REVEAL_RESULTS.write(buf);
                reveals.write(buf);
            }
            Self::ProveCapacity(proof) => {
                Self::TAG_PROVE_CAPACITY.write(buf);
                proof.write(buf);
            }
            Self::RegisterValidator {
                consensus_key,
                p2p_address,
                commission_bps,
                self_bond,
            } => {
                Self::TAG_REGISTER_VALIDATOR.write(buf);
                consensus_key.write(buf);
                write_bytes(p2p_address.as_bytes(), buf);
                commission_bps.write(buf);
                self_bond.write(buf);
            }
            Self::UpdateValidator {
                p2p_address,
                commission_bps,
            } => {
                Self::TAG_UPDATE_VALIDATOR.write(buf);
                write_bytes(p2p_address.as_bytes(), buf);
                commission_bps.write(buf);
            }
            Self::Nominate { targets, bond } => {
                Self::TAG_NOMINATE.write(buf);
                targets.write(buf);
                bond.write(buf);
            }
            Self::Unbond { amount } => {
                Self::TAG_UNBOND.write(buf);
                amount.write(buf);
            }
            Self::Withdraw => Self::TAG_WITHDRAW.write(buf),
            Self::Chill => Self::TAG_CHILL.write(buf),
            Self::Unjail => Self::TAG_UNJAIL.write(buf),
        }
    }
}

impl EncodeSize for Action {
    fn encode_size(&self) -> usize {
        2 + match self {
            Self::Transfer { to, amount } => to.encode_size() + amount.encode_size(),
            Self::RegisterProvider { resources, bond } => {
                resources.encode_size() + bond.encode_size()
            }
            Self::UpdateProvider { resources } => resources.encode_size(),
            Self::RetireProvider => 0,
            Self::PostOffer { .. } => 4 + 16 + 8,
            Self::CancelOffer { .. } | Self::CancelJob { .. } => 8,
            Self::SubmitJob(spec) => spec.encode_size(),
            Self::PublishApp { name, version, .. } => {
                32 + bytes_encode_size(name.as_bytes()) + bytes_encode_size(version.as_bytes()) + 16
            }
            Self::CommitResults(commits) => commits.encode_size(),
            Self::RevealResults(reveals) => reveals.encode_size(),
            Self::ProveCapacity(proof) => proof.encode_size(),
            Self::RegisterValidator { p2p_address, .. } => {
                32 + bytes_encode_size(p2p_address.as_bytes()) + 4 + 16
            }
            Self::UpdateValidator { p2p_address, .. } => {
                bytes_encode_size(p2p_address.as_bytes()) + 4
            }
            Self::Nominate { targets, .. } => targets.encode_size() + 16,
            Self::Unbond { .. } => 16,
            Self::Withdraw | Self::Chill | Self::Unjail => 0,
        }
    }
}

impl Read for Action {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let results = (RangeCfg::new(1..=MAX_RESULTS_PER_TX), ());
        let module = u8::read(buf)?;
        let tag = u8::read(buf)?;
        if module == Self::MODULE_STAKING {
            return read_staking(tag, buf);
        }
        let action = match tag {
            Self::TAG_TRANSFER => Ok(Self::Transfer {
                to: Address::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            Self::TAG_REGISTER_PROVIDER => Ok(Self::RegisterProvider {
                resources: crate::market::read_resources(buf)?,
                bond: Amount::read(buf)?,
            }),
            Self::TAG_UPDATE_PROVIDER => Ok(Self::UpdateProvider {
                resources: crate::market::read_resources(buf)?,
            }),
            Self::TAG_RETIRE_PROVIDER => Ok(Self::RetireProvider),
            Self::TAG_POST_OFFER => Ok(Self::PostOffer {
                slots: u32::read(buf)?,
                price_per_unit: Amount::read(buf)?,
                expiry_secs: u64::read(buf)?,
            }),
            Self::TAG_CANCEL_OFFER => Ok(Self::CancelOffer {
                offer: u64::read(buf)?,
            }),
            Self::TAG_SUBMIT_JOB => Ok(Self::SubmitJob(Box::new(JobSpec::read(buf)?))),
            Self::TAG_CANCEL_JOB => Ok(Self::CancelJob {
                job: u64::read(buf)?,
            }),
            Self::TAG_PUBLISH_APP => Ok(Self::PublishApp {
                module_hash: Hash32::read(buf)?,
                name: crate::market::read_app_text(buf)?,
                version: crate::market::read_app_text(buf)?,
                royalty_per_unit: Amount::read(buf)?,
            }),
            Self::TAG_COMMIT_RESULTS => Ok(Self::CommitResults(Vec::<ResultCommit>::read_cfg(
                buf, &results,
            )?)),
            Self::TAG_REVEAL_RESULTS => Ok(Self::RevealResults(Vec::<ResultReveal>::read_cfg(
                buf, &results,
            )?)),
            Self::TAG_PROVE_CAPACITY => Ok(Self::ProveCapacity(CapacityProof::read(buf)?)),
            tag => Err(Error::InvalidEnum(tag)),
        }?;
        if action.module() != module {
            return Err(Error::Invalid(
                "Action",
                "the action does not belong to that module",
            ));
        }
        Ok(action)
    }
}

/// Reads a staking action after its module byte and `tag`.
fn read_staking(tag: u8, buf: &mut impl Buf) -> Result<Action, Error> {
    let targets = (RangeCfg::new(1..=MAX_NOMINATION_TARGETS), ());
    Ok(match tag {
        Action::TAG_REGISTER_VALIDATOR => Action::RegisterValidator {
            consensus_key: Address::read(buf)?,
            p2p_address: read_bounded_string(buf, MAX_P2P_ADDRESS_LEN)?,
            commission_bps: u32::read(buf)?,
            self_bond: Amount::read(buf)?,
        },
        Action::TAG_UPDATE_VALIDATOR => Action::UpdateValidator {
            p2p_address: read_bounded_string(buf, MAX_P2P_ADDRESS_LEN)?,
            commission_bps: u32::read(buf)?,
        },
        Action::TAG_NOMINATE => Action::Nominate {
            targets: Vec::<Address>::read_cfg(buf, &targets)?,
            bond: Amount::read(buf)?,
        },
        Action::TAG_UNBOND => Action::Unbond {
            amount: Amount::read(buf)?,
        },
        Action::TAG_WITHDRAW => Action::Withdraw,
        Action::TAG_CHILL => Action::Chill,
        Action::TAG_UNJAIL => Action::Unjail,
        tag => return Err(Error::InvalidEnum(tag)),
    })
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedTx {
    pub chain_id: ChainId,
    pub sender: Address,
    pub nonce: u64,
    pub fee: Amount,
    pub action: Action,
}

impl UnsignedTx {
    /// Signs with `key`, which must be the sender's.
    pub fn sign(self, key: &PrivateKey) -> SignedTx {
        let signature = key.sign(TX_NAMESPACE, &self.encode());
        SignedTx {
            tx: self,
            signature,
        }
    }
}

impl Write for UnsignedTx {
    fn write(&self, buf: &mut impl BufMut) {
        write_bytes(self.chain_id.as_bytes(), buf);
        self.sender.write(buf);
        self.nonce.write(buf);
        self.fee.write(buf);
        self.action.write(buf);
    }
}

impl EncodeSize for UnsignedTx {
    fn encode_size(&self) -> usize {
        bytes_encode_size(self.chain_id.as_bytes())
            + self.sender.encode_size()
            + self.nonce.encode_size()
            + self.fee.encode_size()
            + self.action.encode_size()
    }
}

impl Read for UnsignedTx {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            chain_id: read_bounded_string(buf, MAX_CHAIN_ID_LEN)?,
            sender: Address::read(buf)?,
            nonce: u64::read(buf)?,
            fee: Amount::read(buf)?,
            action: Action::read(buf)?,
        })
    }
}

/// A transaction with the sender's signature over the encoding of [`UnsignedTx`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    pub tx: UnsignedTx,
    pub signature: Signature,
}

impl SignedTx {
    /// The transaction hash: SHA-256 of the full signed encoding.
    pub fn hash(&self) -> TxHash {
        hash_bytes(&self.encode())
    }

    /// Checks the signature alone (one verification; blocks use batch verification instead).
    pub fn verify_signature(&self) -> bool {
        self.tx
            .sender
            .verify(TX_NAMESPACE, &self.tx.encode(), &self.signature)
    }

    /// Decodes a transaction from untrusted bytes, refusing anything over [`MAX_TX_BYTES`].
    pub fn decode_untrusted(bytes: &[u8]) -> Result<Self, Error> {
        use commonware_codec::DecodeExt;
        if bytes.len() > MAX_TX_BYTES {
            return Err(Error::InvalidLength(bytes.len()));
        }
        Self::decode(bytes.to_vec())
    }
}

impl Write for SignedTx {
    fn write(&self, buf: &mut impl BufMut) {
        self.tx.write(buf);
        self.signature.write(buf);
    }
}

impl EncodeSize for SignedTx {
    fn encode_size(&self) -> usize {
        self.tx.encode_size() + self.signature.encode_size()
    }
}

impl Read for SignedTx {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            tx: UnsignedTx::read(buf)?,
            signature: Signature::read(buf)?,
        })
    }
}

/// SHA-256 of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> Digest {
    Sha256::hash(&[bytes])
}

/// Lower-case hex of an address (64 characters).
pub fn address_to_hex(address: &Address) -> String {
    hex::encode(address.encode())
}

/// Parses a 64-character hex address.
pub fn address_from_hex(text: &str) -> Option<Address> {
    use commonware_codec::DecodeExt;
    let bytes = hex::decode(text.trim()).ok()?;
    Address::decode(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::DecodeExt;

    fn key(seed: u64) -> PrivateKey {
        PrivateKey::from_seed(seed)
    }

    fn sample() -> SignedTx {
        UnsignedTx {
            chain_id: "exo-test".into(),
            sender: key(1).public_key(),
            nonce: 7,
            fee: Amount(1_000),
            action: Action::Transfer {
                to: key(2).public_key(),
                amount: Amount::from_exo(5),
            },
        }
        .sign(&key(1))
    }

    /// Freezes the transaction format. Changing these bytes is a decision that goes into the
    /// commit message: every signature and hash ever made depends on them.
    #[test]
    fn golden_transfer_bytes_and_hash() {
        let tx = sample();
        assert_eq!(
            hex::encode(tx.encode()),
            include_str!("../tests/golden/transfer.hex").trim()
        );
        assert_eq!(
            hex::encode(tx.hash()),
            include_str!("../tests/golden/transfer.hash").trim()
        );
    }

    fn sample_job() -> SignedTx {
        use exo_market::{DeviceClass, GpuRequirement, Requirements, Runtime};
        let requirements = Requirements {
            min_cores: 2,
            min_memory_mib: 1_024,
            min_cpu_score: 5,
            gpu: Some(GpuRequirement {
                model: Some("rtx4090".into()),
                min_count: 1,
                min_memory_mib: 0,
            }),
            class: Some(DeviceClass::Pc),
            region: Some("eu-west".into()),
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 3_000_000_000,
            min_reputation: 10,
        };
        UnsignedTx {
            chain_id: "exo-test".into(),
            sender: key(1).public_key(),
            nonce: 1,
            fee: Amount(1_000),
            action: Action::SubmitJob(Box::new(JobSpec {
                app: [9; 32],
                app_developer: key(7).public_key(),
                inputs: vec![crate::InputRef {
                    name: "scene.obj".into(),
                    hash: [4; 32],
                    size: 1234,
                }],
                unit_args: vec!["a b".into(), "c".into()],
                units: 2,
                requirements,
                max_price_per_unit: Amount(77),
                trust: 2,
            })),
        }
        .sign(&key(1))
    }

    fn sample_results() -> Vec<SignedTx> {
        let commit = UnsignedTx {
            chain_id: "exo-test".into(),
            sender: key(2).public_key(),
            nonce: 3,
            fee: Amount(1_000),
            action: Action::CommitResults(vec![ResultCommit {
                job: 5,
                unit: 6,
                replica: 1,
                commitment: [8; 32],
                seal: [10; 32],
            }]),
        }
        .sign(&key(2));
        let reveal = UnsignedTx {
            chain_id: "exo-test".into(),
            sender: key(2).public_key(),
            nonce: 4,
            fee: Amount(1_000),
            action: Action::RevealResults(vec![ResultReveal {
                job: 5,
                unit: 6,
                replica: 1,
                digest: [1; 32],
                fuel: 99,
                salt: [2; 32],
            }]),
        }
        .sign(&key(2));
        vec![commit, reveal]
    }

    /// Freezes the encodings of the market actions, like the transfer's.
    #[test]
    fn golden_market_actions() {
        let mut lines = vec![hex::encode(sample_job().encode())];
        lines.extend(sample_results().iter().map(|t| hex::encode(t.encode())));
        let hashes: Vec<String> = std::iter::once(sample_job())
            .chain(sample_results())
            .map(|t| hex::encode(t.hash()))
            .collect();
        lines.extend(hashes);
        let expected = include_str!("../tests/golden/market_actions.hex");
        assert_eq!(lines.join("\n"), expected.trim());
        for tx in std::iter::once(sample_job()).chain(sample_results()) {
            assert_eq!(SignedTx::decode(tx.encode()).unwrap(), tx);
        }
    }

    /// Freezes the encoding of a capacity proof (market tag 11), like the other actions'.
    #[test]
    fn golden_capacity_proof() {
        let tx = UnsignedTx {
            chain_id: "exo-test".into(),
            sender: key(2).public_key(),
            nonce: 5,
            fee: Amount(1_000),
            action: Action::ProveCapacity(CapacityProof {
                round: 3,
                offer: 9,
                slots: 4,
                nonces: (0..crate::CAPACITY_SOLUTIONS as u64)
                    .map(|n| n * 1_000)
                    .collect(),
            }),
        }
        .sign(&key(2));
        let lines = [hex::encode(tx.encode()), hex::encode(tx.hash())].join("\n");
        let expected = include_str!("../tests/golden/capacity_proof.hex");
        assert_eq!(lines, expected.trim());
        assert_eq!(SignedTx::decode(tx.encode()).unwrap(), tx);
    }

    fn staking_actions() -> Vec<Action> {
        vec![
            Action::RegisterValidator {
                consensus_key: key(3).public_key(),
                p2p_address: "10.0.0.1:4000".into(),
                commission_bps: 500,
                self_bond: Amount(1_000),
            },
            Action::UpdateValidator {
                p2p_address: "10.0.0.2:4000".into(),
                commission_bps: 0,
            },
            Action::Nominate {
                targets: vec![key(3).public_key(), key(4).public_key()],
                bond: Amount(10),
            },
            Action::Unbond { amount: Amount(7) },
            Action::Withdraw,
            Action::Chill,
            Action::Unjail,
        ]
    }

    /// Freezes the encodings of the staking actions (module byte 4, tags 0 to 6).
    #[test]
    fn golden_staking_actions() {
        let lines: Vec<String> = staking_actions()
            .iter()
            .map(|a| hex::encode(a.encode()))
            .collect();
        let expected = include_str!("../tests/golden/staking_actions.hex");
        assert_eq!(lines.join("\n"), expected.trim());
        for action in staking_actions() {
            assert_eq!(action.encode().len(), action.encode_size());
            assert_eq!(Action::decode(action.encode()).unwrap(), action);
        }
    }

    #[test]
    fn a_nomination_of_no_target_or_more_than_sixteen_does_not_decode() {
        for n in [0, MAX_NOMINATION_TARGETS + 1] {
            let action = Action::Nominate {
                targets: vec![key(3).public_key(); n],
                bond: Amount(10),
            };
            assert!(Action::decode(action.encode()).is_err(), "{n} targets");
        }
        let long = Action::UpdateValidator {
            p2p_address: "a".repeat(MAX_P2P_ADDRESS_LEN + 1),
            commission_bps: 0,
        };
        assert!(Action::decode(long.encode()).is_err());
    }

    /// An action is read under its module's byte only: the bank's transfer tag under the
    /// market's byte is not some market action.
    #[test]
    fn an_action_under_another_modules_byte_is_refused() {
        let transfer = Action::Transfer {
            to: key(2).public_key(),
            amount: Amount(1),
        };
        let mut bytes = transfer.encode().to_vec();
        assert_eq!(bytes[..2], [Action::MODULE_BANK, 0]);
        bytes[0] = Action::MODULE_MARKET;
        assert!(Action::decode(bytes::Bytes::from(bytes)).is_err());
    }

    #[test]
    fn round_trip_and_signature() {
        let tx = sample();
        let decoded = SignedTx::decode(tx.encode()).unwrap();
        assert_eq!(decoded, tx);
        assert!(decoded.verify_signature());
        let mut forged = tx.clone();
        forged.tx.nonce += 1;
        assert!(!forged.verify_signature());
    }

    #[test]
    fn rejects_oversize_and_trailing_bytes() {
        let mut bytes = sample().encode().to_vec();
        bytes.push(0);
        assert!(SignedTx::decode_untrusted(&bytes).is_err());
        assert!(SignedTx::decode_untrusted(&vec![0u8; MAX_TX_BYTES + 1]).is_err());
    }

    #[test]
    fn address_hex_round_trip() {
        let address = key(3).public_key();
        assert_eq!(address_from_hex(&address_to_hex(&address)), Some(address));
        assert_eq!(address_from_hex("zz"), None);
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = SignedTx::decode_untrusted(&bytes);
        }
    }
}
