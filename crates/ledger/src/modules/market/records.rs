//! Records of the compute market: providers, offers, apps, jobs, units and replicas.
//!
//! Encodings are frozen like every state record: the state root commits to these bytes.

use crate::state::Record;
use commonware_codec::{Copying, Error, RangeCfg, Read, ReadExt, Write};
use exo_market::{Offer, Resources};
use exo_types::{Address, Amount, Hash32, JobSpec, read_bounded_string, write_bytes};

/// Defines a record that is one integer of type `$int` (a count, a position, an id), named
/// `$what` in faults.
macro_rules! int_record {
    ($int:ty, $(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name(pub $int);

        impl Record for $name {
            const WHAT: &'static str = $what;
            const MAX_BYTES: usize = std::mem::size_of::<$int>();
            fn put(&self, out: &mut Vec<u8>) {
                self.0.write(out);
            }
            fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
                Ok(Self(<$int>::read(buf)?))
            }
        }
    };
}

/// Defines a record that names one replica or unit slot, `(job, unit, replica)`, named `$what`
/// in faults.
macro_rules! replica_record {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name(pub (u64, u32, u32));

        impl Record for $name {
            const WHAT: &'static str = $what;
            const MAX_BYTES: usize = 16;
            fn put(&self, out: &mut Vec<u8>) {
                let (j, u, r) = self.0;
                j.write(out);
                u.write(out);
                r.write(out);
            }
            fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
                Ok(Self((u64::read(buf)?, u32::read(buf)?, u32::read(buf)?)))
            }
        }
    };
}

/// Reads an address. Decoding one decompresses a curve point (some 10 us), and records name
/// the same few addresses over and over (a job's requester and developer, the providers'
/// owners) while the ledger decodes them for every result committed or revealed: the
/// addresses decoded last are kept, per thread. Only speed depends on it.
fn read_address(buf: &mut Copying<'_>) -> Result<Address, Error> {
    use std::{cell::RefCell, collections::BTreeMap};
    const KEPT: usize = 4_096;
    thread_local! {
        static DECODED: RefCell<BTreeMap<[u8; 32], Address>> = const { RefCell::new(BTreeMap::new()) };
    }
    let raw = <[u8; 32]>::read(buf)?;
    if let Some(address) = DECODED.with(|d| d.borrow().get(&raw).cloned()) {
        return Ok(address);
    }
    let address = Address::read(&mut Copying(&raw))?;
    DECODED.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() >= KEPT {
            d.clear();
        }
        d.insert(raw, address.clone());
    });
    Ok(address)
}

fn put_vec<T>(items: &[T], out: &mut Vec<u8>, put: impl Fn(&T, &mut Vec<u8>)) {
    items.len().write(out);
    for item in items {
        put(item, out);
    }
}

fn take_vec<'a, T>(
    buf: &mut Copying<'a>,
    max: usize,
    take: impl Fn(&mut Copying<'a>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let len = usize::read_cfg(buf, &RangeCfg::new(0..=max))?;
    let mut items = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        items.push(take(buf)?);
    }
    Ok(items)
}

fn put_opt<T>(value: &Option<T>, out: &mut Vec<u8>, put: impl Fn(&T, &mut Vec<u8>)) {
    match value {
        None => 0u8.write(out),
        Some(v) => {
            1u8.write(out);
            put(v, out);
        }
    }
}

fn take_opt<'a, T>(
    buf: &mut Copying<'a>,
    take: impl Fn(&mut Copying<'a>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match u8::read(buf)? {
        0 => Ok(None),
        1 => Ok(Some(take(buf)?)),
        tag => Err(Error::InvalidEnum(tag)),
    }
}

/// Upper bound on replicas of one unit (trust plus extra replicas plus an audit).
pub const MAX_UNIT_REPLICAS: usize = 16;
/// Upper bound on the providers paid by one job that a job record lists.
pub const MAX_PAID_PROVIDERS: usize = 4_096;

/// A registered provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub id: u64,
    pub owner: Address,
    pub resources: Resources,
    pub bond: Amount,
    /// 0 to [`crate::REPUTATION_MAX`]; new providers start in the middle.
    pub reputation: u32,
    /// Replicas assigned and not yet finished.
    pub active: u32,
    pub valid: u64,
    pub invalid: u64,
    pub missed: u64,
    pub retired: bool,
    pub registered_height: u64,
    /// The second (of block time) at which `reputation` was last brought up to date: what is
    /// above the starting reputation decays from then on
    /// ([`super::reputation::current_reputation`]).
    pub reputation_secs: u64,
    /// The height of the block whose batch match gave the provider its first replica:
    /// providers first matched in the same block get no trusted bonus on a unit they share
    /// ([`super::reputation::deciding_weight`]).
    pub first_matched_height: Option<u64>,
    /// The second (of block time) of the provider's first confirmed result since it
    /// registered or was last caught: trusted weight needs a record `trusted_min_age_secs`
    /// old ([`super::reputation::weight`]). Meaningless while `valid` is 0.
    pub valid_since_secs: u64,
}

impl Record for Provider {
    const WHAT: &'static str = "provider";
    const MAX_BYTES: usize = 1024;
    fn put(&self, out: &mut Vec<u8>) {
        self.id.write(out);
        self.owner.write(out);
        self.resources.write(out);
        self.bond.write(out);
        self.reputation.write(out);
        self.active.write(out);
        self.valid.write(out);
        self.invalid.write(out);
        self.missed.write(out);
        self.retired.write(out);
        self.registered_height.write(out);
        self.reputation_secs.write(out);
        put_opt(&self.first_matched_height, out, |h, out| h.write(out));
        self.valid_since_secs.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            id: u64::read(buf)?,
            owner: read_address(buf)?,
            resources: Resources::read(buf)?,
            bond: Amount::read(buf)?,
            reputation: u32::read(buf)?,
            active: u32::read(buf)?,
            valid: u64::read(buf)?,
            invalid: u64::read(buf)?,
            missed: u64::read(buf)?,
            retired: bool::read(buf)?,
            registered_height: u64::read(buf)?,
            reputation_secs: u64::read(buf)?,
            first_matched_height: take_opt(buf, u64::read)?,
            valid_since_secs: u64::read(buf)?,
        })
    }
}

/// An offer on the book, with the account that may cancel it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferRecord {
    pub owner: Address,
    pub offer: Offer,
}

impl Record for OfferRecord {
    const WHAT: &'static str = "offer";
    const MAX_BYTES: usize = 1024;
    fn put(&self, out: &mut Vec<u8>) {
        self.owner.write(out);
        self.offer.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            owner: read_address(buf)?,
            offer: Offer::read(buf)?,
        })
    }
}

/// A published task app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub module_hash: Hash32,
    pub developer: Address,
    pub name: String,
    pub version: String,
    pub royalty_per_unit: Amount,
    pub published_height: u64,
}

impl Record for App {
    const WHAT: &'static str = "app";
    const MAX_BYTES: usize = 512;
    fn put(&self, out: &mut Vec<u8>) {
        self.module_hash.write(out);
        self.developer.write(out);
        write_bytes(self.name.as_bytes(), out);
        write_bytes(self.version.as_bytes(), out);
        self.royalty_per_unit.write(out);
        self.published_height.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            module_hash: Hash32::read(buf)?,
            developer: read_address(buf)?,
            name: read_bounded_string(buf, exo_types::MAX_APP_NAME_LEN)?,
            version: read_bounded_string(buf, exo_types::MAX_APP_NAME_LEN)?,
            royalty_per_unit: Amount::read(buf)?,
            published_height: u64::read(buf)?,
        })
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Units are waiting, running or being verified.
    Open = 0,
    /// Every unit is accepted or failed; the unspent escrow went back.
    Done = 1,
    /// The requester cancelled: no new assignments; the escrow returns once running units end.
    Cancelled = 2,
    /// Its wait window passed: units still waiting failed, no new assignments; the escrow
    /// returns once running units end.
    Expired = 3,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// Where a job's escrow went, token for token: `escrowed = paid + royalties + fees + refunded
/// + held`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobAccounts {
    pub escrowed: Amount,
    /// Paid to each provider, by provider id.
    pub paid: Vec<(u64, Amount)>,
    pub royalties: Amount,
    pub fees: Amount,
    pub refunded: Amount,
    /// Still in escrow.
    pub held: Amount,
}

impl JobAccounts {
    /// Total paid to providers.
    pub fn paid_total(&self) -> Amount {
        Amount(self.paid.iter().map(|(_, a)| a.0).sum())
    }
}

impl Record for JobAccounts {
    const WHAT: &'static str = "job accounts";
    const MAX_BYTES: usize = 16 * 5 + 8 + MAX_PAID_PROVIDERS * 24;
    fn put(&self, out: &mut Vec<u8>) {
        self.escrowed.write(out);
        put_vec(&self.paid, out, |(p, a), out| {
            p.write(out);
            a.write(out);
        });
        self.royalties.write(out);
        self.fees.write(out);
        self.refunded.write(out);
        self.held.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            escrowed: Amount::read(buf)?,
            paid: take_vec(buf, MAX_PAID_PROVIDERS, |b| {
                Ok((u64::read(b)?, Amount::read(b)?))
            })?,
            royalties: Amount::read(buf)?,
            fees: Amount::read(buf)?,
            refunded: Amount::read(buf)?,
            held: Amount::read(buf)?,
        })
    }
}

/// A unit that needs providers: the replica indices to fill and who must not get them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingUnit {
    pub unit: u32,
    /// Whether the unit runs already (it had a replica assigned): then the matcher fills
    /// exactly `replicas`; a new unit asks for the replicas its trust level needs.
    pub started: bool,
    pub replicas: Vec<u32>,
    pub exclude: Vec<u64>,
    /// Whether the replicas sought decide the unit: sought for a contested unit (seals that
    /// disagree, or a result revealed). Only providers past probation take them, unless the
    /// book has none.
    pub deciding: bool,
}

impl Record for WaitingUnit {
    const WHAT: &'static str = "waiting unit";
    const MAX_BYTES: usize = 18 + 4 * MAX_UNIT_REPLICAS + 8 * exo_market::MAX_EXCLUDE_PER_UNIT;
    fn put(&self, out: &mut Vec<u8>) {
        self.unit.write(out);
        self.started.write(out);
        put_vec(&self.replicas, out, |r, out| r.write(out));
        put_vec(&self.exclude, out, |p, out| p.write(out));
        self.deciding.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            unit: u32::read(buf)?,
            started: bool::read(buf)?,
            replicas: take_vec(buf, MAX_UNIT_REPLICAS, u32::read)?,
            exclude: take_vec(buf, exo_market::MAX_EXCLUDE_PER_UNIT, u64::read)?,
            deciding: bool::read(buf)?,
        })
    }
}

/// The units of a job that need providers, in unit order: read by the batch match, by
/// [`crate::modules::market`]'s search for another replica and by cancellation, never by the
/// per-result path (a unit's own [`Unit::sought`] says whether it has an entry here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitingList(pub Vec<WaitingUnit>);

impl Record for WaitingList {
    const WHAT: &'static str = "waiting list";
    const MAX_BYTES: usize = crate::state::MAX_VALUE_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        put_vec(&self.0, out, |w, out| w.put(out));
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_vec(
            buf,
            exo_types::MAX_JOB_UNITS as usize,
            WaitingUnit::take,
        )?))
    }
}

/// What a job asked for, as submitted: written once, never rewritten. Only the batch match
/// (requirements and price) and readers (inputs and unit arguments) need it.
impl Record for JobSpec {
    const WHAT: &'static str = "job spec";
    const MAX_BYTES: usize = crate::state::MAX_VALUE_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        self.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        JobSpec::read(buf)
    }
}

/// A job's header: its terms and progress, small and of a bounded size whatever the job's
/// size, so that a result's settlement reads and rewrites only this. The spec
/// ([`JobSpec`]) and the units still sought ([`WaitingList`]) are records of their own; the
/// unit records are the truth of which units run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub requester: Address,
    /// From the spec: the app, the number of units and the trust level.
    pub app: Hash32,
    pub units: u32,
    pub trust: u8,
    /// Fuel limit of each unit (from the requirements).
    pub fuel_limit: u64,
    /// The app's developer and royalty when the job was submitted.
    pub developer: Address,
    pub royalty_per_unit: Amount,
    /// Most replicas any unit may get: trust plus extra replicas plus one audit.
    pub max_replicas: u32,
    pub submitted_height: u64,
    pub state: JobState,
    pub accounts: JobAccounts,
    /// Entries in the job's [`WaitingList`]: units that need providers.
    pub waiting: u32,
    /// Units with at least one replica assigned and no verdict yet.
    pub running: u32,
    pub accepted: u32,
    pub failed: u32,
    /// Why waiting units got no provider at the last batch.
    pub wait_reason: Option<WaitReason>,
}

impl Job {
    /// Units never assigned that still wait for their first replica.
    pub fn new_waiting(&self) -> u32 {
        if self.state != JobState::Open {
            return 0;
        }
        self.units
            .saturating_sub(self.running)
            .saturating_sub(self.accepted)
            .saturating_sub(self.failed)
    }
}

impl Record for Job {
    const WHAT: &'static str = "job";
    const MAX_BYTES: usize = 512 + JobAccounts::MAX_BYTES + WaitReason::MAX_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        self.id.write(out);
        self.requester.write(out);
        self.app.write(out);
        self.units.write(out);
        self.trust.write(out);
        self.fuel_limit.write(out);
        self.developer.write(out);
        self.royalty_per_unit.write(out);
        self.max_replicas.write(out);
        self.submitted_height.write(out);
        (self.state as u8).write(out);
        self.accounts.put(out);
        self.waiting.write(out);
        self.running.write(out);
        self.accepted.write(out);
        self.failed.write(out);
        put_opt(&self.wait_reason, out, |r, out| r.put(out));
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            id: u64::read(buf)?,
            requester: read_address(buf)?,
            app: Hash32::read(buf)?,
            units: u32::read(buf)?,
            trust: u8::read(buf)?,
            fuel_limit: u64::read(buf)?,
            developer: read_address(buf)?,
            royalty_per_unit: Amount::read(buf)?,
            max_replicas: u32::read(buf)?,
            submitted_height: u64::read(buf)?,
            state: match u8::read(buf)? {
                0 => JobState::Open,
                1 => JobState::Done,
                2 => JobState::Cancelled,
                3 => JobState::Expired,
                tag => return Err(Error::InvalidEnum(tag)),
            },
            accounts: JobAccounts::take(buf)?,
            waiting: u32::read(buf)?,
            running: u32::read(buf)?,
            accepted: u32::read(buf)?,
            failed: u32::read(buf)?,
            wait_reason: take_opt(buf, WaitReason::take)?,
        })
    }
}

/// What became of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// Assigned; the provider has not committed yet.
    Assigned = 0,
    Committed = 1,
    Revealed = 2,
    /// Its result was accepted (it agreed with the accepted result) and it was paid.
    Agreed = 3,
    /// Its result disagreed with the accepted one, or no result reached agreement.
    Disagreed = 4,
    /// It missed a deadline and was replaced.
    NoShow = 5,
    /// The job was cancelled before it committed.
    Cancelled = 6,
    /// It reported that it could not finish on its machine ([`exo_types::Unfinished`]), and
    /// enough replicas agreed that the unit cannot be finished: the unit failed and the
    /// replica was paid for the fuel every report burnt at least.
    Unfinished = 7,
    /// It reported that it could not finish, and other replicas agreed on a result: released
    /// unpaid and unpunished, one excuse of its provider's budget spent.
    Excused = 8,
}

impl ReplicaStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Committed => "committed",
            Self::Revealed => "revealed",
            Self::Agreed => "agreed",
            Self::Disagreed => "disagreed",
            Self::NoShow => "no_show",
            Self::Cancelled => "cancelled",
            Self::Unfinished => "unfinished",
            Self::Excused => "excused",
        }
    }

    /// Whether the replica still awaits its verdict: its provider counts it as active, and
    /// its bond answers for it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Assigned | Self::Committed | Self::Revealed)
    }

    /// Whether the replica sits in its provider's work set: until it reveals (it holds an
    /// offer slot only until it commits). A revealed replica's work is done; were it held until
    /// the verdict, two units in dispute could each wait for the deciding replica of a provider
    /// whose only slot the other holds, and the market would stall.
    pub fn holds_slot(self) -> bool {
        matches!(self, Self::Assigned | Self::Committed)
    }
}

/// One provider's copy of one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub index: u32,
    pub provider: u64,
    pub offer: u64,
    pub price_per_unit: Amount,
    pub assigned_height: u64,
    /// The second (of block time, since the Unix epoch) by which the replica must commit.
    pub commit_deadline: u64,
    pub commitment: Option<Hash32>,
    pub reveal: Option<(Hash32, u64)>,
    pub status: ReplicaStatus,
    /// The seal committed with the commitment ([`exo_types::result_seal`]): replicas are
    /// compared on it before any of them reveals, and a reveal must match it.
    pub seal: Option<Hash32>,
}

impl Record for Replica {
    const WHAT: &'static str = "replica";
    const MAX_BYTES: usize = 256;
    fn put(&self, out: &mut Vec<u8>) {
        self.index.write(out);
        self.provider.write(out);
        self.offer.write(out);
        self.price_per_unit.write(out);
        self.assigned_height.write(out);
        self.commit_deadline.write(out);
        put_opt(&self.commitment, out, |c, out| c.write(out));
        put_opt(&self.reveal, out, |(d, f), out| {
            d.write(out);
            f.write(out);
        });
        (self.status as u8).write(out);
        put_opt(&self.seal, out, |s, out| s.write(out));
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            index: u32::read(buf)?,
            provider: u64::read(buf)?,
            offer: u64::read(buf)?,
            price_per_unit: Amount::read(buf)?,
            assigned_height: u64::read(buf)?,
            commit_deadline: u64::read(buf)?,
            commitment: take_opt(buf, Hash32::read)?,
            reveal: take_opt(buf, |b| Ok((Hash32::read(b)?, u64::read(b)?)))?,
            status: match u8::read(buf)? {
                0 => ReplicaStatus::Assigned,
                1 => ReplicaStatus::Committed,
                2 => ReplicaStatus::Revealed,
                3 => ReplicaStatus::Agreed,
                4 => ReplicaStatus::Disagreed,
                5 => ReplicaStatus::NoShow,
                6 => ReplicaStatus::Cancelled,
                7 => ReplicaStatus::Unfinished,
                8 => ReplicaStatus::Excused,
                tag => return Err(Error::InvalidEnum(tag)),
            },
            seal: take_opt(buf, Hash32::read)?,
        })
    }
}

/// Where a unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    Running = 0,
    Accepted = 1,
    Failed = 2,
}

impl UnitState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Accepted => "accepted",
            Self::Failed => "failed",
        }
    }
}

/// A unit that has had at least one replica assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub job: u64,
    pub unit: u32,
    pub state: UnitState,
    pub replicas: Vec<Replica>,
    /// Set once every open replica committed: reveals are due by this second (of block time,
    /// since the Unix epoch).
    pub reveal_deadline: Option<u64>,
    /// The accepted result digest and fuel.
    pub accepted: Option<(Hash32, u64)>,
    /// Whether a replica of this unit is still sought (it has an entry in its job's
    /// [`WaitingList`]): reveals do not open before it is placed.
    pub sought: bool,
    /// Where the unit stands with its hidden audit: reveals open only once it is drawn.
    pub audit: AuditDraw,
}

/// Whether a unit gets a hidden audit replica is drawn once, after every replica it had
/// committed, from the seed of a block that none of them and not the proposer of the block
/// that took the last commitment knew ([`AUDIT_SEED_DELAY`]). Until then nothing on chain
/// differs between a unit that will be audited and one that will not, so no replica can tell
/// before committing whether it will be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditDraw {
    /// Some replica has not committed yet.
    Undrawn,
    /// Every replica committed; drawn at this height.
    Due(u64),
    /// Drawn: the unit got its audit replica, or none, and reveals may open.
    Drawn,
    /// Drawn an audit whose replica is sought: if nobody takes it by this second (a market too
    /// thin to audit the unit: every other provider is busy or already holds a replica), the
    /// search lapses rather than keep the unit's committed replicas unpaid until the job expires.
    Seeking(u64),
    /// Drawn an audit nobody took within a commit window; reveals opened without it.
    Lapsed,
}

/// Blocks between the one that takes a unit's last commitment and the one whose seed draws
/// its audit. A block's seed is its parent's digest, which the parent's proposer chose: at
/// one block, the committing block's own proposer would pick the draw. At two, the seed is
/// the digest of a block built after every commitment was final, by another proposer.
pub const AUDIT_SEED_DELAY: u64 = 2;

impl AuditDraw {
    /// Whether the draw is behind the unit (whatever came of it).
    pub fn is_drawn(&self) -> bool {
        !matches!(self, Self::Undrawn | Self::Due(_))
    }

    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Self::Undrawn => 0u8.write(out),
            Self::Due(height) => {
                1u8.write(out);
                height.write(out);
            }
            Self::Drawn => 2u8.write(out),
            Self::Seeking(second) => {
                3u8.write(out);
                second.write(out);
            }
            Self::Lapsed => 4u8.write(out),
        }
    }

    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        match u8::read(buf)? {
            0 => Ok(Self::Undrawn),
            1 => Ok(Self::Due(u64::read(buf)?)),
            2 => Ok(Self::Drawn),
            3 => Ok(Self::Seeking(u64::read(buf)?)),
            4 => Ok(Self::Lapsed),
            tag => Err(Error::InvalidEnum(tag)),
        }
    }
}

impl Record for Unit {
    const WHAT: &'static str = "unit";
    const MAX_BYTES: usize = 64 + 256 * MAX_UNIT_REPLICAS;
    fn put(&self, out: &mut Vec<u8>) {
        self.job.write(out);
        self.unit.write(out);
        (self.state as u8).write(out);
        put_vec(&self.replicas, out, |r, out| r.put(out));
        put_opt(&self.reveal_deadline, out, |h, out| h.write(out));
        put_opt(&self.accepted, out, |(d, f), out| {
            d.write(out);
            f.write(out);
        });
        self.sought.write(out);
        self.audit.put(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            job: u64::read(buf)?,
            unit: u32::read(buf)?,
            state: match u8::read(buf)? {
                0 => UnitState::Running,
                1 => UnitState::Accepted,
                2 => UnitState::Failed,
                tag => return Err(Error::InvalidEnum(tag)),
            },
            replicas: take_vec(buf, MAX_UNIT_REPLICAS, Replica::take)?,
            reveal_deadline: take_opt(buf, u64::read)?,
            accepted: take_opt(buf, |b| Ok((Hash32::read(b)?, u64::read(b)?)))?,
            sought: bool::read(buf)?,
            audit: AuditDraw::take(buf)?,
        })
    }
}

/// A list of ids (the offer book, the active jobs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdList(pub Vec<u64>);

impl Record for IdList {
    const WHAT: &'static str = "id list";
    const MAX_BYTES: usize = crate::state::MAX_VALUE_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        put_vec(&self.0, out, |id, out| id.write(out));
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_vec(buf, 1 << 20, u64::read)?))
    }
}

int_record!(
    u32,
    /// How many deadlines fall due in one second of block time, or audit draws at one height:
    /// each is a [`Deadline`] at its position, in the order they were added.
    DeadlineCount,
    "deadline count"
);

replica_record!(
    /// One thing falling due in a second of block time: a (job, unit, replica) commit deadline, a
    /// unit's reveal deadline (replica [`REVEAL_DEADLINE`]) or audit lapse (replica
    /// [`AUDIT_LAPSE`]), or a job's wait deadline (unit [`JOB_EXPIRY`]); or, in the list of a
    /// height, a unit's audit draw (replica [`AUDIT_DRAW`]).
    Deadline,
    "deadline"
);

/// The replica index that marks a unit's reveal deadline in a [`Deadline`].
pub const REVEAL_DEADLINE: u32 = u32::MAX;
/// The replica index that marks a unit's audit draw ([`AuditDraw::Due`]) in a
/// [`Deadline`]: no replica has this index. The draw waits for a height, not a second (its
/// seed belongs to a block), so it is filed in the list of its height (market table
/// `AuditDraws`). A chain that filed draws under seconds, as this code once did, still has them
/// drawn: one met before its height is filed again for that height.
pub const AUDIT_DRAW: u32 = u32::MAX - 1;
/// The replica index that marks the second a unit's audit search lapses
/// ([`AuditDraw::Seeking`]) in a [`Deadline`]: no replica has this index.
pub const AUDIT_LAPSE: u32 = u32::MAX - 2;
/// The unit index (with replica [`REVEAL_DEADLINE`]) that marks a job's wait deadline in a
/// [`Deadline`]: no unit has this index.
pub const JOB_EXPIRY: u32 = u32::MAX;

int_record!(
    u64,
    /// The last second (of block time, since the Unix epoch) whose deadlines were processed:
    /// the next block starts after it, so that no second is skipped when blocks are seconds
    /// apart and a long halt is caught up over several blocks.
    DeadlineCursor,
    "deadline cursor"
);

/// A capacity round (`capacity.rs`): opened at a block nobody could predict, with that
/// block's seed; until it closes, every offer posted before it may prove its free slots
/// ([`exo_types::CapacityChallenge`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapacityRound {
    /// Numbered from 1 (0: no round yet).
    pub number: u64,
    pub seed: Hash32,
    /// Time of the block that opened it, in milliseconds since the Unix epoch: only offers
    /// posted in an earlier second may answer.
    pub opened_ms: u64,
    /// Proofs are taken up to this block time, in milliseconds, included.
    pub closes_ms: u64,
    /// Hashes one slot's share of a proof takes on average, fixed when the round opened.
    pub hashes_per_slot: u64,
}

impl CapacityRound {
    /// Whether the round takes proofs at block time `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.number > 0 && now_ms <= self.closes_ms
    }
}

impl Record for CapacityRound {
    const WHAT: &'static str = "capacity round";
    const MAX_BYTES: usize = 8 + 32 + 8 + 8 + 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.number.write(out);
        self.seed.write(out);
        self.opened_ms.write(out);
        self.closes_ms.write(out);
        self.hashes_per_slot.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            number: u64::read(buf)?,
            seed: Hash32::read(buf)?,
            opened_ms: u64::read(buf)?,
            closes_ms: u64::read(buf)?,
            hashes_per_slot: u64::read(buf)?,
        })
    }
}

int_record!(
    u64,
    /// The last capacity round an offer proved its free slots in: one proof per offer and
    /// round.
    ProvenRound,
    "proven round"
);

/// Id counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub next_provider: u64,
    pub next_offer: u64,
    pub next_job: u64,
}

impl Record for Counters {
    const WHAT: &'static str = "counters";
    const MAX_BYTES: usize = 64;
    fn put(&self, out: &mut Vec<u8>) {
        self.next_provider.write(out);
        self.next_offer.write(out);
        self.next_job.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            next_provider: u64::read(buf)?,
            next_offer: u64::read(buf)?,
            next_job: u64::read(buf)?,
        })
    }
}

int_record!(
    u32,
    /// How many open replicas a provider holds: the length of its work set. The set is kept as
    /// three kinds of records so that adding or removing one replica writes a fixed number of
    /// them, whatever the provider holds: this count, the replica at each position
    /// ([`WorkItem`], positions `0..count`), and the position of each replica ([`WorkSlot`]).
    /// A removal moves the last replica into the freed position, so the order is not the order of
    /// assignment.
    WorkCount,
    "work count"
);

replica_record!(
    /// One open replica of a provider, at a position of its work set: (job, unit, replica).
    WorkItem,
    "work item"
);

int_record!(
    u32,
    /// The position of an open replica in its provider's work set.
    WorkSlot,
    "work slot"
);

/// One assignment made by a block's batch match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRecord {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    pub provider: u64,
    pub price_per_unit: Amount,
    /// The second (of block time, since the Unix epoch) by which the replica must commit.
    pub commit_deadline: u64,
}

/// The assignments of one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentList(pub Vec<AssignmentRecord>);

impl Record for AssignmentList {
    const WHAT: &'static str = "assignment list";
    const MAX_BYTES: usize = crate::state::MAX_VALUE_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        put_vec(&self.0, out, |a, out| {
            a.job.write(out);
            a.unit.write(out);
            a.replica.write(out);
            a.provider.write(out);
            a.price_per_unit.write(out);
            a.commit_deadline.write(out);
        });
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_vec(buf, 1 << 20, |b| {
            Ok(AssignmentRecord {
                job: u64::read(b)?,
                unit: u32::read(b)?,
                replica: u32::read(b)?,
                provider: u64::read(b)?,
                price_per_unit: Amount::read(b)?,
                commit_deadline: u64::read(b)?,
            })
        })?))
    }
}

/// Published apps (module hash and developer), in publication order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppList(pub Vec<(Hash32, Address)>);

impl Record for AppList {
    const WHAT: &'static str = "app list";
    const MAX_BYTES: usize = crate::state::MAX_VALUE_BYTES;
    fn put(&self, out: &mut Vec<u8>) {
        put_vec(&self.0, out, |(h, d), out| {
            h.write(out);
            d.write(out);
        });
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_vec(buf, super::MAX_APPS, |b| {
            Ok((Hash32::read(b)?, read_address(b)?))
        })?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf as _;
    use commonware_codec::Encode;
    use commonware_cryptography::Signer;

    #[test]
    fn addresses_read_the_same_whether_kept_or_not() {
        for seed in 0..3u64 {
            let address = exo_types::PrivateKey::from_seed(seed).public_key();
            let bytes = address.encode();
            for _ in 0..2 {
                let mut buf = Copying(&bytes);
                assert_eq!(read_address(&mut buf).unwrap(), address);
                assert!(!buf.has_remaining());
            }
        }
        // Bytes that are no curve point are refused every time, never kept.
        let bad = (0u8..=255)
            .map(|b| [b; 32])
            .find(|raw| Address::read(&mut Copying(raw)).is_err())
            .unwrap();
        for _ in 0..2 {
            assert!(read_address(&mut Copying(&bad)).is_err());
        }
        assert!(read_address(&mut Copying(&[1, 2, 3])).is_err());
    }
}

/// Why a job's waiting units got no provider at the last batch, in the matcher's numbers: how
/// many live offers each requirement excluded, how many passed them all, the best ask against
/// the job's maximum price. The verdict and its sentence are derived from these and the job's
/// requirements ([`WaitReason::explain`]), outside consensus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitReason {
    pub live_offers: u64,
    /// Offers each requirement excludes, in [`exo_market::Constraint::ALL`] order.
    pub excluded_by: [u64; exo_market::Constraint::ALL.len()],
    pub passed: u64,
    pub passed_exact: bool,
    pub best_ask: Option<u128>,
    pub max_price_per_unit: u128,
}

impl WaitReason {
    pub fn of(e: &exo_market::Explanation) -> Self {
        Self {
            live_offers: e.live_offers,
            excluded_by: e.excluded_by.0,
            passed: e.passed,
            passed_exact: e.passed_exact,
            best_ask: e.best_ask,
            max_price_per_unit: e.max_price_per_unit,
        }
    }

    /// The matcher's explanation again, with its verdict, for `requirements` (the job's).
    pub fn explain(&self, requirements: &exo_market::Requirements) -> exo_market::Explanation {
        exo_market::Explanation::new(
            requirements,
            self.live_offers,
            exo_market::ExclusionCounts(self.excluded_by),
            self.passed,
            self.passed_exact,
            self.best_ask,
            self.max_price_per_unit,
        )
    }
}

impl Record for WaitReason {
    const WHAT: &'static str = "wait reason";
    // live offers, ten exclusion counts and passed (8 bytes each), passed_exact, the optional
    // best ask (tag and 16 bytes), the maximum price.
    const MAX_BYTES: usize = 8 * 12 + 1 + 17 + 16;
    fn put(&self, out: &mut Vec<u8>) {
        self.live_offers.write(out);
        for n in self.excluded_by {
            n.write(out);
        }
        self.passed.write(out);
        self.passed_exact.write(out);
        put_opt(&self.best_ask, out, |a, out| a.write(out));
        self.max_price_per_unit.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        let live_offers = u64::read(buf)?;
        let mut excluded_by = [0u64; exo_market::Constraint::ALL.len()];
        for n in excluded_by.iter_mut() {
            *n = u64::read(buf)?;
        }
        Ok(Self {
            live_offers,
            excluded_by,
            passed: u64::read(buf)?,
            passed_exact: bool::read(buf)?,
            best_ask: take_opt(buf, u128::read)?,
            max_price_per_unit: u128::read(buf)?,
        })
    }
}

/// The "could not finish" reports of a provider that were contradicted (another replica's
/// result was accepted) in one window of [`super::MarketParams::excuse_window_secs`]: each is
/// excused while `used` is below [`super::MarketParams::max_excuses_per_window`], and counts as
/// a no-show after, so that reporting is no way to dodge work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Excuses {
    /// The window: the block's time in seconds divided by `excuse_window_secs`.
    pub window: u64,
    pub used: u32,
}

impl Record for Excuses {
    const WHAT: &'static str = "excuses";
    const MAX_BYTES: usize = 12;
    fn put(&self, out: &mut Vec<u8>) {
        self.window.write(out);
        self.used.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            window: u64::read(buf)?,
            used: u32::read(buf)?,
        })
    }
}

int_record!(
    u64,
    /// The provider an owner address registered.
    OwnerIndex,
    "provider owner"
);

/// What one account holds on the market, so that its caps are checked without scanning the
/// book or the open jobs: its open jobs, its published apps and the ids of its offers on the
/// book.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    pub open_jobs: u32,
    pub apps: u32,
    pub offers: Vec<u64>,
}

impl Record for Holdings {
    const WHAT: &'static str = "holdings";
    const MAX_BYTES: usize = 4 + 4 + 9 + 8 * super::params::MAX_OFFERS_PER_PROVIDER as usize;
    fn put(&self, out: &mut Vec<u8>) {
        self.open_jobs.write(out);
        self.apps.write(out);
        put_vec(&self.offers, out, |id, out| id.write(out));
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            open_jobs: u32::read(buf)?,
            apps: u32::read(buf)?,
            offers: take_vec(
                buf,
                super::params::MAX_OFFERS_PER_PROVIDER as usize,
                u64::read,
            )?,
        })
    }
}

/// Most co-replicas a provider's [`Partners`] remembers: past it the one confirmed with
/// longest ago is forgotten.
pub const MAX_PARTNERS: usize = 16;

/// The providers that confirmed a provider's results most recently, with how many of its
/// results each confirmed, least recent first. A pair of providers that keep confirming each
/// other gains less reputation each time ([`super::reputation::confirmation_gain`]). Bounded
/// at write: a new partner past [`MAX_PARTNERS`] forgets the least recent one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partners(pub Vec<(u64, u32)>);

impl Partners {
    /// How many of the provider's results `partner` confirmed, as far as it is remembered.
    pub fn count(&self, partner: u64) -> u32 {
        self.0
            .iter()
            .find(|(p, _)| *p == partner)
            .map_or(0, |(_, n)| *n)
    }

    /// Counts one more confirmation by `partner`, which becomes the most recent.
    pub fn confirmed_by(&mut self, partner: u64) {
        let count = self.count(partner).saturating_add(1);
        self.0.retain(|(p, _)| *p != partner);
        if self.0.len() >= MAX_PARTNERS {
            self.0.remove(0);
        }
        self.0.push((partner, count));
    }
}

impl Record for Partners {
    const WHAT: &'static str = "partners";
    const MAX_BYTES: usize = 9 + 12 * MAX_PARTNERS;
    fn put(&self, out: &mut Vec<u8>) {
        put_vec(&self.0, out, |(p, n), out| {
            p.write(out);
            n.write(out);
        });
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_vec(buf, MAX_PARTNERS, |b| {
            Ok((u64::read(b)?, u32::read(b)?))
        })?))
    }
}
