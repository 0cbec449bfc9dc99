//! Offers: providers' asks on the book.

use super::{
    Market, Refusal, Verdict,
    keys::{book_key, counters_key, offer_key, work_key},
    records::{OfferRecord, WorkCount},
    refuse,
};
use crate::{
    exec::Created,
    state::{StateCache, expect, load, store},
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
        let mut book = Self::id_list(cache, book_key())?;
        if book.0.len() >= self.params.max_open_offers as usize {
            return refuse(Refusal::BookFull {
                max: self.params.max_open_offers,
            });
        }
        let mut holdings = Self::holdings(cache, owner)?;
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
        let mut holdings = Self::holdings(cache, owner)?;
        holdings.offers.retain(|o| *o != id);
        Self::store_holdings(cache, owner, &holdings)?;
        Ok(Ok(()))
    }
}
