//! The per-block batch match of open demand against the book.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use thiserror::Error;

use crate::explain::Explanation;
use crate::explainer::Explainer;
use crate::ids::{JobId, OfferId, ProviderId};
use crate::index::{Index, OfferKey, Query};
use crate::order::{Demand, DemandError, Offer, OfferError};

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
    #[error("offer {offer} is invalid: {error}")]
    InvalidOffer {
        offer: OfferId,
        #[source]
        error: OfferError,
    },
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

/// Matches `demands` against `offers` at `height`.
///
/// Offers not live at `height` are ignored and listed in `expired`. Demands are served in
/// [`demand_key`] order; each demand's units in unit order, each unit's replicas in replica
/// order; each slot takes the first offer in (price, posted height, offer id) order that meets the
/// requirements,
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
    for offer in offers {
        offer
            .validate()
            .map_err(|error| MatchError::InvalidOffer { offer: offer.id, error })?;
    }
    // The ledger hands offers over in id order (its state is keyed by id), so the usual check
    // is one pass; any other order is sorted first.
    let mut ids: Vec<OfferId> = offers.iter().map(|o| o.id).collect();
    if !ids.is_sorted() {
        ids.sort_unstable();
    }
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
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

    let (live, mut expired): (Vec<&Offer>, Vec<&Offer>) =
        offers.iter().partition(|o| o.is_live(height));
    expired.sort_unstable_by_key(|o| o.id);

    let mut index = Index::new(&live);
    drop(live);
    let mut explainer = Explainer::default();
    let mut out = MatchOutcome {
        expired: expired.iter().map(|o| o.id).collect(),
        ..MatchOutcome::default()
    };
    let mut book = Heads::default();
    // Providers excluded from the unit being matched, sorted; grows as replicas are placed.
    let mut excluded: Vec<u64> = Vec::new();
    let mut displaced: Vec<usize> = Vec::new();

    for demand in order {
        let req = &demand.requirements;
        let query = index.query(req);
        book.start(&index, &query, demand.max_price_per_unit);
        // Set when a search with nothing excluded found nothing: no later unit can do better.
        let mut exhausted = false;

        for unit in &demand.units {
            excluded.clear();
            excluded.extend(unit.exclude.iter().map(|p| p.0));
            displaced.clear();
            let mut reason: Option<Explanation> = None;

            for &replica in &unit.replicas {
                if reason.is_none() && !exhausted {
                    match book.place(&mut index, &query, &excluded, &mut displaced) {
                        Some(pos) => {
                            let provider = index.slim[pos].provider;
                            let (price_per_unit, _, offer) = index.keys[pos];
                            if let Err(at) = excluded.binary_search(&provider) {
                                excluded.insert(at, provider);
                            }
                            out.assignments.push(Assignment {
                                job: demand.job,
                                unit: unit.unit,
                                replica,
                                provider: ProviderId(provider),
                                offer: OfferId(offer),
                                price_per_unit,
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
            book.restore(&index, &mut displaced);
        }
    }

    for (pos, (&initial, &remaining)) in index.initial_slots.iter().zip(&index.slots).enumerate() {
        if remaining != initial {
            out.fills.push(OfferFill {
                offer: OfferId(index.keys[pos].2),
                provider: ProviderId(index.slim[pos].provider),
                assigned: initial.saturating_sub(remaining),
                remaining_slots: remaining,
            });
        }
    }
    out.fills.sort_unstable_by_key(|f| f.offer);
    Ok(out)
}

/// One group's place in the current demand's search.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    group: usize,
    /// End of the group's positions within the demand's max price, found on first use.
    end: Option<usize>,
    /// Every position of the group before `base` fails the demand's requirements or has no
    /// free slot. Slots only decrease within a batch, so this stays true for the whole demand
    /// and searches can resume there instead of at the group's cheapest offer.
    base: usize,
    /// Bumped to invalidate the cursor's entries in the heap.
    version: u32,
}

/// A heap entry for cursor `.2` at position `.3`, keyed by that position's offer order. An
/// entry that is not `verified` is only a lower bound: the group's offers from `.3` on cost at
/// least that much, but none of them has been checked yet. Searching lazily, when the bound
/// reaches the top of the heap, means a demand that fills from a few cheap groups never
/// searches the others.
type Entry = Reverse<(OfferKey, bool, usize, usize, u32)>;

/// The current demand's candidates: one cursor per group it can match, and a min-heap of each
/// group's cheapest acceptable offer, so a slot costs a heap pop and one search in one group.
#[derive(Debug, Default)]
struct Heads {
    cursors: Vec<Cursor>,
    heap: BinaryHeap<Entry>,
    max_price: u128,
}

impl Heads {
    fn push(&mut self, index: &Index, cursor: usize, pos: usize, verified: bool) {
        let Some(c) = self.cursors.get(cursor) else {
            return;
        };
        let in_group = index.groups.get(c.group).is_some_and(|g| pos < g.end);
        if let (true, Some(&key)) = (in_group, index.keys.get(pos)) {
            self.heap.push(Reverse((key, verified, cursor, pos, c.version)));
        }
    }

    fn start(&mut self, index: &Index, query: &Query, max_price: u128) {
        self.cursors.clear();
        self.heap.clear();
        self.max_price = max_price;
        for group in index.candidates(query) {
            let start = index.groups[group].start;
            self.cursors.push(Cursor {
                group,
                end: None,
                base: start,
                version: 0,
            });
            self.push(index, self.cursors.len() - 1, start, false);
        }
    }

    /// Takes a slot for one replica: the cheapest acceptable offer whose provider is not in
    /// `excluded`. Groups whose head was skipped for an excluded provider are recorded in
    /// `displaced`, because their heap entry now points past offers that later units may use.
    fn place(
        &mut self,
        index: &mut Index,
        query: &Query,
        excluded: &[u64],
        displaced: &mut Vec<usize>,
    ) -> Option<usize> {
        while let Some(Reverse((key, verified, c, pos, version))) = self.heap.pop() {
            let Some(cursor) = self.cursors.get_mut(c) else {
                continue;
            };
            if version != cursor.version {
                continue;
            }
            if !verified {
                if key.0 > self.max_price {
                    // Offers are in price order within a group: the rest cost more too.
                    continue;
                }
                let group = cursor.group;
                let end = *cursor
                    .end
                    .get_or_insert_with(|| index.cutoff(group, self.max_price));
                if let Some(head) = index.find(group, query, pos, end) {
                    if pos == cursor.base {
                        cursor.base = head;
                    }
                    self.push(index, c, head, true);
                }
                continue;
            }
            let group = cursor.group;
            if excluded.binary_search(&index.slim[pos].provider).is_ok() {
                displaced.push(c);
                self.push(index, c, pos + 1, false);
                continue;
            }
            index.take(group, pos);
            if index.slots[pos] > 0 {
                self.push(index, c, pos, true);
            } else {
                self.push(index, c, pos + 1, false);
            }
            return Some(pos);
        }
        None
    }

    /// After a unit, puts each displaced group back at its base, the start of its offers that
    /// later units may use.
    fn restore(&mut self, index: &Index, displaced: &mut Vec<usize>) {
        displaced.sort_unstable();
        displaced.dedup();
        for &c in displaced.iter() {
            let Some(cursor) = self.cursors.get_mut(c) else {
                continue;
            };
            // A demand has at most MAX_UNITS_PER_DEMAND * MAX_REPLICAS displacements, far
            // below the wrap-around, so a stale entry can never look current.
            cursor.version = cursor.version.wrapping_add(1);
            let base = cursor.base;
            self.push(index, c, base, false);
        }
    }
}
