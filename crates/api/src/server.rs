//! The axum router: routes, limits, metrics and the server loop.

use crate::{
    ApiError, ApiLimits, BlobStore, NodeView, PeerBlobs, blobs,
    limits::RateLimiter,
    market::{self, Query},
    metrics::{ApiMetrics, StreamSlot},
    openapi, service, wire,
};
use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, MatchedPath, Path, RawQuery, Request, State},
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
use std::{
    collections::VecDeque, convert::Infallible, future::Future, net::SocketAddr, sync::Arc,
    time::Duration,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tower_http::catch_panic::CatchPanicLayer;

/// What every handler shares.
#[derive(Clone)]
struct Api<N> {
    node: N,
    limits: ApiLimits,
    metrics: ApiMetrics,
    limiter: RateLimiter,
    blobs: Option<BlobStore>,
    peers: Option<Arc<dyn PeerBlobs>>,
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
        blobs: config.blobs,
        peers: config.peers,
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
        .layer(middleware::from_fn_with_state(api.clone(), rate_limit::<N>))
        .layer(middleware::from_fn_with_state(api.clone(), count::<N>))
        .layer(CatchPanicLayer::custom(panicked))
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
pub async fn serve_with<N: NodeView>(
    listener: tokio::net::TcpListener,
    node: N,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace_ms: u64,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router_with(node, config).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {
            let _ = stop.send(());
        }
    }
    match tokio::time::timeout(Duration::from_millis(grace_ms), server).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn status<N: NodeView>(State(api): State<Api<N>>) -> Json<wire::Status> {
    Json(api.node.status())
}

async fn submit<N: NodeView>(
    State(api): State<Api<N>>,
    body: Body,
) -> Result<(StatusCode, Json<wire::SubmitResponse>), ApiError> {
    let result = match read_body(body, api.limits.max_body_bytes).await {
        Ok(bytes) => service::admit(&api.node, &api.limits, &bytes).await,
        Err(err) => Err(err),
    };
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
    Path(hash): Path<String>,
) -> Result<Json<wire::Receipt>, ApiError> {
    service::receipt(&api.node, &api.limits, &hash)
        .await
        .map(Json)
}

async fn account<N: NodeView>(
    State(api): State<Api<N>>,
    Path(address): Path<String>,
) -> Result<Json<wire::Account>, ApiError> {
    service::account(&api.node, &api.limits, &address)
        .await
        .map(Json)
}

async fn block<N: NodeView>(
    State(api): State<Api<N>>,
    Path(height): Path<String>,
) -> Result<Json<wire::Block>, ApiError> {
    service::block(&api.node, &api.limits, &height)
        .await
        .map(Json)
}

async fn events<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = Query::parse(query.as_deref())?;
    query.only(&["provider"])?;
    let provider = query.u64("provider")?;
    let slot = api
        .metrics
        .open_stream(api.limits.max_event_streams)
        .ok_or(ApiError::TooManyStreams(api.limits.max_event_streams))?;
    let receiver = api.node.subscribe();
    Ok(Sse::new(chain_events(api, receiver, slot, provider)).keep_alive(KeepAlive::default()))
}

/// One `block` event per finalized block, followed by one `assignment` event per replica its
/// batch match assigned (only `provider`'s, if given); a `lagged` event when the subscriber
/// fell behind. The stream holds its slot until the client goes away.
fn chain_events<N: NodeView>(
    api: Api<N>,
    receiver: broadcast::Receiver<FinalizedBlock>,
    slot: StreamSlot,
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
    Path(address): Path<String>,
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
    Path(id): Path<String>,
) -> Result<Json<wire::Provider>, ApiError> {
    market::provider(&api.node, &api.limits, &id)
        .await
        .map(Json)
}

async fn work<N: NodeView>(
    State(api): State<Api<N>>,
    Path(id): Path<String>,
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
    Path(id): Path<String>,
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
    Path((hash, developer)): Path<(String, String)>,
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

/// `PUT /v1/blobs[?hash=HEX]`: stores the body. Its bound is the blob bound, not the
/// transaction bound; a declared length over it is refused before a byte is read.
async fn put_blob<N: NodeView>(
    State(api): State<Api<N>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<wire::BlobStored>), ApiError> {
    let store = store(&api)?;
    let query = Query::parse(query.as_deref())?;
    query.only(&["hash"])?;
    let expected = query.text("hash").map(content_hash).transpose()?;
    let max = api.limits.max_blob_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::BlobTooLarge { max });
    }
    let stored = store.put(body, max, expected).await?;
    Ok((StatusCode::CREATED, Json(stored)))
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

/// `GET /v1/blobs/{hash}`, with `Range: bytes=a-b` (206) support. The blob is hashed again
/// before any byte is served.
async fn get_blob<N: NodeView>(
    State(api): State<Api<N>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = store(&api)?;
    let hash = content_hash(&hash)?;
    let size = match store.verify(&hash).await {
        Err(ApiError::NotFound(_)) if pull_blob(&api, store, &hash, &headers).await? => {
            store.verify(&hash).await?
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
    let mut response = Response::new(store.stream(&hash, start, len).await?);
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
    Path(hash): Path<String>,
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
    Path((job, unit)): Path<(String, String)>,
    body: Body,
) -> Result<Json<wire::Outputs>, ApiError> {
    let store = store(&api)?;
    let bytes = read_body(body, api.limits.max_body_bytes).await?;
    market::put_outputs(&api.node, &api.limits, store, &job, &unit, &bytes)
        .await
        .map(Json)
}

async fn get_outputs<N: NodeView>(
    State(api): State<Api<N>>,
    Path((job, unit)): Path<(String, String)>,
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
    let max = api.limits.max_blob_bytes;
    let Some(bytes) = peers.blob(*hash, max).await else {
        return Ok(false);
    };
    match store.put(Body::from(bytes), max, Some(*hash)).await {
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
    let body = serde_json::to_vec(&wire::OutputsPut { archive })
        .map_err(|e| ApiError::Internal(format!("outputs body: {e}")))?;
    market::put_outputs(&api.node, &api.limits, store, job, unit, &body).await?;
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

/// Refuses requests over the client's rate. The metrics endpoint is exempt, so that a scraper
/// never competes with clients.
async fn rate_limit<N: NodeView>(
    State(api): State<Api<N>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/metrics" {
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        if let Err(retry_after_secs) = api.limiter.check(client) {
            return ApiError::RateLimited { retry_after_secs }.into_response();
        }
    }
    next.run(request).await
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
