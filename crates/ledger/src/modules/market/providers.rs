//! Providers: registration with a bond, updates, retirement.

use super::{
    Market, Refusal, Verdict,
    keys::{book_key, counters_key, offer_key, owner_key, provider_key},
    records::{OwnerIndex, Provider},
    refuse,
    reputation::REPUTATION_START,
};
use crate::{
    exec::{Created, Rejection},
    modules::bank::{self, Pot},
    state::{StateCache, store},
};
use exo_market::Resources;
use exo_types::{Address, Amount};

impl Market<'_> {
    pub(super) fn register_provider(
        &mut self,
        cache: &mut StateCache,
        owner: &Address,
        resources: &Resources,
        bond: Amount,
    ) -> Verdict {
        if resources.validate().is_err() {
            return refuse(Refusal::InvalidResources);
        }
        if Self::provider_of(cache, owner)?.is_some() {
            return refuse(Refusal::ProviderExists);
        }
        if bond < self.params.min_provider_bond {
            return refuse(Refusal::BondTooLow {
                bond,
                min: self.params.min_provider_bond,
            });
        }
        let mut counters = Self::counters(cache)?;
        let id = counters.next_provider;
        counters.next_provider += 1;
        if let Err(refusal) = bank::lock(cache, owner, Pot::ProviderBond(id), bond)? {
            return Ok(Err(Rejection::Bank(refusal)));
        }
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
            reputation_secs: self.now_secs(),
            first_matched_height: None,
            valid_since_secs: 0,
        };
        store(cache, provider_key(id), &provider)?;
        store(cache, owner_key(owner), &OwnerIndex(id))?;
        store(cache, counters_key(), &counters)?;
        self.created.push(Created::Provider(id));
        Ok(Ok(()))
    }

    pub(super) fn update_provider(
        cache: &mut StateCache,
        owner: &Address,
        resources: &Resources,
    ) -> Verdict {
        if resources.validate().is_err() {
            return refuse(Refusal::InvalidResources);
        }
        let Some(mut provider) = Self::provider_of(cache, owner)? else {
            return refuse(Refusal::NotAProvider);
        };
        if provider.retired {
            return refuse(Refusal::ProviderRetired);
        }
        provider.resources = resources.clone();
        store(cache, provider_key(provider.id), &provider)?;
        Ok(Ok(()))
    }

    pub(super) fn retire_provider(cache: &mut StateCache, owner: &Address) -> Verdict {
        let Some(mut provider) = Self::provider_of(cache, owner)? else {
            return refuse(Refusal::NotAProvider);
        };
        if provider.retired {
            return refuse(Refusal::ProviderRetired);
        }
        if provider.active > 0 {
            return refuse(Refusal::ProviderBusy {
                active: provider.active,
            });
        }
        // Its offers leave the book with it.
        let mut holdings = Self::holdings(cache, owner)?;
        let mut book = Self::id_list(cache, book_key())?;
        book.0.retain(|id| !holdings.offers.contains(id));
        store(cache, book_key(), &book)?;
        for id in holdings.offers.drain(..) {
            cache.put(offer_key(id), None);
            Self::forget_proven(cache, id)?;
        }
        Self::store_holdings(cache, owner, &holdings)?;
        let bond = Pot::ProviderBond(provider.id);
        bank::expect_pot(cache, bond, provider.bond)?;
        bank::release(cache, bond, owner, provider.bond)?;
        provider.bond = Amount::ZERO;
        provider.retired = true;
        store(cache, provider_key(provider.id), &provider)?;
        Ok(Ok(()))
    }
}
