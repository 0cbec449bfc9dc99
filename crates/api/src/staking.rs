//! What staking's routes do, apart from HTTP: state reads through the ledger's staking
//! queries (candidates, committees, exposures, each epoch's record of points, rewards and
//! slashes) and their JSON forms.

use crate::{
    ApiError, ApiLimits, NodeView,
    market::{Query, parse_id, read, read_many},
    wire,
};
use exo_ledger::modules::staking::{Exposure, MemberReward, Staker, Status, Validator, queries};
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

/// `GET /v1/supply`.
pub async fn supply<N: NodeView>(node: &N, limits: &ApiLimits) -> Result<wire::Supply, ApiError> {
    use exo_ledger::modules::bank::{Pot, queries as bank};
    let supply = read(node, limits, bank::supply())
        .await?
        .unwrap_or_default();
    let pots = read_many(
        node,
        limits,
        [Pot::Insurance, Pot::Treasury, Pot::Rewards, Pot::Payouts]
            .into_iter()
            .map(bank::pot)
            .collect(),
    )
    .await?;
    let held: Vec<Amount> = pots
        .into_iter()
        .map(|pot| pot.map_or(Amount::ZERO, |p| p.0))
        .collect();
    let [insurance, treasury, rewards, payouts] = held[..] else {
        return Err(ApiError::Internal(
            "four pots read, another count answered".into(),
        ));
    };
    Ok(wire::Supply {
        total: supply.total,
        burnt: supply.burnt,
        insurance,
        treasury,
        rewards,
        payouts,
    })
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
    let record = read(node, limits, queries::epoch_record(epoch))
        .await?
        .unwrap_or_default();
    let minimum_backing = committee.minimum_backing();
    let members = committee
        .members
        .into_iter()
        .zip(exposures)
        .map(|(m, exposure)| {
            let earned = record
                .members
                .iter()
                .find(|r| r.validator == m.validator)
                .map(earned_json);
            member_json(m, exposure, earned)
        })
        .collect();
    let payout = (record.ended_ms > 0).then_some(wire::Payout {
        ended_ms: record.ended_ms,
        fees: record.fees,
        minted: record.minted,
        to_providers: record.to_providers,
        work_units: record.work_units,
        capacity_units: record.capacity_units,
        providers_pool: record.providers_pool,
        providers_paid: record.providers_paid,
        certificates: record.certificates,
        to_treasury: record.to_treasury,
    });
    let slashes = record
        .slashes
        .into_iter()
        .map(|s| wire::SlashView {
            validator: s.validator,
            offenders: s.offenders,
            committee: s.committee,
            amount: s.amount,
        })
        .collect();
    Ok(wire::EpochView {
        epoch,
        elected: committee.elected,
        minimum_backing,
        members,
        payout,
        slashes,
    })
}

fn earned_json(r: &MemberReward) -> wire::Earned {
    wire::Earned {
        proposed: r.proposed,
        missed: r.missed,
        votes: r.votes,
        points: r.points,
        reward: r.reward,
        kept: r.kept,
        jailed: r.jailed,
    }
}

fn member_json(
    m: exo_ledger::modules::staking::Member,
    exposure: Option<Exposure>,
    earned: Option<wire::Earned>,
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
        earned,
    }
}
