//! Settlement: paying an accepted unit out of its job's escrow, failing a unit, slashing,
//! and giving a finished replica's slot back to its offer.

use super::{
    Market,
    keys::{excuses_key, offer_key, provider_key, work_item_key, work_key, work_slot_key},
    proof::is_report,
    records::{
        Excuses, Job, MAX_PAID_PROVIDERS, OfferRecord, Provider, Replica, ReplicaStatus, Unit,
        UnitState, WorkCount, WorkItem, WorkSlot,
    },
    reputation::{REPUTATION_NO_SHOW, REPUTATION_WRONG},
};
use crate::{
    modules::{
        bank::{self, Pot},
        staking,
    },
    state::{Fault, Halt, StateCache, expect, load, remove, store},
};
use exo_market::FUEL_PER_UNIT;
use exo_types::{Address, Amount, Hash32};

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
pub(super) const WORK_PREFETCH: u32 = 32;

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
        let escrow = Pot::JobEscrow(job.id);
        bank::expect_pot(cache, escrow, job.accounts.held)?;
        // The providers whose revealed result is the accepted one: each confirms the others.
        let mut agreeing: Vec<(u64, Address)> = Vec::new();
        for replica in &unit.replicas {
            if replica.status == ReplicaStatus::Revealed && replica.reveal == Some(result) {
                agreeing.push((
                    replica.provider,
                    Self::provider(cache, replica.provider)?.owner,
                ));
            }
        }
        for replica in unit.replicas.iter_mut() {
            if !replica.status.is_open() {
                continue;
            }
            let mut provider = Self::provider(cache, replica.provider)?;
            if replica.reveal == Some(result) {
                let paid = self.pay(cache, job, &provider, replica.price_per_unit, fuel)?;
                replica.status = ReplicaStatus::Agreed;
                // Only a result another replica confirmed builds a record: an unchecked
                // result, accepted on one provider's word, proves nothing about it.
                let confirmers: Vec<(u64, Address)> = agreeing
                    .iter()
                    .filter(|(id, _)| *id != provider.id)
                    .cloned()
                    .collect();
                if !confirmers.is_empty() {
                    let valid = provider.valid;
                    self.credit_confirmation(
                        cache,
                        &job.requester,
                        &mut provider,
                        paid,
                        &confirmers,
                    )?;
                    // Work that earned reputation (paid, confirmed by an independent replica,
                    // not self-dealt) earns the providers' share of the epoch's rewards too.
                    if provider.valid > valid {
                        staking::credit_units(
                            cache,
                            self.epoch,
                            &provider.owner,
                            staking::Credit::Work,
                        )?;
                    }
                }
            } else if replica.status == ReplicaStatus::Revealed && is_report(replica.reveal) {
                // Others finished what it reported it could not: not paid, and excused only
                // within its provider's budget.
                replica.status = if self.excuse(cache, &mut provider)? {
                    ReplicaStatus::Excused
                } else {
                    ReplicaStatus::NoShow
                };
            } else if replica.status == ReplicaStatus::Revealed {
                replica.status = ReplicaStatus::Disagreed;
                self.convict(cache, &mut provider)?;
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
        job.accounts.royalties = add(job.accounts.royalties, royalty)?;
        job.accounts.held = Self::spend(job, royalty)?;
        unit.state = UnitState::Accepted;
        unit.accepted = Some((result.0, fuel));
        job.accepted += 1;
        Self::stop_running(cache, job, unit)
    }

    /// Pays `provider` for `fuel` at `price_per_unit` out of the job's escrow, and the
    /// protocol fee on that into the epoch's rewards, within what the escrow still holds:
    /// returns what the provider was paid.
    fn pay(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        provider: &Provider,
        price_per_unit: Amount,
        fuel: u64,
    ) -> Result<Amount, Halt> {
        let escrow = Pot::JobEscrow(job.id);
        // The escrow covers the worst case, so the caps never bite for an honest job; they
        // keep a payment from ever exceeding the pot.
        let pay = fuel_cost(fuel, price_per_unit)
            .unwrap_or(Amount::ZERO)
            .min(job.accounts.held);
        let fee = bps(pay, self.params.protocol_fee_bps).min(Self::spend(job, pay)?);
        bank::release(cache, escrow, &provider.owner, pay)?;
        bank::move_between(cache, escrow, Pot::Rewards, fee)?;
        job.accounts.fees = add(job.accounts.fees, fee)?;
        let paid = &mut job.accounts.paid;
        match paid.iter().position(|(p, _)| *p == provider.id) {
            Some(i) => paid[i].1 = add(paid[i].1, pay)?,
            None if paid.len() < MAX_PAID_PROVIDERS => paid.push((provider.id, pay)),
            // Beyond the listed providers the payment still happens; only the per-provider
            // breakdown is capped.
            None => {}
        }
        let spent = add(pay, fee)?;
        job.accounts.held = Self::spend(job, spent)?;
        Ok(pay)
    }

    /// What the job's escrow holds after spending `amount`: the bank refuses to pay more than
    /// the pot holds, so more is an invariant broken.
    fn spend(job: &Job, amount: Amount) -> Result<Amount, Fault> {
        job.accounts
            .held
            .checked_sub(amount)
            .ok_or_else(|| Fault::Invariant(format!("job {} spent more than its escrow", job.id)))
    }

    /// Fails a unit that its replicas agree cannot be finished (at least `max(trust, 2)` "could
    /// not finish" reports): the module or its job caused it, so the requester pays each
    /// reporter for the fuel burnt, at the reporter's price, and no provider loses bond or
    /// reputation. The fuel is the least any report claims (within the fuel limit): a reporter
    /// cannot raise the bill above what the most frugal replica says it took to get there.
    /// Replicas with a result that nobody confirmed are released unpaid and unpunished.
    pub(super) fn fail_unfinished(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        bank::expect_pot(cache, Pot::JobEscrow(job.id), job.accounts.held)?;
        let fuel = unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed && is_report(r.reveal))
            .filter_map(|r| r.reveal.map(|(_, f)| f))
            .min()
            .unwrap_or(0)
            .min(job.fuel_limit);
        self.fail_paying_reports(cache, job, unit, Some(fuel))
    }

    /// Spends one excuse of `provider`'s budget for the current window, if one is left: a
    /// contradicted "could not finish" report. Past the budget the report counts as a no-show
    /// (bond and reputation, as for a missed deadline) and this answers `false`.
    fn excuse(&mut self, cache: &mut StateCache, provider: &mut Provider) -> Result<bool, Halt> {
        // Parameters keep the window at least a few seconds long.
        let window = self.now_secs() / self.params.excuse_window_secs.max(1);
        let key = excuses_key(provider.id);
        let mut excuses = load::<Excuses>(cache, &key)?.unwrap_or_default();
        if excuses.window != window {
            excuses = Excuses { window, used: 0 };
        }
        if excuses.used >= self.params.max_excuses_per_window {
            self.punish(
                cache,
                provider,
                self.params.slash_no_show_bps,
                REPUTATION_NO_SHOW,
            )?;
            provider.missed += 1;
            return Ok(false);
        }
        excuses.used = excuses
            .used
            .checked_add(1)
            .ok_or(Fault::Overflow("provider excuses"))?;
        store(cache, key, &excuses)?;
        Ok(true)
    }

    pub(super) fn fail(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
    ) -> Result<(), Halt> {
        self.fail_paying_reports(cache, job, unit, None)
    }

    /// Fails a unit and releases its revealed replicas: each report is paid for `reports_fuel`
    /// if set ([`Self::fail_unfinished`]), everything else goes unpaid and unpunished.
    fn fail_paying_reports(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
        reports_fuel: Option<u64>,
    ) -> Result<(), Halt> {
        for replica in unit.replicas.iter_mut() {
            if replica.status != ReplicaStatus::Revealed {
                continue;
            }
            let mut provider = Self::provider(cache, replica.provider)?;
            match reports_fuel {
                Some(fuel) if is_report(replica.reveal) => {
                    self.pay(cache, job, &provider, replica.price_per_unit, fuel)?;
                    replica.status = ReplicaStatus::Unfinished;
                }
                // Nobody agreed with it either: no pay, no punishment without a verdict.
                _ => replica.status = ReplicaStatus::Disagreed,
            }
            // Its slot came back when it revealed.
            provider.active = provider.active.saturating_sub(1);
            store(cache, provider_key(provider.id), &provider)?;
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

    /// Punishes `provider` for a wrong result (or one it committed and withheld): the wrong
    /// result's share of its bond and reputation, and its record of confirmed results, so that
    /// trusted weight needs `trusted_min_valid` new confirmations whatever reputation is left
    /// (a catch at the top of the scale would otherwise leave it trusted, holding units alone).
    pub(super) fn convict(
        &mut self,
        cache: &mut StateCache,
        provider: &mut Provider,
    ) -> Result<(), Halt> {
        self.punish(
            cache,
            provider,
            self.params.slash_wrong_bps,
            REPUTATION_WRONG,
        )?;
        provider.valid = 0;
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
        self.refresh_reputation(provider);
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

    /// Takes a replica that revealed or ended off its provider's work set and, if it never
    /// committed, gives its slot back to its offer (a committed replica gave it back when it
    /// committed: [`Self::return_offer_slot`]). Called once per replica, when it leaves the
    /// work set ([`ReplicaStatus::holds_slot`]).
    pub(super) fn release_slot(
        &mut self,
        cache: &mut StateCache,
        job: u64,
        unit: u32,
        replica: &Replica,
    ) -> Result<(), Halt> {
        Self::set_work(cache, replica.provider, (job, unit, replica.index), false)?;
        if replica.commitment.is_none() {
            self.return_offer_slot(cache, replica.offer)?;
        }
        Ok(())
    }

    /// Gives one slot back to `offer`, if it is still on the book. A replica's computing is
    /// done once it commits: holding the slot until its reveal would let units whose reveals
    /// wait for an audit replica hold every slot that audit replica could take, and the market
    /// would stall.
    pub(super) fn return_offer_slot(
        &mut self,
        cache: &mut StateCache,
        offer: u64,
    ) -> Result<(), Halt> {
        let key = offer_key(offer);
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
