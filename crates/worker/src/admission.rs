//! Which assigned units may start now: at most `slots` at once, and only while the host memory
//! of the units running (each unit's memory limit plus the inputs and output buffers the
//! sandbox holds for it) fits the memory this provider declared.
//!
//! Units wait in the order they are due (commit deadline, then job, unit and replica) and
//! start strictly in that order, so a large unit is never overtaken for ever by smaller ones.
//! A unit alone is always admitted: the matcher gives a provider only units whose memory limit
//! fits its declared memory, and refusing one that fits only with its buffers would leave it
//! waiting for nothing. A unit still waiting when less than a quarter of the commit window it
//! had when it was queued is left (in seconds of chain time, as deadlines are) is handed back
//! as *late*: the worker reports it as "could not finish" (`host_memory`)
//! before its deadline rather than run it and commit too late, which would make this provider
//! a no-show.

use exo_client::wire::WorkItem;
use std::collections::BTreeMap;

/// Bytes of host memory a unit may hold while it runs, beyond its linear memory: its inputs
/// (held in memory for its `/in`), its `/out` quota with the sandbox's growth slack, and both
/// stdio bounds.
pub(crate) fn footprint_bytes(item: &WorkItem, buffers_bytes: u64) -> u64 {
    let inputs = item
        .inputs
        .iter()
        .fold(0u64, |sum, i| sum.saturating_add(i.size));
    item.memory_mib
        .saturating_mul(1 << 20)
        .saturating_add(inputs)
        .saturating_add(buffers_bytes)
}

/// Where a unit waits: ordered by when it is due.
type QueueKey = (u64, u64, u32, u32);

/// A unit waiting for admission.
pub(crate) struct Waiting {
    pub item: WorkItem,
    pub key: String,
    pub bytes: u64,
    /// The chain's time (whole seconds) when the unit was queued: its window starts there.
    pub queued_secs: u64,
}

/// The admission queue and what runs.
pub(crate) struct Admission {
    capacity_bytes: u64,
    slots: usize,
    running: BTreeMap<String, u64>,
    queue: BTreeMap<QueueKey, Waiting>,
    /// The queue's keys by replica key.
    queued: BTreeMap<String, QueueKey>,
}

/// What [`Admission::admit`] decided.
#[derive(Default)]
pub(crate) struct Admitted {
    /// Units to start now; their memory is reserved until [`Admission::release`].
    pub start: Vec<Waiting>,
    /// Units that waited until too little of their commit window was left.
    pub late: Vec<Waiting>,
}

impl Admission {
    pub fn new(capacity_bytes: u64, slots: u32) -> Self {
        Self {
            capacity_bytes,
            slots: slots.max(1) as usize,
            running: BTreeMap::new(),
            queue: BTreeMap::new(),
            queued: BTreeMap::new(),
        }
    }

    /// Queues `item` at chain time `now_secs` (once: a unit already queued or running is
    /// ignored).
    pub fn push(&mut self, item: WorkItem, key: String, bytes: u64, now_secs: u64) {
        if self.holds(&key) {
            return;
        }
        let at = (item.commit_deadline, item.job, item.unit, item.replica);
        self.queued.insert(key.clone(), at);
        self.queue.insert(
            at,
            Waiting {
                item,
                key,
                bytes,
                queued_secs: now_secs,
            },
        );
    }

    /// Whether `key` waits or runs.
    pub fn holds(&self, key: &str) -> bool {
        self.running.contains_key(key) || self.queued.contains_key(key)
    }

    /// Units running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Host memory reserved by the units running now.
    pub fn reserved_bytes(&self) -> u64 {
        self.running
            .values()
            .fold(0u64, |sum, b| sum.saturating_add(*b))
    }

    /// Hands back what became late at chain time `now_secs`, then admits from the head of the
    /// queue while a slot is free and the head fits.
    pub fn admit(&mut self, now_secs: u64) -> Admitted {
        let mut out = Admitted::default();
        let late: Vec<QueueKey> = self
            .queue
            .iter()
            .filter(|(_, w)| is_late(w, now_secs))
            .map(|(at, _)| *at)
            .collect();
        for at in late {
            if let Some(w) = self.queue.remove(&at) {
                self.queued.remove(&w.key);
                out.late.push(w);
            }
        }
        while self.running.len() < self.slots {
            let reserved = self.reserved_bytes();
            let Some(entry) = self.queue.first_entry() else {
                break;
            };
            let fits = self.running.is_empty()
                || reserved.saturating_add(entry.get().bytes) <= self.capacity_bytes;
            if !fits {
                break;
            }
            let waiting = entry.remove();
            self.queued.remove(&waiting.key);
            self.running.insert(waiting.key.clone(), waiting.bytes);
            out.start.push(waiting);
        }
        out
    }

    /// Drops the waiting units `listed` no longer holds (settled elsewhere, or their job
    /// cancelled) and returns their keys.
    pub fn forget_unlisted(&mut self, listed: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<(String, QueueKey)> = self
            .queued
            .iter()
            .filter(|(key, _)| !listed(key))
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        for (key, at) in &gone {
            self.queued.remove(key);
            self.queue.remove(at);
        }
        gone.into_iter().map(|(key, _)| key).collect()
    }

    /// Frees what `key` reserved when it started.
    pub fn release(&mut self, key: &str) {
        self.running.remove(key);
    }
}

/// Less than a quarter of the window the unit had when it was queued left (at least one
/// second): too late to start.
fn is_late(waiting: &Waiting, now_secs: u64) -> bool {
    let deadline = waiting.item.commit_deadline;
    let window = deadline.saturating_sub(waiting.queued_secs);
    let margin = (window / 4).max(1);
    now_secs.saturating_add(margin) >= deadline
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn item(unit: u32, deadline: u64) -> WorkItem {
        WorkItem {
            job: 0,
            unit,
            replica: 0,
            status: "assigned".into(),
            assigned_height: deadline.saturating_sub(100),
            commit_deadline: deadline,
            reveal_open: false,
            reveal_deadline: None,
            app: [0; 32],
            inputs: Vec::new(),
            args: None,
            fuel_limit: 1,
            memory_mib: 64,
            price_per_unit: exo_types::Amount(1),
        }
    }

    fn started(a: &Admitted) -> Vec<u32> {
        a.start.iter().map(|w| w.item.unit).collect()
    }

    #[test]
    fn units_start_in_deadline_order_while_their_memory_fits() {
        let mut a = Admission::new(300 * MIB, 8);
        for (unit, deadline) in [(0, 500), (1, 300), (2, 400), (3, 600)] {
            a.push(item(unit, deadline), format!("u{unit}"), 100 * MIB, 0);
        }
        let first = a.admit(10);
        assert_eq!(started(&first), [1, 2, 0]);
        assert_eq!(a.reserved_bytes(), 300 * MIB);
        assert!(a.admit(10).start.is_empty(), "the fourth does not fit");
        a.release("u2");
        assert_eq!(started(&a.admit(10)), [3]);
        assert_eq!(a.running(), 3);
    }

    #[test]
    fn a_large_unit_at_the_head_is_not_overtaken_by_smaller_ones() {
        let mut a = Admission::new(300 * MIB, 8);
        a.push(item(0, 100), "small".into(), 200 * MIB, 0);
        a.push(item(1, 200), "large".into(), 250 * MIB, 0);
        a.push(item(2, 300), "tiny".into(), 10 * MIB, 0);
        assert_eq!(started(&a.admit(10)), [0]);
        // 90 MiB are free and "tiny" would fit, but "large" is due first.
        assert!(a.admit(10).start.is_empty());
        a.release("small");
        assert_eq!(started(&a.admit(10)), [1, 2]);
    }

    #[test]
    fn a_unit_larger_than_the_declared_memory_runs_alone() {
        let mut a = Admission::new(100 * MIB, 4);
        a.push(item(0, 100), "big".into(), 150 * MIB, 0);
        a.push(item(1, 200), "next".into(), 10 * MIB, 0);
        assert_eq!(started(&a.admit(10)), [0]);
        assert!(a.admit(10).start.is_empty());
        a.release("big");
        assert_eq!(started(&a.admit(10)), [1]);
    }

    #[test]
    fn slots_bound_the_units_running_whatever_memory_is_free() {
        let mut a = Admission::new(1 << 40, 2);
        for unit in 0..4 {
            a.push(
                item(unit, 100 + u64::from(unit)),
                format!("u{unit}"),
                MIB,
                0,
            );
        }
        assert_eq!(a.admit(10).start.len(), 2);
        a.push(item(0, 100), "u0".into(), MIB, 0);
        assert!(a.holds("u0") && a.holds("u3") && !a.holds("u9"));
        assert_eq!(a.admit(10).start.len(), 0, "u0 runs: queued once only");
    }

    #[test]
    fn a_waiting_unit_the_work_list_no_longer_holds_is_forgotten() {
        let mut a = Admission::new(100 * MIB, 4);
        a.push(item(0, 100), "running".into(), 100 * MIB, 0);
        a.push(item(1, 200), "gone".into(), 100 * MIB, 0);
        a.push(item(2, 300), "kept".into(), 100 * MIB, 0);
        assert_eq!(started(&a.admit(10)), [0]);
        let gone = a.forget_unlisted(|key| key != "gone" && key != "running");
        assert_eq!(gone, ["gone"]);
        assert!(a.holds("running"), "a running unit is not dropped");
        a.release("running");
        assert_eq!(started(&a.admit(10)), [2]);
    }

    #[test]
    fn a_unit_still_waiting_late_in_its_commit_window_is_handed_back_before_the_deadline() {
        let mut a = Admission::new(100 * MIB, 4);
        a.push(item(0, 1_000), "running".into(), 100 * MIB, 900);
        a.push(item(1, 1_000), "waiting".into(), 100 * MIB, 900);
        assert_eq!(started(&a.admit(900)), [0]);
        // Queued with 100 s left: too late with a quarter left, at 975 s.
        assert!(a.admit(974).late.is_empty());
        let late = a.admit(975);
        assert_eq!(late.late.len(), 1);
        assert_eq!(late.late[0].key, "waiting");
        assert!(!a.holds("waiting"));
    }
}
