//! Points, work and the payout at the end of each epoch.
//!
//! During an epoch every block credits its proposer a block proposed, each leader of a view
//! the chain skipped before it a missed slot, and each signer of the certificate of its parent
//! it carries a vote ([`Tally`], by consensus key); the market credits each provider owner
//! units for the accepted work its replicas computed and the free slots its offers proved
//! ([`credit_units`]), one small record per owner and epoch. Fees go into [`Pot::Rewards`] as
//! transactions pay them. In the epoch's last block the block reward of every block of the
//! epoch is minted into that pot and the pot is divided:
//! the committee's share is paid at once by points ([`PROPOSAL_POINTS`] per block,
//! [`VOTE_POINTS`] per vote), each member's part split between it (commission, then its own
//! stake's part) and its nominators by their exposure; the providers' share moves to
//! [`Pot::Payouts`] and is paid by units over the blocks that follow, at most
//! [`PAYOUTS_PER_BLOCK`] payments a block, oldest epoch first ([`pay_providers`]). Every
//! division rounds down and what the divisions leave goes to the treasury, so the supply
//! grows by exactly the minted reward.
use super::{
    Certificates, Committee, EpochRecord, Exposure, Member, MemberReward, Owner, PAYOUTS_PER_BLOCK,
    PayoutQueue, ProviderPayout, Staking, Status, Tally, Units, Validator,
    keys::{
        certificates_key, committee_key, consensus_key_key, epoch_key, exposure_key, payout_key,
        payout_queue_key, tally_key, units_key, validator_key, worker_key,
    },
    params::BPS,
};
use crate::{
    exec::BlockEnv,
    modules::bank::{self, Pot},
    state::{Fault, Halt, StateCache, expect, load, remove, store},
};
use exo_types::{Address, Amount};

/// `amount * num / den`, rounded down, without an intermediate past u128 for any
/// `num <= den`: the quotient and the remainder by `den` are scaled apart.
pub(super) fn mul_div(amount: Amount, num: u128, den: u128) -> Result<Amount, Fault> {
    if den == 0 {
        return Err(Fault::Invariant("a reward divided by zero".into()));
    }
    let (q, r) = (amount.0 / den, amount.0 % den);
    let whole = q.checked_mul(num);
    let part = r.checked_mul(num).map(|p| p / den);
    whole
        .zip(part)
        .and_then(|(w, p)| w.checked_add(p))
        .map(Amount)
        .ok_or(Fault::Overflow("reward division"))
}

/// `amount` times `bps` basis points, rounded down.
pub(super) fn bps_of(amount: Amount, bps: u32) -> Result<Amount, Fault> {
    mul_div(amount, u128::from(bps), u128::from(BPS))
}

fn sub(a: Amount, b: Amount) -> Result<Amount, Fault> {
    a.checked_sub(b).ok_or(Fault::Overflow("reward"))
}

fn add(a: Amount, b: Amount) -> Result<Amount, Fault> {
    a.checked_add(b).ok_or(Fault::Overflow("reward"))
}

/// Points for each block a member proposed. Proposing is the larger work (gathering,
/// executing and broadcasting a block), and a member leads about one view in `n` while it
/// votes in every view: at 20 to 1, as on Polkadot, a member of a committee of four that
/// proposes its share and votes on every block earns about five points in six by proposing.
pub const PROPOSAL_POINTS: u64 = 20;
/// Points for each certificate a block carried that holds a member's vote.
pub const VOTE_POINTS: u64 = 1;

/// Credits the block's proposer a block proposed, each skipped leader a missed slot and each
/// voter of the parent's certificate a vote. Only consensus keys a validator registered are
/// counted: the chain's leaders and voters always are, and a caller without consensus (a
/// test's proposer) leaves nothing behind. The genesis block (height 0, which a caller may
/// execute to write the genesis state) is nobody's work, and no reward is minted for it.
///
/// A certificate is counted in the epoch of the parent it certifies, which is the block's own
/// unless the block is the first of its epoch: the parent is then the last block of the epoch
/// before, whose payout already ran, and its votes are credited to nobody (one certificate in
/// an epoch's length, the same for every member).
pub(super) fn tally_block(
    cache: &mut StateCache,
    env: &BlockEnv,
    epoch_length: u64,
) -> Result<(), Halt> {
    if env.height == 0 {
        return Ok(());
    }
    bump(cache, &env.proposer, |t| &mut t.proposed)?;
    for leader in &env.skipped_leaders {
        bump(cache, leader, |t| &mut t.missed)?;
    }
    if env.parent_voters.is_empty() || env.height.is_multiple_of(epoch_length) {
        return Ok(());
    }
    let mut included: Certificates = load(cache, &certificates_key())?.unwrap_or_default();
    included.0 = included
        .0
        .checked_add(1)
        .ok_or(Fault::Overflow("certificates"))?;
    store(cache, certificates_key(), &included)?;
    for voter in &env.parent_voters {
        bump(cache, voter, |t| &mut t.votes)?;
    }
    Ok(())
}

/// Adds one to the count `field` picks in `who`'s tally, when `who` is a registered
/// consensus key.
fn bump(
    cache: &mut StateCache,
    who: &Address,
    field: fn(&mut Tally) -> &mut u64,
) -> Result<(), Halt> {
    if load::<Owner>(cache, &consensus_key_key(who))?.is_none() {
        return Ok(());
    }
    let key = tally_key(who);
    let mut t: Tally = load(cache, &key)?.unwrap_or_default();
    let count = field(&mut t);
    *count = count.checked_add(1).ok_or(Fault::Overflow("tally"))?;
    Ok(store(cache, key, &t)?)
}

/// What a credit of reward units is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credit {
    /// One accepted unit of work: a replica paid for a result another, independent replica
    /// confirmed (the work that also builds reputation).
    Work,
    /// Free slots proven in a capacity round, worth this many units.
    Capacity(u64),
}

/// Credits `owner` reward units in `epoch`, the running one: one for accepted work, or what
/// proven capacity is worth. It writes the owner's units, the epoch's counts and, for an owner
/// new in the epoch, its position: a few small records, however many owners the epoch has.
/// The number of owners needs no cap of its own: each is credited by a paid, accepted result
/// or a proof for an offer on the book, which the market's bounds already limit per block.
pub fn credit_units(
    cache: &mut StateCache,
    epoch: u64,
    owner: &Address,
    credit: Credit,
) -> Result<(), Halt> {
    let (credit, capacity) = match credit {
        Credit::Work => (1, 0),
        Credit::Capacity(units) => (units, units),
    };
    let (key, work_key) = (units_key(epoch, owner), payout_key(epoch));
    cache.require([key, work_key])?;
    let mut units: Units = load(cache, &key)?.unwrap_or_default();
    let mut work: ProviderPayout = load(cache, &work_key)?.unwrap_or_default();
    if work.pool != Amount::ZERO || work.next != 0 {
        return Err(
            Fault::Invariant(format!("work credited to epoch {epoch} after its end")).into(),
        );
    }
    if units.0 == 0 {
        store(cache, worker_key(epoch, work.owners), &Owner(owner.clone()))?;
        work.owners = work
            .owners
            .checked_add(1)
            .ok_or(Fault::Overflow("work owners"))?;
    }
    units.0 = units
        .0
        .checked_add(credit)
        .ok_or(Fault::Overflow("work units"))?;
    work.units = work
        .units
        .checked_add(credit)
        .ok_or(Fault::Overflow("work units"))?;
    work.capacity_units = work
        .capacity_units
        .checked_add(capacity)
        .ok_or(Fault::Overflow("capacity units"))?;
    store(cache, key, &units)?;
    Ok(store(cache, work_key, &work)?)
}

/// The keys every block's tally reads: each leader's and voter's registration and tally, and
/// the epoch's count of certificates.
pub(super) fn tally_keys(env: &BlockEnv) -> impl Iterator<Item = crate::state::Key> + '_ {
    std::iter::once(&env.proposer)
        .chain(&env.skipped_leaders)
        .chain(&env.parent_voters)
        .flat_map(|l| [consensus_key_key(l), tally_key(l)])
        .chain([certificates_key()])
}

/// Puts `who` in jail until height `until` (a jail already longer stays). A chilled validator
/// stays chilled unless `even_chilled` (an equivocator): chilled, it stands for nothing
/// already, but it could stand again at once with `Unjail`.
pub(super) fn jail(
    cache: &mut StateCache,
    who: &Address,
    until: u64,
    even_chilled: bool,
) -> Result<(), Halt> {
    let Some(mut v) = load::<Validator>(cache, &validator_key(who))? else {
        return Ok(());
    };
    v.status = match v.status {
        Status::Chilled if !even_chilled => return Ok(()),
        Status::Jailed { until: old } => Status::Jailed {
            until: old.max(until),
        },
        Status::Chilled | Status::Active => Status::Jailed { until },
    };
    Ok(store(cache, validator_key(who), &v)?)
}

impl Staking<'_> {
    /// Whether `missed` of `total` is downtime: at least `downtime_min_missed`, and more than
    /// `downtime_threshold_bps` of `total`.
    fn misses_too_many(&self, missed: u64, total: u64) -> bool {
        missed >= self.params.downtime_min_missed
            && u128::from(missed) * u128::from(BPS)
                > u128::from(self.params.downtime_threshold_bps) * u128::from(total)
    }

    /// Whether a member was down in an epoch whose blocks carried `certificates` certificates
    /// of their parents. Votes are the measure when there are enough certificates to judge
    /// by (at least `downtime_min_missed`): a member is down when it is missing from too many
    /// of them, whatever its leader slots say, so that a member that votes but whose views
    /// were skipped (a slow proposer) is not taken for an absent one. With fewer certificates
    /// (proposers that did not know them), its leader slots are the measure: down when it
    /// missed too many of them.
    fn is_down(&self, t: Tally, certificates: u64) -> Result<bool, Fault> {
        if certificates >= self.params.downtime_min_missed {
            let missed_votes = certificates.checked_sub(t.votes).ok_or_else(|| {
                Fault::Invariant(format!(
                    "a member holds {} votes of an epoch's {certificates} certificates",
                    t.votes
                ))
            })?;
            return Ok(self.misses_too_many(missed_votes, certificates));
        }
        let slots = t
            .proposed
            .checked_add(t.missed)
            .ok_or(Fault::Overflow("slots"))?;
        Ok(self.misses_too_many(t.missed, slots))
    }

    /// A member's points: [`PROPOSAL_POINTS`] per block proposed and [`VOTE_POINTS`] per vote.
    fn points(t: Tally) -> Result<u64, Fault> {
        t.proposed
            .checked_mul(PROPOSAL_POINTS)
            .zip(t.votes.checked_mul(VOTE_POINTS))
            .and_then(|(p, v)| p.checked_add(v))
            .ok_or(Fault::Overflow("points"))
    }

    /// The blocks of `epoch`: every height in it but the genesis block.
    fn blocks_of(&self, epoch: u64) -> u64 {
        if epoch == 0 {
            self.epoch_length - 1
        } else {
            self.epoch_length
        }
    }

    /// Divides `epoch`'s rewards in its last block: pays the committee and jails its members
    /// that were down, and queues the providers' payout; writes what it did in the epoch's
    /// record.
    pub(super) fn pay_epoch(&self, cache: &mut StateCache, epoch: u64) -> Result<(), Halt> {
        cache.require([committee_key(epoch), epoch_key(epoch), payout_key(epoch)])?;
        let committee: Committee = expect(cache, &committee_key(epoch))?;
        let mut record: EpochRecord = load(cache, &epoch_key(epoch))?.unwrap_or_default();
        record.fees = bank::pot(cache, Pot::Rewards)?;
        record.minted = self
            .params
            .epoch_mint(self.blocks_of(epoch))
            .map_err(|e| Fault::Invariant(e.to_string()))?;
        bank::mint_into(cache, Pot::Rewards, record.minted)?;
        record.certificates = load::<Certificates>(cache, &certificates_key())?
            .unwrap_or_default()
            .0;
        remove(cache, certificates_key());
        let pool = add(record.fees, record.minted)?;
        let providers_pool = bps_of(pool, self.params.provider_share_bps)?;
        (record.work_units, record.capacity_units) = close_work(cache, epoch, providers_pool)?;
        record.providers_pool = providers_pool;
        record.members = self.pay_committee(
            cache,
            epoch,
            &committee,
            record.certificates,
            sub(pool, providers_pool)?,
        )?;
        record.to_treasury = bank::pot(cache, Pot::Rewards)?;
        bank::move_between(cache, Pot::Rewards, Pot::Treasury, record.to_treasury)?;
        record.ended_ms = self.env.time_ms;
        Ok(store(cache, epoch_key(epoch), &record)?)
    }

    /// Reads and clears the members' tallies, jails those that were down (measured against the
    /// epoch's `certificates`), and pays `pool` by points.
    fn pay_committee(
        &self,
        cache: &mut StateCache,
        epoch: u64,
        committee: &Committee,
        certificates: u64,
        pool: Amount,
    ) -> Result<Vec<MemberReward>, Halt> {
        cache.require(committee.members.iter().flat_map(|m| {
            [
                tally_key(&m.consensus_key),
                validator_key(&m.validator),
                exposure_key(epoch, &m.validator),
            ]
        }))?;
        let until = self
            .env
            .height
            .checked_add(self.params.jail_blocks)
            .ok_or(Fault::Overflow("jail"))?;
        let mut rewards = Vec::with_capacity(committee.members.len());
        let mut total_points = 0u64;
        for m in &committee.members {
            let t: Tally = load(cache, &tally_key(&m.consensus_key))?.unwrap_or_default();
            remove(cache, tally_key(&m.consensus_key));
            let jailed = self.is_down(t, certificates)?;
            if jailed {
                jail(cache, &m.validator, until, false)?;
            }
            let points = if jailed { 0 } else { Self::points(t)? };
            total_points = total_points
                .checked_add(points)
                .ok_or(Fault::Overflow("points"))?;
            rewards.push(MemberReward {
                validator: m.validator.clone(),
                proposed: t.proposed,
                missed: t.missed,
                votes: t.votes,
                points,
                reward: Amount::ZERO,
                kept: Amount::ZERO,
                jailed,
            });
        }
        if total_points == 0 {
            return Ok(rewards);
        }
        for (m, r) in committee.members.iter().zip(&mut rewards) {
            r.reward = mul_div(pool, u128::from(r.points), u128::from(total_points))?;
            r.kept = pay_member(cache, epoch, m, r.reward)?;
        }
        Ok(rewards)
    }
}

/// Fixes `pool` as the providers' share of `epoch`, which has just ended: moves it to
/// [`Pot::Payouts`] and queues the epoch's payout behind those still running. Returns the
/// units the pool is divided by, and the part of them proven capacity earned.
fn close_work(cache: &mut StateCache, epoch: u64, pool: Amount) -> Result<(u64, u64), Halt> {
    let mut work: ProviderPayout = load(cache, &payout_key(epoch))?.unwrap_or_default();
    work.pool = pool;
    store(cache, payout_key(epoch), &work)?;
    bank::move_between(cache, Pot::Rewards, Pot::Payouts, pool)?;
    let mut queue: PayoutQueue = load(cache, &payout_queue_key())?.unwrap_or_default();
    if queue.end != epoch {
        return Err(Fault::Invariant(format!(
            "epoch {epoch} ends while the payouts queued end at epoch {}",
            queue.end
        ))
        .into());
    }
    queue.end = epoch.checked_add(1).ok_or(Fault::Overflow("epoch"))?;
    store(cache, payout_queue_key(), &queue)?;
    Ok((work.units, work.capacity_units))
}

/// Runs at the end of every block: pays the owners of ended epochs, oldest epoch first, each
/// `pool * units / total_units` rounded down, at most [`PAYOUTS_PER_BLOCK`] payments (an owner
/// paid, or an epoch's payout closed). Closing an epoch moves what its rounding left to the
/// treasury, completes its record and removes its work. Each epoch is paid from its own pool,
/// as its payout record counts it, though the pools share one pot: the pot must be empty
/// whenever no payout is left.
pub(super) fn pay_providers(cache: &mut StateCache) -> Result<(), Halt> {
    let start: PayoutQueue = load(cache, &payout_queue_key())?.unwrap_or_default();
    let mut queue = start;
    let mut budget = u64::from(PAYOUTS_PER_BLOCK);
    while budget > 0 && queue.first < queue.end {
        let epoch = queue.first;
        cache.require([payout_key(epoch), epoch_key(epoch)])?;
        let mut payout: ProviderPayout = expect(cache, &payout_key(epoch))?;
        let mut record: EpochRecord = expect(cache, &epoch_key(epoch))?;
        let batch = pay_owners(cache, epoch, &mut payout, budget)?;
        budget = budget
            .checked_sub(batch)
            .ok_or(Fault::Overflow("payout budget"))?;
        record.to_providers = payout.paid;
        if payout.next < payout.owners || budget == 0 {
            store(cache, payout_key(epoch), &payout)?;
            store(cache, epoch_key(epoch), &record)?;
            break;
        }
        budget -= 1;
        let rest = payout.unpaid().ok_or_else(|| {
            Fault::Invariant(format!("epoch {epoch}'s providers were paid past its pool"))
        })?;
        bank::move_between(cache, Pot::Payouts, Pot::Treasury, rest)?;
        record.to_treasury = add(record.to_treasury, rest)?;
        record.providers_paid = true;
        store(cache, epoch_key(epoch), &record)?;
        remove(cache, payout_key(epoch));
        queue.first = epoch.checked_add(1).ok_or(Fault::Overflow("epoch"))?;
    }
    if queue == start {
        return Ok(());
    }
    if queue.first == queue.end {
        bank::expect_pot(cache, Pot::Payouts, Amount::ZERO)?;
    }
    Ok(store(cache, payout_queue_key(), &queue)?)
}

/// Pays the next owners of `epoch`'s payout, at most `budget` of them, and removes their
/// work; returns how many it paid. Their positions, then their units, are loaded in one
/// round each.
fn pay_owners(
    cache: &mut StateCache,
    epoch: u64,
    payout: &mut ProviderPayout,
    budget: u64,
) -> Result<u64, Halt> {
    let left = payout.owners.checked_sub(payout.next).ok_or_else(|| {
        Fault::Invariant(format!("epoch {epoch}'s payout is past its last owner"))
    })?;
    let batch = left.min(budget);
    let end = payout
        .next
        .checked_add(batch)
        .ok_or(Fault::Overflow("payout position"))?;
    let positions = payout.next..end;
    cache.require(positions.clone().map(|at| worker_key(epoch, at)))?;
    let owners = positions
        .clone()
        .map(|at| expect::<Owner>(cache, &worker_key(epoch, at)).map(|o| o.0))
        .collect::<Result<Vec<_>, _>>()?;
    cache.require(owners.iter().map(|o| units_key(epoch, o)))?;
    for (at, owner) in positions.zip(&owners) {
        let units: Units = expect(cache, &units_key(epoch, owner))?;
        let share = mul_div(payout.pool, u128::from(units.0), u128::from(payout.units))?;
        bank::release(cache, Pot::Payouts, owner, share)?;
        payout.paid = add(payout.paid, share)?;
        remove(cache, units_key(epoch, owner));
        remove(cache, worker_key(epoch, at));
    }
    payout.next = end;
    Ok(batch)
}

/// Pays a member's `share`: its commission, then the rest by exposure between it and its
/// nominators (all of the rest to it when the epoch's committee was not elected, as at
/// genesis, and so has no exposure). Returns what the validator kept.
fn pay_member(
    cache: &mut StateCache,
    epoch: u64,
    m: &Member,
    share: Amount,
) -> Result<Amount, Halt> {
    let commission_bps =
        load::<Validator>(cache, &validator_key(&m.validator))?.map_or(0, |v| v.commission_bps);
    let commission = bps_of(share, commission_bps)?;
    let rest = sub(share, commission)?;
    let exposure: Exposure = load(cache, &exposure_key(epoch, &m.validator))?.unwrap_or_default();
    let total = exposure
        .others
        .iter()
        .try_fold(exposure.own, |sum, (_, b)| sum.checked_add(*b))
        .ok_or(Fault::Overflow("exposure"))?;
    let kept = if total == Amount::ZERO {
        share
    } else {
        for (nominator, backing) in &exposure.others {
            let part = mul_div(rest, backing.0, total.0)?;
            bank::release(cache, Pot::Rewards, nominator, part)?;
        }
        add(commission, mul_div(rest, exposure.own.0, total.0)?)?
    };
    bank::release(cache, Pot::Rewards, &m.validator, kept)?;
    Ok(kept)
}
