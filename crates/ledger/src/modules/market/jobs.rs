//! Jobs: submission with the worst case in escrow, cancellation, closing with a refund.

use super::{
    JobProblem, Market, Refusal, Verdict,
    keys::{app_key, counters_key, job_key, open_jobs_key, unit_key},
    records::{
        App, Job, JobAccounts, JobState, MAX_UNIT_REPLICAS, ReplicaStatus, WaitReason, WaitingUnit,
    },
    refuse,
    settlement::worst_case_escrow,
};
use crate::{
    exec::{Created, Rejection},
    modules::bank::{self, Pot},
    state::{Fault, Halt, Record, StateCache, expect, load, store},
};
use commonware_codec::EncodeSize;
use exo_types::{Address, Amount, JobSpec, MAX_JOB_UNITS, MAX_TRUST};

/// The most units a job of `spec` may have so that its record fits its bound whatever happens
/// to its replicas: every unit waiting with as many replicas sought and as many providers
/// excluded as a unit can hold, every unit running, the payment breakdown full. Without it, a
/// large job whose replicas keep failing would grow its record at the end of a block past the
/// bound, a fault that halts the chain.
pub fn max_units_per_job(spec: &JobSpec) -> u32 {
    let worst_waiting = WaitingUnit {
        unit: u32::MAX,
        replicas: vec![u32::MAX; MAX_UNIT_REPLICAS],
        exclude: vec![u64::MAX; MAX_UNIT_REPLICAS],
    }
    .to_bytes()
    .len();
    // Ids, addresses, terms, counts and the lists' length prefixes: 117 bytes today.
    const FIXED: usize = 256;
    let room = Job::MAX_BYTES
        .saturating_sub(FIXED)
        .saturating_sub(spec.encode_size())
        .saturating_sub(JobAccounts::MAX_BYTES)
        .saturating_sub(WaitReason::MAX_BYTES + 1);
    // A unit takes a waiting entry and a running entry (four bytes) at most.
    let units = room / (worst_waiting + 4);
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
        let max_units = max_units_per_job(spec);
        if spec.units > max_units {
            return invalid(JobProblem::UnitsOverRecordBound { max: max_units });
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
        let Some(app) = load::<App>(cache, &app_key(&spec.app))? else {
            return refuse(Refusal::UnknownApp);
        };
        let mut open = Self::id_list(cache, open_jobs_key())?;
        if open.0.len() >= self.params.max_open_jobs as usize {
            return refuse(Refusal::TooManyJobs {
                max: self.params.max_open_jobs,
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
        let job = Job {
            id,
            requester: requester.clone(),
            spec: spec.clone(),
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
            waiting: (0..spec.units)
                .map(|unit| WaitingUnit {
                    unit,
                    replicas: vec![0],
                    exclude: Vec::new(),
                })
                .collect(),
            running: Vec::new(),
            accepted: 0,
            failed: 0,
            wait_reason: None,
        };
        store(cache, job_key(id), &job)?;
        self.created.push(Created::Job(id));
        Ok(Ok(()))
    }

    pub(super) fn cancel_job(
        &mut self,
        cache: &mut StateCache,
        requester: &Address,
        id: u64,
    ) -> Verdict {
        let Some(mut job) = load::<Job>(cache, &job_key(id))? else {
            return refuse(Refusal::UnknownJob { job: id });
        };
        if job.requester != *requester {
            return refuse(Refusal::NotYourJob { job: id });
        }
        if job.state != JobState::Open {
            return refuse(Refusal::JobClosed { job: id });
        }
        job.state = JobState::Cancelled;
        job.failed += job
            .waiting
            .iter()
            .filter(|w| !job.running.contains(&w.unit))
            .count() as u32;
        // Running units that waited for another replica get none now: what their replicas
        // committed may still reveal, and a unit with nothing left to reveal is judged now.
        let seeking: Vec<u32> = job
            .waiting
            .iter()
            .filter(|w| job.running.contains(&w.unit))
            .map(|w| w.unit)
            .collect();
        job.waiting.clear();
        store(cache, job_key(id), &job)?;
        for index in seeking {
            let Some(mut unit) = Self::unit(cache, id, index)? else {
                continue;
            };
            let has = |status| unit.replicas.iter().any(|r| r.status == status);
            if has(ReplicaStatus::Assigned) {
                // Its commit deadline settles it.
            } else if has(ReplicaStatus::Committed) {
                self.maybe_open_reveals(cache, &mut unit)?;
            } else {
                self.evaluate(cache, &mut unit)?;
            }
            store(cache, unit_key(id, index), &unit)?;
        }
        let mut job: Job = expect(cache, &job_key(id))?;
        self.maybe_close_job(cache, &mut job)?;
        store(cache, job_key(id), &job)?;
        Ok(Ok(()))
    }

    /// Refunds the unspent escrow of a job nothing runs for any more.
    pub(super) fn maybe_close_job(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
    ) -> Result<(), Halt> {
        let finished = job.waiting.is_empty() && job.running.is_empty();
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
        open.0.retain(|j| *j != job.id);
        store(cache, open_jobs_key(), &open)?;
        Ok(())
    }
}
