//! Jobs: submission with the worst case in escrow, cancellation, closing with a refund.

use super::{
    JobProblem, Market, Refusal, Verdict,
    keys::{app_key, counters_key, job_key, job_spec_key, open_jobs_key, unit_key, waiting_key},
    records::{
        App, JOB_EXPIRY, Job, JobAccounts, JobState, MAX_UNIT_REPLICAS, REVEAL_DEADLINE,
        ReplicaStatus, Unit, WaitingList, WaitingUnit,
    },
    refuse,
    settlement::worst_case_escrow,
};
use crate::{
    exec::{Created, Rejection},
    modules::bank::{self, Pot},
    state::{Fault, Halt, Record, StateCache, expect, load, remove, store},
};
use exo_types::{Address, Amount, JobSpec, MAX_JOB_UNITS, MAX_TRUST};

/// The most units a job may have so that its waiting list fits its record's bound whatever
/// happens to its replicas: every unit waiting with as many replicas sought and as many
/// providers excluded as a unit can hold. Without it, a large job whose replicas keep failing
/// would grow its waiting list at the end of a block past the bound, a fault that halts the
/// chain.
pub fn max_units_per_job() -> u32 {
    let worst = WaitingUnit {
        unit: u32::MAX,
        started: true,
        replicas: vec![u32::MAX; MAX_UNIT_REPLICAS],
        exclude: vec![u64::MAX; MAX_UNIT_REPLICAS],
        deciding: true,
    };
    let per_unit = worst.to_bytes().len();
    // The list's own length prefix takes at most 9 bytes.
    let units = (WaitingList::MAX_BYTES - 9) / per_unit;
    u32::try_from(units).unwrap_or(u32::MAX).min(MAX_JOB_UNITS)
}

impl Market<'_> {
    pub(super) fn submit_job(
        &mut self,
        cache: &mut StateCache,
        requester: &Address,
        spec: &JobSpec,
    ) -> Verdict {
        let invalid = |p| refuse(Refusal::InvalidJob(p));
        if spec.units == 0 || spec.units > MAX_JOB_UNITS {
            return invalid(JobProblem::Units { units: spec.units });
        }
        let max_units = max_units_per_job();
        if spec.units > max_units {
            return invalid(JobProblem::UnitsOverWaitingBound { max: max_units });
        }
        if spec.trust == 0 || spec.trust > MAX_TRUST {
            return invalid(JobProblem::Trust { trust: spec.trust });
        }
        if !spec.unit_args.is_empty() && spec.unit_args.len() != spec.units as usize {
            return invalid(JobProblem::UnitArgs {
                lines: spec.unit_args.len() as u32,
                units: spec.units,
            });
        }
        if spec.requirements.validate().is_err() {
            return invalid(JobProblem::Requirements);
        }
        if spec.requirements.fuel_limit == 0 {
            return invalid(JobProblem::ZeroFuel);
        }
        if spec.max_price_per_unit == Amount::ZERO {
            return invalid(JobProblem::ZeroPrice);
        }
        let mut names: Vec<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        let valid_name = |n: &str| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if names.windows(2).any(|w| w[0] == w[1]) || !names.iter().all(|n| valid_name(n)) {
            return invalid(JobProblem::InputNames);
        }
        let Some(app) = load::<App>(cache, &app_key(&spec.app, &spec.app_developer))? else {
            return refuse(Refusal::UnknownApp);
        };
        let mut open = Self::id_list(cache, open_jobs_key())?;
        if open.0.len() >= self.params.max_open_jobs as usize {
            return refuse(Refusal::TooManyJobs {
                max: self.params.max_open_jobs,
            });
        }
        let mut holdings = Self::holdings(cache, requester)?;
        if holdings.open_jobs >= self.params.max_open_jobs_per_account {
            return refuse(Refusal::TooManyOpenJobs {
                held: holdings.open_jobs,
                max: self.params.max_open_jobs_per_account,
            });
        }
        let max_replicas = u32::from(spec.trust) + self.params.extra_replicas + 1;
        let Some(escrow) = worst_case_escrow(
            spec.units,
            max_replicas,
            spec.requirements.fuel_limit,
            spec.max_price_per_unit,
            app.royalty_per_unit,
            self.params.protocol_fee_bps,
        ) else {
            return refuse(Refusal::EscrowOverflow);
        };
        let mut counters = Self::counters(cache)?;
        let id = counters.next_job;
        if let Err(refusal) = bank::lock(cache, requester, Pot::JobEscrow(id), escrow)? {
            return Ok(Err(Rejection::Bank(refusal)));
        }
        counters.next_job += 1;
        store(cache, counters_key(), &counters)?;
        open.0.push(id);
        store(cache, open_jobs_key(), &open)?;
        holdings.open_jobs += 1;
        Self::store_holdings(cache, requester, &holdings)?;
        store(cache, job_spec_key(id), spec)?;
        let waiting: Vec<WaitingUnit> = (0..spec.units)
            .map(|unit| WaitingUnit {
                unit,
                started: false,
                replicas: vec![0],
                exclude: Vec::new(),
                deciding: false,
            })
            .collect();
        let mut job = Job {
            id,
            requester: requester.clone(),
            app: spec.app,
            units: spec.units,
            trust: spec.trust,
            fuel_limit: spec.requirements.fuel_limit,
            developer: app.developer,
            royalty_per_unit: app.royalty_per_unit,
            max_replicas,
            submitted_height: self.env.height,
            state: JobState::Open,
            accounts: JobAccounts {
                escrowed: escrow,
                held: escrow,
                ..JobAccounts::default()
            },
            waiting: 0,
            running: 0,
            accepted: 0,
            failed: 0,
            wait_reason: None,
        };
        Self::store_waiting(cache, &mut job, waiting)?;
        store(cache, job_key(id), &job)?;
        let expiry = self.due_after(self.params.job_wait_window_secs);
        self.add_deadline(cache, expiry, id, JOB_EXPIRY, REVEAL_DEADLINE)?;
        self.created.push(Created::Job(id));
        Ok(Ok(()))
    }

    pub(super) fn cancel_job(
        &mut self,
        cache: &mut StateCache,
        requester: &Address,
        id: u64,
    ) -> Verdict {
        let Some(job) = load::<Job>(cache, &job_key(id))? else {
            return refuse(Refusal::UnknownJob { job: id });
        };
        if job.requester != *requester {
            return refuse(Refusal::NotYourJob { job: id });
        }
        if job.state != JobState::Open {
            return refuse(Refusal::JobClosed { job: id });
        }
        self.stop_waiting(cache, job, JobState::Cancelled)?;
        Ok(Ok(()))
    }

    /// A job's wait deadline: if it is still open, its waiting units fail and it takes no new
    /// replica; it closes with its refund once nothing runs.
    pub(super) fn expire_job(&mut self, cache: &mut StateCache, id: u64) -> Result<(), Halt> {
        let Some(job) = load::<Job>(cache, &job_key(id))? else {
            return Ok(());
        };
        if job.state != JobState::Open {
            return Ok(());
        }
        self.stop_waiting(cache, job, JobState::Expired)
    }

    /// Ends an open job's search for providers (cancelled or expired): units never started
    /// fail, running units that waited for another replica settle with the replicas they
    /// have, and the job closes if nothing runs.
    fn stop_waiting(
        &mut self,
        cache: &mut StateCache,
        mut job: Job,
        state: JobState,
    ) -> Result<(), Halt> {
        let id = job.id;
        job.state = state;
        let waiting = Self::waiting(cache, &job)?;
        cache.require(
            waiting
                .iter()
                .filter(|w| w.started)
                .map(|w| unit_key(id, w.unit)),
        )?;
        job.failed += waiting.iter().filter(|w| !w.started).count() as u32;
        Self::store_waiting(cache, &mut job, Vec::new())?;
        store(cache, job_key(id), &job)?;
        // Running units that waited for another replica get none now: what their replicas
        // committed may still reveal, and a unit with nothing left to reveal is judged now.
        for w in waiting.iter().filter(|w| w.started) {
            let key = unit_key(id, w.unit);
            let mut unit: Unit = expect(cache, &key)?;
            unit.sought = false;
            let has = |status| unit.replicas.iter().any(|r| r.status == status);
            if has(ReplicaStatus::Assigned) {
                // Its commit deadline settles it.
            } else if has(ReplicaStatus::Committed) {
                self.maybe_open_reveals(cache, &mut unit)?;
            } else {
                self.evaluate(cache, &mut unit)?;
            }
            store(cache, key, &unit)?;
        }
        let mut job: Job = expect(cache, &job_key(id))?;
        self.maybe_close_job(cache, &mut job)?;
        store(cache, job_key(id), &job)?;
        Ok(())
    }

    /// Refunds the unspent escrow of a job nothing runs for any more.
    pub(super) fn maybe_close_job(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
    ) -> Result<(), Halt> {
        let finished = job.waiting == 0 && job.running == 0;
        if !finished {
            return Ok(());
        }
        if job.state == JobState::Open {
            job.state = JobState::Done;
        }
        // The market's accounts and the bank's pot say the same, or the state was changed
        // behind their backs.
        let escrow = Pot::JobEscrow(job.id);
        bank::expect_pot(cache, escrow, job.accounts.held)?;
        let refund = job.accounts.held;
        bank::release(cache, escrow, &job.requester, refund)?;
        job.accounts.refunded = job
            .accounts
            .refunded
            .checked_add(refund)
            .ok_or(Fault::Overflow("job refund"))?;
        job.accounts.held = Amount::ZERO;
        let mut open = Self::id_list(cache, open_jobs_key())?;
        let before = open.0.len();
        open.0.retain(|j| *j != job.id);
        if open.0.len() == before {
            // Closed already: its place under the requester's cap was given back then.
            return Ok(());
        }
        store(cache, open_jobs_key(), &open)?;
        let mut holdings = Self::holdings(cache, &job.requester)?;
        holdings.open_jobs = holdings.open_jobs.checked_sub(1).ok_or_else(|| {
            Fault::Invariant(format!(
                "job {} closes but its requester holds no open job",
                job.id
            ))
        })?;
        Self::store_holdings(cache, &job.requester, &holdings)
    }

    /// The units of `job` that need providers, in unit order.
    pub(super) fn waiting(cache: &StateCache, job: &Job) -> Result<Vec<WaitingUnit>, Halt> {
        if job.waiting == 0 {
            return Ok(Vec::new());
        }
        let list: WaitingList = expect(cache, &waiting_key(job.id))?;
        if list.0.len() != job.waiting as usize {
            return Err(Fault::Invariant(format!(
                "job {} counts {} waiting units and lists {}",
                job.id,
                job.waiting,
                list.0.len()
            ))
            .into());
        }
        Ok(list.0)
    }

    /// Writes the units of `job` that need providers, and their number in its header (which
    /// the caller stores).
    pub(super) fn store_waiting(
        cache: &mut StateCache,
        job: &mut Job,
        waiting: Vec<WaitingUnit>,
    ) -> Result<(), Halt> {
        job.waiting =
            u32::try_from(waiting.len()).map_err(|_| Fault::Overflow("job waiting units"))?;
        if waiting.is_empty() {
            remove(cache, waiting_key(job.id));
        } else {
            store(cache, waiting_key(job.id), &WaitingList(waiting))?;
        }
        Ok(())
    }
}
