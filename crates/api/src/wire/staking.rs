//! The JSON bodies of staking's routes: the validator candidates and the committee of an
//! epoch with its backing, its points, its rewards and its slashes.
//!
//! Like the rest of [`crate::wire`]: amounts are decimal strings of base units, addresses
//! lower-case hex.

use super::{base_units, hex_address, schema};
use exo_types::{Address, Amount};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A validator candidate, an item of `GET /v1/validators`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorView {
    /// The account that registered it.
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub address: Address,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub consensus_key: Address,
    pub p2p_address: String,
    pub commission_bps: u32,
    /// `active`, `chilled` or `jailed`.
    pub status: String,
    /// The height a jailed validator may unjail from.
    pub jailed_until: Option<u64>,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub self_bond: Amount,
    /// How many nominators name it.
    pub nominators: u32,
}

/// `GET /v1/validators`: every candidate (at most the chain's `max_validators`), by address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Validators {
    pub validators: Vec<ValidatorView>,
}

/// A nominator's share in a member's backing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub nominator: Address,
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub amount: Amount,
}

/// A member of an epoch's committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitteeMember {
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub validator: Address,
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub consensus_key: Address,
    /// The stake the election gave it: its own share plus its nominators'.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub backing: Amount,
    /// Its own share of the backing; `null` when the epoch's shares are no longer kept or the
    /// committee was not elected.
    #[schema(value_type = Option<schema::BaseUnits>)]
    #[serde(with = "super::base_units_opt")]
    pub own: Option<Amount>,
    /// Its nominators' shares, by nominator (empty when not kept).
    pub nominators: Vec<Share>,
    /// What it earned in the epoch; `null` until the epoch's last block paid it out.
    pub earned: Option<Earned>,
}

/// A member's leader slots, votes and reward in an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Earned {
    /// Blocks it proposed.
    pub proposed: u64,
    /// Views it led that the chain skipped.
    pub missed: u64,
    /// Certificates carried by the epoch's blocks that hold its vote, of the payout's
    /// `certificates`.
    pub votes: u64,
    /// Its points: 20 per block it proposed plus 1 per vote, or zero when the epoch jailed it
    /// for downtime.
    pub points: u64,
    /// Its share of the committee's pool, for it and its nominators.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub reward: Amount,
    /// What of it the validator kept: its commission and its own stake's part.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub kept: Amount,
    /// Whether the epoch jailed it for downtime.
    pub jailed: bool,
}

/// What an epoch paid out: the committee in its last block, the providers over the blocks
/// after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payout {
    /// Time of the epoch's last block, in milliseconds since the Unix epoch.
    pub ended_ms: u64,
    /// Transaction and protocol fees the epoch collected.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub fees: Amount,
    /// The block reward minted for the epoch's blocks.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub minted: Amount,
    /// Paid to providers by units so far.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub to_providers: Amount,
    /// The units the providers' share was divided by: accepted work and proven capacity.
    pub work_units: u64,
    /// The part of `work_units` earned by free slots proven in capacity rounds.
    pub capacity_units: u64,
    /// The providers' share of the epoch's rewards.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub providers_pool: Amount,
    /// Whether every provider owner has been paid (a bounded number of owners are paid a
    /// block, so a busy epoch's payout runs over the blocks after its end).
    pub providers_paid: bool,
    /// Blocks of the epoch that carried a certificate of their parent in the epoch: what
    /// each member's votes are measured against.
    pub certificates: u64,
    /// The divisions' remainders and unclaimed shares, moved to the treasury (the providers'
    /// remainder once their payout is complete).
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub to_treasury: Amount,
}

/// `GET /v1/supply`: every token there is, and where the ones no account holds sit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Supply {
    /// All tokens: genesis, plus every block reward minted, minus everything burnt. The bank
    /// checks at the end of every block that balances and pots sum to it exactly.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub total: Amount,
    /// Burnt so far (providers' slashed bonds), already taken out of `total`.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub burnt: Amount,
    /// The insurance pool: validators' slashed stakes.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub insurance: Amount,
    /// The treasury: the remainders of the epochs' reward divisions.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub treasury: Amount,
    /// The running epoch's rewards so far (fees), paid out in its last block.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub rewards: Amount,
    /// The providers' shares of ended epochs not paid yet (their owners are paid a bounded
    /// number a block).
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub payouts: Amount,
}

/// A slash applied during an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlashView {
    /// The offender's account.
    #[schema(value_type = schema::Address)]
    #[serde(with = "hex_address")]
    pub validator: Address,
    /// Distinct offenders in the window (`k` of `min((3k/n)^2, 1)`).
    pub offenders: u32,
    /// The size of the fault epoch's committee (`n`).
    pub committee: u32,
    /// Taken from the offender and its nominators into the insurance pool.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub amount: Amount,
}

/// `GET /v1/epochs/{n}`: the committee of epoch `n`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EpochView {
    pub epoch: u64,
    /// False when the committee was kept from the previous epoch (too few backed candidates)
    /// or written by genesis.
    pub elected: bool,
    /// The least backing of a member: what a newcomer must beat to take a seat.
    #[schema(value_type = schema::BaseUnits)]
    #[serde(with = "base_units")]
    pub minimum_backing: Amount,
    /// By validator address.
    pub members: Vec<CommitteeMember>,
    /// What the epoch paid out; `null` until its last block ran.
    pub payout: Option<Payout>,
    /// The slashes applied during the epoch.
    pub slashes: Vec<SlashView>,
}
