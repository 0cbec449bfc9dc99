//! Staking's records, with their frozen encodings and bounds.

use super::params::{
    MAX_COMMITTEE_BOUND, MAX_NOMINATORS_BOUND, MAX_NOMINATORS_PER_VALIDATOR_BOUND,
    MAX_UNBONDING_CHUNKS_BOUND, MAX_VALIDATORS_BOUND,
};
use crate::state::Record;
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::{
    Address, Amount, MAX_NOMINATION_TARGETS, MAX_P2P_ADDRESS_LEN, read_bounded_string, write_bytes,
};

/// Part of a bond on its way out: locked (and slashable) until block time `release_secs`
/// (seconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub amount: Amount,
    pub release_secs: u64,
}

/// What an account has staked. Its pot ([`crate::modules::bank::Pot::StakeBond`] of `id`)
/// holds exactly `active` plus every unbonding chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Staker {
    pub id: u64,
    /// The bond that backs: the self-bond of a validator, the nomination of a nominator.
    pub active: Amount,
    /// Oldest first.
    pub unbonding: Vec<Chunk>,
    /// The validators a nominator backs, sorted; empty for validators and for accounts that
    /// only wait for their unbonding.
    pub targets: Vec<Address>,
}

impl Staker {
    /// What its pot must hold.
    pub fn locked(&self) -> Option<Amount> {
        self.unbonding
            .iter()
            .try_fold(self.active, |sum, c| sum.checked_add(c.amount))
    }
}

/// Reads a list of at most `max` items, each with `item`.
fn take_list<'a, T>(
    buf: &mut Copying<'a>,
    max: usize,
    mut item: impl FnMut(&mut Copying<'a>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let n = u32::read(buf)? as usize;
    if n > max {
        return Err(Error::InvalidLength(n));
    }
    (0..n).map(|_| item(buf)).collect()
}

/// Reads a flag written as one byte, 0 or 1.
fn take_flag(buf: &mut Copying<'_>) -> Result<bool, Error> {
    match u8::read(buf)? {
        0 => Ok(false),
        1 => Ok(true),
        tag => Err(Error::InvalidEnum(tag)),
    }
}

fn put_len(len: usize, out: &mut Vec<u8>) {
    // Every list is bounded far below u32::MAX by its record's bound.
    (len as u32).write(out);
}

impl Record for Staker {
    const WHAT: &'static str = "staker";
    const MAX_BYTES: usize =
        8 + 16 + 4 + 24 * MAX_UNBONDING_CHUNKS_BOUND as usize + 4 + 32 * MAX_NOMINATION_TARGETS;
    fn put(&self, out: &mut Vec<u8>) {
        self.id.write(out);
        self.active.write(out);
        put_len(self.unbonding.len(), out);
        for c in &self.unbonding {
            c.amount.write(out);
            c.release_secs.write(out);
        }
        put_len(self.targets.len(), out);
        for t in &self.targets {
            t.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            id: u64::read(buf)?,
            active: Amount::read(buf)?,
            unbonding: take_list(buf, MAX_UNBONDING_CHUNKS_BOUND as usize, |b| {
                Ok(Chunk {
                    amount: Amount::read(b)?,
                    release_secs: u64::read(b)?,
                })
            })?,
            targets: take_list(buf, MAX_NOMINATION_TARGETS, Address::read)?,
        })
    }
}

/// Whether a validator stands for election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Stepped back by its own `Chill`.
    Chilled,
    /// Put out by the chain (slashing, downtime) until `until` (a height).
    Jailed {
        until: u64,
    },
}

/// A validator candidate. Its self-bond is its [`Staker::active`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub consensus_key: Address,
    pub p2p_address: String,
    /// Share of its nominators' rewards it keeps, in basis points.
    pub commission_bps: u32,
    pub status: Status,
    /// How many nominators name it.
    pub nominators: u32,
}

impl Record for Validator {
    const WHAT: &'static str = "validator";
    const MAX_BYTES: usize = 32 + 9 + MAX_P2P_ADDRESS_LEN + 4 + 9 + 4;
    fn put(&self, out: &mut Vec<u8>) {
        self.consensus_key.write(out);
        write_bytes(self.p2p_address.as_bytes(), out);
        self.commission_bps.write(out);
        match self.status {
            Status::Active => 0u8.write(out),
            Status::Chilled => 1u8.write(out),
            Status::Jailed { until } => {
                2u8.write(out);
                until.write(out);
            }
        }
        self.nominators.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            consensus_key: Address::read(buf)?,
            p2p_address: read_bounded_string(buf, MAX_P2P_ADDRESS_LEN)?,
            commission_bps: u32::read(buf)?,
            status: match u8::read(buf)? {
                0 => Status::Active,
                1 => Status::Chilled,
                2 => Status::Jailed {
                    until: u64::read(buf)?,
                },
                tag => return Err(Error::InvalidEnum(tag)),
            },
            nominators: u32::read(buf)?,
        })
    }
}

/// An account: the one that registered a consensus key, or the provider owner at a position
/// of an epoch's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(pub Address);

impl Record for Owner {
    const WHAT: &'static str = "owner";
    const MAX_BYTES: usize = 32;
    fn put(&self, out: &mut Vec<u8>) {
        self.0.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(Address::read(buf)?))
    }
}

/// The next staker id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub next_staker: u64,
}

impl Record for Counters {
    const WHAT: &'static str = "staking counters";
    const MAX_BYTES: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.next_staker.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            next_staker: u64::read(buf)?,
        })
    }
}

/// A sorted list of addresses: the validator candidates or the nominators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses(pub Vec<Address>);

impl Record for Addresses {
    const WHAT: &'static str = "address list";
    const MAX_BYTES: usize = 4 + 32 * MAX_NOMINATORS_BOUND as usize;
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.0.len(), out);
        for a in &self.0 {
            a.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        let max = MAX_NOMINATORS_BOUND.max(MAX_VALIDATORS_BOUND) as usize;
        Ok(Self(take_list(buf, max, Address::read)?))
    }
}

/// A committee member: its account, its consensus key and the stake backing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub validator: Address,
    pub consensus_key: Address,
    pub backing: Amount,
}

/// The committee of an epoch, sorted by validator address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committee {
    pub members: Vec<Member>,
    /// False when the election found too few backed candidates and the previous committee
    /// was kept (and at genesis).
    pub elected: bool,
}

impl Committee {
    /// The least backing of a member.
    pub fn minimum_backing(&self) -> Amount {
        self.members
            .iter()
            .map(|m| m.backing)
            .min()
            .unwrap_or(Amount::ZERO)
    }
}

impl Record for Committee {
    const WHAT: &'static str = "committee";
    const MAX_BYTES: usize = 1 + 4 + 80 * MAX_COMMITTEE_BOUND as usize;
    fn put(&self, out: &mut Vec<u8>) {
        u8::from(self.elected).write(out);
        put_len(self.members.len(), out);
        for m in &self.members {
            m.validator.write(out);
            m.consensus_key.write(out);
            m.backing.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        let elected = take_flag(buf)?;
        Ok(Self {
            elected,
            members: take_list(buf, MAX_COMMITTEE_BOUND as usize, |b| {
                Ok(Member {
                    validator: Address::read(b)?,
                    consensus_key: Address::read(b)?,
                    backing: Amount::read(b)?,
                })
            })?,
        })
    }
}

/// Who backs an elected validator in an epoch: its own share and each nominator's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    pub own: Amount,
    /// Sorted by nominator.
    pub others: Vec<(Address, Amount)>,
}

impl Record for Exposure {
    const WHAT: &'static str = "exposure";
    const MAX_BYTES: usize = 16 + 4 + 48 * MAX_NOMINATORS_PER_VALIDATOR_BOUND as usize;
    fn put(&self, out: &mut Vec<u8>) {
        self.own.write(out);
        put_len(self.others.len(), out);
        for (who, amount) in &self.others {
            who.write(out);
            amount.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            own: Amount::read(buf)?,
            others: take_list(buf, MAX_NOMINATORS_PER_VALIDATOR_BOUND as usize, |b| {
                Ok((Address::read(b)?, Amount::read(b)?))
            })?,
        })
    }
}

/// Most payments the providers' payout makes in one block: one for each owner paid, and one
/// for each epoch whose payout closes. The owners of a busy epoch are paid over the blocks
/// after it, oldest epoch first, so that no block's end grows with the market's traffic.
pub const PAYOUTS_PER_BLOCK: u32 = 256;
/// Most offences held at once: at most one per validator is pending or inside its window,
/// and candidates are bounded by [`MAX_VALIDATORS_BOUND`]; the margin covers validators that
/// left while their offence was still in its window.
pub const MAX_OFFENCES: u32 = 2 * MAX_VALIDATORS_BOUND;

/// A committee member's leader slots and votes in the running epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Blocks it proposed.
    pub proposed: u64,
    /// Views it led that the chain skipped.
    pub missed: u64,
    /// Certificates carried by the epoch's blocks that hold its vote.
    pub votes: u64,
}

impl Record for Tally {
    const WHAT: &'static str = "tally";
    const MAX_BYTES: usize = 24;
    fn put(&self, out: &mut Vec<u8>) {
        self.proposed.write(out);
        self.missed.write(out);
        self.votes.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            proposed: u64::read(buf)?,
            missed: u64::read(buf)?,
            votes: u64::read(buf)?,
        })
    }
}

/// How many of the running epoch's blocks carried a certificate of their parent that the
/// epoch's votes are counted in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Certificates(pub u64);

impl Record for Certificates {
    const WHAT: &'static str = "included certificates";
    const MAX_BYTES: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.0.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(u64::read(buf)?))
    }
}

/// A provider owner's accepted work units in an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Units(pub u64);

impl Record for Units {
    const WHAT: &'static str = "work units";
    const MAX_BYTES: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.0.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(u64::read(buf)?))
    }
}

/// The providers' side of an epoch: counted while the epoch runs ([`super::credit_units`]),
/// then paid in the blocks after its end. Its owners are the records of
/// [`super::worker_key`] at positions `0..owners`, each with its [`Units`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderPayout {
    /// Distinct owners credited in the epoch.
    pub owners: u64,
    /// Their units, summed: what the pool is divided by.
    pub units: u64,
    /// The part of `units` credited for free slots proven in capacity rounds; the rest is
    /// accepted work.
    pub capacity_units: u64,
    /// The providers' share of the epoch's rewards, fixed at its end (zero while it runs),
    /// held in [`crate::modules::bank::Pot::Payouts`] until paid.
    pub pool: Amount,
    /// Paid so far.
    pub paid: Amount,
    /// The position of the next owner to pay.
    pub next: u64,
}

impl ProviderPayout {
    /// What is left of the pool in the bank: the pool less what was paid.
    pub fn unpaid(&self) -> Option<Amount> {
        self.pool.checked_sub(self.paid)
    }
}

impl Record for ProviderPayout {
    const WHAT: &'static str = "provider payout";
    const MAX_BYTES: usize = 8 + 8 + 8 + 16 + 16 + 8;
    fn put(&self, out: &mut Vec<u8>) {
        self.owners.write(out);
        self.units.write(out);
        self.capacity_units.write(out);
        self.pool.write(out);
        self.paid.write(out);
        self.next.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            owners: u64::read(buf)?,
            units: u64::read(buf)?,
            capacity_units: u64::read(buf)?,
            pool: Amount::read(buf)?,
            paid: Amount::read(buf)?,
            next: u64::read(buf)?,
        })
    }
}

/// The ended epochs whose providers are not all paid yet: `first..end`, paid oldest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoutQueue {
    pub first: u64,
    pub end: u64,
}

impl Record for PayoutQueue {
    const WHAT: &'static str = "payout queue";
    const MAX_BYTES: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        self.first.write(out);
        self.end.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            first: u64::read(buf)?,
            end: u64::read(buf)?,
        })
    }
}

/// An equivocation reported against a validator, slashed once its deferral has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offence {
    /// The offender's account.
    pub validator: Address,
    /// The epoch of the fault: its committee sizes the slash, its exposure says who pays.
    pub epoch: u64,
    /// Block time the evidence was recorded, in seconds: the offence counts towards other
    /// offences' fractions for `evidence_window_secs` from then.
    pub reported_secs: u64,
    /// Block time from which the slash applies, in seconds.
    pub due_secs: u64,
    pub applied: bool,
}

/// Every offence pending or inside its window, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offences(pub Vec<Offence>);

impl Record for Offences {
    const WHAT: &'static str = "offences";
    const MAX_BYTES: usize = 4 + 57 * MAX_OFFENCES as usize;
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.0.len(), out);
        for o in &self.0 {
            o.validator.write(out);
            o.epoch.write(out);
            o.reported_secs.write(out);
            o.due_secs.write(out);
            u8::from(o.applied).write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(take_list(buf, MAX_OFFENCES as usize, |b| {
            Ok(Offence {
                validator: Address::read(b)?,
                epoch: u64::read(b)?,
                reported_secs: u64::read(b)?,
                due_secs: u64::read(b)?,
                applied: take_flag(b)?,
            })
        })?))
    }
}

/// What a committee member earned in an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReward {
    pub validator: Address,
    pub proposed: u64,
    pub missed: u64,
    /// Certificates of the epoch that carry its vote (of [`EpochRecord::certificates`]).
    pub votes: u64,
    /// Its points: [`super::PROPOSAL_POINTS`] per block it proposed plus
    /// [`super::VOTE_POINTS`] per vote, or zero when it was jailed for downtime.
    pub points: u64,
    /// Its share of the committee's pool, for it and its nominators.
    pub reward: Amount,
    /// What of it the validator kept: its commission and its own stake's part.
    pub kept: Amount,
    /// Whether the epoch jailed it for downtime.
    pub jailed: bool,
}

/// A slash applied during an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlashRecord {
    pub validator: Address,
    /// Distinct offenders inside the window when it applied (`k`).
    pub offenders: u32,
    /// The size of the fault epoch's committee (`n`).
    pub committee: u32,
    /// Taken from the offender and its nominators, into the insurance pool.
    pub amount: Amount,
}

/// What an epoch paid and slashed. Slashes are added as they apply; the payout fills the rest
/// in the epoch's last block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochRecord {
    /// Time of the epoch's last block, in milliseconds (zero while it runs).
    pub ended_ms: u64,
    /// Transaction fees the epoch collected.
    pub fees: Amount,
    /// The block reward minted for its blocks.
    pub minted: Amount,
    /// Paid to providers by accepted work so far: the payout runs over the blocks after the
    /// epoch's end, at most [`PAYOUTS_PER_BLOCK`] owners a block.
    pub to_providers: Amount,
    /// Units the providers' pool was divided by: accepted work and proven capacity.
    pub work_units: u64,
    /// The part of `work_units` credited for free slots proven in capacity rounds.
    pub capacity_units: u64,
    /// The providers' share of the epoch's rewards.
    pub providers_pool: Amount,
    /// Whether every provider owner has been paid (and the remainder moved to the treasury).
    pub providers_paid: bool,
    /// Blocks of the epoch that carried a certificate of their parent, in the same epoch:
    /// what each member's votes are measured against.
    pub certificates: u64,
    /// Remainders of the divisions and unclaimed pools, moved to the treasury (the providers'
    /// remainder once their payout is complete).
    pub to_treasury: Amount,
    /// The committee's members, in the committee's order.
    pub members: Vec<MemberReward>,
    /// The slashes applied during the epoch, the first [`MAX_OFFENCES`] of them.
    pub slashes: Vec<SlashRecord>,
}

impl Record for EpochRecord {
    const WHAT: &'static str = "epoch record";
    const MAX_BYTES: usize = 8
        + 16 * 5
        + 8
        + 1
        + 8
        + 8
        + 4
        + 97 * MAX_COMMITTEE_BOUND as usize
        + 4
        + 56 * MAX_OFFENCES as usize;
    fn put(&self, out: &mut Vec<u8>) {
        self.ended_ms.write(out);
        self.fees.write(out);
        self.minted.write(out);
        self.to_providers.write(out);
        self.work_units.write(out);
        self.capacity_units.write(out);
        self.providers_pool.write(out);
        u8::from(self.providers_paid).write(out);
        self.certificates.write(out);
        self.to_treasury.write(out);
        put_len(self.members.len(), out);
        for m in &self.members {
            m.validator.write(out);
            m.proposed.write(out);
            m.missed.write(out);
            m.votes.write(out);
            m.points.write(out);
            m.reward.write(out);
            m.kept.write(out);
            u8::from(m.jailed).write(out);
        }
        put_len(self.slashes.len(), out);
        for s in &self.slashes {
            s.validator.write(out);
            s.offenders.write(out);
            s.committee.write(out);
            s.amount.write(out);
        }
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            ended_ms: u64::read(buf)?,
            fees: Amount::read(buf)?,
            minted: Amount::read(buf)?,
            to_providers: Amount::read(buf)?,
            work_units: u64::read(buf)?,
            capacity_units: u64::read(buf)?,
            providers_pool: Amount::read(buf)?,
            providers_paid: take_flag(buf)?,
            certificates: u64::read(buf)?,
            to_treasury: Amount::read(buf)?,
            members: take_list(buf, MAX_COMMITTEE_BOUND as usize, |b| {
                Ok(MemberReward {
                    validator: Address::read(b)?,
                    proposed: u64::read(b)?,
                    missed: u64::read(b)?,
                    votes: u64::read(b)?,
                    points: u64::read(b)?,
                    reward: Amount::read(b)?,
                    kept: Amount::read(b)?,
                    jailed: take_flag(b)?,
                })
            })?,
            slashes: take_list(buf, MAX_OFFENCES as usize, |b| {
                Ok(SlashRecord {
                    validator: Address::read(b)?,
                    offenders: u32::read(b)?,
                    committee: u32::read(b)?,
                    amount: Amount::read(b)?,
                })
            })?,
        })
    }
}
