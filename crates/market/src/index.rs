//! The matcher's index over one batch's live offers.
//!
//! Offers are partitioned into groups by (region, device class), the two categorical
//! requirements that cut the book into the most even parts, so a demand pinned to a region or
//! class only ever looks at its own groups, and an unpinned one merges a few dozen groups. Inside a group offers are laid out in price order (price, then posting time,
//! then id) in a compact array cut into buckets of [`BUCKET`] offers, with a binary tree over
//! the buckets. Each tree node keeps, for its subtree, the largest value of every numeric
//! resource and the union of the GPU models and runtimes. A search for "the cheapest offer at
//! or after position p that meets these requirements" descends the tree and skips every subtree
//! whose summary already fails, so that a run of unsuitable offers costs one comparison instead
//! of one per offer.
//!
//! Each group has two trees. The *live* tree summarises only offers with free slots; when an
//! offer's last slot is taken its bucket and the bucket's ancestors are recomputed, so later
//! searches skip it without rescanning. The *static* tree summarises every live offer whatever
//! its slots, for explanations, which describe the market rather than what is left of it.
//!
//! A passing summary is only a hint (the largest core count and the right GPU may come from
//! different offers), so every candidate is confirmed with the exact per-offer check.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use crate::order::{Offer, Requirements};
use crate::resources::MAX_NAME_LEN;

/// Offers per leaf bucket. Scanning 16 compact offers linearly is cheaper than two more tree
/// levels, and keeps the trees small enough to stay in cache at a million offers.
pub(crate) const BUCKET: usize = 16;

/// Region or GPU-model id meaning "any" in a query.
const ANY: u32 = u32::MAX;
/// Region or GPU-model id no offer has: a query naming a region or model that is absent from
/// the book gets it, and then nothing can match.
const MISSING: u32 = u32::MAX - 1;
/// GPU-model id of an offer without a GPU.
const NO_GPU: u32 = u32::MAX - 2;
/// Bit of the GPU-model summary reserved for offers without a GPU, so that a subtree holding
/// only CPU machines still has a non-empty GPU set. Models hash into the other 63 bits.
const NO_GPU_BIT: u64 = 1 << 63;

fn gpu_bit(id: u32) -> u64 {
    if id == NO_GPU {
        NO_GPU_BIT
    } else {
        1u64 << (id % 63)
    }
}

/// One live offer, reduced to what the constraint check reads: 64 bytes, one cache line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slim {
    pub memory: u64,
    pub cpu: u64,
    pub fuel: u64,
    pub gpu_memory: u64,
    pub provider: u64,
    pub cores: u32,
    pub reputation: u32,
    pub gpu_count: u32,
    pub region: u32,
    pub gpu_model: u32,
    pub class: u8,
    pub runtimes: u8,
}

/// A demand's requirements with names replaced by this batch's ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    memory: u64,
    cpu: u64,
    fuel: u64,
    gpu_memory: u64,
    gpu_bits: u64,
    cores: u32,
    reputation: u32,
    gpu_count: u32,
    region: u32,
    gpu_model: u32,
    /// Class tag, or `None` for any class.
    class: Option<u8>,
    runtime: u8,
}

impl Query {
    /// The exact check, equivalent to [`Requirements::admits`] on the original offer.
    #[inline]
    pub(crate) fn admits(&self, s: &Slim) -> bool {
        (s.runtimes & self.runtime) != 0
            && s.cores >= self.cores
            && s.memory >= self.memory
            && s.cpu >= self.cpu
            && s.fuel >= self.fuel
            && s.reputation >= self.reputation
            && s.gpu_count >= self.gpu_count
            && s.gpu_memory >= self.gpu_memory
            && (self.region == ANY || s.region == self.region)
            && (self.gpu_model == ANY || s.gpu_model == self.gpu_model)
            && self.class.is_none_or(|c| c == s.class)
    }

    /// Whether some offer under `n` may pass. Region and class are settled by the group.
    #[inline]
    fn may_admit(&self, n: &Summary) -> bool {
        (n.runtimes & self.runtime) != 0
            && n.cores >= self.cores
            && n.memory >= self.memory
            && n.cpu >= self.cpu
            && n.fuel >= self.fuel
            && n.reputation >= self.reputation
            && n.gpu_count >= self.gpu_count
            && n.gpu_memory >= self.gpu_memory
            && (n.gpus & self.gpu_bits) != 0
    }
}

/// Upper bounds over the offers of a subtree. An empty subtree has no runtime bit, which
/// fails every query.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    memory: u64,
    cpu: u64,
    fuel: u64,
    gpu_memory: u64,
    gpus: u64,
    cores: u32,
    reputation: u32,
    gpu_count: u32,
    runtimes: u8,
}

impl Summary {
    fn add(&mut self, s: &Slim) {
        self.memory = self.memory.max(s.memory);
        self.cpu = self.cpu.max(s.cpu);
        self.fuel = self.fuel.max(s.fuel);
        self.gpu_memory = self.gpu_memory.max(s.gpu_memory);
        self.gpus |= gpu_bit(s.gpu_model);
        self.cores = self.cores.max(s.cores);
        self.reputation = self.reputation.max(s.reputation);
        self.gpu_count = self.gpu_count.max(s.gpu_count);
        self.runtimes |= s.runtimes;
    }

    fn merge(a: &Summary, b: &Summary) -> Summary {
        Summary {
            memory: a.memory.max(b.memory),
            cpu: a.cpu.max(b.cpu),
            fuel: a.fuel.max(b.fuel),
            gpu_memory: a.gpu_memory.max(b.gpu_memory),
            gpus: a.gpus | b.gpus,
            cores: a.cores.max(b.cores),
            reputation: a.reputation.max(b.reputation),
            gpu_count: a.gpu_count.max(b.gpu_count),
            runtimes: a.runtimes | b.runtimes,
        }
    }
}

/// A name (at most [`MAX_NAME_LEN`] bytes, checked by the caller) packed into two integers, so
/// that interning compares integers instead of chasing every offer's string to `memcmp` it.
/// Big-endian packing of the zero-padded bytes keeps the names' byte order; valid names hold no
/// zero byte, so padding cannot make two names equal.
type NameKey = (u128, u128);

fn name_key(name: &str) -> NameKey {
    let mut bytes = [0u8; 32];
    for (dst, src) in bytes.iter_mut().zip(name.as_bytes()) {
        *dst = *src;
    }
    let (hi, lo) = bytes.split_at(16);
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(hi);
    b.copy_from_slice(lo);
    (u128::from_be_bytes(a), u128::from_be_bytes(b))
}

/// Names seen in the batch, with ids in sorted-name order so the index does not depend on
/// arrival order.
#[derive(Debug, Default)]
struct Names {
    sorted: Vec<NameKey>,
}

impl Names {
    fn id(&self, name: &str) -> u32 {
        if name.len() > MAX_NAME_LEN {
            return MISSING;
        }
        match self.sorted.binary_search(&name_key(name)) {
            // At most one name per offer, and the batch holds fewer offers than the reserved
            // ids (`MAX_BATCH_OFFERS`), so the id fits and never collides with them.
            Ok(i) => i as u32,
            Err(_) => MISSING,
        }
    }
}

/// Gives names ids in the order they are first seen, then renumbers them in name order so
/// that nothing depends on the order offers arrived in.
#[derive(Debug, Default)]
struct Interner {
    first_seen: BTreeMap<NameKey, u32>,
}

impl Interner {
    /// The provisional id of `name`.
    fn id(&mut self, name: &str) -> u32 {
        let next = self.first_seen.len() as u32;
        *self.first_seen.entry(name_key(name)).or_insert(next)
    }

    /// The name table, and each provisional id's final id.
    fn finish(self) -> (Names, Vec<u32>) {
        let mut rank = vec![0u32; self.first_seen.len()];
        let mut sorted = Vec::with_capacity(self.first_seen.len());
        // BTreeMap iterates by key, which is name order.
        for (r, (key, id)) in self.first_seen.iter().enumerate() {
            if let Some(slot) = rank.get_mut(*id as usize) {
                *slot = r as u32;
            }
            sorted.push(*key);
        }
        (Names { sorted }, rank)
    }
}

/// Class tags fit in three bits; a group's number is `region * CLASS_SLOTS + class`.
const CLASS_SLOTS: usize = 8;

/// The offers of one (region, class), positions `start..end`, with their trees.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group {
    pub region: u32,
    pub class: u8,
    pub start: usize,
    pub end: usize,
    /// Leaves in this group's trees (a power of two), and where its nodes start in the shared
    /// tree arrays. Node `i` (1-based, heap order) is at `nodes + i`.
    leaves: usize,
    nodes: usize,
}

/// The offer order: price, then posting time, then offer id.
pub(crate) type OfferKey = (u128, u64, u64);

/// The index over one batch's live offers. Positions number the offers by group, then in
/// offer order within a group; every per-offer array is indexed by position.
#[derive(Debug)]
pub(crate) struct Index {
    pub slim: Vec<Slim>,
    /// Each offer's [`OfferKey`]: its price, and what breaks ties between equal prices.
    pub keys: Vec<OfferKey>,
    /// Slots each offer had when the batch started.
    pub initial_slots: Vec<u32>,
    /// Free slots per position; decremented as the batch assigns.
    pub slots: Vec<u32>,
    pub groups: Vec<Group>,
    regions: Names,
    gpu_models: Names,
    live: Vec<Summary>,
    fixed: Vec<Summary>,
}

impl Index {
    /// Indexes `live`, the offers live at the batch's time, in any order. Their names must
    /// be valid (the caller validates every offer) and their ids unique.
    pub(crate) fn new(live: &[&Offer]) -> Self {
        // First pass: name ids (provisional, in order of first sight) and group sizes.
        let n = live.len();
        let mut regions = Interner::default();
        let mut gpu_models = Interner::default();
        let mut names: Vec<(u32, u32)> = Vec::with_capacity(n);
        let mut group_sizes: Vec<usize> = Vec::new();
        for o in live {
            let r = &o.resources;
            let region = regions.id(&r.region);
            let gpu_model = r.gpu.as_ref().map_or(NO_GPU, |g| gpu_models.id(&g.model));
            names.push((region, gpu_model));
            let g = region as usize * CLASS_SLOTS + r.class.tag() as usize;
            if group_sizes.len() <= g {
                group_sizes.resize(g + CLASS_SLOTS, 0);
            }
            if let Some(size) = group_sizes.get_mut(g) {
                *size += 1;
            }
        }
        let (regions, region_rank) = regions.finish();
        let (gpu_models, gpu_rank) = gpu_models.finish();

        // Lay the groups out in (region name, class) order.
        let mut by_rank = vec![0u32; region_rank.len()];
        for (provisional, &rank) in region_rank.iter().enumerate() {
            if let Some(slot) = by_rank.get_mut(rank as usize) {
                *slot = provisional as u32;
            }
        }
        let mut group_start = vec![0usize; group_sizes.len()];
        // (region, class, start, end) of each group, in layout order.
        let mut spans: Vec<(u32, u8, usize, usize)> = Vec::new();
        let mut acc = 0usize;
        for (rank, &provisional) in by_rank.iter().enumerate() {
            for class in 0..CLASS_SLOTS {
                let g = provisional as usize * CLASS_SLOTS + class;
                let size = group_sizes.get(g).copied().unwrap_or(0);
                if size > 0 {
                    if let Some(start) = group_start.get_mut(g) {
                        *start = acc;
                    }
                    spans.push((rank as u32, class as u8, acc, acc + size));
                    acc += size;
                }
            }
        }

        // Second pass: each offer's compact row, written straight into its group (a counting
        // sort: sequential reads, one write stream per group). Every placeholder is
        // overwritten, since the group sizes add up to `n`.
        let mut grouped: Vec<(Slim, OfferKey, u32)> = vec![(Slim::default(), (0, 0, 0), 0); n];
        for (o, &(region, gpu_model)) in live.iter().zip(&names) {
            let r = &o.resources;
            let class = r.class.tag();
            let g = region as usize * CLASS_SLOTS + class as usize;
            let (gpu_count, gpu_memory, gpu_model) = match &r.gpu {
                Some(gpu) => (
                    gpu.count,
                    gpu.memory_mib,
                    gpu_rank.get(gpu_model as usize).copied().unwrap_or(MISSING),
                ),
                None => (0, 0, NO_GPU),
            };
            let slim = Slim {
                memory: r.memory_mib,
                cpu: r.cpu_score,
                fuel: r.max_unit_fuel,
                gpu_memory,
                provider: o.provider.0,
                cores: r.cores,
                reputation: o.reputation,
                gpu_count,
                region: region_rank.get(region as usize).copied().unwrap_or(MISSING),
                gpu_model,
                class,
                runtimes: r.runtimes.bits(),
            };
            let key = (o.price_per_unit, o.posted_secs, o.id.0);
            if let Some(next) = group_start.get_mut(g) {
                if let Some(row) = grouped.get_mut(*next) {
                    *row = (slim, key, o.slots);
                }
                *next += 1;
            }
        }
        drop(names);

        // Sort each group into offer order. A group's rows are a few megabytes at most, so the
        // sort and the gather stay in cache. Offer ids are unique, so the order is total.
        let mut slim = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut initial_slots = Vec::with_capacity(n);
        let mut order: Vec<(OfferKey, u32)> = Vec::new();
        for &(_, _, start, end) in &spans {
            let rows = grouped.get(start..end).unwrap_or(&[]);
            order.clear();
            order.extend(rows.iter().enumerate().map(|(i, row)| (row.1, i as u32)));
            order.sort_unstable();
            for &(_, i) in &order {
                if let Some((s, key, slots)) = rows.get(i as usize) {
                    slim.push(*s);
                    keys.push(*key);
                    initial_slots.push(*slots);
                }
            }
        }
        drop(grouped);

        let mut groups = Vec::with_capacity(spans.len());
        let mut nodes = 0usize;
        for &(region, class, start, end) in &spans {
            let leaves = (end - start).div_ceil(BUCKET).next_power_of_two();
            groups.push(Group {
                region,
                class,
                start,
                end,
                leaves,
                nodes,
            });
            nodes += 2 * leaves;
        }

        let mut index = Index {
            slim,
            keys,
            slots: initial_slots.clone(),
            initial_slots,
            groups,
            regions,
            gpu_models,
            live: vec![Summary::default(); nodes],
            fixed: vec![Summary::default(); nodes],
        };
        for g in 0..index.groups.len() {
            index.build(g);
        }
        index
    }

    fn build(&mut self, g: usize) {
        let group = self.groups[g];
        for b in 0..group.leaves {
            let (live, fixed) = self.bucket_summaries(&group, b);
            self.live[group.nodes + group.leaves + b] = live;
            self.fixed[group.nodes + group.leaves + b] = fixed;
        }
        for node in (1..group.leaves).rev() {
            let (l, r, at) = (
                group.nodes + 2 * node,
                group.nodes + 2 * node + 1,
                group.nodes + node,
            );
            self.live[at] = Summary::merge(&self.live[l], &self.live[r]);
            self.fixed[at] = Summary::merge(&self.fixed[l], &self.fixed[r]);
        }
    }

    /// The positions of bucket `b` of `group`.
    fn bucket(group: &Group, b: usize) -> std::ops::Range<usize> {
        let start = (group.start + b * BUCKET).min(group.end);
        let end = (start + BUCKET).min(group.end);
        start..end
    }

    /// Summaries of bucket `b`: over offers with free slots, and over all.
    fn bucket_summaries(&self, group: &Group, b: usize) -> (Summary, Summary) {
        let mut live = Summary::default();
        let mut fixed = Summary::default();
        for pos in Self::bucket(group, b) {
            fixed.add(&self.slim[pos]);
            if self.slots[pos] > 0 {
                live.add(&self.slim[pos]);
            }
        }
        (live, fixed)
    }

    /// Number of live offers.
    pub(crate) fn len(&self) -> usize {
        self.slim.len()
    }

    /// The id of a region some live offer is in.
    pub(crate) fn region_id(&self, name: &str) -> Option<u32> {
        Some(self.regions.id(name)).filter(|&id| id != MISSING)
    }

    /// The id of a GPU model some live offer has.
    pub(crate) fn gpu_model_id(&self, name: &str) -> Option<u32> {
        Some(self.gpu_models.id(name)).filter(|&id| id != MISSING)
    }

    /// Translates requirements into a query against this batch's names.
    pub(crate) fn query(&self, req: &Requirements) -> Query {
        let region = req
            .region
            .as_deref()
            .map_or(ANY, |name| self.regions.id(name));
        let (gpu_count, gpu_memory, gpu_model) = match &req.gpu {
            None => (0, 0, ANY),
            Some(g) => (
                g.min_count,
                g.min_memory_mib,
                g.model
                    .as_deref()
                    .map_or(ANY, |name| self.gpu_models.id(name)),
            ),
        };
        Query {
            memory: req.min_memory_mib,
            cpu: req.min_cpu_score,
            fuel: req.fuel_limit,
            gpu_memory,
            gpu_bits: match gpu_model {
                ANY => u64::MAX,
                MISSING => 0,
                id => gpu_bit(id),
            },
            cores: req.min_cores,
            reputation: req.min_reputation,
            gpu_count,
            region,
            gpu_model,
            class: req.class.map(|c| c.tag()),
            runtime: req.runtime.bit(),
        }
    }

    /// The groups a query can match, by region and class.
    pub(crate) fn candidates<'q>(&'q self, q: &'q Query) -> impl Iterator<Item = usize> + 'q {
        let range = match q.region {
            ANY => 0..self.groups.len(),
            region => {
                let lo = self.groups.partition_point(|g| g.region < region);
                let hi = self.groups.partition_point(|g| g.region <= region);
                lo..hi
            }
        };
        range.filter(move |&g| {
            self.groups
                .get(g)
                .is_some_and(|group| q.class.is_none_or(|c| c == group.class))
        })
    }

    /// The end of group `g`'s positions asking at most `max_price`.
    pub(crate) fn cutoff(&self, g: usize, max_price: u128) -> usize {
        let group = self.groups[g];
        let keys = self.keys.get(group.start..group.end).unwrap_or(&[]);
        group.start + keys.partition_point(|&(price, ..)| price <= max_price)
    }

    /// The first position in `from..to` of group `g` whose offer has a free slot, meets `q`
    /// and is not from a provider in `excluded` (sorted). Also says whether an offer was
    /// skipped only because of `excluded`, which makes the answer specific to that list.
    pub(crate) fn find(
        &self,
        g: usize,
        q: &Query,
        from: usize,
        to: usize,
        excluded: &[u64],
    ) -> (Option<usize>, bool) {
        let Some(group) = self.groups.get(g) else {
            return (None, false);
        };
        let to = to.min(group.end);
        let from = from.max(group.start);
        if from >= to {
            return (None, false);
        }
        let mut found = None;
        let mut skipped = false;
        let _ = self.walk(
            &self.live,
            group,
            q,
            1,
            0,
            group.leaves,
            from,
            to,
            &mut |pos| {
                if self.slots[pos] == 0 {
                    return ControlFlow::Continue(());
                }
                if !excluded.is_empty() && excluded.binary_search(&self.slim[pos].provider).is_ok()
                {
                    skipped = true;
                    return ControlFlow::Continue(());
                }
                found = Some(pos);
                ControlFlow::Break(())
            },
        );
        (found, skipped)
    }

    /// The first position of group `g` whose offer meets `q` and `keep`, slots or not.
    pub(crate) fn first_any(
        &self,
        g: usize,
        q: &Query,
        keep: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let group = self.groups.get(g)?;
        let mut found = None;
        let _ = self.walk(
            &self.fixed,
            group,
            q,
            1,
            0,
            group.leaves,
            group.start,
            group.end,
            &mut |pos| {
                if keep(pos) {
                    found = Some(pos);
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        found
    }

    /// Counts the offers of group `g` meeting `q`, slots or not, stopping at `limit`.
    pub(crate) fn count_any(&self, g: usize, q: &Query, limit: u64) -> u64 {
        let Some(group) = self.groups.get(g) else {
            return 0;
        };
        let mut n = 0u64;
        if limit == 0 {
            return 0;
        }
        let _ = self.walk(
            &self.fixed,
            group,
            q,
            1,
            0,
            group.leaves,
            group.start,
            group.end,
            &mut |_| {
                n += 1;
                if n >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        n
    }

    /// Visits, in order, the positions in `from..to` under `node` (covering buckets `lo..hi`)
    /// whose offers meet `q`, skipping subtrees whose summary fails.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        tree: &[Summary],
        group: &Group,
        q: &Query,
        node: usize,
        lo: usize,
        hi: usize,
        from: usize,
        to: usize,
        visit: &mut impl FnMut(usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let first = group.start + lo * BUCKET;
        let last = group.start + hi * BUCKET;
        if last <= from || first >= to || !q.may_admit(&tree[group.nodes + node]) {
            return ControlFlow::Continue(());
        }
        if node >= group.leaves {
            for pos in first.max(from)..last.min(to) {
                if q.admits(&self.slim[pos]) {
                    visit(pos)?;
                }
            }
            return ControlFlow::Continue(());
        }
        let mid = (lo + hi) / 2;
        self.walk(tree, group, q, 2 * node, lo, mid, from, to, visit)?;
        self.walk(tree, group, q, 2 * node + 1, mid, hi, from, to, visit)
    }

    /// Takes one slot of the offer at `pos` in group `g`. When that was its last, the live
    /// summaries above it are recomputed so later searches skip it.
    pub(crate) fn take(&mut self, g: usize, pos: usize) {
        let Some(group) = self.groups.get(g).copied() else {
            return;
        };
        let Some(slots) = self.slots.get_mut(pos) else {
            return;
        };
        debug_assert!(
            *slots > 0,
            "the matcher only takes from offers with free slots"
        );
        *slots = slots.saturating_sub(1);
        if *slots == 0 {
            let b = (pos - group.start) / BUCKET;
            let (live, _) = self.bucket_summaries(&group, b);
            let mut node = group.leaves + b;
            self.live[group.nodes + node] = live;
            while node > 1 {
                node /= 2;
                self.live[group.nodes + node] = Summary::merge(
                    &self.live[group.nodes + 2 * node],
                    &self.live[group.nodes + 2 * node + 1],
                );
            }
        }
    }
}
