//! Proof of task: commitments, reveals, the verdict on a unit, and the next replica it needs.

use super::{
    Market, Refusal, Verdict,
    keys::{
        excuses_key, job_key, offer_key, partners_key, provider_key, unit_key, work_key,
        work_slot_key,
    },
    records::{
        Job, JobState, Provider, REVEAL_DEADLINE, ReplicaStatus, Unit, UnitState, WaitingUnit,
    },
    refuse,
    reputation::{Member, deciding_weight},
};
use crate::{
    exec::Rejection,
    modules::bank,
    state::{Halt, StateCache, expect, load, store},
};
use exo_types::{
    Address, Hash32, ResultCommit, ResultReveal, Unfinished, result_commitment, result_seal,
};

/// Whether a revealed result is a "could not finish" report rather than a result.
pub(super) fn is_report(reveal: Option<(Hash32, u64)>) -> bool {
    reveal.is_some_and(|(digest, _)| Unfinished::of_digest(&digest).is_some())
}

/// Whether `unit`'s replicas disagree already: two different seals among those that
/// committed, or a result revealed.
fn contested(unit: &Unit) -> bool {
    let mut seals = unit
        .replicas
        .iter()
        .filter(|r| matches!(r.status, ReplicaStatus::Committed | ReplicaStatus::Revealed))
        .filter_map(|r| r.seal);
    let first = seals.next();
    let revealed = unit
        .replicas
        .iter()
        .any(|r| r.status == ReplicaStatus::Revealed && !is_report(r.reveal));
    revealed || seals.any(|s| Some(s) != first)
}

/// Whether `unit` may take one more replica: while its job is open, up to `max_replicas`, and
/// one more while its results disagree, so that a tie after an audit still leaves room for the
/// deciders the dispute margin needs. The escrow, which covers `max_replicas` payments, still
/// covers every payment: a dispute leaves at least one replica unpaid (a result that lost, a
/// report that others contradicted, a reveal withheld).
fn has_room(job: &Job, unit: &Unit) -> bool {
    let cap = job.max_replicas.saturating_add(u32::from(contested(unit)));
    job.state == JobState::Open && (unit.replicas.len() as u32) < cap
}

/// One replica's part in a verdict: its provider's (weight, first match), and the height of the
/// block that dealt the replica.
type Vote = (Member, u64);

/// A unit's results grouped for its verdict, by first appearance so that the outcome depends
/// on nothing but the unit's own record: each result (or seal) with its replicas' votes, and
/// the number of "could not finish" reports, which are no votes.
struct Tally<K> {
    groups: Vec<(K, Vec<Vote>)>,
    reports: usize,
}

impl<K: PartialEq + Copy> Tally<K> {
    /// Groups `(key, is a report, vote)` entries.
    fn of(entries: impl IntoIterator<Item = (K, bool, Vote)>) -> Self {
        let mut tally = Self {
            groups: Vec::new(),
            reports: 0,
        };
        for (key, report, vote) in entries {
            if report {
                tally.reports += 1;
                continue;
            }
            match tally.groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, votes)) => votes.push(vote),
                None => tally.groups.push((key, vec![vote])),
            }
        }
        tally
    }

    /// The result accepted at `trust`, if any: unanimous results whose deciding weight reaches
    /// it; or, when results disagree, the one with at least `max(trust, 2)` votes and at least
    /// `margin` more than any other ([`dispute_votes`]).
    fn winner(&self, trust: u32, margin: u32) -> Option<K> {
        let quorum = trust.max(2) as usize;
        match self.groups.as_slice() {
            [] => None,
            [(key, votes)] => {
                let members: Vec<Member> = votes.iter().map(|(member, _)| *member).collect();
                (deciding_weight(&members) >= trust).then_some(*key)
            }
            groups => groups
                .iter()
                .enumerate()
                .find(|(i, (_, votes))| {
                    let n = dispute_votes(votes);
                    n >= quorum
                        && groups
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| j != i)
                            .all(|(_, (_, v))| dispute_votes(v) + margin as usize <= n)
                })
                .map(|(_, (key, _))| *key),
        }
    }
}

/// A result's votes in a dispute: one per block that dealt replicas holding it. Weights do not
/// count (a trusted provider's bonus must not let it outvote its auditor), and neither do
/// replicas dealt together: two colluding identities that the batch happened to deal onto one
/// unit would otherwise outvote the audit replica that caught them, two to one, and have it
/// slashed. Their shared vote ties with the auditor's, and a blind deciding replica, dealt
/// later and alone, breaks the tie.
fn dispute_votes(votes: &[Vote]) -> usize {
    let mut dealt: Vec<u64> = votes.iter().map(|(_, height)| *height).collect();
    dealt.sort_unstable();
    dealt.dedup();
    dealt.len()
}

impl Market<'_> {
    pub(super) fn unit(cache: &StateCache, job: u64, unit: u32) -> Result<Option<Unit>, Halt> {
        load(cache, &unit_key(job, unit))
    }

    /// The unit and the position of `replica` in it, if `provider` holds that replica.
    pub(super) fn owned_replica(
        cache: &StateCache,
        job: u64,
        unit: u32,
        replica: u32,
        provider: u64,
    ) -> Result<Result<(Unit, usize), Rejection>, Halt> {
        let Some(record) = Self::unit(cache, job, unit)? else {
            return Ok(Err(Refusal::UnknownReplica { job, unit, replica }.into()));
        };
        let Some(at) = record.replicas.iter().position(|r| r.index == replica) else {
            return Ok(Err(Refusal::UnknownReplica { job, unit, replica }.into()));
        };
        if record.replicas[at].provider != provider {
            return Ok(Err(Refusal::NotYourReplica { job, unit, replica }.into()));
        }
        Ok(Ok((record, at)))
    }

    /// Records commitments. Each entry is applied on its own: an entry whose replica no longer
    /// awaits a commitment (another replica's reveal settled the unit, or it missed its
    /// deadline) is skipped, so that one stale entry does not cost the batch. An entry that is
    /// wrong (an unknown replica, or another provider's) refuses the whole batch.
    pub(super) fn commit_results(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        commits: &[ResultCommit],
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, sender)? else {
            return refuse(Refusal::NotAProvider);
        };
        cache.require(commits.iter().map(|c| unit_key(c.job, c.unit)))?;
        for commit in commits {
            let (mut unit, at) = match Self::owned_replica(
                cache,
                commit.job,
                commit.unit,
                commit.replica,
                provider.id,
            )? {
                Ok(found) => found,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let replica = &mut unit.replicas[at];
            if unit.state != UnitState::Running || replica.status != ReplicaStatus::Assigned {
                // Stale: settled, replaced or already committed while this was on its way.
                continue;
            }
            replica.commitment = Some(commit.commitment);
            replica.seal = Some(commit.seal);
            replica.status = ReplicaStatus::Committed;
            let offer = replica.offer;
            self.return_offer_slot(cache, offer)?;
            self.maybe_open_reveals(cache, &mut unit)?;
            store(cache, unit_key(unit.job, unit.unit), &unit)?;
        }
        Ok(Ok(()))
    }

    /// Records reveals. Each entry is applied on its own: an entry whose replica no longer
    /// awaits a reveal (the unit was settled, the replica missed its deadline or revealed
    /// already) is skipped. An entry that is wrong refuses the whole batch: an unknown replica,
    /// another provider's, a reveal before reveals open for a replica that has not revealed,
    /// or one that does not open its commitment.
    pub(super) fn reveal_results(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        reveals: &[ResultReveal],
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, sender)? else {
            return refuse(Refusal::NotAProvider);
        };
        // What this reads was loaded before the block's transactions ran, with all of theirs
        // (`Module::prefetch`, [`Self::reveal_reads`]); anything an earlier transaction of the
        // block made it read besides is loaded as it is met. Naming it all again here decoded
        // every unit, job and provider a second time, for nothing in all but rare blocks.
        for reveal in reveals {
            let (mut unit, at) = match Self::owned_replica(
                cache,
                reveal.job,
                reveal.unit,
                reveal.replica,
                provider.id,
            )? {
                Ok(found) => found,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let reveal_open = unit.reveal_deadline.is_some();
            let running = unit.state == UnitState::Running;
            let replica = &mut unit.replicas[at];
            let awaiting = match replica.status {
                ReplicaStatus::Committed => true,
                ReplicaStatus::Assigned => false,
                // Stale: settled, replaced, or revealed already while this was on its way.
                _ => continue,
            };
            if !running {
                continue;
            }
            if !awaiting || !reveal_open {
                return refuse(Refusal::RevealNotOpen {
                    job: reveal.job,
                    unit: reveal.unit,
                    replica: reveal.replica,
                });
            }
            let expected = result_commitment(&reveal.digest, reveal.fuel, &reveal.salt, sender);
            let seal = result_seal(&reveal.digest, reveal.fuel, reveal.job, reveal.unit);
            if replica.commitment != Some(expected) || replica.seal != Some(seal) {
                return refuse(Refusal::CommitmentMismatch {
                    job: reveal.job,
                    unit: reveal.unit,
                    replica: reveal.replica,
                });
            }
            replica.reveal = Some((reveal.digest, reveal.fuel));
            replica.status = ReplicaStatus::Revealed;
            let revealed = replica.clone();
            self.release_slot(cache, unit.job, unit.unit, &revealed)?;
            // A unit is judged only once no replica can still reveal: an audit replica is
            // never cancelled by the result it checks.
            let pending = unit
                .replicas
                .iter()
                .any(|r| matches!(r.status, ReplicaStatus::Assigned | ReplicaStatus::Committed));
            if !pending {
                self.evaluate(cache, &mut unit)?;
            }
            store(cache, unit_key(unit.job, unit.unit), &unit)?;
        }
        Ok(Ok(()))
    }

    /// Loads, in three rounds however many reveals there are, what recording `reveals` reads:
    /// their units; then what settling them may touch (their jobs, and each open replica's
    /// provider, excuses, offer and place in its provider's work set); then what crediting a
    /// confirmation reads, for units with a second replica to confirm one (the funders of the
    /// jobs' requesters and of the providers' owners, and each provider's partners).
    pub(super) fn reveal_reads(cache: &StateCache, reveals: &[ResultReveal]) -> Result<(), Halt> {
        cache.require(reveals.iter().map(|r| unit_key(r.job, r.unit)))?;
        let mut units = Vec::with_capacity(reveals.len());
        for reveal in reveals {
            if let Some(unit) = Self::unit(cache, reveal.job, reveal.unit)? {
                units.push(unit);
            }
        }
        let mut touched = Vec::new();
        for unit in &units {
            touched.push(job_key(unit.job));
            for r in unit.replicas.iter().filter(|r| r.status.is_open()) {
                touched.extend([
                    provider_key(r.provider),
                    excuses_key(r.provider),
                    offer_key(r.offer),
                    work_key(r.provider),
                    work_slot_key(r.provider, (unit.job, unit.unit, r.index)),
                ]);
            }
        }
        cache.require(touched)?;
        // Each job and provider once, however many of the reveals name it.
        let mut jobs = std::collections::BTreeSet::new();
        let mut providers = std::collections::BTreeSet::new();
        for unit in units.iter().filter(|unit| unit.replicas.len() >= 2) {
            jobs.insert(unit.job);
            let open = unit.replicas.iter().filter(|r| r.status.is_open());
            providers.extend(open.map(|r| r.provider));
        }
        let mut ties = Vec::new();
        for job in jobs {
            if let Some(job) = load::<Job>(cache, &job_key(job))? {
                ties.push(bank::funding_key(&job.requester));
            }
        }
        for provider in providers {
            if let Some(p) = load::<Provider>(cache, &provider_key(provider))? {
                ties.extend([bank::funding_key(&p.owner), partners_key(p.id)]);
            }
        }
        cache.require(ties)?;
        Ok(())
    }

    /// Judges a unit once none of its replicas can still reveal (every one revealed, or the
    /// reveal deadline passed): accepts a result, asks for another replica, or fails the unit.
    ///
    /// When every revealed result agrees, it is accepted if its weight reaches the trust level.
    /// When results disagree, weights do not count (a trusted provider's bonus must not let it
    /// outvote its auditor) and replicas dealt in one block count as one vote (two colluders
    /// dealt together must not outvote the audit that caught them); a result is accepted only
    /// with at least `max(trust, 2)` votes and `dispute_margin` more than any other result (a
    /// colluder holding one deciding replica must not tip a tie). Otherwise the unit gets
    /// another replica, up to `max_replicas` (one more in a dispute: [`has_room`]), then fails
    /// unpaid and unpunished.
    ///
    /// "Could not finish" reports are not results and take no part in that vote. When at
    /// least `max(trust, 2)` replicas reported and none revealed a result (or no replica is
    /// left to seek), the unit cannot be finished by anyone: it fails and the reporters are
    /// paid for the fuel burnt ([`Self::fail_unfinished`]). A lone report is replaced like a
    /// missing result, and judged when the unit is: excused if others then agree on a result.
    pub(super) fn evaluate(&mut self, cache: &mut StateCache, unit: &mut Unit) -> Result<(), Halt> {
        if unit.state != UnitState::Running {
            return Ok(());
        }
        let mut job: Job = expect(cache, &job_key(unit.job))?;
        let providers: Vec<u64> = unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed)
            .map(|r| r.provider)
            .collect();
        cache.require(providers.iter().map(|p| provider_key(*p)))?;
        // Each revealed result (or report), keyed by what it revealed.
        let mut revealed = Vec::new();
        for replica in unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed)
        {
            let Some(result) = replica.reveal else {
                continue;
            };
            let member = self.weight_and_cohort(&Self::provider(cache, replica.provider)?);
            let vote = (member, replica.assigned_height);
            revealed.push((result, is_report(replica.reveal), vote));
        }
        let tally = Tally::of(revealed);
        let trust = u32::from(job.trust);
        let quorum = trust.max(2) as usize;
        let winner = tally.winner(trust, self.params.dispute_margin);
        let groups = &tally.groups;
        let reports = tally.reports;
        let room = has_room(&job, unit);
        let unfinishable = reports >= quorum && (groups.is_empty() || !room);
        if let Some(result) = winner {
            self.accept(cache, &mut job, unit, result)?;
        } else if unfinishable {
            self.fail_unfinished(cache, &mut job, unit)?;
        } else if room {
            self.seek_replica(cache, &mut job, unit)?;
        } else {
            self.fail(cache, &mut job, unit)?;
        }
        self.maybe_close_job(cache, &mut job)?;
        store(cache, job_key(job.id), &job)?;
        Ok(())
    }

    /// Asks the next batch for one more replica of `unit`, excluding every provider that had
    /// one. A replica sought for a contested unit (seals that disagree, or a result revealed:
    /// a dispute's next replica, or a replacement or an audit of such a unit) decides it, and
    /// only providers past probation take it ([`WaitingUnit::deciding`]).
    pub(super) fn seek_replica(
        &self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        let deciding = contested(unit);
        if unit.replicas.len() + 1 >= super::records::MAX_UNIT_REPLICAS {
            return Ok(());
        }
        let mut waiting = Self::waiting(cache, job)?;
        // Past every replica assigned and every replica still sought: an index is never reused.
        let sought = waiting
            .iter()
            .filter(|w| w.unit == unit.unit)
            .flat_map(|w| w.replicas.iter().copied());
        let next = unit
            .replicas
            .iter()
            .map(|r| r.index)
            .chain(sought)
            .map(|i| i + 1)
            .max()
            .unwrap_or(0);
        let mut exclude: Vec<u64> = unit.replicas.iter().map(|r| r.provider).collect();
        exclude.sort_unstable();
        exclude.dedup();
        exclude.truncate(exo_market::MAX_EXCLUDE_PER_UNIT);
        unit.reveal_deadline = None;
        match waiting.iter_mut().find(|w| w.unit == unit.unit) {
            Some(w) => {
                if let Err(at) = w.replicas.binary_search(&next) {
                    w.replicas.insert(at, next);
                }
                w.exclude = exclude;
                w.deciding |= deciding;
            }
            None => {
                let at = waiting.partition_point(|w| w.unit < unit.unit);
                waiting.insert(
                    at,
                    WaitingUnit {
                        unit: unit.unit,
                        started: true,
                        replicas: vec![next],
                        exclude,
                        deciding,
                    },
                );
            }
        }
        unit.sought = true;
        Self::store_waiting(cache, job, waiting)
    }

    /// Opens the reveal phase once every open replica of `unit` committed, no further replica
    /// of it is sought, its audit is drawn (the first time they all committed, this
    /// schedules the draw instead) and its seals need no deciding replica
    /// ([`Self::seek_blind_decider`]). Reads nothing but the unit unless the seals disagree: a
    /// commitment costs the same whatever the size of its job.
    pub(super) fn maybe_open_reveals(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        if unit.reveal_deadline.is_some()
            || unit.state != UnitState::Running
            || unit.sought
            || unit
                .replicas
                .iter()
                .any(|r| r.status == ReplicaStatus::Assigned)
            || !unit
                .replicas
                .iter()
                .any(|r| r.status == ReplicaStatus::Committed)
        {
            return Ok(());
        }
        if !self.audit_drawn(cache, unit)? || self.seek_blind_decider(cache, unit)? {
            return Ok(());
        }
        let deadline = self.due_after(self.params.reveal_window_secs);
        let due = self.add_deadline(cache, deadline, unit.job, unit.unit, REVEAL_DEADLINE)?;
        unit.reveal_deadline = Some(due);
        Ok(())
    }

    /// Before reveals open: when the seals of `unit`'s committed replicas disagree and would
    /// give no verdict the way [`Self::evaluate`] judges results (the seals agree exactly when
    /// the results do), seeks one more replica while the job has room for it, and returns
    /// `true`. That replica decides the dispute blind: it commits while every result of the
    /// unit is still sealed, so it can copy none of them, and no newcomer on probation gets it.
    fn seek_blind_decider(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
    ) -> Result<bool, Halt> {
        if !contested(unit) {
            return Ok(false);
        }
        let mut job: Job = expect(cache, &job_key(unit.job))?;
        if !has_room(&job, unit) {
            return Ok(false);
        }
        let sealed: Vec<_> = unit
            .replicas
            .iter()
            .filter(|r| matches!(r.status, ReplicaStatus::Committed | ReplicaStatus::Revealed))
            .filter_map(|r| r.seal.map(|seal| (seal, r.provider, r.assigned_height)))
            .collect();
        cache.require(sealed.iter().map(|(_, p, _)| provider_key(*p)))?;
        let report = result_seal(&Unfinished::Timeout.digest(), 0, unit.job, unit.unit);
        let mut entries = Vec::with_capacity(sealed.len());
        for (seal, provider, dealt) in &sealed {
            let member = self.weight_and_cohort(&Self::provider(cache, *provider)?);
            entries.push((*seal, *seal == report, (member, *dealt)));
        }
        let tally = Tally::of(entries);
        let quorum = u32::from(job.trust).max(2) as usize;
        let unfinishable = tally.reports >= quorum && tally.groups.is_empty();
        if tally
            .winner(u32::from(job.trust), self.params.dispute_margin)
            .is_some()
            || unfinishable
        {
            return Ok(false);
        }
        self.seek_replica(cache, &mut job, unit)?;
        store(cache, job_key(job.id), &job)?;
        Ok(true)
    }
}
