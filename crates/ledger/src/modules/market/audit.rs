//! Hidden audits: whether a unit gets one more replica that checks it, drawn only once every
//! replica it had committed, from a seed none of them could know.

use super::{
    Market,
    batch::hash32,
    keys::{job_key, unit_key},
    records::{AUDIT_DRAW, AUDIT_SEED_DELAY, AuditDraw, Job, JobState, Unit, UnitState},
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
            AuditDraw::Drawn => Ok(true),
            AuditDraw::Due(_) => Ok(false),
            AuditDraw::Undrawn => {
                let next_second = self.now_secs().saturating_add(1);
                self.add_deadline(cache, next_second, unit.job, unit.unit, AUDIT_DRAW)?;
                unit.audit = AuditDraw::Due(self.env.height.saturating_add(AUDIT_SEED_DELAY));
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
            // No block after the commitment has been built yet: look again a second later.
            let next_second = self.now_secs().saturating_add(1);
            self.add_deadline(cache, next_second, unit.job, unit.unit, AUDIT_DRAW)?;
            return Ok(());
        }
        unit.audit = AuditDraw::Drawn;
        let mut job: Job = expect(cache, &job_key(unit.job))?;
        let room = (unit.replicas.len() as u32) < job.max_replicas;
        if job.state == JobState::Open && room && self.draw_audit(unit.job, unit.unit) {
            self.seek_replica(cache, &mut job, unit)?;
            store(cache, job_key(job.id), &job)?;
        }
        self.maybe_open_reveals(cache, unit)?;
        Ok(store(cache, unit_key(unit.job, unit.unit), unit)?)
    }

    /// Whether the unit is audited: drawn from this block's seed, the digest of a block built
    /// after the unit's last commitment was final.
    fn draw_audit(&self, job: u64, unit: u32) -> bool {
        let mut bytes = Vec::with_capacity(5 + 32 + 12);
        bytes.extend_from_slice(b"audit");
        bytes.extend_from_slice(&self.env.seed);
        bytes.extend_from_slice(&job.to_be_bytes());
        bytes.extend_from_slice(&unit.to_be_bytes());
        let h = hash32(&bytes);
        let draw = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
        draw < self.params.audit_ppm
    }
}
