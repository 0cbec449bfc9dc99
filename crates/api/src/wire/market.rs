//! The JSON bodies of the compute market's routes: providers, offers, the book's depth, jobs and
//! their units, apps, a provider's open work, assignment events, blobs and outputs.
//!
//! Like the rest of [`crate::wire`]: amounts are decimal strings of base units, hashes and
//! addresses lower-case hex, ids and heights JSON numbers. Lists that can be long are pages:
//! `next` is the `from` of the following page, `null` on the last.

use super::{base_units, base_units_opt, hex_address, schema};
use exo_types::{Address, Amount, Hash32};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Serde for 32-byte content hashes (module hashes, blob hashes, result digests) as hex.
pub mod hex32 {
    use exo_types::Hash32;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &Hash32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash32, D::Error> {
        let text = String::deserialize(d)?;
        super::hash32_from_hex(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not a 64-character hex hash")))
    }
}

/// Serde for optional 32-byte hashes as hex or `null`.
pub mod hex32_opt {
    use exo_types::Hash32;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &Option<Hash32>, s: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => s.serialize_some(&hex::encode(hash)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash32>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                super::hash32_from_hex(&text).ok_or_else(|| {
                    D::Error::custom(format!("{text:?} is not a 64-character hex hash"))
                })
            })
            .transpose()
    }
}

/// Parses a 64-character hex hash.
pub fn hash32_from_hex(text: &str) -> Option<Hash32> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A machine's GPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Gpu {
    pub model: String,
    pub count: u32,
    pub memory_mib: u64,
}

/// What a provider's machine can do (`exo_market::Resources`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resources {
    pub cores: u32,
    /// Single-core benchmark score, in fuel per second.
    pub cpu_score: u64,
    pub memory_mib: u64,
    pub gpu: Option<Gpu>,
    /// `server`, `pc`, `laptop`, `phone` or `iot`.
    pub class: String,
    pub region: String,
    /// Runtime names, e.g. `wasm32-wasip1`.
    pub runtimes: Vec<String>,
    pub max_unit_fuel: u64,
}

/// A GPU a job needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GpuRequirement {
    /// `null` for any model.
    pub model: Option<String>,
    pub min_count: u32,
    pub min_memory_mib: u64,
}

/// What a machine must have to run a job's units (`exo_market::Requirements`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Requirements {
    pub min_cores: u32,
    pub min_memory_mib: u64,
    pub min_cpu_score: u64,
    pub gpu: Option<GpuRequirement>,
    pub class: Option<String>,
    pub region: Option<String>,
    pub runtime: String,
    pub fuel_limit: u64,
    pub min_reputation: u32,
}

/// `GET /v1/providers/{id}` and each item of `GET /v1/providers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    pub id: u64,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub owner: Address,
    pub resources: Resources,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub bond: Amount,
    /// 0 to `reputation_max`.
    pub reputation: u32,
    pub reputation_max: u32,
    /// Whether its result alone weighs 2 (a long record of valid results).
    pub trusted: bool,
    /// Replicas assigned and not yet finished.
    pub active: u32,
    pub valid: u64,
    pub invalid: u64,
    pub missed: u64,
    pub retired: bool,
    pub registered_height: u64,
}

/// `GET /v1/providers?from=&limit=`: providers by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderPage {
    pub providers: Vec<Provider>,
    pub next: Option<u64>,
}

/// `GET /v1/accounts/{address}/provider`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderOf {
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub address: Address,
    pub provider: u64,
}

/// A capacity round: while it is open, every offer posted before it may prove its free slots
/// (`ProveCapacity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityRound {
    pub number: u64,
    /// The seed of the block that opened it, which the challenge hashes.
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub seed: Hash32,
    /// Block time that opened it, in milliseconds since the Unix epoch: offers posted in an
    /// earlier second may answer.
    pub opened_ms: u64,
    /// Proofs are taken up to this block time, in milliseconds, included.
    pub closes_ms: u64,
    /// Hashes one slot's share of a proof takes on average.
    pub hashes_per_slot: u64,
    /// Whether it still takes proofs at the last finalized block's time.
    pub open: bool,
}

/// One offer of a provider, as a capacity round sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityOffer {
    pub offer: u64,
    /// Slots free now: what a proof can earn for.
    pub free_slots: u32,
    pub posted_secs: u64,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
    /// The last round it proved its free slots in.
    pub proven_round: Option<u64>,
    /// Whether it may answer the open round now (posted before it, free slots at a price
    /// capacity earns at, not proven in it yet).
    pub may_answer: bool,
}

/// `GET /v1/providers/{id}/capacity`: the open (or last) capacity round and the provider's
/// offers, with what a worker needs to answer it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderCapacity {
    pub provider: u64,
    /// The last round opened, if any.
    pub round: Option<CapacityRound>,
    pub offers: Vec<CapacityOffer>,
    /// Reward units of the epoch's providers' share each proven slot earns.
    pub units_per_slot: u64,
    /// Highest price per compute unit at which capacity earns.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub max_price: Amount,
}

/// An input file of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputRef {
    pub name: String,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub hash: Hash32,
    pub size: u64,
}

/// One open replica of a provider, with everything its worker needs to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkItem {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    /// `assigned`, `committed` or `revealed`.
    pub status: String,
    pub assigned_height: u64,
    /// Second of block time (since the Unix epoch) from which a commitment is too late.
    pub commit_deadline: u64,
    /// Whether every replica of the unit committed, so reveals are accepted.
    pub reveal_open: bool,
    /// Second of block time (since the Unix epoch) from which a reveal is too late.
    pub reveal_deadline: Option<u64>,
    /// The app's module hash (BLAKE3 of the wasm, a blob).
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub app: Hash32,
    pub inputs: Vec<InputRef>,
    /// The unit's arguments (its line of the job's unit arguments split on spaces), or `null`
    /// when the job gives none.
    pub args: Option<Vec<String>>,
    pub fuel_limit: u64,
    /// The job's minimum memory, the guest's memory limit.
    pub memory_mib: u64,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
}

/// `GET /v1/providers/{id}/work?from=&limit=`: a provider's replicas still to commit or reveal, `from` an index into
/// its work list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkPage {
    pub provider: u64,
    /// The finalized height the list was read at.
    pub height: u64,
    pub work: Vec<WorkItem>,
    pub next: Option<u64>,
}

/// An offer on the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    pub id: u64,
    pub provider: u64,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub owner: Address,
    /// The provider's resources when the offer was posted.
    pub resources: Resources,
    /// The provider's reputation when the offer was posted.
    pub reputation: u32,
    /// Units the offer can still take.
    pub slots: u32,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
    /// Block time the offer was posted at, in seconds since the Unix epoch.
    pub posted_secs: u64,
    /// First block time, in seconds since the Unix epoch, at which the offer is no longer live.
    pub expiry_secs: u64,
}

/// `GET /v1/market/offers?from=&limit=`: offers by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfferPage {
    pub offers: Vec<Offer>,
    pub next: Option<u64>,
}

/// One price level of the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepthLevel {
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
    /// Free slots of live offers at this price.
    pub slots: u64,
    pub offers: u64,
}

/// `GET /v1/market/depth`: free slots of live offers by price, cheapest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Depth {
    pub height: u64,
    pub levels: Vec<DepthLevel>,
}

/// A published app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct App {
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub module_hash: Hash32,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub developer: Address,
    pub name: String,
    pub version: String,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub royalty_per_unit: Amount,
    pub published_height: u64,
}

/// `GET /v1/apps?from=&limit=`: apps in publication order, `from` an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppPage {
    pub apps: Vec<App>,
    pub next: Option<u64>,
}

/// What one provider was paid by a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub provider: u64,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub amount: Amount,
}

/// Where a job's escrow went: `escrowed = paid + royalties + fees + refunded + held`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobAccounts {
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub escrowed: Amount,
    pub paid: Vec<Payment>,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub paid_total: Amount,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub royalties: Amount,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub fees: Amount,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub refunded: Amount,
    /// Still in escrow.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub held: Amount,
}

/// How many units are where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitCounts {
    /// Units no provider runs yet.
    pub waiting: u32,
    pub running: u32,
    pub accepted: u32,
    /// Units that failed, or were cancelled before they ran.
    pub failed: u32,
}

/// One replica of a unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaView {
    pub index: u32,
    pub provider: u64,
    pub offer: u64,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
    pub assigned_height: u64,
    /// Second of block time (since the Unix epoch) from which a commitment is too late.
    pub commit_deadline: u64,
    /// `assigned`, `committed`, `revealed`, `agreed`, `disagreed`, `no_show`, `cancelled`,
    /// `unfinished` (its "could not finish" report stood, paid for the fuel burnt) or `excused`.
    pub status: String,
    #[schema(value_type = Option<schema::Hash>)]
    #[serde(with = "hex32_opt")]
    pub commitment: Option<Hash32>,
    #[schema(value_type = Option<schema::Hash>)]
    #[serde(with = "hex32_opt")]
    pub revealed_digest: Option<Hash32>,
    pub revealed_fuel: Option<u64>,
}

/// Why a unit, or a job's waiting units, got no provider: the matcher's numbers and the
/// sentence rendered from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitReason {
    /// `empty_book`, `no_provider`, `price_too_low` or `slots_taken`.
    pub code: String,
    /// With `no_provider`: the requirement that excludes the most offers.
    pub binding: Option<String>,
    /// Offers live at the batch.
    pub live_offers: u64,
    /// Offers each requirement excludes (requirements that exclude none are left out).
    pub excluded_by: BTreeMap<String, u64>,
    /// Offers that meet every requirement, counted up to a limit.
    pub passed: u64,
    /// False when counting stopped at the limit.
    pub passed_exact: bool,
    /// Lowest ask among the offers that meet every requirement.
    #[schema(value_type = Option<schema::BaseUnits>)]
    #[serde(with = "base_units_opt")]
    pub best_ask: Option<Amount>,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub max_price_per_unit: Amount,
    /// The same, as a sentence.
    pub sentence: String,
}

/// One unit of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitView {
    pub unit: u32,
    /// The unit's own argument line, split on spaces; `null` when the job gives its units no
    /// lines of their own (`unit_args` false). The dashboard places a render job's tiles by it.
    pub args: Option<Vec<String>>,
    /// `waiting`, `running`, `accepted`, `failed` or `cancelled`.
    pub state: String,
    /// Why a waiting unit has no provider yet (from the last batch match).
    pub reason: Option<WaitReason>,
    pub replicas: Vec<ReplicaView>,
    /// Second of block time (since the Unix epoch) from which a reveal is too late.
    pub reveal_deadline: Option<u64>,
    #[schema(value_type = Option<schema::Hash>)]
    #[serde(with = "hex32_opt")]
    pub accepted_digest: Option<Hash32>,
    pub accepted_fuel: Option<u64>,
}

/// `GET /v1/jobs/{id}?from=&limit=`: a job, its accounts and a page of its units (`from` a
/// unit index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: u64,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub requester: Address,
    /// `open`, `done`, `cancelled` or `expired`.
    pub state: String,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub app: Hash32,
    pub inputs: Vec<InputRef>,
    /// Whether each unit has its own argument line.
    pub unit_args: bool,
    pub unit_count: u32,
    pub requirements: Requirements,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub max_price_per_unit: Amount,
    pub trust: u8,
    pub fuel_limit: u64,
    pub max_replicas: u32,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub developer: Address,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub royalty_per_unit: Amount,
    pub submitted_height: u64,
    pub accounts: JobAccounts,
    pub counts: UnitCounts,
    /// Why waiting units got no provider at the last batch match.
    pub wait_reason: Option<WaitReason>,
    pub units: Vec<UnitView>,
    pub next_unit: Option<u32>,
}

impl Job {
    /// Whether the job is finished: done, or cancelled or expired with nothing left running
    /// (its escrow is then back with the requester).
    pub fn is_finished(&self) -> bool {
        job_finished(&self.state, self.counts.running)
    }
}

/// [`Job::is_finished`] on a job's state name and its running units.
fn job_finished(state: &str, running: u32) -> bool {
    match state {
        "done" => true,
        "cancelled" | "expired" => running == 0,
        _ => false,
    }
}

/// An item of `GET /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub id: u64,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub requester: Address,
    pub state: String,
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub app: Hash32,
    pub submitted_height: u64,
    pub unit_count: u32,
    pub counts: UnitCounts,
}

/// `GET /v1/jobs?requester=&height=&from=&limit=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// The `from` of the following page: the next open job's id, or with `height` the next
    /// older job's; `null` on the last page.
    pub next: Option<u64>,
}

/// The `assignment` event of `GET /v1/events`: a replica assigned by a block's batch match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentEvent {
    pub height: u64,
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    pub provider: u64,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub price_per_unit: Amount,
    /// Second of block time (since the Unix epoch) from which a commitment is too late.
    pub commit_deadline: u64,
}

/// `PUT /v1/blobs` answer, and what `HEAD /v1/blobs/{hash}` says in headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// BLAKE3 of the bytes.
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub hash: Hash32,
    pub size: u64,
}

/// `PUT /v1/outputs/{job}/{unit}` request: the hash of an archive already in the blob store.
///
/// Before the unit's verdict only its replicas' providers may offer archives: `replica` and
/// `signature` (hex of the provider's signature over the `OutputsClaim`: chain id, job, unit,
/// replica, archive) are then required. After the verdict anyone may register the archive of
/// the accepted digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsPut {
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub archive: Hash32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Signature>)]
    pub signature: Option<String>,
}

impl OutputsPut {
    /// A registration without a signature: accepted only once the unit has its verdict.
    pub fn unsigned(archive: Hash32) -> Self {
        Self {
            archive,
            replica: None,
            signature: None,
        }
    }

    /// A registration signed with `key`, the provider of replica `replica` of the unit.
    pub fn signed(
        chain_id: &str,
        job: u64,
        unit: u32,
        replica: u32,
        archive: Hash32,
        key: &exo_types::PrivateKey,
    ) -> Self {
        use commonware_codec::Encode;
        let claim = exo_types::OutputsClaim {
            chain_id: chain_id.to_string(),
            job,
            unit,
            replica,
            archive,
        };
        Self {
            archive,
            replica: Some(replica),
            signature: Some(hex::encode(claim.sign(key).encode())),
        }
    }
}

/// `PUT` and `GET /v1/outputs/{job}/{unit}`: the archive of a unit's outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Outputs {
    pub job: u64,
    pub unit: u32,
    /// Blob hash of the archive.
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub archive: Hash32,
    pub size: u64,
    /// The result digest recomputed from the archive.
    #[schema(value_type = schema::Hash)]
    #[serde(with = "hex32")]
    pub digest: Hash32,
    /// Whether the digest is the unit's accepted one; `false` for an archive stored before
    /// the unit was accepted (`PUT` only: `GET` answers only accepted outputs).
    pub accepted: bool,
}

/// Archives in one `POST /v1/outputs/batch`, at most.
pub const MAX_OUTPUTS_BATCH_ITEMS: usize = 64;
/// Bytes of one archive of an outputs batch, at most: a small blob's bound. A bigger archive
/// goes alone (`PUT /v1/outputs/{job}/{unit}/replicas/{replica}`).
pub const MAX_OUTPUTS_BATCH_ARCHIVE_BYTES: usize = 1 << 20;
/// Bytes of one `POST /v1/outputs/batch` body, at most.
pub const MAX_OUTPUTS_BATCH_BYTES: usize = 4 << 20;

/// One replica's outputs archive in an [`OutputsBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputsBatchItem {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    /// The packed outputs archive.
    pub archive: Vec<u8>,
}

/// The body of `POST /v1/outputs/batch` (`application/octet-stream`): replicas' outputs
/// archives, all offered by one provider owner, who signs them together
/// ([`exo_types::OutputsBatchClaim`]). Binary, since archives are: the number of items, then
/// each item's job, unit, replica and archive (length-prefixed), in `commonware-codec`'s
/// encoding, bounded by [`MAX_OUTPUTS_BATCH_ITEMS`] and [`MAX_OUTPUTS_BATCH_ARCHIVE_BYTES`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputsBatch {
    pub items: Vec<OutputsBatchItem>,
}

impl commonware_codec::Write for OutputsBatchItem {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.job.write(buf);
        self.unit.write(buf);
        self.replica.write(buf);
        self.archive.write(buf);
    }
}

impl commonware_codec::EncodeSize for OutputsBatchItem {
    fn encode_size(&self) -> usize {
        self.job.encode_size()
            + self.unit.encode_size()
            + self.replica.encode_size()
            + self.archive.encode_size()
    }
}

impl commonware_codec::Read for OutputsBatchItem {
    type Cfg = ();

    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::{RangeCfg, ReadExt};
        Ok(Self {
            job: u64::read(buf)?,
            unit: u32::read(buf)?,
            replica: u32::read(buf)?,
            archive: Vec::<u8>::read_cfg(
                buf,
                &(RangeCfg::new(..=MAX_OUTPUTS_BATCH_ARCHIVE_BYTES), ()),
            )?,
        })
    }
}

impl OutputsBatch {
    /// The request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        use commonware_codec::Encode;
        self.items.encode().to_vec()
    }

    /// Reads a request body: the whole of it, within the bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::{Decode, RangeCfg};
        let items = Vec::<OutputsBatchItem>::decode_cfg(
            commonware_codec::Copying(bytes),
            &(RangeCfg::new(1..=MAX_OUTPUTS_BATCH_ITEMS), ()),
        )?;
        Ok(Self { items })
    }

    /// What the provider signs: each item's replica and its archive's BLAKE3.
    pub fn claim(&self, chain_id: &str) -> exo_types::OutputsBatchClaim {
        exo_types::OutputsBatchClaim {
            chain_id: chain_id.to_string(),
            items: self
                .items
                .iter()
                .map(|item| {
                    let hash = *blake3::hash(&item.archive).as_bytes();
                    (item.job, item.unit, item.replica, hash)
                })
                .collect(),
        }
    }
}

/// `POST /v1/outputs/batch` response: what became of each archive, in the order sent. An item
/// has its registered `outputs` or the `error` that refused it alone (the code and message a
/// single upload of it would have got); the others are unaffected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputsBatchResult {
    pub items: Vec<OutputsBatchItemResult>,
}

/// One archive of an outputs batch: registered, or refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputsBatchItemResult {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::ErrorBody>,
}

#[cfg(test)]
mod tests {
    use super::job_finished;

    #[test]
    fn an_expired_job_is_finished_once_nothing_runs() {
        assert!(job_finished("done", 0));
        for ended in ["cancelled", "expired"] {
            assert!(job_finished(ended, 0), "{ended}");
            assert!(!job_finished(ended, 1), "{ended} with a unit running");
        }
        assert!(!job_finished("open", 0));
    }
}
