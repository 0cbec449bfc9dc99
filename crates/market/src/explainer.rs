//! Computes [`Explanation`]s for unmatched slots.
//!
//! Explanations are only needed for slots that stayed unmatched, so everything here is built
//! lazily on the first one, and what depends only on a demand's requirements is computed once
//! per distinct requirements and shared by every unit and replica that has them.

use std::collections::BTreeMap;

use crate::explain::{ExclusionCounts, Explanation};
use crate::index::{Index, Query};
use crate::order::{Constraint, Requirements};
use crate::resources::Runtime;

/// How many of the cheapest passing offers are remembered per requirements, to find the best
/// ask outside a unit's exclusion list without another sweep. Exclusion lists are short, so
/// the sweep fallback is rare.
const CHEAPEST: usize = 32;

/// Per-field views of the live book, for counting each requirement's exclusions on its own.
#[derive(Debug)]
struct Columns {
    cores: Vec<u32>,
    memory: Vec<u64>,
    cpu: Vec<u64>,
    fuel: Vec<u64>,
    reputation: Vec<u32>,
    /// Offers per class tag and per runtime tag.
    classes: [u64; 5],
    runtimes: [u64; 8],
    /// Positions grouped by region id (in price order within a region), and where each
    /// region's run starts: region `r` is `by_region[region_start[r]..region_start[r + 1]]`.
    by_region: Vec<u32>,
    region_start: Vec<usize>,
    /// (model id, count, memory) of each offer with a GPU, sorted.
    gpus: Vec<(u32, u32, u64)>,
    /// (provider, position) of every offer, sorted, to look up an excluded provider's offers.
    by_provider: Vec<(u64, u32)>,
}

impl Columns {
    fn new(index: &Index<'_>) -> Self {
        let slim = &index.slim;
        let sorted = |mut v: Vec<u64>| {
            v.sort_unstable();
            v
        };
        let mut cores: Vec<u32> = slim.iter().map(|s| s.cores).collect();
        cores.sort_unstable();
        let mut reputation: Vec<u32> = slim.iter().map(|s| s.reputation).collect();
        reputation.sort_unstable();
        let mut classes = [0u64; 5];
        let mut runtimes = [0u64; 8];
        let mut region_count = vec![0usize; index.regions.len()];
        let mut gpus = Vec::new();
        let mut by_provider = Vec::with_capacity(slim.len());
        for (pos, s) in slim.iter().enumerate() {
            for (tag, n) in classes.iter_mut().enumerate() {
                if s.class_bit & (1 << tag) != 0 {
                    *n += 1;
                }
            }
            for (tag, n) in runtimes.iter_mut().enumerate() {
                if s.runtimes & (1 << tag) != 0 {
                    *n += 1;
                }
            }
            if let Some(n) = region_count.get_mut(s.region as usize) {
                *n += 1;
            }
            if s.gpu_count > 0 {
                gpus.push((s.gpu_model, s.gpu_count, s.gpu_memory));
            }
            by_provider.push((s.provider, pos as u32));
        }
        gpus.sort_unstable();
        by_provider.sort_unstable();
        // A counting sort by region keeps each region's offers in price order.
        let mut region_start = Vec::with_capacity(region_count.len() + 1);
        let mut acc = 0usize;
        region_start.push(0);
        for n in &region_count {
            acc += n;
            region_start.push(acc);
        }
        let mut fill = region_start.clone();
        let mut by_region = vec![0u32; slim.len()];
        for (pos, s) in slim.iter().enumerate() {
            if let Some(next) = fill.get_mut(s.region as usize) {
                if let Some(slot) = by_region.get_mut(*next) {
                    *slot = pos as u32;
                }
                *next += 1;
            }
        }
        Columns {
            cores,
            memory: sorted(slim.iter().map(|s| s.memory).collect()),
            cpu: sorted(slim.iter().map(|s| s.cpu).collect()),
            fuel: sorted(slim.iter().map(|s| s.fuel).collect()),
            reputation,
            classes,
            runtimes,
            by_region,
            region_start,
            gpus,
            by_provider,
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
    passed: u64,
    /// Positions of the cheapest passing offers, in price order.
    cheapest: Vec<u32>,
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
        index: &Index<'_>,
        req: &'a Requirements,
        max_price: u128,
        excluded: &[u64],
    ) -> Explanation {
        let columns = self.columns.get_or_insert_with(|| Columns::new(index));
        let shared = self
            .shared
            .entry(req)
            .or_insert_with(|| share(index, columns, req));

        let mut counts = shared.counts;
        let mut excluded_offers = 0u64;
        let mut excluded_passing = 0u64;
        for &provider in excluded {
            for &(_, pos) in columns.offers_of(provider) {
                excluded_offers += 1;
                if index
                    .slim
                    .get(pos as usize)
                    .is_some_and(|s| shared.query.admits(s))
                {
                    excluded_passing += 1;
                }
            }
        }
        counts.set(Constraint::Excluded, excluded_offers);
        let passed = shared.passed.saturating_sub(excluded_passing);

        let is_excluded = |pos: usize| {
            index
                .slim
                .get(pos)
                .is_some_and(|s| excluded.binary_search(&s.provider).is_ok())
        };
        let mut best = shared
            .cheapest
            .iter()
            .map(|&p| p as usize)
            .find(|&p| !is_excluded(p));
        if best.is_none() && passed > 0 {
            // Every remembered offer belongs to an excluded provider: sweep for the next one.
            best = sweep(index, columns, &shared.query, req, |p| !is_excluded(p), 1)
                .1
                .first()
                .map(|&p| p as usize);
        }
        let best_ask = best.and_then(|p| index.prices.get(p).copied());
        Explanation::new(
            req,
            index.len() as u64,
            counts,
            passed,
            best_ask,
            max_price,
        )
    }
}

/// Counts each requirement's exclusions independently, and the offers meeting all of them.
fn share(index: &Index<'_>, c: &Columns, req: &Requirements) -> Shared {
    let query = index.query(req);
    let live = index.slim.len() as u64;
    let below = |n: usize| n as u64;
    let mut counts = ExclusionCounts::default();
    counts.set(
        Constraint::Cores,
        below(c.cores.partition_point(|&v| v < req.min_cores)),
    );
    counts.set(
        Constraint::Memory,
        below(c.memory.partition_point(|&v| v < req.min_memory_mib)),
    );
    counts.set(
        Constraint::Cpu,
        below(c.cpu.partition_point(|&v| v < req.min_cpu_score)),
    );
    counts.set(
        Constraint::Fuel,
        below(c.fuel.partition_point(|&v| v < req.fuel_limit)),
    );
    counts.set(
        Constraint::Reputation,
        below(c.reputation.partition_point(|&v| v < req.min_reputation)),
    );
    if let Some(class) = req.class {
        let have = c.classes.get(class.tag() as usize).copied().unwrap_or(0);
        counts.set(Constraint::Class, live.saturating_sub(have));
    }
    let have = runtime_count(c, req.runtime);
    counts.set(Constraint::Runtime, live.saturating_sub(have));
    if let Some(region) = &req.region {
        let have = region_range(index, c, region).map_or(0, |r| r.len() as u64);
        counts.set(Constraint::Region, live.saturating_sub(have));
    }
    if let Some(g) = &req.gpu {
        let model = g.model.as_deref().map(|m| index.gpu_models_id(m));
        let candidates: &[(u32, u32, u64)] = match model {
            None => &c.gpus,
            Some(None) => &[],
            Some(Some(id)) => {
                let lo = c.gpus.partition_point(|&(m, _, _)| m < id);
                let hi = c.gpus.partition_point(|&(m, _, _)| m <= id);
                c.gpus.get(lo..hi).unwrap_or(&[])
            }
        };
        let have = candidates
            .iter()
            .filter(|&&(_, n, mem)| n >= g.min_count && mem >= g.min_memory_mib)
            .count() as u64;
        counts.set(Constraint::Gpu, live.saturating_sub(have));
    }
    let (passed, cheapest) = sweep(index, c, &query, req, |_| true, CHEAPEST);
    Shared {
        query,
        counts,
        passed,
        cheapest,
    }
}

fn runtime_count(c: &Columns, runtime: Runtime) -> u64 {
    c.runtimes.get(runtime.tag() as usize).copied().unwrap_or(0)
}

/// The positions of `region`'s offers, if any offer is in it.
fn region_range<'c>(index: &Index<'_>, c: &'c Columns, region: &str) -> Option<&'c [u32]> {
    let id = index.regions_id(region)? as usize;
    let lo = *c.region_start.get(id)?;
    let hi = *c.region_start.get(id + 1)?;
    c.by_region.get(lo..hi)
}

/// Counts the offers meeting `query` and accepted by `keep` (ignoring slots), and returns the
/// first `limit` of them in price order. A region requirement narrows the sweep to that region.
fn sweep(
    index: &Index<'_>,
    c: &Columns,
    query: &Query,
    req: &Requirements,
    keep: impl Fn(usize) -> bool,
    limit: usize,
) -> (u64, Vec<u32>) {
    let mut passed = 0u64;
    let mut cheapest = Vec::new();
    let mut visit = |pos: usize| {
        if index.slim.get(pos).is_some_and(|s| query.admits(s)) && keep(pos) {
            passed += 1;
            if cheapest.len() < limit {
                cheapest.push(pos as u32);
            }
        }
    };
    match &req.region {
        Some(region) => {
            for &pos in region_range(index, c, region).unwrap_or(&[]) {
                visit(pos as usize);
            }
        }
        None => {
            for pos in 0..index.slim.len() {
                visit(pos);
            }
        }
    }
    (passed, cheapest)
}
