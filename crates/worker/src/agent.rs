//! The worker's loop: keep the provider registered and an offer on the book, follow the
//! assigned replicas, run them, upload their outputs, commit, then reveal.

use crate::{
    WorkerConfig, WorkerError,
    api::{CallError, NodeApi},
    bench::Benchmark,
    commit::{Misbehave, Sealed, new_salt, unit_seed},
    nonce::{NonceCounter, Submitted},
    outputs::{archive_of, pack},
    store::{ResultRecord, Store, replica_key},
};
use commonware_codec::Encode;
use commonware_cryptography::Signer;
use exo_client::{
    Client, ClientError, Event,
    wire::{self, WorkItem},
};
use exo_exec::{Sandbox, UnitSpec};
use exo_types::{
    Action, Address, Amount, Hash32, MAX_RESULTS_PER_TX, ResultCommit, ResultReveal, UnsignedTx,
    exo_market::Resources,
};
use futures::StreamExt;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

/// Longest wait for a transaction's receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest app module fetched.
const MAX_MODULE_BYTES: u64 = 64 << 20;
/// Largest input fetched when the work list does not give its size.
const MAX_INPUT_BYTES: u64 = 1 << 30;
/// Attempts at a replica whose inputs cannot be fetched or whose run fails on the host.
const MAX_ATTEMPTS: u32 = 5;

/// A finished run (or a failure to run).
pub(crate) struct RunDone {
    key: String,
    item: WorkItem,
    result: Result<RunOutput, String>,
}

pub(crate) struct RunOutput {
    outcome: exo_exec::Outcome,
    digest: Hash32,
    fuel: u64,
    archive: Vec<u8>,
}

/// What became of a transaction.
#[derive(Debug, PartialEq, Eq)]
enum TxOutcome {
    Ok,
    /// Executed and rejected, or refused by the node; the reason was logged.
    Refused,
}

pub(crate) struct Agent {
    cfg: WorkerConfig,
    address: Address,
    client: Client,
    api: NodeApi,
    store: Store,
    sandbox: Arc<Sandbox>,
    bench: Benchmark,
    resources: Resources,
    nonce: NonceCounter,
    chain_id: String,
    min_fee: Amount,
    height: u64,
    running: HashSet<String>,
    attempts: HashMap<String, u32>,
    slots: Arc<Semaphore>,
    downloads: Downloads,
    /// Whether the stored provider id was checked against the chain since the start.
    checked_provider: bool,
    paused: Option<String>,
    /// After a rejected batch, send one result per transaction until a batch goes through.
    singles: bool,
    done: mpsc::Sender<RunDone>,
    events: Option<tokio::task::JoinHandle<()>>,
    tick: mpsc::Sender<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = self.events.take() {
            task.abort();
        }
    }
}

impl Agent {
    pub(crate) fn new(
        cfg: WorkerConfig,
        store: Store,
        sandbox: Arc<Sandbox>,
        bench: Benchmark,
        done: mpsc::Sender<RunDone>,
        tick: mpsc::Sender<()>,
    ) -> Result<Self, WorkerError> {
        let client = Client::new(&cfg.node).map_err(|e| WorkerError::Config(e.to_string()))?;
        let api = NodeApi::new(&cfg.node).map_err(|e| WorkerError::Config(e.to_string()))?;
        let resources = bench.resources(cfg.class, &cfg.region, cfg.max_unit_fuel);
        resources
            .validate()
            .map_err(|e| WorkerError::Config(format!("resources: {e}")))?;
        Ok(Self {
            address: cfg.key.public_key(),
            slots: Arc::new(Semaphore::new(cfg.slots.max(1) as usize)),
            cfg,
            client,
            api,
            store,
            sandbox,
            bench,
            resources,
            nonce: NonceCounter::default(),
            chain_id: String::new(),
            min_fee: Amount::ZERO,
            height: 0,
            running: HashSet::new(),
            attempts: HashMap::new(),
            downloads: Downloads::default(),
            checked_provider: false,
            paused: None,
            singles: false,
            done,
            events: None,
            tick,
        })
    }

    fn save(&self) {
        if let Err(err) = self.store.save() {
            // Losing the state loses reveals: say so loudly, keep working.
            warn!("cannot save the worker state: {err}");
        }
    }

    /// One pass: chain, provider, offer, work, transactions.
    pub(crate) async fn step(&mut self) -> Result<(), String> {
        let status = self.client.status().await.map_err(|e| e.to_string())?;
        self.chain_id = status.chain_id.clone();
        self.min_fee = status.min_fee;
        self.height = status.finalized_height;
        if self.store.state.chain_id.as_deref() != Some(status.chain_id.as_str()) {
            if let Some(old) = &self.store.state.chain_id {
                warn!(old = %old, new = %status.chain_id, "the node runs another chain: starting afresh");
            }
            self.store.state = crate::store::State {
                chain_id: Some(status.chain_id.clone()),
                ..crate::store::State::default()
            };
            self.checked_provider = false;
            self.save();
        }
        if self
            .store
            .state
            .offer_expiry
            .is_some_and(|e| e > self.height + self.cfg.expiry_blocks)
        {
            // The chain is lower than when the offer was posted: it was started again.
            self.store.state.offer_expiry = None;
        }
        let Some(provider) = self.ensure_provider().await? else {
            return Ok(());
        };
        self.follow_events(provider);
        self.update_idle();
        self.keep_offer().await?;
        let work = self
            .client
            .provider_work(provider)
            .await
            .map_err(|e| e.to_string())?;
        self.handle_work(&work).await
    }

    async fn ensure_provider(&mut self) -> Result<Option<u64>, String> {
        let wanted = hex::encode(self.resources.encode());
        if let Some(stored) = self.store.state.provider_id
            && !self.checked_provider
        {
            // Once per run: the chain may have been started again from its genesis.
            let found = self
                .client
                .provider_of(&self.address)
                .await
                .map_err(|e| e.to_string())?;
            if found != Some(stored) {
                warn!(
                    stored,
                    found = ?found,
                    "the chain does not know the provider this worker registered: starting afresh"
                );
                self.store.state = crate::store::State {
                    chain_id: self.store.state.chain_id.clone(),
                    ..crate::store::State::default()
                };
                self.save();
            }
            self.checked_provider = true;
        }
        if self.store.state.provider_id.is_none() {
            match self
                .client
                .provider_of(&self.address)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(id) => {
                    info!(provider = id, "found this key's provider");
                    self.store.state.provider_id = Some(id);
                    self.save();
                }
                None => {
                    info!(
                        cores = self.resources.cores,
                        cpu_score = self.resources.cpu_score,
                        memory_mib = self.resources.memory_mib,
                        "registering as a provider"
                    );
                    let action = Action::RegisterProvider {
                        resources: self.resources.clone(),
                        bond: self.cfg.bond,
                    };
                    if self.send(action).await? == TxOutcome::Ok {
                        self.store.state.registered_resources = Some(wanted.clone());
                        self.save();
                    }
                    return Ok(None);
                }
            }
        }
        if self.store.state.registered_resources.as_deref() != Some(wanted.as_str()) {
            info!("resources changed since registration: updating the provider");
            let action = Action::UpdateProvider {
                resources: self.resources.clone(),
            };
            if self.send(action).await? == TxOutcome::Ok {
                self.store.state.registered_resources = Some(wanted);
                // Offers carry the resources they were posted with: post a new one.
                self.store.state.offer_expiry = None;
                self.save();
            }
        }
        Ok(self.store.state.provider_id)
    }

    fn follow_events(&mut self, provider: u64) {
        if self.events.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let client = self.client.clone();
        let tick = self.tick.clone();
        self.events = Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match client.events_for(Some(provider)).await {
                    Ok(stream) => {
                        backoff = Duration::from_millis(250);
                        let mut stream = std::pin::pin!(stream);
                        while let Some(event) = stream.next().await {
                            match event {
                                Ok(Event::Block(_) | Event::Assignment(_)) => {
                                    // A full channel already holds a tick.
                                    let _ = tick.try_send(());
                                }
                                Ok(_) => {}
                                Err(err) => {
                                    debug!("event stream broke: {err}");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => {
                        debug!("event stream: {err}; retrying in {backoff:?}");
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        }));
    }

    fn update_idle(&mut self) {
        let Some(policy) = &self.cfg.idle_only else {
            return;
        };
        let own = (self.cfg.slots.max(1) as usize - self.slots.available_permits()) as u32;
        let readings = crate::idle::read_host(self.bench.cores, own);
        let verdict = policy.check(&readings).err().map(|r| r.to_string());
        match (&self.paused, &verdict) {
            (None, Some(why)) => info!("pausing: {why}; running units finish, the offer lapses"),
            (Some(_), None) => info!("the host is idle again: resuming"),
            _ => {}
        }
        self.paused = verdict;
    }

    async fn keep_offer(&mut self) -> Result<(), String> {
        if self.paused.is_some() {
            return Ok(());
        }
        let margin = (self.cfg.expiry_blocks / 5).max(2);
        let live = self
            .store
            .state
            .offer_expiry
            .is_some_and(|expiry| self.height + margin < expiry);
        if live {
            return Ok(());
        }
        let expiry = self.height + self.cfg.expiry_blocks.max(margin + 1);
        info!(
            slots = self.cfg.slots,
            price = %self.cfg.price_per_unit,
            expiry,
            "posting an offer"
        );
        let action = Action::PostOffer {
            slots: self.cfg.slots,
            price_per_unit: self.cfg.price_per_unit,
            expiry_height: expiry,
        };
        if self.send(action).await? == TxOutcome::Ok {
            self.store.state.offer_expiry = Some(expiry);
            self.save();
        }
        Ok(())
    }

    async fn handle_work(&mut self, work: &[WorkItem]) -> Result<(), String> {
        let open: HashSet<String> = work
            .iter()
            .map(|w| replica_key(w.job, w.unit, w.replica))
            .collect();
        // Replicas no longer open are settled: forget them and their outputs.
        let settled: Vec<String> = self
            .store
            .state
            .results
            .iter()
            .filter(|(k, r)| !open.contains(*k) && (r.committed || !self.running.contains(*k)))
            .map(|(k, _)| k.clone())
            .collect();
        if !settled.is_empty() {
            for key in &settled {
                if let Some(record) = self.store.state.results.remove(key)
                    && let Some(archive) = record.archive
                {
                    let _ = std::fs::remove_file(self.store.output_path(&archive));
                }
            }
            self.store.state.abandoned.retain(|k| open.contains(k));
            self.save();
        }
        self.upload_outputs().await;
        let mut commits: Vec<(String, ResultCommit)> = Vec::new();
        let mut reveals: Vec<(String, ResultReveal)> = Vec::new();
        for item in work {
            let key = replica_key(item.job, item.unit, item.replica);
            match item.status.as_str() {
                "assigned" => {
                    if let Some(record) = self.store.state.results.get(&key) {
                        // A commitment already executed is not sent again, even if this
                        // list is a block behind.
                        if self.height <= item.commit_deadline && !record.committed {
                            commits.push((key, record.sealed.commit(&self.address)));
                        }
                    } else if !self.store.state.abandoned.contains(&key)
                        && !self.running.contains(&key)
                        && self.height <= item.commit_deadline
                    {
                        match self.cfg.misbehave {
                            Some(Misbehave::NoShow) => {}
                            Some(Misbehave::Copy) => {
                                if let Some(c) = self.try_copy(item, &key).await {
                                    commits.push((key, c));
                                }
                            }
                            _ => self.start_run(item.clone(), key),
                        }
                    }
                }
                "committed" => {
                    let open = item.reveal_open || item.reveal_deadline.is_some();
                    match self.store.state.results.get(&key) {
                        Some(record) if open && !record.revealed => {
                            reveals.push((key, record.sealed.reveal()))
                        }
                        Some(_) => {}
                        None => {
                            if open && self.store.state.abandoned.insert(key.clone()) {
                                warn!(%key, "committed replica has no sealed result here; it cannot be revealed");
                                self.save();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !commits.is_empty() {
            self.send_results(commits, true).await?;
        }
        if !reveals.is_empty() {
            self.send_results(reveals, false).await?;
        }
        Ok(())
    }

    /// The `copy` misbehaviour: commit another replica's revealed result, if there is one.
    async fn try_copy(&mut self, item: &WorkItem, key: &str) -> Option<ResultCommit> {
        let job = match self.client.job_page(item.job, item.unit, Some(1)).await {
            Ok(Some(job)) => job,
            Ok(None) => return None,
            Err(err) => {
                debug!(%key, "cannot read the unit's replicas: {err}");
                return None;
            }
        };
        let unit = job.units.into_iter().find(|u| u.unit == item.unit)?;
        let (other, digest, fuel) = unit.replicas.iter().find_map(|r| {
            (r.index != item.replica).then_some(()).and(Some((
                r.index,
                r.revealed_digest?,
                r.revealed_fuel?,
            )))
        })?;
        info!(%key, from = other, "copying another replica's revealed result");
        let sealed = Sealed {
            job: item.job,
            unit: item.unit,
            replica: item.replica,
            digest,
            fuel,
            salt: new_salt(),
        };
        let commit = sealed.commit(&self.address);
        self.store.state.results.insert(
            key.to_string(),
            ResultRecord {
                sealed,
                outcome: "copied".into(),
                archive: None,
                uploaded: true,
                committed: false,
                revealed: false,
            },
        );
        self.save();
        Some(commit)
    }

    fn start_run(&mut self, item: WorkItem, key: String) {
        self.running.insert(key.clone());
        let api = self.api.clone();
        let sandbox = self.sandbox.clone();
        let slots = self.slots.clone();
        let done = self.done.clone();
        let blob_dir = self.store.dir().join("blobs");
        let downloads = self.downloads.clone();
        let timeout = self.bench.timeout_for(item.fuel_limit);
        debug!(%key, "starting");
        tokio::spawn(async move {
            let result = match slots.acquire_owned().await {
                Ok(_permit) => {
                    run_unit(&api, &downloads, &sandbox, &blob_dir, &item, timeout).await
                }
                Err(_) => Err("the worker is stopping".into()),
            };
            let _ = done.send(RunDone { key, item, result }).await;
        });
    }

    /// Records a finished run: seals its result and makes it durable before any commitment.
    pub(crate) fn finish_run(&mut self, done: RunDone) {
        let RunDone { key, item, result } = done;
        self.running.remove(&key);
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let n = self.attempts.entry(key.clone()).or_insert(0);
                *n += 1;
                warn!(%key, attempt = *n, "unit did not run: {err}");
                if *n >= MAX_ATTEMPTS {
                    warn!(%key, "giving up on this replica");
                    self.store.state.abandoned.insert(key);
                    self.save();
                }
                return;
            }
        };
        self.attempts.remove(&key);
        if !output.outcome.is_attestable() {
            // Machine-dependent: committing it could contradict honest replicas elsewhere.
            warn!(%key, outcome = %output.outcome, "outcome is not attestable; not committing");
            self.store.state.abandoned.insert(key);
            self.save();
            return;
        }
        let Some((digest, fuel)) = Misbehave::claim(self.cfg.misbehave, output.digest, output.fuel)
        else {
            return;
        };
        let archive_hash = *blake3::hash(&output.archive).as_bytes();
        let path = self.store.output_path(&archive_hash);
        let stored = crate::store::write_atomic(&path, &output.archive).is_ok();
        if !stored {
            warn!(%key, "cannot keep the outputs archive at {}", path.display());
        }
        info!(
            %key,
            outcome = %output.outcome,
            fuel = output.fuel,
            digest = %hex::encode(&output.digest[..8]),
            "unit ran"
        );
        self.store.state.results.insert(
            key,
            ResultRecord {
                sealed: Sealed {
                    job: item.job,
                    unit: item.unit,
                    replica: item.replica,
                    digest,
                    fuel,
                    salt: new_salt(),
                },
                outcome: output.outcome.code(),
                archive: stored.then_some(archive_hash),
                uploaded: !stored,
                committed: false,
                revealed: false,
            },
        );
        self.save();
        let _ = self.tick.try_send(());
    }

    async fn upload_outputs(&mut self) {
        let pending: Vec<(String, u64, u32, Hash32)> = self
            .store
            .state
            .results
            .iter()
            .filter(|(_, r)| !r.uploaded)
            .filter_map(|(k, r)| Some((k.clone(), r.sealed.job, r.sealed.unit, r.archive?)))
            .collect();
        for (key, job, unit, hash) in pending {
            let path = self.store.output_path(&hash);
            let Ok(bytes) = std::fs::read(&path) else {
                warn!(%key, "outputs archive {} is gone; not uploading", path.display());
                if let Some(r) = self.store.state.results.get_mut(&key) {
                    r.uploaded = true;
                }
                continue;
            };
            let stored = match self.client.put_blob(bytes).await {
                Ok(stored) => stored,
                Err(err) => {
                    debug!(%key, "outputs upload failed, will retry: {err}");
                    continue;
                }
            };
            match self.client.put_outputs(job, unit, &stored).await {
                Ok(outputs) => info!(
                    %key,
                    archive = %hex::encode(&stored[..8]),
                    accepted = outputs.accepted,
                    "outputs uploaded"
                ),
                Err(ClientError::Api {
                    status,
                    code,
                    message,
                }) if status < 500 => {
                    // Refused for good (the unit settled on other outputs, say): stop trying.
                    warn!(%key, "the node refused the outputs: {message} ({code})");
                }
                Err(err) => {
                    debug!(%key, "outputs registration failed, will retry: {err}");
                    continue;
                }
            }
            if let Some(r) = self.store.state.results.get_mut(&key) {
                r.uploaded = true;
            }
            self.save();
        }
    }

    /// Sends commitments (`commit`) or reveals in transactions of at most 256 results.
    async fn send_results<T: Clone>(
        &mut self,
        items: Vec<(String, T)>,
        commit: bool,
    ) -> Result<(), String>
    where
        Vec<T>: IntoAction,
    {
        let size = if self.singles { 1 } else { MAX_RESULTS_PER_TX };
        let mut all_ok = true;
        for chunk in items.chunks(size) {
            let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            let results: Vec<T> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let action = results.into_action();
            info!(
                count = keys.len(),
                "{}",
                if commit {
                    "committing results"
                } else {
                    "revealing results"
                }
            );
            match self.send(action).await? {
                TxOutcome::Ok => {
                    for key in &keys {
                        if let Some(r) = self.store.state.results.get_mut(key) {
                            if commit {
                                r.committed = true;
                            } else {
                                r.revealed = true;
                            }
                        }
                    }
                    self.save();
                }
                TxOutcome::Refused => all_ok = false,
            }
        }
        // The ledger skips stale results (a replica settled or replaced meanwhile) but refuses
        // a batch whole for a wrong one: retry one by one until a batch passes again, so that
        // one bad result does not hold back the others.
        self.singles = !all_ok;
        Ok(())
    }

    /// Signs and submits `action`, waits for its receipt and logs a rejection's reason.
    async fn send(&mut self, action: Action) -> Result<TxOutcome, String> {
        let name = action.name();
        let mut fee = self.cfg.fee.unwrap_or(self.min_fee).max(self.min_fee);
        for _attempt in 0..4 {
            let nonce = match self.nonce.next() {
                Some(n) => n,
                None => {
                    let account = self
                        .client
                        .account(&self.address)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.nonce.sync(account.nonce);
                    account.nonce
                }
            };
            let tx = UnsignedTx {
                chain_id: self.chain_id.clone(),
                sender: self.address.clone(),
                nonce,
                fee,
                action: action.clone(),
            }
            .sign(&self.cfg.key);
            let hash = match self.client.submit(&tx).await {
                Ok(hash) => {
                    self.nonce.after(nonce, Submitted::Admitted);
                    hash
                }
                Err(ClientError::Api { code, message, .. }) => {
                    let outcome = NonceCounter::classify(&code);
                    self.nonce.after(nonce, outcome);
                    match code.as_str() {
                        c if crate::nonce::NONCE_CODES.contains(&c) => {
                            debug!("{name}: {message}; reading the account nonce again");
                            continue;
                        }
                        "underpriced" => {
                            // An earlier transaction of ours with this nonce is still pending:
                            // replace it (its work is derived again from the chain anyway).
                            fee = Amount(fee.0.saturating_mul(2).max(1));
                            debug!("{name}: {message}; replacing with fee {fee}");
                            continue;
                        }
                        _ => {
                            warn!("{name} refused by the node: {message} ({code})");
                            return Ok(TxOutcome::Refused);
                        }
                    }
                }
                Err(err) => {
                    self.nonce.after(nonce, Submitted::Unknown);
                    return Err(format!("{name}: {err}"));
                }
            };
            return match self.client.wait_for_receipt(&hash, RECEIPT_TIMEOUT).await {
                Ok(receipt) if receipt.status == wire::TxStatus::Ok => {
                    debug!("{name} executed at height {:?}", receipt.height);
                    Ok(TxOutcome::Ok)
                }
                Ok(receipt) => {
                    let (code, message) = receipt
                        .reason
                        .map(|r| (r.code, r.message))
                        .unwrap_or_else(|| ("unknown".into(), "no reason given".into()));
                    warn!("{name} rejected: {message} ({code})");
                    if crate::nonce::NONCE_CODES.contains(&code.as_str()) {
                        self.nonce.reset();
                    }
                    Ok(TxOutcome::Refused)
                }
                Err(err) => {
                    self.nonce.reset();
                    Err(format!("{name}: {err}"))
                }
            };
        }
        Err(format!("{name}: could not find a usable nonce"))
    }
}

/// Results that make a transaction.
pub(crate) trait IntoAction {
    fn into_action(self) -> Action;
}

impl IntoAction for Vec<ResultCommit> {
    fn into_action(self) -> Action {
        Action::CommitResults(self)
    }
}

impl IntoAction for Vec<ResultReveal> {
    fn into_action(self) -> Action {
        Action::RevealResults(self)
    }
}

/// One download at a time per blob, so parallel units that need the same blob share it.
#[derive(Clone, Default)]
pub(crate) struct Downloads(Arc<std::sync::Mutex<HashMap<Hash32, Arc<tokio::sync::Mutex<()>>>>>);

impl Downloads {
    fn lock_for(&self, hash: &Hash32) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget locks nobody holds, so the map stays small.
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.entry(*hash).or_default().clone()
    }
}

/// Fetches blob `hash` into the cache unless it is there.
async fn fetch(
    api: &NodeApi,
    downloads: &Downloads,
    blob_dir: &std::path::Path,
    hash: &Hash32,
    max: u64,
) -> Result<std::path::PathBuf, String> {
    let path = blob_dir.join(hex::encode(hash));
    let lock = downloads.lock_for(hash);
    let _guard = lock.lock().await;
    if !path.exists() {
        api.download_blob(hash, max, &path)
            .await
            .map_err(|e: CallError| e.to_string())?;
    }
    Ok(path)
}

/// Reads a cached blob and checks it is still what it is named by.
fn read_verified(path: &std::path::Path, hash: &Hash32) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if blake3::hash(&bytes).as_bytes() != hash {
        let _ = std::fs::remove_file(path);
        return Err(format!(
            "cached blob {} does not match its hash; removed",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Fetches a unit's module and inputs, verifies them and runs the unit in the sandbox.
async fn run_unit(
    api: &NodeApi,
    downloads: &Downloads,
    sandbox: &Arc<Sandbox>,
    blob_dir: &std::path::Path,
    item: &WorkItem,
    timeout: Duration,
) -> Result<RunOutput, String> {
    let app = item.app;
    let module_path = fetch(api, downloads, blob_dir, &app, MAX_MODULE_BYTES).await?;
    let mut inputs = BTreeMap::new();
    for input in &item.inputs {
        let hash = input.hash;
        let max = if input.size > 0 {
            input.size
        } else {
            MAX_INPUT_BYTES
        };
        let path = fetch(api, downloads, blob_dir, &hash, max).await?;
        inputs.insert(input.name.clone(), (path, hash));
    }
    let sandbox = sandbox.clone();
    let item = item.clone();
    tokio::task::spawn_blocking(move || {
        let wasm = read_verified(&module_path, &app)?;
        for (path, hash) in inputs.values() {
            // Hash again right before the run: never run bytes that were not verified.
            read_verified(path, hash)?;
        }
        let mut spec = UnitSpec::wasm(&wasm)
            .args(item.args.clone().unwrap_or_default())
            .unit(u64::from(item.unit), unit_seed(item.job, item.unit))
            .fuel(item.fuel_limit)
            .memory(item.memory_mib.saturating_mul(1 << 20))
            .timeout_ms(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        for (name, (path, _)) in &inputs {
            spec = spec.input_path(name.clone(), path.clone());
        }
        let result = sandbox.run(&spec).map_err(|e| e.to_string())?;
        let archive = pack(&archive_of(&result)).map_err(|e| format!("outputs archive: {e}"))?;
        Ok(RunOutput {
            outcome: result.outcome,
            digest: result.digest,
            fuel: result.fuel_used,
            archive,
        })
    })
    .await
    .map_err(|e| format!("the run panicked: {e}"))?
}
