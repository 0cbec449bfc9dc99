//! Answering capacity rounds: when a round opens, the worker proves the free slots of its
//! offer ([`exo_types::CapacityChallenge`]) on one thread per free slot, beside its loop, and
//! sends the proof. Those slots are idle by definition, so the search takes no core a unit
//! needs; a search the round's close overtakes is dropped.

use exo_client::wire::ProviderCapacity;
use exo_types::{CAPACITY_SOLUTIONS, CapacityChallenge, CapacityProof};
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::task::JoinHandle;
use tracing::{debug, info};

/// Time a proof needs to reach a block: a search still running this close to the round's
/// close gives up rather than send a transaction that would only pay its fee.
const SEND_MARGIN: Duration = Duration::from_secs(2);

/// How often an idle worker looks for a round: a pass per block would double the requests a
/// busy worker makes to its node, and a round stays open for many seconds.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// A search running beside the worker's loop.
struct Search {
    round: u64,
    offer: u64,
    slots: u32,
    started: Instant,
    task: JoinHandle<Option<Vec<u64>>>,
}

/// The worker's part in capacity rounds.
#[derive(Default)]
pub(crate) struct Prover {
    search: Option<Search>,
    /// The `(round, offer)` pairs searched already, found or not: never searched twice.
    tried: HashSet<(u64, u64)>,
    /// When the round was last looked at.
    last_look: Option<Instant>,
}

impl Prover {
    /// Whether the next pass should look at the round: a search has finished, or none runs
    /// and the last look is [`LOOK_EVERY`] old.
    pub(crate) fn due(&self) -> bool {
        match &self.search {
            Some(search) => search.task.is_finished(),
            None => self.last_look.is_none_or(|t| t.elapsed() >= LOOK_EVERY),
        }
    }

    /// Looks at the round and the provider's offers (`GET /v1/providers/{id}/capacity`, read
    /// at the last finalized block, whose time is `chain_ms`): returns a proof found since the
    /// last look, to send, and starts a search for an offer that may answer the open round if
    /// none runs, on one thread per free slot up to `threads`.
    pub(crate) async fn step(
        &mut self,
        view: &ProviderCapacity,
        chain_ms: u64,
        threads: u32,
    ) -> Option<CapacityProof> {
        self.last_look = Some(Instant::now());
        let found = self.take_finished().await;
        if self.search.is_none() {
            self.start(view, chain_ms, threads);
        }
        found
    }

    async fn take_finished(&mut self) -> Option<CapacityProof> {
        if !self.search.as_ref().is_some_and(|s| s.task.is_finished()) {
            return None;
        }
        let search = self.search.take()?;
        match search.task.await {
            Ok(Some(nonces)) => {
                info!(
                    round = search.round,
                    offer = search.offer,
                    slots = search.slots,
                    secs = search.started.elapsed().as_secs_f64(),
                    "proved the offer's free slots"
                );
                Some(CapacityProof {
                    round: search.round,
                    offer: search.offer,
                    slots: search.slots,
                    nonces,
                })
            }
            Ok(None) => {
                info!(
                    round = search.round,
                    offer = search.offer,
                    slots = search.slots,
                    "the capacity round closed before the proof was found"
                );
                None
            }
            Err(err) => {
                debug!("capacity search: {err}");
                None
            }
        }
    }

    fn start(&mut self, view: &ProviderCapacity, chain_ms: u64, max_threads: u32) {
        let Some(round) = view.round.as_ref().filter(|r| r.open) else {
            return;
        };
        // Rounds before this one are over: forget what was tried in them.
        self.tried.retain(|(r, _)| *r >= round.number);
        let Some(offer) = view
            .offers
            .iter()
            .find(|o| o.may_answer && !self.tried.contains(&(round.number, o.offer)))
        else {
            return;
        };
        self.tried.insert((round.number, offer.offer));
        let challenge = CapacityChallenge {
            seed: round.seed,
            round: round.number,
            offer: offer.offer,
            slots: offer.free_slots,
            hashes_per_slot: round.hashes_per_slot,
        };
        let threads = offer.free_slots.min(max_threads).max(1);
        // A proof found later than this could not reach a block before the round closes.
        let left = Duration::from_millis(round.closes_ms.saturating_sub(chain_ms));
        let deadline = Instant::now() + left.saturating_sub(SEND_MARGIN);
        debug!(
            round = round.number,
            offer = offer.offer,
            slots = offer.free_slots,
            threads,
            "proving the offer's free slots"
        );
        self.search = Some(Search {
            round: round.number,
            offer: offer.offer,
            slots: offer.free_slots,
            started: Instant::now(),
            task: tokio::task::spawn_blocking(move || solve(&challenge, threads, deadline)),
        });
    }
}

/// Searches `challenge` on `threads` threads until it has a proof or `deadline` passes.
fn solve(challenge: &CapacityChallenge, threads: u32, deadline: Instant) -> Option<Vec<u64>> {
    let found = Arc::new(Mutex::new(Vec::with_capacity(CAPACITY_SOLUTIONS)));
    let step = u64::from(threads);
    std::thread::scope(|scope| {
        for start in 0..step {
            let found = Arc::clone(&found);
            scope.spawn(move || {
                let enough = |all: &Vec<u64>| all.len() >= CAPACITY_SOLUTIONS;
                challenge.search(
                    start,
                    step,
                    &mut |nonce| {
                        let mut all = found.lock().unwrap_or_else(|e| e.into_inner());
                        if !enough(&all) {
                            all.push(nonce);
                        }
                        !enough(&all)
                    },
                    &|| {
                        Instant::now() >= deadline
                            || enough(&found.lock().unwrap_or_else(|e| e.into_inner()))
                    },
                );
            });
        }
    });
    let nonces = std::mem::take(&mut *found.lock().unwrap_or_else(|e| e.into_inner()));
    (nonces.len() == CAPACITY_SOLUTIONS).then_some(nonces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(slots: u32, hashes_per_slot: u64) -> CapacityChallenge {
        CapacityChallenge {
            seed: [3; 32],
            round: 1,
            offer: 2,
            slots,
            hashes_per_slot,
        }
    }

    #[test]
    fn threads_find_a_proof_that_checks() {
        let challenge = challenge(4, 4_096);
        let far = Instant::now() + Duration::from_secs(3_600);
        let nonces = solve(&challenge, 4, far).expect("a proof");
        assert!(challenge.check(&nonces));
    }

    #[test]
    fn a_search_past_its_deadline_gives_up() {
        assert_eq!(solve(&challenge(1, 1 << 40), 2, Instant::now()), None);
    }
}
