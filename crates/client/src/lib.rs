//! A typed async client of the Exodus node API, key files, and the outputs archive format
//! ([`outputs`], shared with the node) in which workers hand over a unit's results.
//!
//! Every endpoint of `exo-api` has a method returning the [`wire`] types (the compute market,
//! blob store and outputs are in `market.rs`); every failure is a
//! [`ClientError`] that keeps the node's own reason (its error code and message) when the node
//! refused the request. The CLI, workers and dashboards reach a node only through this crate.
//!
//! This crate must never depend on the server or the chain (only on `exo-api`'s wire types),
//! nor on OpenSSL: TLS is rustls.

pub mod keyfile;
mod market;
pub mod sse;
mod staking;

pub use exo_api::{outputs, wire};
pub use market::blob_hash;

use exo_types::{Address, SignedTx, TxHash, address_to_hex};
use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::{collections::VecDeque, time::Duration};

/// Longest wait for one answer, unless changed with [`Client::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read, in bytes. A block with the most transactions is under 1 MiB of JSON.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest blob read, in bytes: the node's default blob bound.
pub const MAX_BLOB_BYTES: usize = 64 * 1024 * 1024;
/// Shortest wait for a blob transfer: a 64 MiB blob needs more than a JSON answer.
const MIN_BLOB_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest single event read from the event stream, in bytes.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// Longest pause between two polls of [`Client::wait_for_receipt`].
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not a node URL (expected http://host:port)")]
    BadUrl(String),
    #[error("node {url} is unreachable")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("node {url} did not answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    /// The node refused the request; `code` is its stable error code.
    #[error("{message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from node {url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("transaction {hash} is not finalized after {waited_ms} ms (last seen: {last_seen})")]
    ReceiptTimeout {
        hash: String,
        waited_ms: u64,
        /// `pending` if the node still had it in its mempool, `unknown` otherwise.
        last_seen: &'static str,
    },
}

impl ClientError {
    /// The node's error code, when the node refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the node answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

/// An event of `GET /v1/events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A block was finalized.
    Block(Box<wire::Block>),
    /// A replica was assigned by a finalized block's batch match (sent after its block).
    Assignment(wire::AssignmentEvent),
    /// This client fell behind and missed `skipped` blocks.
    Lagged { skipped: u64 },
}

/// A client of one node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client of the node at `url`, such as `http://127.0.0.1:8080` (a bare `host:port`
    /// means plain HTTP).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Self::with_headers(url, reqwest::header::HeaderMap::new())
    }

    /// A client a node uses to ask another node for blobs and outputs on behalf of its own
    /// clients: its requests carry [`wire::PEER_HEADER`], so the other node answers from its
    /// own store alone.
    pub fn peer(url: &str) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            wire::PEER_HEADER,
            reqwest::header::HeaderValue::from_static("1"),
        );
        Self::with_headers(url, headers)
    }

    fn with_headers(url: &str, headers: reqwest::header::HeaderMap) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let url_text = url.trim();
        let url_text = if url_text.contains("://") {
            url_text.to_string()
        } else {
            format!("http://{url_text}")
        };
        let mut base = Url::parse(&url_text).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(bad());
        }
        // Paths below are joined relative to the base, which must end in a slash.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // No client-wide timeout: the event stream is open-ended. Each request sets its own.
        // A node closes a kept-alive connection after 10 s without a request (its header
        // timeout). A client whose runtime did not run meanwhile has not seen that close, and
        // reusing the connection fails the request ("connection closed before message
        // completed"): never reuse one idle for longer than half of that.
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|_| bad())?;
        Ok(Self {
            base,
            http,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The node's URL as displayed in errors.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|_| ClientError::BadUrl(format!("{}{path}", self.base)))
    }

    fn transport(&self, err: reqwest::Error) -> ClientError {
        if err.is_timeout() {
            ClientError::Timeout {
                url: self.url().to_string(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }
        } else if err.is_connect() || err.is_request() {
            ClientError::Unreachable {
                url: self.url().to_string(),
                source: err,
            }
        } else {
            self.protocol(err.to_string())
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            url: self.url().to_string(),
            detail: detail.into(),
        }
    }

    fn blob_timeout(&self) -> Duration {
        self.timeout.max(MIN_BLOB_TIMEOUT)
    }

    /// Reads a whole answer body of at most `max` bytes.
    async fn read_limited(
        &self,
        mut response: reqwest::Response,
        max: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if bytes.len() + chunk.len() > max {
                return Err(self.protocol(format!("answer is over the {max}-byte limit")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Sends a request and reads the whole answer, bounded by [`MAX_RESPONSE_BYTES`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self
            .http
            .request(method, self.endpoint(path)?)
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = self.read_limited(response, MAX_RESPONSE_BYTES).await?;
        Ok((status, bytes))
    }

    /// Turns an error answer into [`ClientError::Api`], keeping the node's reason.
    fn refusal(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<wire::ErrorBody>(bytes) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error,
                message: body.message,
            },
            Err(_) => {
                let text: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
                ClientError::Api {
                    status: status.as_u16(),
                    code: format!("http_{}", status.as_u16()),
                    message: if text.trim().is_empty() {
                        status.to_string()
                    } else {
                        text
                    },
                }
            }
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.call(method, path, body).await?;
        if !status.is_success() {
            return Err(self.refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(format!("{path}: {e}")))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<wire::Status, ClientError> {
        self.json(Method::GET, "v1/status", None).await
    }

    /// `POST /v1/txs`: submits a signed transaction; the node answers its hash once it is in
    /// the mempool.
    pub async fn submit(&self, tx: &SignedTx) -> Result<TxHash, ClientError> {
        use commonware_codec::Encode;
        let body = wire::SubmitRequest {
            tx: hex::encode(tx.encode()),
        };
        let body = serde_json::to_string(&body).map_err(|e| self.protocol(e.to_string()))?;
        let answer: wire::SubmitResponse = self.json(Method::POST, "v1/txs", Some(body)).await?;
        if answer.hash != tx.hash() {
            return Err(self.protocol("node answered another transaction hash"));
        }
        Ok(answer.hash)
    }

    /// `GET /v1/txs/{hash}`: the receipt, a pending marker, or `None` if the node does not
    /// know the transaction.
    pub async fn receipt(&self, hash: &TxHash) -> Result<Option<wire::Receipt>, ClientError> {
        let path = format!("v1/txs/{}", wire::digest_to_hex(hash));
        match self.json(Method::GET, &path, None).await {
            Ok(receipt) => Ok(Some(receipt)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /v1/accounts/{address}`: finalized balance and next nonce.
    pub async fn account(&self, address: &Address) -> Result<wire::Account, ClientError> {
        let path = format!("v1/accounts/{}", address_to_hex(address));
        self.json(Method::GET, &path, None).await
    }

    /// `GET /v1/blocks/{height}`, or `None` if the block is not finalized on the node.
    pub async fn block(&self, height: u64) -> Result<Option<wire::Block>, ClientError> {
        match self
            .json(Method::GET, &format!("v1/blocks/{height}"), None)
            .await
        {
            Ok(block) => Ok(Some(block)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, bytes) = self.call(Method::GET, "metrics", None).await?;
        if !status.is_success() {
            return Err(self.refusal(status, &bytes));
        }
        String::from_utf8(bytes).map_err(|_| self.protocol("metrics are not UTF-8"))
    }

    /// `GET /v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, "v1/openapi.json", None).await
    }

    /// `GET /v1/events`: finalized blocks and their assignments as they come. The stream ends
    /// when the node closes it; it yields an error and ends if the stream breaks.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        self.events_for(None).await
    }

    /// `GET /v1/events?provider=ID`: like [`Client::events`], with only `provider`'s
    /// assignments when it is given.
    pub async fn events_for(
        &self,
        provider: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        match provider {
            Some(id) => self.event_stream(&format!("v1/events?provider={id}")).await,
            None => self.event_stream("v1/events").await,
        }
    }

    /// `GET /v1/events?assignments=false`: finalized blocks only, without their assignments.
    /// A node older than the parameter refuses it (`bad_query`): its whole stream is followed
    /// instead, whose blocks are the same (with assignments among them).
    pub async fn blocks(
        &self,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        match self.event_stream("v1/events?assignments=false").await {
            Err(ClientError::Api { code, .. }) if code == "bad_query" => {
                self.event_stream("v1/events").await
            }
            stream => stream,
        }
    }

    async fn event_stream(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        // Only connecting is bounded by the timeout: the stream itself is open-ended.
        let response = tokio::time::timeout(
            self.timeout,
            self.http
                .get(self.endpoint(path)?)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .send(),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            url: self.url().to_string(),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        })?
        .map_err(|e| self.transport(e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            return Err(self.refusal(status, &bytes));
        }
        let this = self.clone();
        let state = (
            response.bytes_stream().boxed(),
            sse::SseParser::new(MAX_EVENT_BYTES),
            VecDeque::<Result<Event, ClientError>>::new(),
            false,
        );
        Ok(futures::stream::unfold(
            state,
            move |(mut bytes, mut parser, mut queue, mut done)| {
                let this = this.clone();
                async move {
                    loop {
                        if let Some(item) = queue.pop_front() {
                            return Some((item, (bytes, parser, queue, done)));
                        }
                        if done {
                            return None;
                        }
                        match bytes.next().await {
                            None => return None,
                            Some(Err(err)) => {
                                done = true;
                                queue.push_back(Err(this.transport(err)));
                            }
                            Some(Ok(chunk)) => match parser.push(&chunk) {
                                Ok(events) => {
                                    for raw in events {
                                        if let Some(event) = this.decode_event(raw) {
                                            queue.push_back(event);
                                        }
                                    }
                                }
                                Err(err) => {
                                    done = true;
                                    queue.push_back(Err(this.protocol(err.to_string())));
                                }
                            },
                        }
                    }
                }
            },
        ))
    }

    fn decode_event(&self, raw: sse::RawEvent) -> Option<Result<Event, ClientError>> {
        let bad = |e: serde_json::Error| self.protocol(format!("{} event: {e}", raw.event));
        match raw.event.as_str() {
            "block" => Some(
                serde_json::from_str::<wire::Block>(&raw.data)
                    .map(|block| Event::Block(Box::new(block)))
                    .map_err(bad),
            ),
            "assignment" => Some(
                serde_json::from_str::<wire::AssignmentEvent>(&raw.data)
                    .map(Event::Assignment)
                    .map_err(bad),
            ),
            "lagged" => Some(
                serde_json::from_str::<wire::Lagged>(&raw.data)
                    .map(|l| Event::Lagged { skipped: l.skipped })
                    .map_err(bad),
            ),
            // Events this client does not know are skipped, so the node can add new ones.
            _ => None,
        }
    }

    /// Polls `GET /v1/txs/{hash}` until the transaction is in a finalized block (its status is
    /// `ok` or `rejected`) or `timeout` runs out.
    pub async fn wait_for_receipt(
        &self,
        hash: &TxHash,
        timeout: Duration,
    ) -> Result<wire::Receipt, ClientError> {
        let start = tokio::time::Instant::now();
        let mut interval = Duration::from_millis(100);
        loop {
            let last_seen = match self.receipt(hash).await? {
                Some(receipt) if receipt.status.is_final() => return Ok(receipt),
                Some(_) => "pending",
                None => "unknown",
            };
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(ClientError::ReceiptTimeout {
                    hash: wire::digest_to_hex(hash),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    last_seen,
                });
            }
            tokio::time::sleep(interval.min(timeout - waited)).await;
            interval = (interval * 2).min(MAX_POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalized() {
        assert_eq!(
            Client::new("http://127.0.0.1:8080").unwrap().url(),
            "http://127.0.0.1:8080"
        );
        let nested = Client::new("https://node.example/exo").unwrap();
        assert_eq!(
            nested.endpoint("v1/status").unwrap().as_str(),
            "https://node.example/exo/v1/status"
        );
        assert_eq!(
            Client::new("localhost:9000").unwrap().url(),
            "http://localhost:9000"
        );
        for bad in ["", "ftp://x", "http://", "http://x/?a=1", "not a url"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
