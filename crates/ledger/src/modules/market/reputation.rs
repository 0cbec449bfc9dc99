//! Reputation: what a provider's record is worth, and what may raise it.
//!
//! A record is built only by results another replica confirmed, on work an independent
//! requester paid for: nothing from zero-price work or from work whose requester shares a
//! source of funds with the provider, less for cheap work, less each time the same co-replica
//! confirms, and what stands above the starting reputation decays with block time. Providers
//! first matched in the same block get no trusted bonus on a unit they share, and trusted
//! weight waits for a record `trusted_min_age_secs` old. ARCHITECTURE.md ("Reputation that
//! cannot be bought", "Trust takes time") says why each rule is there.

use super::{
    Market, MarketParams,
    keys::partners_key,
    records::{Partners, Provider},
};
use crate::{
    modules::bank::{self, Funding},
    state::{Halt, StateCache, load, store},
};
use exo_types::{Address, Amount};

/// Highest reputation.
pub const REPUTATION_MAX: u32 = 1_000;
/// Reputation of a new provider.
pub const REPUTATION_START: u32 = 500;
/// What one confirmed result earns at most: paid at least `reputation_full_value`, confirmed
/// by a co-replica that never confirmed the provider before.
pub(super) const REPUTATION_VALID: u32 = 10;
pub const REPUTATION_WRONG: u32 = 200;
pub const REPUTATION_NO_SHOW: u32 = 50;

/// `provider`'s reputation at `now_secs`: what it holds above [`REPUTATION_START`] halves
/// every `reputation_half_life_secs` since it was last brought up to date (linearly within a
/// half-life), so that a record is worth what recent work says and a farmed record fades once
/// farming stops. Reputation below the start never rises by itself: a caught liar stays below
/// the matching floor.
pub fn current_reputation(params: &MarketParams, provider: &Provider, now_secs: u64) -> u32 {
    let Some(excess) = provider.reputation.checked_sub(REPUTATION_START) else {
        return provider.reputation;
    };
    // Parameters keep the half-life at least a few seconds.
    let half_life = params.reputation_half_life_secs.max(1);
    let elapsed = now_secs.saturating_sub(provider.reputation_secs);
    let halvings = elapsed / half_life;
    let within = elapsed % half_life;
    let halved = u64::from(excess) >> halvings.min(32);
    let left = halved - halved * within / (2 * half_life);
    // `left` is at most `excess`, a u32.
    REPUTATION_START + u32::try_from(left).unwrap_or(0)
}

/// Whether the batch match gives `provider` work at block time `now_secs`: not retired, its
/// bond at least the minimum and its reputation, decayed to then, at least the matching
/// floor. Only such a provider's free slots earn in a capacity round.
pub fn is_matchable(params: &MarketParams, provider: &Provider, now_secs: u64) -> bool {
    !provider.retired
        && provider.bond >= params.min_provider_bond
        && current_reputation(params, provider, now_secs) >= params.min_match_reputation
}

/// Whether a provider's result weighs 2 or 1 at block time `now_secs`: 2 takes a long record
/// of confirmed results (`trusted_min_valid` of them since its last catch), a reputation of
/// `trusted_reputation` decayed to then, and a record at least `trusted_min_age_secs` old.
pub fn weight(params: &MarketParams, provider: &Provider, now_secs: u64) -> u32 {
    let reputation = current_reputation(params, provider, now_secs);
    let old_enough = params.trusted_min_age_secs == 0
        || (provider.valid > 0
            && now_secs.saturating_sub(provider.valid_since_secs) >= params.trusted_min_age_secs);
    if reputation >= params.trusted_reputation
        && provider.valid >= params.trusted_min_valid
        && old_enough
    {
        2
    } else {
        1
    }
}

/// The reputation one confirmed result earns: [`REPUTATION_VALID`] scaled by what the
/// provider was paid for it against `reputation_full_value` (nothing for nothing), divided by
/// one plus the confirmations the least familiar of its confirmers already gave it. A pair of
/// providers that keep confirming each other earns 10, 5, 3, 2, 2, 1, ... and then nothing.
pub fn confirmation_gain(params: &MarketParams, paid: Amount, repeats: u32) -> u32 {
    let full = params.reputation_full_value.0.max(1);
    let scaled = u128::from(REPUTATION_VALID) * paid.0.min(full) / full;
    let gain = scaled / (u128::from(repeats) + 1);
    // At most REPUTATION_VALID.
    u32::try_from(gain).unwrap_or(0)
}

/// A provider as a unit's verdict weighs it: its weight and the height of its first match.
pub type Member = (u32, Option<u64>);

/// The weight a group of agreeing replicas carries, from each provider's (weight, height of
/// its first match): providers first matched in the same block as another provider of the
/// group weigh 1 each, so that identities started together (a self-dealing farm bootstraps
/// that way) never decide a unit on their trusted bonus alone. The weight is never below the
/// group's head count, so the cap cannot stall a unit that has enough distinct providers.
pub fn deciding_weight(members: &[Member]) -> u32 {
    members
        .iter()
        .enumerate()
        .map(|(i, (weight, first))| {
            let cohort_mate = first.is_some()
                && members
                    .iter()
                    .enumerate()
                    .any(|(j, (_, other))| j != i && other == first);
            if cohort_mate { 1 } else { *weight }
        })
        .sum()
}

impl Market<'_> {
    /// A provider's weight at this block's time.
    pub(super) fn weight(&self, provider: &Provider) -> u32 {
        weight(self.params, provider, self.now_secs())
    }

    /// A provider's (weight, first match) for [`deciding_weight`].
    pub(super) fn weight_and_cohort(&self, provider: &Provider) -> Member {
        (self.weight(provider), provider.first_matched_height)
    }

    /// Brings `provider`'s reputation up to this block's time, before it changes.
    pub(super) fn refresh_reputation(&self, provider: &mut Provider) {
        let now = self.now_secs();
        provider.reputation = current_reputation(self.params, provider, now);
        provider.reputation_secs = now;
    }

    /// Credits one confirmed result to `provider`, paid `paid` by `requester`'s job and
    /// confirmed by the providers `confirmers` (id and owner): a confirmed result (progress
    /// toward trusted weight) and its [`confirmation_gain`], unless the work was not paid or
    /// the requester is tied to the provider by funding ([`Self::tied`]). Confirmers tied to
    /// the provider confirm nothing: if all are, the result builds no record.
    pub(super) fn credit_confirmation(
        &self,
        cache: &mut StateCache,
        requester: &Address,
        provider: &mut Provider,
        paid: Amount,
        confirmers: &[(u64, Address)],
    ) -> Result<(), Halt> {
        if paid == Amount::ZERO || self.tied(cache, requester, &provider.owner)? {
            return Ok(());
        }
        let mut independent = Vec::with_capacity(confirmers.len());
        for (id, owner) in confirmers {
            if !self.tied(cache, owner, &provider.owner)? {
                independent.push(*id);
            }
        }
        if independent.is_empty() {
            return Ok(());
        }
        let key = partners_key(provider.id);
        cache.require([key])?;
        let mut partners: Partners = load(cache, &key)?.unwrap_or_default();
        let repeats = independent
            .iter()
            .map(|id| partners.count(*id))
            .min()
            .unwrap_or(0);
        for id in &independent {
            partners.confirmed_by(*id);
        }
        store(cache, key, &partners)?;
        self.refresh_reputation(provider);
        if provider.valid == 0 {
            provider.valid_since_secs = self.now_secs();
        }
        provider.valid = provider.valid.saturating_add(1);
        provider.reputation = provider
            .reputation
            .saturating_add(confirmation_gain(self.params, paid, repeats))
            .min(REPUTATION_MAX);
        Ok(())
    }

    /// Whether two accounts are one, or tied by a transfer younger than
    /// `self_dealing_window_secs`: one first funded the other, or the same account first
    /// funded both. What the bank records is the first funder of each account only, so the
    /// check reads two records whatever the accounts did since.
    fn tied(&self, cache: &StateCache, a: &Address, b: &Address) -> Result<bool, Halt> {
        if a == b {
            return Ok(true);
        }
        cache.require([bank::funding_key(a), bank::funding_key(b)])?;
        let recent = |funding: Option<Funding>| {
            funding.filter(|f| {
                f.at_secs
                    .saturating_add(self.params.self_dealing_window_secs)
                    > self.now_secs()
            })
        };
        let (of_a, of_b) = (
            recent(bank::funding(cache, a)?),
            recent(bank::funding(cache, b)?),
        );
        let funded_by = |funding: &Option<Funding>, by: &Address| {
            funding.as_ref().is_some_and(|f| f.funder == *by)
        };
        let common = match (&of_a, &of_b) {
            (Some(fa), Some(fb)) => fa.funder == fb.funder,
            _ => false,
        };
        Ok(funded_by(&of_a, b) || funded_by(&of_b, a) || common)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::market::records::MAX_PARTNERS;

    fn provider(reputation: u32, reputation_secs: u64) -> Provider {
        Provider {
            id: 0,
            owner: {
                use commonware_cryptography::Signer;
                exo_types::PrivateKey::from_seed(0).public_key()
            },
            resources: exo_market::Resources {
                cores: 1,
                cpu_score: 1,
                memory_mib: 1,
                gpu: None,
                class: exo_market::DeviceClass::Pc,
                region: "eu-west".into(),
                runtimes: exo_market::RuntimeSet::only(exo_market::Runtime::Wasm32Wasip1),
                max_unit_fuel: 1,
            },
            bond: Amount::ZERO,
            reputation,
            active: 0,
            valid: 0,
            invalid: 0,
            missed: 0,
            retired: false,
            registered_height: 0,
            reputation_secs,
            first_matched_height: None,
            valid_since_secs: 0,
        }
    }

    fn half_life(secs: u64) -> MarketParams {
        MarketParams {
            reputation_half_life_secs: secs,
            ..MarketParams::default()
        }
    }

    #[test]
    fn what_stands_above_the_start_halves_every_half_life_and_nothing_below_it_moves() {
        let params = half_life(100);
        let p = provider(REPUTATION_START + 400, 1_000);
        let at = |secs| current_reputation(&params, &p, secs);
        assert_eq!(at(1_000), REPUTATION_START + 400);
        assert_eq!(
            at(1_050),
            REPUTATION_START + 300,
            "halfway through a half-life"
        );
        assert_eq!(at(1_100), REPUTATION_START + 200);
        assert_eq!(at(1_200), REPUTATION_START + 100);
        assert_eq!(at(1_000 + 100 * 64), REPUTATION_START);
        assert_eq!(at(u64::MAX), REPUTATION_START);
        // A clock that reads earlier than the record changes nothing.
        assert_eq!(at(0), REPUTATION_START + 400);
        // A caught liar's record stays where its penalties left it.
        let caught = provider(REPUTATION_START - 200, 0);
        assert_eq!(current_reputation(&params, &caught, 1 << 40), 300);
    }

    #[test]
    fn trusted_weight_waits_for_a_record_old_enough_and_a_catch_clears_it() {
        let params = MarketParams {
            trusted_reputation: 0,
            trusted_min_valid: 3,
            trusted_min_age_secs: 1_000,
            ..MarketParams::default()
        };
        let mut p = provider(REPUTATION_START, 0);
        p.valid = 3;
        p.valid_since_secs = 5_000;
        assert_eq!(weight(&params, &p, 5_999), 1, "a second short");
        assert_eq!(weight(&params, &p, 6_000), 2);
        // A clock that reads earlier than the record gives no age.
        assert_eq!(weight(&params, &p, 0), 1);
        // A catch clears `valid`, and with it the record's age, however old it was: even where
        // no count is needed, weight 2 waits for a new first confirmation and its age.
        let age_only = MarketParams {
            trusted_min_valid: 0,
            ..params.clone()
        };
        assert_eq!(weight(&age_only, &p, 6_000), 2);
        p.valid = 0;
        assert_eq!(weight(&age_only, &p, u64::MAX), 1);
        // With no age needed, the count and the reputation decide alone.
        let no_age = MarketParams {
            trusted_min_age_secs: 0,
            ..params.clone()
        };
        p.valid = 3;
        assert_eq!(weight(&no_age, &p, 0), 2);
        p.valid = 2;
        assert_eq!(weight(&no_age, &p, u64::MAX), 1);
    }

    #[test]
    fn a_confirmation_earns_by_the_value_paid_and_less_from_a_familiar_co_replica() {
        let params = MarketParams::default();
        let full = params.reputation_full_value;
        assert_eq!(confirmation_gain(&params, Amount::ZERO, 0), 0);
        assert_eq!(confirmation_gain(&params, Amount(full.0 / 2), 0), 5);
        assert_eq!(confirmation_gain(&params, full, 0), REPUTATION_VALID);
        assert_eq!(
            confirmation_gain(&params, Amount(u128::MAX), 0),
            REPUTATION_VALID
        );
        let by_repeat: Vec<u32> = (0..12)
            .map(|n| confirmation_gain(&params, full, n))
            .collect();
        assert_eq!(by_repeat, [10, 5, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(confirmation_gain(&params, full, u32::MAX), 0);
    }

    #[test]
    fn providers_first_matched_together_weigh_one_each_and_never_below_their_head_count() {
        assert_eq!(deciding_weight(&[(2, Some(7)), (2, Some(7))]), 2);
        assert_eq!(deciding_weight(&[(2, Some(7)), (2, Some(8))]), 4);
        assert_eq!(
            deciding_weight(&[(2, Some(7)), (2, Some(7)), (2, Some(8))]),
            4
        );
        assert_eq!(
            deciding_weight(&[(1, Some(7)), (1, Some(7)), (1, Some(7))]),
            3
        );
        assert_eq!(deciding_weight(&[(2, None), (2, None)]), 4);
        assert_eq!(deciding_weight(&[]), 0);
    }

    #[test]
    fn a_providers_partners_stay_within_their_bound_forgetting_the_least_recent() {
        let mut partners = Partners::default();
        for _ in 0..3 {
            partners.confirmed_by(1);
        }
        assert_eq!(partners.count(1), 3);
        // As many new partners as it remembers: the least recent, 1, is forgotten.
        for id in 2..(2 + MAX_PARTNERS as u64) {
            partners.confirmed_by(id);
            assert!(partners.0.len() <= MAX_PARTNERS);
        }
        assert_eq!(partners.0.len(), MAX_PARTNERS);
        assert_eq!(partners.count(1), 0);
        assert_eq!(partners.count(2), 1);
        partners.confirmed_by(1);
        assert_eq!(partners.count(1), 1);
        assert_eq!(partners.count(2), 0);
        partners.confirmed_by(1);
        assert_eq!(partners.0.last(), Some(&(1, 2)));
    }
}
