//! The axum router: routes, limits, metrics and the server loop.

use crate::{
    ApiError, ApiLimits, NodeView,
    limits::RateLimiter,
    metrics::{ApiMetrics, StreamSlot},
    openapi, service, wire,
};
use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, MatchedPath, Path, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use exo_chain::FinalizedBlock;
use futures::Stream;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};
use tokio::sync::broadcast::{self, error::RecvError};
use tower_http::catch_panic::CatchPanicLayer;

/// What every handler shares.
#[derive(Clone)]
struct Api<N> {
    node: N,
    limits: ApiLimits,
    metrics: ApiMetrics,
    limiter: RateLimiter,
}

/// The API's routes over `node`.
///
/// Per-IP rate limiting needs the peer address: serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` (as [`serve`] does); without it all
/// clients share one bucket.
pub fn router<N: NodeView>(node: N, limits: ApiLimits) -> Router {
    let api = Api {
        node,
        limits,
        metrics: ApiMetrics::default(),
        limiter: RateLimiter::new(limits),
    };
    Router::new()
        .route("/v1/status", get(status::<N>))
        .route("/v1/txs", post(submit::<N>))
        .route("/v1/txs/{hash}", get(receipt::<N>))
        .route("/v1/accounts/{address}", get(account::<N>))
        .route("/v1/blocks/{height}", get(block::<N>))
        .route("/v1/events", get(events::<N>))
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router(node, limits).into_make_service_with_connect_info::<SocketAddr>(),
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
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = api
        .metrics
        .open_stream(api.limits.max_event_streams)
        .ok_or(ApiError::TooManyStreams(api.limits.max_event_streams))?;
    Ok(Sse::new(block_events(api.node.subscribe(), slot)).keep_alive(KeepAlive::default()))
}

/// One `block` event per finalized block, a `lagged` event when the subscriber fell behind.
/// The stream holds its slot until the client goes away.
fn block_events(
    receiver: broadcast::Receiver<FinalizedBlock>,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((receiver, slot), |(mut receiver, slot)| async move {
        let event = match receiver.recv().await {
            Ok(block) => Event::default()
                .event("block")
                .id(block.height.to_string())
                .json_data(service::block_json(&block)),
            Err(RecvError::Lagged(skipped)) => Event::default()
                .event("lagged")
                .json_data(wire::Lagged { skipped }),
            Err(RecvError::Closed) => return None,
        };
        // Serializing these plain structs cannot fail; if it ever did, say so in the stream.
        let event = event.unwrap_or_else(|_| Event::default().event("error").data("encoding"));
        Some((Ok(event), (receiver, slot)))
    })
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
