//! The Exodus compute market: the resource model, offers and demands, and the deterministic
//! batch match the ledger runs at the end of every block.
//!
//! # What it must never do
//!
//! This crate is consensus code: every validator runs [`match_batch`] on the same book and must
//! get the same bytes out. So it does no I/O, reads no clock, draws no randomness, uses no
//! floats, never iterates a hash map, and is not async. Arithmetic on input values is checked
//! or saturating, and no input can make it panic: bad input is a typed error. Timing the
//! matcher for humans is `exo-bench`'s job (`exo bench market`); the synthetic books it times are
//! the [`fixtures`] module, which the ledger never calls.
//!
//! # The model
//!
//! A provider benchmarks its machine into [`Resources`] and posts [`Offer`]s: up to `slots`
//! concurrent work units at `price_per_unit` base units per compute unit
//! ([`FUEL_PER_UNIT`] fuel), until `expiry_secs`. A job's open work-unit slots reach the
//! matcher as a [`Demand`]: the job's [`Requirements`], the most it pays per compute unit, and
//! per unit the replica indices still needing a provider and the providers excluded from it.
//!
//! # The match
//!
//! [`match_batch`] serves demands in a total order, **highest max price first, then oldest
//! (`submitted_height`), then lowest job id**: price priority is the usual rule of an order
//! book and lets an urgent job jump the queue by paying for it, and age then id make ties
//! deterministic. Within a demand, units go in index order and replicas in index order. Each
//! slot takes the first offer in **price, then age (`posted_secs`), then id** order that
//! meets every requirement, asks at most the demand's max price, has a free slot, and whose
//! provider is neither excluded from the unit nor already holds another of its replicas. So
//! one demand fills partially across many providers, replicas of a unit always land on
//! distinct providers, and no offer gives more than its slots. A provider may post several
//! offers (a supply curve); its capacity in the batch is the sum of its live offers' slots,
//! and the ledger keeps that sum within what its machine runs. Offers not live at the batch's
//! block time are ignored. Both inputs are sorted internally, so any arrival order of the same
//! offers and demands gives the same [`MatchOutcome`].
//!
//! # The price rule: pay as asked
//!
//! Each assignment is paid at the provider's own ask (`Assignment::price_per_unit`), which is
//! never above the demand's max price. We chose this over a uniform clearing price per resource
//! class because:
//! - the goods are not uniform: two offers in the same class differ in cores, memory, GPU,
//!   region, reputation and fuel limit, so any class boundary would either lump different goods
//!   under one price or split the book into thin markets;
//! - it is the order-book rule the resting side expects (a maker is paid its own price), and a
//!   requester's max price is a limit it will never pay more than, not a bid it pays in full;
//! - it is computed in one pass in the order above, with no second pass to find a crossing
//!   point, and is trivially auditable: each payment is a number the provider signed.
//!
//! The known cost is that providers may shade their asks upwards towards what they expect
//! demand to bear; price transparency (the book is public) is the counterweight. A uniform
//! price can be layered on later by recomputing prices over the same assignments.
//!
//! # Why a slot went unmatched
//!
//! Every unmatched slot carries an [`Explanation`]: how many live offers each requirement
//! excludes on its own, how many pass them all (counted up to [`PASSED_COUNT_LIMIT`]), and
//! the best ask among those, whose `Display` is one sentence such as
//! "no provider with gpu rtx4090 (3 of 3 offers excluded by gpu)" or
//! "best ask 12 > max price 10 (4 of 9 offers meet the requirements)". Explanations describe
//! the book at the start of the batch, so they are computed after matching, all at once.
//!
//! # Cost
//!
//! `match_batch` indexes the book on every call, which keeps it a pure function of its input:
//! offers are grouped by (region, class), laid out in price order, and summarised by a tree
//! of per-subtree maxima (see `index.rs`), so a slot costs a heap pop and a tree descent in
//! one group rather than a scan of the book. `exo bench market` measures it; on the synthetic
//! books of [`fixtures::synthetic`] it processes two to five million orders (offers plus demand
//! slots) per second on one core, up to a million resting offers. The summaries prune on each
//! requirement separately, so a demand whose requirements are each common but rare in
//! combination may scan many offers of the groups it can match: such books are slower, never
//! answered wrongly. [`any_taker`] asks the same index a narrower question for the ledger,
//! whether any offer on a book could take each of many jobs, slots or not.

mod codec;
mod explain;
mod explainer;
mod ids;
mod index;
mod matching;
mod order;
mod resources;

pub mod fixtures;

pub use explain::{ExclusionCounts, Explanation, PASSED_COUNT_LIMIT, Reason, Requirement};
pub use ids::{FUEL_PER_UNIT, JobId, OfferId, ProviderId};
pub use matching::{
    Assignment, Explain, MAX_BATCH_OFFERS, MatchError, MatchOutcome, OfferFill, Unmatched,
    any_taker, match_batch, match_batch_explaining, matchable_prefix,
};
pub use order::{
    Constraint, ConstraintSet, Demand, DemandError, GpuRequirement, MAX_EXCLUDE_PER_UNIT,
    MAX_REPLICAS, MAX_SLOTS_PER_OFFER, MAX_UNITS_PER_DEMAND, Offer, OfferError, Requirements,
    RequirementsError, UnitDemand,
};
pub use resources::{
    DeviceClass, Gpu, MAX_CORES, MAX_CPU_SCORE, MAX_GPU_COUNT, MAX_GPU_MEMORY_MIB, MAX_MEMORY_MIB,
    MAX_NAME_LEN, MAX_UNIT_FUEL, MIN_CORES, NameError, ResourceError, Resources, Runtime,
    RuntimeSet, canonical_gpu_model, canonical_region, validate_name,
};
