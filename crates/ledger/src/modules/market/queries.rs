//! What the market answers to readers of finalized state (the API, tools).

use super::{keys, records::*};
use crate::state::Query;
use exo_types::{Address, Hash32};

pub fn provider(id: u64) -> Query<Provider> {
    Query::new(keys::provider_key(id))
}

/// The provider id an owner registered; then [`provider`].
pub fn provider_of(owner: &Address) -> Query<OwnerIndex> {
    Query::new(keys::owner_key(owner))
}

pub fn offer(id: u64) -> Query<OfferRecord> {
    Query::new(keys::offer_key(id))
}

/// What an account holds on the market: its open jobs, apps and offers.
pub fn holdings(account: &Address) -> Query<Holdings> {
    Query::new(keys::holdings_key(account))
}

/// The ids of the offers on the book.
pub fn book() -> Query<IdList> {
    Query::new(keys::book_key())
}

/// A job's header: its terms, accounts and counts; see [`job_spec`] and [`waiting`].
pub fn job(id: u64) -> Query<Job> {
    Query::new(keys::job_key(id))
}

/// The ids of the open jobs.
pub fn open_jobs() -> Query<IdList> {
    Query::new(keys::open_jobs_key())
}

pub fn unit(job: u64, unit: u32) -> Query<Unit> {
    Query::new(keys::unit_key(job, unit))
}

/// How many replicas a provider still has to commit or reveal; then [`work_item`] for each position below it.
pub fn work_count(provider: u64) -> Query<WorkCount> {
    Query::new(keys::work_key(provider))
}

/// The replica still to commit or reveal of a provider at `position` of its work set (`0..count`). A removal moves
/// the last replica into the freed position: the order is not the order of assignment, and
/// pages read at different heights may miss or repeat a replica.
pub fn work_item(provider: u64, position: u32) -> Query<WorkItem> {
    Query::new(keys::work_item_key(provider, position))
}

/// A job's spec, as submitted.
pub fn job_spec(id: u64) -> Query<exo_types::JobSpec> {
    Query::new(keys::job_spec_key(id))
}

/// A job's units that still need providers.
pub fn waiting(id: u64) -> Query<WaitingList> {
    Query::new(keys::waiting_key(id))
}

/// The app `developer` published with `module_hash`.
pub fn app(module_hash: &Hash32, developer: &Address) -> Query<App> {
    Query::new(keys::app_key(module_hash, developer))
}

/// The published apps (module hash and developer), in publication order.
pub fn apps() -> Query<AppList> {
    Query::new(keys::apps_key())
}

/// The next ids to be given out (so, how many providers, offers and jobs there have been).
pub fn counters() -> Query<Counters> {
    Query::new(keys::counters_key())
}

/// The assignments the batch match of block `height` made.
pub fn assignments(height: u64) -> Query<AssignmentList> {
    Query::new(keys::assignments_key(height))
}

/// How many audit draws are filed for the block at `height`. A proposer reads it for the next
/// [`AUDIT_SEED_DELAY`] heights: a draw is owed blocks, and an idle chain would otherwise make
/// them one empty-block interval apart.
pub fn audit_draws(height: u64) -> Query<DeadlineCount> {
    Query::new(keys::audit_draws_key(height))
}

/// The last capacity round opened (open while its block time has not passed `closes_ms`).
pub fn capacity_round() -> Query<CapacityRound> {
    Query::new(keys::capacity_round_key())
}

/// The last capacity round `offer` proved its free slots in.
pub fn capacity_proven(offer: u64) -> Query<ProvenRound> {
    Query::new(keys::capacity_proven_key(offer))
}
