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
//!   providers again and again. A unit held by one provider whose weight reaches the trust
//!   level draws a hidden audit replica with probability `audit_ppm`.
//! - Providers below `min_match_reputation` are not matched at all; a provider with fewer than
//!   `probation_results` confirmed results is on probation: it starts new units only while it
//!   holds fewer than `probation_slots` open replicas, and takes at most `probation_slots`
//!   replicas of running units per batch.
//! - Replicas commit `sha256(digest, fuel, salt, provider)`; once every open replica of the
//!   unit committed, reveals open. Each entry of a commit or reveal batch is applied on its
//!   own: a stale one (its replica was settled, replaced or already done) is skipped; a wrong
//!   one (not the sender's, unknown, early, not opening its commitment) refuses the batch.
//! - A unit is judged once no replica can still reveal (all revealed, or the reveal deadline
//!   passed). Unanimous results are accepted if their weight reaches the trust level. When
//!   results disagree every replica counts 1, and a result needs at least `max(trust, 2)`
//!   replicas and more than any other. Accepted replicas are paid `fuel x their price`, the
//!   developer gets the royalty once, the proposer the protocol fee; replicas with another
//!   result lose part of their bond (burnt) and reputation. Without a verdict the unit gets
//!   another replica, up to `max_replicas`, then fails.
//! - A replica that misses its commit or reveal deadline is a no-show: it loses a little bond
//!   and reputation, and a replacement is sought from another provider.
//! - When every unit is accepted or failed (or, for a cancelled job, nothing runs any more),
//!   the unspent escrow returns to the requester.

use crate::{
    Ledger, Missing, Rejection, StateCache,
    compute::{
        App, AppList, AssignmentList, AssignmentRecord, Counters, DeadlineList, IdList, Job,
        JobAccounts, JobState, OfferRecord, Provider, REVEAL_DEADLINE, Record, Replica,
        ReplicaStatus, Unit, UnitState, WaitingUnit, WorkList,
    },
    keys::{Key, Tag, apps_key, book_key, counters_key, open_jobs_key, unit_key},
    records::Refusal,
};
use exo_market::{Demand, FUEL_PER_UNIT, JobId, Offer, OfferId, ProviderId, Resources, UnitDemand};
use exo_types::{
    Action, Address, Amount, Hash32, JobSpec, MAX_JOB_UNITS, MAX_TRUST, ResultCommit, ResultReveal,
    result_commitment,
};

/// Most published apps.
pub const MAX_APPS: usize = 10_000;

/// Highest reputation.
pub const REPUTATION_MAX: u32 = 1_000;
/// Reputation of a new provider.
pub const REPUTATION_START: u32 = 500;
const REPUTATION_VALID: u32 = 10;
const REPUTATION_WRONG: u32 = 200;
const REPUTATION_NO_SHOW: u32 = 50;

/// What a handler returns: the state could not be read yet, or the action's verdict.
type Verdict = Result<Result<(), Rejection>, Missing>;

fn corrupt(what: &str, err: commonware_codec::Error) -> ! {
    // Records are written only by this crate: one that does not decode is corruption, a fault.
    panic!("corrupt {what} record in state: {err}")
}

fn load<T: Record>(cache: &StateCache, key: &Key, what: &str) -> Result<Option<T>, Missing> {
    Ok(cache
        .get(key)?
        .map(|b| T::from_bytes(b).unwrap_or_else(|e| corrupt(what, e))))
}

fn store<T: Record>(cache: &mut StateCache, key: Key, value: &T) {
    cache.put(key, Some(value.to_bytes()));
}

/// The base units `fuel` costs at `price_per_unit` (per 10^9 fuel), rounded up.
pub fn fuel_cost(fuel: u64, price_per_unit: Amount) -> Option<Amount> {
    let product = price_per_unit.0.checked_mul(u128::from(fuel))?;
    let cu = u128::from(FUEL_PER_UNIT);
    Some(Amount(product.div_ceil(cu)))
}

fn bps(amount: Amount, bps: u32) -> Amount {
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

fn hash32(bytes: &[u8]) -> Hash32 {
    let digest = exo_types::hash_bytes(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The passes of a block's batch match, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Trusted providers only: every waiting replica; a new unit asks for `ceil(trust / 2)`.
    Trusted = 0,
    /// Every provider: replicas still sought for running units (a check, a replacement, an
    /// audit, a dispute's next replica). A newcomer may take `probation_slots` of them in a
    /// batch whatever it already holds, so that newcomers who each hold a replica can still
    /// check each other's units.
    Running = 1,
    /// Every provider within its probation: a new unit asks for `trust` replicas.
    Everyone = 2,
}

impl Ledger {
    fn counters(cache: &StateCache) -> Result<Counters, Missing> {
        Ok(load(cache, &counters_key(), "counters")?.unwrap_or_default())
    }

    fn id_list(cache: &StateCache, key: Key) -> Result<IdList, Missing> {
        Ok(load(cache, &key, "id list")?.unwrap_or_default())
    }

    fn provider_of(cache: &StateCache, owner: &Address) -> Result<Option<Provider>, Missing> {
        let Some(bytes) = cache.get(&Tag::ProviderOwner.key_of(owner))? else {
            return Ok(None);
        };
        let id = u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]));
        load(cache, &Tag::Provider.key_u64(id), "provider")
    }

    fn provider(cache: &StateCache, id: u64) -> Result<Provider, Missing> {
        Ok(
            load::<Provider>(cache, &Tag::Provider.key_u64(id), "provider")?
                .unwrap_or_else(|| panic!("provider {id} referenced but missing")),
        )
    }

    /// Whether a provider's result weighs 2: a long record of valid results.
    fn weight(&self, provider: &Provider) -> u32 {
        if provider.reputation >= self.params.trusted_reputation
            && provider.valid >= self.params.trusted_min_valid
        {
            2
        } else {
            1
        }
    }

    /// Executes a transaction's action for `sender`, who has paid the fee.
    pub(crate) fn apply_action(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        action: &Action,
    ) -> Verdict {
        match action {
            Action::Transfer { to, amount } => Self::transfer(cache, sender, to, *amount),
            Action::RegisterProvider { resources, bond } => {
                self.register_provider(cache, sender, resources, *bond)
            }
            Action::UpdateProvider { resources } => Self::update_provider(cache, sender, resources),
            Action::RetireProvider => Self::retire_provider(cache, sender),
            Action::PostOffer {
                slots,
                price_per_unit,
                expiry_height,
            } => self.post_offer(cache, sender, *slots, *price_per_unit, *expiry_height),
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
        }
    }

    fn register_provider(
        &mut self,
        cache: &mut StateCache,
        owner: &Address,
        resources: &Resources,
        bond: Amount,
    ) -> Verdict {
        if let Err(err) = resources.validate() {
            return Ok(Err(Refusal::InvalidResources.because(err.to_string())));
        }
        if Self::provider_of(cache, owner)?.is_some() {
            return Ok(Err(Refusal::ProviderExists.because(
                "this account already registered a provider; use update instead",
            )));
        }
        if bond < self.params.min_provider_bond {
            return Ok(Err(Refusal::BondTooLow.because(format!(
                "bond {} is below the minimum {}",
                bond, self.params.min_provider_bond
            ))));
        }
        let available = Self::account(cache, owner)?.balance;
        if available < bond {
            return Ok(Err(Rejection::InsufficientFunds {
                needed: bond,
                available,
            }));
        }
        let mut counters = Self::counters(cache)?;
        let id = counters.next_provider;
        counters.next_provider += 1;
        Self::debit(cache, owner, bond)?;
        let provider = Provider {
            id,
            owner: owner.clone(),
            resources: resources.clone(),
            bond,
            reputation: REPUTATION_START,
            active: 0,
            valid: 0,
            invalid: 0,
            missed: 0,
            retired: false,
            registered_height: self.env.height,
        };
        store(cache, Tag::Provider.key_u64(id), &provider);
        cache.put(
            Tag::ProviderOwner.key_of(owner),
            Some(id.to_be_bytes().to_vec()),
        );
        store(cache, counters_key(), &counters);
        Ok(Ok(()))
    }

    fn update_provider(cache: &mut StateCache, owner: &Address, resources: &Resources) -> Verdict {
        if let Err(err) = resources.validate() {
            return Ok(Err(Refusal::InvalidResources.because(err.to_string())));
        }
        let Some(mut provider) = Self::provider_of(cache, owner)? else {
            return Ok(Err(
                Refusal::NotAProvider.because("this account has no provider")
            ));
        };
        if provider.retired {
            return Ok(Err(
                Refusal::ProviderRetired.because("the provider is retired")
            ));
        }
        provider.resources = resources.clone();
        store(cache, Tag::Provider.key_u64(provider.id), &provider);
        Ok(Ok(()))
    }

    fn retire_provider(cache: &mut StateCache, owner: &Address) -> Verdict {
        let Some(mut provider) = Self::provider_of(cache, owner)? else {
            return Ok(Err(
                Refusal::NotAProvider.because("this account has no provider")
            ));
        };
        if provider.retired {
            return Ok(Err(
                Refusal::ProviderRetired.because("the provider is already retired")
            ));
        }
        if provider.active > 0 {
            return Ok(Err(Refusal::ProviderBusy.because(format!(
                "the provider still runs {} assignments; retire once they end",
                provider.active
            ))));
        }
        // Its offers leave the book with it.
        let mut book = Self::id_list(cache, book_key())?;
        let keys: Vec<Key> = book.0.iter().map(|id| Tag::Offer.key_u64(*id)).collect();
        cache.require(keys)?;
        let mut kept = Vec::with_capacity(book.0.len());
        for id in book.0 {
            let record: OfferRecord = load(cache, &Tag::Offer.key_u64(id), "offer")?
                .unwrap_or_else(|| panic!("offer {id} on the book but missing"));
            if record.offer.provider.0 == provider.id {
                cache.put(Tag::Offer.key_u64(id), None);
            } else {
                kept.push(id);
            }
        }
        book.0 = kept;
        store(cache, book_key(), &book);
        Self::credit(cache, owner, provider.bond)?;
        provider.bond = Amount::ZERO;
        provider.retired = true;
        store(cache, Tag::Provider.key_u64(provider.id), &provider);
        Ok(Ok(()))
    }

    fn post_offer(
        &mut self,
        cache: &mut StateCache,
        owner: &Address,
        slots: u32,
        price_per_unit: Amount,
        expiry_height: u64,
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, owner)? else {
            return Ok(Err(
                Refusal::NotAProvider.because("register a provider before posting offers")
            ));
        };
        if provider.retired {
            return Ok(Err(
                Refusal::ProviderRetired.because("the provider is retired")
            ));
        }
        if provider.bond < self.params.min_provider_bond {
            return Ok(Err(Refusal::BondTooLow.because(format!(
                "the provider's bond {} fell below the minimum {}",
                provider.bond, self.params.min_provider_bond
            ))));
        }
        let mut counters = Self::counters(cache)?;
        let offer = Offer {
            id: OfferId(counters.next_offer),
            provider: ProviderId(provider.id),
            resources: provider.resources.clone(),
            reputation: provider.reputation,
            slots,
            price_per_unit: price_per_unit.0,
            posted_height: self.env.height,
            expiry_height,
        };
        if let Err(err) = offer.validate() {
            return Ok(Err(Refusal::InvalidOffer.because(err.to_string())));
        }
        if expiry_height <= self.env.height {
            return Ok(Err(Refusal::InvalidOffer.because(format!(
                "expiry height {expiry_height} is not after the current height {}",
                self.env.height
            ))));
        }
        let mut book = Self::id_list(cache, book_key())?;
        if book.0.len() >= self.params.max_open_offers as usize {
            return Ok(Err(Refusal::BookFull.because(format!(
                "the book holds its maximum of {} offers",
                self.params.max_open_offers
            ))));
        }
        cache.require(book.0.iter().map(|id| Tag::Offer.key_u64(*id)))?;
        let mine = book
            .0
            .iter()
            .filter_map(|id| {
                load::<OfferRecord>(cache, &Tag::Offer.key_u64(*id), "offer")
                    .ok()
                    .flatten()
            })
            .filter(|r| r.offer.provider.0 == provider.id)
            .count();
        if mine >= self.params.max_offers_per_provider as usize {
            return Ok(Err(Refusal::TooManyOffers.because(format!(
                "the provider already has {mine} offers on the book"
            ))));
        }
        counters.next_offer += 1;
        store(cache, counters_key(), &counters);
        book.0.push(offer.id.0);
        store(cache, book_key(), &book);
        store(
            cache,
            Tag::Offer.key_u64(offer.id.0),
            &OfferRecord {
                owner: owner.clone(),
                offer,
            },
        );
        Ok(Ok(()))
    }

    fn cancel_offer(cache: &mut StateCache, owner: &Address, id: u64) -> Verdict {
        let Some(record) = load::<OfferRecord>(cache, &Tag::Offer.key_u64(id), "offer")? else {
            return Ok(Err(
                Refusal::UnknownOffer.because(format!("offer {id} is not on the book"))
            ));
        };
        if record.owner != *owner {
            return Ok(Err(
                Refusal::NotYourOffer.because(format!("offer {id} belongs to another account"))
            ));
        }
        let mut book = Self::id_list(cache, book_key())?;
        book.0.retain(|o| *o != id);
        store(cache, book_key(), &book);
        cache.put(Tag::Offer.key_u64(id), None);
        Ok(Ok(()))
    }

    fn publish_app(
        &mut self,
        cache: &mut StateCache,
        developer: &Address,
        module_hash: &Hash32,
        name: &str,
        version: &str,
        royalty_per_unit: Amount,
    ) -> Verdict {
        let key = Tag::App.key(module_hash);
        if cache.get(&key)?.is_some() {
            return Ok(Err(
                Refusal::AppExists.because("an app with this module is already published")
            ));
        }
        let printable = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic());
        if !printable(name) || !printable(version) {
            return Ok(Err(Refusal::InvalidApp.because(
                "name and version must be 1 to 64 printable characters without spaces",
            )));
        }
        if royalty_per_unit > Amount::from_exo(1_000) {
            return Ok(Err(
                Refusal::InvalidApp.because("royalty is over 1000 EXO per compute unit")
            ));
        }
        let mut apps: AppList = load(cache, &apps_key(), "app list")?.unwrap_or_default();
        if apps.0.len() >= MAX_APPS {
            return Ok(Err(Refusal::InvalidApp.because(format!(
                "the chain holds its maximum of {MAX_APPS} apps"
            ))));
        }
        apps.0.push(*module_hash);
        store(cache, apps_key(), &apps);
        store(
            cache,
            key,
            &App {
                module_hash: *module_hash,
                developer: developer.clone(),
                name: name.to_string(),
                version: version.to_string(),
                royalty_per_unit,
                published_height: self.env.height,
            },
        );
        Ok(Ok(()))
    }

    fn submit_job(
        &mut self,
        cache: &mut StateCache,
        requester: &Address,
        spec: &JobSpec,
    ) -> Verdict {
        let refuse = |detail: String| Ok(Err(Refusal::InvalidJob.because(detail)));
        if spec.units == 0 || spec.units > MAX_JOB_UNITS {
            return refuse(format!(
                "a job has 1 to {MAX_JOB_UNITS} units, not {}",
                spec.units
            ));
        }
        if spec.trust == 0 || spec.trust > MAX_TRUST {
            return refuse(format!(
                "trust must be 1 to {MAX_TRUST}, not {}",
                spec.trust
            ));
        }
        if !spec.unit_args.is_empty() && spec.unit_args.len() != spec.units as usize {
            return refuse(format!(
                "unit arguments list {} lines for {} units",
                spec.unit_args.len(),
                spec.units
            ));
        }
        if let Err(err) = spec.requirements.validate() {
            return refuse(err.to_string());
        }
        if spec.requirements.fuel_limit == 0 {
            return refuse("the fuel limit must be positive".into());
        }
        if spec.max_price_per_unit == Amount::ZERO {
            return refuse("the maximum price must be positive".into());
        }
        let mut names: Vec<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        let valid_name = |n: &str| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if names.windows(2).any(|w| w[0] == w[1]) || !names.iter().all(|n| valid_name(n)) {
            return refuse("input names must be distinct plain file names".into());
        }
        let Some(app) = load::<App>(cache, &Tag::App.key(&spec.app), "app")? else {
            return Ok(Err(Refusal::UnknownApp.because(format!(
                "no app is published with module {}",
                hex_short(&spec.app)
            ))));
        };
        let mut open = Self::id_list(cache, open_jobs_key())?;
        if open.0.len() >= self.params.max_open_jobs as usize {
            return Ok(Err(Refusal::TooManyJobs.because(format!(
                "the chain already runs its maximum of {} jobs",
                self.params.max_open_jobs
            ))));
        }
        let max_replicas = u32::from(spec.trust) + self.params.extra_replicas + 1;
        let Some(escrow) = worst_case_escrow(
            spec.units,
            max_replicas,
            spec.requirements.fuel_limit,
            spec.max_price_per_unit,
            app.royalty_per_unit,
            self.params.protocol_fee_bps,
        ) else {
            return Ok(Err(Rejection::Overflow));
        };
        let available = Self::account(cache, requester)?.balance;
        if available < escrow {
            return Ok(Err(Rejection::InsufficientFunds {
                needed: escrow,
                available,
            }));
        }
        Self::debit(cache, requester, escrow)?;
        let mut counters = Self::counters(cache)?;
        let id = counters.next_job;
        counters.next_job += 1;
        store(cache, counters_key(), &counters);
        open.0.push(id);
        store(cache, open_jobs_key(), &open);
        let job = Job {
            id,
            requester: requester.clone(),
            spec: spec.clone(),
            fuel_limit: spec.requirements.fuel_limit,
            developer: app.developer,
            royalty_per_unit: app.royalty_per_unit,
            max_replicas,
            submitted_height: self.env.height,
            state: JobState::Open,
            accounts: JobAccounts {
                escrowed: escrow,
                held: escrow,
                ..JobAccounts::default()
            },
            waiting: (0..spec.units)
                .map(|unit| WaitingUnit {
                    unit,
                    replicas: vec![0],
                    exclude: Vec::new(),
                })
                .collect(),
            running: Vec::new(),
            accepted: 0,
            failed: 0,
            wait_reason: None,
        };
        store(cache, Tag::Job.key_u64(id), &job);
        Ok(Ok(()))
    }

    fn cancel_job(&mut self, cache: &mut StateCache, requester: &Address, id: u64) -> Verdict {
        let Some(mut job) = load::<Job>(cache, &Tag::Job.key_u64(id), "job")? else {
            return Ok(Err(
                Refusal::UnknownJob.because(format!("job {id} does not exist"))
            ));
        };
        if job.requester != *requester {
            return Ok(Err(
                Refusal::NotYourJob.because(format!("job {id} belongs to another account"))
            ));
        }
        if job.state != JobState::Open {
            return Ok(Err(
                Refusal::JobClosed.because(format!("job {id} is already {}", job.state.name()))
            ));
        }
        job.state = JobState::Cancelled;
        job.failed += job
            .waiting
            .iter()
            .filter(|w| !job.running.contains(&w.unit))
            .count() as u32;
        job.waiting.clear();
        self.maybe_close_job(cache, &mut job)?;
        store(cache, Tag::Job.key_u64(id), &job);
        Ok(Ok(()))
    }

    /// Refunds the unspent escrow of a job nothing runs for any more.
    fn maybe_close_job(&mut self, cache: &mut StateCache, job: &mut Job) -> Result<(), Missing> {
        let finished = job.waiting.is_empty() && job.running.is_empty();
        if !finished {
            return Ok(());
        }
        if job.state == JobState::Open {
            job.state = JobState::Done;
        }
        let refund = job.accounts.held;
        if refund > Amount::ZERO {
            Self::credit(cache, &job.requester, refund)?;
            job.accounts.refunded = job
                .accounts
                .refunded
                .checked_add(refund)
                .unwrap_or(job.accounts.refunded);
            job.accounts.held = Amount::ZERO;
        }
        let mut open = Self::id_list(cache, open_jobs_key())?;
        open.0.retain(|j| *j != job.id);
        store(cache, open_jobs_key(), &open);
        Ok(())
    }

    fn unit(cache: &StateCache, job: u64, unit: u32) -> Result<Option<Unit>, Missing> {
        load(cache, &unit_key(job, unit), "unit")
    }

    /// The unit and the position of `replica` in it, if `provider` holds that replica.
    fn owned_replica(
        cache: &StateCache,
        job: u64,
        unit: u32,
        replica: u32,
        provider: u64,
    ) -> Result<Result<(Unit, usize), Rejection>, Missing> {
        let Some(record) = Self::unit(cache, job, unit)? else {
            return Ok(Err(Refusal::UnknownReplica
                .because(format!("job {job} unit {unit} has no assignments"))));
        };
        let Some(at) = record.replicas.iter().position(|r| r.index == replica) else {
            return Ok(Err(Refusal::UnknownReplica.because(format!(
                "job {job} unit {unit} has no replica {replica}"
            ))));
        };
        if record.replicas[at].provider != provider {
            return Ok(Err(Refusal::NotYourReplica.because(format!(
                "replica {replica} of job {job} unit {unit} is assigned to another provider"
            ))));
        }
        Ok(Ok((record, at)))
    }

    /// Records commitments. Each entry is applied on its own: an entry whose replica no longer
    /// awaits a commitment (another replica's reveal settled the unit, or it missed its
    /// deadline) is skipped, so that one stale entry does not cost the batch. An entry that is
    /// wrong (an unknown replica, or another provider's) refuses the whole batch.
    fn commit_results(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        commits: &[ResultCommit],
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, sender)? else {
            return Ok(Err(
                Refusal::NotAProvider.because("this account has no provider")
            ));
        };
        cache.require(commits.iter().map(|c| unit_key(c.job, c.unit)))?;
        for commit in commits {
            let (mut unit, at) = match Self::owned_replica(
                cache,
                commit.job,
                commit.unit,
                commit.replica,
                provider.id,
            )? {
                Ok(found) => found,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let replica = &mut unit.replicas[at];
            if unit.state != UnitState::Running || replica.status != ReplicaStatus::Assigned {
                // Stale: settled, replaced or already committed while this was on its way.
                continue;
            }
            replica.commitment = Some(commit.commitment);
            replica.status = ReplicaStatus::Committed;
            self.maybe_open_reveals(cache, &mut unit)?;
            store(cache, unit_key(unit.job, unit.unit), &unit);
        }
        Ok(Ok(()))
    }

    /// Opens the reveal phase once every open replica committed and none is still sought.
    fn maybe_open_reveals(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
    ) -> Result<(), Missing> {
        let job: Job = load(cache, &Tag::Job.key_u64(unit.job), "job")?
            .unwrap_or_else(|| panic!("unit of missing job {}", unit.job));
        self.maybe_open_reveals_with(cache, unit, &job)
    }

    fn add_deadline(
        &mut self,
        cache: &mut StateCache,
        height: u64,
        job: u64,
        unit: u32,
        replica: u32,
    ) -> Result<(), Missing> {
        let key = Tag::Deadline.key_u64(height);
        let mut list: DeadlineList = load(cache, &key, "deadlines")?.unwrap_or_default();
        list.0.push((job, unit, replica));
        store(cache, key, &list);
        Ok(())
    }

    /// Records reveals. Each entry is applied on its own: an entry whose replica no longer
    /// awaits a reveal (the unit was settled, the replica missed its deadline or revealed
    /// already) is skipped. An entry that is wrong refuses the whole batch: an unknown replica,
    /// another provider's, a reveal before reveals open for a replica that has not revealed,
    /// or one that does not open its commitment.
    fn reveal_results(
        &mut self,
        cache: &mut StateCache,
        sender: &Address,
        reveals: &[ResultReveal],
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, sender)? else {
            return Ok(Err(
                Refusal::NotAProvider.because("this account has no provider")
            ));
        };
        cache.require(reveals.iter().map(|r| unit_key(r.job, r.unit)))?;
        for reveal in reveals {
            let (mut unit, at) = match Self::owned_replica(
                cache,
                reveal.job,
                reveal.unit,
                reveal.replica,
                provider.id,
            )? {
                Ok(found) => found,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let reveal_open = unit.reveal_deadline.is_some();
            let running = unit.state == UnitState::Running;
            let replica = &mut unit.replicas[at];
            let awaiting = match replica.status {
                ReplicaStatus::Committed => true,
                ReplicaStatus::Assigned => false,
                // Stale: settled, replaced, or revealed already while this was on its way.
                _ => continue,
            };
            if !running {
                continue;
            }
            if !awaiting || !reveal_open {
                return Ok(Err(Refusal::RevealNotOpen.because(format!(
                    "replica {} of job {} unit {} cannot reveal now ({}; reveals open once every replica committed)",
                    reveal.replica,
                    reveal.job,
                    reveal.unit,
                    replica.status.name()
                ))));
            }
            let expected = result_commitment(&reveal.digest, reveal.fuel, &reveal.salt, sender);
            if replica.commitment != Some(expected) {
                return Ok(Err(Refusal::CommitmentMismatch.because(format!(
                    "the reveal for replica {} of job {} unit {} does not open its commitment",
                    reveal.replica, reveal.job, reveal.unit
                ))));
            }
            replica.reveal = Some((reveal.digest, reveal.fuel));
            replica.status = ReplicaStatus::Revealed;
            // A unit is judged only once no replica can still reveal: an audit replica is
            // never cancelled by the result it checks.
            let pending = unit
                .replicas
                .iter()
                .any(|r| matches!(r.status, ReplicaStatus::Assigned | ReplicaStatus::Committed));
            if !pending {
                self.evaluate(cache, &mut unit)?;
            }
            store(cache, unit_key(unit.job, unit.unit), &unit);
        }
        Ok(Ok(()))
    }

    /// Judges a unit once none of its replicas can still reveal (every one revealed, or the
    /// reveal deadline passed): accepts a result, asks for another replica, or fails the unit.
    ///
    /// When every revealed result agrees, it is accepted if its weight reaches the trust level.
    /// When results disagree, weights do not count (a trusted provider's bonus must not let it
    /// outvote its auditor): each replica counts 1, and a result is accepted only with at least
    /// `max(trust, 2)` replicas and more than any other result. Otherwise the unit gets another
    /// replica, up to `max_replicas`, then fails.
    fn evaluate(&mut self, cache: &mut StateCache, unit: &mut Unit) -> Result<(), Missing> {
        if unit.state != UnitState::Running {
            return Ok(());
        }
        let mut job: Job = load(cache, &Tag::Job.key_u64(unit.job), "job")?
            .unwrap_or_else(|| panic!("unit of missing job {}", unit.job));
        let providers: Vec<u64> = unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed)
            .map(|r| r.provider)
            .collect();
        cache.require(providers.iter().map(|p| Tag::Provider.key_u64(*p)))?;
        // Group the revealed results, by first appearance, so that the outcome depends on
        // nothing but the unit's own record: (result, weight, replicas).
        let mut groups: Vec<((Hash32, u64), u32, u32)> = Vec::new();
        for replica in unit
            .replicas
            .iter()
            .filter(|r| r.status == ReplicaStatus::Revealed)
        {
            let Some(result) = replica.reveal else {
                continue;
            };
            let weight = self.weight(&Self::provider(cache, replica.provider)?);
            match groups.iter_mut().find(|(r, _, _)| *r == result) {
                Some((_, w, n)) => {
                    *w += weight;
                    *n += 1;
                }
                None => groups.push((result, weight, 1)),
            }
        }
        let trust = u32::from(job.spec.trust);
        let winner = match groups.as_slice() {
            [] => None,
            [(result, weight, _)] => (*weight >= trust).then_some(*result),
            _ => {
                let quorum = trust.max(2);
                groups
                    .iter()
                    .find(|(_, _, n)| {
                        *n >= quorum && groups.iter().filter(|(_, _, m)| m >= n).count() == 1
                    })
                    .map(|(r, _, _)| *r)
            }
        };
        if let Some(result) = winner {
            self.accept(cache, &mut job, unit, result)?;
        } else if (unit.replicas.len() as u32) < job.max_replicas && job.state == JobState::Open {
            self.seek_replica(&mut job, unit);
        } else {
            self.fail(cache, &mut job, unit)?;
        }
        self.maybe_close_job(cache, &mut job)?;
        store(cache, Tag::Job.key_u64(job.id), &job);
        Ok(())
    }

    /// Asks the next batch for one more replica of `unit`, excluding every provider that had
    /// one.
    fn seek_replica(&self, job: &mut Job, unit: &mut Unit) {
        if unit.replicas.len() + 1 >= crate::compute::MAX_UNIT_REPLICAS {
            return;
        }
        // Past every replica assigned and every replica still sought: an index is never reused.
        let waiting = job
            .waiting
            .iter()
            .filter(|w| w.unit == unit.unit)
            .flat_map(|w| w.replicas.iter().copied());
        let next = unit
            .replicas
            .iter()
            .map(|r| r.index)
            .chain(waiting)
            .map(|i| i + 1)
            .max()
            .unwrap_or(0);
        let mut exclude: Vec<u64> = unit.replicas.iter().map(|r| r.provider).collect();
        exclude.sort_unstable();
        exclude.dedup();
        exclude.truncate(exo_market::MAX_EXCLUDE_PER_UNIT);
        unit.reveal_deadline = None;
        match job.waiting.iter_mut().find(|w| w.unit == unit.unit) {
            Some(w) => {
                if let Err(at) = w.replicas.binary_search(&next) {
                    w.replicas.insert(at, next);
                }
                w.exclude = exclude;
            }
            None => {
                let at = job.waiting.partition_point(|w| w.unit < unit.unit);
                job.waiting.insert(
                    at,
                    WaitingUnit {
                        unit: unit.unit,
                        replicas: vec![next],
                        exclude,
                    },
                );
            }
        }
    }

    fn accept(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
        result: (Hash32, u64),
    ) -> Result<(), Missing> {
        let (_, fuel) = result;
        // Never bill past the fuel limit, whatever a replica claims.
        let fuel = fuel.min(job.fuel_limit);
        let developer = job.developer.clone();
        let royalty = fuel_cost(fuel, job.royalty_per_unit).unwrap_or(Amount::ZERO);
        let mut spent = Amount::ZERO;
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
                Self::credit(cache, &provider.owner, pay)?;
                Self::credit(cache, &self.env.proposer.clone(), fee)?;
                spent = spent
                    .checked_add(pay)
                    .and_then(|s| s.checked_add(fee))
                    .unwrap_or(spent);
                job.accounts.fees = job
                    .accounts
                    .fees
                    .checked_add(fee)
                    .unwrap_or(job.accounts.fees);
                let paid = &mut job.accounts.paid;
                match paid.iter().position(|(p, _)| *p == provider.id) {
                    Some(i) => paid[i].1 = paid[i].1.checked_add(pay).unwrap_or(paid[i].1),
                    None if paid.len() < crate::compute::MAX_PAID_PROVIDERS => {
                        paid.push((provider.id, pay))
                    }
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
                self.punish(&mut provider, self.params.slash_wrong_bps, REPUTATION_WRONG);
                provider.invalid += 1;
            } else {
                // Still running when the verdict came: released, unpaid, unpunished.
                replica.status = ReplicaStatus::Cancelled;
            }
            provider.active = provider.active.saturating_sub(1);
            self.release_slot(cache, unit.job, unit.unit, replica)?;
            store(cache, Tag::Provider.key_u64(provider.id), &provider);
        }
        if royalty > Amount::ZERO {
            Self::credit(cache, &developer, royalty)?;
        }
        spent = spent.checked_add(royalty).unwrap_or(spent);
        job.accounts.royalties = job
            .accounts
            .royalties
            .checked_add(royalty)
            .unwrap_or(job.accounts.royalties);
        // The escrow covers the worst case, so it always covers what was spent.
        job.accounts.held = job
            .accounts
            .held
            .checked_sub(spent)
            .unwrap_or_else(|| panic!("job {} spent more than its escrow", job.id));
        unit.state = UnitState::Accepted;
        unit.accepted = Some((result.0, fuel));
        job.accepted += 1;
        job.running.retain(|u| *u != unit.unit);
        job.waiting.retain(|w| w.unit != unit.unit);
        Ok(())
    }

    fn fail(
        &mut self,
        cache: &mut StateCache,
        job: &mut Job,
        unit: &mut Unit,
    ) -> Result<(), Missing> {
        for replica in unit.replicas.iter_mut() {
            if replica.status == ReplicaStatus::Revealed {
                // Nobody agreed with it either: no pay, no punishment without a verdict.
                replica.status = ReplicaStatus::Disagreed;
                let mut provider = Self::provider(cache, replica.provider)?;
                provider.active = provider.active.saturating_sub(1);
                self.release_slot(cache, unit.job, unit.unit, replica)?;
                store(cache, Tag::Provider.key_u64(provider.id), &provider);
            }
        }
        unit.state = UnitState::Failed;
        job.failed += 1;
        job.running.retain(|u| *u != unit.unit);
        job.waiting.retain(|w| w.unit != unit.unit);
        Ok(())
    }

    /// Burns part of a provider's bond and lowers its reputation. Burnt tokens leave the supply.
    fn punish(&mut self, provider: &mut Provider, slash_bps: u32, reputation: u32) {
        let slash = bps(provider.bond, slash_bps);
        provider.bond = provider.bond.checked_sub(slash).unwrap_or(Amount::ZERO);
        self.meta.supply = self
            .meta
            .supply
            .checked_sub(slash)
            .unwrap_or(self.meta.supply);
        self.meta.slashed = self
            .meta
            .slashed
            .checked_add(slash)
            .unwrap_or(self.meta.slashed);
        provider.reputation = provider.reputation.saturating_sub(reputation);
    }

    /// Adds or removes an open replica on its provider's work list.
    fn set_work(
        cache: &mut StateCache,
        provider: u64,
        item: (u64, u32, u32),
        open: bool,
    ) -> Result<(), Missing> {
        let key = Tag::Work.key_u64(provider);
        let mut list: WorkList = load(cache, &key, "work list")?.unwrap_or_default();
        list.0.retain(|w| *w != item);
        if open {
            list.0.push(item);
        }
        if list.0.is_empty() {
            cache.put(key, None);
        } else {
            store(cache, key, &list);
        }
        Ok(())
    }

    /// Gives a finished replica's slot back to its offer, if the offer is still on the book.
    fn release_slot(
        &mut self,
        cache: &mut StateCache,
        job: u64,
        unit: u32,
        replica: &Replica,
    ) -> Result<(), Missing> {
        Self::set_work(cache, replica.provider, (job, unit, replica.index), false)?;
        let key = Tag::Offer.key_u64(replica.offer);
        if let Some(mut record) = load::<OfferRecord>(cache, &key, "offer")? {
            record.offer.slots = record
                .offer
                .slots
                .saturating_add(1)
                .min(exo_market::MAX_SLOTS_PER_OFFER);
            store(cache, key, &record);
        }
        Ok(())
    }

    /// End of block: deadlines, then the batch match.
    pub fn end_block(&mut self, cache: &mut StateCache) -> Result<(), Missing> {
        self.process_deadlines(cache)?;
        self.match_book(cache)
    }

    fn process_deadlines(&mut self, cache: &mut StateCache) -> Result<(), Missing> {
        let key = Tag::Deadline.key_u64(self.env.height);
        let Some(list) = load::<DeadlineList>(cache, &key, "deadlines")? else {
            return Ok(());
        };
        cache.require(list.0.iter().map(|(j, u, _)| unit_key(*j, *u)))?;
        cache.require(list.0.iter().map(|(j, _, _)| Tag::Job.key_u64(*j)))?;
        for (job_id, unit_index, replica_index) in list.0 {
            let Some(mut unit) = Self::unit(cache, job_id, unit_index)? else {
                continue;
            };
            if unit.state != UnitState::Running {
                continue;
            }
            let mut no_shows = Vec::new();
            if replica_index == REVEAL_DEADLINE {
                if unit.reveal_deadline != Some(self.env.height) {
                    continue;
                }
                for replica in unit.replicas.iter_mut() {
                    if replica.status == ReplicaStatus::Committed {
                        replica.status = ReplicaStatus::NoShow;
                        no_shows.push(replica.clone());
                    }
                }
            } else if let Some(replica) =
                unit.replicas.iter_mut().find(|r| r.index == replica_index)
                && replica.status == ReplicaStatus::Assigned
                && replica.commit_deadline == self.env.height
            {
                replica.status = ReplicaStatus::NoShow;
                no_shows.push(replica.clone());
            }
            if no_shows.is_empty() {
                continue;
            }
            cache.require(no_shows.iter().map(|r| Tag::Provider.key_u64(r.provider)))?;
            for replica in &no_shows {
                let mut provider = Self::provider(cache, replica.provider)?;
                self.punish(
                    &mut provider,
                    self.params.slash_no_show_bps,
                    REPUTATION_NO_SHOW,
                );
                provider.missed += 1;
                provider.active = provider.active.saturating_sub(1);
                store(cache, Tag::Provider.key_u64(provider.id), &provider);
                self.release_slot(cache, job_id, unit_index, replica)?;
            }
            let mut job: Job = load(cache, &Tag::Job.key_u64(job_id), "job")?
                .unwrap_or_else(|| panic!("unit of missing job {job_id}"));
            if replica_index == REVEAL_DEADLINE {
                // Judge what was revealed; without agreement a new replica is sought.
                store(cache, Tag::Job.key_u64(job_id), &job);
                self.evaluate(cache, &mut unit)?;
            } else {
                // Replace each no-show with a replica from someone else.
                for _ in &no_shows {
                    if (unit.replicas.len() as u32) < job.max_replicas + 2
                        && job.state == JobState::Open
                    {
                        self.seek_replica(&mut job, &mut unit);
                    }
                }
                if !job.waiting.iter().any(|w| w.unit == unit.unit)
                    && !unit.replicas.iter().any(|r| r.status.is_open())
                {
                    self.fail(cache, &mut job, &mut unit)?;
                }
                self.maybe_open_reveals_with(cache, &mut unit, &job)?;
                self.maybe_close_job(cache, &mut job)?;
                store(cache, Tag::Job.key_u64(job_id), &job);
            }
            store(cache, unit_key(job_id, unit_index), &unit);
        }
        cache.put(key, None);
        Ok(())
    }

    /// Opens the reveal phase once every open replica of `unit` committed and `job` seeks no
    /// further replica of it.
    fn maybe_open_reveals_with(
        &mut self,
        cache: &mut StateCache,
        unit: &mut Unit,
        job: &Job,
    ) -> Result<(), Missing> {
        if unit.reveal_deadline.is_some()
            || unit.state != UnitState::Running
            || job.waiting.iter().any(|w| w.unit == unit.unit)
            || unit
                .replicas
                .iter()
                .any(|r| r.status == ReplicaStatus::Assigned)
            || !unit
                .replicas
                .iter()
                .any(|r| r.status == ReplicaStatus::Committed)
        {
            return Ok(());
        }
        let deadline = self.env.height + self.params.reveal_window;
        unit.reveal_deadline = Some(deadline);
        self.add_deadline(cache, deadline, unit.job, unit.unit, REVEAL_DEADLINE)
    }

    /// The batch match of every open job's waiting units against the book.
    ///
    /// Three passes (see [`Pass`]), so that a unit starts with the replicas its trust level
    /// needs in one batch and never holds a slot while it waits for its check (a market whose
    /// slots all held such units would stall): trusted providers first, then replicas still
    /// sought for running units from anyone, then new units from anyone within probation.
    fn match_book(&mut self, cache: &mut StateCache) -> Result<(), Missing> {
        let open = Self::id_list(cache, open_jobs_key())?;
        let mut book = Self::id_list(cache, book_key())?;
        cache.require(
            open.0
                .iter()
                .map(|id| Tag::Job.key_u64(*id))
                .chain(book.0.iter().map(|id| Tag::Offer.key_u64(*id))),
        )?;
        let mut jobs: Vec<Job> = Vec::new();
        for id in &open.0 {
            let job: Job = load(cache, &Tag::Job.key_u64(*id), "job")?
                .unwrap_or_else(|| panic!("open job {id} missing"));
            if job.state == JobState::Open && !job.waiting.is_empty() {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let mut offers: Vec<Offer> = Vec::with_capacity(book.0.len());
        for id in &book.0 {
            let record: OfferRecord = load(cache, &Tag::Offer.key_u64(*id), "offer")?
                .unwrap_or_else(|| panic!("offer {id} on the book but missing"));
            offers.push(record.offer);
        }
        offers.sort_by_key(|o| o.id);
        // The book carries a snapshot of each provider; match on what the provider is now, so
        // a provider caught lying (below the reputation floor), or whose bond was slashed
        // below the minimum, gets no work. A provider on probation (fewer confirmed results
        // than `probation_results`) starts at most `probation_slots` open replicas.
        cache.require(offers.iter().map(|o| Tag::Provider.key_u64(o.provider.0)))?;
        let mut live: Vec<(Offer, bool)> = Vec::with_capacity(offers.len());
        // Each newcomer's room for new units.
        let mut probation: Vec<(u64, u32)> = Vec::new();
        for mut offer in offers {
            let provider = Self::provider(cache, offer.provider.0)?;
            offer.reputation = provider.reputation;
            if provider.retired
                || provider.bond < self.params.min_provider_bond
                || provider.reputation < self.params.min_match_reputation
            {
                // Shown with no free slot, so that it still leaves the book when it expires.
                offer.slots = 0;
                live.push((offer, false));
                continue;
            }
            if provider.valid < self.params.probation_results
                && !probation.iter().any(|(p, _)| *p == provider.id)
            {
                let room = self.params.probation_slots.saturating_sub(provider.active);
                probation.push((provider.id, room));
            }
            live.push((offer, self.weight(&provider) >= 2));
        }
        let mut log = AssignmentList::default();
        let mut unmatched = Vec::new();
        for pass in [Pass::Trusted, Pass::Running, Pass::Everyone] {
            // A newcomer's room: for new units, what probation leaves it; for running units'
            // replicas, `probation_slots` more in this batch, whatever it holds (one waiting
            // on a verdict can still check), but no more (one liar must not take every
            // dispute's next replica at once).
            let mut room: Vec<(u64, u32)> = match pass {
                Pass::Trusted => Vec::new(),
                Pass::Running => probation
                    .iter()
                    .map(|(p, _)| (*p, self.params.probation_slots))
                    .collect(),
                Pass::Everyone => probation.clone(),
            };
            let offers: Vec<Offer> = live
                .iter()
                .filter(|(o, trusted)| pass != Pass::Trusted || (*trusted && o.slots > 0))
                .map(|(o, _)| {
                    let mut o = o.clone();
                    if let Some((_, r)) = room.iter_mut().find(|(p, _)| *p == o.provider.0) {
                        o.slots = o.slots.min(*r);
                        *r -= o.slots;
                    }
                    o
                })
                .collect();
            let demands: Vec<Demand> = jobs
                .iter()
                .filter_map(|job| {
                    let trust = u32::from(job.spec.trust);
                    let first = if pass == Pass::Trusted {
                        trust.div_ceil(2)
                    } else {
                        trust
                    };
                    let units: Vec<UnitDemand> = job
                        .waiting
                        .iter()
                        .filter_map(|w| {
                            let running = job.running.binary_search(&w.unit).is_ok();
                            let replicas = match (running, pass) {
                                (true, _) => w.replicas.clone(),
                                (false, Pass::Running) => return None,
                                (false, _) => (0..first).collect(),
                            };
                            Some(UnitDemand {
                                unit: w.unit,
                                replicas,
                                exclude: w.exclude.iter().map(|p| ProviderId(*p)).collect(),
                            })
                        })
                        .collect();
                    (!units.is_empty()).then(|| Demand {
                        job: JobId(job.id),
                        requirements: job.spec.requirements.clone(),
                        max_price_per_unit: job.spec.max_price_per_unit.0,
                        submitted_height: job.submitted_height,
                        units,
                    })
                })
                .collect();
            if demands.is_empty() && pass != Pass::Everyone {
                continue;
            }
            let mut outcome = match exo_market::match_batch(&offers, &demands, self.env.height) {
                Ok(outcome) => outcome,
                // Orders are validated on the way in, so this is a ledger bug: stop loudly.
                Err(err) => panic!("the batch matcher refused the book: {err}"),
            };
            self.deal_checks(&jobs, &mut outcome.assignments, pass as u8);
            // Offers that expired leave the book (every offer is in the last pass).
            if pass == Pass::Everyone && !outcome.expired.is_empty() {
                book.0.retain(|id| !outcome.expired.contains(&OfferId(*id)));
                for id in &outcome.expired {
                    cache.put(Tag::Offer.key_u64(id.0), None);
                }
                store(cache, book_key(), &book);
            }
            for fill in &outcome.fills {
                let key = Tag::Offer.key_u64(fill.offer.0);
                if let Some(mut record) = load::<OfferRecord>(cache, &key, "offer")? {
                    // What the batch took; the matcher may have seen fewer slots than the
                    // record holds (probation).
                    record.offer.slots = record.offer.slots.saturating_sub(fill.assigned);
                    store(cache, key, &record);
                }
                if let Some((offer, _)) = live.iter_mut().find(|(o, _)| o.id == fill.offer) {
                    offer.slots = offer.slots.saturating_sub(fill.assigned);
                }
                if let Some((_, r)) = probation.iter_mut().find(|(p, _)| *p == fill.provider.0) {
                    *r = r.saturating_sub(fill.assigned);
                }
            }
            self.assign(cache, &mut jobs, &outcome.assignments, &mut log)?;
            unmatched = outcome.unmatched;
        }
        if !log.0.is_empty() {
            store(cache, Tag::Assignments.key_u64(self.env.height), &log);
        }
        // Explanations: one sentence per job, from its first unmatched slot.
        for job in jobs.iter_mut() {
            job.wait_reason = unmatched
                .iter()
                .find(|u| u.job.0 == job.id)
                .map(|u| u.reason.to_string());
            store(cache, Tag::Job.key_u64(job.id), job);
        }
        Ok(())
    }

    /// Deals the providers of a pass's checking replicas (every replica but a new unit's
    /// first) at random among the checking replicas the pass placed for the same job, from the
    /// block seed: the order of the book decides who works, not who checks whom, so providers
    /// that sit next to each other in it (colluders can arrange that) are not paired again and
    /// again. Every replica of a job meets the same requirements and price, so any dealing
    /// that keeps a unit's providers distinct and its excluded providers out is a valid match;
    /// when conflicts cannot be swapped away, the job keeps the matcher's assignment.
    fn deal_checks(&self, jobs: &[Job], assignments: &mut [exo_market::Assignment], pass: u8) {
        for job in jobs {
            let new = |unit: u32| job.running.binary_search(&unit).is_err();
            let checks: Vec<usize> = (0..assignments.len())
                .filter(|&i| {
                    let a = &assignments[i];
                    a.job.0 == job.id && !(a.replica == 0 && new(a.unit))
                })
                .collect();
            if checks.len() < 2 {
                continue;
            }
            // Providers each unit must not get again: a new unit's first replica, and those
            // its waiting entry excludes (the holders of its other replicas).
            let mut fixed: Vec<(u32, u64)> = assignments
                .iter()
                .filter(|a| a.job.0 == job.id && a.replica == 0 && new(a.unit))
                .map(|a| (a.unit, a.provider.0))
                .collect();
            for &i in &checks {
                let unit = assignments[i].unit;
                if let Some(w) = job.waiting.iter().find(|w| w.unit == unit) {
                    fixed.extend(w.exclude.iter().map(|p| (unit, *p)));
                }
            }
            fixed.sort_unstable();
            fixed.dedup();
            let units: Vec<u32> = checks.iter().map(|&i| assignments[i].unit).collect();
            let mut pool: Vec<(ProviderId, OfferId, u128)> = checks
                .iter()
                .map(|&i| {
                    let a = &assignments[i];
                    (a.provider, a.offer, a.price_per_unit)
                })
                .collect();
            let mut bytes = Vec::with_capacity(32 + 13);
            bytes.extend_from_slice(b"deal");
            bytes.extend_from_slice(&self.env.seed);
            bytes.extend_from_slice(&job.id.to_be_bytes());
            bytes.push(pass);
            let h = hash32(&bytes);
            let mut state = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            // splitmix64, drawn below `bound`.
            let mut next = move |bound: usize| -> usize {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) % bound as u64) as usize
            };
            for k in (1..pool.len()).rev() {
                pool.swap(k, next(k + 1));
            }
            let fits = |k: usize, pool: &[(ProviderId, OfferId, u128)]| {
                let (unit, provider) = (units[k], pool[k].0.0);
                fixed.binary_search(&(unit, provider)).is_err()
                    && !(0..pool.len())
                        .any(|m| m != k && units[m] == unit && pool[m].0.0 == provider)
            };
            let mut dealt = true;
            for k in 0..pool.len() {
                if fits(k, &pool) {
                    continue;
                }
                let n = pool.len();
                let start = next(n);
                let swap = (0..n).map(|d| (start + d) % n).find(|&m| {
                    pool.swap(k, m);
                    let both = fits(k, &pool) && fits(m, &pool);
                    pool.swap(k, m);
                    m != k && both
                });
                match swap {
                    Some(m) => pool.swap(k, m),
                    None => {
                        dealt = false;
                        break;
                    }
                }
            }
            if !dealt {
                continue;
            }
            for (k, &i) in checks.iter().enumerate() {
                let (provider, offer, price) = pool[k];
                let a = &mut assignments[i];
                a.provider = provider;
                a.offer = offer;
                a.price_per_unit = price;
            }
        }
    }

    /// Writes one pass's assignments: the replicas, the providers' work lists, the jobs'
    /// waiting and running units. A unit that started in this pass and whose replicas' weight
    /// falls short of its trust level asks for more; one held by a single provider whose
    /// weight reaches it draws a hidden audit replica.
    fn assign(
        &mut self,
        cache: &mut StateCache,
        jobs: &mut [Job],
        assignments: &[exo_market::Assignment],
        log: &mut AssignmentList,
    ) -> Result<(), Missing> {
        // Load what the assignments touch, then write them.
        cache.require(assignments.iter().flat_map(|a| {
            [
                unit_key(a.job.0, a.unit),
                Tag::Provider.key_u64(a.provider.0),
            ]
        }))?;
        cache.require(
            assignments
                .iter()
                .map(|a| Tag::Work.key_u64(a.provider.0))
                .chain(std::iter::once(Tag::Assignments.key_u64(self.env.height))),
        )?;
        // Units started by this pass, with the weight of the replicas they got.
        let mut started: Vec<(u64, u32, u32)> = Vec::new();
        for assignment in assignments {
            let Some(job) = jobs.iter_mut().find(|j| j.id == assignment.job.0) else {
                continue;
            };
            let mut provider = Self::provider(cache, assignment.provider.0)?;
            provider.active += 1;
            let weight = self.weight(&provider);
            store(cache, Tag::Provider.key_u64(provider.id), &provider);
            let mut unit = Self::unit(cache, job.id, assignment.unit)?.unwrap_or(Unit {
                job: job.id,
                unit: assignment.unit,
                state: UnitState::Running,
                replicas: Vec::new(),
                reveal_deadline: None,
                accepted: None,
            });
            if unit.replicas.is_empty() {
                started.push((job.id, assignment.unit, 0));
            }
            if let Some(s) = started
                .iter_mut()
                .find(|(j, u, _)| *j == job.id && *u == assignment.unit)
            {
                s.2 += weight;
            }
            let commit_deadline = self.env.height + self.params.commit_window;
            unit.replicas.push(Replica {
                index: assignment.replica,
                provider: provider.id,
                offer: assignment.offer.0,
                price_per_unit: Amount(assignment.price_per_unit),
                assigned_height: self.env.height,
                commit_deadline,
                commitment: None,
                reveal: None,
                status: ReplicaStatus::Assigned,
            });
            self.add_deadline(
                cache,
                commit_deadline,
                job.id,
                assignment.unit,
                assignment.replica,
            )?;
            Self::set_work(
                cache,
                provider.id,
                (job.id, assignment.unit, assignment.replica),
                true,
            )?;
            log.0.push(AssignmentRecord {
                job: job.id,
                unit: assignment.unit,
                replica: assignment.replica,
                provider: provider.id,
                price_per_unit: Amount(assignment.price_per_unit),
                commit_deadline,
            });
            if let Some(w) = job.waiting.iter_mut().find(|w| w.unit == assignment.unit) {
                w.replicas.retain(|r| *r != assignment.replica);
                if !w.exclude.contains(&provider.id) {
                    let at = w.exclude.partition_point(|p| *p < provider.id);
                    w.exclude.insert(at, provider.id);
                }
            }
            job.waiting.retain(|w| !w.replicas.is_empty());
            if let Err(at) = job.running.binary_search(&assignment.unit) {
                job.running.insert(at, assignment.unit);
            }
            store(cache, unit_key(job.id, assignment.unit), &unit);
        }
        // What the started units got decides how many more they need: enough weight to reach
        // the trust level, or, when one provider is trusted enough, a hidden audit by chance.
        for (job_id, unit_index, weight) in started {
            let Some(job) = jobs.iter_mut().find(|j| j.id == job_id) else {
                continue;
            };
            let Some(unit) = Self::unit(cache, job_id, unit_index)? else {
                continue;
            };
            let trust = u32::from(job.spec.trust);
            let more = if weight >= trust {
                u32::from(unit.replicas.len() == 1 && self.draw_audit(job_id, unit_index))
            } else {
                trust - weight
            };
            if more == 0 {
                continue;
            }
            let next = unit.replicas.iter().map(|r| r.index + 1).max().unwrap_or(0);
            let mut exclude: Vec<u64> = unit.replicas.iter().map(|r| r.provider).collect();
            exclude.sort_unstable();
            exclude.dedup();
            let at = job.waiting.partition_point(|w| w.unit < unit_index);
            match job.waiting.get_mut(at).filter(|w| w.unit == unit_index) {
                // A new unit's waiting entry goes when its first replica is placed; one still
                // here lists replicas the matcher could not place this pass.
                Some(w) => {
                    for k in 0..more {
                        if let Err(at) = w.replicas.binary_search(&(next + k)) {
                            w.replicas.insert(at, next + k);
                        }
                    }
                    w.exclude = exclude;
                }
                None => job.waiting.insert(
                    at,
                    WaitingUnit {
                        unit: unit_index,
                        replicas: (next..next + more).collect(),
                        exclude,
                    },
                ),
            }
        }
        Ok(())
    }

    /// Whether a unit trusted to one provider also gets a hidden audit replica. Drawn from the
    /// block seed, which nobody knows before the block, so a provider cannot tell whether its
    /// unit will be audited when it computes it.
    fn draw_audit(&self, job: u64, unit: u32) -> bool {
        let mut bytes = Vec::with_capacity(32 + 12 + 5);
        bytes.extend_from_slice(b"audit");
        bytes.extend_from_slice(&self.env.seed);
        bytes.extend_from_slice(&job.to_be_bytes());
        bytes.extend_from_slice(&unit.to_be_bytes());
        let h = hash32(&bytes);
        let draw = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
        draw < self.params.audit_ppm
    }
}

fn hex_short(hash: &Hash32) -> String {
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
