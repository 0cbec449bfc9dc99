//! Offers: providers' asks on the book.

use super::{
    Market, Refusal, Verdict,
    keys::{book_key, counters_key, offer_key},
    records::OfferRecord,
    refuse,
};
use crate::{
    exec::Created,
    state::{StateCache, load, store},
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
        expiry_height: u64,
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
            posted_height: self.env.height,
            expiry_height,
        };
        if offer.validate().is_err() {
            return refuse(Refusal::InvalidOffer { expiry: None });
        }
        if expiry_height <= self.env.height {
            return refuse(Refusal::InvalidOffer {
                expiry: Some((expiry_height, self.env.height)),
            });
        }
        let mut book = Self::id_list(cache, book_key())?;
        if book.0.len() >= self.params.max_open_offers as usize {
            return refuse(Refusal::BookFull {
                max: self.params.max_open_offers,
            });
        }
        cache.require(book.0.iter().map(|id| offer_key(*id)))?;
        let mut mine = 0usize;
        for id in &book.0 {
            if let Some(r) = load::<OfferRecord>(cache, &offer_key(*id))?
                && r.offer.provider.0 == provider.id
            {
                mine += 1;
            }
        }
        if mine >= self.params.max_offers_per_provider as usize {
            return refuse(Refusal::TooManyOffers {
                held: mine as u32,
                max: self.params.max_offers_per_provider,
            });
        }
        counters.next_offer += 1;
        self.created.push(Created::Offer(offer.id.0));
        store(cache, counters_key(), &counters)?;
        book.0.push(offer.id.0);
        store(cache, book_key(), &book)?;
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
        Ok(Ok(()))
    }
}
