//! The matcher's index over one batch's live offers.
//!
//! Offers are laid out in price order (price, then posted height, then id) in a compact
//! array, cut into buckets of [`BUCKET`] offers. A binary tree over the buckets keeps, for each
//! subtree, the largest value of every numeric resource and the union of every categorical one
//! (classes, runtimes, hashed regions and GPU models) among offers that still have free slots.
//! A search for "the cheapest offer at or after position p that meets these requirements"
//! descends the tree and skips every subtree whose summary already fails, so that whole runs
//! of unsuitable or exhausted offers cost one comparison instead of one per offer. When an
//! offer's last slot is taken its bucket and the bucket's ancestors are recomputed, which keeps
//! the summaries exact upper bounds without ever scanning the book again.
//!
//! A passing summary is only a hint (the largest core count and the right region may come from
//! different offers), so every candidate is confirmed with the exact per-offer check.

use std::collections::BTreeMap;

use crate::order::{Offer, Requirements};

/// Offers per leaf bucket. Scanning 16 compact offers linearly is cheaper than two more tree
/// levels, and keeps the tree small enough to stay in cache at a million offers.
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

fn region_bit(id: u32) -> u128 {
    1u128 << (id % 128)
}

fn gpu_bit(id: u32) -> u64 {
    if id == NO_GPU {
        NO_GPU_BIT
    } else {
        1u64 << (id % 63)
    }
}

/// One live offer, reduced to what the constraint check reads: 64 bytes, one cache line.
#[derive(Clone, Copy, Debug)]
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
    pub class_bit: u8,
    pub runtimes: u8,
}

/// A demand's requirements with names replaced by this batch's ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    memory: u64,
    cpu: u64,
    fuel: u64,
    gpu_memory: u64,
    cores: u32,
    reputation: u32,
    gpu_count: u32,
    region: u32,
    gpu_model: u32,
    classes: u8,
    runtime: u8,
    region_bits: u128,
    gpu_bits: u64,
}

impl Query {
    #[inline]
    pub(crate) fn admits(&self, s: &Slim) -> bool {
        (s.class_bit & self.classes) != 0
            && (s.runtimes & self.runtime) != 0
            && s.cores >= self.cores
            && s.memory >= self.memory
            && s.cpu >= self.cpu
            && s.fuel >= self.fuel
            && s.reputation >= self.reputation
            && s.gpu_count >= self.gpu_count
            && s.gpu_memory >= self.gpu_memory
            && (self.region == ANY || s.region == self.region)
            && (self.gpu_model == ANY || s.gpu_model == self.gpu_model)
    }

    #[inline]
    fn may_admit(&self, n: &Summary) -> bool {
        (n.classes & self.classes) != 0
            && (n.runtimes & self.runtime) != 0
            && n.cores >= self.cores
            && n.memory >= self.memory
            && n.cpu >= self.cpu
            && n.fuel >= self.fuel
            && n.reputation >= self.reputation
            && n.gpu_count >= self.gpu_count
            && n.gpu_memory >= self.gpu_memory
            && (n.regions & self.region_bits) != 0
            && (n.gpus & self.gpu_bits) != 0
    }
}

/// Upper bounds over the offers with free slots in a subtree. An empty subtree has no class
/// bit, which fails every query.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    regions: u128,
    memory: u64,
    cpu: u64,
    fuel: u64,
    gpu_memory: u64,
    gpus: u64,
    cores: u32,
    reputation: u32,
    gpu_count: u32,
    classes: u8,
    runtimes: u8,
}

impl Summary {
    fn add(&mut self, s: &Slim) {
        self.regions |= region_bit(s.region);
        self.memory = self.memory.max(s.memory);
        self.cpu = self.cpu.max(s.cpu);
        self.fuel = self.fuel.max(s.fuel);
        self.gpu_memory = self.gpu_memory.max(s.gpu_memory);
        self.gpus |= gpu_bit(s.gpu_model);
        self.cores = self.cores.max(s.cores);
        self.reputation = self.reputation.max(s.reputation);
        self.gpu_count = self.gpu_count.max(s.gpu_count);
        self.classes |= s.class_bit;
        self.runtimes |= s.runtimes;
    }

    fn merge(a: &Summary, b: &Summary) -> Summary {
        Summary {
            regions: a.regions | b.regions,
            memory: a.memory.max(b.memory),
            cpu: a.cpu.max(b.cpu),
            fuel: a.fuel.max(b.fuel),
            gpu_memory: a.gpu_memory.max(b.gpu_memory),
            gpus: a.gpus | b.gpus,
            cores: a.cores.max(b.cores),
            reputation: a.reputation.max(b.reputation),
            gpu_count: a.gpu_count.max(b.gpu_count),
            classes: a.classes | b.classes,
            runtimes: a.runtimes | b.runtimes,
        }
    }
}

/// Names seen in the batch, with ids in sorted-name order so the index does not depend on
/// arrival order.
#[derive(Debug, Default)]
pub(crate) struct Names {
    sorted: Vec<String>,
}

impl Names {
    fn id(&self, name: &str) -> u32 {
        match self.sorted.binary_search_by(|n| n.as_str().cmp(name)) {
            // The number of names is at most the number of offers, which fits a u32 (checked
            // when the index is built), and stays below the reserved ids.
            Ok(i) => i as u32,
            Err(_) => MISSING,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }
}

/// Builds the name table and gives each offer its name's id.
fn intern<'a>(names: impl Iterator<Item = Option<&'a str>>) -> (Names, Vec<u32>) {
    let mut first_seen: BTreeMap<&str, u32> = BTreeMap::new();
    let mut provisional = Vec::new();
    for name in names {
        let id = match name {
            None => NO_GPU,
            Some(n) => {
                let next = first_seen.len() as u32;
                *first_seen.entry(n).or_insert(next)
            }
        };
        provisional.push(id);
    }
    // Renumber in sorted order: BTreeMap iterates by name.
    let mut rank = vec![0u32; first_seen.len()];
    let mut sorted = Vec::with_capacity(first_seen.len());
    for (r, (name, id)) in first_seen.iter().enumerate() {
        if let Some(slot) = rank.get_mut(*id as usize) {
            *slot = r as u32;
        }
        sorted.push((*name).to_owned());
    }
    for id in &mut provisional {
        if *id != NO_GPU {
            *id = rank.get(*id as usize).copied().unwrap_or(MISSING);
        }
    }
    (Names { sorted }, provisional)
}

/// The index over one batch's live offers.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    /// Live offers, in price order.
    pub offers: Vec<&'a Offer>,
    pub slim: Vec<Slim>,
    pub prices: Vec<u128>,
    /// Free slots per position; decremented as the batch assigns.
    pub slots: Vec<u32>,
    pub regions: Names,
    pub gpu_models: Names,
    /// Summaries, heap-ordered: node 1 is the root, node `leaves + b` is bucket `b`.
    tree: Vec<Summary>,
    leaves: usize,
}

impl<'a> Index<'a> {
    /// Indexes `live`, which the caller has already sorted into price order.
    pub(crate) fn new(live: Vec<&'a Offer>) -> Self {
        let (regions, region_ids) = intern(live.iter().map(|o| Some(o.resources.region.as_str())));
        let (gpu_models, gpu_ids) = intern(
            live.iter()
                .map(|o| o.resources.gpu.as_ref().map(|g| g.model.as_str())),
        );
        let mut slim = Vec::with_capacity(live.len());
        let mut prices = Vec::with_capacity(live.len());
        let mut slots = Vec::with_capacity(live.len());
        for ((o, region), gpu_model) in live.iter().zip(region_ids).zip(gpu_ids) {
            let r = &o.resources;
            let (gpu_count, gpu_memory) = r.gpu.as_ref().map_or((0, 0), |g| (g.count, g.memory_mib));
            slim.push(Slim {
                memory: r.memory_mib,
                cpu: r.cpu_score,
                fuel: r.max_unit_fuel,
                gpu_memory,
                provider: o.provider.0,
                cores: r.cores,
                reputation: o.reputation,
                gpu_count,
                region,
                gpu_model,
                class_bit: 1 << r.class.tag(),
                runtimes: r.runtimes.bits(),
            });
            prices.push(o.price_per_unit);
            slots.push(o.slots);
        }
        let buckets = live.len().div_ceil(BUCKET).max(1);
        let leaves = buckets.next_power_of_two();
        let mut index = Index {
            offers: live,
            slim,
            prices,
            slots,
            regions,
            gpu_models,
            tree: vec![Summary::default(); 2 * leaves],
            leaves,
        };
        for b in 0..buckets {
            index.refresh_leaf(b);
        }
        for node in (1..leaves).rev() {
            index.tree[node] = Summary::merge(&index.tree[2 * node], &index.tree[2 * node + 1]);
        }
        index
    }

    pub(crate) fn len(&self) -> usize {
        self.slim.len()
    }

    /// The id of a region some live offer is in.
    pub(crate) fn regions_id(&self, name: &str) -> Option<u32> {
        Some(self.regions.id(name)).filter(|&id| id != MISSING)
    }

    /// The id of a GPU model some live offer has.
    pub(crate) fn gpu_models_id(&self, name: &str) -> Option<u32> {
        Some(self.gpu_models.id(name)).filter(|&id| id != MISSING)
    }

    /// Recomputes bucket `b`'s summary from its offers that still have free slots.
    fn refresh_leaf(&mut self, b: usize) {
        let start = b * BUCKET;
        let end = (start + BUCKET).min(self.slim.len());
        let mut summary = Summary::default();
        for pos in start..end {
            if self.slots[pos] > 0 {
                summary.add(&self.slim[pos]);
            }
        }
        self.tree[self.leaves + b] = summary;
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
        let classes = req.class.map_or(0b1_1111, |c| 1 << c.tag());
        Query {
            memory: req.min_memory_mib,
            cpu: req.min_cpu_score,
            fuel: req.fuel_limit,
            gpu_memory,
            cores: req.min_cores,
            reputation: req.min_reputation,
            gpu_count,
            region,
            gpu_model,
            classes,
            runtime: req.runtime.bit(),
            region_bits: match region {
                ANY => u128::MAX,
                MISSING => 0,
                id => region_bit(id),
            },
            gpu_bits: match gpu_model {
                ANY => u64::MAX,
                MISSING => 0,
                id => gpu_bit(id),
            },
        }
    }

    /// Number of positions whose price is at most `max_price`: the search range of a demand.
    pub(crate) fn price_cutoff(&self, max_price: u128) -> usize {
        self.prices.partition_point(|&p| p <= max_price)
    }

    /// The first position in `from..to` whose offer has a free slot and meets `q`.
    pub(crate) fn find(&self, q: &Query, from: usize, to: usize) -> Option<usize> {
        let to = to.min(self.slim.len());
        if from >= to {
            return None;
        }
        self.search(q, 1, 0, self.leaves, from, to)
    }

    fn search(
        &self,
        q: &Query,
        node: usize,
        lo: usize,
        hi: usize,
        from: usize,
        to: usize,
    ) -> Option<usize> {
        if hi * BUCKET <= from || lo * BUCKET >= to || !q.may_admit(&self.tree[node]) {
            return None;
        }
        if node >= self.leaves {
            let start = (lo * BUCKET).max(from);
            let end = (hi * BUCKET).min(to);
            return (start..end).find(|&pos| self.slots[pos] > 0 && q.admits(&self.slim[pos]));
        }
        let mid = (lo + hi) / 2;
        self.search(q, 2 * node, lo, mid, from, to)
            .or_else(|| self.search(q, 2 * node + 1, mid, hi, from, to))
    }

    /// Takes one slot of the offer at `pos`. When that was its last, the summaries above it are
    /// recomputed so later searches skip it.
    pub(crate) fn take(&mut self, pos: usize) {
        let Some(slots) = self.slots.get_mut(pos) else {
            return;
        };
        debug_assert!(*slots > 0, "the matcher only takes from offers with free slots");
        *slots = slots.saturating_sub(1);
        if *slots == 0 {
            let b = pos / BUCKET;
            self.refresh_leaf(b);
            let mut node = (self.leaves + b) / 2;
            while node >= 1 {
                self.tree[node] = Summary::merge(&self.tree[2 * node], &self.tree[2 * node + 1]);
                node /= 2;
            }
        }
    }
}
