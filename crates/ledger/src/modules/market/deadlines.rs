//! Deadlines: commit and reveal windows, the no-shows they find, and audit draws.

use super::{
    Market,
    keys::{deadline_key, job_key, provider_key, unit_key},
    records::{
        AUDIT_DRAW, DeadlineList, JOB_EXPIRY, Job, JobState, REVEAL_DEADLINE, ReplicaStatus,
        UnitState,
    },
    reputation::{REPUTATION_NO_SHOW, REPUTATION_WRONG},
};
use crate::state::{Fault, Halt, StateCache, expect, load, store};

/// Heights whose deadline lists are loaded at once when a list is full.
const DEADLINE_PREFETCH: u64 = 8;

impl Market<'_> {
    /// Adds a deadline due at `height`, or, if that height's list is full, at the next height
    /// with room: returns the height it falls due at. A full list is never written past its
    /// bound; the deadline is only deferred.
    pub(super) fn add_deadline(
        &mut self,
        cache: &mut StateCache,
        height: u64,
        job: u64,
        unit: u32,
        replica: u32,
    ) -> Result<u64, Halt> {
        let max = self.params.max_deadlines_per_height as usize;
        let mut at = height;
        loop {
            let key = deadline_key(at);
            let mut list: DeadlineList = load(cache, &key)?.unwrap_or_default();
            if list.0.len() < max {
                list.0.push((job, unit, replica));
                store(cache, key, &list)?;
                return Ok(at);
            }
            // Full: look at the next heights in one round.
            let next = at
                .checked_add(1)
                .ok_or(Fault::Overflow("deadline height"))?;
            cache.require((next..next.saturating_add(DEADLINE_PREFETCH)).map(deadline_key))?;
            at = next;
        }
    }

    pub(super) fn process_deadlines(&mut self, cache: &mut StateCache) -> Result<(), Halt> {
        let key = deadline_key(self.env.height);
        let Some(list) = load::<DeadlineList>(cache, &key)? else {
            return Ok(());
        };
        cache.require(
            list.0
                .iter()
                .filter(|(_, u, _)| *u != JOB_EXPIRY)
                .map(|(j, u, _)| unit_key(*j, *u)),
        )?;
        cache.require(list.0.iter().map(|(j, _, _)| job_key(*j)))?;
        for (job_id, unit_index, replica_index) in list.0 {
            if unit_index == JOB_EXPIRY {
                self.expire_job(cache, job_id)?;
                continue;
            }
            let Some(mut unit) = Self::unit(cache, job_id, unit_index)? else {
                continue;
            };
            if unit.state != UnitState::Running {
                continue;
            }
            if replica_index == AUDIT_DRAW {
                self.draw_due_audit(cache, &mut unit)?;
                continue;
            }
            let mut no_shows = Vec::new();
            if replica_index == REVEAL_DEADLINE {
                if unit.reveal_deadline != Some(self.env.height) {
                    continue;
                }
                for replica in unit.replicas.iter_mut() {
                    if replica.status == ReplicaStatus::Committed {
                        replica.status = ReplicaStatus::NoShow;
                        no_shows.push(replica.clone());
                    }
                }
            } else if let Some(replica) =
                unit.replicas.iter_mut().find(|r| r.index == replica_index)
                && replica.status == ReplicaStatus::Assigned
                && replica.commit_deadline == self.env.height
            {
                replica.status = ReplicaStatus::NoShow;
                no_shows.push(replica.clone());
            }
            if no_shows.is_empty() {
                continue;
            }
            cache.require(no_shows.iter().map(|r| provider_key(r.provider)))?;
            // A commitment never opened costs as much as a wrong result: a liar that saw the
            // honest reveal would otherwise withhold its own and pay the smaller penalty of a
            // replica that never committed (audit H7).
            let (slash_bps, reputation) = if replica_index == REVEAL_DEADLINE {
                (self.params.slash_wrong_bps, REPUTATION_WRONG)
            } else {
                (self.params.slash_no_show_bps, REPUTATION_NO_SHOW)
            };
            for replica in &no_shows {
                let mut provider = Self::provider(cache, replica.provider)?;
                self.punish(cache, &mut provider, slash_bps, reputation)?;
                provider.missed += 1;
                provider.active = provider.active.saturating_sub(1);
                store(cache, provider_key(provider.id), &provider)?;
                self.release_slot(cache, job_id, unit_index, replica)?;
            }
            if replica_index == REVEAL_DEADLINE {
                // Judge what was revealed; without agreement a new replica is sought.
                self.evaluate(cache, &mut unit)?;
            } else {
                let mut job: Job = expect(cache, &job_key(job_id))?;
                // Replace each no-show with a replica from someone else.
                for _ in &no_shows {
                    if (unit.replicas.len() as u32) < job.max_replicas + 2
                        && job.state == JobState::Open
                    {
                        self.seek_replica(cache, &mut job, &mut unit)?;
                    }
                }
                if !unit.sought && !unit.replicas.iter().any(|r| r.status.is_open()) {
                    self.fail(cache, &mut job, &mut unit)?;
                }
                self.maybe_open_reveals(cache, &mut unit)?;
                self.maybe_close_job(cache, &mut job)?;
                store(cache, job_key(job_id), &job)?;
            }
            store(cache, unit_key(job_id, unit_index), &unit)?;
        }
        cache.put(key, None);
        Ok(())
    }
}
