//! The market's parameters, and the bounds that keep them sane.

use crate::genesis::base_units;
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::Amount;
use serde::{Deserialize, Serialize};

/// Parameters of the compute market. Why they have these defaults is in ARCHITECTURE.md
/// ("Proof of task").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketParams {
    /// Smallest bond a provider locks to register.
    #[serde(with = "base_units")]
    pub min_provider_bond: Amount,
    /// Seconds a replica has to commit its result after assignment.
    pub commit_window_secs: u64,
    /// Seconds replicas have to reveal once every replica of the unit committed.
    pub reveal_window_secs: u64,
    /// Replicas a unit may get beyond its trust level before it fails.
    pub extra_replicas: u32,
    /// Votes by which a result must lead every other to win a dispute. At 2 an operator that
    /// also holds one deciding replica cannot tip a tie with its auditor by that one vote
    /// (it needs two of the deciders, about the square of its share of capacity); short of
    /// the margin, a unit out of replicas fails unpaid and nobody is punished.
    pub dispute_margin: u32,
    /// Chance, in parts per million, that a unit gets a hidden audit replica: drawn for every
    /// unit, whatever its trust level, once all its replicas committed.
    pub audit_ppm: u32,
    /// Reputation from which a provider's result weighs 2 instead of 1.
    pub trusted_reputation: u32,
    /// Confirmed results (results another replica agreed with) a provider needs before its
    /// result weighs 2.
    pub trusted_min_valid: u64,
    /// Seconds of block time since its first confirmed result (since its last catch, if it
    /// was caught) before a provider's result weighs 2: trusted weight holds a unit alone,
    /// checked by the hidden audit only, so it costs weeks of work that an independent
    /// requester paid for, however fast the confirmations come (0: no age needed).
    pub trusted_min_age_secs: u64,
    /// Share of provider payments added to the epoch's rewards (staking pays them out at the
    /// epoch's end with the block reward), in basis points.
    pub protocol_fee_bps: u32,
    /// Share of its bond a provider loses for a wrong result, in basis points.
    pub slash_wrong_bps: u32,
    /// Share of its bond a provider loses for a missed deadline, in basis points.
    pub slash_no_show_bps: u32,
    /// Most offers on the book.
    pub max_open_offers: u32,
    /// Most live offers of one provider.
    pub max_offers_per_provider: u32,
    /// Most open jobs.
    pub max_open_jobs: u32,
    /// Reputation below which a provider is not matched at all, whatever a job asks: a new
    /// provider (at [`super::REPUTATION_START`]) caught with one wrong result falls below it.
    pub min_match_reputation: u32,
    /// Most open replicas of a provider on probation: one without a confirmed result (a
    /// result another replica agreed with). A new identity cannot take many units before its
    /// first check.
    pub probation_slots: u32,
    /// Confirmed results that end a provider's probation.
    pub probation_results: u64,
    /// Most open jobs of one requester.
    pub max_open_jobs_per_account: u32,
    /// Most apps one developer publishes.
    pub max_apps_per_account: u32,
    /// Most seconds of block time an offer may stay on the book: its expiry is at most this far
    /// ahead of the block that posts it.
    pub max_offer_lifetime_secs: u64,
    /// Seconds a job's units may wait for providers: after them, units still waiting fail and
    /// the job takes no new replica; it closes with its refund once nothing runs.
    pub job_wait_window_secs: u64,
    /// Most replicas one block's batch match assigns; the rest wait for the next blocks.
    pub max_assignments_per_block: u32,
    /// Most deadlines falling due in one second, and most one block processes (unless a
    /// single second holds more); a deadline that would overfill a second falls due at the
    /// next second with room.
    pub max_deadlines_per_second: u32,
    /// Most slots a provider may hold: its open replicas plus the free slots of its offers.
    pub max_slots_per_provider: u32,
    /// Seconds of one window of the excuse budget: a provider's count of contradicted "could
    /// not finish" reports starts again at every multiple of it (in block time).
    pub excuse_window_secs: u64,
    /// Contradicted "could not finish" reports a provider is excused in one window; past it
    /// each counts as a no-show. A report confirmed by the other replicas never counts.
    pub max_excuses_per_window: u32,
    /// Seconds during which a transfer ties two accounts for reputation: work whose requester
    /// funded the provider's owner (or was funded by it), or shares the funder that first
    /// funded it, with that funding younger than this, is self-dealing and builds no record.
    pub self_dealing_window_secs: u64,
    /// What a provider must be paid for one confirmed result to earn its full reputation gain:
    /// a result paid less earns that fraction of it, one paid nothing earns nothing.
    #[serde(with = "base_units")]
    pub reputation_full_value: Amount,
    /// Seconds of block time in which a provider's reputation above the starting one halves:
    /// a record is worth what its recent work says.
    pub reputation_half_life_secs: u64,
    /// Chance, in parts per million, that a block opens a capacity round when none is open
    /// (0: never). About one round every `1,000,000 / capacity_round_ppm` blocks, at blocks
    /// nobody can name in advance.
    pub capacity_round_ppm: u32,
    /// Seconds a capacity round takes proofs after the block that opened it.
    pub capacity_window_secs: u64,
    /// Hashes one free slot's share of a capacity proof takes on average: the work a
    /// provider with one core per slot does in about that many hashes' time, and one with
    /// fewer cores proportionally longer ([`exo_types::CapacityChallenge`]).
    pub capacity_hashes_per_slot: u64,
    /// Units of the providers' epoch reward a proven free slot earns, as one accepted work
    /// unit earns one.
    pub capacity_units_per_slot: u64,
    /// Highest price per compute unit at which an offer's free slots earn capacity rewards:
    /// capacity priced out of the market serves nobody.
    #[serde(with = "base_units")]
    pub capacity_max_price: Amount,
}

impl Default for MarketParams {
    fn default() -> Self {
        Self {
            min_provider_bond: Amount::from_exo(10),
            commit_window_secs: 600,
            reveal_window_secs: 300,
            extra_replicas: 2,
            dispute_margin: 2,
            audit_ppm: 100_000,
            trusted_reputation: 800,
            trusted_min_valid: 20,
            // Two weeks: an identity lies alone about `(1 - p) / p` times before an audit
            // catches it, and then waits two weeks again (ARCHITECTURE.md, "Trust takes
            // time").
            trusted_min_age_secs: 14 * 86_400,
            protocol_fee_bps: 200,
            slash_wrong_bps: 2_000,
            slash_no_show_bps: 200,
            max_open_offers: 10_000,
            max_offers_per_provider: 8,
            max_open_jobs: 1_000,
            min_match_reputation: 400,
            probation_slots: 1,
            probation_results: 1,
            max_open_jobs_per_account: 16,
            max_apps_per_account: 16,
            max_offer_lifetime_secs: 1_000_000,
            // A day: a job nobody takes within it is refunded.
            job_wait_window_secs: 86_400,
            max_assignments_per_block: 4_096,
            max_deadlines_per_second: 32_768,
            max_slots_per_provider: 1_024,
            excuse_window_secs: 86_400,
            max_excuses_per_window: 16,
            // Thirty days: a Sybil funded for self-dealing waits a month before its work
            // with its funder counts, and an unrelated customer of the same exchange is not
            // held back longer.
            self_dealing_window_secs: 30 * 86_400,
            // One unit of 10^9 fuel at 1 EXO: the devnet's units earn the full gain.
            reputation_full_value: Amount::from_exo(1),
            // Thirty days: a trusted provider idle for about three weeks falls below 800.
            reputation_half_life_secs: 30 * 86_400,
            // About one round in a thousand blocks: every quarter of an hour at a block a
            // second.
            capacity_round_ppm: 1_000,
            capacity_window_secs: 20,
            // About 3.4 seconds of one core of the development machine (5 million hashes a
            // second, docs/benchmarks.md, "Capacity proofs"): a machine 4 times slower still
            // answers within the window with one core per slot, and one that claims 6 slots
            // per core does not.
            capacity_hashes_per_slot: 1 << 24,
            capacity_units_per_slot: 1,
            capacity_max_price: Amount::from_exo(10),
        }
    }
}

/// Why market parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error(
        "extra_replicas must be at most 9 (a unit holds at most 16 replicas) and dispute_margin 1 to extra_replicas (room for the deciders a dispute needs)"
    )]
    Replicas,
    #[error("commit, reveal and job wait windows must be {min} to {max} seconds")]
    Windows { min: u64, max: u64 },
    #[error("basis points must be at most 10000 and audit_ppm at most 1000000")]
    Shares,
    #[error(
        "probation_slots must be at least 1 and min_match_reputation at most the starting reputation"
    )]
    Probation,
    #[error(
        "max_open_offers must be 1 to {max}, max_open_jobs 1 to {max} and max_offers_per_provider at least 1"
    )]
    Lists { max: u32 },
    #[error(
        "max_open_jobs_per_account must be 1 to max_open_jobs, max_apps_per_account 1 to {max_apps}, max_offers_per_provider at most {max_offers} and max_offer_lifetime_secs 1 to {max_lifetime}"
    )]
    Accounts {
        max_apps: u32,
        max_offers: u32,
        max_lifetime: u64,
    },
    #[error(
        "max_assignments_per_block must be 1 to {max_assignments} and at most max_deadlines_per_second, max_deadlines_per_second at most {max_deadlines}, max_slots_per_provider at least 1"
    )]
    Batch {
        max_assignments: u32,
        max_deadlines: u32,
    },
    #[error(
        "excuse_window_secs must be from commit_window_secs + reveal_window_secs to {max_window} seconds and max_excuses_per_window at most {max_excuses}"
    )]
    Excuses { max_window: u64, max_excuses: u32 },
    #[error(
        "self_dealing_window_secs and reputation_half_life_secs must be {min} to {max} seconds, trusted_min_age_secs at most {max} and reputation_full_value above 0"
    )]
    Reputation { min: u64, max: u64 },
    #[error(
        "capacity_round_ppm must be at most 1000000, capacity_window_secs {min_window} to {max_window}, capacity_hashes_per_slot 1 to {max_hashes} and capacity_units_per_slot at most {max_units}"
    )]
    Capacity {
        min_window: u64,
        max_window: u64,
        max_hashes: u64,
        max_units: u64,
    },
    #[error(
        "audit_ppm and slash_wrong_bps must be above 0: with either at 0 a lie on a unit held alone is never caught or costs nothing when caught, so lying pays"
    )]
    Deterrence,
}

/// Most contradicted "could not finish" reports the parameters may excuse per window: a
/// budget is a bound, never a way around the no-show rule.
pub const MAX_EXCUSES_PER_WINDOW: u32 = 1_024;

/// Most assignments a block's log may hold: one [`super::records::AssignmentList`] record of
/// this many entries stays within its bound.
pub const MAX_ASSIGNMENTS_PER_BLOCK: u32 = 16_384;
/// Most deadlines one second may hold: the block that processes a second loads all of its
/// deadlines at once.
pub const MAX_DEADLINES_PER_SECOND: u32 = 32_768;

/// Most offers one provider may hold, whatever the parameters say: its offers are listed in
/// one record ([`super::records::Holdings`]).
pub const MAX_OFFERS_PER_PROVIDER: u32 = 64;
/// Shortest commit, reveal or job wait window the parameters may set, in seconds: longer
/// than the two seconds a block's time may run ahead of a validator's clock, so that a
/// proposer with a fast clock cannot close a window in the block that opens it.
pub const MIN_WINDOW_SECS: u64 = 3;
/// Longest commit, reveal, job wait or excuse window the parameters may set, in seconds: a
/// year, past any use, and far from overflowing when added to a block's time.
pub const MAX_WINDOW_SECS: u64 = 365 * 86_400;

/// Longest offer lifetime the parameters may allow, in seconds: far enough for any use, and
/// small enough that `now + lifetime` cannot overflow.
pub const MAX_OFFER_LIFETIME: u64 = 1 << 40;

/// Longest capacity round, in seconds: a round is a burst of work, not a standing duty.
pub const MAX_CAPACITY_WINDOW_SECS: u64 = 3_600;
/// Most hashes per slot a capacity round may ask: about an hour of one core.
pub const MAX_CAPACITY_HASHES_PER_SLOT: u64 = 1 << 34;
/// Most reward units one proven slot may earn: a round's credit stays far from overflowing
/// the epoch's count.
pub const MAX_CAPACITY_UNITS_PER_SLOT: u64 = 1_000;

/// Most ids a list record (the book, the open jobs) may hold: far below the store's value bound.
pub const MAX_LIST_IDS: u32 = 100_000;

impl MarketParams {
    pub fn validate(&self) -> Result<(), ParamsError> {
        // A trust-1 unit held alone and its audit tie; `dispute_margin` deciders must then
        // fit in its `1 + extra_replicas + 1` replicas.
        if self.extra_replicas > 9
            || self.dispute_margin == 0
            || self.dispute_margin > self.extra_replicas
        {
            return Err(ParamsError::Replicas);
        }
        let window = |w: u64| (MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&w);
        if !window(self.commit_window_secs)
            || !window(self.reveal_window_secs)
            || !window(self.job_wait_window_secs)
        {
            return Err(ParamsError::Windows {
                min: MIN_WINDOW_SECS,
                max: MAX_WINDOW_SECS,
            });
        }
        if self.protocol_fee_bps > 10_000
            || self.slash_wrong_bps > 10_000
            || self.slash_no_show_bps > 10_000
            || self.audit_ppm > 1_000_000
        {
            return Err(ParamsError::Shares);
        }
        // The deterrence inequality (ARCHITECTURE.md, "Penalties"): a caught lie must cost
        // more than lying gains at the audit rate, which needs both above zero.
        if self.audit_ppm == 0 || self.slash_wrong_bps == 0 {
            return Err(ParamsError::Deterrence);
        }
        if self.probation_slots == 0 || self.min_match_reputation > super::REPUTATION_START {
            return Err(ParamsError::Probation);
        }
        if self.max_open_offers == 0
            || self.max_open_offers > MAX_LIST_IDS
            || self.max_open_jobs == 0
            || self.max_open_jobs > MAX_LIST_IDS
            || self.max_offers_per_provider == 0
        {
            return Err(ParamsError::Lists { max: MAX_LIST_IDS });
        }
        if self.max_open_jobs_per_account == 0
            || self.max_open_jobs_per_account > self.max_open_jobs
            || self.max_apps_per_account == 0
            || self.max_apps_per_account as usize > super::MAX_APPS
            || self.max_offers_per_provider > MAX_OFFERS_PER_PROVIDER
            || self.max_offer_lifetime_secs == 0
            || self.max_offer_lifetime_secs > MAX_OFFER_LIFETIME
        {
            return Err(ParamsError::Accounts {
                max_apps: super::MAX_APPS as u32,
                max_offers: MAX_OFFERS_PER_PROVIDER,
                max_lifetime: MAX_OFFER_LIFETIME,
            });
        }
        // One block's commit deadlines fall due in one second: they fit its list (blocks of
        // the same second that overfill it defer theirs to the next seconds).
        if self.max_assignments_per_block == 0
            || self.max_assignments_per_block > MAX_ASSIGNMENTS_PER_BLOCK
            || self.max_assignments_per_block > self.max_deadlines_per_second
            || self.max_deadlines_per_second > MAX_DEADLINES_PER_SECOND
            || self.max_slots_per_provider == 0
        {
            return Err(ParamsError::Batch {
                max_assignments: MAX_ASSIGNMENTS_PER_BLOCK,
                max_deadlines: MAX_DEADLINES_PER_SECOND,
            });
        }
        // A window shorter than a unit's commit and reveal would let a provider's budget start
        // again before the reports it excused were even judged.
        let lifetime = self
            .commit_window_secs
            .saturating_add(self.reveal_window_secs);
        if self.excuse_window_secs < lifetime
            || self.excuse_window_secs > MAX_WINDOW_SECS
            || self.max_excuses_per_window > MAX_EXCUSES_PER_WINDOW
        {
            return Err(ParamsError::Excuses {
                max_window: MAX_WINDOW_SECS,
                max_excuses: MAX_EXCUSES_PER_WINDOW,
            });
        }
        // A zero value would divide by zero; a window or half-life of zero would make every
        // tie or record forgotten at once, and one past a year overflows nothing but serves
        // no use.
        if !window(self.self_dealing_window_secs)
            || !window(self.reputation_half_life_secs)
            || self.trusted_min_age_secs > MAX_WINDOW_SECS
            || self.reputation_full_value == Amount::ZERO
        {
            return Err(ParamsError::Reputation {
                min: MIN_WINDOW_SECS,
                max: MAX_WINDOW_SECS,
            });
        }
        if self.capacity_round_ppm > 1_000_000
            || !(MIN_WINDOW_SECS..=MAX_CAPACITY_WINDOW_SECS).contains(&self.capacity_window_secs)
            || self.capacity_hashes_per_slot == 0
            || self.capacity_hashes_per_slot > MAX_CAPACITY_HASHES_PER_SLOT
            || self.capacity_units_per_slot > MAX_CAPACITY_UNITS_PER_SLOT
        {
            return Err(ParamsError::Capacity {
                min_window: MIN_WINDOW_SECS,
                max_window: MAX_CAPACITY_WINDOW_SECS,
                max_hashes: MAX_CAPACITY_HASHES_PER_SLOT,
                max_units: MAX_CAPACITY_UNITS_PER_SLOT,
            });
        }
        Ok(())
    }

    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        self.min_provider_bond.write(out);
        self.commit_window_secs.write(out);
        self.reveal_window_secs.write(out);
        self.extra_replicas.write(out);
        self.dispute_margin.write(out);
        self.audit_ppm.write(out);
        self.trusted_reputation.write(out);
        self.trusted_min_valid.write(out);
        self.trusted_min_age_secs.write(out);
        self.protocol_fee_bps.write(out);
        self.slash_wrong_bps.write(out);
        self.slash_no_show_bps.write(out);
        self.max_open_offers.write(out);
        self.max_offers_per_provider.write(out);
        self.max_open_jobs.write(out);
        self.min_match_reputation.write(out);
        self.probation_slots.write(out);
        self.probation_results.write(out);
        self.max_open_jobs_per_account.write(out);
        self.max_apps_per_account.write(out);
        self.max_offer_lifetime_secs.write(out);
        self.job_wait_window_secs.write(out);
        self.max_assignments_per_block.write(out);
        self.max_deadlines_per_second.write(out);
        self.max_slots_per_provider.write(out);
        self.excuse_window_secs.write(out);
        self.max_excuses_per_window.write(out);
        self.self_dealing_window_secs.write(out);
        self.reputation_full_value.write(out);
        self.reputation_half_life_secs.write(out);
        self.capacity_round_ppm.write(out);
        self.capacity_window_secs.write(out);
        self.capacity_hashes_per_slot.write(out);
        self.capacity_units_per_slot.write(out);
        self.capacity_max_price.write(out);
    }

    pub(crate) fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            min_provider_bond: Amount::read(buf)?,
            commit_window_secs: u64::read(buf)?,
            reveal_window_secs: u64::read(buf)?,
            extra_replicas: u32::read(buf)?,
            dispute_margin: u32::read(buf)?,
            audit_ppm: u32::read(buf)?,
            trusted_reputation: u32::read(buf)?,
            trusted_min_valid: u64::read(buf)?,
            trusted_min_age_secs: u64::read(buf)?,
            protocol_fee_bps: u32::read(buf)?,
            slash_wrong_bps: u32::read(buf)?,
            slash_no_show_bps: u32::read(buf)?,
            max_open_offers: u32::read(buf)?,
            max_offers_per_provider: u32::read(buf)?,
            max_open_jobs: u32::read(buf)?,
            min_match_reputation: u32::read(buf)?,
            probation_slots: u32::read(buf)?,
            probation_results: u64::read(buf)?,
            max_open_jobs_per_account: u32::read(buf)?,
            max_apps_per_account: u32::read(buf)?,
            max_offer_lifetime_secs: u64::read(buf)?,
            job_wait_window_secs: u64::read(buf)?,
            max_assignments_per_block: u32::read(buf)?,
            max_deadlines_per_second: u32::read(buf)?,
            max_slots_per_provider: u32::read(buf)?,
            excuse_window_secs: u64::read(buf)?,
            max_excuses_per_window: u32::read(buf)?,
            self_dealing_window_secs: u64::read(buf)?,
            reputation_full_value: Amount::read(buf)?,
            reputation_half_life_secs: u64::read(buf)?,
            capacity_round_ppm: u32::read(buf)?,
            capacity_window_secs: u64::read(buf)?,
            capacity_hashes_per_slot: u64::read(buf)?,
            capacity_units_per_slot: u64::read(buf)?,
            capacity_max_price: Amount::read(buf)?,
        })
    }
}
