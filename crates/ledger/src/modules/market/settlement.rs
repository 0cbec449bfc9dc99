//! Settlement: paying an accepted unit out of its job's escrow, failing a unit, slashing,
//! and giving a finished replica's slot back to its offer.

use super::{
    Market,
    keys::{offer_key, provider_key, work_item_key, work_key, work_slot_key},
    records::{
        Job, MAX_PAID_PROVIDERS, OfferRecord, Provider, Replica, ReplicaStatus, Unit, UnitState,
        WorkCount, WorkItem, WorkSlot,
    },
    reputation::{REPUTATION_MAX, REPUTATION_VALID, REPUTATION_WRONG},
};
use crate::{
    modules::bank::{self, Pot},
    state::{Fault, Halt, StateCache, expect, load, remove, store},
};
use exo_market::FUEL_PER_UNIT;
use exo_types::{Amount, Hash32};

fn add(a: Amount, b: Amount) -> Result<Amount, Fault> {
    a.checked_add(b).ok_or(Fault::Overflow("job accounts"))
}

/// The base units `fuel` costs at `price_per_unit` (per 10^9 fuel), rounded up.
pub fn fuel_cost(fuel: u64, price_per_unit: Amount) -> Option<Amount> {
    let product = price_per_unit.0.checked_mul(u128::from(fuel))?;
    let cu = u128::from(FUEL_PER_UNIT);
    Some(Amount(product.div_ceil(cu)))
}

pub(super) fn bps(amount: Amount, bps: u32) -> Amount {
    // amount < 2^128 / 10^4 is not guaranteed; saturate rather than overflow.
    Amount(
        amount
            .0
            .checked_mul(u128::from(bps))
            .map_or(amount.0 / 10_000 * u128::from(bps), |v| v / 10_000),
    )
}

/// The worst-case escrow of a job: every unit at `max_replicas` replicas paid the full fuel
/// limit at the maximum price, plus the protocol fee on that, plus one royalty per unit.
pub fn worst_case_escrow(
    units: u32,
    max_replicas: u32,
    fuel_limit: u64,
    max_price: Amount,
    royalty: Amount,
    fee_bps: u32,
) -> Option<Amount> {
    let pay = fuel_cost(fuel_limit, max_price)?;
    let pay_and_fee = pay.checked_add(bps(pay, fee_bps).checked_add(Amount(1))?)?;
    let per_unit = pay_and_fee
        .checked_mul(u128::from(max_replicas))?
        .checked_add(fuel_cost(fuel_limit, royalty)?)?;
    per_unit.checked_mul(u128::from(units))
}

/// Positions of a work set loaded at once when a removal needs the last one.
const WORK_PREFETCH: u32 = 32;

impl Market<'_> {
    pub(super) fn accept(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
        result: (Hash32, u64),
    ) -> Result<(), Halt> {
        let (_, fuel) = result;
        // Never bill past the fuel limit, whatever a replica claims.
        let fuel = fuel.min(job.fuel_limit);
        let developer = job.developer.clone();
        let royalty = fuel_cost(fuel, job.royalty_per_unit).unwrap_or(Amount::ZERO);
        let mut spent = Amount::ZERO;
        let escrow = Pot::JobEscrow(job.id);
        bank::expect_pot(cache, escrow, job.accounts.held)?;
        let confirmed = unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed && r.reveal == Some(result))
            .count()
            >= 2;
        for replica in unit.replicas.iter_mut() {
            if !replica.status.is_open() {
                continue;
            }
            let mut provider = Self::provider(cache, replica.provider)?;
            if replica.reveal == Some(result) {
                let pay = fuel_cost(fuel, replica.price_per_unit).unwrap_or(Amount::ZERO);
                let fee = bps(pay, self.params.protocol_fee_bps);
                bank::release(cache, escrow, &provider.owner, pay)?;
                bank::release(cache, escrow, &self.env.proposer, fee)?;
                spent = add(add(spent, pay)?, fee)?;
                job.accounts.fees = add(job.accounts.fees, fee)?;
                let paid = &mut job.accounts.paid;
                match paid.iter().position(|(p, _)| *p == provider.id) {
                    Some(i) => paid[i].1 = add(paid[i].1, pay)?,
                    None if paid.len() < MAX_PAID_PROVIDERS => paid.push((provider.id, pay)),
                    // Beyond the listed providers the payment still happens; only the
                    // per-provider breakdown is capped.
                    None => {}
                }
                replica.status = ReplicaStatus::Agreed;
                // Only a result another replica confirmed builds a record: an unchecked
                // result, accepted on one provider's word, proves nothing about it.
                if confirmed {
                    provider.valid += 1;
                    provider.reputation =
                        (provider.reputation + REPUTATION_VALID).min(REPUTATION_MAX);
                }
            } else if replica.status == ReplicaStatus::Revealed {
                replica.status = ReplicaStatus::Disagreed;
                self.punish(
                    cache,
                    &mut provider,
                    self.params.slash_wrong_bps,
                    REPUTATION_WRONG,
                )?;
                provider.invalid += 1;
            } else {
                // Still running when the verdict came: released, unpaid, unpunished.
                replica.status = ReplicaStatus::Cancelled;
                self.release_slot(cache, unit.job, unit.unit, replica)?;
            }
            provider.active = provider.active.saturating_sub(1);
            store(cache, provider_key(provider.id), &provider)?;
        }
        bank::release(cache, escrow, &developer, royalty)?;
        spent = add(spent, royalty)?;
        job.accounts.royalties = add(job.accounts.royalties, royalty)?;
        // The escrow covers the worst case, so it always covers what was spent; the bank
        // would have refused to pay more than the pot holds.
        job.accounts.held = job.accounts.held.checked_sub(spent).ok_or_else(|| {
            Fault::Invariant(format!("job {} spent more than its escrow", job.id))
        })?;
        unit.state = UnitState::Accepted;
        unit.accepted = Some((result.0, fuel));
        job.accepted += 1;
        Self::stop_running(cache, job, unit)
    }

    pub(super) fn fail(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        for replica in unit.replicas.iter_mut() {
            if replica.status == ReplicaStatus::Revealed {
                // Nobody agreed with it either: no pay, no punishment without a verdict. Its
                // slot came back when it revealed.
                replica.status = ReplicaStatus::Disagreed;
                let mut provider = Self::provider(cache, replica.provider)?;
                provider.active = provider.active.saturating_sub(1);
                store(cache, provider_key(provider.id), &provider)?;
            }
        }
        unit.state = UnitState::Failed;
        job.failed += 1;
        Self::stop_running(cache, job, unit)
    }

    /// Takes a unit that got its verdict off its job's running units, and off its waiting
    /// units if a replica of it was still sought (only then is the waiting list read).
    fn stop_running(cache: &mut StateCache, job: &mut Job, unit: &mut Unit) -> Result<(), Halt> {
        job.running = job.running.checked_sub(1).ok_or_else(|| {
            Fault::Invariant(format!(
                "job {} settles unit {} with no unit running",
                job.id, unit.unit
            ))
        })?;
        if unit.sought {
            let mut waiting = Self::waiting(cache, job)?;
            waiting.retain(|w| w.unit != unit.unit);
            Self::store_waiting(cache, job, waiting)?;
            unit.sought = false;
        }
        Ok(())
    }

    /// Burns part of a provider's bond and lowers its reputation. Burnt tokens leave the supply.
    pub(super) fn punish(
        &mut self,
        cache: &mut StateCache,
        provider: &mut Provider,
        slash_bps: u32,
        reputation: u32,
    ) -> Result<(), Halt> {
        let bond = Pot::ProviderBond(provider.id);
        bank::expect_pot(cache, bond, provider.bond)?;
        let slash = bps(provider.bond, slash_bps);
        bank::burn(cache, bond, slash)?;
        provider.bond = provider
            .bond
            .checked_sub(slash)
            .ok_or(Fault::Overflow("provider bond"))?;
        provider.reputation = provider.reputation.saturating_sub(reputation);
        Ok(())
    }

    /// Adds or removes an open replica in its provider's work set (see
    /// [`super::records::WorkCount`]): a fixed number of records read and written, whatever
    /// the provider holds.
    pub(super) fn set_work(
        cache: &mut StateCache,
        provider: u64,
        item: (u64, u32, u32),
        open: bool,
    ) -> Result<(), Halt> {
        let slot_key = work_slot_key(provider, item);
        let count_key = work_key(provider);
        cache.require([slot_key, count_key])?;
        let slot = load::<WorkSlot>(cache, &slot_key)?;
        let count = load::<WorkCount>(cache, &count_key)?.unwrap_or_default().0;
        if open {
            if slot.is_some() {
                return Ok(());
            }
            let next = count
                .checked_add(1)
                .ok_or(Fault::Overflow("provider work count"))?;
            store(cache, work_item_key(provider, count), &WorkItem(item))?;
            store(cache, slot_key, &WorkSlot(count))?;
            store(cache, count_key, &WorkCount(next))?;
            return Ok(());
        }
        let Some(WorkSlot(at)) = slot else {
            return Ok(());
        };
        let last = count
            .checked_sub(1)
            .filter(|last| at <= *last)
            .ok_or_else(|| {
                Fault::Invariant(format!(
                    "provider {provider} has a replica at position {at} of a work set of {count}"
                ))
            })?;
        if at != last {
            // The last replica moves into the freed position. A provider's next removals in
            // this block read the positions just below: load them in one round rather than
            // one retry each.
            cache.require_ahead(
                work_item_key(provider, last),
                (last.saturating_sub(WORK_PREFETCH - 1)..last).map(|p| work_item_key(provider, p)),
            )?;
            let moved: WorkItem = expect(cache, &work_item_key(provider, last))?;
            store(cache, work_item_key(provider, at), &moved)?;
            store(cache, work_slot_key(provider, moved.0), &WorkSlot(at))?;
        }
        remove(cache, work_item_key(provider, last));
        remove(cache, slot_key);
        if last == 0 {
            remove(cache, count_key);
        } else {
            store(cache, count_key, &WorkCount(last))?;
        }
        Ok(())
    }

    /// Gives the slot of a replica that revealed or ended back to its offer, if the offer is
    /// still on the book, and takes the replica off its provider's work set. Called once per
    /// replica, when it stops [holding a slot](ReplicaStatus::holds_slot).
    pub(super) fn release_slot(
        &mut self,
        cache: &mut StateCache,
        job: u64,
        unit: u32,
        replica: &Replica,
    ) -> Result<(), Halt> {
        Self::set_work(cache, replica.provider, (job, unit, replica.index), false)?;
        let key = offer_key(replica.offer);
        if let Some(mut record) = load::<OfferRecord>(cache, &key)? {
            record.offer.slots = record
                .offer
                .slots
                .saturating_add(1)
                .min(exo_market::MAX_SLOTS_PER_OFFER);
            store(cache, key, &record)?;
        }
        Ok(())
    }
}
