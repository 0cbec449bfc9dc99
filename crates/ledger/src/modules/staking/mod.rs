//! Staking: validators bond a deposit, nominators back them, and once an epoch a balanced
//! election picks the committee of the epoch after next.
//!
//! Every bond sits in the bank, in one pot per staking account ([`Pot::StakeBond`]), which
//! holds exactly the account's active bond plus its unbonding chunks; this module only says
//! how much to lock or release. Every list that grows with use has a bound from
//! [`StakingParams`] and a refusal with a code when it is full: candidates, nominators,
//! nominators per validator, targets per nomination, unbonding chunks per account.
//!
//! The election ([`election`]) runs in the end of the last block of each epoch `e`, over the
//! bonds as they stand, and writes the committee of epoch `e + 2` with each member's backing
//! and each backer's share ([`Exposure`]): an elected validator has a whole epoch to connect.
//! Before it, the same block divides the epoch's rewards (`rewards.rs`: the fees and the
//! minted block reward, to the committee by points at once, to providers by accepted work over
//! the blocks that follow, a bounded number a block) and jails the members that were down;
//! equivocations are jailed when recorded and slashed into the insurance pool once their
//! deferral has passed (`slashing.rs`).
//!
//! This module must never verify signatures or read the chain's consensus state: it takes the
//! blocks' proposers, skipped leaders and parent voters, and the faults, as the chain verified
//! them.

pub mod election;
mod keys;
mod params;
mod records;
mod refusal;
mod rewards;
mod slashing;

pub use keys::{
    Table, certificates_key, committee_key, consensus_key_key, counters_key, epoch_key,
    exposure_key, nominators_key, offence_exposure_key, offences_key, payout_key, payout_queue_key,
    staker_key, tally_key, units_key, validator_key, validators_key, worker_key,
};
pub use params::{
    BPS, MAX_BALANCE_ROUNDS, MAX_COMMITTEE_BOUND, MAX_ELECTION_WORK, MAX_EPOCH_MINT,
    MAX_JAIL_BLOCKS, MAX_NOMINATORS_BOUND, MAX_NOMINATORS_PER_VALIDATOR_BOUND,
    MAX_UNBONDING_CHUNKS_BOUND, MAX_VALIDATORS_BOUND, StakingParams, StakingParamsError,
};
pub use records::{
    Addresses, Certificates, Chunk, Committee, Counters, EpochRecord, Exposure, MAX_OFFENCES,
    Member, MemberReward, Offence, Offences, Owner, PAYOUTS_PER_BLOCK, PayoutQueue, ProviderPayout,
    SlashRecord, Staker, Status, Tally, Units, Validator,
};
pub use refusal::Refusal;
pub use rewards::{Credit, PROPOSAL_POINTS, VOTE_POINTS, credit_units};

use crate::{
    exec::{BlockEnv, Rejection},
    modules::bank::{self, Pot},
    state::{Fault, Halt, StateCache, expect, load, remove, store},
};
use election::Ballot;
use exo_types::{Address, Amount};
use std::collections::BTreeMap;

/// Largest commission, in basis points.
pub const MAX_COMMISSION_BPS: u32 = 10_000;

/// A ballot of the election: a staker's bond over validator addresses.
type StakeBallot = Ballot<Address, Address>;

/// An action's verdict within staking.
type Verdict = Result<Result<(), Rejection>, Halt>;

fn refuse(refusal: Refusal) -> Verdict {
    Ok(Err(Rejection::Staking(refusal)))
}

/// Staking over one block's state.
pub(crate) struct Staking<'a> {
    pub params: &'a StakingParams,
    pub env: &'a BlockEnv,
    pub epoch_length: u64,
}

fn staker(cache: &StateCache, who: &Address) -> Result<Option<Staker>, Halt> {
    load(cache, &staker_key(who))
}

fn validator(cache: &StateCache, who: &Address) -> Result<Option<Validator>, Halt> {
    load(cache, &validator_key(who))
}

fn list(cache: &StateCache, key: crate::state::Key) -> Result<Addresses, Halt> {
    Ok(load(cache, &key)?.unwrap_or_default())
}

/// Inserts `who` into the sorted list under `key`.
fn list_insert(cache: &mut StateCache, key: crate::state::Key, who: &Address) -> Result<(), Halt> {
    let mut all = list(cache, key)?;
    if let Err(at) = all.0.binary_search(who) {
        all.0.insert(at, who.clone());
    }
    Ok(store(cache, key, &all)?)
}

fn list_remove(cache: &mut StateCache, key: crate::state::Key, who: &Address) -> Result<(), Halt> {
    let mut all = list(cache, key)?;
    if let Ok(at) = all.0.binary_search(who) {
        all.0.remove(at);
    }
    Ok(store(cache, key, &all)?)
}

/// A printable `host:port`-like text; its length is bounded by the action's decoder.
fn p2p_address_ok(address: &str) -> bool {
    !address.is_empty() && address.bytes().all(|b| b.is_ascii_graphic())
}

/// Writes a staker and checks its pot against it (the paired assertion of every bond).
fn put_staker(cache: &mut StateCache, who: &Address, s: &Staker) -> Result<(), Halt> {
    let locked = s.locked().ok_or(Fault::Overflow("stake"))?;
    bank::expect_pot(cache, Pot::StakeBond(s.id), locked)?;
    if locked == Amount::ZERO && s.targets.is_empty() && validator(cache, who)?.is_none() {
        remove(cache, staker_key(who));
        return Ok(());
    }
    Ok(store(cache, staker_key(who), s)?)
}

/// The sender's staker record, or a new one with a fresh id.
fn staker_or_new(cache: &mut StateCache, who: &Address) -> Result<Staker, Halt> {
    if let Some(s) = staker(cache, who)? {
        return Ok(s);
    }
    let mut counters: Counters = load(cache, &counters_key())?.unwrap_or_default();
    let id = counters.next_staker;
    counters.next_staker = id.checked_add(1).ok_or(Fault::Overflow("staker id"))?;
    store(cache, counters_key(), &counters)?;
    Ok(Staker {
        id,
        ..Staker::default()
    })
}

/// Locks `amount` from `who` into its bond; a refusal of the bank ends the action.
fn bond(
    cache: &mut StateCache,
    who: &Address,
    s: &mut Staker,
    amount: Amount,
) -> Result<Result<(), Rejection>, Halt> {
    if amount == Amount::ZERO {
        return Ok(Ok(()));
    }
    if let Err(refusal) = bank::lock(cache, who, Pot::StakeBond(s.id), amount)? {
        return Ok(Err(Rejection::Bank(refusal)));
    }
    s.active = s
        .active
        .checked_add(amount)
        .ok_or(Fault::Overflow("bond"))?;
    Ok(Ok(()))
}

/// Changes the nominator count of `target` by one.
fn count_nominator(cache: &mut StateCache, target: &Address, up: bool) -> Result<(), Halt> {
    let mut v: Validator = expect(cache, &validator_key(target))?;
    v.nominators = if up {
        v.nominators.checked_add(1)
    } else {
        v.nominators.checked_sub(1)
    }
    .ok_or(Fault::Overflow("nominator count"))?;
    store(cache, validator_key(target), &v)?;
    retire_if_done(cache, target)
}

/// Removes a validator that stepped back and has neither self-bond nor nominators, so that
/// its place among the candidates is free again. Its unbonding chunks stay with its staker.
fn retire_if_done(cache: &mut StateCache, who: &Address) -> Result<(), Halt> {
    let Some(v) = validator(cache, who)? else {
        return Ok(());
    };
    let active = staker(cache, who)?.map_or(Amount::ZERO, |s| s.active);
    if v.status != Status::Chilled || v.nominators > 0 || active != Amount::ZERO {
        return Ok(());
    }
    remove(cache, validator_key(who));
    remove(cache, consensus_key_key(&v.consensus_key));
    list_remove(cache, validators_key(), who)?;
    if let Some(s) = staker(cache, who)? {
        put_staker(cache, who, &s)?;
    }
    Ok(())
}

impl Staking<'_> {
    pub fn deliver(
        &self,
        cache: &mut StateCache,
        sender: &Address,
        action: &exo_types::Action,
    ) -> Verdict {
        use exo_types::Action as A;
        match action {
            A::RegisterValidator {
                consensus_key,
                p2p_address,
                commission_bps,
                self_bond,
            } => self.register(
                cache,
                sender,
                consensus_key,
                p2p_address,
                *commission_bps,
                *self_bond,
            ),
            A::UpdateValidator {
                p2p_address,
                commission_bps,
            } => self.update(cache, sender, p2p_address, *commission_bps),
            A::Nominate { targets, bond } => self.nominate(cache, sender, targets, *bond),
            A::Unbond { amount } => self.unbond(cache, sender, *amount),
            A::Withdraw => self.withdraw(cache, sender),
            A::Chill => self.chill(cache, sender),
            A::Unjail => self.unjail(cache, sender),
            _ => Err(Fault::Invariant(format!("{} routed to staking", action.name())).into()),
        }
    }

    fn check_terms(p2p_address: &str, commission_bps: u32) -> Result<(), Refusal> {
        if commission_bps > MAX_COMMISSION_BPS {
            return Err(Refusal::CommissionTooHigh {
                bps: commission_bps,
                max: MAX_COMMISSION_BPS,
            });
        }
        if !p2p_address_ok(p2p_address) {
            return Err(Refusal::BadP2pAddress);
        }
        Ok(())
    }

    fn register(
        &self,
        cache: &mut StateCache,
        sender: &Address,
        consensus_key: &Address,
        p2p_address: &str,
        commission_bps: u32,
        self_bond: Amount,
    ) -> Verdict {
        if validator(cache, sender)?.is_some() {
            return refuse(Refusal::AlreadyValidator);
        }
        let mut s = staker_or_new(cache, sender)?;
        if !s.targets.is_empty() {
            return refuse(Refusal::IsNominator);
        }
        if let Err(refusal) = Self::check_terms(p2p_address, commission_bps) {
            return refuse(refusal);
        }
        if load::<Owner>(cache, &consensus_key_key(consensus_key))?.is_some() {
            return refuse(Refusal::ConsensusKeyTaken);
        }
        if self_bond < self.params.min_self_bond {
            return refuse(Refusal::SelfBondTooLow {
                bond: self_bond,
                min: self.params.min_self_bond,
            });
        }
        if list(cache, validators_key())?.0.len() >= self.params.max_validators as usize {
            return refuse(Refusal::TooManyValidators {
                max: self.params.max_validators,
            });
        }
        if let Err(r) = bond(cache, sender, &mut s, self_bond)? {
            return Ok(Err(r));
        }
        let v = Validator {
            consensus_key: consensus_key.clone(),
            p2p_address: p2p_address.to_owned(),
            commission_bps,
            status: Status::Active,
            nominators: 0,
        };
        self::write_validator(cache, sender, &v)?;
        put_staker(cache, sender, &s)?;
        Ok(Ok(()))
    }

    fn update(
        &self,
        cache: &mut StateCache,
        sender: &Address,
        p2p_address: &str,
        commission_bps: u32,
    ) -> Verdict {
        let Some(mut v) = validator(cache, sender)? else {
            return refuse(Refusal::NotAValidator);
        };
        if let Err(refusal) = Self::check_terms(p2p_address, commission_bps) {
            return refuse(refusal);
        }
        v.p2p_address = p2p_address.to_owned();
        v.commission_bps = commission_bps;
        Ok(Ok(store(cache, validator_key(sender), &v)?))
    }

    /// Checks a nomination's targets: how many, no repeats, each a validator.
    fn check_targets(
        &self,
        cache: &StateCache,
        targets: &[Address],
    ) -> Result<Result<Vec<Address>, Refusal>, Halt> {
        let n = targets.len() as u32;
        if n == 0 || n > self.params.max_targets {
            return Ok(Err(Refusal::TooManyTargets {
                targets: n,
                max: self.params.max_targets,
            }));
        }
        for (i, t) in (0u32..).zip(targets) {
            if targets[..i as usize].contains(t) {
                return Ok(Err(Refusal::DuplicateTarget { index: i }));
            }
            if validator(cache, t)?.is_none() {
                return Ok(Err(Refusal::UnknownTarget { index: i }));
            }
        }
        let mut sorted = targets.to_vec();
        sorted.sort();
        Ok(Ok(sorted))
    }

    fn nominate(
        &self,
        cache: &mut StateCache,
        sender: &Address,
        targets: &[Address],
        extra: Amount,
    ) -> Verdict {
        if validator(cache, sender)?.is_some() {
            return refuse(Refusal::IsValidator);
        }
        let sorted = match self.check_targets(cache, targets)? {
            Ok(sorted) => sorted,
            Err(refusal) => return refuse(refusal),
        };
        let mut s = staker_or_new(cache, sender)?;
        let total = s.active.checked_add(extra).ok_or(Fault::Overflow("bond"))?;
        if total < self.params.min_nomination {
            return refuse(Refusal::NominationTooLow {
                bond: total,
                min: self.params.min_nomination,
            });
        }
        let new = s.targets.is_empty();
        if new && list(cache, nominators_key())?.0.len() >= self.params.max_nominators as usize {
            return refuse(Refusal::TooManyNominators {
                max: self.params.max_nominators,
            });
        }
        for (i, t) in (0u32..).zip(targets) {
            let full = expect::<Validator>(cache, &validator_key(t))?.nominators
                >= self.params.max_nominators_per_validator;
            if full && !s.targets.contains(t) {
                return refuse(Refusal::ValidatorFull {
                    index: i,
                    max: self.params.max_nominators_per_validator,
                });
            }
        }
        if let Err(r) = bond(cache, sender, &mut s, extra)? {
            return Ok(Err(r));
        }
        let old = std::mem::replace(&mut s.targets, sorted.clone());
        put_staker(cache, sender, &s)?;
        for t in sorted.iter().filter(|t| !old.contains(t)) {
            count_nominator(cache, t, true)?;
        }
        for t in old.iter().filter(|t| !sorted.contains(t)) {
            count_nominator(cache, t, false)?;
        }
        if new {
            list_insert(cache, nominators_key(), sender)?;
        }
        Ok(Ok(()))
    }

    fn unbond(&self, cache: &mut StateCache, sender: &Address, amount: Amount) -> Verdict {
        if amount == Amount::ZERO {
            return refuse(Refusal::ZeroAmount);
        }
        let Some(mut s) = staker(cache, sender)? else {
            return refuse(Refusal::UnbondTooMuch {
                amount,
                active: Amount::ZERO,
            });
        };
        let Some(left) = s.active.checked_sub(amount) else {
            return refuse(Refusal::UnbondTooMuch {
                amount,
                active: s.active,
            });
        };
        if let Err(refusal) = self.check_left(cache, sender, left)? {
            return refuse(refusal);
        }
        let release_secs = (self.env.time_ms / 1_000)
            .checked_add(self.params.unbonding_secs)
            .ok_or(Fault::Overflow("release time"))?;
        let full = s.unbonding.len() >= self.params.max_unbonding_chunks as usize;
        match s.unbonding.last_mut() {
            // Unbondings of the same second share a chunk.
            Some(c) if c.release_secs == release_secs => {
                c.amount = c
                    .amount
                    .checked_add(amount)
                    .ok_or(Fault::Overflow("chunk"))?;
            }
            _ if full => {
                return refuse(Refusal::TooManyUnbondingChunks {
                    max: self.params.max_unbonding_chunks,
                });
            }
            _ => s.unbonding.push(Chunk {
                amount,
                release_secs,
            }),
        }
        s.active = left;
        let stops_nominating = left == Amount::ZERO && !s.targets.is_empty();
        let old = if stops_nominating {
            std::mem::take(&mut s.targets)
        } else {
            Vec::new()
        };
        put_staker(cache, sender, &s)?;
        for t in &old {
            count_nominator(cache, t, false)?;
        }
        if stops_nominating {
            list_remove(cache, nominators_key(), sender)?;
        }
        retire_if_done(cache, sender)?;
        Ok(Ok(()))
    }

    /// Whether `left` may stay as the sender's active bond: a validator keeps at least its
    /// minimum while it stands, a nominator keeps at least its minimum or nothing.
    fn check_left(
        &self,
        cache: &StateCache,
        sender: &Address,
        left: Amount,
    ) -> Result<Result<(), Refusal>, Halt> {
        if let Some(v) = validator(cache, sender)? {
            let standing = v.status == Status::Active;
            if standing && left == Amount::ZERO {
                return Ok(Err(Refusal::MustChillFirst));
            }
            if standing && left < self.params.min_self_bond {
                return Ok(Err(Refusal::SelfBondTooLow {
                    bond: left,
                    min: self.params.min_self_bond,
                }));
            }
        } else if left != Amount::ZERO && left < self.params.min_nomination {
            return Ok(Err(Refusal::NominationTooLow {
                bond: left,
                min: self.params.min_nomination,
            }));
        }
        Ok(Ok(()))
    }

    fn withdraw(&self, cache: &mut StateCache, sender: &Address) -> Verdict {
        let Some(mut s) = staker(cache, sender)? else {
            return refuse(Refusal::NothingToWithdraw { next_release: 0 });
        };
        let now_secs = self.env.time_ms / 1_000;
        let (due, later): (Vec<Chunk>, Vec<Chunk>) =
            s.unbonding.iter().partition(|c| c.release_secs <= now_secs);
        if due.is_empty() {
            let next_release = later.first().map_or(0, |c| c.release_secs);
            return refuse(Refusal::NothingToWithdraw { next_release });
        }
        let amount = due
            .iter()
            .try_fold(Amount::ZERO, |sum, c| sum.checked_add(c.amount))
            .ok_or(Fault::Overflow("withdrawal"))?;
        bank::release(cache, Pot::StakeBond(s.id), sender, amount)?;
        s.unbonding = later;
        put_staker(cache, sender, &s)?;
        Ok(Ok(()))
    }

    fn chill(&self, cache: &mut StateCache, sender: &Address) -> Verdict {
        let Some(mut v) = validator(cache, sender)? else {
            return refuse(Refusal::NotAValidator);
        };
        match v.status {
            Status::Chilled => return refuse(Refusal::AlreadyChilled),
            Status::Jailed { until } => return refuse(Refusal::Jailed { until }),
            Status::Active => v.status = Status::Chilled,
        }
        store(cache, validator_key(sender), &v)?;
        retire_if_done(cache, sender)?;
        Ok(Ok(()))
    }

    fn unjail(&self, cache: &mut StateCache, sender: &Address) -> Verdict {
        let Some(mut v) = validator(cache, sender)? else {
            return refuse(Refusal::NotAValidator);
        };
        match v.status {
            Status::Active => return refuse(Refusal::AlreadyActive),
            Status::Jailed { until } if self.env.height < until => {
                return refuse(Refusal::Jailed { until });
            }
            Status::Jailed { .. } | Status::Chilled => {}
        }
        let bond = staker(cache, sender)?.map_or(Amount::ZERO, |s| s.active);
        if bond < self.params.min_self_bond {
            return refuse(Refusal::SelfBondTooLow {
                bond,
                min: self.params.min_self_bond,
            });
        }
        v.status = Status::Active;
        Ok(Ok(store(cache, validator_key(sender), &v)?))
    }

    /// In every block, counts its leader slots and votes, applies the slashes that are due
    /// and pays the next provider owners of ended epochs; in the last block of each epoch `e`,
    /// first divides the epoch's rewards (jailing the members that were down, so that the
    /// election leaves them out), elects the committee of `e + 2` and forgets the exposures
    /// that have aged out.
    pub fn end_block(&self, cache: &mut StateCache) -> Result<(), Halt> {
        // One round of loads for what every block reads.
        cache.require(rewards::tally_keys(self.env).chain([offences_key(), payout_queue_key()]))?;
        rewards::tally_block(cache, self.env, self.epoch_length)?;
        self.apply_due_slashes(cache)?;
        let height = self.env.height;
        if (height + 1).is_multiple_of(self.epoch_length) {
            let epoch = height / self.epoch_length;
            self.pay_epoch(cache, epoch)?;
            let target = epoch + 2;
            self.elect(cache, target)?;
            if let Some(old) = target.checked_sub(self.params.exposure_epochs) {
                forget_exposures(cache, old)?;
            }
        }
        rewards::pay_providers(cache)
    }

    /// The ballots of the election: each standing validator backs itself with its
    /// self-bond, each nominator backs its standing targets with its bond.
    fn ballots(&self, cache: &StateCache) -> Result<(Vec<Address>, Vec<StakeBallot>), Halt> {
        let mut candidates = Vec::new();
        let mut ballots = Vec::new();
        for who in list(cache, validators_key())?.0 {
            let v: Validator = expect(cache, &validator_key(&who))?;
            if v.status != Status::Active {
                continue;
            }
            let own = staker(cache, &who)?.map_or(Amount::ZERO, |s| s.active);
            candidates.push(who.clone());
            ballots.push(Ballot {
                voter: who.clone(),
                stake: own.0,
                targets: vec![who],
            });
        }
        for who in list(cache, nominators_key())?.0 {
            let s: Staker = expect(cache, &staker_key(&who))?;
            let targets: Vec<Address> = s
                .targets
                .into_iter()
                .filter(|t| candidates.binary_search(t).is_ok())
                .collect();
            ballots.push(Ballot {
                voter: who,
                stake: s.active.0,
                targets,
            });
        }
        Ok((candidates, ballots))
    }

    /// Elects the committee of epoch `target`. With fewer backed candidates than seats the
    /// previous committee stays (a smaller committee would be easier to capture), less the
    /// members jailed since: an equivocator or a silent validator does not keep its seat for
    /// want of a replacement, unless nobody would be left.
    fn elect(&self, cache: &mut StateCache, target: u64) -> Result<(), Halt> {
        let (candidates, ballots) = self.ballots(cache)?;
        let seats = self.params.committee_size as usize;
        let outcome = election::elect(&candidates, &ballots, seats, self.params.balance_rounds);
        if outcome.elected.len() < seats {
            let previous: Committee = expect(cache, &committee_key(target - 1))?;
            let mut members = Vec::with_capacity(previous.members.len());
            for member in &previous.members {
                let jailed = validator(cache, &member.validator)?
                    .is_some_and(|v| matches!(v.status, Status::Jailed { .. }));
                if !jailed {
                    members.push(member.clone());
                }
            }
            if members.is_empty() {
                members = previous.members;
            }
            return Ok(store(
                cache,
                committee_key(target),
                &Committee {
                    members,
                    elected: false,
                },
            )?);
        }
        let mut exposures: BTreeMap<Address, Exposure> = outcome
            .elected
            .iter()
            .map(|(c, _)| (c.clone(), Exposure::default()))
            .collect();
        for (voter, shares) in outcome.shares {
            for (member, amount) in shares {
                let e = exposures
                    .get_mut(&member)
                    .ok_or_else(|| Fault::Invariant("a share of a non-member".into()))?;
                if member == voter {
                    e.own = Amount(amount);
                } else {
                    e.others.push((voter.clone(), Amount(amount)));
                }
            }
        }
        let mut members = Vec::with_capacity(seats);
        for (validator, backing) in outcome.elected {
            let v: Validator = expect(cache, &validator_key(&validator))?;
            members.push(Member {
                validator,
                consensus_key: v.consensus_key,
                backing: Amount(backing),
            });
        }
        members.sort_by(|a, b| a.validator.cmp(&b.validator));
        for (validator, mut exposure) in exposures {
            exposure.others.sort();
            store(cache, exposure_key(target, &validator), &exposure)?;
        }
        Ok(store(
            cache,
            committee_key(target),
            &Committee {
                members,
                elected: true,
            },
        )?)
    }
}

fn write_validator(cache: &mut StateCache, who: &Address, v: &Validator) -> Result<(), Halt> {
    store(cache, validator_key(who), v)?;
    store(
        cache,
        consensus_key_key(&v.consensus_key),
        &Owner(who.clone()),
    )?;
    list_insert(cache, validators_key(), who)
}

/// Deletes the exposures of `epoch`'s committee (the committee itself stays: it is small and
/// later modules verify old evidence against it).
fn forget_exposures(cache: &mut StateCache, epoch: u64) -> Result<(), Halt> {
    if let Some(c) = load::<Committee>(cache, &committee_key(epoch))? {
        for m in c.members {
            remove(cache, exposure_key(epoch, &m.validator));
        }
    }
    Ok(())
}

/// Registers the genesis validators (their own key as consensus key, no p2p address, no
/// commission), locks `genesis_self_bond` from each one's account, and writes the committees
/// of epochs 0 and 1.
pub fn genesis(
    cache: &mut StateCache,
    params: &StakingParams,
    validators: &[Address],
) -> Result<(), Halt> {
    let mut members = Vec::with_capacity(validators.len());
    for who in validators {
        let mut s = staker_or_new(cache, who)?;
        if bond(cache, who, &mut s, params.genesis_self_bond)?.is_err() {
            return Err(Fault::Invariant(format!(
                "invalid genesis: validator {} cannot pay the genesis self-bond {}",
                exo_types::address_to_hex(who),
                params.genesis_self_bond
            ))
            .into());
        }
        write_validator(
            cache,
            who,
            &Validator {
                consensus_key: who.clone(),
                p2p_address: String::new(),
                commission_bps: 0,
                status: Status::Active,
                nominators: 0,
            },
        )?;
        put_staker(cache, who, &s)?;
        members.push(Member {
            validator: who.clone(),
            consensus_key: who.clone(),
            backing: s.active,
        });
    }
    let committee = Committee {
        members,
        elected: false,
    };
    store(cache, committee_key(0), &committee)?;
    Ok(store(cache, committee_key(1), &committee)?)
}

/// What staking answers to readers of finalized state.
pub mod queries {
    use super::{
        Addresses, Committee, EpochRecord, Exposure, Staker, Validator, committee_key, epoch_key,
        exposure_key, staker_key, validator_key, validators_key,
    };
    use crate::state::Query;
    use exo_types::Address;

    pub fn validator(who: &Address) -> Query<Validator> {
        Query::new(validator_key(who))
    }

    pub fn staker(who: &Address) -> Query<Staker> {
        Query::new(staker_key(who))
    }

    /// Every validator candidate's address.
    pub fn validators() -> Query<Addresses> {
        Query::new(validators_key())
    }

    pub fn committee(epoch: u64) -> Query<Committee> {
        Query::new(committee_key(epoch))
    }

    pub fn exposure(epoch: u64, validator: &Address) -> Query<Exposure> {
        Query::new(exposure_key(epoch, validator))
    }

    /// What `epoch` paid (once its last block ran; its providers over the blocks after) and
    /// slashed.
    pub fn epoch_record(epoch: u64) -> Query<EpochRecord> {
        Query::new(epoch_key(epoch))
    }
}
