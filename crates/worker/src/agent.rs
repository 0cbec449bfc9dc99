//! The worker's loop: keep the provider registered and an offer on the book, follow the
//! assigned replicas, run them, upload their outputs, commit, then reveal.

use crate::{
    WorkerConfig, WorkerError,
    admission::{Admission, Waiting, footprint_bytes},
    api::{CallError, NodeApi},
    commit::{Misbehave, Sealed, new_salt, unit_seed},
    holdback::{self, Holdback},
    machine::Benchmark,
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
use exo_exec::{ModuleSource, Sandbox, UnitSpec};
use exo_types::{
    Action, Address, Amount, Hash32, MAX_RESULTS_PER_TX, ResultCommit, ResultReveal, Unfinished,
    UnsignedTx, exo_market::Resources,
};
use futures::StreamExt;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};
use tokio::sync::mpsc;
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
    /// Host memory reserved by the units running when this one started, itself included.
    reserved_bytes: u64,
    result: Result<RunOutput, RunFailure>,
}

/// A finished upload request, sent back to the agent's loop: what became of each of its
/// archives.
pub(crate) struct UploadDone {
    items: Vec<Uploaded>,
}

/// What became of one outputs archive's upload. A failed one brings its archive back for the
/// next attempt.
struct Uploaded {
    key: String,
    upload: Upload,
    archive: Option<Vec<u8>>,
}

/// Why a unit did not run to an outcome on this machine: the reason reported to the chain if
/// retries do not help, and the message for the log.
#[derive(Debug)]
pub(crate) struct RunFailure {
    reason: Unfinished,
    message: String,
    /// Whether another attempt may succeed; if not, the report goes at once.
    retry: bool,
}

impl From<String> for RunFailure {
    fn from(message: String) -> Self {
        Self {
            reason: Unfinished::Host,
            message,
            retry: true,
        }
    }
}

/// Wall-clock bounds of one unit's handling on this machine.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// Compiling the module (once per module: later units find it in the cache).
    compile: Duration,
    /// The sandbox run.
    run: Duration,
}

pub(crate) struct RunOutput {
    outcome: exo_exec::Outcome,
    digest: Hash32,
    fuel: u64,
    archive: Vec<u8>,
    /// The sandbox's wall time of the run.
    exec_us: u64,
    /// From the start of `run_unit` to the packed archive.
    handled_us: u64,
}

/// A commit or reveal transaction sent and not yet finalized.
struct PendingTx {
    hash: exo_types::TxHash,
    commit: bool,
    keys: Vec<String>,
    sent: std::time::Instant,
}

/// How long a transaction the node does not know (neither pending nor in a block) is still
/// waited for.
const DROPPED_AFTER: Duration = Duration::from_secs(10);
/// Items per page of the work list (the API's default maximum).
const WORK_PAGE: u64 = 1_000;
/// Time between passes per item of the work list, and its bound. Each item listed costs the
/// node a state read and both sides a JSON item: at 50 us a busy worker with a thousand open
/// replicas listed them five or six times a second, about 27 items per accepted unit. Runs
/// that finish and uploads that land commit without a pass, so a longer gap under load delays
/// only the sight of new assignments and opened reveals.
const PASS_GAP_PER_ITEM_US: u64 = 400;
const MAX_PASS_GAP: Duration = Duration::from_millis(500);
/// Upload requests on their way at once. Archives that become ready meanwhile wait and leave
/// together in the next request (up to [`wire::MAX_OUTPUTS_BATCH_ITEMS`]), so that a busy
/// worker's uploads share requests, signatures and the node's durable commits.
const UPLOAD_REQUESTS: usize = 4;
/// Wait before the first retry of an upload the node did not take; it doubles with each
/// failure up to [`MAX_UPLOAD_BACKOFF`].
const UPLOAD_BACKOFF: Duration = Duration::from_millis(200);
const MAX_UPLOAD_BACKOFF: Duration = Duration::from_secs(30);
/// Refusals of an outputs registration that no retry can change: the unit settled on other
/// outputs or failed, or the archive itself is unusable. Anything else (a rate limit, a busy
/// or failing node, a node that has not seen the assignment yet) is retried.
const FINAL_OUTPUT_REFUSALS: &[&str] = &["digest_mismatch", "unit_failed", "bad_archive"];

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
    /// The last finalized block's time in whole seconds: commit and reveal deadlines are
    /// seconds of block time.
    chain_secs: u64,
    /// Units waiting for admission or running.
    running: HashSet<String>,
    attempts: HashMap<String, u32>,
    /// Which waiting units may start: run slots and declared memory.
    admission: Admission,
    /// Host memory the sandbox holds for a unit's outputs, beyond its memory limit and inputs.
    output_buffer_bytes: u64,
    /// Replicas a [`Misbehave::LieWhenAlone`] worker saw alone on their unit when it started
    /// them: it lies about those.
    lying: HashSet<String>,
    downloads: Downloads,
    modules: Modules,
    /// Whether the stored provider id was checked against the chain since the start.
    checked_provider: bool,
    paused: Option<String>,
    /// Results per commit or reveal transaction: halved after a rejected batch (a batch is
    /// rejected whole when one of its results is), back to the maximum after one executes.
    batch: usize,
    /// Commit and reveal transactions in the mempool, not yet seen in a finalized block.
    pending: Vec<PendingTx>,
    /// The keys of the results `pending` carries: kept with it, since every event asks.
    in_flight: HashSet<String>,
    /// The state changed since it was last saved.
    dirty: bool,
    /// Results whose replica a work list left out, and the height of the first such list.
    absent: HashMap<String, u64>,
    /// Outputs archives of finished runs until the node has them.
    archives: HashMap<String, Vec<u8>>,
    /// Uploads the node did not take yet: failed attempts and when the next may go.
    upload_backoff: HashMap<String, (u32, std::time::Instant)>,
    /// Results whose outputs must reach the node before they commit, with no upload on its
    /// way, and their commit deadlines (`u64::MAX` for results kept from an earlier run).
    to_upload: BTreeMap<String, u64>,
    /// Uploads on their way, with their results' commit deadlines. They run beside the
    /// agent's loop, so runs keep starting while the node stores outputs (a durable commit
    /// per request).
    uploading: HashMap<String, u64>,
    /// Upload requests on their way, at most [`UPLOAD_REQUESTS`].
    upload_requests: usize,
    uploads: mpsc::Sender<UploadDone>,
    /// Results ready to commit (their outputs on the node, or none to upload) since the last
    /// pass or the last commitments sent, with their commit deadlines.
    ready: Vec<(String, u64)>,
    /// Commitments and reveals wait a moment to share transactions.
    commit_hold: Holdback,
    reveal_hold: Holdback,
    /// Items of the last work list.
    listed: usize,
    done: mpsc::Sender<RunDone>,
    events: Option<tokio::task::JoinHandle<()>>,
    tick: mpsc::Sender<()>,
    /// Proofs of the offer's free slots for capacity rounds.
    capacity: crate::capacity::Prover,
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
        uploads: mpsc::Sender<UploadDone>,
        tick: mpsc::Sender<()>,
    ) -> Result<Self, WorkerError> {
        let client = Client::new(&cfg.node).map_err(|e| WorkerError::Config(e.to_string()))?;
        let api = NodeApi::new(&cfg.node).map_err(|e| WorkerError::Config(e.to_string()))?;
        let resources = bench.resources(cfg.class, &cfg.region, cfg.max_unit_fuel);
        resources
            .validate()
            .map_err(|e| WorkerError::Config(format!("resources: {e}")))?;
        let result_delay = cfg.result_delay;
        // Results an earlier run sealed whose outputs never reached the node.
        let to_upload = store
            .state
            .results
            .iter()
            .filter(|(_, r)| !r.uploaded)
            .map(|(key, _)| (key.clone(), u64::MAX))
            .collect();
        Ok(Self {
            address: cfg.key.public_key(),
            admission: Admission::new(resources.memory_mib.saturating_mul(1 << 20), cfg.slots),
            output_buffer_bytes: UnitSpec::new(ModuleSource::Hash([0; 32])).output_buffer_bytes(),
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
            chain_secs: 0,
            running: HashSet::new(),
            attempts: HashMap::new(),
            lying: HashSet::new(),
            downloads: Downloads::default(),
            modules: Modules::default(),
            checked_provider: false,
            paused: None,
            batch: MAX_RESULTS_PER_TX,
            pending: Vec::new(),
            in_flight: HashSet::new(),
            dirty: false,
            absent: HashMap::new(),
            archives: HashMap::new(),
            upload_backoff: HashMap::new(),
            to_upload,
            uploading: HashMap::new(),
            upload_requests: 0,
            uploads,
            ready: Vec::new(),
            commit_hold: Holdback::new(result_delay),
            reveal_hold: Holdback::new(result_delay),
            listed: 0,
            done,
            events: None,
            tick,
            capacity: crate::capacity::Prover::default(),
        })
    }

    /// Writes the state durably (the write ends in an fsync). On a multi-threaded runtime the
    /// thread says it blocks, so that the tasks beside the loop (uploads, the event stream)
    /// move to other threads meanwhile instead of waiting for the disk.
    fn save(&mut self) -> bool {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let saved = if multi_thread {
            tokio::task::block_in_place(|| self.store.save())
        } else {
            self.store.save()
        };
        match saved {
            Ok(()) => {
                self.dirty = false;
                true
            }
            Err(err) => {
                // Losing the state loses reveals: say so loudly, keep working.
                warn!("cannot save the worker state: {err}");
                false
            }
        }
    }

    /// One pass: chain, provider, offer, work, transactions.
    pub(crate) async fn step(&mut self) -> Result<(), String> {
        let status = self.client.status().await.map_err(|e| e.to_string())?;
        self.chain_id = status.chain_id.clone();
        self.min_fee = status.min_fee;
        self.height = status.finalized_height;
        self.chain_secs = status.finalized_time_ms / 1_000;
        if self.store.state.chain_id.as_deref() != Some(status.chain_id.as_str()) {
            if let Some(old) = &self.store.state.chain_id {
                warn!(old = %old, new = %status.chain_id, "the node runs another chain: starting afresh");
            }
            self.store.state = crate::store::State {
                chain_id: Some(status.chain_id.clone()),
                ..crate::store::State::default()
            };
            self.checked_provider = false;
            let _ = self.save();
        }
        if self
            .store
            .state
            .offer_expiry
            .is_some_and(|e| e > self.chain_secs + self.cfg.offer_lifetime_secs)
        {
            // The chain's time is behind the one the offer was posted at: it was started
            // again. Post the offer anew.
            self.store.state.offer_expiry = None;
        }
        let Some(provider) = self.ensure_provider().await? else {
            return Ok(());
        };
        self.follow_events();
        self.update_idle();
        self.keep_offer().await?;
        self.answer_capacity(provider, status.finalized_time_ms)
            .await;
        let (work, consistent) = self.work_list(provider).await?;
        tracing::trace!(height = self.height, items = work.len(), "pass");
        self.handle_work(&work, consistent).await
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
                let _ = self.save();
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
                    let _ = self.save();
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
                        let _ = self.save();
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
                let _ = self.save();
            }
        }
        Ok(self.store.state.provider_id)
    }

    fn follow_events(&mut self) {
        if self.events.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let client = self.client.clone();
        let tick = self.tick.clone();
        self.events = Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                // A block is all a pass needs to hear of: the assignments it made are in the
                // work list the pass reads.
                match client.blocks().await {
                    Ok(stream) => {
                        backoff = Duration::from_millis(250);
                        let mut stream = std::pin::pin!(stream);
                        while let Some(event) = stream.next().await {
                            match event {
                                Ok(Event::Block(block)) => {
                                    tracing::trace!(height = block.height, "block event");
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
        let own = u32::try_from(self.admission.running()).unwrap_or(u32::MAX);
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
        let margin = (self.cfg.offer_lifetime_secs / 5).max(2);
        let live = self
            .store
            .state
            .offer_expiry
            .is_some_and(|expiry| self.chain_secs + margin < expiry);
        if live {
            return Ok(());
        }
        let expiry = self.chain_secs + self.cfg.offer_lifetime_secs.max(margin + 1);
        let slots = self.cfg.offer_slots.unwrap_or(self.cfg.slots);
        info!(
            slots,
            price = %self.cfg.price_per_unit,
            expiry,
            "posting an offer"
        );
        let action = Action::PostOffer {
            slots,
            price_per_unit: self.cfg.price_per_unit,
            expiry_secs: expiry,
        };
        if self.send(action).await? == TxOutcome::Ok {
            self.store.state.offer_expiry = Some(expiry);
            let _ = self.save();
        }
        Ok(())
    }

    /// Reads the capacity round and the provider's offers (every 2 s while idle, or once a
    /// search ends), sends a proof found since the last look and starts the search for the next
    /// ([`crate::capacity::Prover`]). Capacity never holds up work: what fails here is logged
    /// and the pass goes on.
    async fn answer_capacity(&mut self, provider: u64, chain_ms: u64) {
        let threads = self
            .cfg
            .capacity_threads
            .map_or(self.bench.cores, |t| t.min(self.bench.cores));
        if self.paused.is_some() || threads == 0 || !self.capacity.due() {
            return;
        }
        let view = match self.client.provider_capacity(provider).await {
            Ok(view) => view,
            Err(err) => {
                debug!("capacity round: {err}");
                return;
            }
        };
        if let Some(proof) = self.capacity.step(&view, chain_ms, threads).await
            && let Err(err) = self.submit(Action::ProveCapacity(proof)).await
        {
            debug!("capacity proof: {err}");
        }
    }

    /// Every open replica of `provider`, and whether the pages were all read at one height
    /// (the list can change between pages, and offsets then skip items).
    async fn work_list(&self, provider: u64) -> Result<(Vec<WorkItem>, bool), String> {
        let mut work = Vec::new();
        let mut seen = HashSet::new();
        let mut from = 0;
        let mut height = None;
        let mut consistent = true;
        loop {
            let page = self
                .client
                .provider_work_page(provider, from, Some(WORK_PAGE))
                .await
                .map_err(|e| e.to_string())?;
            consistent &= *height.get_or_insert(page.height) == page.height;
            // The node lists a work set by position, and a removal moves its last replica
            // into the freed position: pages read at different heights may repeat one.
            for item in page.work {
                if seen.insert((item.job, item.unit, item.replica)) {
                    work.push(item);
                }
            }
            match page.next {
                Some(next) if next > from => from = next,
                _ => return Ok((work, consistent)),
            }
        }
    }

    /// The least time between two passes: 50 us per open replica in the last work list, at
    /// most half a second.
    pub(crate) fn pass_gap(&self) -> Duration {
        Duration::from_micros(PASS_GAP_PER_ITEM_US.saturating_mul(self.listed as u64))
            .min(MAX_PASS_GAP)
    }

    async fn handle_work(&mut self, work: &[WorkItem], consistent: bool) -> Result<(), String> {
        self.listed = work.len();
        self.check_pending().await;
        let open: HashSet<String> = work
            .iter()
            .map(|w| replica_key(w.job, w.unit, w.replica))
            .collect();
        // Replicas no longer open are settled: forget them and their outputs. Only a listing
        // of one height says so, and only when two in a row leave the replica out: forgetting
        // a sealed result too early would make its replica a no-show.
        let mut settled = Vec::new();
        if consistent {
            let gone: Vec<String> = self
                .store
                .state
                .results
                .iter()
                .filter(|(k, r)| !open.contains(*k) && (r.committed || !self.running.contains(*k)))
                .map(|(k, _)| k.clone())
                .collect();
            let mut absent = HashMap::new();
            for key in gone {
                match self.absent.get(&key) {
                    Some(h) if *h < self.height => settled.push(key),
                    Some(h) => {
                        absent.insert(key, *h);
                    }
                    None => {
                        absent.insert(key, self.height);
                    }
                }
            }
            self.absent = absent;
            for key in self.admission.forget_unlisted(|key| open.contains(key)) {
                self.running.remove(&key);
                self.lying.remove(&key);
            }
        }
        if !settled.is_empty() {
            for key in &settled {
                self.archives.remove(key);
                self.to_upload.remove(key);
                if let Some(record) = self.store.state.results.remove(key)
                    && let Some(archive) = record.archive
                {
                    let _ = std::fs::remove_file(self.store.output_path(&archive));
                }
            }
            self.store.state.abandoned.retain(|k| open.contains(k));
            self.dirty = true;
        }
        // Outputs reach the node before their commitment, so a committed result's outputs
        // survive this worker. Uploads finishing later commit their results then.
        self.start_uploads();
        self.ready.clear();
        let mut commits: Vec<(String, ResultCommit)> = Vec::new();
        let mut reveals: Vec<(String, ResultReveal)> = Vec::new();
        // The earliest deadline among them, in seconds of block time.
        let (mut commits_due, mut reveals_due) = (u64::MAX, u64::MAX);
        let mut to_run = Vec::new();
        let mut copies = Vec::new();
        for item in work {
            let key = replica_key(item.job, item.unit, item.replica);
            if self.in_flight.contains(&key) {
                continue;
            }
            // Deadlines are seconds of block time. A transaction lands in a block after the
            // finalized one: one due by the finalized block's time is too late.
            match item.status.as_str() {
                "assigned" if self.chain_secs < item.commit_deadline => {
                    if let Some(record) = self.store.state.results.get(&key) {
                        // A commitment already executed is not sent again, even if this
                        // list is a block behind.
                        // Outputs reach the node before the commitment.
                        if !record.committed && (record.uploaded || record.archive.is_none()) {
                            commits.push((key, record.sealed.commit(&self.address)));
                            commits_due = commits_due.min(item.commit_deadline);
                        }
                    } else if !self.store.state.abandoned.contains(&key)
                        && !self.running.contains(&key)
                    {
                        match self.cfg.misbehave {
                            Some(Misbehave::NoShow) => {}
                            Some(Misbehave::Copy) => copies.push((item.clone(), key)),
                            _ => to_run.push((item.clone(), key)),
                        }
                    }
                }
                "committed" => {
                    let open = item.reveal_open || item.reveal_deadline.is_some();
                    let late = item.reveal_deadline.is_some_and(|d| d <= self.chain_secs);
                    match self.store.state.results.get(&key) {
                        Some(record) if open && !late && !record.revealed => {
                            reveals.push((key, record.sealed.reveal()));
                            reveals_due = reveals_due.min(item.reveal_deadline.unwrap_or(u64::MAX));
                        }
                        Some(_) => {}
                        None => {
                            if open && self.store.state.abandoned.insert(key.clone()) {
                                warn!(%key, "committed replica has no sealed result here; it cannot be revealed");
                                self.dirty = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // The node's order is not the order of assignment: the replicas due first run first.
        to_run.sort_by_key(|(item, _): &(WorkItem, String)| {
            (item.commit_deadline, item.job, item.unit, item.replica)
        });
        for (item, key) in to_run {
            if self.cfg.misbehave == Some(Misbehave::LieWhenAlone) && self.alone(&item).await {
                info!(%key, "no other replica in sight: lying");
                self.lying.insert(key.clone());
            }
            self.queue_run(item, key);
        }
        self.admit_runs();
        for (item, key) in copies {
            if let Some(c) = self.try_copy(&item, &key).await {
                commits.push((key, c));
            }
        }
        // Every sealed result is durable before its commitment leaves.
        if self.dirty && !self.save() && !commits.is_empty() {
            return Err("the worker state cannot be saved; not committing".into());
        }
        let now = tokio::time::Instant::now();
        let more_coming = self.more_coming();
        let chain_secs = self.chain_secs;
        let urgent = |due: u64| holdback::is_urgent(due, chain_secs);
        if self
            .commit_hold
            .release(commits.len(), more_coming && !urgent(commits_due), now)
        {
            self.send_results(commits, true).await?;
        }
        if self
            .reveal_hold
            .release(reveals.len(), more_coming && !urgent(reveals_due), now)
        {
            self.send_results(reveals, false).await?;
        }
        // What this pass learnt (transactions executed, outputs uploaded) is kept too.
        if self.dirty {
            let _ = self.save();
        }
        Ok(())
    }

    /// Reads the receipts of the commit and reveal transactions in flight: marks what executed,
    /// halves the batch size after a rejection, forgets a transaction that never made it.
    async fn check_pending(&mut self) {
        let mut still = Vec::new();
        for tx in std::mem::take(&mut self.pending) {
            let name = if tx.commit {
                "commit_results"
            } else {
                "reveal_results"
            };
            match self.client.receipt(&tx.hash).await {
                Ok(Some(receipt)) if receipt.status == wire::TxStatus::Ok => {
                    debug!("{name} executed at height {:?}", receipt.height);
                    for key in &tx.keys {
                        if let Some(r) = self.store.state.results.get_mut(key) {
                            if tx.commit {
                                r.committed = true;
                            } else {
                                r.revealed = true;
                            }
                        }
                    }
                    self.dirty = true;
                    self.batch = MAX_RESULTS_PER_TX;
                }
                Ok(Some(receipt)) if receipt.status.is_final() => {
                    let (code, message) = receipt
                        .reason
                        .map(|r| (r.code, r.message))
                        .unwrap_or_else(|| ("unknown".into(), "no reason given".into()));
                    warn!(count = tx.keys.len(), "{name} rejected: {message} ({code})");
                    if crate::nonce::NONCE_CODES.contains(&code.as_str()) {
                        self.nonce.reset();
                    }
                    // The ledger skips stale results but rejects a batch whole for a wrong
                    // one: smaller batches until one passes isolate the result at fault.
                    self.batch = (tx.keys.len() / 2).max(1);
                }
                // Unknown to the node for a while: replaced or dropped from its mempool.
                Ok(None) if tx.sent.elapsed() >= DROPPED_AFTER => {
                    debug!(
                        "{name} is no longer known to the node; the chain decides what is sent again"
                    );
                    self.nonce.reset();
                }
                Ok(_) if tx.sent.elapsed() < RECEIPT_TIMEOUT => still.push(tx),
                Ok(_) => {
                    // Dropped from the mempool: the chain decides what is sent again.
                    warn!("{name} not in a block after {RECEIPT_TIMEOUT:?}; sending again");
                    self.nonce.reset();
                }
                Err(err) => {
                    debug!("{name}: cannot read the receipt: {err}");
                    still.push(tx);
                }
            }
        }
        self.in_flight = still.iter().flat_map(|p| p.keys.iter().cloned()).collect();
        self.pending = still;
    }
    /// Whether the unit of `item` shows no replica but this one (the `lie-when-alone`
    /// misbehaviour); unknown counts as not alone.
    async fn alone(&self, item: &WorkItem) -> bool {
        match self.client.job_page(item.job, item.unit, Some(1)).await {
            Ok(Some(job)) => job
                .units
                .iter()
                .find(|u| u.unit == item.unit)
                .is_some_and(|u| u.replicas.iter().all(|r| r.index == item.replica)),
            Ok(None) => false,
            Err(err) => {
                debug!(
                    job = item.job,
                    unit = item.unit,
                    "cannot read the unit's replicas: {err}"
                );
                false
            }
        }
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
        let _ = self.save();
        Some(commit)
    }

    /// Queues a unit for admission (`admission.rs`).
    fn queue_run(&mut self, item: WorkItem, key: String) {
        self.running.insert(key.clone());
        let bytes = footprint_bytes(&item, self.output_buffer_bytes);
        self.admission.push(item, key, bytes, self.chain_secs);
    }

    /// Starts the waiting units that fit now, and reports those that waited too long into
    /// their commit window as "could not finish" (`host_memory`, no fuel), committed before
    /// their deadline: this machine could not give them the memory in time.
    pub(crate) fn admit_runs(&mut self) {
        let admitted = self.admission.admit(self.chain_secs);
        for Waiting { item, key, .. } in admitted.late {
            warn!(%key, memory_mib = item.memory_mib, "waited for memory into its commit window; reporting that it could not finish");
            self.running.remove(&key);
            let reason = Unfinished::HostMemory;
            self.seal(key, &item, (reason.digest(), 0), reason.name(), None);
        }
        let reserved_bytes = self.admission.reserved_bytes();
        for Waiting { item, key, .. } in admitted.start {
            self.start_run(item, key, reserved_bytes);
        }
    }

    fn start_run(&mut self, item: WorkItem, key: String, reserved_bytes: u64) {
        let api = self.api.clone();
        let sandbox = self.sandbox.clone();
        let done = self.done.clone();
        let blob_dir = self.store.dir().join("blobs");
        let downloads = self.downloads.clone();
        let modules = self.modules.clone();
        let timeouts = Timeouts {
            compile: self.cfg.compile_timeout,
            run: self.bench.timeout_for(item.fuel_limit),
        };
        debug!(%key, "starting");
        tokio::spawn(async move {
            let result = run_unit(
                &api, &downloads, &modules, &sandbox, &blob_dir, &item, timeouts,
            )
            .await;
            let done_run = RunDone {
                key,
                item,
                reserved_bytes,
                result,
            };
            let _ = done.send(done_run).await;
        });
    }

    /// Records a finished run: seals its result and makes it durable before any commitment.
    /// A run that ended on something its machine decides (a stack overflow, the wall clock),
    /// or that could not run here after [`MAX_ATTEMPTS`], is sealed as a "could not finish"
    /// report with the fuel it burnt: the ledger judges it by rule, where silence would make
    /// this provider a no-show for what the module or its job caused.
    pub(crate) fn finish_run(&mut self, done: RunDone) {
        let RunDone {
            key,
            item,
            reserved_bytes,
            result,
        } = done;
        self.running.remove(&key);
        self.admission.release(&key);
        let lie = self.lying.remove(&key);
        let output = match result {
            Ok(output) => output,
            Err(failure) => {
                let n = self.attempts.entry(key.clone()).or_insert(0);
                *n += 1;
                warn!(%key, attempt = *n, "unit did not run: {}", failure.message);
                if *n >= MAX_ATTEMPTS || !failure.retry {
                    warn!(%key, reason = failure.reason.name(), "reporting that this replica could not finish");
                    self.attempts.remove(&key);
                    self.seal(
                        key,
                        &item,
                        (failure.reason.digest(), 0),
                        failure.reason.name(),
                        None,
                    );
                }
                return;
            }
        };
        self.attempts.remove(&key);
        if let Some(observer) = &self.cfg.on_run {
            observer(&crate::UnitRun {
                job: item.job,
                unit: item.unit,
                replica: item.replica,
                exec_us: output.exec_us,
                handled_us: output.handled_us,
                fuel: output.fuel,
                outcome: output.outcome.code(),
                reserved_bytes,
            });
        }
        if let Some(reason) = output.outcome.unfinished() {
            // Machine-dependent: committing it as a result could contradict honest replicas
            // elsewhere, so it is reported as such, with the fuel burnt.
            warn!(%key, outcome = %output.outcome, fuel = output.fuel, "could not finish here; reporting it");
            self.seal(
                key,
                &item,
                (reason.digest(), output.fuel),
                reason.name(),
                None,
            );
            return;
        }
        let misbehave = if lie {
            Some(Misbehave::WrongResult)
        } else {
            self.cfg.misbehave
        };
        let Some(claim) = Misbehave::claim(misbehave, output.digest, output.fuel) else {
            return;
        };
        debug!(
            %key,
            outcome = %output.outcome,
            fuel = output.fuel,
            digest = %hex::encode(&output.digest[..8]),
            "unit ran"
        );
        self.seal(
            key,
            &item,
            claim,
            &output.outcome.code(),
            Some(output.archive),
        );
    }

    /// Seals what `key` commits to, (digest, fuel), and queues its commitment. An outputs
    /// archive waits in memory for its upload, which comes before the commitment: a worker
    /// that stops before then runs the unit again. A report has no archive to upload.
    fn seal(
        &mut self,
        key: String,
        item: &WorkItem,
        (digest, fuel): (Hash32, u64),
        outcome: &str,
        archive: Option<Vec<u8>>,
    ) {
        let archive_hash = archive.map(|bytes| {
            let hash = *blake3::hash(&bytes).as_bytes();
            self.archives.insert(key.clone(), bytes);
            hash
        });
        if archive_hash.is_some() {
            self.to_upload.insert(key.clone(), item.commit_deadline);
        } else {
            self.ready.push((key.clone(), item.commit_deadline));
        }
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
                outcome: outcome.to_string(),
                uploaded: archive_hash.is_none(),
                archive: archive_hash,
                committed: false,
                revealed: false,
            },
        );
        // Saved once, before the commitments leave.
        self.dirty = true;
    }

    /// Starts the uploads waiting and commits the results ready since the last pass once
    /// their hold is over, without reading the work list again (the next pass sends whatever
    /// this one could not). A commitment is computed only for results that leave.
    pub(crate) async fn commit_fresh(&mut self) -> Result<(), String> {
        self.start_uploads();
        if self.ready.is_empty() {
            return Ok(());
        }
        let results = &self.store.state.results;
        let mut leaving = Vec::new();
        let mut due = u64::MAX;
        for (key, deadline) in &self.ready {
            if self.chain_secs < *deadline
                && results.get(key).is_some_and(|r| r.uploaded && !r.committed)
                && !self.in_flight.contains(key)
            {
                leaving.push(key);
                due = due.min(*deadline);
            }
        }
        let more_coming = self.more_coming() && !holdback::is_urgent(due, self.chain_secs);
        if !self
            .commit_hold
            .release(leaving.len(), more_coming, tokio::time::Instant::now())
        {
            return Ok(());
        }
        let commits: Vec<(String, ResultCommit)> = leaving
            .into_iter()
            .filter_map(|key| Some((key.clone(), results.get(key)?.sealed.commit(&self.address))))
            .collect();
        self.ready.clear();
        if self.dirty && !self.save() {
            return Err("the worker state cannot be saved; not committing".into());
        }
        self.send_results(commits, true).await
    }

    /// When results held back fall due, if any are held.
    pub(crate) fn held_until(&self) -> Option<tokio::time::Instant> {
        match (self.commit_hold.due_at(), self.reveal_hold.due_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether more results are on their way to a commitment: runs, or uploads, waiting or in
    /// flight.
    fn more_coming(&self) -> bool {
        !self.running.is_empty() || !self.uploading.is_empty() || !self.to_upload.is_empty()
    }

    /// Starts uploading the outputs archives not yet on the node, in up to
    /// [`UPLOAD_REQUESTS`] requests at once of up to [`wire::MAX_OUTPUTS_BATCH_ITEMS`]
    /// archives each. Each request runs beside the agent's loop and reports to it
    /// ([`Self::finish_upload`]), so that the node's durable writes never keep runs from
    /// starting.
    fn start_uploads(&mut self) {
        let now = std::time::Instant::now();
        while self.upload_requests < UPLOAD_REQUESTS && !self.to_upload.is_empty() {
            let backoff = &self.upload_backoff;
            let due: Vec<String> = self
                .to_upload
                .keys()
                .filter(|k| backoff.get(*k).is_none_or(|(_, next)| *next <= now))
                .take(wire::MAX_OUTPUTS_BATCH_ITEMS)
                .cloned()
                .collect();
            if due.is_empty() {
                return;
            }
            let mut archives = Vec::with_capacity(due.len());
            for key in due {
                let deadline = self.to_upload.remove(&key).unwrap_or(u64::MAX);
                let Some((sealed, hash)) = self
                    .store
                    .state
                    .results
                    .get(&key)
                    .filter(|r| !r.uploaded)
                    .and_then(|r| Some((r.sealed.clone(), r.archive?)))
                else {
                    continue;
                };
                archives.push(ArchiveUpload {
                    bytes: self.archives.remove(&key),
                    // Kept on disk by an older version of the worker.
                    path: self.store.output_path(&hash),
                    hash,
                    replica: (sealed.job, sealed.unit, sealed.replica),
                    key: key.clone(),
                });
                self.uploading.insert(key, deadline);
            }
            if archives.is_empty() {
                continue;
            }
            self.upload_requests += 1;
            let client = self.client.clone();
            let signer = Uploader {
                chain_id: self.chain_id.clone(),
                key: self.cfg.key.clone(),
            };
            let done = self.uploads.clone();
            tokio::spawn(async move {
                let items = upload_archives(&client, &signer, archives).await;
                let _ = done.send(UploadDone { items }).await;
            });
        }
    }

    /// Records a finished upload request: a result whose outputs the node holds may commit;
    /// one the node did not take keeps its archive in memory and waits out a backoff (a rate
    /// limit or a failing node only delays it).
    pub(crate) fn finish_upload(&mut self, done: UploadDone) {
        self.upload_requests = self.upload_requests.saturating_sub(1);
        for uploaded in done.items {
            self.finish_archive(uploaded);
        }
    }

    fn finish_archive(&mut self, uploaded: Uploaded) {
        let Uploaded {
            key,
            upload,
            archive,
        } = uploaded;
        let deadline = self.uploading.remove(&key).unwrap_or(u64::MAX);
        let Some(record) = self.store.state.results.get_mut(&key) else {
            // Settled meanwhile: nothing is left to commit.
            self.upload_backoff.remove(&key);
            return;
        };
        match upload {
            Upload::Retry => {
                let now = std::time::Instant::now();
                let (failures, next) = self.upload_backoff.entry(key.clone()).or_insert((0, now));
                *failures = failures.saturating_add(1);
                let wait = UPLOAD_BACKOFF
                    .saturating_mul(1u32 << (*failures).min(16))
                    .min(MAX_UPLOAD_BACKOFF);
                *next = now + wait;
                if let Some(bytes) = archive {
                    self.archives.insert(key.clone(), bytes);
                }
                self.to_upload.insert(key, deadline);
                return;
            }
            Upload::Done => {
                record.uploaded = true;
                self.ready.push((key.clone(), deadline));
            }
            Upload::Gone if !record.committed => {
                // Not committed yet: run the unit again rather than commit a result whose
                // outputs nobody can fetch.
                warn!(%key, "outputs archive lost before its upload; running the unit again");
                self.store.state.results.remove(&key);
            }
            Upload::Gone => {
                warn!(%key, "outputs archive is gone; not uploading");
                record.uploaded = true;
            }
        }
        self.upload_backoff.remove(&key);
        self.dirty = true;
    }

    /// Sends commitments (`commit`) or reveals in transactions of at most 256 results, without
    /// waiting for their blocks: [`Self::check_pending`] reads their receipts at the next pass.
    async fn send_results<T: Clone>(
        &mut self,
        items: Vec<(String, T)>,
        commit: bool,
    ) -> Result<(), String>
    where
        Vec<T>: IntoAction,
    {
        for chunk in items.chunks(self.batch.max(1)) {
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
            if let Some(hash) = self.submit(action).await? {
                self.in_flight.extend(keys.iter().cloned());
                self.pending.push(PendingTx {
                    hash,
                    commit,
                    keys,
                    sent: std::time::Instant::now(),
                });
            }
        }
        Ok(())
    }

    /// Signs and submits `action`, waits for its receipt and logs a rejection's reason.
    async fn send(&mut self, action: Action) -> Result<TxOutcome, String> {
        let name = action.name();
        let Some(hash) = self.submit(action).await? else {
            return Ok(TxOutcome::Refused);
        };
        match self.client.wait_for_receipt(&hash, RECEIPT_TIMEOUT).await {
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
        }
    }

    /// Signs and submits `action` with the next nonce: its hash once the node admitted it, or
    /// `None` if the node refused it (the reason is logged).
    async fn submit(&mut self, action: Action) -> Result<Option<exo_types::TxHash>, String> {
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
            match self.client.submit(&tx).await {
                Ok(hash) => {
                    self.nonce.after(nonce, Submitted::Admitted);
                    return Ok(Some(hash));
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
                            return Ok(None);
                        }
                    }
                }
                Err(err) => {
                    self.nonce.after(nonce, Submitted::Unknown);
                    return Err(format!("{name}: {err}"));
                }
            }
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

/// What became of an outputs upload.
enum Upload {
    /// Registered for the unit, or refused for good (the unit settled on other outputs).
    Done,
    /// The node did not take it: try again after a backoff.
    Retry,
    /// The archive is lost (the worker stopped before uploading it).
    Gone,
}

/// Who offers archives: the owner of the replicas' providers, on one chain.
struct Uploader {
    chain_id: String,
    key: exo_types::PrivateKey,
}

/// One replica's outputs archive to upload.
struct ArchiveUpload {
    key: String,
    /// (job, unit, replica).
    replica: (u64, u32, u32),
    /// The archive's recorded hash: only an archive of that hash goes.
    hash: Hash32,
    /// The archive, if it is in memory; else it is read from `path`.
    bytes: Option<Vec<u8>>,
    path: std::path::PathBuf,
}

/// Uploads outputs archives and registers each for its replica: those up to a batch's bound
/// together (`POST /v1/outputs/batch`, one signature and one request for up to
/// [`wire::MAX_OUTPUTS_BATCH_ITEMS`] archives), bigger ones alone. Answers what became of
/// each.
async fn upload_archives(
    client: &Client,
    signer: &Uploader,
    archives: Vec<ArchiveUpload>,
) -> Vec<Uploaded> {
    let mut done = Vec::with_capacity(archives.len());
    let mut small: Vec<(String, wire::OutputsBatchItem)> = Vec::new();
    let mut small_bytes = 0usize;
    for upload in archives {
        let bytes = match upload.bytes {
            Some(bytes) => Some(bytes),
            None => tokio::fs::read(&upload.path).await.ok(),
        };
        let bytes = match bytes {
            Some(bytes) if blake3::hash(&bytes).as_bytes() == &upload.hash => bytes,
            _ => {
                done.push(Uploaded {
                    key: upload.key,
                    upload: Upload::Gone,
                    archive: None,
                });
                continue;
            }
        };
        if bytes.len() > wire::MAX_OUTPUTS_BATCH_ARCHIVE_BYTES {
            done.push(upload_archive(client, signer, upload.key, upload.replica, bytes).await);
            continue;
        }
        if BATCH_COUNT_BYTES + small_bytes + bytes.len() + BATCH_ITEM_OVERHEAD
            > wire::MAX_OUTPUTS_BATCH_BYTES
        {
            done.extend(upload_batch(client, signer, std::mem::take(&mut small)).await);
            small_bytes = 0;
        }
        small_bytes += bytes.len() + BATCH_ITEM_OVERHEAD;
        let (job, unit, replica) = upload.replica;
        small.push((
            upload.key,
            wire::OutputsBatchItem {
                job,
                unit,
                replica,
                archive: bytes,
            },
        ));
    }
    if !small.is_empty() {
        done.extend(upload_batch(client, signer, small).await);
    }
    done
}

/// Bytes an item of an outputs batch takes beside its archive, at most: job, unit, replica
/// and the archive's length.
const BATCH_ITEM_OVERHEAD: usize = 8 + 4 + 4 + 5;
/// Bytes of an outputs batch's count of items, at most.
const BATCH_COUNT_BYTES: usize = 5;

/// Uploads `items` in one outputs batch. A node without the batch route (older than this
/// worker) gets them one by one.
async fn upload_batch(
    client: &Client,
    signer: &Uploader,
    items: Vec<(String, wire::OutputsBatchItem)>,
) -> Vec<Uploaded> {
    let (keys, items): (Vec<String>, Vec<wire::OutputsBatchItem>) = items.into_iter().unzip();
    let batch = wire::OutputsBatch { items };
    let answer = client
        .put_outputs_batch(&signer.chain_id, &batch, &signer.key)
        .await;
    let answers: Vec<Result<(), ClientError>> = match answer {
        Ok(result) => result
            .items
            .into_iter()
            .map(|item| match item.error {
                None => Ok(()),
                Some(error) => Err(ClientError::Api {
                    status: 200,
                    code: error.error,
                    message: error.message,
                }),
            })
            .collect(),
        Err(ClientError::Api { status: 404, .. }) => {
            let mut done = Vec::with_capacity(keys.len());
            for (key, item) in keys.into_iter().zip(batch.items) {
                let replica = (item.job, item.unit, item.replica);
                done.push(upload_archive(client, signer, key, replica, item.archive).await);
            }
            return done;
        }
        Err(err) => {
            warn!(
                archives = keys.len(),
                "the node did not take the outputs, will retry: {err}"
            );
            return keys
                .into_iter()
                .zip(batch.items)
                .map(|(key, item)| Uploaded {
                    key,
                    upload: Upload::Retry,
                    archive: Some(item.archive),
                })
                .collect();
        }
    };
    keys.into_iter()
        .zip(batch.items)
        .zip(answers)
        .map(|((key, item), answer)| {
            let upload = upload_outcome(&key, answer);
            let archive = matches!(upload, Upload::Retry).then_some(item.archive);
            Uploaded {
                key,
                upload,
                archive,
            }
        })
        .collect()
}

/// Uploads one unit's outputs archive and registers it for the replica.
async fn upload_archive(
    client: &Client,
    signer: &Uploader,
    key: String,
    (job, unit, replica): (u64, u32, u32),
    bytes: Vec<u8>,
) -> Uploaded {
    let registered = client
        .put_replica_archive(
            &signer.chain_id,
            (job, unit, replica),
            bytes.clone(),
            &signer.key,
        )
        .await
        .map(|outputs| {
            debug!(
                %key,
                archive = %hex::encode(&outputs.archive[..8]),
                accepted = outputs.accepted,
                "outputs uploaded"
            );
        });
    let upload = upload_outcome(&key, registered);
    let archive = matches!(upload, Upload::Retry).then_some(bytes);
    Uploaded {
        key,
        upload,
        archive,
    }
}

/// An archive's upload ends with a success or a refusal no retry can change
/// ([`FINAL_OUTPUT_REFUSALS`]); anything else is tried again.
fn upload_outcome(key: &str, answer: Result<(), ClientError>) -> Upload {
    match answer {
        Ok(()) => Upload::Done,
        Err(ClientError::Api { code, message, .. })
            if FINAL_OUTPUT_REFUSALS.contains(&code.as_str()) =>
        {
            warn!(%key, "the node refused the outputs for good: {message} ({code})");
            Upload::Done
        }
        Err(err) => {
            warn!(%key, "the node did not take the outputs, will retry: {err}");
            Upload::Retry
        }
    }
}

/// Modules this worker verified and compiled into its sandbox's cache, by hash.
#[derive(Clone, Default)]
pub(crate) struct Modules(Arc<std::sync::Mutex<HashSet<Hash32>>>);

impl Modules {
    fn contains(&self, hash: &Hash32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hash)
    }

    fn insert(&self, hash: Hash32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash);
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

/// Fetches blob `hash` into the cache unless it is there: `None` when the node (and the
/// peers it asks) has no such blob.
async fn fetch(
    api: &NodeApi,
    downloads: &Downloads,
    blob_dir: &std::path::Path,
    hash: &Hash32,
    max: u64,
) -> Result<Option<std::path::PathBuf>, String> {
    let path = blob_dir.join(hex::encode(hash));
    let lock = downloads.lock_for(hash);
    let _guard = lock.lock().await;
    if !path.exists() {
        match api.download_blob(hash, max, &path).await {
            Ok(_) => {}
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(CallError::to_string(&err)),
        }
    }
    Ok(Some(path))
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
///
/// What the requester or the module caused ends as a result every replica shares: a module or
/// input no node has is `missing_input`, an outputs archive over the blob bound is
/// `output_too_large:archive`. What this machine caused is a [`RunFailure`].
async fn run_unit(
    api: &NodeApi,
    downloads: &Downloads,
    modules: &Modules,
    sandbox: &Arc<Sandbox>,
    blob_dir: &std::path::Path,
    item: &WorkItem,
    timeouts: Timeouts,
) -> Result<RunOutput, RunFailure> {
    let started = std::time::Instant::now();
    let app = item.app;
    let missing = || {
        verdict_output(
            exo_exec::UnitResult::verdict(exo_exec::Outcome::MissingInput, 0, app),
            started,
        )
    };
    let module_path = if modules.contains(&app) {
        None
    } else {
        match fetch(api, downloads, blob_dir, &app, MAX_MODULE_BYTES).await? {
            Some(path) => Some(path),
            None => return missing(),
        }
    };
    let mut inputs = BTreeMap::new();
    for input in &item.inputs {
        let hash = input.hash;
        let max = if input.size > 0 {
            input.size
        } else {
            MAX_INPUT_BYTES
        };
        let Some(path) = fetch(api, downloads, blob_dir, &hash, max).await? else {
            return missing();
        };
        inputs.insert(input.name.clone(), (path, hash));
    }
    let memory_bytes = item.memory_mib.saturating_mul(1 << 20);
    if memory_bytes > sandbox.config().max_memory_bytes {
        // The offer promised memory this sandbox cannot give: this machine's doing.
        return Err(RunFailure {
            reason: Unfinished::HostMemory,
            message: format!(
                "the unit may use {memory_bytes} bytes of memory, this sandbox gives {}",
                sandbox.config().max_memory_bytes
            ),
            retry: true,
        });
    }
    let wasm = prepare_module(sandbox, modules, module_path, app, timeouts.compile).await?;
    let sandbox = sandbox.clone();
    let item = item.clone();
    tokio::task::spawn_blocking(move || {
        for (path, hash) in inputs.values() {
            // Hash again right before the run: never run bytes that were not verified.
            read_verified(path, hash)?;
        }
        let module = match &wasm {
            Some(wasm) => ModuleSource::Wasm(wasm),
            None => ModuleSource::Hash(app),
        };
        let mut spec = UnitSpec::new(module)
            .args(item.args.clone().unwrap_or_default())
            .unit(u64::from(item.unit), unit_seed(item.job, item.unit))
            .fuel(item.fuel_limit)
            .memory(memory_bytes)
            .timeout_ms(u64::try_from(timeouts.run.as_millis()).unwrap_or(u64::MAX));
        for (name, (path, _)) in &inputs {
            spec = spec.input_path(name.clone(), path.clone());
        }
        let result = sandbox.run(&spec).map_err(|e| e.to_string())?;
        verdict_output(result, started)
    })
    .await
    .map_err(|e| format!("the run panicked: {e}"))?
}

/// Reads, verifies and compiles the module at `path` into the sandbox's cache, once: later runs
/// name it by its verified hash. One the sandbox refuses comes back as its bytes, to run from
/// them so that the run's outcome (`invalid_module`) says so, the same on every machine.
///
/// The static bounds (`exo_exec::ModuleLimit`) keep every compile short, but a slow or loaded
/// machine may still take longer than `timeout`: that is this machine's doing, reported at
/// once as "could not finish" (`host`) and not retried, while the compile goes on in the
/// background and fills the cache for the next unit.
async fn prepare_module(
    sandbox: &Arc<Sandbox>,
    modules: &Modules,
    path: Option<std::path::PathBuf>,
    app: Hash32,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, RunFailure> {
    let Some(path) = path else {
        return Ok(None);
    };
    let (sandbox, modules) = (sandbox.clone(), modules.clone());
    let compile = tokio::task::spawn_blocking(move || {
        if modules.contains(&app) {
            return Ok(None);
        }
        let wasm = read_verified(&path, &app)?;
        match sandbox.prepare(&wasm) {
            Ok(hash) if hash == app => {
                modules.insert(app);
                Ok(None)
            }
            Ok(_) | Err(exo_exec::ExecError::InvalidModule(_)) => Ok(Some(wasm)),
            Err(err) => Err(RunFailure::from(err.to_string())),
        }
    });
    match tokio::time::timeout(timeout, compile).await {
        Ok(joined) => joined.map_err(|e| format!("the compile panicked: {e}"))?,
        Err(_) => Err(RunFailure {
            reason: Unfinished::Host,
            message: format!("compiling the module took longer than {timeout:?}"),
            retry: false,
        }),
    }
}

/// The output of a run (or of a verdict on a unit that did not run): its archive packed, and
/// replaced by `output_too_large:archive` if it is over [`exo_exec::MAX_ARCHIVE_BYTES`], which
/// no node would take.
fn verdict_output(
    mut result: exo_exec::UnitResult,
    started: std::time::Instant,
) -> Result<RunOutput, RunFailure> {
    let mut archive = pack(&archive_of(&result)).map_err(|e| format!("outputs archive: {e}"))?;
    if archive.len() as u64 > exo_exec::MAX_ARCHIVE_BYTES {
        result = exo_exec::UnitResult {
            wall_time_us: result.wall_time_us,
            ..exo_exec::UnitResult::verdict(
                exo_exec::Outcome::OutputTooLarge(exo_exec::OutputStream::Archive),
                result.fuel_used,
                result.module_hash,
            )
        };
        archive = pack(&archive_of(&result)).map_err(|e| format!("outputs archive: {e}"))?;
    }
    Ok(RunOutput {
        outcome: result.outcome,
        digest: result.digest,
        fuel: result.fuel_used,
        archive,
        exec_us: result.wall_time_us,
        handled_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use exo_exec::{MAX_ARCHIVE_BYTES, Outcome, OutputFile, OutputStream, UnitResult};

    /// A batch the worker fills up to its byte budget (each item's archive plus
    /// `BATCH_ITEM_OVERHEAD`, plus `BATCH_COUNT_BYTES`) still fits the node's body bound: a
    /// body one byte over would be refused every time it was retried.
    #[test]
    fn a_batch_filled_to_the_workers_budget_fits_the_nodes_bound() {
        let big = wire::MAX_OUTPUTS_BATCH_ARCHIVE_BYTES;
        let full = big + BATCH_ITEM_OVERHEAD;
        let last =
            wire::MAX_OUTPUTS_BATCH_BYTES - BATCH_COUNT_BYTES - 3 * full - BATCH_ITEM_OVERHEAD;
        let item = |len: usize| wire::OutputsBatchItem {
            job: u64::MAX,
            unit: u32::MAX,
            replica: u32::MAX,
            archive: vec![1; len],
        };
        let batch = wire::OutputsBatch {
            items: vec![item(big), item(big), item(big), item(last)],
        };
        assert!(batch.to_bytes().len() <= wire::MAX_OUTPUTS_BATCH_BYTES);
    }

    fn run_with(bytes: usize) -> UnitResult {
        let outputs = vec![OutputFile {
            path: "big.bin".into(),
            bytes: vec![7; bytes],
        }];
        UnitResult {
            outcome: Outcome::Ok,
            digest: exo_exec::digest::result_digest(&Outcome::Ok, b"", &outputs, &[]),
            fuel_used: 123,
            stdout: Vec::new(),
            stderr: Vec::new(),
            outputs,
            output_dirs: Vec::new(),
            peak_memory_bytes: 0,
            module_hash: [1; 32],
            cache_hit: false,
            wall_time_us: 0,
        }
    }

    /// `/out` may hold 64 MiB, and the archive adds stdout and its framing: a run can produce
    /// an archive no node takes. It becomes a result every replica derives the same way,
    /// instead of an upload that never succeeds and a no-show.
    #[test]
    fn an_archive_over_the_blob_bound_becomes_output_too_large_with_the_fuel_of_the_run() {
        let out = verdict_output(
            run_with(MAX_ARCHIVE_BYTES as usize),
            std::time::Instant::now(),
        )
        .unwrap();
        assert_eq!(out.outcome, Outcome::OutputTooLarge(OutputStream::Archive));
        assert_eq!(out.fuel, 123);
        let archive = crate::outputs::unpack(&out.archive).unwrap();
        assert_eq!(archive.outcome, "output_too_large:archive");
        assert!(archive.files.is_empty());
        // The node checks a registered archive against the digest: they agree.
        assert_eq!(archive.result_digest(), out.digest);

        let small = run_with(1 << 10);
        let digest = small.digest;
        let out = verdict_output(small, std::time::Instant::now()).unwrap();
        assert_eq!((out.outcome, out.digest), (Outcome::Ok, digest));
    }
}
