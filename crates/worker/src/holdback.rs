//! Results wait a moment to share a transaction.
//!
//! Every commitment and reveal is a signed transaction that each validator admits, gossips,
//! verifies and executes; its cost barely depends on how many results it carries (at most
//! [`MAX_RESULTS_PER_TX`]). A worker that sends each result the moment its run ends makes the
//! chain carry one transaction for every few units. A [`Holdback`] keeps ready results back
//! while more are coming (the worker still runs or queues units), for at most its delay after
//! the first of them became ready, or until a transaction's worth has gathered: a busy worker
//! sends a few full transactions instead of many small ones, and a worker whose last run just
//! ended sends at once (as Nagle's algorithm does for small TCP segments).
//!
//! The delay is bounded by [`MAX_RESULT_DELAY`], well inside the shortest commit or reveal
//! window the ledger allows, and a result whose deadline is near ([`URGENT_SECS`]) is not held
//! at all, so a held result never misses its deadline for being held.

use exo_types::MAX_RESULTS_PER_TX;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a worker may hold a result back: a third of the shortest window the ledger allows
/// (`exo_ledger::MIN_WINDOW_SECS`), so that holding never costs a deadline.
pub const MAX_RESULT_DELAY: Duration = Duration::from_secs(1);

/// A result due within this many seconds of the last finalized block's time leaves at once:
/// the finalized time lags the chain's, and a hold must never cost a deadline.
pub const URGENT_SECS: u64 = 2;

/// Whether a result due at second `due` of block time must leave now, at finalized time
/// `chain_secs`.
pub(crate) fn is_urgent(due: u64, chain_secs: u64) -> bool {
    due <= chain_secs.saturating_add(URGENT_SECS)
}

/// [`crate::WorkerConfig::result_delay`] unless set, in milliseconds.
pub const DEFAULT_RESULT_DELAY_MS: u64 = 500;
/// [`crate::WorkerConfig::result_delay`] unless set.
pub const DEFAULT_RESULT_DELAY: Duration = Duration::from_millis(DEFAULT_RESULT_DELAY_MS);

/// One kind of result (commitments, or reveals) held back to share transactions.
#[derive(Debug)]
pub(crate) struct Holdback {
    delay: Duration,
    /// When the oldest result still held became ready.
    since: Option<Instant>,
}

impl Holdback {
    pub(crate) fn new(delay: Duration) -> Self {
        Self {
            delay: delay.min(MAX_RESULT_DELAY),
            since: None,
        }
    }

    /// Whether the `ready` results should leave now: no more are coming, a full
    /// transaction's worth is ready, or the oldest has waited the delay. Starts the wait when
    /// results become ready, and ends it when they leave or none is left.
    pub(crate) fn release(&mut self, ready: usize, more_coming: bool, now: Instant) -> bool {
        if ready == 0 {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        let due =
            !more_coming || ready >= MAX_RESULTS_PER_TX || now.duration_since(since) >= self.delay;
        if due {
            self.since = None;
        }
        due
    }

    /// When the results held now fall due, if any are held.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        self.since.map(|since| since + self.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_wait_while_more_are_coming_at_most_the_delay() {
        let start = Instant::now();
        let delay = Duration::from_millis(500);
        let mut hold = Holdback::new(delay);
        assert!(!hold.release(0, true, start));
        assert_eq!(hold.due_at(), None, "nothing ready, nothing held");
        assert!(!hold.release(3, true, start));
        assert_eq!(hold.due_at(), Some(start + delay));
        // More results joining do not move the first one's deadline.
        assert!(!hold.release(9, true, start + delay / 2));
        assert_eq!(hold.due_at(), Some(start + delay));
        assert!(hold.release(9, true, start + delay));
        assert_eq!(hold.due_at(), None, "sent: the next wait starts afresh");
    }

    #[test]
    fn results_leave_at_once_when_no_more_are_coming_or_a_transaction_is_full() {
        let start = Instant::now();
        let mut hold = Holdback::new(Duration::from_millis(500));
        assert!(hold.release(1, false, start), "the last run ended");
        assert!(
            hold.release(MAX_RESULTS_PER_TX, true, start),
            "a full transaction"
        );
        assert!(
            Holdback::new(Duration::ZERO).release(1, true, start),
            "no delay"
        );
    }

    #[test]
    fn a_result_near_its_deadline_is_urgent() {
        assert!(is_urgent(100, 98));
        assert!(is_urgent(100, 100));
        assert!(!is_urgent(100, 97));
        assert!(!is_urgent(u64::MAX, u64::MAX - 3), "no deadline");
    }

    #[test]
    fn the_delay_is_bounded_inside_the_shortest_window() {
        assert!(MAX_RESULT_DELAY.as_secs() * 3 <= exo_ledger::MIN_WINDOW_SECS);
        let hold = Holdback::new(Duration::from_secs(3_600));
        assert_eq!(hold.delay, MAX_RESULT_DELAY);
    }
}
