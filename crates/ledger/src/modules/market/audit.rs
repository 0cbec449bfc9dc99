//! Hidden audits: whether a unit gets one more replica that checks it, drawn only once every
//! replica it had committed, from a seed none of them could know; and the end of an audit that
//! nobody can take.

use super::{
    Market,
    batch::hash32,
    deadlines::AUDIT_DRAWS,
    keys::{job_key, unit_key},
    records::{
        AUDIT_DRAW, AUDIT_LAPSE, AUDIT_SEED_DELAY, AuditDraw, Deadline, Job, JobState,
        ReplicaStatus, Unit, UnitState,
    },
};
use crate::state::{Halt, StateCache, expect, store};

impl Market<'_> {
    /// Schedules the audit draw of `unit`, whose replicas all committed just now, for the first
    /// block at least [`AUDIT_SEED_DELAY`] blocks from here. Returns whether reveals may open already: only
    /// once the draw is behind the unit.
    pub(super) fn audit_drawn(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
    ) -> Result<bool, Halt> {
        match unit.audit {
            AuditDraw::Drawn | AuditDraw::Lapsed => Ok(true),
            // Reveals may open only once every replica committed: the audit's did.
            AuditDraw::Seeking(_) => {
                unit.audit = AuditDraw::Drawn;
                Ok(true)
            }
            AuditDraw::Due(_) => Ok(false),
            AuditDraw::Undrawn => {
                let height = self.env.height.saturating_add(AUDIT_SEED_DELAY);
                let at = self.schedule_draw(cache, height, unit.job, unit.unit)?;
                unit.audit = AuditDraw::Due(at);
                Ok(false)
            }
        }
    }

    /// Draws the audit of `unit` once its seed's height is reached: with probability `audit_ppm` it gets one
    /// more replica, sought like any other (a check, a replacement, a dispute's), whatever its
    /// trust level and however trusted its replicas; then reveals open once that replica
    /// committed, or now.
    pub(super) fn draw_due_audit(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        let AuditDraw::Due(height) = unit.audit else {
            return Ok(());
        };
        if unit.state != UnitState::Running {
            return Ok(());
        }
        if height > self.env.height {
            // Not yet (a draw filed by second before draws were filed by height): at its
            // height, then.
            self.schedule_draw(cache, height, unit.job, unit.unit)?;
            return Ok(());
        }
        unit.audit = AuditDraw::Drawn;
        let mut job: Job = expect(cache, &job_key(unit.job))?;
        let room = (unit.replicas.len() as u32) < job.max_replicas;
        if job.state == JobState::Open && room && self.draw_audit(unit.job, unit.unit) {
            self.seek_replica(cache, &mut job, unit)?;
            store(cache, job_key(job.id), &job)?;
            if unit.sought {
                let lapse = self.due_after(self.params.commit_window_secs);
                self.file_lapse(cache, unit, lapse)?;
            }
        }
        self.maybe_open_reveals(cache, unit)?;
        Ok(store(cache, unit_key(unit.job, unit.unit), unit)?)
    }

    /// Files the audit draw of unit `unit` of job `job` for `height`, or, if that height's list
    /// is full (`max_deadlines_per_second` units), for the next height with room: returns the
    /// height it is drawn at. Draws are filed by height, not by second of block time: a unit
    /// whose last commitment was taken in a block is drawn [`AUDIT_SEED_DELAY`] blocks later,
    /// however short the blocks, rather than at the next second's deadlines.
    fn schedule_draw(
        &mut self,
        cache: &mut StateCache,
        height: u64,
        job: u64,
        unit: u32,
    ) -> Result<u64, Halt> {
        let item = Deadline((job, unit, AUDIT_DRAW));
        AUDIT_DRAWS.file(cache, height, self.params.max_deadlines_per_second, &item)
    }

    /// Draws the audits filed for this block's height ([`Self::schedule_draw`]), each checked
    /// against its unit, which may have moved on (failed, closed) since.
    pub(super) fn process_audit_draws(&mut self, cache: &mut StateCache) -> Result<(), Halt> {
        let height = self.env.height;
        let count = AUDIT_DRAWS.count(cache, height)?;
        if count == 0 {
            return Ok(());
        }
        cache.require(AUDIT_DRAWS.item_keys(height, count))?;
        let due = AUDIT_DRAWS.take(cache, height, count)?;
        cache.require(due.iter().map(|(job, unit, _)| unit_key(*job, *unit)))?;
        cache.require(due.iter().map(|(job, _, _)| job_key(*job)))?;
        for (job, unit, _) in due {
            if let Some(mut unit) = Self::unit(cache, job, unit)? {
                self.draw_due_audit(cache, &mut unit)?;
            }
        }
        Ok(())
    }

    /// Whether the unit is audited: drawn from this block's seed, the digest of a block built
    /// after the unit's last commitment was final.
    fn draw_audit(&self, job: u64, unit: u32) -> bool {
        let mut item = [0u8; 12];
        item[..8].copy_from_slice(&job.to_be_bytes());
        item[8..].copy_from_slice(&unit.to_be_bytes());
        self.seed_draw(b"audit", &item, self.params.audit_ppm)
    }

    /// Whether a draw from this block's seed for `item`, in `domain`, falls below `ppm` parts
    /// per million: `hash(domain, seed, item)`, its first four bytes modulo a million.
    pub(super) fn seed_draw(&self, domain: &[u8], item: &[u8], ppm: u32) -> bool {
        let mut bytes = Vec::with_capacity(domain.len() + 32 + item.len());
        bytes.extend_from_slice(domain);
        bytes.extend_from_slice(&self.env.seed);
        bytes.extend_from_slice(item);
        let h = hash32(&bytes);
        let draw = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
        draw < ppm
    }

    /// Ends the search for `unit`'s audit replica if nobody took it by now (its
    /// [`AUDIT_LAPSE`] deadline): the unit's replicas committed long ago and are owed a verdict,
    /// and in a market too thin to audit it (every other provider busy, or already holding one
    /// of its replicas) waiting longer would hold their pay until the job expires. If the audit
    /// replica was taken and not yet committed, its holder may still miss its commit deadline
    /// and a replacement be sought: the search gets one more commit window after that deadline.
    pub(super) fn lapse_audit(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
        second: u64,
    ) -> Result<(), Halt> {
        if unit.audit != AuditDraw::Seeking(second) || unit.reveal_deadline.is_some() {
            return Ok(());
        }
        if !unit.sought {
            let taken = unit
                .replicas
                .iter()
                .filter(|r| r.status == ReplicaStatus::Assigned)
                .map(|r| r.commit_deadline)
                .max();
            if let Some(deadline) = taken {
                let lapse = deadline.saturating_add(self.params.commit_window_secs);
                self.file_lapse(cache, unit, lapse)?;
            }
            return Ok(store(cache, unit_key(unit.job, unit.unit), unit)?);
        }
        let mut job: Job = expect(cache, &job_key(unit.job))?;
        let mut waiting = Self::waiting(cache, &job)?;
        waiting.retain(|w| w.unit != unit.unit);
        Self::store_waiting(cache, &mut job, waiting)?;
        store(cache, job_key(job.id), &job)?;
        unit.sought = false;
        unit.audit = AuditDraw::Lapsed;
        self.maybe_open_reveals(cache, unit)?;
        Ok(store(cache, unit_key(unit.job, unit.unit), unit)?)
    }

    /// Files the lapse of `unit`'s audit search at `second` (or the first second with room).
    fn file_lapse(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
        second: u64,
    ) -> Result<(), Halt> {
        let due = self.add_deadline(cache, second, unit.job, unit.unit, AUDIT_LAPSE)?;
        unit.audit = AuditDraw::Seeking(due);
        Ok(())
    }
}
