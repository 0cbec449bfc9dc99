//! The axum router: routes, limits, metrics and the server loop.

use crate::{
    ApiError, ApiLimits, BlobStore, NodeView, PeerBlobs, blobs,
    limits::{Client, RateLimiter},
    market::{self, Query},
    metrics::{ApiMetrics, StreamSlot},
    openapi, service, wire,
};
use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{ConnectInfo, FromRequestParts, MatchedPath, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post, put},
};
use exo_chain::FinalizedBlock;
use futures::Stream;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tower::ServiceExt as _;
use tower_http::{catch_panic::CatchPanicLayer, timeout::RequestBodyTimeoutLayer};

/// What every handler shares.
#[derive(Clone)]
struct Api<N> {
    node: N,
    limits: ApiLimits,
    metrics: ApiMetrics,
    limiter: RateLimiter,
    /// Signed requests that failed (bad signature, refused), per address: past its budget,
    /// an address's signed requests are refused before any signature is checked.
    failures: RateLimiter,
    blobs: Option<BlobStore>,
    peers: Option<Arc<dyn PeerBlobs>>,
    /// Permits of the requests being handled.
    in_flight: Arc<tokio::sync::Semaphore>,
    pulls: Arc<Pulls>,
    /// Event streams open per client.
    streams: Arc<Held>,
}

/// Peer pulls in progress: one per blob (a second request for the same blob waits for the
/// first and then reads the store), and a bounded number in all.
#[derive(Debug)]
struct Pulls {
    by_blob: std::sync::Mutex<HashMap<exo_types::Hash32, Arc<tokio::sync::Mutex<()>>>>,
    slots: tokio::sync::Semaphore,
}

impl Pulls {
    fn new(slots: usize) -> Self {
        Self {
            by_blob: std::sync::Mutex::default(),
            slots: tokio::sync::Semaphore::new(slots.max(1)),
        }
    }

    fn gate(&self, hash: &exo_types::Hash32) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.by_blob.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(*hash).or_default().clone()
    }

    /// Forgets the gate of `hash` once nobody but the map and `gate` holds it.
    fn release(&self, hash: &exo_types::Hash32, gate: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.by_blob.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            map.remove(hash);
        }
    }
}

/// What the API serves besides the node: its limits and, if the node keeps one, a blob store
/// (the node opens it at `<data_dir>/blobs`). Without a store the blob and output routes
/// answer 503 `blobs_disabled`. With `peers`, a blob or outputs miss is filled from other
/// nodes, unless the request itself comes from a node ([`wire::PEER_HEADER`]).
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    pub limits: ApiLimits,
    pub blobs: Option<BlobStore>,
    pub peers: Option<Arc<dyn PeerBlobs>>,
}

/// The API's routes over `node`, without a blob store.
///
/// Per-IP rate limiting needs the peer address: serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` (as [`serve`] does); without it all
/// clients share one bucket.
pub fn router<N: NodeView>(node: N, limits: ApiLimits) -> Router {
    router_with(
        node,
        ApiConfig {
            limits,
            ..ApiConfig::default()
        },
    )
}

/// The API's routes over `node`, as `config` says.
pub fn router_with<N: NodeView>(node: N, config: ApiConfig) -> Router {
    let limits = config.limits;
    let api = Api {
        node,
        limits,
        metrics: ApiMetrics::default(),
        limiter: RateLimiter::new(limits),
        failures: RateLimiter::new(limits),
        blobs: config.blobs,
        peers: config.peers,
        in_flight: Arc::new(tokio::sync::Semaphore::new(
            limits.max_concurrent_requests.max(1),
        )),
        pulls: Arc::new(Pulls::new(limits.max_peer_pulls)),
        streams: Arc::new(Held::new(
            limits.max_event_streams,
            limits.max_event_streams_per_ip,
        )),
    };
    Router::new()
        .route("/v1/status", get(status::<N>))
        .route("/v1/txs", post(submit::<N>))
        .route("/v1/txs/{hash}", get(receipt::<N>))
        .route("/v1/accounts/{address}", get(account::<N>))
        .route("/v1/accounts/{address}/provider", get(provider_of::<N>))
        .route("/v1/blocks/{height}", get(block::<N>))
        .route("/v1/events", get(events::<N>))
        .route("/v1/providers", get(providers::<N>))
        .route("/v1/providers/{id}", get(provider::<N>))
        .route("/v1/providers/{id}/work", get(work::<N>))
        .route("/v1/market/offers", get(offers::<N>))
        .route("/v1/market/depth", get(depth::<N>))
        .route("/v1/jobs", get(jobs::<N>))
        .route("/v1/jobs/{id}", get(job::<N>))
        .route("/v1/apps", get(apps::<N>))
        .route("/v1/apps/{hash}/{developer}", get(app::<N>))
        .route("/v1/blobs", put(put_blob::<N>))
        .route("/v1/blobs/{hash}", get(get_blob::<N>).head(head_blob::<N>))
        .route(
            "/v1/outputs/{job}/{unit}",
            get(get_outputs::<N>).put(put_outputs::<N>),
        )
        .route("/v1/openapi.json", get(openapi_document))
        .route("/metrics", get(metrics::<N>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(api.clone(), guard::<N>))
        .layer(middleware::from_fn_with_state(api.clone(), rate_limit::<N>))
        .layer(middleware::from_fn_with_state(api.clone(), count::<N>))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            limits.body_idle_timeout_ms,
        )))
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown` completes, then gives open requests
/// `grace_ms` to finish. Event streams never finish on their own, so the grace period is what
/// bounds a shutdown.
pub async fn serve<N: NodeView>(
    listener: tokio::net::TcpListener,
    node: N,
    limits: ApiLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace_ms: u64,
) -> std::io::Result<()> {
    serve_with(
        listener,
        node,
        ApiConfig {
            limits,
            ..ApiConfig::default()
        },
        shutdown,
        grace_ms,
    )
    .await
}

/// [`serve`] with a blob store (or anything else [`ApiConfig`] holds).
///
/// The accept loop bounds what a client can hold without sending a request: connections in
/// all and per address (over the bound, a new connection is closed at once), and the time to
/// send a request's headers.
pub async fn serve_with<N: NodeView>(
    listener: tokio::net::TcpListener,
    node: N,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace_ms: u64,
) -> std::io::Result<()> {
    let limits = config.limits;
    let router = router_with(node, config);
    let connections = Arc::new(Held::new(
        limits.max_connections,
        limits.max_connections_per_ip,
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted (reset, or out of file
                // descriptors): back off briefly rather than spin.
                Err(err) => {
                    tracing::debug!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = connections.open(Client::address(Some(peer.ip()))) else {
            drop(stream);
            continue;
        };
        let service = router
            .clone()
            .map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let header_timeout = Duration::from_millis(limits.header_timeout_ms);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // HTTP/1.1 only (the API's clients speak it); the header timer runs from the
            // connection's start and again while a kept-alive connection waits for its next
            // request, so a silent client is closed too.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::trace!(%err, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Event streams never finish on their own: the grace period bounds the wait.
    let _ = tokio::time::timeout(Duration::from_millis(grace_ms), graceful.shutdown()).await;
    Ok(())
}

/// Things a client holds open (connections, event streams), in all and per client (an
/// address, an IPv6 /64 counting as one).
#[derive(Debug)]
struct Held {
    open: std::sync::Mutex<HashMap<Client, usize>>,
    total: Arc<tokio::sync::Semaphore>,
    per_client: usize,
}

/// One held thing; its count is released when it is dropped.
struct HeldSlot {
    held: Arc<Held>,
    client: Client,
    _total: tokio::sync::OwnedSemaphorePermit,
}

impl Held {
    fn new(total: usize, per_client: usize) -> Self {
        Self {
            open: std::sync::Mutex::default(),
            total: Arc::new(tokio::sync::Semaphore::new(total.max(1))),
            per_client: per_client.max(1),
        }
    }

    fn open(self: &Arc<Self>, client: Client) -> Option<HeldSlot> {
        let total = self.total.clone().try_acquire_owned().ok()?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(HeldSlot {
            held: self.clone(),
            client,
            _total: total,
        })
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        let mut open = self.held.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Path parameters, refused in the API's error format (axum's own rejection is plain text).
struct PathParams<T>(T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadPath(
                rejection.body_text().chars().take(200).collect(),
            )),
        }
    }
}

async fn status<N: NodeView>(State(api): State<Api<N>>) -> Json<wire::Status> {
    Json(api.node.status())
}

async fn submit<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    body: Body,
) -> Result<(StatusCode, Json<wire::SubmitResponse>), ApiError> {
    let result = match read_body(body, api.limits.max_body_bytes).await {
        Ok(bytes) => {
            service::admit(&api.node, &api.limits, &bytes, |sender| {
                charge(&api, Client::signer(sender), 1)
            })
            .await
        }
        Err(err) => Err(err),
    };
    let result = result.inspect_err(|err| charge_failure(&api, client, err));
    match result {
        Ok(hash) => {
            api.metrics.admitted();
            Ok((StatusCode::ACCEPTED, Json(wire::SubmitResponse { hash })))
        }
        Err(err) => {
            api.metrics.refused(err.code());
            Err(err)
        }
    }
}

/// Reads a body of at most `max` bytes, whatever its Content-Length claims.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, ApiError> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { max })
        }
        Err(err) => Err(ApiError::BodyUnreadable(err.to_string())),
    }
}

async fn receipt<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(hash): PathParams<String>,
) -> Result<Json<wire::Receipt>, ApiError> {
    service::receipt(&api.node, &api.limits, &hash)
        .await
        .map(Json)
}

async fn account<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(address): PathParams<String>,
) -> Result<Json<wire::Account>, ApiError> {
    service::account(&api.node, &api.limits, &address)
        .await
        .map(Json)
}

async fn block<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(height): PathParams<String>,
) -> Result<Json<wire::Block>, ApiError> {
    service::block(&api.node, &api.limits, &height)
        .await
        .map(Json)
}

async fn events<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    query.only(&["provider"])?;
    let provider = query.u64("provider")?;
    // One address cannot take every stream: workers fall back to polling without one.
    let mine = api.streams.open(client).ok_or(ApiError::TooManyStreams(
        api.limits.max_event_streams_per_ip,
    ))?;
    let slot = api
        .metrics
        .open_stream(api.limits.max_event_streams)
        .ok_or(ApiError::TooManyStreams(api.limits.max_event_streams))?;
    let slot = (slot, mine);
    let receiver = api.node.subscribe();
    Ok(Sse::new(chain_events(api, receiver, slot, provider)).keep_alive(KeepAlive::default()))
}

/// One `block` event per finalized block, followed by one `assignment` event per replica its
/// batch match assigned (only `provider`'s, if given); a `lagged` event when the subscriber
/// fell behind. The stream holds its slot until the client goes away.
fn chain_events<N: NodeView>(
    api: Api<N>,
    receiver: broadcast::Receiver<FinalizedBlock>,
    slot: (StreamSlot, HeldSlot),
    provider: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (api, receiver, slot, VecDeque::<Event>::new());
    futures::stream::unfold(
        state,
        move |(api, mut receiver, slot, mut queue)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event), (api, receiver, slot, queue)));
                }
                match receiver.recv().await {
                    Ok(block) => {
                        queue.push_back(json_event(
                            Event::default().event("block").id(block.height.to_string()),
                            &service::block_json(&block),
                        ));
                        match market::assignments(&api.node, &api.limits, block.height, provider)
                            .await
                        {
                            Ok(assignments) => {
                                for assignment in &assignments {
                                    queue.push_back(json_event(
                                        Event::default().event("assignment"),
                                        assignment,
                                    ));
                                }
                            }
                            // The block is out; say in the stream that its assignments are not.
                            Err(err) => queue.push_back(json_event(
                                Event::default().event("error"),
                                &err.body(),
                            )),
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => queue.push_back(json_event(
                        Event::default().event("lagged"),
                        &wire::Lagged { skipped },
                    )),
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}

fn json_event(event: Event, data: &impl serde::Serialize) -> Event {
    // Serializing these plain structs cannot fail; if it ever did, say so in the stream.
    event
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("error").data("encoding"))
}

async fn provider_of<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(address): PathParams<String>,
) -> Result<Json<wire::ProviderOf>, ApiError> {
    market::provider_of(&api.node, &api.limits, &address)
        .await
        .map(Json)
}

async fn providers<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::ProviderPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::providers(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

async fn provider<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<wire::Provider>, ApiError> {
    market::provider(&api.node, &api.limits, &id)
        .await
        .map(Json)
}

async fn work<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::WorkPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::work(&api.node, &api.limits, &id, &query)
        .await
        .map(Json)
}

async fn offers<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::OfferPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::offers(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

async fn depth<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::Depth>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::depth(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

async fn jobs<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::JobPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::jobs(&api.node, &api.limits, &query).await.map(Json)
}

async fn job<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::Job>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::job(&api.node, &api.limits, &id, &query)
        .await
        .map(Json)
}

async fn apps<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::AppPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::apps(&api.node, &api.limits, &query).await.map(Json)
}

async fn app<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams((hash, developer)): PathParams<(String, String)>,
) -> Result<Json<wire::App>, ApiError> {
    market::app(&api.node, &api.limits, &hash, &developer)
        .await
        .map(Json)
}

fn store<N>(api: &Api<N>) -> Result<&BlobStore, ApiError> {
    api.blobs.as_ref().ok_or(ApiError::BlobsDisabled)
}

fn content_hash(text: &str) -> Result<exo_types::Hash32, ApiError> {
    wire::hash32_from_hex(text)
        .ok_or_else(|| ApiError::BadContentHash(text.chars().take(80).collect()))
}

/// `PUT /v1/blobs?hash=HEX`: stores the body for the account that signed the upload
/// ([`wire::SIGNER_HEADER`], [`wire::SIGNATURE_HEADER`]), if its balance is at least
/// [`ApiLimits::min_uploader_balance`] and the blob fits in its quota. Its bound is the blob
/// bound, not the transaction bound; a declared length over it is refused before a byte is
/// read, and so is a bad signature.
async fn put_blob<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<wire::BlobStored>), ApiError> {
    put_blob_for(&api, query, &headers, body)
        .await
        .inspect_err(|err| charge_failure(&api, client, err))
        .map(|stored| (StatusCode::CREATED, Json(stored)))
}

async fn put_blob_for<N: NodeView>(
    api: &Api<N>,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<wire::BlobStored, ApiError> {
    let store = store(api)?;
    let query = Query::parse(query.as_deref())?;
    query.only(&["hash"])?;
    let expected = query.text("hash").map(content_hash).transpose()?;
    let max = api.limits.max_blob_bytes;
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadHeader("Content-Length is not a number".into()))?,
        ),
    };
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::BlobTooLarge { max });
    }
    let (Some(signer), Some(signature)) = (
        headers.get(wire::SIGNER_HEADER),
        headers.get(wire::SIGNATURE_HEADER),
    ) else {
        return Err(ApiError::Unsigned(format!(
            "a blob upload must be signed by a funded account: headers {} and {} over the \
             chain id and ?hash=",
            wire::SIGNER_HEADER,
            wire::SIGNATURE_HEADER
        )));
    };
    let Some(expected) = expected else {
        return Err(ApiError::BadQuery(
            "a signed upload names the blob's hash: ?hash=<hex>".into(),
        ));
    };
    let signer_text = signer.to_str().unwrap_or("");
    let signer = exo_types::address_from_hex(signer_text)
        .ok_or_else(|| ApiError::BadAddress(signer_text.chars().take(80).collect()))?;
    let signature = market::parse_signature(signature.to_str().unwrap_or(""))?;
    let claim = exo_types::BlobClaim {
        chain_id: api.node.status().chain_id,
        hash: expected,
    };
    if !claim.verify(&signer, &signature) {
        return Err(ApiError::Forbidden {
            code: "bad_signer",
            message: format!("the signature is not {signer_text}'s over this chain and blob"),
        });
    }
    let account = service::read_account(&api.node, &api.limits, &signer).await?;
    if account.balance < api.limits.min_uploader_balance {
        return Err(ApiError::Forbidden {
            code: "unfunded",
            message: format!(
                "the uploader's balance {} is below the {} a node stores blobs for",
                account.balance, api.limits.min_uploader_balance
            ),
        });
    }
    charge(api, Client::signer(&signer), 1)?;
    let owner: exo_types::Hash32 = wire::address_bytes(&signer);
    let uploader = crate::blobs::Uploader {
        owner: Some(owner),
        quota_bytes: api.limits.max_account_blob_bytes,
    };
    store.put_for(body, max, expected, uploader).await
}

/// Collects the blob store every `every` ([`market::collect_blobs`]), forever: the node runs
/// it beside the API.
pub async fn collect_blobs_forever<N: NodeView>(
    node: N,
    limits: ApiLimits,
    store: BlobStore,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let now = blobs::unix_now_secs();
        match market::collect_blobs(&node, &limits, &store, now).await {
            Ok(collected) if collected.blobs > 0 => tracing::info!(
                blobs = collected.blobs,
                bytes = collected.bytes,
                "blob store collected"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "blob store collection failed"),
        }
    }
}

fn blob_headers(response: &mut Response, hash: &exo_types::Hash32) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", hex::encode(hash))) {
        headers.insert(header::ETAG, etag);
    }
    // Content-addressed: the bytes under a hash never change.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
}

/// `GET /v1/blobs/{hash}`, with `Range: bytes=a-b` (206) support. A range is served from the
/// file verified at write without hashing the rest; a whole blob is checked as it is served.
async fn get_blob<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(hash): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = store(&api)?;
    let hash = content_hash(&hash)?;
    let size = match store.size(&hash).await {
        Err(ApiError::NotFound(_)) if pull_blob(&api, store, &hash, &headers).await? => {
            store.size(&hash).await?
        }
        found => found?,
    };
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let (status, start, len) = match blobs::parse_range(range, size)? {
        None => (StatusCode::OK, 0, size),
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
    };
    let body = if status == StatusCode::OK {
        store.stream_whole(&hash, size).await?
    } else {
        store.stream(&hash, start, len).await?
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    blob_headers(&mut response, &hash);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{size}", start + len - 1);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// `HEAD /v1/blobs/{hash}`: whether the node holds the blob, and its size.
async fn head_blob<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(hash): PathParams<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    debug_assert_eq!(method, Method::HEAD);
    let store = store(&api)?;
    let hash = content_hash(&hash)?;
    let size = match store.size(&hash).await {
        Err(ApiError::NotFound(_)) if pull_blob(&api, store, &hash, &headers).await? => {
            store.size(&hash).await?
        }
        found => found?,
    };
    let mut response = Response::new(Body::empty());
    blob_headers(&mut response, &hash);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}

async fn put_outputs<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    PathParams((job, unit)): PathParams<(String, String)>,
    body: Body,
) -> Result<Json<wire::Outputs>, ApiError> {
    let result = async {
        let store = store(&api)?;
        let bytes = read_body(body, api.limits.max_body_bytes).await?;
        market::put_outputs(
            &api.node,
            &api.limits,
            store,
            &job,
            &unit,
            &bytes,
            |signer| charge(&api, signer.map_or(client, Client::signer), 1),
        )
        .await
    }
    .await;
    result
        .inspect_err(|err| charge_failure(&api, client, err))
        .map(Json)
}

/// Takes `cost` requests from `client`'s budget.
fn charge<N>(api: &Api<N>, client: Client, cost: u32) -> Result<(), ApiError> {
    api.limiter
        .check(client, cost)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })
}

/// A signed route's request that failed (its signature unverified, or refused after it) is
/// counted against its address's failure budget, so that forging signatures is not free.
fn charge_failure<N>(api: &Api<N>, client: Client, err: &ApiError) {
    if !matches!(err, ApiError::RateLimited { .. }) {
        let _ = api.failures.check(client, 1);
    }
}

async fn get_outputs<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams((job, unit)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<wire::Outputs>, ApiError> {
    let store = store(&api)?;
    let outputs = match market::get_outputs(&api.node, &api.limits, store, &job, &unit).await {
        Err(ApiError::NotFound(_)) if pull_outputs(&api, store, &job, &unit, &headers).await? => {
            market::get_outputs(&api.node, &api.limits, store, &job, &unit).await
        }
        found => found,
    };
    outputs.map(Json)
}

/// The peers to fill a miss from: none for a request that itself comes from a node.
fn peers_for<'a, N>(api: &'a Api<N>, headers: &HeaderMap) -> Option<&'a dyn PeerBlobs> {
    if headers.contains_key(wire::PEER_HEADER) {
        return None;
    }
    api.peers.as_deref()
}

/// Fetches a missing blob from the peers into the store (which checks its hash); whether it
/// is there now.
async fn pull_blob<N>(
    api: &Api<N>,
    store: &BlobStore,
    hash: &exo_types::Hash32,
    headers: &HeaderMap,
) -> Result<bool, ApiError> {
    let Some(peers) = peers_for(api, headers) else {
        return Ok(false);
    };
    let gate = api.pulls.gate(hash);
    let pulled = {
        let _one_at_a_time = gate.lock().await;
        pull_blob_once(api, peers, store, hash).await
    };
    api.pulls.release(hash, gate);
    pulled
}

/// The pull itself, for the one request that holds the blob's gate.
async fn pull_blob_once<N>(
    api: &Api<N>,
    peers: &dyn PeerBlobs,
    store: &BlobStore,
    hash: &exo_types::Hash32,
) -> Result<bool, ApiError> {
    // Another request may have pulled it while this one waited at the gate.
    match store.size(hash).await {
        Ok(_) => return Ok(true),
        Err(ApiError::NotFound(_)) => {}
        Err(err) => return Err(err),
    }
    let _slot = api
        .pulls
        .slots
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("peer pulls closed".into()))?;
    let max = api.limits.max_blob_bytes;
    let Some(bytes) = peers.blob(*hash, max).await else {
        return Ok(false);
    };
    match store.put_pulled(Body::from(bytes), max, *hash).await {
        Ok(_) => Ok(true),
        // A peer's bytes that do not have the hash: as if no peer held the blob.
        Err(ApiError::HashMismatch { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Registers a unit's accepted outputs held by a peer: its archive is fetched into the store
/// and checked against the accepted digest as an upload would be. Whether it is here now.
async fn pull_outputs<N: NodeView>(
    api: &Api<N>,
    store: &BlobStore,
    job: &str,
    unit: &str,
    headers: &HeaderMap,
) -> Result<bool, ApiError> {
    let Some(peers) = peers_for(api, headers) else {
        return Ok(false);
    };
    let (job_id, index) = (market::parse_id("job", job)?, market::parse_unit(unit)?);
    let Some(archive) = peers.outputs(job_id, index).await else {
        return Ok(false);
    };
    let present = match store.size(&archive).await {
        Ok(_) => true,
        Err(ApiError::NotFound(_)) => pull_blob(api, store, &archive, headers).await?,
        Err(err) => return Err(err),
    };
    if !present {
        return Ok(false);
    }
    let body = serde_json::to_vec(&wire::OutputsPut::unsigned(archive))
        .map_err(|e| ApiError::Internal(format!("outputs body: {e}")))?;
    market::put_outputs(&api.node, &api.limits, store, job, unit, &body, |_| Ok(())).await?;
    Ok(true)
}

async fn metrics<N: NodeView>(State(api): State<Api<N>>) -> Response {
    let mut text = api.node.metrics();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&api.metrics.render());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi_document() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn not_found(request: Request) -> ApiError {
    let path: String = request.uri().path().chars().take(80).collect();
    ApiError::RouteNotFound(path)
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("api handler panicked");
    ApiError::Internal("the request could not be handled".into()).into_response()
}

/// Refuses requests over the client's rate. An unsigned request is counted against its
/// address, by its cost ([`request_cost`]). A signed route's request (a transaction, an
/// outputs registration, a blob upload) is counted by its handler against its signer's key
/// once the signature is verified, or against the address's failure budget when it fails;
/// here it only needs that failure budget not to be spent, so that the address's unsigned
/// reads never hold back its signed requests. `/metrics` renders every registry of the node, so it is
/// limited like everything else (a scraper asks once every few seconds).
async fn rate_limit<N: NodeView>(
    State(api): State<Api<N>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = Client::address(
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
    );
    let signed = matches!(
        (request.method(), request.uri().path()),
        (&Method::POST, "/v1/txs") | (&Method::PUT, "/v1/blobs")
    ) || (request.method() == Method::PUT
        && request.uri().path().starts_with("/v1/outputs/"));
    let allowed = if signed {
        api.failures.peek(client)
    } else {
        api.limiter.check(client, request_cost(&request))
    };
    if let Err(retry_after_secs) = allowed {
        return ApiError::RateLimited { retry_after_secs }.into_response();
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// What a request costs the node, in ordinary requests: the reads that walk many records
/// cost more than one token, so that a cheap request cannot make the node do a thousand
/// times its work at the ordinary rate.
fn request_cost(request: &Request) -> u32 {
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or("");
    let limit = || {
        query
            .split('&')
            .find_map(|p| p.strip_prefix("limit="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(market::DEFAULT_PAGE)
    };
    match path {
        // The whole offer book.
        "/v1/market/depth" => 20,
        // A page of records, one read each: a token per 50.
        "/v1/jobs" | "/v1/providers" | "/v1/market/offers" | "/v1/apps" => {
            u32::try_from(limit().div_ceil(50))
                .unwrap_or(u32::MAX)
                .max(1)
        }
        // Every registry of the node.
        "/metrics" => 5,
        _ => 1,
    }
}

/// Bounds the requests handled at once (refusing, not queueing, past the bound) and the time
/// a handler takes to answer; a blob upload, whose body is read by its handler, gets the
/// upload bound.
async fn guard<N: NodeView>(State(api): State<Api<N>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = api.in_flight.clone().try_acquire_owned() else {
        return ApiError::Busy(api.limits.max_concurrent_requests).into_response();
    };
    let upload = request.method() == Method::PUT && request.uri().path() == "/v1/blobs";
    let timeout_ms = if upload {
        api.limits.upload_timeout_ms
    } else {
        api.limits.request_timeout_ms
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(timeout_ms).into_response(),
    }
}

/// Counts requests by route template and status.
async fn count<N: NodeView>(State(api): State<Api<N>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    api.metrics
        .request(&method, &route, response.status().as_u16());
    response
}
