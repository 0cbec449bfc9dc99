//! Offers: providers' asks on the book.

use super::{
    Market, Refusal, Verdict,
    keys::{book_key, capacity_proven_key, counters_key, holdings_key, offer_key, work_key},
    records::{IdList, OfferRecord, ProvenRound, WorkCount},
    refuse,
};
use crate::{
    exec::Created,
    state::{Halt, StateCache, expect, load, remove, store},
};
use exo_market::{Offer, OfferId, ProviderId};
use exo_types::{Address, Amount};

impl Market<'_> {
    pub(super) fn post_offer(
        &mut self,
        cache: &mut StateCache,
        owner: &Address,
        slots: u32,
        price_per_unit: Amount,
        expiry_secs: u64,
    ) -> Verdict {
        let Some(provider) = Self::provider_of(cache, owner)? else {
            return refuse(Refusal::NotAProvider);
        };
        if provider.retired {
            return refuse(Refusal::ProviderRetired);
        }
        if provider.bond < self.params.min_provider_bond {
            return refuse(Refusal::BondTooLow {
                bond: provider.bond,
                min: self.params.min_provider_bond,
            });
        }
        let mut counters = Self::counters(cache)?;
        let offer = Offer {
            id: OfferId(counters.next_offer),
            provider: ProviderId(provider.id),
            resources: provider.resources.clone(),
            reputation: provider.reputation,
            slots,
            price_per_unit: price_per_unit.0,
            posted_secs: self.now_secs(),
            expiry_secs,
        };
        if expiry_secs <= offer.posted_secs {
            return refuse(Refusal::InvalidOffer {
                expiry: Some((expiry_secs, offer.posted_secs)),
            });
        }
        // An offer with no slot would hold a place on the book and sell nothing.
        if offer.validate().is_err() || slots == 0 {
            return refuse(Refusal::InvalidOffer { expiry: None });
        }
        // Parameters bound the lifetime so that this cannot overflow.
        let latest = offer
            .posted_secs
            .saturating_add(self.params.max_offer_lifetime_secs);
        if expiry_secs > latest {
            return refuse(Refusal::OfferTooLong {
                expiry: expiry_secs,
                max: latest,
            });
        }
        // Expired offers leave the book when a batch runs, and a batch runs only when a job
        // waits: on an idle market they stay. A provider that renews its offer must not be
        // refused for its own expired ones, nor anyone for a book full of dead offers.
        let mut book = Self::id_list(cache, book_key())?;
        let mut holdings = Self::holdings(cache, owner)?;
        cache.require(holdings.offers.iter().map(|id| offer_key(*id)))?;
        let own_expired = self.expired_among(cache, &holdings.offers)?;
        Self::remove_offers(cache, &mut book, &own_expired)?;
        if book.0.len() >= self.params.max_open_offers as usize {
            cache.require(book.0.iter().map(|id| offer_key(*id)))?;
            let expired = self.expired_among(cache, &book.0)?;
            Self::remove_offers(cache, &mut book, &expired)?;
        }
        if book.0.len() >= self.params.max_open_offers as usize {
            return refuse(Refusal::BookFull {
                max: self.params.max_open_offers,
            });
        }
        holdings = Self::holdings(cache, owner)?;
        let held = holdings.offers.len() as u32;
        if held >= self.params.max_offers_per_provider {
            return refuse(Refusal::TooManyOffers {
                held,
                max: self.params.max_offers_per_provider,
            });
        }
        // The replicas holding its slots (its work set) and the free slots of its offers stay
        // within its cap: a cancelled offer's slots taken by running replicas count until
        // those reveal or end.
        cache.require(
            holdings
                .offers
                .iter()
                .map(|id| offer_key(*id))
                .chain(std::iter::once(work_key(provider.id))),
        )?;
        let mut held = u64::from(
            load::<WorkCount>(cache, &work_key(provider.id))?
                .unwrap_or_default()
                .0,
        );
        for id in &holdings.offers {
            let record: OfferRecord = expect(cache, &offer_key(*id))?;
            held += u64::from(record.offer.slots);
        }
        let max = self.params.max_slots_per_provider;
        if held + u64::from(slots) > u64::from(max) {
            return refuse(Refusal::TooManySlots {
                held: u32::try_from(held).unwrap_or(u32::MAX),
                max,
            });
        }
        counters.next_offer += 1;
        self.created.push(Created::Offer(offer.id.0));
        store(cache, counters_key(), &counters)?;
        book.0.push(offer.id.0);
        store(cache, book_key(), &book)?;
        holdings.offers.push(offer.id.0);
        Self::store_holdings(cache, owner, &holdings)?;
        store(
            cache,
            offer_key(offer.id.0),
            &OfferRecord {
                owner: owner.clone(),
                offer,
            },
        )?;
        Ok(Ok(()))
    }

    /// The offers among `ids` that are no longer live at this block's time.
    fn expired_among(&self, cache: &StateCache, ids: &[u64]) -> Result<Vec<u64>, Halt> {
        let now = self.now_secs();
        let mut expired = Vec::new();
        for id in ids {
            let record: OfferRecord = expect(cache, &offer_key(*id))?;
            if !record.offer.is_live(now) {
                expired.push(*id);
            }
        }
        Ok(expired)
    }

    /// Takes the offers `ids` off `book` (written back) and out of their owners' holdings,
    /// and deletes their records.
    pub(super) fn remove_offers(
        cache: &mut StateCache,
        book: &mut IdList,
        ids: &[u64],
    ) -> Result<(), Halt> {
        if ids.is_empty() {
            return Ok(());
        }
        book.0.retain(|id| !ids.contains(id));
        let mut owners = Vec::with_capacity(ids.len());
        for id in ids {
            let record: OfferRecord = expect(cache, &offer_key(*id))?;
            owners.push((record.owner, *id));
        }
        cache.require(
            owners
                .iter()
                .flat_map(|(owner, id)| [holdings_key(owner), capacity_proven_key(*id)]),
        )?;
        for (owner, id) in owners {
            cache.put(offer_key(id), None);
            Self::forget_proven(cache, id)?;
            let mut holdings = Self::holdings(cache, &owner)?;
            holdings.offers.retain(|o| *o != id);
            Self::store_holdings(cache, &owner, &holdings)?;
        }
        Ok(store(cache, book_key(), book)?)
    }

    pub(super) fn cancel_offer(cache: &mut StateCache, owner: &Address, id: u64) -> Verdict {
        let Some(record) = load::<OfferRecord>(cache, &offer_key(id))? else {
            return refuse(Refusal::UnknownOffer { offer: id });
        };
        if record.owner != *owner {
            return refuse(Refusal::NotYourOffer { offer: id });
        }
        let mut book = Self::id_list(cache, book_key())?;
        book.0.retain(|o| *o != id);
        store(cache, book_key(), &book)?;
        cache.put(offer_key(id), None);
        Self::forget_proven(cache, id)?;
        let mut holdings = Self::holdings(cache, owner)?;
        holdings.offers.retain(|o| *o != id);
        Self::store_holdings(cache, owner, &holdings)?;
        Ok(Ok(()))
    }

    /// Deletes the record of the last capacity round offer `id` proved in, if it has one: the
    /// offer is leaving the book.
    pub(super) fn forget_proven(cache: &mut StateCache, id: u64) -> Result<(), Halt> {
        if load::<ProvenRound>(cache, &capacity_proven_key(id))?.is_some() {
            remove(cache, capacity_proven_key(id));
        }
        Ok(())
    }
}
