//! Synthetic order books for tests and measurements of the matcher.
//!
//! The books are built deterministically from a seed with a xorshift generator, so two runs
//! match (and time, in `exo-bench`) the same work. The crate's property tests, its criterion
//! benchmarks and `exo bench market` share them; nothing on a consensus path may call them.

use crate::ids::{JobId, OfferId, ProviderId};
use crate::order::{Demand, GpuRequirement, Offer, Requirements, UnitDemand};
use crate::resources::{DeviceClass, Gpu, Resources, Runtime, RuntimeSet};

/// Marsaglia's xorshift64: tiny, deterministic, and plenty for synthetic books.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed`; zero, a fixed point of xorshift, is replaced.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len() - 1)]
    }
}

pub const REGIONS: [&str; 8] = [
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-south",
    "ap-east",
    "sa-east",
    "af-south",
];
pub const GPU_MODELS: [&str; 5] = ["rtx3060", "rtx4090", "a100", "h100", "mi300"];

/// The block time (seconds) synthetic books are matched at; their demands' submission heights
/// are drawn below it too.
pub const NOW_SECS: u64 = 1_000;

/// A synthetic market: a book of offers and a batch of demands.
#[derive(Clone, Debug)]
pub struct Book {
    pub offers: Vec<Offer>,
    pub demands: Vec<Demand>,
    pub now_secs: u64,
}

impl Book {
    /// Offers plus demand slots: what one batch processes.
    pub fn orders(&self) -> usize {
        self.offers.len() + self.demands.iter().map(Demand::slot_count).sum::<usize>()
    }
}

/// A machine from a mix roughly like a volunteer network's: many phones, laptops and PCs,
/// fewer servers, some GPUs on PCs and servers.
pub fn machine(rng: &mut XorShift) -> Resources {
    let class = match rng.below(100) {
        0..15 => DeviceClass::Server,
        15..45 => DeviceClass::Pc,
        45..70 => DeviceClass::Laptop,
        70..90 => DeviceClass::Phone,
        _ => DeviceClass::Iot,
    };
    let (cores, memory_mib) = match class {
        DeviceClass::Server => (1 << rng.between(4, 7), 1024 << rng.between(5, 9)),
        DeviceClass::Pc => (1 << rng.between(2, 5), 1024 << rng.between(3, 6)),
        DeviceClass::Laptop => (1 << rng.between(2, 4), 1024 << rng.between(3, 5)),
        DeviceClass::Phone => (1 << rng.between(2, 3), 1024 << rng.between(2, 4)),
        DeviceClass::Iot => (1 << rng.between(0, 2), 256 << rng.between(0, 2)),
    };
    let gpu_chance = match class {
        DeviceClass::Server => 20,
        DeviceClass::Pc => 30,
        _ => 0,
    };
    let gpu = rng.chance(gpu_chance).then(|| Gpu {
        model: (*rng.pick(&GPU_MODELS)).to_owned(),
        count: if class == DeviceClass::Server {
            1 << rng.between(0, 3)
        } else {
            1
        },
        memory_mib: 1024 << rng.between(3, 6),
    });
    let mut runtimes = RuntimeSet::only(Runtime::Wasm32Wasip1);
    if rng.chance(10) {
        runtimes = runtimes.with(Runtime::Wasm32Wasip2);
    }
    Resources {
        cores: cores as u32,
        cpu_score: rng.between(500, 4_000) * 1_000_000,
        memory_mib,
        gpu,
        class,
        region: (*rng.pick(&REGIONS)).to_owned(),
        runtimes,
        max_unit_fuel: 10u64.pow(rng.between(11, 13) as u32),
    }
}

/// Requirements drawn from the kinds of job the network runs: mostly CPU work with modest
/// needs, some pinned to a region or class, a few needing a GPU.
pub fn requirements(rng: &mut XorShift) -> Requirements {
    let gpu = rng.chance(10).then(|| GpuRequirement {
        model: rng.chance(70).then(|| (*rng.pick(&GPU_MODELS)).to_owned()),
        min_count: rng.between(1, 2) as u32,
        min_memory_mib: if rng.chance(30) { 16_384 } else { 0 },
    });
    Requirements {
        min_cores: *rng.pick(&[1, 1, 2, 4, 8, 16, 32]),
        min_memory_mib: *rng.pick(&[256, 512, 2048, 8192, 32_768]),
        min_cpu_score: *rng.pick(&[0, 0, 1_000_000_000, 2_000_000_000]),
        gpu,
        class: rng.chance(20).then(|| *rng.pick(&DeviceClass::ALL)),
        region: rng.chance(40).then(|| (*rng.pick(&REGIONS)).to_owned()),
        runtime: if rng.chance(3) {
            Runtime::Wasm32Wasip2
        } else {
            Runtime::Wasm32Wasip1
        },
        fuel_limit: 10u64.pow(rng.between(9, 12) as u32),
        min_reputation: *rng.pick(&[0, 0, 100, 500, 800]),
    }
}

/// A book of `offers` offers (about 5% expired at [`NOW_SECS`]) and demands totalling about
/// `demand_slots` slots, from `seed`. Offers come from `offers / 2` providers, so many
/// providers have two offers; about one unit in ten excludes a few providers.
pub fn synthetic(offers: usize, demand_slots: usize, seed: u64) -> Book {
    let mut rng = XorShift::new(seed);
    let providers = (offers / 2).max(1) as u64;
    let mut book = Vec::with_capacity(offers);
    for id in 0..offers as u64 {
        let resources = machine(&mut rng);
        let posted_secs = rng.below(NOW_SECS);
        let expiry_secs = if rng.chance(5) {
            rng.between(posted_secs + 1, NOW_SECS)
        } else {
            NOW_SECS + 1 + rng.below(2 * NOW_SECS)
        };
        book.push(Offer {
            id: OfferId(id),
            provider: ProviderId(rng.below(providers)),
            resources,
            reputation: rng.below(1_000) as u32,
            slots: rng.between(1, 8) as u32,
            price_per_unit: u128::from(rng.between(50, 500)),
            posted_secs,
            expiry_secs,
        });
    }
    let mut demands = Vec::new();
    let mut slots = 0usize;
    let mut job = 0u64;
    while slots < demand_slots {
        // Many small jobs and a few large ones.
        let units = if rng.chance(80) {
            rng.between(1, 8)
        } else {
            rng.between(9, 256)
        };
        let replicas = rng.between(1, 3) as u32;
        let mut unit_demands = Vec::with_capacity(units as usize);
        for unit in 0..units as u32 {
            let mut exclude: Vec<ProviderId> = Vec::new();
            if rng.chance(10) {
                for _ in 0..rng.between(1, 3) {
                    exclude.push(ProviderId(rng.below(providers)));
                }
                exclude.sort_unstable();
                exclude.dedup();
            }
            unit_demands.push(UnitDemand {
                unit,
                replicas: (0..replicas).collect(),
                exclude,
            });
            slots += replicas as usize;
        }
        demands.push(Demand {
            job: JobId(job),
            requirements: requirements(&mut rng),
            max_price_per_unit: u128::from(rng.between(40, 600)),
            submitted_height: rng.below(NOW_SECS),
            units: unit_demands,
        });
        job += 1;
    }
    Book {
        offers: book,
        demands,
        now_secs: NOW_SECS,
    }
}
