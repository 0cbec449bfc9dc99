//! What staking's routes do, apart from HTTP: state reads through the ledger's staking
//! queries and their JSON forms.

use crate::{
    ApiError, ApiLimits, NodeView,
    market::{Query, parse_id, read, read_many},
    wire,
};
use exo_ledger::modules::staking::{Exposure, Staker, Status, Validator, queries};
use exo_types::{Address, Amount};

fn validator_json(address: Address, v: Validator, bond: Option<Staker>) -> wire::ValidatorView {
    let (status, jailed_until) = match v.status {
        Status::Active => ("active", None),
        Status::Chilled => ("chilled", None),
        Status::Jailed { until } => ("jailed", Some(until)),
    };
    wire::ValidatorView {
        address,
        consensus_key: v.consensus_key,
        p2p_address: v.p2p_address,
        commission_bps: v.commission_bps,
        status: status.into(),
        jailed_until,
        self_bond: bond.map_or(Amount::ZERO, |s| s.active),
        nominators: v.nominators,
    }
}

/// `GET /v1/validators`.
pub async fn validators<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::Validators, ApiError> {
    query.only(&[])?;
    let all = read(node, limits, queries::validators())
        .await?
        .unwrap_or_default()
        .0;
    let records = read_many(node, limits, all.iter().map(queries::validator).collect()).await?;
    let bonds = read_many(node, limits, all.iter().map(queries::staker).collect()).await?;
    let mut validators = Vec::with_capacity(all.len());
    for ((address, record), bond) in all.into_iter().zip(records).zip(bonds) {
        let record =
            record.ok_or_else(|| ApiError::Internal("a listed validator has no record".into()))?;
        validators.push(validator_json(address, record, bond));
    }
    Ok(wire::Validators { validators })
}

/// `GET /v1/epochs/{n}`.
pub async fn epoch<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    epoch_text: &str,
) -> Result<wire::EpochView, ApiError> {
    let epoch = parse_id("epoch", epoch_text)?;
    let committee = read(node, limits, queries::committee(epoch))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("the committee of epoch {epoch}")))?;
    let exposures = read_many(
        node,
        limits,
        committee
            .members
            .iter()
            .map(|m| queries::exposure(epoch, &m.validator))
            .collect(),
    )
    .await?;
    let minimum_backing = committee.minimum_backing();
    let members = committee
        .members
        .into_iter()
        .zip(exposures)
        .map(|(m, exposure)| member_json(m, exposure))
        .collect();
    Ok(wire::EpochView {
        epoch,
        elected: committee.elected,
        minimum_backing,
        members,
    })
}

fn member_json(
    m: exo_ledger::modules::staking::Member,
    exposure: Option<Exposure>,
) -> wire::CommitteeMember {
    let (own, nominators) = match exposure {
        Some(e) => (
            Some(e.own),
            e.others
                .into_iter()
                .map(|(nominator, amount)| wire::Share { nominator, amount })
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    wire::CommitteeMember {
        validator: m.validator,
        consensus_key: m.consensus_key,
        backing: m.backing,
        own,
        nominators,
    }
}
