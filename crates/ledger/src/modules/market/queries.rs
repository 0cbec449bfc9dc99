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

/// The ids of the offers on the book.
pub fn book() -> Query<IdList> {
    Query::new(keys::book_key())
}

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

/// A provider's open replicas.
pub fn work(provider: u64) -> Query<WorkList> {
    Query::new(keys::work_key(provider))
}

pub fn app(module_hash: &Hash32) -> Query<App> {
    Query::new(keys::app_key(module_hash))
}

/// The module hashes of the published apps, in publication order.
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
