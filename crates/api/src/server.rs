//! The axum router: routes, limits, metrics and the server loop.

use crate::{
    ApiError, ApiLimits, BlobStore, NodeView, PeerBlobs, blobs, dashboard,
    limits::{Client, RateLimiter},
    market::{self, Query},
    metrics::{ApiMetrics, StreamSlot},
    openapi::{self, BlobQuery, EventFilter, Finish, JobFilter, Page},
    service, staking,
    wire::{self, schema},
};
use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, FromRequestParts, MatchedPath, RawQuery, Request, State},
    handler::Handler,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{MethodFilter, on},
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
use utoipa::openapi::HttpMethod;

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
    /// The OpenAPI document, as JSON.
    openapi: Bytes,
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

/// Every route the API serves, by handler. A handler's `#[utoipa::path]` names its method and
/// path: the router ([`router_with`]), the OpenAPI document ([`ApiDoc`]) and the list of
/// served routes ([`routes`]) are all made from this one list, so none has a route the others
/// lack.
macro_rules! api_routes {
    ($($handler:ident),* $(,)?) => {
        /// The OpenAPI document: the operations of the handlers the router serves.
        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(
                title = "Exodus node API",
                description = "Status, transactions, accounts, finalized blocks and events of an \
                    Exodus node, its compute market (providers, offers, jobs, apps, work), its \
                    blob store and unit outputs, and its metrics.\n\n\
                    Every error is a JSON object `{error, message}`: `error` is a stable code, \
                    `message` a sentence for people; a refusal of the request is 4xx, a node \
                    that cannot answer 5xx. Every route is rate limited: unsigned requests per \
                    client address (an IPv6 /64 counting as one; list reads cost a token per 50 \
                    items asked for, the book's depth 20, metrics 5), transactions, outputs \
                    registrations and blob uploads per signing key (429 `rate_limited`, with \
                    Retry-After). A node handling as many requests as it may at once answers \
                    429 `busy`, and a handler that takes longer than the node's bound 408 \
                    `request_timeout`."
            ),
            paths($($handler),*),
            components(schemas(wire::ErrorBody, wire::Block, wire::AssignmentEvent, wire::Lagged)),
            modifiers(&Finish),
        )]
        pub(crate) struct ApiDoc;

        /// The routes over a node of type `N`.
        fn handlers<N: NodeView>() -> Router<Api<N>> {
            let router = Router::new();
            $( let router = paste::paste! { route::<[<__path_ $handler>], _, _, N>(router, $handler::<N>) }; )*
            router
        }

        /// Every route the router serves: its method and path template, as the OpenAPI
        /// document writes them.
        pub fn routes() -> Vec<(Method, String)> {
            let mut routes = Vec::new();
            $( paste::paste! { routes.extend(served::<[<__path_ $handler>]>()); } )*
            routes
        }
    };
}

api_routes![
    status,
    submit,
    receipt,
    account,
    provider_of,
    block,
    events,
    providers,
    provider,
    work,
    capacity,
    offers,
    depth,
    jobs,
    job,
    apps,
    app,
    put_blob,
    get_blob,
    head_blob,
    get_outputs,
    put_outputs,
    put_replica_archive,
    put_outputs_batch,
    openapi_document,
    metrics,
    dashboard_page,
    dashboard_asset,
    validators,
    epoch,
    supply,
];

/// Adds `handler` to `router` at the path and methods of its `#[utoipa::path]`, `P`.
fn route<P, H, T, N>(router: Router<Api<N>>, handler: H) -> Router<Api<N>>
where
    P: utoipa::Path,
    H: Handler<T, Api<N>>,
    T: 'static,
    N: NodeView,
{
    let path = P::path();
    served::<P>()
        .into_iter()
        .fold(router, |router, (method, _)| {
            let filter = MethodFilter::try_from(method)
                .unwrap_or_else(|_| unreachable!("utoipa's methods are HTTP's"));
            router.route(&path, on(filter, handler.clone()))
        })
}

/// The methods and path of `P`.
fn served<P: utoipa::Path>() -> Vec<(Method, String)> {
    P::methods()
        .iter()
        .map(|method| {
            let method = match method {
                HttpMethod::Get => Method::GET,
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
                HttpMethod::Delete => Method::DELETE,
                HttpMethod::Options => Method::OPTIONS,
                HttpMethod::Head => Method::HEAD,
                HttpMethod::Patch => Method::PATCH,
                HttpMethod::Trace => Method::TRACE,
            };
            (method, P::path())
        })
        .collect()
}

/// The API's routes over `node`, as `config` says.
pub fn router_with<N: NodeView>(node: N, config: ApiConfig) -> Router {
    let limits = config.limits;
    // Serialized once: the document changes only with the code and the node's limits.
    let openapi = Bytes::from(
        openapi::document(&limits)
            .to_json()
            .expect("the OpenAPI document is plain JSON"),
    );
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
        openapi,
    };
    handlers::<N>()
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

/// The chain as this node sees it.
#[utoipa::path(
    get,
    path = "/v1/status",
    responses(
        (status = 200, description = "Heights, epoch, state root, peers and minimum fee.", body = wire::Status),
        openapi::NoErrors,
    )
)]
async fn status<N: NodeView>(State(api): State<Api<N>>) -> Json<wire::Status> {
    Json(api.node.status())
}

/// Submits a signed transaction to the mempool.
///
/// Before admission the node makes the checks the ledger would make against finalized
/// state: the signature, the chain id, the fee against the minimum, the nonce (at most the
/// node's bound ahead of the account's next) and that the balance covers the fee.
#[utoipa::path(
    post,
    path = "/v1/txs",
    request_body = wire::SubmitRequest,
    responses(
        (status = 202, description = "Admitted to the mempool.", body = wire::SubmitResponse),
        openapi::SubmitErrors,
    )
)]
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

/// The receipt of a transaction, or `pending` while it is in this node's mempool.
#[utoipa::path(
    get,
    path = "/v1/txs/{hash}",
    params(("hash" = schema::Hash, Path, description = "The transaction's hash.")),
    responses(
        (status = 200, description = "Its receipt, or pending.", body = wire::Receipt),
        openapi::ReceiptErrors,
    )
)]
async fn receipt<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(hash): PathParams<String>,
) -> Result<Json<wire::Receipt>, ApiError> {
    service::receipt(&api.node, &api.limits, &hash)
        .await
        .map(Json)
}

/// An account's finalized balance and next nonce; an account never used has balance 0 and
/// nonce 0.
#[utoipa::path(
    get,
    path = "/v1/accounts/{address}",
    params(("address" = schema::Address, Path, description = "The account's address.")),
    responses(
        (status = 200, description = "The account.", body = wire::Account),
        openapi::AccountErrors,
    )
)]
async fn account<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(address): PathParams<String>,
) -> Result<Json<wire::Account>, ApiError> {
    service::account(&api.node, &api.limits, &address)
        .await
        .map(Json)
}

/// A finalized block's header and the hashes of its transactions.
#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    params(("height" = u64, Path, description = "The block's height.")),
    responses(
        (status = 200, description = "The block.", body = wire::Block),
        openapi::BlockErrors,
    )
)]
async fn block<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(height): PathParams<String>,
) -> Result<Json<wire::Block>, ApiError> {
    service::block(&api.node, &api.limits, &height)
        .await
        .map(Json)
}

/// Server-sent events of finalized blocks and the replicas they assigned.
///
/// One `block` event (data: `Block`) per finalized block, then one `assignment` event (data:
/// `AssignmentEvent`) per replica its batch match assigned (none with `assignments=false`), or
/// an `error` event (data: `ErrorBody`) if they could not be read; `lagged` (data: `Lagged`)
/// when the client fell behind. The node bounds the streams open in all and per client address.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(EventFilter),
    responses(
        (status = 200, description = "An event stream.", content_type = "text/event-stream", body = String),
        openapi::EventsErrors,
    )
)]
async fn events<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    query.only(&["provider", "assignments"])?;
    let provider = query.u64("provider")?;
    let assignments = match (query.text("assignments"), provider) {
        (None | Some("true"), None) => Assignments::Every,
        (None | Some("true"), Some(provider)) => Assignments::Of(provider),
        (Some("false"), _) => Assignments::Nothing,
        (Some(other), _) => {
            return Err(ApiError::BadQuery(format!(
                "assignments={other:?} is neither true nor false"
            )));
        }
    };
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
    Ok(Sse::new(chain_events(api, receiver, slot, assignments)).keep_alive(KeepAlive::default()))
}

/// Which `assignment` events a stream carries.
#[derive(Clone, Copy, Debug)]
enum Assignments {
    Every,
    /// Only this provider's.
    Of(u64),
    /// None: a worker that only needs to know a block came reads its work list instead, and
    /// the node reads no assignment list for it.
    Nothing,
}

/// One `block` event per finalized block, followed by one `assignment` event per replica its
/// batch match assigned (as `assignments` says); a `lagged` event when the subscriber fell
/// behind. The stream holds its slot until the client goes away.
fn chain_events<N: NodeView>(
    api: Api<N>,
    receiver: broadcast::Receiver<FinalizedBlock>,
    slot: (StreamSlot, HeldSlot),
    assignments: Assignments,
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
                        let provider = match assignments {
                            Assignments::Nothing => continue,
                            Assignments::Every => None,
                            Assignments::Of(provider) => Some(provider),
                        };
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

/// The provider an account registered.
#[utoipa::path(
    get,
    path = "/v1/accounts/{address}/provider",
    params(("address" = schema::Address, Path, description = "The account's address.")),
    responses(
        (status = 200, description = "Its provider's id.", body = wire::ProviderOf),
        openapi::ProviderOfErrors,
    )
)]
async fn provider_of<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(address): PathParams<String>,
) -> Result<Json<wire::ProviderOf>, ApiError> {
    market::provider_of(&api.node, &api.limits, &address)
        .await
        .map(Json)
}

/// Registered providers, by id.
#[utoipa::path(
    get,
    path = "/v1/providers",
    params(Page),
    responses(
        (status = 200, description = "A page of providers; `next` is the `from` of the next page.", body = wire::ProviderPage),
        openapi::ListErrors,
    )
)]
async fn providers<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::ProviderPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::providers(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

/// Every validator candidate: keys, address, commission, status, self-bond, nominators.
#[utoipa::path(
    get,
    path = "/v1/validators",
    responses(
        (status = 200, description = "Every validator candidate, by address (at most the chain's `max_validators`).", body = wire::Validators),
        openapi::ListErrors,
    )
)]
async fn validators<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::Validators>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    staking::validators(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

/// The committee of an epoch: its members, their backing and who backs them.
#[utoipa::path(
    get,
    path = "/v1/epochs/{n}",
    params(("n" = u64, Path, description = "The epoch.")),
    responses(
        (status = 200, description = "The committee of the epoch, elected two epochs before it.", body = wire::EpochView),
        openapi::RecordErrors,
    )
)]
async fn epoch<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(n): PathParams<String>,
) -> Result<Json<wire::EpochView>, ApiError> {
    staking::epoch(&api.node, &api.limits, &n).await.map(Json)
}

/// The token supply: minted by block rewards, burnt by provider slashing, and the pots of the
/// insurance pool, the treasury and the running epoch's rewards.
#[utoipa::path(
    get,
    path = "/v1/supply",
    responses(
        (status = 200, description = "The total supply, what was burnt, and the protocol's pots.", body = wire::Supply),
        openapi::ListErrors,
    )
)]
async fn supply<N: NodeView>(State(api): State<Api<N>>) -> Result<Json<wire::Supply>, ApiError> {
    staking::supply(&api.node, &api.limits).await.map(Json)
}

/// A provider: owner, resources, bond, reputation and record.
#[utoipa::path(
    get,
    path = "/v1/providers/{id}",
    params(("id" = u64, Path, description = "The provider's id.")),
    responses(
        (status = 200, description = "The provider.", body = wire::Provider),
        openapi::RecordErrors,
    )
)]
async fn provider<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<wire::Provider>, ApiError> {
    market::provider(&api.node, &api.limits, &id)
        .await
        .map(Json)
}

/// A provider's open replicas, with everything its worker needs to run them.
#[utoipa::path(
    get,
    path = "/v1/providers/{id}/work",
    params(("id" = u64, Path, description = "The provider's id."), Page),
    responses(
        (status = 200, description = "A page of the provider's work.", body = wire::WorkPage),
        openapi::RecordPageErrors,
    )
)]
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

/// The open (or last) capacity round and the provider's offers: which may answer it, and what
/// each proved.
#[utoipa::path(
    get,
    path = "/v1/providers/{id}/capacity",
    params(("id" = u64, Path, description = "The provider's id.")),
    responses(
        (status = 200, description = "The round and the provider's offers.", body = wire::ProviderCapacity),
        openapi::RecordErrors,
    )
)]
async fn capacity<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<wire::ProviderCapacity>, ApiError> {
    market::capacity(&api.node, &api.limits, &id)
        .await
        .map(Json)
}

/// Offers on the book, by id.
#[utoipa::path(
    get,
    path = "/v1/market/offers",
    params(Page),
    responses(
        (status = 200, description = "A page of offers.", body = wire::OfferPage),
        openapi::ListErrors,
    )
)]
async fn offers<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::OfferPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::offers(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

/// Free slots of the offers live at the next block, by price, cheapest first.
#[utoipa::path(
    get,
    path = "/v1/market/depth",
    responses(
        (status = 200, description = "The book's depth.", body = wire::Depth),
        openapi::ListErrors,
    )
)]
async fn depth<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::Depth>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::depth(&api.node, &api.limits, &query)
        .await
        .map(Json)
}

/// Jobs: the open ones by id, or those submitted since a height.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    params(JobFilter, Page),
    responses(
        (status = 200, description = "A page of jobs.", body = wire::JobPage),
        openapi::JobsErrors,
    )
)]
async fn jobs<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::JobPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::jobs(&api.node, &api.limits, &query).await.map(Json)
}

/// A job, its accounts and a page of its units.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    params(("id" = u64, Path, description = "The job's id."), Page),
    responses(
        (status = 200, description = "The job; `next_unit` is the `from` of its next page of units.", body = wire::Job),
        openapi::RecordPageErrors,
    )
)]
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

/// Published apps, in publication order.
#[utoipa::path(
    get,
    path = "/v1/apps",
    params(Page),
    responses(
        (status = 200, description = "A page of apps.", body = wire::AppPage),
        openapi::ListErrors,
    )
)]
async fn apps<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::AppPage>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    market::apps(&api.node, &api.limits, &query).await.map(Json)
}

/// An app, by its module's hash and its developer.
#[utoipa::path(
    get,
    path = "/v1/apps/{hash}/{developer}",
    params(
        ("hash" = schema::Hash, Path, description = "BLAKE3 of the app's wasm module."),
        ("developer" = schema::Address, Path, description = "The developer who published it."),
    ),
    responses(
        (status = 200, description = "The app.", body = wire::App),
        openapi::AppErrors,
    )
)]
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

/// Stores a blob for the funded account that signed its upload.
///
/// The signature (headers `x-exo-signer` and `x-exo-signature`) is over the chain id and the
/// blob's hash; the signer's balance must be at least the node's minimum
/// (`ApiLimits::min_uploader_balance`) and the blob must fit in its quota. The body's bound is
/// the blob bound, not the transaction bound; a declared length over it is refused before a
/// byte is read, and so is a bad signature.
#[utoipa::path(
    put,
    path = "/v1/blobs",
    params(
        BlobQuery,
        ("x-exo-signer" = schema::Address, Header, description = "The uploader's address."),
        ("x-exo-signature" = schema::Signature, Header, description = "The uploader's signature over the chain id and the blob's hash."),
    ),
    request_body(description = "The blob's bytes.", content(("application/octet-stream"))),
    responses(
        (status = 201, description = "Stored (or already held): its hash and size.", body = wire::BlobStored),
        openapi::PutBlobErrors,
    )
)]
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
    let (signer, signature) = signed_by(
        headers,
        "a blob upload is signed by a funded account over the chain id and ?hash=",
    )?;
    let Some(expected) = expected else {
        return Err(ApiError::BadQuery(
            "a signed upload names the blob's hash: ?hash=<hex>".into(),
        ));
    };
    let claim = exo_types::BlobClaim {
        chain_id: api.node.status().chain_id,
        hash: expected,
    };
    if !claim.verify(&signer, &signature) {
        return Err(ApiError::Forbidden {
            code: "bad_signer",
            message: format!(
                "the signature is not {}'s over this chain and blob",
                exo_types::address_to_hex(&signer)
            ),
        });
    }
    admit_uploader(api, &signer, 1).await?;
    store
        .put_for(body, max, expected, uploader(api, &signer))
        .await
}

/// The signer and signature of a signed upload (headers `x-exo-signer` and
/// `x-exo-signature`), parsed. Without them, the refusal says what the route wants signed
/// (`needs`).
fn signed_by(
    headers: &HeaderMap,
    needs: &str,
) -> Result<(exo_types::Address, exo_types::Signature), ApiError> {
    let (Some(signer), Some(signature)) = (
        headers.get(wire::SIGNER_HEADER),
        headers.get(wire::SIGNATURE_HEADER),
    ) else {
        return Err(ApiError::Unsigned(format!(
            "{needs}, in headers {} and {}",
            wire::SIGNER_HEADER,
            wire::SIGNATURE_HEADER
        )));
    };
    let signer_text = signer.to_str().unwrap_or("");
    let signer = exo_types::address_from_hex(signer_text)
        .ok_or_else(|| ApiError::BadAddress(signer_text.chars().take(80).collect()))?;
    let signature = market::parse_signature(signature.to_str().unwrap_or(""))?;
    Ok((signer, signature))
}

/// Lets `signer`, whose signature over an upload was verified, upload: it must hold the
/// node's minimum balance, and the upload counts against its rate limit.
async fn admit_uploader<N: NodeView>(
    api: &Api<N>,
    signer: &exo_types::Address,
    uploads: u32,
) -> Result<(), ApiError> {
    let account = service::read_account(&api.node, &api.limits, signer).await?;
    if account.balance < api.limits.min_uploader_balance {
        return Err(ApiError::Forbidden {
            code: "unfunded",
            message: format!(
                "the uploader's balance {} is below the {} a node stores blobs for",
                account.balance, api.limits.min_uploader_balance
            ),
        });
    }
    charge(api, Client::signer(signer), uploads)
}

/// `signer` as the owner of what it uploads, within its quota.
fn uploader<N>(api: &Api<N>, signer: &exo_types::Address) -> crate::blobs::Uploader {
    crate::blobs::Uploader {
        owner: Some(wire::address_bytes(signer)),
        quota_bytes: api.limits.max_account_blob_bytes,
    }
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

/// A blob's bytes, whole or one range of them; a blob this node lacks is asked of its peers.
///
/// A range is served from the file verified at write without hashing the rest; a whole blob
/// is checked as it is served.
#[utoipa::path(
    get,
    path = "/v1/blobs/{hash}",
    params(
        ("hash" = schema::Hash, Path, description = "BLAKE3 of the blob."),
        ("Range" = Option<String>, Header, description = "One byte range, `bytes=a-b`, `bytes=a-` or `bytes=-n`.", pattern = "^bytes=[0-9]*-[0-9]*$"),
        ("x-exo-peer" = Option<String>, Header, description = "Set by a node asking for its own client: answered from this node's store only."),
    ),
    responses(
        (status = 200, description = "The blob.", content(("application/octet-stream"))),
        (status = 206, description = "The range asked for.", content(("application/octet-stream"))),
        openapi::GetBlobErrors,
    )
)]
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

/// Whether the node holds a blob (asking its peers if not), and its size.
#[utoipa::path(
    head,
    path = "/v1/blobs/{hash}",
    params(
        ("hash" = schema::Hash, Path, description = "BLAKE3 of the blob."),
        ("x-exo-peer" = Option<String>, Header, description = "Set by a node asking for its own client: answered from this node's store only."),
    ),
    responses(
        (status = 200, description = "The node holds the blob; Content-Length is its size."),
        openapi::HeadBlobErrors,
    )
)]
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

/// Registers an archive in the blob store as a unit's outputs.
///
/// Before the unit's verdict only the provider of one of its replicas may, signing the
/// registration; after it anyone may register the archive of the accepted digest.
#[utoipa::path(
    put,
    path = "/v1/outputs/{job}/{unit}",
    params(
        ("job" = u64, Path, description = "The job's id."),
        ("unit" = u32, Path, description = "The unit's index."),
    ),
    request_body = wire::OutputsPut,
    responses(
        (status = 200, description = "The archive, with the result digest recomputed from it.", body = wire::Outputs),
        openapi::PutOutputsErrors,
    )
)]
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

/// Uploads a replica's outputs archive and registers it as the unit's outputs, in one request.
///
/// The provider of the replica signs the registration (header `x-exo-signature`, over the
/// chain id, job, unit, replica and the archive's hash, which `?archive=` names), as for
/// `PUT /v1/outputs/{job}/{unit}`; the signature is checked before a byte of the body is read.
/// The body is the archive, stored like a blob upload owned by the provider (its balance,
/// quota and bound), then checked and registered. The same as an upload followed by a
/// registration, with one signature and one round trip.
#[utoipa::path(
    put,
    path = "/v1/outputs/{job}/{unit}/replicas/{replica}",
    params(
        ("job" = u64, Path, description = "The job's id."),
        ("unit" = u32, Path, description = "The unit's index."),
        ("replica" = u32, Path, description = "The replica's index."),
        ("archive" = schema::Hash, Query, description = "BLAKE3 of the archive, the body."),
        ("x-exo-signature" = schema::Signature, Header, description = "The replica's provider's signature over the chain id, job, unit, replica and archive."),
    ),
    request_body(description = "The packed outputs archive.", content(("application/octet-stream"))),
    responses(
        (status = 201, description = "Stored and registered: the archive, with the result digest recomputed from it.", body = wire::Outputs),
        openapi::PutReplicaArchiveErrors,
    )
)]
async fn put_replica_archive<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    PathParams((job, unit, replica)): PathParams<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<wire::Outputs>), ApiError> {
    let result = async {
        let store = store(&api)?;
        let query = Query::parse(query.as_deref())?;
        query.only(&["archive"])?;
        let archive = query
            .text("archive")
            .map(content_hash)
            .transpose()?
            .ok_or_else(|| ApiError::BadQuery("name the archive's hash: ?archive=<hex>".into()))?;
        let replica = market::parse_replica(&replica)?;
        let Some(signature) = headers.get(wire::SIGNATURE_HEADER) else {
            return Err(ApiError::Unsigned(format!(
                "an archive is offered by its replica's provider, signing it in header {}",
                wire::SIGNATURE_HEADER
            )));
        };
        let request = wire::OutputsPut {
            archive,
            replica: Some(replica),
            signature: Some(signature.to_str().unwrap_or("").to_string()),
        };
        let max = api.limits.max_blob_bytes;
        market::put_replica_archive(
            &api.node,
            &api.limits,
            store,
            (&job, &unit),
            &request,
            async |signer| admit_uploader(&api, signer, 1).await,
            async |signer| {
                store
                    .put_for(body, max, archive, uploader(&api, signer))
                    .await
            },
        )
        .await
    }
    .await;
    result
        .inspect_err(|err| charge_failure(&api, client, err))
        .map(|outputs| (StatusCode::CREATED, Json(outputs)))
}

/// Uploads several replicas' outputs archives and registers each for its unit, in one request.
///
/// The body (`application/octet-stream`, at most 4 MiB) is the binary `OutputsBatch`: the
/// number of archives (1 to 64), then each one's job (u64), unit (u32), replica (u32) and
/// archive (at most 1 MiB, length-prefixed), in `commonware-codec`'s encoding. One provider
/// owner offers them all, signing the chain id and each archive's job, unit, replica and
/// BLAKE3 once (`OutputsBatchClaim`, headers `x-exo-signer` and `x-exo-signature`). Each
/// archive is then checked and registered as by `PUT /v1/outputs/{job}/{unit}/replicas/
/// {replica}`, and all are stored in one durable commit. The answer lists, in the order sent,
/// each archive's registered outputs or the error that refused it alone; an error of the
/// whole request refuses them all. Counts as one upload per archive against the signer's
/// rate limit.
#[utoipa::path(
    post,
    path = "/v1/outputs/batch",
    params(
        ("x-exo-signer" = schema::Address, Header, description = "The provider owner offering the archives."),
        ("x-exo-signature" = schema::Signature, Header, description = "The signer's signature over the chain id and each archive's job, unit, replica and hash."),
    ),
    request_body(description = "The encoded batch of archives.", content(("application/octet-stream"))),
    responses(
        (status = 200, description = "Each archive's registered outputs, or the error that refused it.", body = wire::OutputsBatchResult),
        openapi::PutOutputsBatchErrors,
    )
)]
async fn put_outputs_batch<N: NodeView>(
    State(api): State<Api<N>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<wire::OutputsBatchResult>, ApiError> {
    let result = async {
        let store = store(&api)?;
        let (signer, signature) = signed_by(
            &headers,
            "a batch of outputs is signed by its replicas' provider owner",
        )?;
        let body = read_body(body, wire::MAX_OUTPUTS_BATCH_BYTES).await?;
        market::put_outputs_batch(
            &api.node,
            &api.limits,
            store,
            (&signer, &signature),
            body,
            async |signer, archives| {
                // One upload per archive, but never more than the budget holds at its fullest:
                // a batch must be able to pass on a node with a small burst.
                let uploads = u32::try_from(archives)
                    .unwrap_or(u32::MAX)
                    .min(api.limits.signed_rate_burst.max(1));
                admit_uploader(&api, signer, uploads).await?;
                Ok(uploader(&api, signer))
            },
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

/// The archive of an accepted unit's outputs, if this node or one of its peers holds one whose
/// digest is the accepted digest.
#[utoipa::path(
    get,
    path = "/v1/outputs/{job}/{unit}",
    params(
        ("job" = u64, Path, description = "The job's id."),
        ("unit" = u32, Path, description = "The unit's index."),
        ("x-exo-peer" = Option<String>, Header, description = "Set by a node asking for its own client: answered from this node's store only."),
        ("min_height" = Option<u64>, Query, description = "Answer as of at least this finalized height: a node that is behind waits for it, at most 2 s, then answers from the height it has. A node filling a miss asks its peers with its own finalized height, so that a peer a block behind does not answer that the unit is not accepted yet."),
    ),
    responses(
        (status = 200, description = "The archive (a blob) and its digest.", body = wire::Outputs),
        openapi::GetOutputsErrors,
    )
)]
async fn get_outputs<N: NodeView>(
    State(api): State<Api<N>>,
    PathParams((job, unit)): PathParams<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<wire::Outputs>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    query.only(&["min_height"])?;
    let store = store(&api)?;
    if let Some(height) = query.u64("min_height")? {
        market::catch_up(&api.node, height).await;
    }
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
    // The verdict this node read is final at its height: a peer answers as of that height.
    let height = api.node.status().finalized_height;
    let Some(archive) = peers.outputs(job_id, index, height).await else {
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

/// The metrics of the node (consensus, p2p, storage, runtime) and of the API, as one
/// OpenMetrics text.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "OpenMetrics text, ending in `# EOF`.", content_type = crate::metrics::CONTENT_TYPE, body = String),
        openapi::NoErrors,
    )
)]
async fn metrics<N: NodeView>(State(api): State<Api<N>>) -> Response {
    let blobs = api
        .blobs
        .as_ref()
        .map(|store| crate::metrics::BlobStoreCounts {
            commits: store.commits(),
            writes: store.writes(),
        });
    let text = crate::metrics::exposition(&api.node.metrics(), &api.metrics, blobs);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this node's API.", body = Object),
        openapi::NoErrors,
    )
)]
async fn openapi_document<N: NodeView>(State(api): State<Api<N>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        api.openapi.clone(),
    )
        .into_response()
}

/// The dashboard: chain, committee, providers, the book, jobs with their live progress, apps
/// and accounts, read from this API in the browser.
#[utoipa::path(
    get,
    path = "/",
    responses(
        (status = 200, description = "The dashboard's HTML page.", content_type = dashboard::HTML, body = String),
        openapi::NoErrors,
    )
)]
async fn dashboard_page<N: NodeView>(State(_): State<Api<N>>) -> Response {
    dashboard::index()
}

/// A file of the dashboard: its script, its style sheet, the charting library and its
/// licence.
#[utoipa::path(
    get,
    path = "/dashboard/{file}",
    params(("file" = String, Path, description = "The file's name, e.g. `dashboard.js`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = dashboard::JS),
            (String = dashboard::CSS),
            (String = dashboard::TEXT),
        )),
        openapi::DashboardErrors,
    )
)]
async fn dashboard_asset<N: NodeView>(
    State(_): State<Api<N>>,
    PathParams(file): PathParams<String>,
) -> Result<Response, ApiError> {
    dashboard::asset(&file)
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
