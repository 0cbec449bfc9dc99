//! Proof of capacity: what a provider computes to show that the free slots of an offer are
//! really there.
//!
//! A capacity round opens at a block nobody could predict, with that block's seed. Every offer
//! on the book posted before the round may prove its free slots until the round closes: its
//! provider finds [`CAPACITY_SOLUTIONS`] nonces whose hash ([`CapacityChallenge::hash`]) falls
//! below the target ([`CapacityChallenge::target`]). Finding them takes
//! `slots x hashes_per_slot` hashes on average, so a provider that runs one thread per free
//! slot needs the time one slot's share takes, and one that claims more slots than it has
//! cores needs proportionally longer and misses the close.
//! Checking a proof costs [`CAPACITY_SOLUTIONS`] hashes. Every offer of a round is challenged
//! at once, so one machine cannot answer for many identities in turn.

use crate::market::Hash32;
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, RangeCfg, Read, ReadExt, Write};

/// Nonces one proof carries. Sixteen solutions make the work a proof took far more even than
/// one lucky find: its spread is a quarter of its mean.
pub const CAPACITY_SOLUTIONS: usize = 16;

/// Domain of [`CapacityChallenge::hash`], so that no other hash of the protocol can serve as a
/// solution.
pub const CAPACITY_CONTEXT: &str = "exodus capacity proof v1";

/// A provider's proof that an offer's free slots answered a capacity round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityProof {
    /// The round answered.
    pub round: u64,
    /// The offer whose free slots it proves.
    pub offer: u64,
    /// The slots proven: the work is scaled to them, and the ledger credits at most the
    /// offer's free slots.
    pub slots: u32,
    /// [`CAPACITY_SOLUTIONS`] distinct nonces below the round's target for these slots.
    pub nonces: Vec<u64>,
}

/// What a round asks of one offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityChallenge {
    /// The seed of the block that opened the round.
    pub seed: Hash32,
    pub round: u64,
    pub offer: u64,
    pub slots: u32,
    /// Hashes one slot's share takes on average (the round's parameter).
    pub hashes_per_slot: u64,
}

impl CapacityChallenge {
    /// The hash of `nonce`, as a number: the first eight bytes of
    /// `blake3(context, seed, round, offer, slots, nonce)`. The slots are hashed in, so a
    /// proof of one slot is no proof of four.
    pub fn hash(&self, nonce: u64) -> u64 {
        let mut hasher = blake3::Hasher::new_derive_key(CAPACITY_CONTEXT);
        hasher.update(&self.seed);
        hasher.update(&self.round.to_be_bytes());
        hasher.update(&self.offer.to_be_bytes());
        hasher.update(&self.slots.to_be_bytes());
        hasher.update(&nonce.to_be_bytes());
        let out = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out.as_bytes()[..8]);
        u64::from_be_bytes(first)
    }

    /// The bound a solution's hash must fall below: one in `slots x hashes_per_slot /
    /// CAPACITY_SOLUTIONS` hashes does, so that the whole proof takes `slots x hashes_per_slot`
    /// hashes on average.
    pub fn target(&self) -> u64 {
        let hashes = u128::from(self.slots) * u128::from(self.hashes_per_slot);
        let per_solution = (hashes / CAPACITY_SOLUTIONS as u128).max(1);
        (u128::from(u64::MAX) / per_solution) as u64
    }

    /// Whether `nonces` prove this challenge: exactly [`CAPACITY_SOLUTIONS`] of them, distinct,
    /// each below the target.
    pub fn check(&self, nonces: &[u64]) -> bool {
        if nonces.len() != CAPACITY_SOLUTIONS {
            return false;
        }
        let mut sorted = nonces.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return false;
        }
        let target = self.target();
        nonces.iter().all(|n| self.hash(*n) < target)
    }

    /// Searches nonces `start, start + step, ...`, handing each solution to `found`, until
    /// `found` returns `false` (it has enough) or `stop` returns `true` (checked every 4,096
    /// hashes). Threads that search with the same `step` and different `start`s below it never
    /// test a nonce twice.
    pub fn search(
        &self,
        start: u64,
        step: u64,
        found: &mut dyn FnMut(u64) -> bool,
        stop: &dyn Fn() -> bool,
    ) {
        let target = self.target();
        let mut nonce = start;
        let mut tried = 0u32;
        loop {
            if self.hash(nonce) < target && !found(nonce) {
                return;
            }
            nonce = nonce.wrapping_add(step.max(1));
            tried = tried.wrapping_add(1);
            if tried.is_multiple_of(4_096) && stop() {
                return;
            }
        }
    }

    /// A whole proof found on one thread: the first [`CAPACITY_SOLUTIONS`] solutions from
    /// nonce 0.
    pub fn solve(&self) -> Vec<u64> {
        let mut nonces = Vec::with_capacity(CAPACITY_SOLUTIONS);
        self.search(
            0,
            1,
            &mut |n| {
                nonces.push(n);
                nonces.len() < CAPACITY_SOLUTIONS
            },
            &|| false,
        );
        nonces
    }
}

impl Write for CapacityProof {
    fn write(&self, buf: &mut impl BufMut) {
        self.round.write(buf);
        self.offer.write(buf);
        self.slots.write(buf);
        self.nonces.write(buf);
    }
}

impl EncodeSize for CapacityProof {
    fn encode_size(&self) -> usize {
        8 + 8 + 4 + self.nonces.encode_size()
    }
}

impl Read for CapacityProof {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let exact = (RangeCfg::new(CAPACITY_SOLUTIONS..=CAPACITY_SOLUTIONS), ());
        Ok(Self {
            round: u64::read(buf)?,
            offer: u64::read(buf)?,
            slots: u32::read(buf)?,
            nonces: Vec::<u64>::read_cfg(buf, &exact)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    fn challenge(slots: u32) -> CapacityChallenge {
        CapacityChallenge {
            seed: [7; 32],
            round: 3,
            offer: 11,
            slots,
            hashes_per_slot: 1_024,
        }
    }

    #[test]
    fn a_search_finds_a_proof_that_checks_and_binds_its_round_offer_and_slots() {
        let c = challenge(2);
        let nonces = c.solve();
        assert!(c.check(&nonces));
        for other in [
            CapacityChallenge { round: 4, ..c },
            CapacityChallenge { offer: 12, ..c },
            CapacityChallenge { slots: 1, ..c },
            CapacityChallenge { seed: [8; 32], ..c },
        ] {
            assert!(!other.check(&nonces), "{other:?} accepted another's proof");
        }
    }

    #[test]
    fn a_proof_with_a_repeated_nonce_or_too_few_does_not_check() {
        let c = challenge(1);
        let mut nonces = c.solve();
        assert!(!c.check(&nonces[1..]));
        nonces[1] = nonces[0];
        assert!(!c.check(&nonces));
    }

    #[test]
    fn the_work_a_proof_takes_grows_with_the_slots_it_claims() {
        // One solution in 64 hashes for one slot of 1,024 hashes, one in 256 for four.
        assert_eq!(challenge(1).target(), u64::MAX / 64);
        assert_eq!(challenge(4).target(), u64::MAX / 256);
        // Zero hashes per slot cannot make the target overflow.
        let free = CapacityChallenge {
            hashes_per_slot: 0,
            ..challenge(1)
        };
        assert_eq!(free.target(), u64::MAX);
    }

    /// Hashes tried until a whole proof is found, from nonce 0.
    fn hashes_to_solve(c: &CapacityChallenge) -> u64 {
        let mut last = 0;
        let mut count = 0;
        c.search(
            0,
            1,
            &mut |n| {
                last = n;
                count += 1;
                count < CAPACITY_SOLUTIONS
            },
            &|| false,
        );
        last + 1
    }

    #[test]
    fn proving_eight_slots_takes_about_eight_times_the_hashes_of_one() {
        // Summed over 32 seeds the spread of each count is about 4%: the ratio of the sums
        // lands well within 6.5 to 9.5 however the seeds fall.
        let (mut one, mut eight) = (0, 0);
        for seed in 0..32u8 {
            let c = CapacityChallenge {
                seed: [seed; 32],
                ..challenge(1)
            };
            one += hashes_to_solve(&c);
            eight += hashes_to_solve(&CapacityChallenge { slots: 8, ..c });
        }
        let expected = 32 * 1_024;
        assert!(
            (expected * 8 / 10..expected * 12 / 10).contains(&one),
            "{one}"
        );
        let ratio = eight as f64 / one as f64;
        assert!((6.5..9.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn threads_searching_apart_share_one_proof_without_repeating_a_nonce() {
        let c = challenge(4);
        let found = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for start in 0..3 {
                let (c, found) = (&c, &found);
                scope.spawn(move || {
                    c.search(
                        start,
                        3,
                        &mut |n| {
                            let mut all = found.lock().unwrap();
                            if all.len() < CAPACITY_SOLUTIONS {
                                all.push(n);
                            }
                            all.len() < CAPACITY_SOLUTIONS
                        },
                        &|| found.lock().unwrap().len() >= CAPACITY_SOLUTIONS,
                    )
                });
            }
        });
        assert!(c.check(&found.into_inner().unwrap()));
    }

    #[test]
    fn a_proof_decodes_only_with_exactly_its_solutions() {
        let c = challenge(1);
        let proof = CapacityProof {
            round: 3,
            offer: 11,
            slots: 1,
            nonces: c.solve(),
        };
        let bytes = proof.encode();
        assert_eq!(bytes.len(), proof.encode_size());
        assert_eq!(CapacityProof::decode(bytes).unwrap(), proof);
        let short = CapacityProof {
            nonces: proof.nonces[1..].to_vec(),
            ..proof
        };
        assert!(CapacityProof::decode(short.encode()).is_err());
    }
}
