//! The batch match at the end of every block: waiting units against the book, in four
//! passes, with checking replicas dealt at random from the block seed.

use super::{
    Market,
    keys::{
        assignments_key, book_key, deadline_key, job_key, job_spec_key, offer_key, open_jobs_key,
        provider_key, unit_key, waiting_key, work_key, work_slot_key,
    },
    records::{
        AssignmentList, AssignmentRecord, AuditDraw, Job, JobState, OfferRecord, Replica,
        ReplicaStatus, Unit, UnitState, WaitReason, WaitingUnit,
    },
    reputation::{Member, current_reputation, deciding_weight, is_matchable},
};
use crate::state::{Fault, Halt, StateCache, expect, load, store};
use exo_market::{Demand, Explain, JobId, Offer, OfferId, ProviderId, Requirements, UnitDemand};
use exo_types::{Amount, Hash32, JobSpec};
use std::collections::{BTreeMap, BTreeSet};

/// An open job the batch match works on: its header, its spec and its waiting units.
pub(super) struct Matching {
    job: Job,
    spec: JobSpec,
    waiting: Vec<WaitingUnit>,
    /// Whether a trusted provider that could take the job's units has a live offer on the
    /// book, busy or not: the job's checks then wait for trusted providers ([`Pass`]).
    established: bool,
}

impl Matching {
    /// Whether `unit`, which has a waiting entry, never had a replica assigned.
    fn is_new(&self, unit: u32) -> bool {
        self.waiting
            .binary_search_by_key(&unit, |w| w.unit)
            .is_ok_and(|at| !self.waiting[at].started)
    }
}

pub(super) fn hash32(bytes: &[u8]) -> Hash32 {
    let digest = exo_types::hash_bytes(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The passes of a block's batch match, in order. The discriminants seed the dealing of checks
/// ([`Market::deal_checks`]) and are frozen.
///
/// For an established job (a trusted provider that could take its units has a live offer on
/// the book, busy or not) a unit's checks and its deciding replicas come from trusted
/// providers only, and a new unit started by anyone else takes one replica, whose check waits
/// for a trusted provider: an operator's newcomers never hold a unit among themselves, where
/// agreeing on a lie would leave only the hidden audit to catch them. A job that no trusted
/// provider could take (hardware only newcomers have) is served as in a new market.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Trusted providers past probation only: the replicas running units still seek (checks,
    /// audits, replacements, deciders), before any new unit starts. In a saturated market
    /// new units would otherwise take every free trusted slot, and an established job's
    /// audits, which only trusted providers take, would lapse.
    TrustedRunning = 4,
    /// Trusted providers past probation only: every waiting replica; a new unit asks for
    /// `ceil(trust / 2)`.
    Trusted = 0,
    /// Providers past probation (trusted ones for an established job): the replicas that
    /// decide a contested unit ([`WaitingUnit::deciding`]). A newcomer's identity costs only
    /// its bond, so it never decides a dispute, except in a market with no provider past
    /// probation at all.
    Deciding = 3,
    /// Every provider (trusted ones for an established job): the other replicas still
    /// sought for running units (a check, a replacement, an audit). A newcomer may take
    /// `probation_slots` of them in a batch whatever it already holds, so that newcomers who
    /// each hold a replica can still check each other's units.
    Running = 1,
    /// Every provider within its probation: a new unit asks for `trust` replicas, or one for
    /// an established job.
    Everyone = 2,
}

impl Pass {
    /// Whether this pass places the replicas `w` still needs. In a `bootstrap` batch (no
    /// provider past probation on the book) deciding replicas go with the other replicas of
    /// running units: nobody could take them otherwise.
    fn serves(self, w: &WaitingUnit, bootstrap: bool) -> bool {
        let deciding = w.deciding && !bootstrap;
        match self {
            Self::TrustedRunning => w.started,
            Self::Trusted => true,
            Self::Deciding => w.started && deciding,
            Self::Running => w.started && !deciding,
            Self::Everyone => !w.started,
        }
    }

    /// Whether a provider may take work in this pass: `trusted` (weight 2) and `veteran`
    /// (past probation), when the pass serves established jobs (`for_established`) or others.
    fn admits(self, trusted: bool, veteran: bool, for_established: bool) -> bool {
        match self {
            Self::TrustedRunning | Self::Trusted => trusted && veteran,
            Self::Deciding => veteran && (trusted || !for_established),
            Self::Running => trusted || !for_established,
            Self::Everyone => true,
        }
    }

    /// The replicas a new unit asks for in this pass, at trust level `trust`.
    fn first_replicas(self, trust: u32, established: bool) -> u32 {
        match self {
            Self::Trusted => trust.div_ceil(2),
            Self::Everyone if established => 1,
            _ => trust,
        }
    }
}

/// A provider's offer as the batch match sees it: the offer with the provider's current
/// reputation, whether the provider is trusted, and whether it is past probation.
struct Live {
    offer: Offer,
    trusted: bool,
    veteran: bool,
}

/// Keeps the assignments of the first units (in the matcher's order) that fit `budget`, whole
/// units only, and the offer fills that match them: the rest stay waiting for the next block,
/// so that one block's assignment log and the deadline list of its commits stay bounded.
fn defer_past(outcome: &mut exo_market::MatchOutcome, budget: usize) {
    if outcome.assignments.len() <= budget {
        return;
    }
    // Units in the order of their first assignment, with how many replicas each got.
    let mut order: Vec<(JobId, u32)> = Vec::new();
    let mut count: BTreeMap<(JobId, u32), usize> = BTreeMap::new();
    for a in &outcome.assignments {
        let n = count.entry((a.job, a.unit)).or_insert(0);
        if *n == 0 {
            order.push((a.job, a.unit));
        }
        *n += 1;
    }
    let mut kept: BTreeSet<(JobId, u32)> = BTreeSet::new();
    let mut used = 0;
    for unit in order {
        let n = count.get(&unit).copied().unwrap_or(0);
        if used + n > budget {
            break;
        }
        used += n;
        kept.insert(unit);
    }
    outcome
        .assignments
        .retain(|a| kept.contains(&(a.job, a.unit)));
    let mut per_offer: BTreeMap<OfferId, u32> = BTreeMap::new();
    for a in &outcome.assignments {
        *per_offer.entry(a.offer).or_insert(0) += 1;
    }
    for fill in outcome.fills.iter_mut() {
        let assigned = per_offer.get(&fill.offer).copied().unwrap_or(0);
        fill.remaining_slots = fill
            .remaining_slots
            .saturating_add(fill.assigned.saturating_sub(assigned));
        fill.assigned = assigned;
    }
    outcome.fills.retain(|f| f.assigned > 0);
}

impl Market<'_> {
    /// The batch match of every open job's waiting units against the book.
    ///
    /// Five passes (see [`Pass`]), so that a unit starts with the replicas its trust level
    /// needs in one batch and never holds a slot while it waits for its check (a market whose
    /// slots all held such units would stall): trusted providers first, to running units and
    /// then to every unit, then the replicas that decide units from providers past
    /// probation, then the other replicas still sought for running units from anyone, then
    /// new units from anyone within probation. For an established job the checks come from
    /// trusted providers only, so a newcomer's unit does wait for its check; it cannot stall
    /// the market, since trusted providers' units never wait for one. The deciding and
    /// running passes serve established jobs, then the others.
    pub(super) fn match_book(&mut self, cache: &mut StateCache) -> Result<(), Halt> {
        let open = Self::id_list(cache, open_jobs_key())?;
        let mut book = Self::id_list(cache, book_key())?;
        cache.require(
            open.0
                .iter()
                .map(|id| job_key(*id))
                .chain(book.0.iter().map(|id| offer_key(*id))),
        )?;
        let mut headers: Vec<Job> = Vec::new();
        for id in &open.0 {
            let job: Job = expect(cache, &job_key(*id))?;
            if job.state == JobState::Open && job.waiting > 0 {
                headers.push(job);
            }
        }
        cache.require(
            headers
                .iter()
                .flat_map(|j| [job_spec_key(j.id), waiting_key(j.id)]),
        )?;
        let mut jobs: Vec<Matching> = Vec::with_capacity(headers.len());
        for job in headers {
            jobs.push(Matching {
                spec: expect(cache, &job_spec_key(job.id))?,
                waiting: Self::waiting(cache, &job)?,
                established: false,
                job,
            });
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let mut offers: Vec<Offer> = Vec::with_capacity(book.0.len());
        for id in &book.0 {
            let record: OfferRecord = expect(cache, &offer_key(*id))?;
            offers.push(record.offer);
        }
        offers.sort_by_key(|o| o.id);
        // The book carries a snapshot of each provider; match on what the provider is now, so
        // a provider caught lying (below the reputation floor), or whose bond was slashed
        // below the minimum, gets no work. A provider on probation (fewer confirmed results
        // than `probation_results`) starts at most `probation_slots` open replicas.
        cache.require(offers.iter().map(|o| provider_key(o.provider.0)))?;
        let mut live: Vec<Live> = Vec::with_capacity(offers.len());
        // Each newcomer's room for new units.
        let mut probation: Vec<(u64, u32)> = Vec::new();
        let now = self.now_secs();
        for mut offer in offers {
            let provider = Self::provider(cache, offer.provider.0)?;
            offer.reputation = current_reputation(self.params, &provider, now);
            let veteran = provider.valid >= self.params.probation_results;
            if !is_matchable(self.params, &provider, now) {
                // Shown with no free slot, so that it still leaves the book when it expires.
                offer.slots = 0;
                live.push(Live {
                    offer,
                    trusted: false,
                    veteran,
                });
                continue;
            }
            if !veteran && !probation.iter().any(|(p, _)| *p == provider.id) {
                let room = self.params.probation_slots.saturating_sub(provider.active);
                probation.push((provider.id, room));
            }
            live.push(Live {
                offer,
                trusted: self.weight(&provider) >= 2,
                veteran,
            });
        }
        // A market with no provider past probation on its book (a fresh devnet) could never
        // decide a dispute if only such providers may: until its first provider ends
        // probation, deciding replicas go to anyone, like the other replicas of running units.
        let bootstrap = !live.iter().any(|l| l.veteran && l.offer.slots > 0);
        // Which jobs' checks wait for trusted providers ([`Pass`]). Busy ones count: they
        // free their slots as their units end. The matcher's index answers every job at
        // once; a check of each job against each trusted offer would cost a block up to
        // `max_open_jobs` x `max_open_offers` of them.
        let trusted: Vec<&Offer> = live
            .iter()
            .filter(|l| l.trusted)
            .map(|l| &l.offer)
            .collect();
        let wants: Vec<(&Requirements, u128)> = jobs
            .iter()
            .map(|m| (&m.spec.requirements, m.spec.max_price_per_unit.0))
            .collect();
        let established = exo_market::any_taker(&trusted, &wants, now).map_err(|err| {
            Fault::Invariant(format!("the matcher refused the trusted offers: {err}"))
        })?;
        for (m, established) in jobs.iter_mut().zip(established) {
            m.established = established;
        }
        let mut log = AssignmentList::default();
        let mut unmatched = Vec::new();
        // Each pass, with the jobs it serves: all (`None`), or only the established ones or
        // only the others.
        let steps = [
            (Pass::TrustedRunning, None),
            (Pass::Trusted, None),
            (Pass::Deciding, Some(true)),
            (Pass::Deciding, Some(false)),
            (Pass::Running, Some(true)),
            (Pass::Running, Some(false)),
            (Pass::Everyone, None),
        ];
        for (pass, scope) in steps {
            let for_established = scope == Some(true);
            // A newcomer's room: for new units, what probation leaves it; for running units'
            // replicas, `probation_slots` more in this batch, whatever it holds (one waiting
            // on a verdict can still check), but no more (one liar must not take every
            // dispute's next replica at once).
            let mut room: Vec<(u64, u32)> = match pass {
                Pass::TrustedRunning | Pass::Trusted | Pass::Deciding => Vec::new(),
                Pass::Running => probation
                    .iter()
                    .map(|(p, _)| (*p, self.params.probation_slots))
                    .collect(),
                Pass::Everyone => probation.clone(),
            };
            let offers: Vec<Offer> = live
                .iter()
                .filter(|l| pass.admits(l.trusted, l.veteran, for_established))
                .filter(|l| pass == Pass::Everyone || l.offer.slots > 0)
                .map(|l| {
                    let mut o = l.offer.clone();
                    // An expired offer (it leaves the book in this batch) must not use up a
                    // newcomer's room before its live one.
                    let live = o.is_live(now);
                    if let Some((_, r)) = room.iter_mut().find(|(p, _)| live && *p == o.provider.0)
                    {
                        o.slots = o.slots.min(*r);
                        *r -= o.slots;
                    }
                    o
                })
                .collect();
            // A job's units past what the pass's free slots can take change nothing (see
            // `matchable_prefix`): a long queue costs a block only what it can assign.
            let free_slots: u64 = offers.iter().map(|o| u64::from(o.slots)).sum();
            let demands: Vec<Demand> = jobs
                .iter()
                .filter(|m| scope.is_none_or(|e| e == m.established))
                .filter_map(|m| {
                    let trust = u32::from(m.job.trust);
                    let first = pass.first_replicas(trust, m.established);
                    let served = || m.waiting.iter().filter(|w| pass.serves(w, bootstrap));
                    let matchable = exo_market::matchable_prefix(
                        served().map(|w| w.exclude.is_empty()),
                        free_slots,
                    );
                    let units: Vec<UnitDemand> = served()
                        .take(matchable)
                        .map(|w| UnitDemand {
                            unit: w.unit,
                            replicas: if w.started {
                                w.replicas.clone()
                            } else {
                                (0..first).collect()
                            },
                            exclude: w.exclude.iter().map(|p| ProviderId(*p)).collect(),
                        })
                        .collect();
                    (!units.is_empty()).then(|| Demand {
                        job: JobId(m.job.id),
                        requirements: m.spec.requirements.clone(),
                        max_price_per_unit: m.spec.max_price_per_unit.0,
                        submitted_height: m.job.submitted_height,
                        units,
                    })
                })
                .collect();
            if demands.is_empty() && pass != Pass::Everyone {
                continue;
            }
            // Only each job's first unmatched unit is shown (its waiting reason).
            let mut outcome = match exo_market::match_batch_explaining(
                &offers,
                &demands,
                self.now_secs(),
                Explain::FirstPerDemand,
            ) {
                Ok(outcome) => outcome,
                // Orders are validated on the way in, so this is a ledger bug: stop loudly.
                Err(err) => {
                    return Err(Fault::Invariant(format!(
                        "the batch matcher refused the book: {err}"
                    ))
                    .into());
                }
            };
            self.deal_checks(&jobs, &mut outcome.assignments, pass as u8);
            let budget =
                (self.params.max_assignments_per_block as usize).saturating_sub(log.0.len());
            defer_past(&mut outcome, budget);
            // Offers that expired leave the book (every offer is in the last pass).
            if pass == Pass::Everyone {
                let expired: Vec<u64> = outcome.expired.iter().map(|id| id.0).collect();
                Self::remove_offers(cache, &mut book, &expired)?;
            }
            for fill in &outcome.fills {
                let key = offer_key(fill.offer.0);
                if let Some(mut record) = load::<OfferRecord>(cache, &key)? {
                    // What the batch took; the matcher may have seen fewer slots than the
                    // record holds (probation).
                    record.offer.slots = record.offer.slots.saturating_sub(fill.assigned);
                    store(cache, key, &record)?;
                }
                if let Some(l) = live.iter_mut().find(|l| l.offer.id == fill.offer) {
                    l.offer.slots = l.offer.slots.saturating_sub(fill.assigned);
                }
                if let Some((_, r)) = probation.iter_mut().find(|(p, _)| *p == fill.provider.0) {
                    *r = r.saturating_sub(fill.assigned);
                }
            }
            self.assign(cache, &mut jobs, &outcome.assignments, &mut log)?;
            unmatched = outcome.unmatched;
        }
        if !log.0.is_empty() {
            store(cache, assignments_key(self.env.height), &log)?;
        }
        // Explanations: the numbers of each job's first unmatched slot.
        for Matching {
            mut job, waiting, ..
        } in jobs
        {
            job.wait_reason = unmatched
                .iter()
                .find(|u| u.job.0 == job.id)
                .map(|u| WaitReason::of(&u.reason));
            Self::store_waiting(cache, &mut job, waiting)?;
            store(cache, job_key(job.id), &job)?;
        }
        Ok(())
    }

    /// Deals the providers of a pass's checking replicas (every replica but a new unit's
    /// first) at random among the checking replicas the pass placed for the same job, from the
    /// block seed: the order of the book decides who works, not who checks whom, so providers
    /// that sit next to each other in it (colluders can arrange that) are not paired again and
    /// again. Every replica of a job meets the same requirements and price, so any dealing
    /// that keeps a unit's providers distinct and its excluded providers out is a valid match;
    /// when conflicts cannot be swapped away, the job keeps the matcher's assignment.
    pub(super) fn deal_checks(
        &self,
        jobs: &[Matching],
        assignments: &mut [exo_market::Assignment],
        pass: u8,
    ) {
        for m in jobs {
            let job = &m.job;
            let new = |unit: u32| m.is_new(unit);
            let checks: Vec<usize> = (0..assignments.len())
                .filter(|&i| {
                    let a = &assignments[i];
                    a.job.0 == job.id && !(a.replica == 0 && new(a.unit))
                })
                .collect();
            if checks.len() < 2 {
                continue;
            }
            // Providers each unit must not get again: a new unit's first replica, and those
            // its waiting entry excludes (the holders of its other replicas).
            let mut fixed: Vec<(u32, u64)> = assignments
                .iter()
                .filter(|a| a.job.0 == job.id && a.replica == 0 && new(a.unit))
                .map(|a| (a.unit, a.provider.0))
                .collect();
            for &i in &checks {
                let unit = assignments[i].unit;
                if let Some(w) = m.waiting.iter().find(|w| w.unit == unit) {
                    fixed.extend(w.exclude.iter().map(|p| (unit, *p)));
                }
            }
            fixed.sort_unstable();
            fixed.dedup();
            let units: Vec<u32> = checks.iter().map(|&i| assignments[i].unit).collect();
            let mut pool: Vec<(ProviderId, OfferId, u128)> = checks
                .iter()
                .map(|&i| {
                    let a = &assignments[i];
                    (a.provider, a.offer, a.price_per_unit)
                })
                .collect();
            let mut bytes = Vec::with_capacity(32 + 13);
            bytes.extend_from_slice(b"deal");
            bytes.extend_from_slice(&self.env.seed);
            bytes.extend_from_slice(&job.id.to_be_bytes());
            bytes.push(pass);
            let h = hash32(&bytes);
            let mut state = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            // splitmix64, drawn below `bound`.
            let mut next = move |bound: usize| -> usize {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) % bound as u64) as usize
            };
            for k in (1..pool.len()).rev() {
                pool.swap(k, next(k + 1));
            }
            let fits = |k: usize, pool: &[(ProviderId, OfferId, u128)]| {
                let (unit, provider) = (units[k], pool[k].0.0);
                fixed.binary_search(&(unit, provider)).is_err()
                    && !(0..pool.len())
                        .any(|m| m != k && units[m] == unit && pool[m].0.0 == provider)
            };
            let mut dealt = true;
            for k in 0..pool.len() {
                if fits(k, &pool) {
                    continue;
                }
                let n = pool.len();
                let start = next(n);
                let swap = (0..n).map(|d| (start + d) % n).find(|&m| {
                    pool.swap(k, m);
                    let both = fits(k, &pool) && fits(m, &pool);
                    pool.swap(k, m);
                    m != k && both
                });
                match swap {
                    Some(m) => pool.swap(k, m),
                    None => {
                        dealt = false;
                        break;
                    }
                }
            }
            if !dealt {
                continue;
            }
            for (k, &i) in checks.iter().enumerate() {
                let (provider, offer, price) = pool[k];
                let a = &mut assignments[i];
                a.provider = provider;
                a.offer = offer;
                a.price_per_unit = price;
            }
        }
    }

    /// Writes one pass's assignments: the replicas, the providers' work lists, the jobs'
    /// waiting and running units. A unit that started in this pass and whose replicas' weight
    /// falls short of its trust level asks for more.
    pub(super) fn assign(
        &mut self,
        cache: &mut StateCache,
        jobs: &mut [Matching],
        assignments: &[exo_market::Assignment],
        log: &mut AssignmentList,
    ) -> Result<(), Halt> {
        // Load what the assignments touch in one round (each round runs the block's end
        // again up to here), then write them.
        if assignments.is_empty() {
            return Ok(());
        }
        cache.require(
            assignments
                .iter()
                .flat_map(|a| {
                    [
                        unit_key(a.job.0, a.unit),
                        provider_key(a.provider.0),
                        work_key(a.provider.0),
                        work_slot_key(a.provider.0, (a.job.0, a.unit, a.replica)),
                    ]
                })
                .chain([
                    assignments_key(self.env.height),
                    deadline_key(self.due_after(self.params.commit_window_secs)),
                ]),
        )?;
        // Units that got a replica in this pass and had one before.
        // (Each unit is handled on its own below, so key order serves as well as any.)
        let mut topped: BTreeSet<(u64, u32)> = BTreeSet::new();
        // Units started by this pass, with the weight and first match of each provider they
        // got.
        let mut started: BTreeMap<(u64, u32), Vec<Member>> = BTreeMap::new();
        for assignment in assignments {
            let Some(m) = jobs.iter_mut().find(|m| m.job.id == assignment.job.0) else {
                continue;
            };
            let job = &mut m.job;
            let mut provider = Self::provider(cache, assignment.provider.0)?;
            provider.active += 1;
            provider.first_matched_height.get_or_insert(self.env.height);
            let member = self.weight_and_cohort(&provider);
            store(cache, provider_key(provider.id), &provider)?;
            let mut unit = Self::unit(cache, job.id, assignment.unit)?.unwrap_or(Unit {
                job: job.id,
                unit: assignment.unit,
                state: UnitState::Running,
                replicas: Vec::new(),
                reveal_deadline: None,
                accepted: None,
                sought: false,
                audit: AuditDraw::Undrawn,
            });
            if unit.replicas.is_empty() {
                started.insert((job.id, assignment.unit), Vec::new());
                job.running = job
                    .running
                    .checked_add(1)
                    .ok_or(Fault::Overflow("job running units"))?;
            }
            if let Some(members) = started.get_mut(&(job.id, assignment.unit)) {
                members.push(member);
            }
            // A full second defers the deadline.
            let commit_deadline = self.add_deadline(
                cache,
                self.due_after(self.params.commit_window_secs),
                job.id,
                assignment.unit,
                assignment.replica,
            )?;
            unit.replicas.push(Replica {
                index: assignment.replica,
                provider: provider.id,
                offer: assignment.offer.0,
                price_per_unit: Amount(assignment.price_per_unit),
                assigned_height: self.env.height,
                commit_deadline,
                commitment: None,
                reveal: None,
                status: ReplicaStatus::Assigned,
                seal: None,
            });
            Self::set_work(
                cache,
                provider.id,
                (job.id, assignment.unit, assignment.replica),
                true,
            )?;
            log.0.push(AssignmentRecord {
                job: job.id,
                unit: assignment.unit,
                replica: assignment.replica,
                provider: provider.id,
                price_per_unit: Amount(assignment.price_per_unit),
                commit_deadline,
            });
            // Waiting units are in unit order. An entry left with no replica to seek goes
            // once the pass's assignments are written.
            unit.sought = match m.waiting.binary_search_by_key(&assignment.unit, |w| w.unit) {
                Ok(at) => {
                    let w = &mut m.waiting[at];
                    w.started = true;
                    w.replicas.retain(|r| *r != assignment.replica);
                    if let Err(at) = w.exclude.binary_search(&provider.id) {
                        w.exclude.insert(at, provider.id);
                    }
                    !w.replicas.is_empty()
                }
                Err(_) => false,
            };
            store(cache, unit_key(m.job.id, assignment.unit), &unit)?;
            topped.insert((m.job.id, assignment.unit));
        }
        for m in jobs.iter_mut() {
            m.waiting.retain(|w| !w.replicas.is_empty());
        }
        let topped: Vec<(u64, u32)> = topped
            .into_iter()
            .filter(|unit| !started.contains_key(unit))
            .collect();
        self.stop_topping_up(cache, jobs, &topped)?;
        // What the started units got decides how many more they need: enough weight to reach
        // the trust level. Whether one is audited is drawn only once its replicas committed.
        for ((job_id, unit_index), members) in started {
            let Some(m) = jobs.iter_mut().find(|m| m.job.id == job_id) else {
                continue;
            };
            let Some(mut unit) = Self::unit(cache, job_id, unit_index)? else {
                continue;
            };
            let trust = u32::from(m.job.trust);
            let more = trust.saturating_sub(deciding_weight(&members));
            if more == 0 {
                continue;
            }
            let next = unit.replicas.iter().map(|r| r.index + 1).max().unwrap_or(0);
            let mut exclude: Vec<u64> = unit.replicas.iter().map(|r| r.provider).collect();
            exclude.sort_unstable();
            exclude.dedup();
            let at = m.waiting.partition_point(|w| w.unit < unit_index);
            match m.waiting.get_mut(at).filter(|w| w.unit == unit_index) {
                // A new unit's waiting entry goes when its first replica is placed; one still
                // here lists replicas the matcher could not place this pass.
                Some(w) => {
                    for k in 0..more {
                        if let Err(at) = w.replicas.binary_search(&(next + k)) {
                            w.replicas.insert(at, next + k);
                        }
                    }
                    w.exclude = exclude;
                }
                None => m.waiting.insert(
                    at,
                    WaitingUnit {
                        unit: unit_index,
                        started: true,
                        replicas: (next..next + more).collect(),
                        exclude,
                        deciding: false,
                    },
                ),
            }
            unit.sought = true;
            store(cache, unit_key(job_id, unit_index), &unit)?;
        }
        Ok(())
    }

    /// Takes back the replicas still sought for `units` (each got one in this pass and had
    /// some before) when the weight of their open replicas reaches the trust level already: a
    /// unit started on too little weight seeks `trust - weight` replicas as if each weighed 1,
    /// and without this a trusted one among them would leave the unit waiting for replicas it
    /// does not need, in a small market until its job's wait window ends. Only before the
    /// unit's audit is drawn and while nothing decides it: an audit or a deciding replica is
    /// never taken back.
    fn stop_topping_up(
        &self,
        cache: &mut StateCache,
        jobs: &mut [Matching],
        units: &[(u64, u32)],
    ) -> Result<(), Halt> {
        for (job_id, unit_index) in units {
            let Some(m) = jobs.iter_mut().find(|m| m.job.id == *job_id) else {
                continue;
            };
            let Ok(at) = m.waiting.binary_search_by_key(unit_index, |w| w.unit) else {
                continue;
            };
            let Some(mut unit) = Self::unit(cache, *job_id, *unit_index)? else {
                continue;
            };
            if m.waiting[at].deciding || unit.audit != AuditDraw::Undrawn {
                continue;
            }
            let open: Vec<u64> = unit
                .replicas
                .iter()
                .filter(|r| r.status.holds_slot())
                .map(|r| r.provider)
                .collect();
            cache.require(open.iter().map(|p| provider_key(*p)))?;
            let mut members = Vec::with_capacity(open.len());
            for provider in &open {
                members.push(self.weight_and_cohort(&Self::provider(cache, *provider)?));
            }
            if deciding_weight(&members) < u32::from(m.job.trust) {
                continue;
            }
            m.waiting.remove(at);
            unit.sought = false;
            store(cache, unit_key(*job_id, *unit_index), &unit)?;
        }
        Ok(())
    }
}
