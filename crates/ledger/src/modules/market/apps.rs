//! Apps: task modules published by their developers, with a royalty per compute unit.

use super::{
    AppProblem, Market, Refusal, Verdict,
    keys::{app_key, apps_key},
    records::{App, AppList},
    refuse,
};
use crate::state::{StateCache, load, store};
use exo_types::{Address, Amount, Hash32};

/// Most published apps.
pub const MAX_APPS: usize = 10_000;
/// Highest royalty an app may ask per compute unit.
const MAX_ROYALTY: Amount = Amount::from_exo(1_000);

impl Market<'_> {
    pub(super) fn publish_app(
        &mut self,
        cache: &mut StateCache,
        developer: &Address,
        module_hash: &Hash32,
        name: &str,
        version: &str,
        royalty_per_unit: Amount,
    ) -> Verdict {
        let key = app_key(module_hash, developer);
        if load::<App>(cache, &key)?.is_some() {
            return refuse(Refusal::AppExists);
        }
        let printable = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic());
        if !printable(name) || !printable(version) {
            return refuse(Refusal::InvalidApp(AppProblem::Name));
        }
        if royalty_per_unit > MAX_ROYALTY {
            return refuse(Refusal::InvalidApp(AppProblem::Royalty {
                max: MAX_ROYALTY,
            }));
        }
        let mut holdings = Self::holdings(cache, developer)?;
        if holdings.apps >= self.params.max_apps_per_account {
            return refuse(Refusal::TooManyApps {
                held: holdings.apps,
                max: self.params.max_apps_per_account,
            });
        }
        let mut apps: AppList = load(cache, &apps_key())?.unwrap_or_default();
        if apps.0.len() >= MAX_APPS {
            return refuse(Refusal::InvalidApp(AppProblem::Full {
                max: MAX_APPS as u32,
            }));
        }
        apps.0.push((*module_hash, developer.clone()));
        store(cache, apps_key(), &apps)?;
        holdings.apps += 1;
        Self::store_holdings(cache, developer, &holdings)?;
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
        )?;
        Ok(Ok(()))
    }
}
