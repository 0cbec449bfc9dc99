//! The market's tables. Frozen: a new table takes the next free byte.

use crate::state::{Key, Namespace, keys};
use exo_types::{Address, Hash32};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// A provider by id.
    Provider = 0,
    /// A provider id by owner address.
    ProviderOwner = 1,
    /// An offer by id.
    Offer = 2,
    /// A job by id.
    Job = 3,
    /// A work unit by job id and unit index.
    Unit = 4,
    /// An app by module hash and developer (the hash of both).
    App = 5,
    /// How many deadlines fall due in a second (of block time, since the Unix epoch), a
    /// [`super::records::DeadlineCount`]. Until windows were measured in time this table was
    /// keyed by height, and until deadlines were indexed it held the whole list in one record.
    Deadline = 6,
    /// How many open replicas a provider holds, by provider id (a [`super::records::WorkCount`]).
    /// Until the work set was indexed this table held the whole list in one record.
    Work = 7,
    /// The assignments made by the batch match of a block, by height.
    Assignments = 8,
    /// The id counters (one record).
    Counters = 9,
    /// The ids of the offers on the book (one record).
    Book = 10,
    /// The ids of the open jobs (one record).
    OpenJobs = 11,
    /// The module hashes and developers of the published apps (one record).
    Apps = 12,
    /// A job's spec as submitted, by job id; written once.
    JobSpec = 13,
    /// A job's units that need providers, by job id.
    JobWaiting = 14,
    /// A provider's open replica at a position of its work set, by provider id and position.
    WorkItem = 15,
    /// The position of an open replica in its provider's work set, by provider id, job id,
    /// unit and replica.
    WorkSlot = 16,
    /// What an account holds on the market (open jobs, apps, offers), by address: the
    /// per-account caps are checked against it.
    Holdings = 17,
    /// A provider's contradicted "could not finish" reports in the current window, by
    /// provider id (a [`super::records::Excuses`]).
    Excuses = 18,
    /// The last second whose deadlines were processed (one record, a
    /// [`super::records::DeadlineCursor`]).
    DeadlineCursor = 19,
    /// The co-replicas that confirmed a provider's results most recently, by provider id (a
    /// [`super::records::Partners`]).
    Partners = 20,
    /// A deadline at a position of the ones falling due in a second, by second and position
    /// (a [`super::records::Deadline`]).
    DeadlineItem = 21,
    /// How many units have their audit drawn at a height, by height (a
    /// [`super::records::DeadlineCount`]).
    AuditDraws = 22,
    /// A unit whose audit is drawn at a height, by height and position (a
    /// [`super::records::Deadline`] whose replica is [`super::records::AUDIT_DRAW`]).
    AuditDrawItem = 23,
    /// The last capacity round opened (one record, a [`super::records::CapacityRound`]).
    CapacityRound = 24,
    /// The last capacity round an offer proved its free slots in, by offer id (a
    /// [`super::records::ProvenRound`]).
    CapacityProven = 25,
}

fn id(table: Table, id: u64) -> Key {
    keys::key_u64(Namespace::Market, table as u8, id)
}

pub fn provider_key(provider: u64) -> Key {
    id(Table::Provider, provider)
}

pub fn owner_key(owner: &Address) -> Key {
    keys::key(
        Namespace::Market,
        Table::ProviderOwner as u8,
        owner.as_ref(),
    )
}

pub fn offer_key(offer: u64) -> Key {
    id(Table::Offer, offer)
}

pub fn job_key(job: u64) -> Key {
    id(Table::Job, job)
}

pub fn unit_key(job: u64, unit: u32) -> Key {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&job.to_be_bytes());
    raw[8..].copy_from_slice(&unit.to_be_bytes());
    keys::key(Namespace::Market, Table::Unit as u8, &raw)
}

/// The app `developer` published with `module_hash`: apps are identified by both, so that
/// publishing someone else's module makes another app.
pub fn app_key(module_hash: &Hash32, developer: &Address) -> Key {
    let mut id = Vec::with_capacity(64);
    id.extend_from_slice(module_hash);
    id.extend_from_slice(developer.as_ref());
    let digest = exo_types::hash_bytes(&id);
    keys::key(Namespace::Market, Table::App as u8, digest.as_ref())
}

/// How many deadlines fall due in `second` (since the Unix epoch).
pub fn deadline_key(second: u64) -> Key {
    id(Table::Deadline, second)
}

/// The deadline at `position` of those falling due in `second`.
pub fn deadline_item_key(second: u64, position: u32) -> Key {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&second.to_be_bytes());
    raw[8..].copy_from_slice(&position.to_be_bytes());
    keys::key(Namespace::Market, Table::DeadlineItem as u8, &raw)
}

/// How many units have their audit drawn at `height`.
pub fn audit_draws_key(height: u64) -> Key {
    id(Table::AuditDraws, height)
}

/// The unit at `position` of those whose audit is drawn at `height`.
pub fn audit_draw_item_key(height: u64, position: u32) -> Key {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&height.to_be_bytes());
    raw[8..].copy_from_slice(&position.to_be_bytes());
    keys::key(Namespace::Market, Table::AuditDrawItem as u8, &raw)
}

pub fn deadline_cursor_key() -> Key {
    id(Table::DeadlineCursor, 0)
}

pub fn job_spec_key(job: u64) -> Key {
    id(Table::JobSpec, job)
}

pub fn waiting_key(job: u64) -> Key {
    id(Table::JobWaiting, job)
}

/// The number of open replicas of `provider`.
pub fn work_key(provider: u64) -> Key {
    id(Table::Work, provider)
}

/// The open replica of `provider` at `position` of its work set.
pub fn work_item_key(provider: u64, position: u32) -> Key {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&provider.to_be_bytes());
    raw[8..].copy_from_slice(&position.to_be_bytes());
    keys::key(Namespace::Market, Table::WorkItem as u8, &raw)
}

/// The position of replica `(job, unit, replica)` in the work set of `provider`.
pub fn work_slot_key(provider: u64, (job, unit, replica): (u64, u32, u32)) -> Key {
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&provider.to_be_bytes());
    raw[8..16].copy_from_slice(&job.to_be_bytes());
    raw[16..20].copy_from_slice(&unit.to_be_bytes());
    raw[20..].copy_from_slice(&replica.to_be_bytes());
    keys::key(Namespace::Market, Table::WorkSlot as u8, &raw)
}

/// The excuses `provider` spent in its current window.
pub fn excuses_key(provider: u64) -> Key {
    id(Table::Excuses, provider)
}

pub fn assignments_key(height: u64) -> Key {
    id(Table::Assignments, height)
}

pub fn counters_key() -> Key {
    id(Table::Counters, 0)
}

pub fn book_key() -> Key {
    id(Table::Book, 0)
}

pub fn open_jobs_key() -> Key {
    id(Table::OpenJobs, 0)
}

pub fn apps_key() -> Key {
    id(Table::Apps, 0)
}

pub fn holdings_key(account: &Address) -> Key {
    keys::key(Namespace::Market, Table::Holdings as u8, account.as_ref())
}

pub fn partners_key(provider: u64) -> Key {
    id(Table::Partners, provider)
}

pub fn capacity_round_key() -> Key {
    id(Table::CapacityRound, 0)
}

/// The last capacity round `offer` proved its free slots in.
pub fn capacity_proven_key(offer: u64) -> Key {
    id(Table::CapacityProven, offer)
}
