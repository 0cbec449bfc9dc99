//! Slashing of equivocation.
//!
//! A fault the evidence module records for the first time is reported here
//! ([`Staking::report`]): the offender's account is found by its consensus key, jailed at once
//! (so the next election leaves it out), and an [`Offence`] waits `slash_deferral_secs` of
//! block time. Then the offender's own stake and its nominators' backing, as the exposure of
//! the fault's epoch says, each lose the fraction `max(floor, min((3k/n)^2, 1))`, where `n`
//! is the size of that epoch's committee and `k` the distinct offenders reported within
//! `evidence_window_secs` of this one: one lone fault costs little, a third of the committee
//! faulting together loses everything. Unbonding chunks are still locked, so still slashable
//! (unbonding is longer than window plus deferral). What is slashed goes to
//! [`Pot::Insurance`].

use super::{
    EpochRecord, Exposure, MAX_OFFENCES, Offence, Offences, Owner, SlashRecord, Staking,
    keys::{
        committee_key, consensus_key_key, epoch_key, exposure_key, offence_exposure_key,
        offences_key,
    },
    put_staker,
    rewards::{bps_of, jail, mul_div},
    staker,
};
use crate::{
    modules::{
        bank::{self, Pot},
        evidence::Evidence,
        staking::Committee,
    },
    state::{Fault, Halt, StateCache, load, remove, store},
};
use exo_types::{Address, Amount};

fn add_secs(a: u64, b: u64) -> Result<u64, Fault> {
    a.checked_add(b).ok_or(Fault::Overflow("block time"))
}

impl Staking<'_> {
    fn now_secs(&self) -> u64 {
        self.env.time_ms / 1_000
    }

    fn jail_until(&self) -> Result<u64, Fault> {
        self.env
            .height
            .checked_add(self.params.jail_blocks)
            .ok_or(Fault::Overflow("jail"))
    }

    /// Takes note of a newly recorded fault. Ignored: an offender that is no registered
    /// validator, a fault whose epoch ended more than the evidence window ago, and an
    /// offender already held (it is slashed once per window, for the first fault reported).
    pub fn report(&self, cache: &mut StateCache, evidence: &Evidence) -> Result<(), Halt> {
        let Some(Owner(validator)) = load(cache, &consensus_key_key(&evidence.offender))? else {
            return Ok(());
        };
        let now = self.now_secs();
        if let Some(r) = load::<EpochRecord>(cache, &epoch_key(evidence.epoch))?
            && r.ended_ms > 0
            && add_secs(r.ended_ms / 1_000, self.params.evidence_window_secs)? < now
        {
            return Ok(());
        }
        let mut offences: Offences = load(cache, &offences_key())?.unwrap_or_default();
        if offences.0.len() >= MAX_OFFENCES as usize
            || offences.0.iter().any(|o| o.validator == validator)
        {
            return Ok(());
        }
        if let Some(e) = load::<Exposure>(cache, &exposure_key(evidence.epoch, &validator))? {
            store(cache, offence_exposure_key(&validator), &e)?;
        }
        offences.0.push(Offence {
            validator: validator.clone(),
            epoch: evidence.epoch,
            reported_secs: now,
            due_secs: add_secs(now, self.params.slash_deferral_secs)?,
            applied: false,
        });
        store(cache, offences_key(), &offences)?;
        jail(cache, &validator, self.jail_until()?, true)?;
        self.drop_from_next_committee(cache, &validator)
    }

    /// Takes `offender` out of the next epoch's committee, which was elected an epoch ahead
    /// and so before the fault: jailed, it would otherwise keep that seat, and the rewards
    /// that go with it, for a whole epoch. Nobody joins in its place (a member elected now
    /// would have no time to catch up), and a committee of one keeps its member. The running
    /// epoch's committee cannot change under its engine: the offender keeps voting there, as
    /// any faulty member of a committee may, and its votes count among the faults the
    /// committee tolerates.
    fn drop_from_next_committee(
        &self,
        cache: &mut StateCache,
        offender: &Address,
    ) -> Result<(), Halt> {
        let next = self.env.height / self.epoch_length + 1;
        let key = committee_key(next);
        let Some(mut committee) = load::<Committee>(cache, &key)? else {
            return Ok(());
        };
        let before = committee.members.len();
        committee.members.retain(|m| m.validator != *offender);
        if committee.members.len() == before || committee.members.is_empty() {
            return Ok(());
        }
        Ok(store(cache, key, &committee)?)
    }

    /// Applies the slashes that are due and forgets offences no later slash can count.
    pub(super) fn apply_due_slashes(&self, cache: &mut StateCache) -> Result<(), Halt> {
        let Some(mut offences) = load::<Offences>(cache, &offences_key())? else {
            return Ok(());
        };
        let now = self.now_secs();
        let window = self.params.evidence_window_secs;
        for i in 0..offences.0.len() {
            let Some(o) = offences
                .0
                .get(i)
                .filter(|o| !o.applied && o.due_secs <= now)
            else {
                continue;
            };
            let o = o.clone();
            // Distinct offenders: the list holds one offence per validator.
            let k = offences
                .0
                .iter()
                .filter(|other| other.reported_secs.abs_diff(o.reported_secs) <= window)
                .count();
            let n = load::<Committee>(cache, &committee_key(o.epoch))?
                .map_or(self.params.committee_size as usize, |c| c.members.len());
            self.slash(cache, &o, k as u64, n.max(1) as u64)?;
            if let Some(o) = offences.0.get_mut(i) {
                o.applied = true;
            }
        }
        // An offence counts towards any other reported within the window after it, which
        // applies at most the deferral later.
        let span = add_secs(window, self.params.slash_deferral_secs)?;
        let mut kept = Vec::with_capacity(offences.0.len());
        for o in offences.0 {
            if !o.applied || add_secs(o.reported_secs, span)? >= now {
                kept.push(o);
            }
        }
        if kept.is_empty() {
            remove(cache, offences_key());
            Ok(())
        } else {
            Ok(store(cache, offences_key(), &Offences(kept))?)
        }
    }

    /// What `backing` loses with `k` offenders in a committee of `n`.
    fn slashed_part(&self, backing: Amount, k: u64, n: u64) -> Result<Amount, Fault> {
        let scaled = if k.checked_mul(3).is_none_or(|three_k| three_k >= n) {
            backing
        } else {
            let (k, n) = (u128::from(k), u128::from(n));
            mul_div(backing, 9 * k * k, n * n)?
        };
        Ok(scaled.max(bps_of(backing, self.params.slash_floor_bps)?))
    }

    /// Slashes an offender and its nominators, records it in the running epoch's record, and
    /// jails the offender again (it may have unjailed since the report).
    fn slash(&self, cache: &mut StateCache, o: &Offence, k: u64, n: u64) -> Result<(), Halt> {
        let exposure = match load::<Exposure>(cache, &offence_exposure_key(&o.validator))? {
            Some(e) => e,
            // No exposure of the fault's epoch (a genesis committee): its own bond answers.
            None => Exposure {
                own: staker(cache, &o.validator)?.map_or(Amount::ZERO, |s| s.active),
                others: Vec::new(),
            },
        };
        remove(cache, offence_exposure_key(&o.validator));
        let mut total = take_stake(cache, &o.validator, self.slashed_part(exposure.own, k, n)?)?;
        for (nominator, backing) in &exposure.others {
            let taken = take_stake(cache, nominator, self.slashed_part(*backing, k, n)?)?;
            total = total.checked_add(taken).ok_or(Fault::Overflow("slash"))?;
        }
        jail(cache, &o.validator, self.jail_until()?, true)?;
        let epoch = self.env.height / self.epoch_length;
        let mut record: EpochRecord = load(cache, &epoch_key(epoch))?.unwrap_or_default();
        if record.slashes.len() < MAX_OFFENCES as usize {
            record.slashes.push(SlashRecord {
                validator: o.validator.clone(),
                offenders: u32::try_from(k).unwrap_or(u32::MAX),
                committee: u32::try_from(n).unwrap_or(u32::MAX),
                amount: total,
            });
        }
        Ok(store(cache, epoch_key(epoch), &record)?)
    }
}

/// Moves up to `amount` of `who`'s stake into the insurance pool: from its active bond first,
/// then from its unbonding chunks, the latest first (those most likely unbonded after the
/// fault). Returns what it took.
fn take_stake(cache: &mut StateCache, who: &Address, amount: Amount) -> Result<Amount, Halt> {
    let Some(mut s) = staker(cache, who)? else {
        return Ok(Amount::ZERO);
    };
    let locked = s.locked().ok_or(Fault::Overflow("stake"))?;
    let take = amount.min(locked);
    if take == Amount::ZERO {
        return Ok(take);
    }
    let mut left = take;
    for held in
        std::iter::once(&mut s.active).chain(s.unbonding.iter_mut().rev().map(|c| &mut c.amount))
    {
        let part = left.min(*held);
        *held = held.checked_sub(part).ok_or(Fault::Overflow("slash"))?;
        left = left.checked_sub(part).ok_or(Fault::Overflow("slash"))?;
    }
    s.unbonding.retain(|c| c.amount > Amount::ZERO);
    bank::move_between(cache, Pot::StakeBond(s.id), Pot::Insurance, take)?;
    put_staker(cache, who, &s)?;
    Ok(take)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{exec::BlockEnv, modules::staking::StakingParams};
    use commonware_cryptography::Signer;
    use exo_types::PrivateKey;

    fn part(backing: u128, k: u64, n: u64, floor_bps: u32) -> u128 {
        let params = StakingParams {
            slash_floor_bps: floor_bps,
            ..StakingParams::default()
        };
        let env = BlockEnv {
            height: 1,
            time_ms: 1_000,
            proposer: PrivateKey::from_seed(0).public_key(),
            skipped_leaders: Vec::new(),
            parent_voters: Vec::new(),
            seed: [0; 32],
        };
        let staking = Staking {
            params: &params,
            env: &env,
            epoch_length: 10,
        };
        staking
            .slashed_part(Amount(backing), k, n)
            .expect("no overflow")
            .0
    }

    #[test]
    fn the_slashed_fraction_is_three_k_over_n_squared_above_its_floor_and_at_most_everything() {
        // One offender among 300: (3/300)^2 = 0.01%, under the 1% floor.
        assert_eq!(part(1_000_000, 1, 300, 100), 10_000);
        assert_eq!(part(1_000_000, 1, 300, 0), 100);
        // Fifty among 300: (150/300)^2 = 25%.
        assert_eq!(part(1_000_000, 50, 300, 100), 250_000);
        // A third of the committee or more: everything.
        assert_eq!(part(1_000_000, 100, 300, 100), 1_000_000);
        assert_eq!(part(1_000_000, 7, 4, 0), 1_000_000);
        // Rounded down to the base unit: 7 * 9/16 = 3.9375.
        assert_eq!(part(7, 1, 4, 0), 3);
        // The largest backing does not overflow.
        assert_eq!(
            part(u128::MAX, 1, 256, 0),
            u128::MAX / 65_536 * 9 + (u128::MAX % 65_536) * 9 / 65_536
        );
    }
}
