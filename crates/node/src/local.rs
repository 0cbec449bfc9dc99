//! A network of validators inside this process, for benchmarks and tests: each validator on its
//! own Commonware tokio runtime and thread, with authenticated TCP over 127.0.0.1 and its own
//! storage, as separate processes would have. Optionally each also serves the HTTP API with a
//! blob store, so that real clients (workers, requesters) can use it.

use crate::{
    NodeConfig,
    api::{PeerApis, serve_with_blobs},
    devnet::DevnetLayout,
    node::{self, MetricsSource, Validator},
};
use anyhow::{Context, anyhow};
use std::{
    path::PathBuf,
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::sync::watch;

pub use exo_api::ApiLimits;

/// How long validators get to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes each validator's blob store keeps.
const BLOB_STORE_BYTES: u64 = 1 << 30;

/// The validators of a [`DevnetLayout`] running in this process; dropping it stops them.
pub struct LocalNetwork {
    /// Handles in the layout's order.
    pub validators: Vec<Arc<Validator>>,
    pub metrics: Vec<MetricsSource>,
    /// The validators' API URLs (served only when started with API limits).
    pub api_urls: Vec<String>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl LocalNetwork {
    /// Starts every validator of `layout`. With `api`, each serves its HTTP API with those
    /// limits and a blob store under its data directory.
    pub fn start(layout: &DevnetLayout, api: Option<ApiLimits>) -> anyhow::Result<Self> {
        Self::start_configs(&layout.configs, api)
    }

    /// Starts the node of each configuration in `configs` (a devnet's validators, or nodes
    /// that joined it), as [`Self::start`] does.
    pub fn start_configs(configs: &[PathBuf], api: Option<ApiLimits>) -> anyhow::Result<Self> {
        let (stop, _) = watch::channel(false);
        let (handles_tx, handles_rx) = mpsc::channel::<(usize, Arc<Validator>, MetricsSource)>();
        let mut threads = Vec::new();
        let mut api_urls = Vec::with_capacity(configs.len());
        for (i, path) in configs.iter().enumerate() {
            let config = NodeConfig::load(path)?;
            api_urls.push(format!("http://{}", config.api_listen));
            let blobs = match api {
                Some(_) => {
                    let dir = config.data_dir.join("blobs");
                    Some(
                        exo_api::BlobStore::open(&dir, BLOB_STORE_BYTES)
                            .with_context(|| format!("cannot open {}", dir.display()))?,
                    )
                }
                None => None,
            };
            let peers = PeerApis::new(&config.blob_peers)?;
            let handles_tx = handles_tx.clone();
            let mut stopped = stop.subscribe();
            threads.push(std::thread::spawn(move || {
                node::run(config, move |validator, info| async move {
                    let _ = handles_tx.send((i, validator.clone(), info.metrics.clone()));
                    let shutdown = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    match api {
                        Some(limits) => {
                            serve_with_blobs(validator, info, limits, blobs, Some(peers), shutdown)
                                .await
                        }
                        None => {
                            shutdown.await;
                            Ok(())
                        }
                    }
                })
            }));
        }
        drop(handles_tx);
        let mut started: Vec<(usize, Arc<Validator>, MetricsSource)> = Vec::new();
        let deadline = Instant::now() + START_TIMEOUT;
        while started.len() < configs.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match handles_rx.recv_timeout(left) {
                Ok(handle) => started.push(handle),
                Err(_) => {
                    let _ = stop.send(true);
                    let mut why = String::from("validators did not start");
                    for t in threads {
                        if t.is_finished()
                            && let Ok(Err(err)) = t.join()
                        {
                            why = format!("a validator failed to start: {err:#}");
                        }
                    }
                    return Err(anyhow!(why));
                }
            }
        }
        started.sort_by_key(|(i, _, _)| *i);
        let (validators, metrics) = started.into_iter().map(|(_, v, m)| (v, m)).unzip();
        Ok(Self {
            validators,
            metrics,
            api_urls,
            stop,
            threads,
        })
    }

    /// Waits until every validator finalized `height`.
    pub fn wait_finalized(&self, height: u64, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self
            .validators
            .iter()
            .any(|v| v.events.status().finalized_height < height)
        {
            if start.elapsed() > limit {
                return Err(anyhow!("validators did not reach height {height}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops every validator and waits for their threads.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.validators.clear();
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => result = Err(err),
                Err(_) => result = Err(anyhow!("a validator thread panicked")),
            }
        }
        result
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
