//! Proven capacity: rounds that challenge every offer's free slots at once, and the proofs
//! that earn them a share of the epoch's provider rewards (ARCHITECTURE.md, "Proven
//! capacity").

use super::{
    Market, Refusal, Verdict,
    keys::{capacity_proven_key, capacity_round_key, offer_key, owner_key, provider_key},
    records::{CapacityRound, OfferRecord, ProvenRound},
    refuse,
    reputation::is_matchable,
};
use crate::{
    modules::staking,
    state::{Fault, Halt, StateCache, load, store},
};
use exo_types::{Address, CapacityChallenge, CapacityProof};

impl Market<'_> {
    /// Opens a capacity round at this block if none is open and the block's seed draws one
    /// (`capacity_round_ppm`): nobody knows before the parent block is final whether a round
    /// opens, nor its seed, so no machine can be borrowed for it in advance.
    pub(super) fn maybe_open_capacity_round(&mut self, cache: &mut StateCache) -> Result<(), Halt> {
        if self.params.capacity_round_ppm == 0 {
            return Ok(());
        }
        let last: CapacityRound = load(cache, &capacity_round_key())?.unwrap_or_default();
        if last.is_open(self.env.time_ms)
            || !self.seed_draw(b"capacity", &[], self.params.capacity_round_ppm)
        {
            return Ok(());
        }
        let window_ms = self.params.capacity_window_secs.saturating_mul(1_000);
        let round = CapacityRound {
            number: last
                .number
                .checked_add(1)
                .ok_or(Fault::Overflow("capacity round"))?,
            seed: self.env.seed,
            opened_ms: self.env.time_ms,
            closes_ms: self.env.time_ms.saturating_add(window_ms),
            hashes_per_slot: self.params.capacity_hashes_per_slot,
        };
        Ok(store(cache, capacity_round_key(), &round)?)
    }

    /// Takes a proof of an offer's free slots in the open round and credits its provider's
    /// owner `capacity_units_per_slot` reward units for each slot proven, up to the slots the
    /// offer has free now. One proof per offer and round; only offers posted before the
    /// round opened, priced at most `capacity_max_price`, of a provider the match would use.
    pub(super) fn prove_capacity(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        proof: &CapacityProof,
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, sender)? else {
            return refuse(Refusal::NotAProvider);
        };
        let round: CapacityRound = load(cache, &capacity_round_key())?.unwrap_or_default();
        if round.number != proof.round || !round.is_open(self.env.time_ms) {
            return refuse(Refusal::CapacityRoundNotOpen { round: proof.round });
        }
        let now = self.now_secs();
        let Some(record) = load::<OfferRecord>(cache, &offer_key(proof.offer))? else {
            return refuse(Refusal::UnknownOffer { offer: proof.offer });
        };
        let offer = record.offer;
        if offer.provider.0 != provider.id {
            return refuse(Refusal::NotYourOffer { offer: proof.offer });
        }
        if !offer.is_live(now) {
            return refuse(Refusal::UnknownOffer { offer: proof.offer });
        }
        // An offer posted in the round's own second could have been posted after it opened.
        if offer.posted_secs >= round.opened_ms / 1_000 {
            return refuse(Refusal::OfferAfterCapacityRound {
                offer: proof.offer,
                round: round.number,
            });
        }
        if offer.price_per_unit > self.params.capacity_max_price.0 {
            return refuse(Refusal::CapacityPriceTooHigh {
                offer: proof.offer,
                max: self.params.capacity_max_price,
            });
        }
        let proven: ProvenRound =
            load(cache, &capacity_proven_key(proof.offer))?.unwrap_or_default();
        if proven.0 == round.number {
            return refuse(Refusal::CapacityAlreadyProven {
                offer: proof.offer,
                round: round.number,
            });
        }
        // Slots the match would not sell earn nothing.
        let slots = if is_matchable(self.params, &provider, now) {
            proof.slots.min(offer.slots)
        } else {
            0
        };
        if slots == 0 {
            return refuse(Refusal::NoFreeSlots { offer: proof.offer });
        }
        let challenge = CapacityChallenge {
            seed: round.seed,
            round: round.number,
            offer: proof.offer,
            slots: proof.slots,
            hashes_per_slot: round.hashes_per_slot,
        };
        if !challenge.check(&proof.nonces) {
            return refuse(Refusal::InvalidCapacityProof { offer: proof.offer });
        }
        store(
            cache,
            capacity_proven_key(proof.offer),
            &ProvenRound(round.number),
        )?;
        let units = u64::from(slots) * self.params.capacity_units_per_slot;
        if units > 0 {
            staking::credit_units(
                cache,
                self.epoch,
                &provider.owner,
                staking::Credit::Capacity(units),
            )?;
        }
        Ok(Ok(()))
    }

    /// The keys [`Self::prove_capacity`] reads, loaded with the block's other reads.
    pub(super) fn capacity_reads(
        cache: &StateCache,
        sender: &Address,
        proof: &CapacityProof,
    ) -> Result<(), Halt> {
        cache.require([
            owner_key(sender),
            capacity_round_key(),
            offer_key(proof.offer),
            capacity_proven_key(proof.offer),
        ])?;
        if let Some(record) = load::<OfferRecord>(cache, &offer_key(proof.offer))? {
            cache.require([provider_key(record.offer.provider.0)])?;
        }
        Ok(())
    }
}
