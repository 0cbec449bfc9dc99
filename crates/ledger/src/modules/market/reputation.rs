//! Reputation: what a provider's record is worth.

use super::{Market, MarketParams, records::Provider};

/// Highest reputation.
pub const REPUTATION_MAX: u32 = 1_000;
/// Reputation of a new provider.
pub const REPUTATION_START: u32 = 500;
pub(super) const REPUTATION_VALID: u32 = 10;
pub const REPUTATION_WRONG: u32 = 200;
pub const REPUTATION_NO_SHOW: u32 = 50;

/// Whether a provider's result weighs 2 (a long record of confirmed results) or 1.
pub fn weight(params: &MarketParams, provider: &Provider) -> u32 {
    if provider.reputation >= params.trusted_reputation
        && provider.valid >= params.trusted_min_valid
    {
        2
    } else {
        1
    }
}

impl Market<'_> {
    pub(super) fn weight(&self, provider: &Provider) -> u32 {
        weight(self.params, provider)
    }
}
