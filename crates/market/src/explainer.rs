//! Computes [`Explanation`]s for unmatched slots.
//!
//! Explanations describe the book as it was at the start of the batch (ignoring slots), so
//! they need not be computed while matching: failed units are queued and explained at the end,
//! all together. That lets one pass over the book gather everything the queued demands will
//! ask about (how many offers fall below each threshold they use, the offers of the providers
//! they exclude) instead of sorting whole columns. What depends only on a demand's requirements
//! is then computed once per distinct requirements and shared by every unit with them; what
//! depends on a unit's exclusion list is a lookup of the few excluded providers' offers.

use std::collections::{BTreeMap, BTreeSet};

use crate::explain::{ExclusionCounts, Explanation, PASSED_COUNT_LIMIT};
use crate::index::{Index, OfferKey, Query};
use crate::matching::Unmatched;
use crate::order::{Constraint, Demand, Requirements, UnitDemand};

/// How many offers fall below each threshold the queued demands use for one numeric field.
#[derive(Debug, Default)]
struct Field {
    /// Distinct thresholds, ascending.
    thresholds: Vec<u64>,
    /// `below[k]` offers have a value below `thresholds[k]`.
    below: Vec<u64>,
}

impl Field {
    fn new(thresholds: BTreeSet<u64>) -> Self {
        let thresholds: Vec<u64> = thresholds.into_iter().collect();
        Field {
            below: vec![0; thresholds.len() + 1],
            thresholds,
        }
    }

    /// Records one offer's value. Values are bucketed by how many thresholds they reach; the
    /// prefix sums in `finish` turn buckets into "below threshold k" counts.
    fn add(&mut self, value: u64) {
        let bucket = self.thresholds.partition_point(|&t| t <= value);
        if let Some(n) = self.below.get_mut(bucket) {
            *n += 1;
        }
    }

    fn finish(&mut self) {
        let mut acc = 0u64;
        for n in &mut self.below {
            acc += *n;
            *n = acc;
        }
    }

    /// Offers with a value below `threshold`, which must be one of the recorded thresholds.
    fn below(&self, threshold: u64) -> u64 {
        match self.thresholds.binary_search(&threshold) {
            Ok(k) => self.below.get(k).copied().unwrap_or(0),
            Err(_) => 0,
        }
    }
}

/// What one pass over the book gathers for the queued demands.
#[derive(Debug, Default)]
struct Columns {
    cores: Field,
    memory: Field,
    cpu: Field,
    fuel: Field,
    reputation: Field,
    /// Offers per class tag and per runtime tag.
    classes: [u64; 8],
    runtimes: [u64; 8],
    /// (model id, count, memory) of each offer with a GPU, sorted.
    gpus: Vec<(u32, u32, u64)>,
    /// (provider, position) of the offers of every provider some queued unit excludes, sorted.
    by_provider: Vec<(u64, u32)>,
}

impl Columns {
    fn new(index: &Index, pending: &[Pending<'_>]) -> Self {
        let mut thresholds: [BTreeSet<u64>; 5] = Default::default();
        let mut excluded: BTreeSet<u64> = BTreeSet::new();
        for p in pending {
            let r = &p.demand.requirements;
            let [cores, memory, cpu, fuel, reputation] = &mut thresholds;
            cores.insert(u64::from(r.min_cores));
            memory.insert(r.min_memory_mib);
            cpu.insert(r.min_cpu_score);
            fuel.insert(r.fuel_limit);
            reputation.insert(u64::from(r.min_reputation));
            excluded.extend(p.excluded.iter().copied());
        }
        let [cores, memory, cpu, fuel, reputation] = thresholds.map(Field::new);
        let excluded: Vec<u64> = excluded.into_iter().collect();
        let mut c = Columns {
            cores,
            memory,
            cpu,
            fuel,
            reputation,
            ..Columns::default()
        };
        for (pos, s) in index.slim.iter().enumerate() {
            c.cores.add(u64::from(s.cores));
            c.memory.add(s.memory);
            c.cpu.add(s.cpu);
            c.fuel.add(s.fuel);
            c.reputation.add(u64::from(s.reputation));
            if let Some(n) = c.classes.get_mut(s.class as usize) {
                *n += 1;
            }
            for (tag, n) in c.runtimes.iter_mut().enumerate() {
                if s.runtimes & (1 << tag) != 0 {
                    *n += 1;
                }
            }
            if s.gpu_count > 0 {
                c.gpus.push((s.gpu_model, s.gpu_count, s.gpu_memory));
            }
            if excluded.binary_search(&s.provider).is_ok() {
                c.by_provider.push((s.provider, pos as u32));
            }
        }
        for f in [
            &mut c.cores,
            &mut c.memory,
            &mut c.cpu,
            &mut c.fuel,
            &mut c.reputation,
        ] {
            f.finish();
        }
        c.gpus.sort_unstable();
        c.by_provider.sort_unstable();
        c
    }

    fn offers_of(&self, provider: u64) -> &[(u64, u32)] {
        let lo = self.by_provider.partition_point(|&(p, _)| p < provider);
        let hi = self.by_provider.partition_point(|&(p, _)| p <= provider);
        self.by_provider.get(lo..hi).unwrap_or(&[])
    }
}

/// A unit that found no slot: its replicas from `from` on are unmatched.
#[derive(Debug)]
struct Pending<'a> {
    demand: &'a Demand,
    unit: &'a UnitDemand,
    from: usize,
    /// Providers excluded from the unit when it failed, sorted.
    excluded: Vec<u64>,
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

/// Queues failed units during matching and explains them afterwards.
#[derive(Debug, Default)]
pub(crate) struct Explainer<'a> {
    pending: Vec<Pending<'a>>,
}

impl<'a> Explainer<'a> {
    /// Queues the replicas of `unit` from index `from` on, which found no slot with the
    /// providers in `excluded` (sorted) kept out.
    pub(crate) fn defer(
        &mut self,
        demand: &'a Demand,
        unit: &'a UnitDemand,
        from: usize,
        excluded: &[u64],
    ) {
        self.pending.push(Pending {
            demand,
            unit,
            from,
            excluded: excluded.to_vec(),
        });
    }

    /// Explains every queued unit, in the order they were queued.
    pub(crate) fn finish(self, index: &Index) -> Vec<Unmatched> {
        let mut out = Vec::new();
        if self.pending.is_empty() {
            return out;
        }
        let columns = Columns::new(index, &self.pending);
        let mut shared: BTreeMap<&Requirements, Shared> = BTreeMap::new();
        let mut gpu_counts = BTreeMap::new();
        for p in &self.pending {
            let req = &p.demand.requirements;
            let entry = shared
                .entry(req)
                .or_insert_with(|| share(index, &columns, &mut gpu_counts, req));
            let why = explain(
                index,
                &columns,
                entry,
                req,
                p.demand.max_price_per_unit,
                &p.excluded,
            );
            for &replica in p.unit.replicas.get(p.from..).unwrap_or(&[]) {
                out.push(Unmatched {
                    job: p.demand.job,
                    unit: p.unit.unit,
                    replica,
                    reason: why.clone(),
                });
            }
        }
        out
    }
}

/// Explains why a unit of a demand with `req` and `max_price` found no slot, given the
/// providers excluded from it (sorted, including those that took its other replicas).
fn explain(
    index: &Index,
    columns: &Columns,
    shared: &mut Shared,
    req: &Requirements,
    max_price: u128,
    excluded: &[u64],
) -> Explanation {
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

/// The offer order of the offer at `pos`.
fn key(index: &Index, pos: usize) -> Option<OfferKey> {
    index.keys.get(pos).copied()
}

/// Offers with a GPU meeting a (model id, min count, min memory) requirement, by requirement:
/// counting them scans the GPU offers, and demands share a handful of GPU requirements.
type GpuCounts = BTreeMap<(Option<Option<u32>>, u32, u64), u64>;

/// Counts each requirement's exclusions independently, and the offers meeting all of them.
fn share(index: &Index, c: &Columns, gpu_counts: &mut GpuCounts, req: &Requirements) -> Shared {
    let query = index.query(req);
    let live = index.len() as u64;
    let mut counts = ExclusionCounts::default();
    counts.set(Constraint::Cores, c.cores.below(u64::from(req.min_cores)));
    counts.set(Constraint::Memory, c.memory.below(req.min_memory_mib));
    counts.set(Constraint::Cpu, c.cpu.below(req.min_cpu_score));
    counts.set(Constraint::Fuel, c.fuel.below(req.fuel_limit));
    counts.set(
        Constraint::Reputation,
        c.reputation.below(u64::from(req.min_reputation)),
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
        // `None`: any model; `Some(None)`: a model no live offer has.
        let model = g.model.as_deref().map(|name| index.gpu_model_id(name));
        let have = *gpu_counts
            .entry((model, g.min_count, g.min_memory_mib))
            .or_insert_with(|| {
                let candidates: &[(u32, u32, u64)] = match model {
                    None => &c.gpus,
                    Some(None) => &[],
                    Some(Some(id)) => {
                        let lo = c.gpus.partition_point(|&(m, _, _)| m < id);
                        let hi = c.gpus.partition_point(|&(m, _, _)| m <= id);
                        c.gpus.get(lo..hi).unwrap_or(&[])
                    }
                };
                candidates
                    .iter()
                    .filter(|&&(_, n, mem)| n >= g.min_count && mem >= g.min_memory_mib)
                    .count() as u64
            });
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
