//! What the compute market's routes do, apart from HTTP: state reads, their JSON forms and
//! pagination. Handlers extract, call one function here and turn the result into a response.
//!
//! Every record is read from finalized state through [`NodeView::state`] and decoded with the
//! ledger's own codec. A record that does not decode is the node's fault (500), never the
//! client's.

use crate::{ApiError, ApiLimits, NodeView, service::read_state, wire};
use exo_ledger::{
    Params, REPUTATION_MAX, exec,
    modules::market::{
        queries,
        records::{
            App, AppList, AssignmentList, Counters, IdList, Job, JobState, OfferRecord,
            ProvenRound, Provider, Replica, Unit, UnitState, WaitReason, WorkCount, WorkItem,
        },
    },
    state::{Query as StateQuery, Record},
};
use exo_types::{Address, Hash32, JobSpec, address_from_hex, address_to_hex};
use futures::{StreamExt, TryStreamExt};
use std::{collections::BTreeMap, time::Duration};
use tokio::sync::broadcast;

/// Reads in flight at once for one request that reads many records.
const READ_CONCURRENCY: usize = 16;
/// Items of a page when the client names no limit.
pub const DEFAULT_PAGE: u64 = 100;

/// A record of finalized state, read through the ledger's query for it.
pub(crate) async fn read<N: NodeView, T: Record>(
    node: &N,
    limits: &ApiLimits,
    query: StateQuery<T>,
) -> Result<Option<T>, ApiError> {
    let value = read_state(node, limits, query.key).await?;
    query
        .decode(value.as_deref())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Reads many records, a bounded number at a time, in order.
pub(crate) async fn read_many<N: NodeView, T: Record>(
    node: &N,
    limits: &ApiLimits,
    queries: Vec<StateQuery<T>>,
) -> Result<Vec<Option<T>>, ApiError> {
    futures::stream::iter(queries)
        .map(|query| read::<N, T>(node, limits, query))
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

async fn params<N: NodeView>(node: &N, limits: &ApiLimits) -> Result<Params, ApiError> {
    Ok(read(node, limits, exec::queries::params())
        .await?
        .unwrap_or_default())
}

/// A job's waiting reason: its numbers, the verdict's code and the sentence rendered from them.
pub fn wait_reason_json(reason: &WaitReason, spec: &JobSpec) -> wire::WaitReason {
    let explanation = reason.explain(&spec.requirements);
    let (code, binding) = match &explanation.reason {
        exo_market::Reason::EmptyBook => ("empty_book", None),
        exo_market::Reason::NoProvider { binding } => {
            ("no_provider", Some(binding.constraint().name().to_string()))
        }
        exo_market::Reason::PriceTooLow => ("price_too_low", None),
        exo_market::Reason::SlotsTaken => ("slots_taken", None),
    };
    wire::WaitReason {
        code: code.to_string(),
        binding,
        live_offers: reason.live_offers,
        excluded_by: exo_market::Constraint::ALL
            .iter()
            .zip(reason.excluded_by)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.name().to_string(), n))
            .collect(),
        passed: reason.passed,
        passed_exact: reason.passed_exact,
        best_ask: reason.best_ask.map(exo_types::Amount),
        max_price_per_unit: exo_types::Amount(reason.max_price_per_unit),
        sentence: explanation.to_string(),
    }
}

/// `?from=&limit=` and the other query parameters of a request.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: BTreeMap<String, String>,
}

impl Query {
    /// Parses a raw query string. Values are taken as written: every parameter of these routes
    /// is a number or hex, which need no percent-decoding.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs = BTreeMap::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            if pairs.len() >= 16 {
                return Err(ApiError::BadQuery("too many query parameters".into()));
            }
            if pairs.insert(truncate(key), truncate(value)).is_some() {
                return Err(ApiError::BadQuery(format!(
                    "query parameter {:?} is given twice",
                    truncate(key)
                )));
            }
        }
        Ok(Self { pairs })
    }

    /// Refuses parameters the route does not know, so a typo is not silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.pairs.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(ApiError::BadQuery(format!(
                "unknown query parameter {key:?} (this route takes {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.pairs
            .get(name)
            .map(|text| {
                parse_u64(text).ok_or_else(|| {
                    ApiError::BadQuery(format!("{name}={text:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// `from` (default 0) and `limit` (default [`DEFAULT_PAGE`], at most `max_page_items`).
    pub fn page(&self, limits: &ApiLimits) -> Result<(u64, u64), ApiError> {
        let from = self.u64("from")?.unwrap_or(0);
        let max = limits.max_page_items;
        let limit = self.u64("limit")?.unwrap_or(DEFAULT_PAGE.min(max));
        if limit == 0 || limit > max {
            return Err(ApiError::BadQuery(format!(
                "limit must be 1 to {max}, not {limit}"
            )));
        }
        Ok((from, limit))
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses an id in a path.
pub fn parse_id(what: &'static str, text: &str) -> Result<u64, ApiError> {
    parse_u64(text).ok_or_else(|| ApiError::BadId {
        what,
        text: truncate(text),
    })
}

/// Parses a unit index in a path.
pub fn parse_unit(text: &str) -> Result<u32, ApiError> {
    parse_index("unit", text)
}

/// Parses a replica index in a path.
pub fn parse_replica(text: &str) -> Result<u32, ApiError> {
    parse_index("replica", text)
}

fn parse_index(what: &'static str, text: &str) -> Result<u32, ApiError> {
    parse_u64(text)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ApiError::BadId {
            what,
            text: truncate(text),
        })
}

/// Parses a 64-character hex hash in a path.
pub fn parse_hash(text: &str) -> Result<Hash32, ApiError> {
    wire::hash32_from_hex(text).ok_or_else(|| ApiError::BadHash(truncate(text)))
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    if text.trim().len() != 64 {
        return Err(ApiError::BadAddress(truncate(text)));
    }
    address_from_hex(text).ok_or_else(|| ApiError::BadAddress(truncate(text)))
}

fn truncate(text: &str) -> String {
    const MAX_ECHO_CHARS: usize = 80;
    if text.chars().count() <= MAX_ECHO_CHARS {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(MAX_ECHO_CHARS).collect();
        out.push('…');
        out
    }
}

/// The JSON form of a machine's resources.
pub fn resources_json(r: &exo_market::Resources) -> wire::Resources {
    wire::Resources {
        cores: r.cores,
        cpu_score: r.cpu_score,
        memory_mib: r.memory_mib,
        gpu: r.gpu.as_ref().map(|g| wire::Gpu {
            model: g.model.clone(),
            count: g.count,
            memory_mib: g.memory_mib,
        }),
        class: r.class.name().to_string(),
        region: r.region.clone(),
        runtimes: r.runtimes.iter().map(|rt| rt.name().to_string()).collect(),
        max_unit_fuel: r.max_unit_fuel,
    }
}

/// The JSON form of a job's requirements.
pub fn requirements_json(r: &exo_market::Requirements) -> wire::Requirements {
    wire::Requirements {
        min_cores: r.min_cores,
        min_memory_mib: r.min_memory_mib,
        min_cpu_score: r.min_cpu_score,
        gpu: r.gpu.as_ref().map(|g| wire::GpuRequirement {
            model: g.model.clone(),
            min_count: g.min_count,
            min_memory_mib: g.min_memory_mib,
        }),
        class: r.class.map(|c| c.name().to_string()),
        region: r.region.clone(),
        runtime: r.runtime.name().to_string(),
        fuel_limit: r.fuel_limit,
        min_reputation: r.min_reputation,
    }
}

/// `p` as the API shows it, with whether it weighs 2 at `now_secs` (the finalized block's
/// time).
fn provider_json(p: &Provider, params: &Params, now_secs: u64) -> wire::Provider {
    wire::Provider {
        id: p.id,
        owner: p.owner.clone(),
        resources: resources_json(&p.resources),
        bond: p.bond,
        reputation: p.reputation,
        reputation_max: REPUTATION_MAX,
        trusted: exo_ledger::modules::market::weight(&params.market, p, now_secs) >= 2,
        active: p.active,
        valid: p.valid,
        invalid: p.invalid,
        missed: p.missed,
        retired: p.retired,
        registered_height: p.registered_height,
    }
}

fn offer_json(r: &OfferRecord) -> wire::Offer {
    let o = &r.offer;
    wire::Offer {
        id: o.id.0,
        provider: o.provider.0,
        owner: r.owner.clone(),
        resources: resources_json(&o.resources),
        reputation: o.reputation,
        slots: o.slots,
        price_per_unit: exo_types::Amount(o.price_per_unit),
        posted_secs: o.posted_secs,
        expiry_secs: o.expiry_secs,
    }
}

fn app_json(a: &App) -> wire::App {
    wire::App {
        module_hash: a.module_hash,
        developer: a.developer.clone(),
        name: a.name.clone(),
        version: a.version.clone(),
        royalty_per_unit: a.royalty_per_unit,
        published_height: a.published_height,
    }
}

fn inputs_json(spec: &exo_types::JobSpec) -> Vec<wire::InputRef> {
    spec.inputs
        .iter()
        .map(|i| wire::InputRef {
            name: i.name.clone(),
            hash: i.hash,
            size: i.size,
        })
        .collect()
}

fn replica_json(r: &Replica) -> wire::ReplicaView {
    wire::ReplicaView {
        index: r.index,
        provider: r.provider,
        offer: r.offer,
        price_per_unit: r.price_per_unit,
        assigned_height: r.assigned_height,
        commit_deadline: r.commit_deadline,
        status: r.status.name().to_string(),
        commitment: r.commitment,
        revealed_digest: r.reveal.map(|(d, _)| d),
        revealed_fuel: r.reveal.map(|(_, f)| f),
    }
}

fn counts(job: &Job) -> wire::UnitCounts {
    wire::UnitCounts {
        waiting: job.new_waiting(),
        running: job.running,
        accepted: job.accepted,
        failed: job.failed,
    }
}

async fn counters<N: NodeView>(node: &N, limits: &ApiLimits) -> Result<Counters, ApiError> {
    Ok(read(node, limits, queries::counters())
        .await?
        .unwrap_or_default())
}

/// The page of the sorted `ids` from the first at or after `from`, at most `limit` of them,
/// and the id the following page starts at.
fn id_page(ids: &[u64], from: u64, limit: u64) -> (Vec<u64>, Option<u64>) {
    let start = ids.partition_point(|id| *id < from);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let page = ids.iter().skip(start).take(limit).copied().collect();
    (page, ids.get(start.saturating_add(limit)).copied())
}

/// `GET /v1/providers?from=&limit=`.
pub async fn providers<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::ProviderPage, ApiError> {
    query.only(&["from", "limit"])?;
    let (from, limit) = query.page(limits)?;
    let end = counters(node, limits).await?.next_provider;
    let last = from.saturating_add(limit).min(end);
    let keys = (from..last).map(queries::provider).collect();
    let params = params(node, limits).await?;
    let now_secs = node.status().finalized_time_ms / 1_000;
    let providers = read_many::<N, Provider>(node, limits, keys)
        .await?
        .iter()
        .flatten()
        .map(|p| provider_json(p, &params, now_secs))
        .collect();
    Ok(wire::ProviderPage {
        providers,
        next: (last < end).then_some(last),
    })
}

async fn load_provider<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id: u64,
) -> Result<Provider, ApiError> {
    read(node, limits, queries::provider(id))
        .await?
        .ok_or(ApiError::NotFound(format!("provider {id}")))
}

/// `GET /v1/providers/{id}`.
pub async fn provider<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id_text: &str,
) -> Result<wire::Provider, ApiError> {
    let id = parse_id("provider", id_text)?;
    let provider = load_provider(node, limits, id).await?;
    let now_secs = node.status().finalized_time_ms / 1_000;
    Ok(provider_json(
        &provider,
        &params(node, limits).await?,
        now_secs,
    ))
}

/// `GET /v1/accounts/{address}/provider`.
pub async fn provider_of<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    address_text: &str,
) -> Result<wire::ProviderOf, ApiError> {
    let address = parse_address(address_text)?;
    let id = read(node, limits, queries::provider_of(&address))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "a provider of account {}",
                exo_types::address_to_hex(&address)
            ))
        })?;
    Ok(wire::ProviderOf {
        address,
        provider: id.0,
    })
}

async fn load_job<N: NodeView>(node: &N, limits: &ApiLimits, id: u64) -> Result<Job, ApiError> {
    read(node, limits, queries::job(id))
        .await?
        .ok_or(ApiError::NotFound(format!("job {id}")))
}

/// The spec of a job whose header was read: its absence is the node's fault.
async fn load_spec<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id: u64,
) -> Result<JobSpec, ApiError> {
    read(node, limits, queries::job_spec(id))
        .await?
        .ok_or_else(|| ApiError::Internal(format!("job {id} has no spec record")))
}

/// The arguments of one unit: its line split on spaces, or `None` when the job gives none.
pub fn unit_args(spec: &exo_types::JobSpec, unit: u32) -> Option<Vec<String>> {
    let line = spec.unit_args.get(usize::try_from(unit).ok()?)?;
    Some(
        line.split(' ')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `GET /v1/providers/{id}/capacity`.
pub async fn capacity<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id_text: &str,
) -> Result<wire::ProviderCapacity, ApiError> {
    let id = parse_id("provider", id_text)?;
    let provider = load_provider(node, limits, id).await?;
    let market = params(node, limits).await?.market;
    let now_ms = node.status().finalized_time_ms;
    let round = read(node, limits, queries::capacity_round())
        .await?
        .filter(|r| r.number > 0);
    // A provider holds at most `MAX_OFFERS_PER_PROVIDER` offers: one short read each.
    let ids = read(node, limits, queries::holdings(&provider.owner))
        .await?
        .map(|h| h.offers)
        .unwrap_or_default();
    let records = read_many::<N, OfferRecord>(
        node,
        limits,
        ids.iter().map(|o| queries::offer(*o)).collect(),
    )
    .await?;
    let proven = read_many::<N, ProvenRound>(
        node,
        limits,
        ids.iter().map(|o| queries::capacity_proven(*o)).collect(),
    )
    .await?;
    let open = round.filter(|r| r.is_open(now_ms));
    let matchable = exo_ledger::modules::market::is_matchable(&market, &provider, now_ms / 1_000);
    let offers = records
        .into_iter()
        .zip(proven)
        .filter_map(|(record, proven)| {
            let offer = record?.offer;
            let proven_round = proven.map(|p| p.0);
            let may_answer = open.is_some_and(|r| {
                matchable
                    && offer.posted_secs < r.opened_ms / 1_000
                    && offer.is_live(now_ms / 1_000)
                    && offer.slots > 0
                    && offer.price_per_unit <= market.capacity_max_price.0
                    && proven_round != Some(r.number)
            });
            Some(wire::CapacityOffer {
                offer: offer.id.0,
                free_slots: offer.slots,
                posted_secs: offer.posted_secs,
                price_per_unit: exo_types::Amount(offer.price_per_unit),
                proven_round,
                may_answer,
            })
        })
        .collect();
    Ok(wire::ProviderCapacity {
        provider: id,
        round: round.map(|r| wire::CapacityRound {
            number: r.number,
            seed: r.seed,
            opened_ms: r.opened_ms,
            closes_ms: r.closes_ms,
            hashes_per_slot: r.hashes_per_slot,
            open: r.is_open(now_ms),
        }),
        offers,
        units_per_slot: market.capacity_units_per_slot,
        max_price: market.capacity_max_price,
    })
}

/// `GET /v1/providers/{id}/work?from=&limit=`.
pub async fn work<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id_text: &str,
    query: &Query,
) -> Result<wire::WorkPage, ApiError> {
    query.only(&["from", "limit"])?;
    let id = parse_id("provider", id_text)?;
    let (from, limit) = query.page(limits)?;
    // The work set is read position by position (see `queries::work_item`): a page read
    // while a block finalizes may miss or repeat a replica. The worker forgets a replica only
    // when two listings in a row leave it out, and deduplicates.
    load_provider(node, limits, id).await?;
    let height = node.status().finalized_height;
    let total = u64::from(
        read(node, limits, queries::work_count(id))
            .await?
            .unwrap_or(WorkCount(0))
            .0,
    );
    let start = from.min(total);
    let end = from.saturating_add(limit).min(total);
    let keys = (start..end)
        .filter_map(|p| u32::try_from(p).ok())
        .map(|p| queries::work_item(id, p))
        .collect();
    let mut page: Vec<(u64, u32, u32)> = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for item in read_many::<N, WorkItem>(node, limits, keys)
        .await?
        .into_iter()
        .flatten()
    {
        if listed.insert(item.0) {
            page.push(item.0);
        }
    }
    let page = page.as_slice();
    let mut jobs: BTreeMap<u64, JobSpec> = BTreeMap::new();
    for (job, _, _) in page {
        if !jobs.contains_key(job) {
            jobs.insert(*job, load_spec(node, limits, *job).await?);
        }
    }
    let keys = page.iter().map(|(j, u, _)| queries::unit(*j, *u)).collect();
    let units = read_many::<N, Unit>(node, limits, keys).await?;
    let mut work = Vec::with_capacity(page.len());
    for ((job_id, unit_index, replica_index), unit) in page.iter().zip(units) {
        let spec = jobs
            .get(job_id)
            .ok_or_else(|| ApiError::Internal(format!("job {job_id} vanished")))?;
        let unit = unit.ok_or_else(|| {
            ApiError::Internal(format!(
                "work lists job {job_id} unit {unit_index}, which has no record"
            ))
        })?;
        let replica = unit
            .replicas
            .iter()
            .find(|r| r.index == *replica_index)
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "work lists replica {replica_index} of job {job_id} unit {unit_index}, which it lacks"
                ))
            })?;
        work.push(wire::WorkItem {
            job: *job_id,
            unit: *unit_index,
            replica: *replica_index,
            status: replica.status.name().to_string(),
            assigned_height: replica.assigned_height,
            commit_deadline: replica.commit_deadline,
            reveal_open: unit.reveal_deadline.is_some(),
            reveal_deadline: unit.reveal_deadline,
            app: spec.app,
            inputs: inputs_json(spec),
            args: unit_args(spec, *unit_index),
            fuel_limit: spec.requirements.fuel_limit,
            memory_mib: spec.requirements.min_memory_mib,
            price_per_unit: replica.price_per_unit,
        });
    }
    Ok(wire::WorkPage {
        provider: id,
        height,
        work,
        next: (end < total).then_some(end),
    })
}

async fn book<N: NodeView>(node: &N, limits: &ApiLimits) -> Result<Vec<u64>, ApiError> {
    let mut ids = read::<N, IdList>(node, limits, queries::book())
        .await?
        .unwrap_or_default()
        .0;
    ids.sort_unstable();
    Ok(ids)
}

/// `GET /v1/market/offers?from=&limit=`: offers on the book by id, `from` an offer id.
pub async fn offers<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::OfferPage, ApiError> {
    query.only(&["from", "limit"])?;
    let (from, limit) = query.page(limits)?;
    let ids = book(node, limits).await?;
    let (page, next) = id_page(&ids, from, limit);
    let keys = page.iter().map(|id| queries::offer(*id)).collect();
    let offers = read_many::<N, OfferRecord>(node, limits, keys)
        .await?
        .iter()
        .flatten()
        .map(offer_json)
        .collect();
    Ok(wire::OfferPage { offers, next })
}

/// `GET /v1/market/depth`: free slots of offers live at the last finalized block's time, by
/// price.
pub async fn depth<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::Depth, ApiError> {
    query.only(&[])?;
    let status = node.status();
    let (height, now_secs) = (status.finalized_height, status.finalized_time_ms / 1_000);
    let ids = book(node, limits).await?;
    let keys = ids.iter().map(|id| queries::offer(*id)).collect();
    let mut levels: BTreeMap<u128, (u64, u64)> = BTreeMap::new();
    for record in read_many::<N, OfferRecord>(node, limits, keys)
        .await?
        .iter()
        .flatten()
    {
        let offer = &record.offer;
        // Expiries are block times: an offer past its expiry takes no more work.
        if offer.slots == 0 || !offer.is_live(now_secs) {
            continue;
        }
        let level = levels.entry(offer.price_per_unit).or_default();
        level.0 = level.0.saturating_add(u64::from(offer.slots));
        level.1 = level.1.saturating_add(1);
    }
    Ok(wire::Depth {
        height,
        levels: levels
            .into_iter()
            .map(|(price, (slots, offers))| wire::DepthLevel {
                price_per_unit: exo_types::Amount(price),
                slots,
                offers,
            })
            .collect(),
    })
}

/// `GET /v1/apps?from=&limit=`: apps in publication order, `from` an index.
pub async fn apps<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::AppPage, ApiError> {
    query.only(&["from", "limit"])?;
    let (from, limit) = query.page(limits)?;
    let list: AppList = read(node, limits, queries::apps())
        .await?
        .unwrap_or_default();
    let total = list.0.len();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(total);
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(total);
    let keys = list.0[start..end]
        .iter()
        .map(|(hash, developer)| queries::app(hash, developer))
        .collect();
    let apps = read_many::<N, App>(node, limits, keys)
        .await?
        .iter()
        .flatten()
        .map(app_json)
        .collect();
    Ok(wire::AppPage {
        apps,
        next: (end < total).then_some(end as u64),
    })
}

/// `GET /v1/apps/{hash}/{developer}`.
pub async fn app<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    hash_text: &str,
    developer_text: &str,
) -> Result<wire::App, ApiError> {
    let hash = parse_hash(hash_text)?;
    let developer = parse_address(developer_text)?;
    read::<N, App>(node, limits, queries::app(&hash, &developer))
        .await?
        .map(|a| app_json(&a))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "app {} of {}",
                hex::encode(hash),
                address_to_hex(&developer)
            ))
        })
}

/// The JSON form of one unit, from its record (if it has one) and its job.
fn unit_json(job: &Job, spec: &JobSpec, index: u32, unit: Option<&Unit>) -> wire::UnitView {
    match unit {
        Some(unit) => wire::UnitView {
            unit: index,
            args: unit_args(spec, index),
            state: unit.state.name().to_string(),
            reason: None,
            replicas: unit.replicas.iter().map(replica_json).collect(),
            reveal_deadline: unit.reveal_deadline,
            accepted_digest: unit.accepted.map(|(d, _)| d),
            accepted_fuel: unit.accepted.map(|(_, f)| f),
        },
        None => {
            // A unit without a record never had a replica: it waits for one, or the job was
            // cancelled before it got any.
            let (state, reason) = if job.state == JobState::Open {
                (
                    "waiting",
                    job.wait_reason.as_ref().map(|r| wait_reason_json(r, spec)),
                )
            } else if job.state == JobState::Cancelled {
                ("cancelled", None)
            } else {
                ("failed", None)
            };
            wire::UnitView {
                unit: index,
                args: unit_args(spec, index),
                state: state.to_string(),
                reason,
                replicas: Vec::new(),
                reveal_deadline: None,
                accepted_digest: None,
                accepted_fuel: None,
            }
        }
    }
}

/// `GET /v1/jobs/{id}?from=&limit=`: the job and a page of its units, `from` a unit index.
pub async fn job<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    id_text: &str,
    query: &Query,
) -> Result<wire::Job, ApiError> {
    query.only(&["from", "limit"])?;
    let id = parse_id("job", id_text)?;
    let (from, limit) = query.page(limits)?;
    let job = load_job(node, limits, id).await?;
    let spec = load_spec(node, limits, id).await?;
    let units = u64::from(job.units);
    let start = from.min(units);
    let end = from.saturating_add(limit).min(units);
    // Both bounds are at most `units`, a u32.
    let indices: Vec<u32> = (start..end).filter_map(|u| u32::try_from(u).ok()).collect();
    let keys = indices.iter().map(|u| queries::unit(id, *u)).collect();
    let records = read_many::<N, Unit>(node, limits, keys).await?;
    let unit_views = indices
        .iter()
        .zip(records.iter())
        .map(|(index, record)| unit_json(&job, &spec, *index, record.as_ref()))
        .collect();
    let accounts = &job.accounts;
    Ok(wire::Job {
        id,
        requester: job.requester.clone(),
        state: job.state.name().to_string(),
        app: spec.app,
        inputs: inputs_json(&spec),
        unit_args: !spec.unit_args.is_empty(),
        unit_count: spec.units,
        requirements: requirements_json(&spec.requirements),
        max_price_per_unit: spec.max_price_per_unit,
        trust: spec.trust,
        fuel_limit: job.fuel_limit,
        max_replicas: job.max_replicas,
        developer: job.developer.clone(),
        royalty_per_unit: job.royalty_per_unit,
        submitted_height: job.submitted_height,
        accounts: wire::JobAccounts {
            escrowed: accounts.escrowed,
            paid: accounts
                .paid
                .iter()
                .map(|(provider, amount)| wire::Payment {
                    provider: *provider,
                    amount: *amount,
                })
                .collect(),
            paid_total: accounts.paid_total(),
            royalties: accounts.royalties,
            fees: accounts.fees,
            refunded: accounts.refunded,
            held: accounts.held,
        },
        counts: counts(&job),
        wait_reason: job.wait_reason.as_ref().map(|r| wait_reason_json(r, &spec)),
        units: unit_views,
        next_unit: (end < units).then(|| u32::try_from(end).ok()).flatten(),
    })
}

/// `GET /v1/jobs?requester=&height=&from=&limit=`. With `height`, the jobs submitted at that
/// height or later, newest first ([`jobs_since`]): how a requester finds the id of the job its
/// transaction created (the receipt gives the height), and how the dashboard pages through
/// history. Without it, the open jobs by id.
pub async fn jobs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    query: &Query,
) -> Result<wire::JobPage, ApiError> {
    query.only(&["requester", "height", "from", "limit"])?;
    let (from, limit) = query.page(limits)?;
    let requester = query.text("requester").map(parse_address).transpose()?;
    let wanted = |job: &Job| requester.as_ref().is_none_or(|r| *r == job.requester);
    match query.u64("height")? {
        Some(height) => {
            let newest = query.u64("from")?;
            jobs_since(node, limits, (height, newest, limit), wanted).await
        }
        None => open_jobs(node, limits, (from, limit), wanted).await,
    }
}

fn job_summary(job: &Job) -> wire::JobSummary {
    wire::JobSummary {
        id: job.id,
        requester: job.requester.clone(),
        state: job.state.name().to_string(),
        app: job.app,
        submitted_height: job.submitted_height,
        unit_count: job.units,
        counts: counts(job),
    }
}

/// The jobs submitted at `height` or later, newest first from the id `newest` (the newest job
/// when `None`), reading at most `limit` job records (those `wanted` are returned). `next` is
/// the id the following page starts at, when an older job was also submitted at `height` or
/// later: one record more is read to know it, so that a page is never followed by an empty
/// one because of the height.
async fn jobs_since<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    (height, newest, limit): (u64, Option<u64>, u64),
    wanted: impl Fn(&Job) -> bool,
) -> Result<wire::JobPage, ApiError> {
    let next_job = counters(node, limits).await?.next_job;
    // `end` is one past the newest id of the page.
    let end = newest.map_or(next_job, |id| id.saturating_add(1).min(next_job));
    let mut jobs = Vec::new();
    let mut next = None;
    for (read_count, id) in (0..end).rev().enumerate() {
        let job = load_job(node, limits, id).await?;
        if job.submitted_height < height {
            break;
        }
        if read_count as u64 == limit {
            next = Some(id);
            break;
        }
        if wanted(&job) {
            jobs.push(job_summary(&job));
        }
    }
    Ok(wire::JobPage { jobs, next })
}

/// A page of the open jobs, by id from `from`; those `wanted` are returned.
async fn open_jobs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    (from, limit): (u64, u64),
    wanted: impl Fn(&Job) -> bool,
) -> Result<wire::JobPage, ApiError> {
    let mut open = read::<N, IdList>(node, limits, queries::open_jobs())
        .await?
        .unwrap_or_default()
        .0;
    open.sort_unstable();
    let (page, next) = id_page(&open, from, limit);
    let keys = page.iter().map(|id| queries::job(*id)).collect();
    let jobs = read_many::<N, Job>(node, limits, keys)
        .await?
        .iter()
        .flatten()
        .filter(|job| wanted(job))
        .map(job_summary)
        .collect();
    Ok(wire::JobPage { jobs, next })
}

/// The unit record of `job`/`unit`, checking that the job exists and has that unit.
pub async fn unit<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    job_id: u64,
    index: u32,
) -> Result<(Job, Option<Unit>), ApiError> {
    let job = load_job(node, limits, job_id).await?;
    if index >= job.units {
        return Err(ApiError::NotFound(format!(
            "unit {index} of job {job_id} (it has {} units)",
            job.units
        )));
    }
    let unit = read(node, limits, queries::unit(job_id, index)).await?;
    Ok((job, unit))
}

/// The assignment events of the block at `height`, those of `provider` only if given.
pub async fn assignments<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    height: u64,
    provider: Option<u64>,
) -> Result<Vec<wire::AssignmentEvent>, ApiError> {
    let list: AssignmentList = read(node, limits, queries::assignments(height))
        .await?
        .unwrap_or_default();
    Ok(list
        .0
        .iter()
        .filter(|a| provider.is_none_or(|p| p == a.provider))
        .map(|a| wire::AssignmentEvent {
            height,
            job: a.job,
            unit: a.unit,
            replica: a.replica,
            provider: a.provider,
            price_per_unit: a.price_per_unit,
            commit_deadline: a.commit_deadline,
        })
        .collect())
}

/// `PUT /v1/outputs/{job}/{unit}`: records that the archive `request.archive` (already in the
/// blob store) holds the outputs of a unit.
///
/// Before the unit's verdict the request must be signed by the provider of one of its
/// replicas (checked against finalized state), and each replica holds one candidate: a
/// stranger cannot fill the unit's slots, and a replica's new archive replaces its old one.
/// After the verdict anyone may register an archive, but only one whose recomputed result
/// digest is the accepted digest (so peers can fill a node's index).
///
/// `charge` is asked before the archive is read: with the signer's key once the signature is
/// verified, or with `None` for an unsigned registration (the rate limits).
pub async fn put_outputs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    store: &crate::BlobStore,
    job_text: &str,
    unit_text: &str,
    body: &[u8],
    charge: impl FnOnce(Option<&Address>) -> Result<(), ApiError>,
) -> Result<wire::Outputs, ApiError> {
    let job_id = parse_id("job", job_text)?;
    let index = parse_unit(unit_text)?;
    let request: wire::OutputsPut = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadQuery(format!(
            "the body must be {{\"archive\": \"<hex hash>\", \"replica\": <n>, \"signature\": \"<hex>\"}}: {e}"
        ))
    })?;
    let unit = unit_with_outputs(node, limits, job_id, index).await?;
    // The signature is checked before a byte of the archive is read.
    let replica = match unit.accepted {
        Some(_) => {
            charge(None)?;
            None
        }
        None => {
            let (replica, signer) = authorize_outputs(node, limits, &unit, &request).await?;
            charge(Some(&signer))?;
            Some(replica)
        }
    };
    register_outputs(limits, store, &unit, request.archive, replica).await
}

/// `PUT /v1/outputs/{job}/{unit}/replicas/{replica}?archive=`: a replica's provider uploads
/// its outputs archive and registers it in one request, signing only the registration
/// (`request`), which names the archive's hash. [`put_outputs`] after an upload, with one
/// signature and one round trip instead of two of each.
///
/// The signature is checked before the body is read. `admit` is then asked with the signer
/// (the rate limits and the uploader's balance), and `upload` stores the body under the
/// signed hash, owned by the signer.
pub async fn put_replica_archive<N, U>(
    node: &N,
    limits: &ApiLimits,
    store: &crate::BlobStore,
    (job_text, unit_text): (&str, &str),
    request: &wire::OutputsPut,
    admit: impl AsyncFnOnce(&Address) -> Result<(), ApiError>,
    upload: U,
) -> Result<wire::Outputs, ApiError>
where
    N: NodeView,
    U: AsyncFnOnce(&Address) -> Result<wire::BlobStored, ApiError>,
{
    let job_id = parse_id("job", job_text)?;
    let index = parse_unit(unit_text)?;
    let unit = unit_with_outputs(node, limits, job_id, index).await?;
    // Whatever the verdict, the uploader owns the blob: only the replica's provider may.
    let (replica, signer) = authorize_outputs(node, limits, &unit, request).await?;
    admit(&signer).await?;
    upload(&signer).await?;
    let replica = unit.accepted.is_none().then_some(replica);
    register_outputs(limits, store, &unit, request.archive, replica).await
}

/// The unit `index` of job `job_id`, if it can have outputs: a replica is assigned and it has
/// not failed.
async fn unit_with_outputs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    job_id: u64,
    index: u32,
) -> Result<Unit, ApiError> {
    let (_, unit) = self::unit(node, limits, job_id, index).await?;
    can_have_outputs(job_id, index, unit)
}

/// `unit`, unit `index` of job `job_id`, if it can have outputs.
fn can_have_outputs(job_id: u64, index: u32, unit: Option<Unit>) -> Result<Unit, ApiError> {
    let Some(unit) = unit else {
        return Err(ApiError::Conflict {
            code: "not_assigned",
            message: format!("unit {index} of job {job_id} has no replica assigned"),
        });
    };
    if unit.accepted.is_none() && unit.state == UnitState::Failed {
        return Err(ApiError::Conflict {
            code: "unit_failed",
            message: format!("unit {index} of job {job_id} failed: it has no outputs"),
        });
    }
    Ok(unit)
}

/// Records the stored blob `archive` as a candidate for `unit`'s outputs (from `replica`
/// before the verdict), after recomputing its result digest; after the verdict only the
/// accepted digest is taken.
async fn register_outputs(
    limits: &ApiLimits,
    store: &crate::BlobStore,
    unit: &Unit,
    archive: Hash32,
    replica: Option<u32>,
) -> Result<wire::Outputs, ApiError> {
    let (job_id, index) = (unit.job, unit.unit);
    let bytes = store.read(&archive, limits.max_blob_bytes).await?;
    let size = bytes.len() as u64;
    // Unpacking and hashing up to a blob's bound is CPU work: off the async threads.
    let digest = tokio::task::spawn_blocking(move || archive_digest(&bytes))
        .await
        .map_err(|e| ApiError::Internal(format!("archive check failed: {e}")))??;
    let candidate = crate::blobs::OutputCandidate {
        archive,
        digest,
        size,
        replica,
    };
    let accepted = is_accepted(unit, digest)?;
    store.add_output(job_id, index, candidate, accepted).await?;
    Ok(wire::Outputs {
        job: job_id,
        unit: index,
        archive,
        size,
        digest,
        accepted,
    })
}

/// The result digest of the outputs archive `bytes`.
fn archive_digest(bytes: &[u8]) -> Result<Hash32, ApiError> {
    crate::outputs::unpack(bytes)
        .map(|archive| archive.result_digest())
        .map_err(|e| ApiError::BadArchive(e.to_string()))
}

/// Whether outputs of result digest `digest` are `unit`'s accepted ones (`false` before its
/// verdict); after the verdict, other outputs are refused.
fn is_accepted(unit: &Unit, digest: Hash32) -> Result<bool, ApiError> {
    match unit.accepted {
        Some((expected, _)) if expected != digest => Err(ApiError::DigestMismatch {
            expected: hex::encode(expected),
            got: hex::encode(digest),
        }),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// `POST /v1/outputs/batch`: `signer` uploads small outputs archives of its providers'
/// replicas and registers each for its unit, under one signature over them all
/// ([`exo_types::OutputsBatchClaim`]): [`put_replica_archive`] for each, with one signature,
/// one round trip and one durable commit for the lot.
///
/// The signature is checked before any state is read; `admit` is then asked once, with the
/// signer and the number of archives (the rate limits and the uploader's balance), and
/// answers whom the archives are counted against. A refusal of the whole request (a body that
/// does not decode, a signature that does not verify, an unfunded signer, a full store) is an
/// error. Otherwise each archive has its own answer, the one a single upload of it would
/// get, so that one refused (not the signer's replica, a wrong digest, a failed unit) never
/// holds back the others.
pub async fn put_outputs_batch<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    store: &crate::BlobStore,
    (signer, signature): (&Address, &exo_types::Signature),
    body: Vec<u8>,
    admit: impl AsyncFnOnce(&Address, usize) -> Result<crate::blobs::Uploader, ApiError>,
) -> Result<wire::OutputsBatchResult, ApiError> {
    let chain_id = node.status().chain_id;
    let (key, signed) = (signer.clone(), signature.clone());
    // Decoding and hashing up to the body's bound is CPU work: off the async threads.
    let (batch, hashes) = tokio::task::spawn_blocking(move || {
        let batch = wire::OutputsBatch::from_bytes(&body)
            .map_err(|e| ApiError::BadEncoding(format!("the outputs batch: {e}")))?;
        let claim = batch.claim(&chain_id);
        if !claim.verify(&key, &signed) {
            return Err(ApiError::Forbidden {
                code: "bad_signer",
                message: "the signature is not the signer's over this chain and these archives"
                    .into(),
            });
        }
        let hashes: Vec<Hash32> = claim.items.iter().map(|item| item.3).collect();
        Ok((batch, hashes))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("outputs batch check failed: {e}")))??;
    let uploader = admit(signer, batch.items.len()).await?;

    // Each archive's unit, checked as for a single upload; each job and provider read once.
    let mut jobs: BTreeMap<u64, u32> = BTreeMap::new();
    let mut owners: BTreeMap<u64, Address> = BTreeMap::new();
    let mut units = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        units.push(batch_unit(node, limits, (&mut jobs, &mut owners), signer, item).await);
    }
    let checked = tokio::task::spawn_blocking(move || {
        batch
            .items
            .into_iter()
            .zip(hashes)
            .zip(units)
            .map(|((item, archive), unit)| {
                let key = (item.job, item.unit, item.replica);
                let checked = unit.and_then(|unit| {
                    let digest = archive_digest(&item.archive)?;
                    let only = is_accepted(&unit, digest)?;
                    Ok(crate::blobs::OutputArchive {
                        job: item.job,
                        unit: item.unit,
                        candidate: crate::blobs::OutputCandidate {
                            archive,
                            digest,
                            size: item.archive.len() as u64,
                            replica: unit.accepted.is_none().then_some(item.replica),
                        },
                        bytes: item.archive,
                        only,
                    })
                });
                (key, checked)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("archive check failed: {e}")))?;

    let mut answers = Vec::with_capacity(checked.len());
    let mut to_store = Vec::new();
    for (key, checked) in checked {
        match checked {
            Ok(archive) => {
                let outputs = wire::Outputs {
                    job: archive.job,
                    unit: archive.unit,
                    archive: archive.candidate.archive,
                    size: archive.candidate.size,
                    digest: archive.candidate.digest,
                    accepted: archive.only,
                };
                answers.push((key, Ok(outputs)));
                to_store.push(archive);
            }
            Err(err) => answers.push((key, Err(err))),
        }
    }
    let mut stored = store.put_outputs(to_store, uploader).await?.into_iter();
    let items = answers
        .into_iter()
        .map(|((job, unit, replica), answer)| {
            let answer = match answer {
                Ok(outputs) => stored
                    .next()
                    .unwrap_or_else(|| Err(ApiError::Internal("an archive was not stored".into())))
                    .map(|()| outputs),
                Err(err) => Err(err),
            };
            let (outputs, error) = match answer {
                Ok(outputs) => (Some(outputs), None),
                Err(err) => (None, Some(err.body())),
            };
            wire::OutputsBatchItemResult {
                job,
                unit,
                replica,
                outputs,
                error,
            }
        })
        .collect();
    Ok(wire::OutputsBatchResult { items })
}

/// The unit an archive of an outputs batch is for, if it can have outputs and the archive's
/// replica is `signer`'s. `jobs` (their units) and `owners` (providers' owners) hold what
/// was read so far.
async fn batch_unit<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    (jobs, owners): (&mut BTreeMap<u64, u32>, &mut BTreeMap<u64, Address>),
    signer: &Address,
    item: &wire::OutputsBatchItem,
) -> Result<Unit, ApiError> {
    let units = match jobs.get(&item.job) {
        Some(units) => *units,
        None => {
            let units = load_job(node, limits, item.job).await?.units;
            jobs.insert(item.job, units);
            units
        }
    };
    if item.unit >= units {
        return Err(ApiError::NotFound(format!(
            "unit {} of job {} (it has {units} units)",
            item.unit, item.job
        )));
    }
    let unit = read(node, limits, queries::unit(item.job, item.unit)).await?;
    let unit = can_have_outputs(item.job, item.unit, unit)?;
    if replica_owner(node, limits, &unit, item.replica, owners).await? != *signer {
        return Err(not_a_replica(&unit, item.replica));
    }
    Ok(unit)
}

/// The owner of the provider of replica `replica` of `unit`: who may offer its outputs.
/// `known` holds providers' owners read before, and gets this one's.
async fn replica_owner<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    unit: &Unit,
    replica: u32,
    known: &mut BTreeMap<u64, Address>,
) -> Result<Address, ApiError> {
    let provider_id = unit
        .replicas
        .iter()
        .find(|r| r.index == replica)
        .map(|r| r.provider)
        .ok_or_else(|| not_a_replica(unit, replica))?;
    if let Some(owner) = known.get(&provider_id) {
        return Ok(owner.clone());
    }
    let provider: Provider = read(node, limits, queries::provider(provider_id))
        .await?
        .ok_or_else(|| not_a_replica(unit, replica))?;
    known.insert(provider_id, provider.owner.clone());
    Ok(provider.owner)
}

fn not_a_replica(unit: &Unit, replica: u32) -> ApiError {
    ApiError::Forbidden {
        code: "not_a_replica",
        message: format!(
            "the signature is not that of the provider of replica {replica} of unit {} of job {}",
            unit.unit, unit.job
        ),
    }
}

/// Checks that `request` is signed by the provider of the replica it names; answers that
/// replica's index and the signer.
async fn authorize_outputs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    unit: &Unit,
    request: &wire::OutputsPut,
) -> Result<(u32, Address), ApiError> {
    let (Some(replica), Some(signature)) = (request.replica, request.signature.as_deref()) else {
        return Err(ApiError::Unsigned(format!(
            "unit {} of job {} has no verdict yet: only its replicas' providers may offer \
             outputs, with \"replica\" and \"signature\"",
            unit.unit, unit.job
        )));
    };
    let signature = parse_signature(signature)?;
    let owner = replica_owner(node, limits, unit, replica, &mut BTreeMap::new()).await?;
    let claim = exo_types::OutputsClaim {
        chain_id: node.status().chain_id,
        job: unit.job,
        unit: unit.unit,
        replica,
        archive: request.archive,
    };
    if !claim.verify(&owner, &signature) {
        return Err(not_a_replica(unit, replica));
    }
    Ok((replica, owner))
}

/// An ed25519 signature from hex.
pub fn parse_signature(text: &str) -> Result<exo_types::Signature, ApiError> {
    use commonware_codec::DecodeExt;
    let bad = || ApiError::BadSignature(text.chars().take(140).collect());
    let bytes = hex::decode(text).map_err(|_| bad())?;
    exo_types::Signature::decode(bytes).map_err(|_| bad())
}

/// Longest a request waits for this node to finalize a height it asks for.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Waits until this node has finalized `height`, at most [`CATCH_UP_WAIT`]; then the caller
/// answers from whatever height the node has. Validators finalize the same blocks at slightly
/// different moments: a client (or a node on its behalf) that read something at one node's
/// height waits here for another node to get there rather than read an older state.
pub async fn catch_up<N: NodeView>(node: &N, height: u64) {
    // Subscribed before the first look, so that no block finalized in between is missed.
    let mut blocks = node.subscribe();
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    while node.status().finalized_height < height {
        match tokio::time::timeout_at(deadline, blocks.recv()).await {
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return,
        }
    }
}

/// `GET /v1/outputs/{job}/{unit}`: the archive of an accepted unit's outputs, if this node
/// holds one whose digest is the accepted digest.
pub async fn get_outputs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    store: &crate::BlobStore,
    job_text: &str,
    unit_text: &str,
) -> Result<wire::Outputs, ApiError> {
    let job_id = parse_id("job", job_text)?;
    let index = parse_unit(unit_text)?;
    let (_, unit) = self::unit(node, limits, job_id, index).await?;
    let Some((digest, _)) = unit.and_then(|u| u.accepted) else {
        return Err(ApiError::NotAccepted {
            job: job_id,
            unit: index,
        });
    };
    let not_here = || {
        ApiError::NotFound(format!(
            "an archive of the outputs of unit {index} of job {job_id} on this node"
        ))
    };
    let entry = store.output_index(job_id, index).await?;
    let candidate = entry
        .candidates
        .iter()
        .find(|c| c.digest == digest)
        .ok_or_else(not_here)?;
    let size = match store.size(&candidate.archive).await {
        Ok(size) => size,
        Err(ApiError::NotFound(_)) => return Err(not_here()),
        Err(err) => return Err(err),
    };
    Ok(wire::Outputs {
        job: job_id,
        unit: index,
        archive: candidate.archive,
        size,
        digest,
        accepted: true,
    })
}

/// One collection of the blob store ([`crate::BlobStore::collect`]): the blobs that finalized
/// state references are kept (every app's module, the app and inputs of every open job), as
/// are the archives of every outputs index; an outputs index is dropped once its job is no
/// longer open and the index has not changed for `outputs_retention_secs`. Everything else
/// owned and older than `blob_grace_secs` goes: junk never referenced, the inputs of jobs that
/// ended, the archives of a unit's losing candidates.
pub async fn collect_blobs<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    store: &crate::BlobStore,
    now_unix_secs: u64,
) -> Result<crate::blobs::Collected, ApiError> {
    let mut referenced = std::collections::HashSet::new();
    let apps = read::<N, AppList>(node, limits, queries::apps())
        .await?
        .unwrap_or_default();
    referenced.extend(apps.0.into_iter().map(|(module, _developer)| module));
    let open = read::<N, IdList>(node, limits, queries::open_jobs())
        .await?
        .unwrap_or_default()
        .0;
    let keys = open.iter().map(|id| queries::job_spec(*id)).collect();
    for spec in read_many::<N, exo_types::JobSpec>(node, limits, keys)
        .await?
        .iter()
        .flatten()
    {
        referenced.insert(spec.app);
        referenced.extend(spec.inputs.iter().map(|input| input.hash));
    }
    let open: std::collections::BTreeSet<u64> = open.into_iter().collect();
    for (job, unit, changed) in store.output_indexes().await? {
        if !open.contains(&job)
            && changed.saturating_add(limits.outputs_retention_secs) < now_unix_secs
        {
            store.drop_output_index(job, unit).await?;
        }
    }
    store
        .collect(
            now_unix_secs.saturating_sub(limits.blob_grace_secs),
            &referenced,
        )
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_refuse_strangers() {
        let limits = ApiLimits::default();
        let q = Query::parse(Some("from=5&limit=20")).unwrap();
        assert_eq!(q.page(&limits).unwrap(), (5, 20));
        assert!(q.only(&["from", "limit"]).is_ok());
        assert!(q.only(&["from"]).is_err());
        let q = Query::parse(None).unwrap();
        assert_eq!(q.page(&limits).unwrap(), (0, DEFAULT_PAGE));
        for bad in ["limit=0", "limit=100000", "from=-1", "from=x", "limit="] {
            assert!(
                Query::parse(Some(bad)).unwrap().page(&limits).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unit_args_split_on_spaces() {
        let mut spec = exo_types::JobSpec {
            app: [0; 32],
            app_developer: {
                use commonware_cryptography::Signer as _;
                exo_types::PrivateKey::from_seed(0).public_key()
            },
            inputs: vec![],
            unit_args: vec![],
            units: 2,
            requirements: exo_market::Requirements {
                min_cores: 1,
                min_memory_mib: 0,
                min_cpu_score: 0,
                gpu: None,
                class: None,
                region: None,
                runtime: exo_market::Runtime::Wasm32Wasip1,
                fuel_limit: 1,
                min_reputation: 0,
            },
            max_price_per_unit: exo_types::Amount(1),
            trust: 1,
        };
        assert_eq!(unit_args(&spec, 0), None);
        spec.unit_args = vec!["a  b".into(), String::new()];
        assert_eq!(unit_args(&spec, 0), Some(vec!["a".into(), "b".into()]));
        assert_eq!(unit_args(&spec, 1), Some(vec![]));
        assert_eq!(unit_args(&spec, 2), None);
    }
}
