//! Deadlines: commit and reveal windows, job expiry, the no-shows they find, and audit draws.
//!
//! Windows are measured in block time ([`crate::BlockEnv::time_ms`]), never in blocks: a
//! window of N seconds elapses after N seconds whether blocks come ten a second or one every
//! few seconds. A deadline is filed under the whole second it falls due in, and a block
//! processes every second from the one after the last processed up to its own time.
//!
//! A second's deadlines are stored one per key, by position, beside their count: adding one
//! writes two small records however many the second holds (a busy block files thousands of
//! deadlines under the same second).

use super::{
    Market,
    keys::{
        audit_draw_item_key, audit_draws_key, deadline_cursor_key, deadline_item_key, deadline_key,
        job_key, provider_key, unit_key,
    },
    records::{
        AUDIT_DRAW, AUDIT_LAPSE, Deadline, DeadlineCount, DeadlineCursor, JOB_EXPIRY, Job,
        JobState, REVEAL_DEADLINE, ReplicaStatus, UnitState,
    },
    reputation::REPUTATION_NO_SHOW,
};
use crate::state::{Fault, Halt, Key, StateCache, expect, load, remove, store};

/// Seconds whose deadline counts are loaded at once when a second is full.
const DEADLINE_PREFETCH: u64 = 8;

/// Most seconds of deadlines one block looks at: after a halt the chain catches up over
/// several blocks rather than reading every second of the gap in one.
pub(super) const DEADLINE_SECONDS_PER_BLOCK: u64 = 64;

/// Numbered lists of [`Deadline`]s: a count per number, and each item by number and position.
/// Deadlines are numbered by second of block time, audit draws by height.
pub(super) struct Lists {
    count: fn(u64) -> Key,
    item: fn(u64, u32) -> Key,
}

pub(super) const DEADLINES: Lists = Lists {
    count: deadline_key,
    item: deadline_item_key,
};

pub(super) const AUDIT_DRAWS: Lists = Lists {
    count: audit_draws_key,
    item: audit_draw_item_key,
};

impl Lists {
    /// Files `item` in list `first`, or, if that list holds `max` already, in the next one
    /// with room: answers which. A full list is never written past its bound; the item is only
    /// deferred.
    pub(super) fn file(
        &self,
        cache: &mut StateCache,
        first: u64,
        max: u32,
        item: &Deadline,
    ) -> Result<u64, Halt> {
        let mut at = first;
        loop {
            let key = (self.count)(at);
            let count = load::<DeadlineCount>(cache, &key)?.unwrap_or_default().0;
            if count < max {
                store(cache, (self.item)(at, count), item)?;
                store(cache, key, &DeadlineCount(count + 1))?;
                return Ok(at);
            }
            // Full: look at the next lists in one round.
            let next = at.checked_add(1).ok_or(Fault::Overflow("deadline list"))?;
            cache.require((next..next.saturating_add(DEADLINE_PREFETCH)).map(self.count))?;
            at = next;
        }
    }

    /// How many items list `number` holds.
    pub(super) fn count(&self, cache: &StateCache, number: u64) -> Result<u32, Halt> {
        Ok(load::<DeadlineCount>(cache, &(self.count)(number))?.map_or(0, |c| c.0))
    }

    /// The keys of the first `count` items of list `number`, to load in one round before
    /// [`Self::take`].
    pub(super) fn item_keys(&self, number: u64, count: u32) -> impl Iterator<Item = Key> {
        let item = self.item;
        (0..count).map(move |position| item(number, position))
    }

    /// Removes list `number`, of `count` items already loaded, and answers its items in the
    /// order they were filed.
    pub(super) fn take(
        &self,
        cache: &mut StateCache,
        number: u64,
        count: u32,
    ) -> Result<Vec<(u64, u32, u32)>, Halt> {
        let mut items = Vec::with_capacity(count as usize);
        for key in self.item_keys(number, count) {
            let Deadline(item) = expect(cache, &key)?;
            items.push(item);
            remove(cache, key);
        }
        remove(cache, (self.count)(number));
        Ok(items)
    }
}

impl Market<'_> {
    /// The block's time in whole seconds, rounded down: the last second fully reached.
    pub(super) fn now_secs(&self) -> u64 {
        self.env.time_ms / 1_000
    }

    /// The second a deadline `window_secs` after this block falls due: the block's time
    /// rounded up, plus the window, so that at least the whole window elapses before it is
    /// processed. Parameters bound windows so that this cannot overflow.
    pub(super) fn due_after(&self, window_secs: u64) -> u64 {
        self.env.time_ms.div_ceil(1_000).saturating_add(window_secs)
    }

    /// Adds a deadline due in `second`, or, if that second's list is full, in the next second
    /// with room: returns the second it falls due in. A full list is never written past its
    /// bound; the deadline is only deferred.
    pub(super) fn add_deadline(
        &mut self,
        cache: &mut StateCache,
        second: u64,
        job: u64,
        unit: u32,
        replica: u32,
    ) -> Result<u64, Halt> {
        let item = Deadline((job, unit, replica));
        DEADLINES.file(cache, second, self.params.max_deadlines_per_second, &item)
    }

    /// Processes the deadlines of every second from the one after the last processed up to
    /// the block's time, oldest first: at most [`DEADLINE_SECONDS_PER_BLOCK`] seconds, and no
    /// more deadlines than `max_deadlines_per_second` unless the first second alone holds
    /// more. What is left waits for the next block, in order.
    pub(super) fn process_deadlines(&mut self, cache: &mut StateCache) -> Result<(), Halt> {
        // Audit draws are filed by height: this block's first.
        self.process_audit_draws(cache)?;
        let now = self.now_secs();
        let cursor_key = deadline_cursor_key();
        // The first block with a market finds nothing due before it: every deadline is added
        // at least a window after some block's time.
        let stored = load::<DeadlineCursor>(cache, &cursor_key)?;
        let done = stored.map_or(now, |c| c.0);
        let last = now.min(done.saturating_add(DEADLINE_SECONDS_PER_BLOCK));
        let seconds = done.saturating_add(1)..=last;
        cache.require(seconds.clone().map(deadline_key))?;
        // The seconds this block processes, with their counts: then all their deadlines are
        // loaded in one round. Processing never adds to them: deadlines are filed after the
        // block's own second (`due_after`, or the next second).
        let budget = self.params.max_deadlines_per_second;
        let mut processed = 0u32;
        let mut reached = done;
        let mut due = Vec::new();
        for second in seconds {
            let count = DEADLINES.count(cache, second)?;
            if processed > 0 && processed.saturating_add(count) > budget {
                break;
            }
            processed = processed.saturating_add(count);
            if count > 0 {
                due.push((second, count));
            }
            reached = second;
        }
        cache.require(
            due.iter()
                .flat_map(|(second, count)| DEADLINES.item_keys(*second, *count)),
        )?;
        for (second, count) in due {
            let deadlines = DEADLINES.take(cache, second, count)?;
            self.process_second(cache, second, deadlines)?;
        }
        if stored != Some(DeadlineCursor(reached)) {
            store(cache, cursor_key, &DeadlineCursor(reached))?;
        }
        Ok(())
    }

    /// Processes the deadlines that fell due in `second`: each is checked against the record
    /// it names, which may have moved on (committed, revealed, closed) since.
    fn process_second(
        &mut self,
        cache: &mut StateCache,
        second: u64,
        deadlines: Vec<(u64, u32, u32)>,
    ) -> Result<(), Halt> {
        cache.require(
            deadlines
                .iter()
                .filter(|(_, u, _)| *u != JOB_EXPIRY)
                .map(|(j, u, _)| unit_key(*j, *u)),
        )?;
        cache.require(deadlines.iter().map(|(j, _, _)| job_key(*j)))?;
        for (job_id, unit_index, replica_index) in deadlines {
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
            if replica_index == AUDIT_LAPSE {
                self.lapse_audit(cache, &mut unit, second)?;
                continue;
            }
            let mut no_shows = Vec::new();
            if replica_index == REVEAL_DEADLINE {
                if unit.reveal_deadline != Some(second) {
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
                && replica.commit_deadline == second
            {
                replica.status = ReplicaStatus::NoShow;
                no_shows.push(replica.clone());
            }
            if no_shows.is_empty() {
                continue;
            }
            cache.require(no_shows.iter().map(|r| provider_key(r.provider)))?;
            for replica in &no_shows {
                let mut provider = Self::provider(cache, replica.provider)?;
                if replica_index == REVEAL_DEADLINE {
                    // A commitment never opened costs as much as a wrong result: a liar that
                    // saw the honest reveal would otherwise withhold its own and pay the
                    // smaller penalty of a replica that never committed (audit H7).
                    self.convict(cache, &mut provider)?;
                } else {
                    self.punish(
                        cache,
                        &mut provider,
                        self.params.slash_no_show_bps,
                        REPUTATION_NO_SHOW,
                    )?;
                }
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
        Ok(())
    }
}
