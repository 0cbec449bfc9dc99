//! Blob downloads for the worker: streamed to disk with a size bound, resumed with a range
//! request after an interruption, and verified against their BLAKE3 name before they are used.
//! Everything else the worker asks a node goes through `exo-client`.

use exo_types::Hash32;
use reqwest::{StatusCode, Url, header};
use std::{io::Write, path::Path, time::Duration};

/// Longest wait for one blob transfer.
const BLOB_TIMEOUT: Duration = Duration::from_secs(600);

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

/// Blob downloads from one node.
#[derive(Clone, Debug)]
pub struct NodeApi {
    base: Url,
    http: reqwest::Client,
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
        crate::store::rename_durably(&part, dest)?;
        Ok(())
    }
}
