//! The per-block batch match of open demand against the book.

use std::cmp::Reverse;

use thiserror::Error;

use crate::explain::Explanation;
use crate::explainer::Explainer;
use crate::ids::{JobId, OfferId, ProviderId};
use crate::index::Index;
use crate::order::{Demand, DemandError, Offer};

/// One replica of one unit given to one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub job: JobId,
    pub unit: u32,
    pub replica: u32,
    pub provider: ProviderId,
    pub offer: OfferId,
    /// The price the provider asked, which is the price paid (see the crate docs).
    pub price_per_unit: u128,
}

/// One replica of one unit that found no provider this block, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatched {
    pub job: JobId,
    pub unit: u32,
    pub replica: u32,
    pub reason: Explanation,
}

/// How an offer's slots changed in the batch. Offers not listed are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfferFill {
    pub offer: OfferId,
    pub provider: ProviderId,
    /// Slots taken by this batch.
    pub assigned: u32,
    /// Slots left, to store back into the offer.
    pub remaining_slots: u32,
}

/// The result of one batch. Every (unit, replica) slot of every demand appears exactly once,
/// in `assignments` or in `unmatched`; both lists are in matching order (demand order, then
/// unit, then replica).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MatchOutcome {
    pub assignments: Vec<Assignment>,
    pub unmatched: Vec<Unmatched>,
    /// Offers that took assignments, by offer id.
    pub fills: Vec<OfferFill>,
    /// Offers ignored because they are not live at the batch height, by offer id, so the
    /// ledger can drop them.
    pub expired: Vec<OfferId>,
}

/// Input the matcher refuses. The ledger validates offers and demands before they reach the
/// book, so any of these is a ledger bug, not a bad order: treat it as a fault.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MatchError {
    #[error("offer {0} appears twice in the batch")]
    DuplicateOffer(OfferId),
    #[error("job {0} has two demands in the batch; merge them into one")]
    DuplicateJob(JobId),
    #[error("the demand of {job} is invalid: {error}")]
    InvalidDemand {
        job: JobId,
        #[source]
        error: DemandError,
    },
    #[error("the batch holds {0} offers, more than the matcher indexes ({MAX_BATCH_OFFERS})")]
    TooManyOffers(usize),
}

/// Most offers one batch may hold. Positions are stored as `u32` to keep the index compact.
pub const MAX_BATCH_OFFERS: usize = u32::MAX as usize / 2;

/// The order in which demands are served: highest max price first, then oldest, then lowest
/// job id. Job ids are unique in a batch, so this is a total order.
fn demand_key(d: &Demand) -> (Reverse<u128>, u64, JobId) {
    (
        Reverse(d.max_price_per_unit),
        d.submitted_height,
        d.job,
    )
}

/// The order in which offers are taken: lowest price first, then oldest, then lowest id.
fn offer_key(o: &Offer) -> (u128, u64, OfferId) {
    (o.price_per_unit, o.posted_height, o.id)
}

/// Matches `demands` against `offers` at `height`.
///
/// Offers not live at `height` are ignored and listed in `expired`. Demands are served in
/// [`demand_key`] order; each demand's units in unit order, each unit's replicas in replica
/// order; each slot takes the first offer in [`offer_key`] order that meets the requirements,
/// asks at most the demand's max price, has a free slot, and belongs to a provider that is
/// neither excluded from the unit nor already holding another replica of it. Both inputs are
/// sorted internally, so the outcome does not depend on their order.
pub fn match_batch(
    offers: &[Offer],
    demands: &[Demand],
    height: u64,
) -> Result<MatchOutcome, MatchError> {
    if offers.len() > MAX_BATCH_OFFERS {
        return Err(MatchError::TooManyOffers(offers.len()));
    }
    let mut ids: Vec<OfferId> = offers.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w.first() == w.get(1)) {
        return Err(MatchError::DuplicateOffer(pair[0]));
    }
    drop(ids);

    for d in demands {
        d.validate().map_err(|error| MatchError::InvalidDemand { job: d.job, error })?;
    }
    let mut order: Vec<&Demand> = demands.iter().collect();
    order.sort_unstable_by_key(|d| d.job);
    if let Some(pair) = order.windows(2).find(|w| w[0].job == w[1].job) {
        return Err(MatchError::DuplicateJob(pair[0].job));
    }
    order.sort_unstable_by_key(|d| demand_key(d));

    let (mut live, mut expired): (Vec<&Offer>, Vec<&Offer>) =
        offers.iter().partition(|o| o.is_live(height));
    live.sort_unstable_by_key(|o| offer_key(o));
    expired.sort_unstable_by_key(|o| o.id);

    let mut index = Index::new(live);
    let mut explainer = Explainer::default();
    let mut out = MatchOutcome {
        expired: expired.iter().map(|o| o.id).collect(),
        ..MatchOutcome::default()
    };
    // Providers excluded from the unit being matched, sorted; grows as replicas are placed.
    let mut excluded: Vec<u64> = Vec::new();

    for demand in order {
        let req = &demand.requirements;
        let query = index.query(req);
        let end = index.price_cutoff(demand.max_price_per_unit);
        // Every position before `base` fails this demand's requirements or has no free slot.
        // Slots only ever decrease within a batch, so that stays true for the whole demand and
        // each search can start there instead of at the cheapest offer.
        let mut base = 0usize;
        // Set when a search with nothing excluded found nothing: no later unit can do better.
        let mut exhausted = false;

        for unit in &demand.units {
            excluded.clear();
            excluded.extend(unit.exclude.iter().map(|p| p.0));
            let mut reason: Option<Explanation> = None;

            for &replica in &unit.replicas {
                if reason.is_none() && !exhausted {
                    match place(&index, &query, &mut base, end, &excluded) {
                        Some(pos) => {
                            let offer = index.offers[pos];
                            index.take(pos);
                            if let Err(at) = excluded.binary_search(&offer.provider.0) {
                                excluded.insert(at, offer.provider.0);
                            }
                            out.assignments.push(Assignment {
                                job: demand.job,
                                unit: unit.unit,
                                replica,
                                provider: offer.provider,
                                offer: offer.id,
                                price_per_unit: offer.price_per_unit,
                            });
                            continue;
                        }
                        None => exhausted |= excluded.is_empty(),
                    }
                }
                // Later replicas of this unit face the same exclusions and no more free slots,
                // so they share the first failure's explanation.
                let why = reason.get_or_insert_with(|| {
                    explainer.explain(&index, req, demand.max_price_per_unit, &excluded)
                });
                out.unmatched.push(Unmatched {
                    job: demand.job,
                    unit: unit.unit,
                    replica,
                    reason: why.clone(),
                });
            }
        }
    }

    for (pos, offer) in index.offers.iter().enumerate() {
        let remaining = index.slots[pos];
        if remaining != offer.slots {
            out.fills.push(OfferFill {
                offer: offer.id,
                provider: offer.provider,
                assigned: offer.slots.saturating_sub(remaining),
                remaining_slots: remaining,
            });
        }
    }
    out.fills.sort_unstable_by_key(|f| f.offer);
    Ok(out)
}

/// The position of the cheapest acceptable offer for one slot, skipping excluded providers.
fn place(
    index: &Index<'_>,
    query: &crate::index::Query,
    base: &mut usize,
    end: usize,
    excluded: &[u64],
) -> Option<usize> {
    let mut from = *base;
    let mut first = true;
    loop {
        let pos = index.find(query, from, end)?;
        if first {
            *base = pos;
            first = false;
        }
        if excluded.binary_search(&index.slim[pos].provider).is_err() {
            return Some(pos);
        }
        from = pos + 1;
    }
}
