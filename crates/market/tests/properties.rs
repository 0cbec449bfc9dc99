//! Property tests of `match_batch`: its invariants, and agreement with a reference matcher
//! written for obviousness (a scan of every offer for every slot) rather than speed.

use std::collections::{BTreeMap, BTreeSet};

use exo_market::fixtures::{XorShift, synthetic};
use exo_market::{
    Constraint, Demand, DeviceClass, ExclusionCounts, Explain, Explanation, Gpu, GpuRequirement,
    JobId, MatchOutcome, Offer, OfferFill, OfferId, PASSED_COUNT_LIMIT, ProviderId, Reason,
    Requirement, Requirements, Resources, Runtime, RuntimeSet, UnitDemand, Unmatched, any_taker,
    match_batch, match_batch_explaining, matchable_prefix,
};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------------
// The reference matcher.

fn requirement(req: &Requirements, c: Constraint) -> Requirement {
    match c {
        Constraint::Cores => Requirement::Cores(req.min_cores),
        Constraint::Memory => Requirement::Memory(req.min_memory_mib),
        Constraint::Cpu => Requirement::Cpu(req.min_cpu_score),
        Constraint::Gpu => req
            .gpu
            .clone()
            .map_or(Requirement::Excluded, Requirement::Gpu),
        Constraint::Class => req.class.map_or(Requirement::Excluded, Requirement::Class),
        Constraint::Region => req
            .region
            .clone()
            .map_or(Requirement::Excluded, Requirement::Region),
        Constraint::Runtime => Requirement::Runtime(req.runtime),
        Constraint::Fuel => Requirement::Fuel(req.fuel_limit),
        Constraint::Reputation => Requirement::Reputation(req.min_reputation),
        Constraint::Excluded => Requirement::Excluded,
    }
}

/// The explanation, computed by brute force over the live offers.
fn explain(live: &[&Offer], d: &Demand, excluded: &BTreeSet<ProviderId>) -> Explanation {
    let req = &d.requirements;
    let mut counts = ExclusionCounts::default();
    for o in live {
        let unmet = req.unmet(&o.resources, o.reputation);
        for c in unmet.iter() {
            counts.0[c as usize] += 1;
        }
        if excluded.contains(&o.provider) {
            counts.0[Constraint::Excluded as usize] += 1;
        }
    }
    let passing: Vec<&&Offer> = live
        .iter()
        .filter(|o| req.admits(o) && !excluded.contains(&o.provider))
        .collect();
    let all_passing = live.iter().filter(|o| req.admits(o)).count() as u64;
    // Counting stops at the limit before exclusions are taken off.
    let exact = all_passing < PASSED_COUNT_LIMIT;
    let excluded_passing = all_passing - passing.len() as u64;
    let mut passed = all_passing
        .min(PASSED_COUNT_LIMIT)
        .saturating_sub(excluded_passing);
    let best_ask = passing.iter().map(|o| o.price_per_unit).min();
    if !exact && passed == 0 && best_ask.is_some() {
        passed = 1;
    }
    let live_offers = live.len() as u64;
    let reason = if live_offers == 0 {
        Reason::EmptyBook
    } else if passed == 0 {
        let mut best = (Constraint::Cores, counts.get(Constraint::Cores));
        for c in Constraint::ALL {
            if counts.get(c) > best.1 {
                best = (c, counts.get(c));
            }
        }
        Reason::NoProvider {
            binding: requirement(req, best.0),
        }
    } else if best_ask.is_some_and(|a| a > d.max_price_per_unit) {
        Reason::PriceTooLow
    } else {
        Reason::SlotsTaken
    };
    Explanation {
        live_offers,
        excluded_by: counts,
        passed,
        passed_exact: exact,
        best_ask,
        max_price_per_unit: d.max_price_per_unit,
        reason,
    }
}

fn reference(offers: &[Offer], demands: &[Demand], now_secs: u64) -> MatchOutcome {
    let mut live: Vec<&Offer> = offers.iter().filter(|o| o.is_live(now_secs)).collect();
    live.sort_by_key(|o| (o.price_per_unit, o.posted_secs, o.id));
    let mut expired: Vec<OfferId> = offers
        .iter()
        .filter(|o| !o.is_live(now_secs))
        .map(|o| o.id)
        .collect();
    expired.sort();
    let mut slots: Vec<u32> = live.iter().map(|o| o.slots).collect();
    let mut order: Vec<&Demand> = demands.iter().collect();
    order.sort_by_key(|d| {
        (
            std::cmp::Reverse(d.max_price_per_unit),
            d.submitted_height,
            d.job,
        )
    });
    let mut out = MatchOutcome {
        expired,
        ..MatchOutcome::default()
    };
    for d in order {
        for unit in &d.units {
            let mut excluded: BTreeSet<ProviderId> = unit.exclude.iter().copied().collect();
            for &replica in &unit.replicas {
                let pick = (0..live.len()).find(|&i| {
                    let o = live[i];
                    slots[i] > 0
                        && o.price_per_unit <= d.max_price_per_unit
                        && d.requirements.admits(o)
                        && !excluded.contains(&o.provider)
                });
                match pick {
                    Some(i) => {
                        slots[i] -= 1;
                        let o = live[i];
                        excluded.insert(o.provider);
                        out.assignments.push(exo_market::Assignment {
                            job: d.job,
                            unit: unit.unit,
                            replica,
                            provider: o.provider,
                            offer: o.id,
                            price_per_unit: o.price_per_unit,
                        });
                    }
                    None => out.unmatched.push(Unmatched {
                        job: d.job,
                        unit: unit.unit,
                        replica,
                        reason: explain(&live, d, &excluded),
                    }),
                }
            }
        }
    }
    for (i, o) in live.iter().enumerate() {
        if slots[i] != o.slots {
            out.fills.push(OfferFill {
                offer: o.id,
                provider: o.provider,
                assigned: o.slots - slots[i],
                remaining_slots: slots[i],
            });
        }
    }
    out.fills.sort_by_key(|f| f.offer);
    out
}

// ---------------------------------------------------------------------------------------------
// Invariants that hold whatever the reference says.

fn check_invariants(offers: &[Offer], demands: &[Demand], now_secs: u64, out: &MatchOutcome) {
    let by_id: BTreeMap<OfferId, &Offer> = offers.iter().map(|o| (o.id, o)).collect();
    let jobs: BTreeMap<JobId, &Demand> = demands.iter().map(|d| (d.job, d)).collect();

    // No offer or provider over its slots.
    let mut per_offer: BTreeMap<OfferId, u32> = BTreeMap::new();
    let mut per_provider: BTreeMap<ProviderId, u32> = BTreeMap::new();
    for a in &out.assignments {
        *per_offer.entry(a.offer).or_default() += 1;
        *per_provider.entry(a.provider).or_default() += 1;
    }
    for (id, n) in &per_offer {
        let o = by_id[id];
        assert!(
            o.is_live(now_secs),
            "assigned from an offer that is not live"
        );
        assert!(*n <= o.slots, "offer {id} gave {n} of {} slots", o.slots);
    }
    for (p, n) in &per_provider {
        let capacity: u32 = offers
            .iter()
            .filter(|o| o.provider == *p && o.is_live(now_secs))
            .map(|o| o.slots)
            .sum();
        assert!(*n <= capacity, "{p} got {n} units for {capacity} slots");
    }

    // Replicas of a unit on distinct providers, none excluded; prices within limits and asked.
    let mut holders: BTreeMap<(JobId, u32), BTreeSet<ProviderId>> = BTreeMap::new();
    for a in &out.assignments {
        let d = jobs[&a.job];
        let o = by_id[&a.offer];
        assert_eq!(o.provider, a.provider);
        assert_eq!(a.price_per_unit, o.price_per_unit, "paid as asked");
        assert!(a.price_per_unit <= d.max_price_per_unit, "price above max");
        assert!(
            d.requirements.admits(o),
            "assigned to an offer failing requirements"
        );
        let unit = d
            .units
            .iter()
            .find(|u| u.unit == a.unit)
            .expect("unit exists");
        assert!(
            !unit.exclude.contains(&a.provider),
            "assigned to an excluded provider"
        );
        assert!(
            holders
                .entry((a.job, a.unit))
                .or_default()
                .insert(a.provider),
            "two replicas of one unit on {}",
            a.provider
        );
    }

    // Every slot exactly once, assigned or explained.
    let mut seen: BTreeSet<(JobId, u32, u32)> = BTreeSet::new();
    for (job, unit, replica) in out
        .assignments
        .iter()
        .map(|a| (a.job, a.unit, a.replica))
        .chain(out.unmatched.iter().map(|u| (u.job, u.unit, u.replica)))
    {
        assert!(seen.insert((job, unit, replica)), "slot listed twice");
    }
    let wanted: BTreeSet<(JobId, u32, u32)> = demands
        .iter()
        .flat_map(|d| {
            d.units
                .iter()
                .flat_map(move |u| u.replicas.iter().map(move |&r| (d.job, u.unit, r)))
        })
        .collect();
    assert_eq!(seen, wanted, "every slot is assigned or explained");
    for u in &out.unmatched {
        assert!(!u.reason.to_string().is_empty());
    }

    // Fills agree with the assignments.
    let fills: BTreeMap<OfferId, u32> = out.fills.iter().map(|f| (f.offer, f.assigned)).collect();
    assert_eq!(fills, per_offer);
    for f in &out.fills {
        assert_eq!(f.assigned + f.remaining_slots, by_id[&f.offer].slots);
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: small value sets, so that constraints collide, ties happen and providers repeat.

const REGIONS: [&str; 2] = ["eu-west", "us-east"];
const MODELS: [&str; 2] = ["a100", "rtx4090"];
const PROVIDERS: u64 = 12;

fn resources() -> impl Strategy<Value = Resources> {
    (
        select(vec![1u32, 2, 4, 8, 16]),
        select(vec![500u64, 1_000, 2_000]),
        select(vec![512u64, 2_048, 8_192]),
        prop::option::weighted(
            0.3,
            (
                select(MODELS.to_vec()),
                1u32..=2,
                select(vec![8_192u64, 24_576]),
            ),
        ),
        select(vec![
            DeviceClass::Pc,
            DeviceClass::Server,
            DeviceClass::Phone,
        ]),
        select(REGIONS.to_vec()),
        select(vec![1u8, 1, 3]),
        select(vec![1_000u64, 1_000_000]),
    )
        .prop_map(
            |(cores, cpu, mem, gpu, class, region, rt, fuel)| Resources {
                cores,
                cpu_score: cpu,
                memory_mib: mem,
                gpu: gpu.map(|(model, count, memory_mib)| Gpu {
                    model: model.into(),
                    count,
                    memory_mib,
                }),
                class,
                region: region.into(),
                runtimes: RuntimeSet::from_bits(rt).unwrap_or_default(),
                max_unit_fuel: fuel,
            },
        )
}

fn offers(max: usize) -> impl Strategy<Value = Vec<Offer>> {
    prop::collection::vec(
        (
            0..PROVIDERS,
            resources(),
            select(vec![0u32, 100, 200]),
            0u32..=3,
            1u128..=12,
            0u64..=5,
            1u64..=10,
        ),
        0..max,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(
                |(i, (provider, resources, reputation, slots, price, posted, life))| Offer {
                    id: OfferId(i as u64),
                    provider: ProviderId(provider),
                    resources,
                    reputation,
                    slots,
                    price_per_unit: price,
                    posted_secs: posted,
                    expiry_secs: posted + life,
                },
            )
            .collect()
    })
}

fn requirements() -> impl Strategy<Value = Requirements> {
    (
        select(vec![0u32, 1, 2, 4, 8, 32]),
        select(vec![0u64, 1_024, 4_096]),
        select(vec![0u64, 1_000, 2_000]),
        prop::option::weighted(
            0.2,
            (
                prop::option::of(select(vec!["a100", "rtx4090", "h100"])),
                1u32..=2,
                select(vec![0u64, 16_384]),
            ),
        ),
        prop::option::weighted(
            0.3,
            select(vec![
                DeviceClass::Pc,
                DeviceClass::Server,
                DeviceClass::Laptop,
            ]),
        ),
        prop::option::weighted(0.3, select(vec!["eu-west", "us-east", "ap-south"])),
        prop::bool::weighted(0.1),
        select(vec![1u64, 1_000, 10_000]),
        select(vec![0u32, 100, 200]),
    )
        .prop_map(
            |(cores, mem, cpu, gpu, class, region, p2, fuel, rep)| Requirements {
                min_cores: cores,
                min_memory_mib: mem,
                min_cpu_score: cpu,
                gpu: gpu.map(|(model, min_count, min_memory_mib)| GpuRequirement {
                    model: model.map(Into::into),
                    min_count,
                    min_memory_mib,
                }),
                class,
                region: region.map(Into::into),
                runtime: if p2 {
                    Runtime::Wasm32Wasip2
                } else {
                    Runtime::Wasm32Wasip1
                },
                fuel_limit: fuel,
                min_reputation: rep,
            },
        )
}

fn unit_demands() -> impl Strategy<Value = Vec<UnitDemand>> {
    prop::collection::vec(
        (
            1u32..=3,
            1u32..=7,
            prop::collection::btree_set(0..PROVIDERS, 0..3),
        ),
        1..5,
    )
    .prop_map(|rows| {
        let mut unit = 0u32;
        rows.into_iter()
            .map(|(gap, mask, exclude)| {
                unit += gap;
                UnitDemand {
                    unit,
                    replicas: (0..3).filter(|r| mask & (1 << r) != 0).collect(),
                    exclude: exclude.into_iter().map(ProviderId).collect(),
                }
            })
            .collect()
    })
}

fn demands() -> impl Strategy<Value = Vec<Demand>> {
    prop::collection::vec((requirements(), 0u128..=14, 0u64..=4, unit_demands()), 0..8).prop_map(
        |rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (requirements, max_price, submitted, units))| Demand {
                    job: JobId(i as u64),
                    requirements,
                    max_price_per_unit: max_price,
                    submitted_height: submitted,
                    units,
                })
                .collect()
        },
    )
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut rng = XorShift::new(seed);
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_the_reference_and_keeps_its_invariants(
        offers in offers(120),
        demands in demands(),
        now_secs in 2u64..=7,
    ) {
        let out = match_batch(&offers, &demands, now_secs).expect("valid batch");
        check_invariants(&offers, &demands, now_secs, &out);
        prop_assert_eq!(out, reference(&offers, &demands, now_secs));
    }

    #[test]
    fn arrival_order_does_not_matter(
        offers in offers(120),
        demands in demands(),
        now_secs in 2u64..=7,
        seed in any::<u64>(),
    ) {
        let out = match_batch(&offers, &demands, now_secs).expect("valid batch");
        let again = match_batch(
            &shuffled(&offers, seed),
            &shuffled(&demands, seed ^ 0xA5A5),
            now_secs,
        )
        .expect("valid batch");
        prop_assert_eq!(out, again);
    }
}

/// The unmatched slots of each job's first unit that found no offer, out of a full
/// explanation: what [`Explain::FirstPerDemand`] must give.
fn first_per_job(all: &[Unmatched]) -> Vec<Unmatched> {
    let mut first: BTreeMap<JobId, u32> = BTreeMap::new();
    all.iter()
        .filter(|u| *first.entry(u.job).or_insert(u.unit) == u.unit)
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn explaining_each_jobs_first_unmatched_unit_changes_nothing_else(
        offers in offers(120),
        demands in demands(),
        now_secs in 2u64..=7,
    ) {
        let all = match_batch(&offers, &demands, now_secs).expect("valid batch");
        let first = match_batch_explaining(&offers, &demands, now_secs, Explain::FirstPerDemand)
            .expect("valid batch");
        prop_assert_eq!(&first.assignments, &all.assignments);
        prop_assert_eq!(&first.fills, &all.fills);
        prop_assert_eq!(&first.expired, &all.expired);
        prop_assert_eq!(first.unmatched, first_per_job(&all.unmatched));
    }

    /// Small books, so that demands often hold more units than the book has slots.
    #[test]
    fn units_past_the_matchable_prefix_change_nothing(
        offers in offers(8),
        demands in demands(),
        now_secs in 2u64..=7,
    ) {
        let free: u64 = offers.iter().map(|o| u64::from(o.slots)).sum();
        let cut: Vec<Demand> = demands
            .iter()
            .map(|d| {
                let keep = matchable_prefix(d.units.iter().map(|u| u.exclude.is_empty()), free);
                Demand { units: d.units[..keep].to_vec(), ..d.clone() }
            })
            .collect();
        let whole = match_batch_explaining(&offers, &demands, now_secs, Explain::FirstPerDemand)
            .expect("valid batch");
        let short = match_batch_explaining(&offers, &cut, now_secs, Explain::FirstPerDemand)
            .expect("valid batch");
        prop_assert_eq!(whole, short);
    }
}

#[test]
fn the_matchable_prefix_ends_after_one_more_unit_excluding_nobody_than_free_slots() {
    // Units excluding somebody never end a search: they are all kept until then.
    let units = [true, false, true, false, true, true];
    assert_eq!(matchable_prefix(units, 0), 1);
    assert_eq!(matchable_prefix(units, 1), 3);
    assert_eq!(matchable_prefix(units, 2), 5);
    assert_eq!(matchable_prefix(units, 3), 6);
    assert_eq!(matchable_prefix(units, 100), 6);
    assert_eq!(matchable_prefix([false; 4], 0), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Books big enough for several tree levels per group.
    #[test]
    fn agrees_with_the_reference_on_deep_books(
        offers in offers(1500),
        demands in demands(),
        now_secs in 2u64..=7,
    ) {
        let out = match_batch(&offers, &demands, now_secs).expect("valid batch");
        check_invariants(&offers, &demands, now_secs, &out);
        prop_assert_eq!(out, reference(&offers, &demands, now_secs));
    }
}

/// `any_taker`'s answer, written as a check of every offer.
fn any_taker_by_scan(offers: &[Offer], demands: &[Demand], now_secs: u64) -> Vec<bool> {
    demands
        .iter()
        .map(|d| {
            offers.iter().any(|o| {
                o.is_live(now_secs)
                    && o.price_per_unit <= d.max_price_per_unit
                    && d.requirements.admits(o)
            })
        })
        .collect()
}

fn wants(demands: &[Demand]) -> Vec<(&Requirements, u128)> {
    demands
        .iter()
        .map(|d| (&d.requirements, d.max_price_per_unit))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Small books and deep ones (several tree levels per group), slots or none.
    #[test]
    fn any_taker_agrees_with_a_check_of_every_offer(
        offers in prop_oneof![offers(12), offers(1500)],
        demands in demands(),
        now_secs in 2u64..=7,
    ) {
        let refs: Vec<&Offer> = offers.iter().collect();
        let answer = any_taker(&refs, &wants(&demands), now_secs).expect("valid book");
        prop_assert_eq!(answer, any_taker_by_scan(&offers, &demands, now_secs));
    }
}

#[test]
fn any_taker_agrees_with_a_check_of_every_offer_on_synthetic_books() {
    for seed in 1..=3 {
        let book = synthetic(3_000, 1_500, seed);
        let refs: Vec<&Offer> = book.offers.iter().collect();
        let answer = any_taker(&refs, &wants(&book.demands), book.now_secs).expect("valid book");
        assert_eq!(
            answer,
            any_taker_by_scan(&book.offers, &book.demands, book.now_secs),
            "seed {seed}"
        );
        // Both answers occur, so the comparison means something.
        assert!(
            answer.contains(&true) && answer.contains(&false),
            "seed {seed}"
        );
    }
}

/// The bench's synthetic market, where explanation counts pass the counting limit.
#[test]
fn agrees_with_the_reference_on_synthetic_books() {
    for seed in 1..=3 {
        let book = synthetic(3_000, 1_500, seed);
        let out = match_batch(&book.offers, &book.demands, book.now_secs).expect("valid batch");
        check_invariants(&book.offers, &book.demands, book.now_secs, &out);
        let expected = reference(&book.offers, &book.demands, book.now_secs);
        assert_eq!(out.assignments, expected.assignments, "seed {seed}");
        assert_eq!(out.fills, expected.fills, "seed {seed}");
        assert_eq!(out.expired, expected.expired, "seed {seed}");
        assert_eq!(out.unmatched, expected.unmatched, "seed {seed}");
        let shuffled_out = match_batch(
            &shuffled(&book.offers, seed),
            &shuffled(&book.demands, seed),
            book.now_secs,
        )
        .expect("valid batch");
        assert_eq!(out, shuffled_out, "seed {seed}");
    }
}
