//! Computes [`Explanation`]s for unmatched slots.
//!
//! Explanations are only needed for slots that stayed unmatched, so everything here is built
//! lazily on the first one, and what depends only on a demand's requirements is computed once
//! per distinct requirements and shared by every unit and replica that has them. What depends
//! on a unit's exclusion list is then a lookup of the few excluded providers' offers.

use std::collections::BTreeMap;

use crate::explain::{ExclusionCounts, Explanation, PASSED_COUNT_LIMIT};
use crate::index::{Index, OfferKey, Query};
use crate::order::{Constraint, Requirements};

/// Per-field views of the live book, for counting each requirement's exclusions on its own
/// with a binary search instead of a sweep.
#[derive(Debug)]
struct Columns {
    cores: Vec<u32>,
    memory: Vec<u64>,
    cpu: Vec<u64>,
    fuel: Vec<u64>,
    reputation: Vec<u32>,
    /// Offers per class tag and per runtime tag.
    classes: [u64; 8],
    runtimes: [u64; 8],
    /// (model id, count, memory) of each offer with a GPU, sorted.
    gpus: Vec<(u32, u32, u64)>,
    /// (provider, position) of every offer, sorted, to look up an excluded provider's offers.
    by_provider: Vec<(u64, u32)>,
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Offers with a value below `min` in an ascending column.
fn below<T: Ord>(column: &[T], min: &T) -> u64 {
    column.partition_point(|v| v < min) as u64
}

impl Columns {
    fn new(index: &Index) -> Self {
        let slim = &index.slim;
        let mut classes = [0u64; 8];
        let mut runtimes = [0u64; 8];
        for s in slim {
            if let Some(n) = classes.get_mut(s.class as usize) {
                *n += 1;
            }
            for (tag, n) in runtimes.iter_mut().enumerate() {
                if s.runtimes & (1 << tag) != 0 {
                    *n += 1;
                }
            }
        }
        Columns {
            cores: sorted(slim.iter().map(|s| s.cores).collect()),
            memory: sorted(slim.iter().map(|s| s.memory).collect()),
            cpu: sorted(slim.iter().map(|s| s.cpu).collect()),
            fuel: sorted(slim.iter().map(|s| s.fuel).collect()),
            reputation: sorted(slim.iter().map(|s| s.reputation).collect()),
            classes,
            runtimes,
            gpus: sorted(
                slim.iter()
                    .filter(|s| s.gpu_count > 0)
                    .map(|s| (s.gpu_model, s.gpu_count, s.gpu_memory))
                    .collect(),
            ),
            by_provider: sorted(
                slim.iter()
                    .enumerate()
                    .map(|(pos, s)| (s.provider, pos as u32))
                    .collect(),
            ),
        }
    }

    fn offers_of(&self, provider: u64) -> &[(u64, u32)] {
        let lo = self.by_provider.partition_point(|&(p, _)| p < provider);
        let hi = self.by_provider.partition_point(|&(p, _)| p <= provider);
        self.by_provider.get(lo..hi).unwrap_or(&[])
    }
}

/// What depends only on the requirements.
#[derive(Debug)]
struct Shared {
    query: Query,
    counts: ExclusionCounts,
    /// Offers meeting every requirement, counted up to [`PASSED_COUNT_LIMIT`].
    passed: u64,
    /// Position of the cheapest of them.
    best: Option<usize>,
    /// The explanation for a unit with nothing excluded at the last max price asked: most
    /// unmatched units of a demand that found nothing are exactly that.
    plain: Option<Explanation>,
}

#[derive(Debug, Default)]
pub(crate) struct Explainer<'a> {
    columns: Option<Columns>,
    shared: BTreeMap<&'a Requirements, Shared>,
}

impl<'a> Explainer<'a> {
    /// Explains why a unit of a demand with `req` and `max_price` found no slot, given the
    /// providers excluded from it (sorted, including those that took its other replicas).
    pub(crate) fn explain(
        &mut self,
        index: &Index,
        req: &'a Requirements,
        max_price: u128,
        excluded: &[u64],
    ) -> Explanation {
        let columns = self.columns.get_or_insert_with(|| Columns::new(index));
        let shared = self
            .shared
            .entry(req)
            .or_insert_with(|| share(index, columns, req));
        if excluded.is_empty()
            && let Some(plain) = &shared.plain
            && plain.max_price_per_unit == max_price
        {
            return plain.clone();
        }
        let query = &shared.query;

        let mut counts = shared.counts;
        let mut excluded_offers = 0u64;
        let mut excluded_passing = 0u64;
        for &provider in excluded {
            for &(_, pos) in columns.offers_of(provider) {
                excluded_offers += 1;
                if index
                    .slim
                    .get(pos as usize)
                    .is_some_and(|s| query.admits(s))
                {
                    excluded_passing += 1;
                }
            }
        }
        counts.set(Constraint::Excluded, excluded_offers);

        let is_excluded = |pos: usize| {
            index
                .slim
                .get(pos)
                .is_some_and(|s| excluded.binary_search(&s.provider).is_ok())
        };
        let exact = shared.passed < PASSED_COUNT_LIMIT;
        let mut passed = shared.passed.saturating_sub(excluded_passing);
        let mut best = shared.best;
        if best.is_some_and(is_excluded) {
            // The cheapest passing offer is from an excluded provider: look group by group for
            // the cheapest one that is not.
            best = index
                .candidates(query)
                .filter_map(|g| index.first_any(g, query, |pos| !is_excluded(pos)))
                .min_by_key(|&pos| key(index, pos));
        }
        if !exact && passed == 0 && best.is_some() {
            // The count stopped at the limit and the exclusions ate all of it; at least the
            // best offer is left.
            passed = 1;
        }
        let explanation = Explanation::new(
            req,
            index.len() as u64,
            counts,
            passed,
            exact,
            best.and_then(|p| index.keys.get(p).map(|k| k.0)),
            max_price,
        );
        if excluded.is_empty() {
            shared.plain = Some(explanation.clone());
        }
        explanation
    }
}

/// The offer order of the offer at `pos`.
fn key(index: &Index, pos: usize) -> Option<OfferKey> {
    index.keys.get(pos).copied()
}

/// Counts each requirement's exclusions independently, and the offers meeting all of them.
fn share(index: &Index, c: &Columns, req: &Requirements) -> Shared {
    let query = index.query(req);
    let live = index.len() as u64;
    let mut counts = ExclusionCounts::default();
    counts.set(Constraint::Cores, below(&c.cores, &req.min_cores));
    counts.set(Constraint::Memory, below(&c.memory, &req.min_memory_mib));
    counts.set(Constraint::Cpu, below(&c.cpu, &req.min_cpu_score));
    counts.set(Constraint::Fuel, below(&c.fuel, &req.fuel_limit));
    counts.set(
        Constraint::Reputation,
        below(&c.reputation, &req.min_reputation),
    );
    if let Some(class) = req.class {
        let have = c.classes.get(class.tag() as usize).copied().unwrap_or(0);
        counts.set(Constraint::Class, live.saturating_sub(have));
    }
    let have = c
        .runtimes
        .get(req.runtime.tag() as usize)
        .copied()
        .unwrap_or(0);
    counts.set(Constraint::Runtime, live.saturating_sub(have));
    if let Some(region) = &req.region {
        let have: u64 = index.region_id(region).map_or(0, |id| {
            index
                .groups
                .iter()
                .filter(|g| g.region == id)
                .map(|g| (g.end - g.start) as u64)
                .sum()
        });
        counts.set(Constraint::Region, live.saturating_sub(have));
    }
    if let Some(g) = &req.gpu {
        let candidates: &[(u32, u32, u64)] = match g.model.as_deref() {
            None => &c.gpus,
            Some(name) => match index.gpu_model_id(name) {
                None => &[],
                Some(id) => {
                    let lo = c.gpus.partition_point(|&(m, _, _)| m < id);
                    let hi = c.gpus.partition_point(|&(m, _, _)| m <= id);
                    c.gpus.get(lo..hi).unwrap_or(&[])
                }
            },
        };
        let have = candidates
            .iter()
            .filter(|&&(_, n, mem)| n >= g.min_count && mem >= g.min_memory_mib)
            .count() as u64;
        counts.set(Constraint::Gpu, live.saturating_sub(have));
    }

    let mut passed = 0u64;
    let mut best: Option<usize> = None;
    for g in index.candidates(&query) {
        let Some(first) = index.first_any(g, &query, |_| true) else {
            continue;
        };
        if best.is_none_or(|b| key(index, first) < key(index, b)) {
            best = Some(first);
        }
        if passed < PASSED_COUNT_LIMIT {
            passed += index.count_any(g, &query, PASSED_COUNT_LIMIT - passed);
        }
    }
    Shared {
        query,
        counts,
        passed,
        best,
        plain: None,
    }
}
