//! The compute market in the ledger: providers, offers, apps, jobs, the batch match at the end
//! of every block, commit-reveal of results, acceptance, reputation and settlement.
//!
//! The rules, in short (ARCHITECTURE.md, "Proof of task", says why):
//! - A job's worst case goes into escrow: every unit at `max_replicas` replicas, each paid
//!   `fuel_limit` at the job's maximum price plus the protocol fee, plus the app royalty.
//! - A provider's weight is 2 if it is trusted (reputation and confirmed results), else 1.
//!   A new unit gets the replicas that reach its trust level in one batch: first from trusted
//!   providers only (`ceil(trust / 2)` of them), else `trust` replicas from anyone. The
//!   checking replicas (all but a new unit's first) are dealt at random, from the block seed,
//!   among the replicas the batch placed for the job, so the book's order cannot pair the same
//!   providers again and again.
//! - Every unit, whatever its trust level and however trusted its replicas, gets one more
//!   replica, a hidden audit, with probability `audit_ppm`. It is drawn once every replica it
//!   had committed, from the seed of the block [`records::AUDIT_SEED_DELAY`] blocks later,
//!   and sought like any other replica: until every replica committed, nothing on chain
//!   differs between a unit that will be audited and one that will not.
//! - Providers below `min_match_reputation` are not matched at all; a provider with fewer than
//!   `probation_results` confirmed results is on probation: it starts new units only while it
//!   holds fewer than `probation_slots` open replicas, and takes at most `probation_slots`
//!   replicas of running units per batch.
//! - Replicas commit `sha256(digest, fuel, salt, provider)` and a seal of the result
//!   ([`exo_types::result_seal`]); once every open replica of the unit committed and its
//!   audit is drawn (and its audit replica, if any, committed too), the seals are judged like
//!   results: without a verdict a deciding replica is sought before anyone reveals, from
//!   providers past probation only; with one, reveals open. Each entry of a commit or reveal batch is applied on its
//!   own: a stale one (its replica was settled, replaced or already done) is skipped; a wrong
//!   one (not the sender's, unknown, early, not opening its commitment) refuses the batch.
//! - A unit is judged once no replica can still reveal (all revealed, or the reveal deadline
//!   passed). Unanimous results are accepted if their weight reaches the trust level. When
//!   results disagree every block that dealt replicas holding a result counts 1 for it, and a
//!   result needs at least `max(trust, 2)` such votes and more than any other. Accepted replicas are paid `fuel x their price`, the
//!   developer gets the royalty once, the epoch's rewards the protocol fee; replicas with another
//!   result lose part of their bond (burnt) and reputation. Without a verdict the unit gets
//!   another replica, up to `max_replicas`, then fails.
//! - A confirmed result builds a record only when paid, by a requester not tied to the
//!   provider's owner by a recent transfer, from confirmers not tied to it; the gain scales
//!   with the value paid and shrinks with each repeat of the same co-replica, and reputation
//!   above the start decays with block time (`reputation.rs`).
//! - A replica that misses its commit or reveal deadline is a no-show: it loses a little bond
//!   and reputation, and a replacement is sought from another provider.
//! - A replica whose run ended on something its machine decides (a stack overflow, the wall
//!   clock, memory the host could not give) commits and reveals a "could not finish" report
//!   ([`exo_types::Unfinished`]) with the fuel it burnt. Reports are not results: when
//!   `max(trust, 2)` replicas report and none has a result, the unit fails and each reporter
//!   is paid for the least fuel reported; when other replicas agree on a result, the
//!   reporters go unpaid and spend one excuse of their provider's budget per window, and
//!   past it count as no-shows; otherwise another replica is sought.
//! - When every unit is accepted or failed (or, for a cancelled job, nothing runs any more),
//!   the unspent escrow returns to the requester.
//! - Capacity rounds open at blocks drawn from the seed (`capacity_round_ppm`); while one is
//!   open, every offer posted before it may prove its free slots once, with hashes scaled to
//!   the slots ([`exo_types::CapacityChallenge`]), and earns its owner reward units of the
//!   epoch's providers' share (`capacity.rs`).

mod apps;
mod audit;
mod batch;
mod capacity;
mod deadlines;
mod jobs;
pub mod keys;
mod offers;
mod params;
mod proof;
mod providers;
pub mod queries;
pub mod records;
mod refusal;
mod reputation;
mod settlement;
#[cfg(test)]
mod tests;

pub use apps::MAX_APPS;
pub use jobs::max_units_per_job;
pub use params::{
    MAX_ASSIGNMENTS_PER_BLOCK, MAX_DEADLINES_PER_SECOND, MAX_EXCUSES_PER_WINDOW, MAX_LIST_IDS,
    MAX_OFFER_LIFETIME, MAX_OFFERS_PER_PROVIDER, MAX_WINDOW_SECS, MIN_WINDOW_SECS, MarketParams,
    ParamsError,
};
pub use refusal::{AppProblem, JobProblem, Refusal};
pub use reputation::{
    REPUTATION_MAX, REPUTATION_NO_SHOW, REPUTATION_START, REPUTATION_WRONG, is_matchable, weight,
};
pub use settlement::{fuel_cost, worst_case_escrow};

use crate::{
    exec::{BlockEnv, Created, Rejection},
    state::{Fault, Halt, Key, StateCache, expect, load},
};
use exo_types::{Action, Address};
use keys::{counters_key, holdings_key, owner_key, provider_key};
use records::{Counters, Holdings, IdList, Provider};

pub(crate) use super::Verdict;

fn refuse(refusal: Refusal) -> Verdict {
    Ok(Err(Rejection::Market(refusal)))
}

/// The market's view of the block being executed: its parameters, the block and its epoch,
/// and the ids the current transaction created (for its receipt).
pub(crate) struct Market<'a> {
    pub(crate) params: &'a MarketParams,
    pub(crate) env: &'a BlockEnv,
    /// The running epoch, which accepted work is credited to.
    pub(crate) epoch: u64,
    pub(crate) created: Vec<Created>,
}

impl<'a> Market<'a> {
    /// The market in `env`'s block, of a chain whose epochs are `epoch_length` blocks (at
    /// least two, as the genesis requires).
    pub(crate) fn new(params: &'a MarketParams, env: &'a BlockEnv, epoch_length: u64) -> Self {
        Self {
            params,
            env,
            epoch: env.height.checked_div(epoch_length).unwrap_or_default(),
            created: Vec::new(),
        }
    }
}

impl Market<'_> {
    fn counters(cache: &StateCache) -> Result<Counters, Halt> {
        Ok(load(cache, &counters_key())?.unwrap_or_default())
    }

    fn id_list(cache: &StateCache, key: Key) -> Result<IdList, Halt> {
        Ok(load(cache, &key)?.unwrap_or_default())
    }

    fn holdings(cache: &StateCache, account: &Address) -> Result<Holdings, Halt> {
        Ok(load(cache, &holdings_key(account))?.unwrap_or_default())
    }

    /// Writes what `account` holds, or removes the record when it holds nothing.
    fn store_holdings(
        cache: &mut StateCache,
        account: &Address,
        holdings: &Holdings,
    ) -> Result<(), Halt> {
        if *holdings == Holdings::default() {
            crate::state::remove(cache, holdings_key(account));
            Ok(())
        } else {
            Ok(crate::state::store(cache, holdings_key(account), holdings)?)
        }
    }

    fn provider_of(cache: &StateCache, owner: &Address) -> Result<Option<Provider>, Halt> {
        let Some(id) = load::<records::OwnerIndex>(cache, &owner_key(owner))? else {
            return Ok(None);
        };
        load(cache, &provider_key(id.0))
    }

    fn provider(cache: &StateCache, id: u64) -> Result<Provider, Halt> {
        expect(cache, &provider_key(id))
    }

    /// Executes a market action for `sender`, who has paid the fee.
    pub(crate) fn deliver(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        action: &Action,
    ) -> Verdict {
        match action {
            // The bank's action: the router never sends it here.
            Action::Transfer { .. } => {
                Err(Fault::Invariant("a transfer was routed to the market".into()).into())
            }
            Action::RegisterProvider { resources, bond } => {
                self.register_provider(cache, sender, resources, *bond)
            }
            Action::UpdateProvider { resources } => Self::update_provider(cache, sender, resources),
            Action::RetireProvider => Self::retire_provider(cache, sender),
            Action::PostOffer {
                slots,
                price_per_unit,
                expiry_secs,
            } => self.post_offer(cache, sender, *slots, *price_per_unit, *expiry_secs),
            Action::CancelOffer { offer } => Self::cancel_offer(cache, sender, *offer),
            Action::SubmitJob(spec) => self.submit_job(cache, sender, spec),
            Action::CancelJob { job } => self.cancel_job(cache, sender, *job),
            Action::PublishApp {
                module_hash,
                name,
                version,
                royalty_per_unit,
            } => self.publish_app(cache, sender, module_hash, name, version, *royalty_per_unit),
            Action::CommitResults(commits) => self.commit_results(cache, sender, commits),
            Action::RevealResults(reveals) => self.reveal_results(cache, sender, reveals),
            Action::ProveCapacity(proof) => self.prove_capacity(cache, sender, proof),
            // Staking's actions: the router never sends them here.
            other => Err(Fault::Invariant(format!("{} routed to the market", other.name())).into()),
        }
    }

    /// See [`super::prefetch`]: results are refused unless their sender owns a provider, and
    /// reveals read what [`Self::reveal_reads`] loads.
    pub(crate) fn prefetch(
        cache: &StateCache,
        sender: &Address,
        action: &Action,
    ) -> Result<(), Halt> {
        match action {
            Action::CommitResults(commits) => cache.require(
                std::iter::once(owner_key(sender))
                    .chain(commits.iter().map(|c| keys::unit_key(c.job, c.unit))),
            )?,
            Action::RevealResults(reveals) => {
                cache.require([owner_key(sender)])?;
                Self::reveal_reads(cache, reveals)?;
            }
            Action::ProveCapacity(proof) => Self::capacity_reads(cache, sender, proof)?,
            _ => {}
        }
        Ok(())
    }

    /// Part `part` of the end of block: 0 processes the deadlines that fell due and may open
    /// a capacity round, 1 runs the batch match ([`super::Module::end_block`]).
    pub(crate) fn end_block(&mut self, cache: &mut StateCache, part: usize) -> Result<(), Halt> {
        match part {
            0 => {
                self.process_deadlines(cache)?;
                self.maybe_open_capacity_round(cache)
            }
            _ => self.match_book(cache),
        }
    }
}
