//! The per-block batch match of open demand against the book.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use thiserror::Error;

use crate::explain::Explanation;
use crate::explainer::Explainer;
use crate::ids::{JobId, OfferId, ProviderId};
use crate::index::{Index, OfferKey, Query};
use crate::order::{Demand, DemandError, Offer, OfferError, Requirements};

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

/// The result of one batch. With [`Explain::All`], every (unit, replica) slot of every demand
/// appears exactly once, in `assignments` or in `unmatched`; both lists are in matching order
/// (demand order, then unit, then replica).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MatchOutcome {
    pub assignments: Vec<Assignment>,
    pub unmatched: Vec<Unmatched>,
    /// Offers that took assignments, by offer id.
    pub fills: Vec<OfferFill>,
    /// Offers ignored because they are not live at the batch's time, by offer id, so the
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

/// Which slots that found no offer a batch explains. Explaining costs a pass over the book per
/// distinct exclusion set, so a caller that shows one reason per job asks for only that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Explain {
    /// Every unmatched slot.
    #[default]
    All,
    /// The slots of each demand's first unit that found no offer (from the replica that
    /// failed on): what a job's waiting reason shows. The other unmatched slots are left out.
    FirstPerDemand,
}

/// How many of a demand's first units can change a batch whose offers hold `free_slots` slots
/// in all, given whether each unit (in unit order) excludes nobody. Each such unit either
/// takes a slot or, finding none with nobody excluded, ends the demand's search; so once
/// `free_slots + 1` of them were served the search has ended, and the units after them get no
/// slot. Cutting a demand there changes neither the assignments nor the [`Explain::FirstPerDemand`]
/// explanations, and a long queue of units costs a batch only what its free slots can take.
pub fn matchable_prefix(excludes_nobody: impl IntoIterator<Item = bool>, free_slots: u64) -> usize {
    let mut open = 0u64;
    let mut taken = 0usize;
    for nobody in excludes_nobody {
        if open > free_slots {
            break;
        }
        taken += 1;
        open += u64::from(nobody);
    }
    taken
}

/// Most offers one batch may hold. Positions are stored as `u32` to keep the index compact.
pub const MAX_BATCH_OFFERS: usize = u32::MAX as usize / 2;

/// The order in which demands are served: highest max price first, then oldest, then lowest
/// job id. Job ids are unique in a batch, so this is a total order.
fn demand_key(d: &Demand) -> (Reverse<u128>, u64, JobId) {
    (Reverse(d.max_price_per_unit), d.submitted_height, d.job)
}

/// Refuses a book the index cannot hold: too many offers, an id twice, or an invalid offer
/// (the one with the lowest id is named).
fn check_offers(offers: &[&Offer]) -> Result<(), MatchError> {
    if offers.len() > MAX_BATCH_OFFERS {
        return Err(MatchError::TooManyOffers(offers.len()));
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
    // Ids are unique now, so "the invalid offer with the lowest id" is well defined.
    if let Some((offer, error)) = offers
        .iter()
        .filter_map(|o| o.validate().err().map(|e| (o.id, e)))
        .min_by_key(|(id, _)| *id)
    {
        return Err(MatchError::InvalidOffer { offer, error });
    }
    Ok(())
}

/// For each of `wants` (requirements and the most paid per compute unit), whether some offer
/// live at `now_secs` meets the requirements and asks at most that price, free slots or not:
/// "could anyone on this book take such a job". The answers are those of
/// [`Requirements::admits`] and a price check on every live offer, but one index over the
/// book gives each want a tree descent per (region, class) group instead of a check per
/// offer, so many wants against a large book stay cheap. Refuses the books [`match_batch`]
/// refuses.
pub fn any_taker(
    offers: &[&Offer],
    wants: &[(&Requirements, u128)],
    now_secs: u64,
) -> Result<Vec<bool>, MatchError> {
    check_offers(offers)?;
    let live: Vec<&Offer> = offers
        .iter()
        .copied()
        .filter(|o| o.is_live(now_secs))
        .collect();
    let index = Index::new(&live);
    drop(live);
    Ok(wants
        .iter()
        .map(|(requirements, max_price)| {
            let query = index.query(requirements);
            // Each group is in price order, so its first offer meeting the query is its
            // cheapest.
            index.candidates(&query).any(|g| {
                index
                    .first_any(g, &query, |_| true)
                    .and_then(|pos| index.keys.get(pos))
                    .is_some_and(|&(price, ..)| price <= *max_price)
            })
        })
        .collect())
}

/// Matches `demands` against `offers` at block time `now_secs`.
///
/// Offers not live at `now_secs` are ignored and listed in `expired`. Demands are served in
/// (max price descending, submitted height, job id) order; each demand's units in unit order,
/// each unit's replicas in replica order; each slot takes the first offer in (price, posting
/// time, offer id) order that meets the requirements, asks at most the demand's max price,
/// has a free slot, and belongs to a provider that is neither excluded from the unit nor
/// already holding another replica of it.
/// Both inputs are sorted internally, so the outcome (and the error, if any) does not depend on
/// their order. Every unmatched slot is explained ([`Explain::All`]).
pub fn match_batch(
    offers: &[Offer],
    demands: &[Demand],
    now_secs: u64,
) -> Result<MatchOutcome, MatchError> {
    match_batch_explaining(offers, demands, now_secs, Explain::All)
}

/// [`match_batch`], explaining only the unmatched slots `explain` asks for. The assignments,
/// fills and expired offers are the same whatever it asks.
pub fn match_batch_explaining(
    offers: &[Offer],
    demands: &[Demand],
    now_secs: u64,
    explain: Explain,
) -> Result<MatchOutcome, MatchError> {
    check_offers(&offers.iter().collect::<Vec<_>>())?;
    let mut order: Vec<&Demand> = demands.iter().collect();
    order.sort_unstable_by_key(|d| d.job);
    if let Some(pair) = order.windows(2).find(|w| w[0].job == w[1].job) {
        return Err(MatchError::DuplicateJob(pair[0].job));
    }
    if let Some((job, error)) = order
        .iter()
        .find_map(|d| d.validate().err().map(|e| (d.job, e)))
    {
        return Err(MatchError::InvalidDemand { job, error });
    }
    order.sort_unstable_by_key(|d| demand_key(d));

    let (live, mut expired): (Vec<&Offer>, Vec<&Offer>) =
        offers.iter().partition(|o| o.is_live(now_secs));
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
        let query = index.query(&demand.requirements);
        book.start(&index, &query, demand.max_price_per_unit);
        // Set when a search with nothing excluded found nothing: no later unit can do better.
        let mut exhausted = false;
        let mut explained = false;

        for unit in &demand.units {
            excluded.clear();
            excluded.extend(unit.exclude.iter().map(|p| p.0));
            displaced.clear();

            for (i, &replica) in unit.replicas.iter().enumerate() {
                let more = i + 1 < unit.replicas.len();
                let placed = if exhausted {
                    None
                } else {
                    book.place(&mut index, &query, &mut excluded, more, &mut displaced)
                };
                let Some(pos) = placed else {
                    exhausted |= excluded.is_empty();
                    // Later replicas of this unit face the same exclusions and no more free
                    // slots, so they fail too, for the same reason.
                    if explain == Explain::All || !explained {
                        explainer.defer(demand, unit, i, &excluded);
                        explained = true;
                    }
                    break;
                };
                let (price_per_unit, _, offer) = index.keys[pos];
                out.assignments.push(Assignment {
                    job: demand.job,
                    unit: unit.unit,
                    replica,
                    provider: ProviderId(index.slim[pos].provider),
                    offer: OfferId(offer),
                    price_per_unit,
                });
            }
            book.restore(&index, &mut displaced);
        }
    }

    out.unmatched = explainer.finish(&index);
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
    /// Whether the offer at `base` is known to meet the requirements within the max price,
    /// so that while it has a free slot it is the group's head without another search.
    base_admitted: bool,
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
            self.heap
                .push(Reverse((key, verified, cursor, pos, c.version)));
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
                base_admitted: false,
                version: 0,
            });
            self.push(index, self.cursors.len() - 1, start, false);
        }
    }

    /// Takes a slot for one replica: the cheapest acceptable offer whose provider is not in
    /// `excluded`, and adds that provider to `excluded`. `more` says whether more replicas of
    /// the unit follow. Groups whose heap entry was moved past offers that later units may
    /// still use (offers of excluded providers) are recorded in `displaced`.
    fn place(
        &mut self,
        index: &mut Index,
        query: &Query,
        excluded: &mut Vec<u64>,
        more: bool,
        displaced: &mut Vec<usize>,
    ) -> Option<usize> {
        while let Some(Reverse((key, verified, c, pos, version))) = self.heap.pop() {
            let Some(cursor) = self.cursors.get_mut(c) else {
                continue;
            };
            if version != cursor.version {
                continue;
            }
            let group = cursor.group;
            let end = *cursor
                .end
                .get_or_insert_with(|| index.cutoff(group, self.max_price));
            if !verified {
                if key.0 > self.max_price {
                    // Offers are in price order within a group: the rest cost more too.
                    continue;
                }
                let (head, skipped) = index.find(group, query, pos, end, excluded);
                if skipped {
                    displaced.push(c);
                } else if let Some(head) = head
                    && pos == cursor.base
                {
                    cursor.base = head;
                    cursor.base_admitted = true;
                }
                if let Some(head) = head {
                    self.push(index, c, head, true);
                }
                continue;
            }
            let provider = index.slim[pos].provider;
            if excluded.binary_search(&provider).is_ok() {
                displaced.push(c);
                if let (Some(next), _) = index.find(group, query, pos + 1, end, excluded) {
                    self.push(index, c, next, true);
                }
                continue;
            }
            index.take(group, pos);
            if let Err(at) = excluded.binary_search(&provider) {
                excluded.insert(at, provider);
            }
            let left = index.slots[pos] > 0;
            if more {
                // The next replica cannot go to this provider: search on past it now rather
                // than pop this offer again only to skip it.
                if left {
                    displaced.push(c);
                }
                let (next, skipped) = index.find(group, query, pos + 1, end, excluded);
                if skipped {
                    displaced.push(c);
                }
                if let Some(next) = next {
                    self.push(index, c, next, true);
                }
            } else if left {
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
            let head = cursor.base_admitted && index.slots.get(base).is_some_and(|&n| n > 0);
            self.push(index, c, base, head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{Reason, Requirement};
    use crate::order::{Constraint, GpuRequirement, Requirements, UnitDemand};
    use crate::resources::{DeviceClass, Gpu, Resources, Runtime, RuntimeSet};

    fn machine() -> Resources {
        Resources {
            cores: 8,
            cpu_score: 1_000,
            memory_mib: 8_192,
            gpu: None,
            class: DeviceClass::Pc,
            region: "eu-west".into(),
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
            max_unit_fuel: 1_000_000,
        }
    }

    fn offer(id: u64, provider: u64, price: u128, slots: u32) -> Offer {
        Offer {
            id: OfferId(id),
            provider: ProviderId(provider),
            resources: machine(),
            reputation: 100,
            slots,
            price_per_unit: price,
            posted_secs: 1,
            expiry_secs: 100,
        }
    }

    fn any() -> Requirements {
        Requirements {
            min_cores: 1,
            min_memory_mib: 0,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 1_000,
            min_reputation: 0,
        }
    }

    /// A demand for `units` units (0..units) of `replicas` replicas each.
    fn demand(job: u64, max_price: u128, units: u32, replicas: u32) -> Demand {
        Demand {
            job: JobId(job),
            requirements: any(),
            max_price_per_unit: max_price,
            submitted_height: 1,
            units: (0..units)
                .map(|unit| UnitDemand {
                    unit,
                    replicas: (0..replicas).collect(),
                    exclude: vec![],
                })
                .collect(),
        }
    }

    fn run(offers: &[Offer], demands: &[Demand]) -> MatchOutcome {
        let out = match_batch(offers, demands, 10).expect("valid batch");
        assert_eq!(
            out.assignments.len() + out.unmatched.len(),
            demands.iter().map(Demand::slot_count).sum::<usize>(),
            "every slot is assigned or explained"
        );
        out
    }

    fn takers(out: &MatchOutcome) -> Vec<(u32, u32, u64)> {
        out.assignments
            .iter()
            .map(|a| (a.unit, a.replica, a.offer.0))
            .collect()
    }

    #[test]
    fn cheapest_then_oldest_then_lowest_id() {
        let mut old = offer(3, 3, 5, 1);
        old.posted_secs = 0;
        let offers = [offer(1, 1, 7, 1), offer(2, 2, 5, 1), old, offer(4, 4, 5, 1)];
        let out = run(&offers, &[demand(1, 10, 4, 1)]);
        // Price 5 before 7; among the 5s the older offer 3, then ids 2 and 4.
        assert_eq!(
            takers(&out),
            vec![(0, 0, 3), (1, 0, 2), (2, 0, 4), (3, 0, 1)]
        );
        assert!(out.assignments.iter().all(|a| {
            a.price_per_unit
                == offers
                    .iter()
                    .find(|o| o.id == a.offer)
                    .map_or(0, |o| o.price_per_unit)
        }));
    }

    #[test]
    fn demand_fills_partially_across_providers_and_respects_slots() {
        let offers = [offer(1, 1, 5, 2), offer(2, 2, 6, 1)];
        let out = run(&offers, &[demand(1, 10, 5, 1)]);
        assert_eq!(takers(&out), vec![(0, 0, 1), (1, 0, 1), (2, 0, 2)]);
        assert_eq!(out.unmatched.len(), 2);
        assert_eq!(out.unmatched[0].reason.reason, Reason::SlotsTaken);
        assert_eq!(
            out.fills,
            vec![
                OfferFill {
                    offer: OfferId(1),
                    provider: ProviderId(1),
                    assigned: 2,
                    remaining_slots: 0
                },
                OfferFill {
                    offer: OfferId(2),
                    provider: ProviderId(2),
                    assigned: 1,
                    remaining_slots: 0
                },
            ]
        );
    }

    #[test]
    fn replicas_of_a_unit_go_to_distinct_providers() {
        // Provider 1 has two cheap offers with room for everything; replicas must still spread.
        let offers = [
            offer(1, 1, 1, 5),
            offer(2, 1, 2, 5),
            offer(3, 2, 3, 5),
            offer(4, 3, 9, 5),
        ];
        let out = run(&offers, &[demand(1, 10, 2, 3)]);
        assert_eq!(
            takers(&out),
            vec![
                (0, 0, 1),
                (0, 1, 3),
                (0, 2, 4),
                (1, 0, 1),
                (1, 1, 3),
                (1, 2, 4)
            ]
        );
    }

    #[test]
    fn a_replica_with_no_distinct_provider_left_is_explained() {
        let offers = [offer(1, 1, 1, 5), offer(2, 1, 2, 5)];
        let out = run(&offers, &[demand(1, 10, 1, 2)]);
        assert_eq!(takers(&out), vec![(0, 0, 1)]);
        let why = &out.unmatched[0].reason;
        assert_eq!(
            why.reason,
            Reason::NoProvider {
                binding: Requirement::Excluded
            }
        );
        assert_eq!(why.excluded_by.get(Constraint::Excluded), 2);
        assert_eq!(
            why.to_string(),
            "every provider that meets the requirements is excluded from this unit (2 of 2 offers excluded)"
        );
    }

    #[test]
    fn excluded_providers_never_get_the_unit() {
        let offers = [offer(1, 1, 1, 5), offer(2, 2, 2, 5)];
        let mut d = demand(1, 10, 2, 1);
        d.units[0].exclude = vec![ProviderId(1)];
        let out = run(&offers, &[d]);
        // Unit 0 skips provider 1; unit 1 may use it again.
        assert_eq!(takers(&out), vec![(0, 0, 2), (1, 0, 1)]);
    }

    #[test]
    fn higher_max_price_is_served_first_then_older_then_lower_job() {
        let offers = [offer(1, 1, 5, 1), offer(2, 2, 6, 1), offer(3, 3, 7, 1)];
        let mut young = demand(3, 10, 1, 1);
        young.submitted_height = 5;
        let demands = [demand(1, 8, 1, 1), young, demand(2, 10, 1, 1)];
        let out = run(&offers, &demands);
        let by_job: Vec<(u64, u64)> = out
            .assignments
            .iter()
            .map(|a| (a.job.0, a.offer.0))
            .collect();
        assert_eq!(by_job, vec![(2, 1), (3, 2), (1, 3)]);
    }

    #[test]
    fn expired_offers_are_ignored_and_listed() {
        let mut gone = offer(1, 1, 1, 5);
        gone.expiry_secs = 10;
        let mut future = offer(3, 3, 1, 5);
        future.posted_secs = 11;
        future.expiry_secs = 20;
        let offers = [gone, offer(2, 2, 5, 5), future];
        let out = run(&offers, &[demand(1, 10, 1, 1)]);
        assert_eq!(takers(&out), vec![(0, 0, 2)]);
        assert_eq!(out.expired, vec![OfferId(1), OfferId(3)]);
    }

    #[test]
    fn price_above_max_is_explained_with_the_best_ask() {
        let offers = [offer(1, 1, 12, 1), offer(2, 2, 15, 1)];
        let out = run(&offers, &[demand(1, 10, 1, 1)]);
        let why = &out.unmatched[0].reason;
        assert_eq!(why.reason, Reason::PriceTooLow);
        assert_eq!(why.best_ask, Some(12));
        assert_eq!(
            why.to_string(),
            "best ask 12 > max price 10 (2 of 2 offers meet the requirements)"
        );
    }

    #[test]
    fn a_missing_gpu_is_explained() {
        let offers = [offer(1, 1, 1, 1), offer(2, 2, 1, 1), offer(3, 3, 1, 1)];
        let mut d = demand(1, 10, 1, 1);
        d.requirements.gpu = Some(GpuRequirement {
            model: Some("rtx4090".into()),
            min_count: 1,
            min_memory_mib: 0,
        });
        let out = run(&offers, &[d]);
        assert_eq!(
            out.unmatched[0].reason.to_string(),
            "no provider with gpu rtx4090 (3 of 3 offers excluded by gpu)"
        );
    }

    #[test]
    fn each_requirement_excludes_and_is_counted() {
        let mut gpu_box = offer(1, 1, 1, 1);
        gpu_box.resources.gpu = Some(Gpu {
            model: "a100".into(),
            count: 2,
            memory_mib: 40_960,
        });
        gpu_box.resources.class = DeviceClass::Server;
        gpu_box.resources.cores = 64;
        let mut phone = offer(2, 2, 1, 1);
        phone.resources.class = DeviceClass::Phone;
        phone.resources.region = "us-east".into();
        phone.resources.cores = 4;
        phone.reputation = 5;
        let mut p2 = offer(3, 3, 1, 1);
        p2.resources.runtimes = RuntimeSet::only(Runtime::Wasm32Wasip1).with(Runtime::Wasm32Wasip2);
        p2.resources.max_unit_fuel = 1_000;
        p2.resources.cpu_score = 10;
        p2.resources.memory_mib = 512;
        let offers = [gpu_box, phone, p2];

        let cases: Vec<(Requirements, Constraint, u64)> = vec![
            (
                Requirements {
                    min_cores: 16,
                    ..any()
                },
                Constraint::Cores,
                2,
            ),
            (
                Requirements {
                    min_memory_mib: 1024,
                    ..any()
                },
                Constraint::Memory,
                1,
            ),
            (
                Requirements {
                    min_cpu_score: 100,
                    ..any()
                },
                Constraint::Cpu,
                1,
            ),
            (
                Requirements {
                    gpu: Some(GpuRequirement {
                        model: None,
                        min_count: 1,
                        min_memory_mib: 0,
                    }),
                    ..any()
                },
                Constraint::Gpu,
                2,
            ),
            (
                Requirements {
                    class: Some(DeviceClass::Laptop),
                    ..any()
                },
                Constraint::Class,
                3,
            ),
            (
                Requirements {
                    region: Some("ap-south".into()),
                    ..any()
                },
                Constraint::Region,
                3,
            ),
            (
                Requirements {
                    runtime: Runtime::Wasm32Wasip2,
                    ..any()
                },
                Constraint::Runtime,
                2,
            ),
            (
                Requirements {
                    fuel_limit: 1_001,
                    ..any()
                },
                Constraint::Fuel,
                1,
            ),
            (
                Requirements {
                    min_reputation: 50,
                    ..any()
                },
                Constraint::Reputation,
                1,
            ),
        ];
        for (req, constraint, excluded) in cases {
            // A max price of 0 leaves every slot unmatched, so each one is explained.
            let mut d = demand(1, 0, 1, 1);
            d.requirements = req.clone();
            let out = run(&offers, &[d]);
            let why = &out.unmatched[0].reason;
            for c in Constraint::ALL {
                let expected = if c == constraint { excluded } else { 0 };
                assert_eq!(why.excluded_by.get(c), expected, "{c} under {req:?}");
            }
            let passed = offers.iter().filter(|o| req.admits(o)).count() as u64;
            assert_eq!(why.passed, passed, "{req:?}");
            assert_eq!(why.live_offers, 3);
        }
    }

    #[test]
    fn requirements_no_single_offer_meets_are_explained_by_the_largest_exclusion() {
        let mut big = offer(1, 1, 1, 1);
        big.resources.cores = 64;
        big.resources.region = "us-east".into();
        let small = offer(2, 2, 1, 1);
        let mut d = demand(1, 10, 1, 1);
        d.requirements.min_cores = 32;
        d.requirements.region = Some("eu-west".into());
        d.requirements.min_reputation = 101;
        let out = run(&[big, small], &[d]);
        assert_eq!(
            out.unmatched[0].reason.to_string(),
            "no provider with a reputation of at least 101 (2 of 2 offers excluded by reputation)"
        );

        let mut big = offer(1, 1, 1, 1);
        big.resources.cores = 64;
        big.resources.region = "us-east".into();
        let mut d = demand(1, 10, 1, 1);
        d.requirements.min_cores = 32;
        d.requirements.region = Some("eu-west".into());
        let out = run(&[big, offer(2, 2, 1, 1), offer(3, 3, 1, 1)], &[d]);
        assert_eq!(
            out.unmatched[0].reason.to_string(),
            "no provider meets all requirements at once; at least 32 cores excludes the most (2 of 3 offers)"
        );
    }

    #[test]
    fn an_empty_book_is_explained() {
        let out = run(&[], &[demand(1, 10, 1, 2)]);
        assert_eq!(out.unmatched.len(), 2);
        assert_eq!(out.unmatched[0].reason.reason, Reason::EmptyBook);
        assert_eq!(
            out.unmatched[0].reason.to_string(),
            "no live offers on the book"
        );
    }

    #[test]
    fn slots_taken_by_a_higher_priority_demand_are_explained() {
        let offers = [offer(1, 1, 5, 1)];
        let out = run(&offers, &[demand(1, 10, 1, 1), demand(2, 9, 1, 1)]);
        assert_eq!(out.assignments[0].job, JobId(1));
        assert_eq!(
            out.unmatched[0].reason.to_string(),
            "all matching slots taken (1 of 1 offers meet the requirements, best ask 5 <= max price 9)"
        );
    }

    #[test]
    fn busy_offers_take_nothing_but_count_as_matching() {
        let out = run(&[offer(1, 1, 5, 0)], &[demand(1, 10, 1, 1)]);
        assert!(out.assignments.is_empty());
        assert_eq!(out.unmatched[0].reason.reason, Reason::SlotsTaken);
        assert!(out.fills.is_empty());
    }

    #[test]
    fn bad_batches_are_refused() {
        let d = demand(1, 10, 1, 1);
        assert_eq!(
            match_batch(&[offer(1, 1, 5, 1), offer(1, 2, 5, 1)], &[], 10),
            Err(MatchError::DuplicateOffer(OfferId(1)))
        );
        assert_eq!(
            match_batch(&[], &[d.clone(), d.clone()], 10),
            Err(MatchError::DuplicateJob(JobId(1)))
        );
        let mut bad = d.clone();
        bad.units[0].replicas.clear();
        assert_eq!(
            match_batch(&[], &[bad], 10),
            Err(MatchError::InvalidDemand {
                job: JobId(1),
                error: DemandError::NoReplica { unit: 0 }
            })
        );
        let mut bad = offer(1, 1, 5, 1);
        bad.resources.cores = 0;
        assert!(matches!(
            match_batch(&[bad], &[d], 10),
            Err(MatchError::InvalidOffer {
                offer: OfferId(1),
                ..
            })
        ));
    }

    #[test]
    fn the_error_does_not_depend_on_arrival_order() {
        let mut a = offer(5, 1, 5, 1);
        a.resources.cores = 0;
        let mut b = offer(2, 1, 5, 1);
        b.resources.memory_mib = 0;
        for offers in [[a.clone(), b.clone()], [b, a]] {
            assert!(matches!(
                match_batch(&offers, &[], 10),
                Err(MatchError::InvalidOffer {
                    offer: OfferId(2),
                    ..
                })
            ));
        }
        let mut x = demand(7, 10, 1, 1);
        x.units[0].replicas.clear();
        let mut y = demand(3, 10, 1, 1);
        y.requirements.fuel_limit = 0;
        for demands in [[x.clone(), y.clone()], [y, x]] {
            assert!(matches!(
                match_batch(&[], &demands, 10),
                Err(MatchError::InvalidDemand { job: JobId(3), .. })
            ));
        }
    }

    #[test]
    fn many_offers_exercise_the_tree() {
        // 500 offers in one group: several tree levels. Only every 37th offer has 16 cores.
        let offers: Vec<Offer> = (0..500u64)
            .map(|i| {
                let mut o = offer(i, i, u128::from(1000 - i), 1);
                o.resources.cores = if i % 37 == 0 { 16 } else { 2 };
                o
            })
            .collect();
        let mut d = demand(1, 1000, 20, 1);
        d.requirements.min_cores = 16;
        let out = run(&offers, &[d]);
        let mut expected: Vec<&Offer> = offers.iter().filter(|o| o.resources.cores == 16).collect();
        expected.sort_by_key(|o| o.price_per_unit);
        let got: Vec<u64> = out.assignments.iter().map(|a| a.offer.0).collect();
        let want: Vec<u64> = expected.iter().map(|o| o.id.0).collect();
        assert_eq!(got, want);
        assert_eq!(out.unmatched.len(), 20 - want.len());
    }
}
