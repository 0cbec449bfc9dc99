//! The staking module's parameters, and the bounds that keep them sane.

use crate::genesis::base_units;
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::{Amount, MAX_NOMINATION_TARGETS};
use serde::{Deserialize, Serialize};

/// Most validator candidates any chain may allow: the list of candidates is one record of
/// 32 bytes per candidate, and the election's work grows with it.
pub const MAX_VALIDATORS_BOUND: u32 = 1_000;
/// Most nominators any chain may allow (the list of nominators is one record of 32 bytes
/// each, under the store's 1 MiB value bound).
pub const MAX_NOMINATORS_BOUND: u32 = 20_000;
/// Most nominators of one validator any chain may allow: its exposure record lists them.
pub const MAX_NOMINATORS_PER_VALIDATOR_BOUND: u32 = 1_024;
/// Most unbonding chunks of one account any chain may allow.
pub const MAX_UNBONDING_CHUNKS_BOUND: u32 = 64;
/// Largest committee any chain may elect.
pub const MAX_COMMITTEE_BOUND: u32 = 256;
/// Most balancing passes after each election round.
pub const MAX_BALANCE_ROUNDS: u32 = 100;
/// Longest unbonding the parameters may allow, in seconds: far beyond any use, and small
/// enough that a block's time plus it cannot overflow.
pub const MAX_UNBONDING_SECS: u64 = 1 << 40;
const DAY_SECS: u64 = 86_400;
/// Largest amount an epoch may mint (`block_reward` times the blocks of an epoch): a trillion
/// EXO, far beyond any sane schedule, and small enough that every product of the payout
/// (by points, by basis points) stays within u128.
pub const MAX_EPOCH_MINT: Amount = Amount::from_exo(1_000_000_000_000);
/// Longest jail the parameters may allow, in blocks: a height plus it cannot overflow.
pub const MAX_JAIL_BLOCKS: u64 = 1 << 40;
/// Basis points in a whole.
pub const BPS: u32 = 10_000;

/// The most election work ([`StakingParams::election_work`]) the parameters may allow: 24
/// times the defaults' (at most about 250 ms on the 2-vCPU development machine over the
/// ballot shapes measured, within the leader's one-second timeout with room for the rest of
/// the block; docs/benchmarks.md, "Election"). With the default ballots that is a committee
/// of at most 33; larger committees need fewer nominators or targets.
pub const MAX_ELECTION_WORK: u128 = 24 * 5_253_120;

/// Parameters of staking. Why they have these defaults is in ARCHITECTURE.md ("Staking and
/// the balanced election").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StakingParams {
    /// Smallest self-bond a validator registers with and keeps while it stands.
    #[serde(with = "base_units")]
    pub min_self_bond: Amount,
    /// Smallest bond a nominator backs its targets with.
    #[serde(with = "base_units")]
    pub min_nomination: Amount,
    /// Self-bond locked from each genesis validator's own account at genesis (zero: the
    /// genesis validators stand without a bond until they are backed).
    #[serde(with = "base_units")]
    pub genesis_self_bond: Amount,
    /// Members the election picks for each epoch.
    pub committee_size: u32,
    /// Most validator candidates.
    pub max_validators: u32,
    /// Most nominators.
    pub max_nominators: u32,
    /// Most nominators backing one validator.
    pub max_nominators_per_validator: u32,
    /// Most validators one nomination backs (at most 16).
    pub max_targets: u32,
    /// Most unbonding chunks one account has at a time.
    pub max_unbonding_chunks: u32,
    /// Seconds of block time an unbonded amount stays locked (and slashable) before it can be
    /// withdrawn.
    pub unbonding_secs: u64,
    /// Seconds of block time after a fault during which its evidence may still be included.
    pub evidence_window_secs: u64,
    /// Seconds of block time a slash waits before it applies, so that it can be reviewed.
    pub slash_deferral_secs: u64,
    /// Balancing passes after each election round.
    pub balance_rounds: u32,
    /// Epochs whose committees' exposures (who backed whom, by how much) are kept.
    pub exposure_epochs: u64,
    /// Tokens minted for each block, paid out with the epoch's fees at the epoch's end: the
    /// only minting after genesis.
    #[serde(with = "base_units")]
    pub block_reward: Amount,
    /// Share of the epoch's rewards that goes to providers by accepted work units, in basis
    /// points; the rest goes to the committee by points.
    pub provider_share_bps: u32,
    /// Least fraction of its exposure an equivocator loses, in basis points, however few
    /// offenders the window holds.
    pub slash_floor_bps: u32,
    /// A member whose missed leader slots in an epoch exceed this share of its slots (proposed
    /// plus missed), in basis points, loses the epoch's points and is jailed.
    pub downtime_threshold_bps: u32,
    /// ...provided it missed at least this many slots: a short epoch's one or two misses are
    /// noise, not downtime.
    pub downtime_min_missed: u64,
    /// Blocks a jailed validator waits before its `Unjail` is accepted.
    pub jail_blocks: u64,
}

impl Default for StakingParams {
    fn default() -> Self {
        Self {
            min_self_bond: Amount::from_exo(1_000),
            min_nomination: Amount::from_exo(10),
            genesis_self_bond: Amount::ZERO,
            committee_size: 4,
            max_validators: 128,
            max_nominators: 4_096,
            max_nominators_per_validator: 256,
            max_targets: MAX_NOMINATION_TARGETS as u32,
            max_unbonding_chunks: 16,
            // 21 days, 14 days and 2 days: as long as the common proof-of-stake chains keep
            // a bond at stake after it left, and a fortnight for evidence to surface.
            unbonding_secs: 21 * DAY_SECS,
            evidence_window_secs: 14 * DAY_SECS,
            slash_deferral_secs: 2 * DAY_SECS,
            balance_rounds: 10,
            exposure_epochs: 8,
            // One EXO a block; 30% of each epoch's rewards to the providers whose accepted work
            // the epoch settled, the rest to the committee.
            block_reward: Amount::from_exo(1),
            provider_share_bps: 3_000,
            // Polkadot's (3k/n)^2 reaches everything at a third of the committee; a lone
            // offender still loses 1%. Cosmos slashes 5% flat for a double sign.
            slash_floor_bps: 100,
            // Lenient, as the common chains are: more than half of at least ten slots missed,
            // an hour out at a block a second.
            downtime_threshold_bps: 5_000,
            downtime_min_missed: 10,
            jail_blocks: 3_600,
        }
    }
}

/// Why staking parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingParamsError {
    #[error(
        "unbonding_secs ({unbonding}) must be longer than evidence_window_secs plus \
         slash_deferral_secs ({exposed}), otherwise a bond could leave before its fault is \
         punished, and at most {MAX_UNBONDING_SECS}"
    )]
    Unbonding { unbonding: u64, exposed: u64 },
    #[error(
        "committee_size must be 1 to {max} and at most max_validators; max_validators at most \
         {MAX_VALIDATORS_BOUND}"
    )]
    Committee { max: u32 },
    #[error(
        "max_nominators must be 1 to {MAX_NOMINATORS_BOUND}, max_nominators_per_validator 1 to \
         {MAX_NOMINATORS_PER_VALIDATOR_BOUND}, max_targets 1 to {MAX_NOMINATION_TARGETS} and \
         max_unbonding_chunks 1 to {MAX_UNBONDING_CHUNKS_BOUND}"
    )]
    Lists,
    #[error("balance_rounds must be at most {MAX_BALANCE_ROUNDS} and exposure_epochs at least 2")]
    Election,
    #[error(
        "the election of committee_size seats over max_validators candidates and max_nominators \
         ballots of max_targets, balanced balance_rounds times, would cost {work} units of \
         work, more than the {MAX_ELECTION_WORK} one block can take"
    )]
    ElectionWork { work: u128 },
    #[error("min_self_bond and min_nomination must be above zero")]
    Minimums,
    #[error(
        "provider_share_bps and slash_floor_bps must be at most {BPS}, downtime_threshold_bps 1 \
         to {BPS}, downtime_min_missed at least 1 and jail_blocks 1 to {MAX_JAIL_BLOCKS}"
    )]
    Rewards,
    #[error(
        "block_reward times epoch_length ({blocks} blocks) must be at most {MAX_EPOCH_MINT} \
         base units"
    )]
    EpochMint { blocks: u64 },
}

impl StakingParams {
    pub fn validate(&self) -> Result<(), StakingParamsError> {
        let exposed = self
            .evidence_window_secs
            .saturating_add(self.slash_deferral_secs);
        if self.unbonding_secs <= exposed || self.unbonding_secs > MAX_UNBONDING_SECS {
            return Err(StakingParamsError::Unbonding {
                unbonding: self.unbonding_secs,
                exposed,
            });
        }
        if !(1..=MAX_COMMITTEE_BOUND).contains(&self.committee_size)
            || self.committee_size > self.max_validators
            || self.max_validators > MAX_VALIDATORS_BOUND
        {
            return Err(StakingParamsError::Committee {
                max: MAX_COMMITTEE_BOUND,
            });
        }
        let within = |v: u32, max: u32| (1..=max).contains(&v);
        if !within(self.max_nominators, MAX_NOMINATORS_BOUND)
            || !within(
                self.max_nominators_per_validator,
                MAX_NOMINATORS_PER_VALIDATOR_BOUND,
            )
            || !within(self.max_targets, MAX_NOMINATION_TARGETS as u32)
            || !within(self.max_unbonding_chunks, MAX_UNBONDING_CHUNKS_BOUND)
        {
            return Err(StakingParamsError::Lists);
        }
        if self.balance_rounds > MAX_BALANCE_ROUNDS || self.exposure_epochs < 2 {
            return Err(StakingParamsError::Election);
        }
        let work = self.election_work();
        if work > MAX_ELECTION_WORK {
            return Err(StakingParamsError::ElectionWork { work });
        }
        if self.min_self_bond == Amount::ZERO || self.min_nomination == Amount::ZERO {
            return Err(StakingParamsError::Minimums);
        }
        if self.provider_share_bps > BPS
            || self.slash_floor_bps > BPS
            || !(1..=BPS).contains(&self.downtime_threshold_bps)
            || self.downtime_min_missed == 0
            || !(1..=MAX_JAIL_BLOCKS).contains(&self.jail_blocks)
        {
            return Err(StakingParamsError::Rewards);
        }
        Ok(())
    }

    /// The most work the election in an epoch's last block can cost under these parameters,
    /// in the units of [`MAX_ELECTION_WORK`]: `seats^1.5 x edges x max(rounds, 1)`, with
    /// `edges` every ballot's targets at the limits (each nominator backing `max_targets`,
    /// each candidate itself). Measured (`cargo bench -p exo-ledger --bench election`), the
    /// time grows about so, a little faster with the seats: 7 ms at the defaults (4 seats),
    /// 52 ms at 16 seats, 190 ms at 33 and 620 ms at 64 over the same ballots
    /// (docs/benchmarks.md, "Election").
    pub fn election_work(&self) -> u128 {
        let seats = u128::from(self.committee_size);
        let edges = u128::from(self.max_nominators) * u128::from(self.max_targets)
            + u128::from(self.max_validators);
        let per_seat = edges * u128::from(self.balance_rounds.max(1));
        // seats^1.5 x per_seat, as the square root of seats^3 x per_seat^2: within u128 at
        // every bound (256^3 x (321,000 x 100)^2 < 2^75).
        (seats * seats * seats * per_seat * per_seat).isqrt()
    }

    /// What an epoch of `blocks` blocks mints, if the parameters allow it.
    pub fn epoch_mint(&self, blocks: u64) -> Result<Amount, StakingParamsError> {
        self.block_reward
            .checked_mul(u128::from(blocks))
            .filter(|mint| *mint <= MAX_EPOCH_MINT)
            .ok_or(StakingParamsError::EpochMint { blocks })
    }

    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        self.min_self_bond.write(out);
        self.min_nomination.write(out);
        self.genesis_self_bond.write(out);
        for v in [
            self.committee_size,
            self.max_validators,
            self.max_nominators,
            self.max_nominators_per_validator,
            self.max_targets,
            self.max_unbonding_chunks,
        ] {
            v.write(out);
        }
        self.unbonding_secs.write(out);
        self.evidence_window_secs.write(out);
        self.slash_deferral_secs.write(out);
        self.balance_rounds.write(out);
        self.exposure_epochs.write(out);
        self.block_reward.write(out);
        self.provider_share_bps.write(out);
        self.slash_floor_bps.write(out);
        self.downtime_threshold_bps.write(out);
        self.downtime_min_missed.write(out);
        self.jail_blocks.write(out);
    }

    pub(crate) fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            min_self_bond: Amount::read(buf)?,
            min_nomination: Amount::read(buf)?,
            genesis_self_bond: Amount::read(buf)?,
            committee_size: u32::read(buf)?,
            max_validators: u32::read(buf)?,
            max_nominators: u32::read(buf)?,
            max_nominators_per_validator: u32::read(buf)?,
            max_targets: u32::read(buf)?,
            max_unbonding_chunks: u32::read(buf)?,
            unbonding_secs: u64::read(buf)?,
            evidence_window_secs: u64::read(buf)?,
            slash_deferral_secs: u64::read(buf)?,
            balance_rounds: u32::read(buf)?,
            exposure_epochs: u64::read(buf)?,
            block_reward: Amount::read(buf)?,
            provider_share_bps: u32::read(buf)?,
            slash_floor_bps: u32::read(buf)?,
            downtime_threshold_bps: u32::read(buf)?,
            downtime_min_missed: u64::read(buf)?,
            jail_blocks: u64::read(buf)?,
        })
    }
}
