//! The JSON bodies of staking's routes: the validator candidates and the committee of an
//! epoch with its backing.
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
}
