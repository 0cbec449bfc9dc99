//! Typed calls to the node routes the worker needs beyond `exo-client`'s: its provider id, its
//! open replicas, blobs, output uploads, a unit's replicas (for the `copy` misbehaviour) and the
//! event stream filtered to its provider.
//!
//! The JSON is read leniently (unknown fields are ignored, a few alternative field names are
//! accepted) so that the worker keeps working while these routes settle; once `exo-client`
//! covers them the worker will use it instead.

use crate::commit::parse_hash;
use exo_types::{Address, Hash32, address_to_hex};
use futures::StreamExt;
use reqwest::{Method, StatusCode, Url, header};
use serde::Deserialize;
use std::{io::Write, path::Path, time::Duration};

/// Longest wait for one ordinary answer.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one blob transfer.
const BLOB_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest JSON answer read.
const MAX_JSON_BYTES: usize = 16 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("node {0} unreachable: {1}")]
    Transport(String, String),
    #[error("{path}: {status} {code}: {message}")]
    Status {
        path: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("blob {0} does not have the hash it is named by")]
    HashMismatch(String),
    #[error("blob {hash} is over its declared {max} bytes")]
    TooLarge { hash: String, max: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CallError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }
}

/// One input of a unit, as `/work` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WorkInput {
    pub name: String,
    pub hash: String,
    #[serde(default)]
    pub size: u64,
}

/// One open replica of this provider, as `GET /v1/providers/{id}/work` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WorkItem {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    /// `assigned`, `committed` or `revealed`.
    pub status: String,
    pub commit_deadline: u64,
    #[serde(default)]
    pub reveal_open: bool,
    #[serde(default)]
    pub reveal_deadline: Option<u64>,
    /// Hex BLAKE3 of the app's wasm module.
    #[serde(alias = "app_hash", alias = "module_hash", alias = "module")]
    pub app: String,
    #[serde(default)]
    pub inputs: Vec<WorkInput>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    pub fuel_limit: u64,
    #[serde(default = "default_memory", alias = "memory", alias = "min_memory_mib")]
    pub memory_mib: u64,
    /// Base units per compute unit.
    #[serde(default, alias = "price_per_unit")]
    pub price: Option<String>,
}

fn default_memory() -> u64 {
    512
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WorkAnswer {
    List(Vec<WorkItem>),
    Wrapped {
        #[serde(alias = "items", alias = "replicas")]
        work: Vec<WorkItem>,
    },
}

/// A revealed result of another replica of a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revealed {
    pub replica: u32,
    pub digest: Hash32,
    pub fuel: u64,
}

/// Where an outputs archive went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// `PUT /v1/outputs/{job}/{unit}` took it.
    Outputs,
    /// The node has no outputs route; it went to the blob store.
    Blob,
}

/// The node's routes for workers.
#[derive(Clone, Debug)]
pub struct NodeApi {
    base: Url,
    http: reqwest::Client,
}

fn u64_field(v: &serde_json::Value, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| {
        let f = v.get(n)?;
        f.as_u64().or_else(|| f.as_str()?.parse().ok())
    })
}

impl NodeApi {
    /// A client of the node at `url` (`http://host:port`, or a bare `host:port`).
    pub fn new(url: &str) -> Result<Self, CallError> {
        let text = if url.contains("://") {
            url.trim().to_string()
        } else {
            format!("http://{}", url.trim())
        };
        let mut base =
            Url::parse(&text).map_err(|_| CallError::Protocol(format!("{url:?} is not a URL")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        Ok(Self { base, http })
    }

    fn url(&self, path: &str) -> Result<Url, CallError> {
        self.base
            .join(path)
            .map_err(|_| CallError::Protocol(format!("bad path {path}")))
    }

    fn transport(&self, e: reqwest::Error) -> CallError {
        CallError::Transport(self.base.to_string(), e.to_string())
    }

    async fn refusal(path: &str, response: reqwest::Response) -> CallError {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let field = |n: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(n))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        CallError::Status {
            path: path.to_string(),
            status,
            code: field("error").unwrap_or_else(|| format!("http_{status}")),
            message: field("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
        }
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value, CallError> {
        let response = self
            .http
            .get(self.url(path)?)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(Self::refusal(path, response).await);
        }
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if bytes.len() + chunk.len() > MAX_JSON_BYTES {
                return Err(CallError::Protocol(format!("{path}: answer too large")));
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Protocol(format!("{path}: {e}")))
    }

    /// `GET /v1/accounts/{address}/provider`: the provider id of `address`, if it has one.
    pub async fn provider_of(&self, address: &Address) -> Result<Option<u64>, CallError> {
        let path = format!("v1/accounts/{}/provider", address_to_hex(address));
        match self.get_json(&path).await {
            Ok(v) => {
                let id = v
                    .as_u64()
                    .or_else(|| u64_field(&v, &["id", "provider", "provider_id"]))
                    .ok_or_else(|| CallError::Protocol(format!("{path}: no provider id")))?;
                Ok(Some(id))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/providers/{id}/work`: the provider's open replicas.
    pub async fn work(&self, provider: u64) -> Result<Vec<WorkItem>, CallError> {
        let path = format!("v1/providers/{provider}/work");
        let v = self.get_json(&path).await?;
        let answer: WorkAnswer =
            serde_json::from_value(v).map_err(|e| CallError::Protocol(format!("{path}: {e}")))?;
        Ok(match answer {
            WorkAnswer::List(w) | WorkAnswer::Wrapped { work: w } => w,
        })
    }

    /// `GET /v1/jobs/{job}/units/{unit}`: the revealed results of the unit's replicas (for the
    /// `copy` misbehaviour). `None` if the node has no such route or unit.
    pub async fn revealed(&self, job: u64, unit: u32) -> Result<Option<Vec<Revealed>>, CallError> {
        let path = format!("v1/jobs/{job}/units/{unit}");
        let v = match self.get_json(&path).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let replicas = v
            .get("replicas")
            .and_then(|r| r.as_array())
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for r in replicas {
            let reveal = r.get("reveal").unwrap_or(&r);
            let digest = reveal
                .get("digest")
                .and_then(|d| d.as_str())
                .and_then(parse_hash);
            let fuel = u64_field(reveal, &["fuel"]);
            let replica = u64_field(&r, &["replica", "index"]).and_then(|i| u32::try_from(i).ok());
            if let (Some(digest), Some(fuel), Some(replica)) = (digest, fuel, replica) {
                out.push(Revealed {
                    replica,
                    digest,
                    fuel,
                });
            }
        }
        Ok(Some(out))
    }

    /// Downloads blob `hash` of at most `max` bytes to `dest`, verifying its BLAKE3 hash: the
    /// file appears at `dest` only if it matches. A partial download left by an interruption
    /// (`dest` + `.part`) is resumed with a range request.
    pub async fn download_blob(
        &self,
        hash: &Hash32,
        max: u64,
        dest: &Path,
    ) -> Result<(), CallError> {
        let hex_hash = hex::encode(hash);
        let path = format!("v1/blobs/{hex_hash}");
        let part = dest.with_extension("part");
        let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have > max {
            std::fs::remove_file(&part)?;
            have = 0;
        }
        let mut request = self.http.get(self.url(&path)?).timeout(BLOB_TIMEOUT);
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if !status.is_success() {
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                let _ = std::fs::remove_file(&part);
            }
            return Err(Self::refusal(&path, response).await);
        }
        let resumed = status == StatusCode::PARTIAL_CONTENT && have > 0;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(&part)?;
        let mut written = if resumed { have } else { 0 };
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            written += chunk.len() as u64;
            if written > max {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(CallError::TooLarge {
                    hash: hex_hash,
                    max,
                });
            }
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        drop(file);
        // Verify the whole file, resumed part included, before it is used.
        let bytes = std::fs::read(&part)?;
        if blake3::hash(&bytes).as_bytes() != hash {
            let _ = std::fs::remove_file(&part);
            return Err(CallError::HashMismatch(hex_hash));
        }
        std::fs::rename(&part, dest)?;
        Ok(())
    }

    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), CallError> {
        let response = self
            .http
            .request(Method::PUT, self.url(path)?)
            .timeout(BLOB_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(Self::refusal(path, response).await);
        }
        Ok(())
    }

    /// `PUT /v1/blobs`: stores `bytes` under their BLAKE3 hash.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<(), CallError> {
        self.put("v1/blobs", bytes).await
    }

    /// Uploads a unit's outputs archive to the blob store, then names it for the unit with
    /// `PUT /v1/outputs/{job}/{unit}` (`{"archive": "<blake3 hex>"}`). A node without the
    /// outputs route keeps the blob only.
    pub async fn put_outputs(
        &self,
        job: u64,
        unit: u32,
        archive: Vec<u8>,
    ) -> Result<Uploaded, CallError> {
        let hash = hex::encode(blake3::hash(&archive).as_bytes());
        self.put_blob(archive).await?;
        let path = format!("v1/outputs/{job}/{unit}");
        let body = serde_json::json!({ "archive": hash }).to_string();
        let response = self
            .http
            .request(Method::PUT, self.url(&path)?)
            .timeout(BLOB_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        match response.status().as_u16() {
            200..=299 => Ok(Uploaded::Outputs),
            404 | 405 => Ok(Uploaded::Blob),
            _ => Err(Self::refusal(&path, response).await),
        }
    }

    /// Opens `GET /v1/events?provider={id}` and sends `()` on `tick` for every `block` or
    /// `assignment` event until the stream ends or breaks.
    pub async fn follow_events(
        &self,
        provider: u64,
        tick: &tokio::sync::mpsc::Sender<()>,
    ) -> Result<(), CallError> {
        let path = format!("v1/events?provider={provider}");
        let response = tokio::time::timeout(
            TIMEOUT,
            self.http
                .get(self.url(&path)?)
                .header(header::ACCEPT, "text/event-stream")
                .send(),
        )
        .await
        .map_err(|_| CallError::Transport(self.base.to_string(), "timed out".into()))?
        .map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(Self::refusal(&path, response).await);
        }
        let mut parser = exo_client::sse::SseParser::new(4 << 20);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            let events = parser
                .push(&chunk)
                .map_err(|e| CallError::Protocol(e.to_string()))?;
            if events
                .iter()
                .any(|e| e.event == "block" || e.event == "assignment")
            {
                // A full channel already holds a tick: nothing is lost by dropping this one.
                let _ = tick.try_send(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn work_items_are_read_leniently() {
        let item = serde_json::json!({
            "job": 1, "unit": 2, "replica": 0, "status": "assigned",
            "commit_deadline": 700, "reveal_open": false, "reveal_deadline": null,
            "app": "00".repeat(32),
            "inputs": [{"name": "a.txt", "hash": "11".repeat(32), "size": 3}],
            "args": ["x", "y"], "fuel_limit": 1000, "memory_mib": 64, "price": "5",
            "something_new": true
        });
        let list: WorkAnswer = serde_json::from_value(serde_json::json!([item.clone()])).unwrap();
        let wrapped: WorkAnswer =
            serde_json::from_value(serde_json::json!({"provider": 3, "work": [item]})).unwrap();
        for answer in [list, wrapped] {
            let (WorkAnswer::List(w) | WorkAnswer::Wrapped { work: w }) = answer;
            assert_eq!(w.len(), 1);
            assert_eq!(w[0].inputs[0].size, 3);
            assert_eq!(
                w[0].args.as_deref(),
                Some(&["x".to_string(), "y".to_string()][..])
            );
        }
        let minimal: WorkItem = serde_json::from_value(serde_json::json!({
            "job": 1, "unit": 2, "replica": 0, "status": "committed", "commit_deadline": 9,
            "module_hash": "00".repeat(32), "fuel_limit": 5, "memory": 32
        }))
        .unwrap();
        assert_eq!(
            (minimal.memory_mib, minimal.args, minimal.reveal_open),
            (32, None, false)
        );
    }
}
