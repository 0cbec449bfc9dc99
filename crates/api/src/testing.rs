//! An in-memory node for tests of the API, the client and the CLI (feature `testing`).
//!
//! It runs the real ledger and the real mempool over a map instead of consensus and QMDB:
//! [`MemoryNode::produce_block`] builds a block from the mempool the way a proposer does
//! (transactions rejected before paying a fee stay out of the block) and finalizes it at once.
//! Digests and state roots are stand-ins, not what a validator would compute.

use crate::{NodeView, wire};
use commonware_codec::Encode;
use commonware_consensus::types::Height;
use commonware_cryptography::Signer as _;
use commonware_storage::mmr::Location;
use commonware_utils::range::NonEmptyRange;
use exo_chain::{
    Block, FinalizedBlock, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_BLOCK_WORK, Mempool, MempoolError,
    MempoolLimits,
};
use exo_ledger::{
    BlockEnv, BlockInput, BlockRun, Fault, Genesis, GenesisAccount, Key, MemoryBacking, Params,
    Policy, Signatures, modules::market::MarketParams,
};
use exo_market::{DeviceClass, Resources, Runtime, RuntimeSet};
use exo_types::{
    Address, Amount, Digest, PrivateKey, SignedTx, TxHash, address_to_hex, hash_bytes,
};
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::broadcast;

/// How the node's state store answers reads, to test failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateMode {
    Ok,
    Fails,
    Hangs,
}

struct Chain {
    genesis: Genesis,
    store: MemoryBacking,
    blocks: BTreeMap<u64, Block>,
    height: u64,
    state_mode: StateMode,
}

/// A single in-memory node; clones share it.
#[derive(Clone)]
pub struct MemoryNode {
    chain: Arc<Mutex<Chain>>,
    mempool: Mempool,
    events: broadcast::Sender<FinalizedBlock>,
    proposer: Address,
}

fn state_root(store: &MemoryBacking) -> Digest {
    let mut bytes = Vec::new();
    for (key, value) in &store.entries {
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&(value.len() as u64).to_be_bytes());
        bytes.extend_from_slice(value);
    }
    hash_bytes(&bytes)
}

/// The time of the genesis block on a [`MemoryNode`]: 2026-01-01, a real clock's order of
/// magnitude, so that a test confusing block times with heights fails.
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;

/// The time of block `height` on a [`MemoryNode`]: one second per block from
/// [`GENESIS_TIME_MS`], whatever the real interval between them, so that windows measured in
/// seconds are counted in blocks here and tests stay deterministic.
fn block_time_ms(height: u64) -> u64 {
    height
        .saturating_mul(exo_ledger::exec::BLOCK_INTERVAL_MS)
        .saturating_add(GENESIS_TIME_MS)
}

impl MemoryNode {
    /// A node whose state is `genesis` at height 0. The genesis must validate.
    pub fn new(genesis: Genesis, proposer: Address) -> Self {
        // The genesis state, written by an empty block at height 0.
        let mut store = MemoryBacking::default();
        let input = BlockInput {
            env: BlockEnv {
                height: 0,
                time_ms: block_time_ms(0),
                proposer: proposer.clone(),
                skipped_leaders: Vec::new(),
                parent_voters: Vec::new(),
                seed: [0; 32],
            },
            evidence: Vec::new(),
            txs: Vec::new(),
            signatures: Signatures::Verify,
            policy: Policy::Verify,
        };
        let outcome = BlockRun::new(&genesis, input)
            .run_with(&store)
            .unwrap_or_else(|fault| panic!("invalid genesis: {fault}"));
        store.apply(outcome.writes);
        let genesis_block = Block::genesis(
            genesis.hash(),
            state_root(&store),
            NonEmptyRange::new(Location::new(0)..Location::new(1))
                .unwrap_or_else(|_| unreachable!("0..1 is not empty")),
            proposer.clone(),
        );
        Self {
            chain: Arc::new(Mutex::new(Chain {
                genesis,
                store,
                blocks: BTreeMap::from([(0, genesis_block)]),
                height: 0,
                state_mode: StateMode::Ok,
            })),
            mempool: Mempool::new(MempoolLimits::default()),
            events: broadcast::channel(64).0,
            proposer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    pub fn set_state_mode(&self, mode: StateMode) {
        self.lock().state_mode = mode;
    }

    /// Overwrites (or with `None`, deletes) a state entry.
    pub fn put_state(&self, key: Key, value: Option<Vec<u8>>) {
        let mut chain = self.lock();
        match value {
            Some(value) => chain.store.entries.insert(key, value),
            None => chain.store.entries.remove(&key),
        };
    }

    /// Builds a block from the mempool, executes it with the ledger, finalizes it and
    /// publishes it to subscribers. A ledger fault stops this node: it panics with the fault,
    /// as a validator would stop.
    pub fn produce_block(&self) -> FinalizedBlock {
        self.try_produce_block()
            .unwrap_or_else(|fault| panic!("ledger fault: {fault}"))
    }

    /// Produces the blocks up to the one that draws the hidden audits of units whose last
    /// commitment the last block took
    /// ([`exo_ledger::modules::market::records::AUDIT_SEED_DELAY`]): their reveals are open
    /// after it, unless an audit replica was drawn.
    pub fn produce_blocks_to_the_audit_draw(&self) {
        for _ in 0..exo_ledger::modules::market::records::AUDIT_SEED_DELAY {
            self.produce_block();
        }
    }

    /// [`Self::produce_block`], giving a ledger fault back instead of stopping; the chain is
    /// left as it was.
    pub fn try_produce_block(&self) -> Result<FinalizedBlock, Fault> {
        let mut chain = self.lock();
        let height = chain.height + 1;
        let genesis = chain.genesis.clone();
        let input = BlockInput {
            env: BlockEnv {
                height,
                time_ms: block_time_ms(height),
                proposer: self.proposer.clone(),
                skipped_leaders: Vec::new(),
                parent_voters: Vec::new(),
                seed: [height as u8; 32],
            },
            evidence: Vec::new(),
            txs: self.mempool.candidates(MAX_BLOCK_TXS),
            // Like a proposer: the mempool's admission is not trusted here, every signature
            // is checked.
            signatures: Signatures::Verify,
            policy: Policy::Build {
                max_txs: MAX_BLOCK_TXS,
                max_bytes: MAX_BLOCK_BYTES,
                max_work: MAX_BLOCK_WORK,
            },
        };
        let outcome = BlockRun::new(&genesis, input).run_with(&chain.store)?;
        chain.store.apply(outcome.writes);
        let (included, evicted) = (outcome.included, outcome.evicted);
        let parent = chain
            .blocks
            .get(&chain.height)
            .map(commonware_cryptography::Digestible::digest)
            .unwrap_or_else(|| hash_bytes(b"parent"));
        let mut block = Block::genesis(
            genesis.hash(),
            state_root(&chain.store),
            NonEmptyRange::new(Location::new(0)..Location::new(height + 1))
                .unwrap_or_else(|_| unreachable!("0..h+1 is not empty")),
            self.proposer.clone(),
        );
        block.parent = parent;
        block.height = Height::new(height);
        block.timestamp_ms = block_time_ms(height);
        block.txs = included;
        self.mempool.remove(evicted);
        self.mempool.finalized(height, &block.txs);
        let finalized = FinalizedBlock::from_block(&block);
        chain.blocks.insert(height, block);
        chain.height = height;
        drop(chain);
        let _ = self.events.send(finalized.clone());
        Ok(finalized)
    }

    /// Produces a block every `interval`, forever. Spawn it in a test; abort it to stop.
    pub async fn run(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.produce_block();
        }
    }
}

impl NodeView for MemoryNode {
    fn status(&self) -> wire::Status {
        let chain = self.lock();
        wire::Status {
            chain_id: chain.genesis.chain_id.clone(),
            height: chain.height,
            finalized_height: chain.height,
            finalized_time_ms: block_time_ms(chain.height),
            epoch: 0,
            state_root: Some(state_root(&chain.store)),
            peers: 0,
            min_fee: chain.genesis.params.min_fee,
        }
    }

    fn submit(&self, tx: SignedTx, sender: &exo_ledger::Account) -> Result<TxHash, MempoolError> {
        self.mempool.insert(tx, sender)
    }

    fn pending(&self, hash: &TxHash) -> bool {
        self.mempool.contains(hash)
    }

    fn state(&self, key: Key) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send {
        let chain = self.lock();
        let mode = chain.state_mode;
        let value = chain.store.entries.get(&key).cloned();
        drop(chain);
        async move {
            match mode {
                StateMode::Ok => Ok(value),
                StateMode::Fails => Err("state store failed".to_string()),
                StateMode::Hangs => std::future::pending().await,
            }
        }
    }

    fn block(&self, height: u64) -> impl Future<Output = Option<Block>> + Send {
        let block = self.lock().blocks.get(&height).cloned();
        async move { block }
    }

    fn subscribe(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.events.subscribe()
    }

    fn metrics(&self) -> String {
        format!(
            "# TYPE exo_memory_node_height gauge\nexo_memory_node_height {}\n",
            self.lock().height
        )
    }
}

/// The first account a [`market_node`] funds (key seed 1).
pub fn alice() -> PrivateKey {
    PrivateKey::from_seed(1)
}

/// The second account a [`market_node`] funds (key seed 2).
pub fn bob() -> PrivateKey {
    PrivateKey::from_seed(2)
}

/// A node for tests of the market's routes and their clients, on chain `chain_id`: alice and
/// bob hold 1,000 EXO each; audits are as rare as the genesis allows (one unit in a million: a
/// zero rate is refused), so no unit is re-run behind a test's back; and a new
/// provider may hold 16 replicas at once, so a test that gives it several units at once has no
/// probation to wait out. Its one validator and proposer is key seed 9.
pub fn market_node(chain_id: &str) -> MemoryNode {
    let validator = PrivateKey::from_seed(9).public_key();
    let params = Params {
        market: MarketParams {
            audit_ppm: 1,
            probation_slots: 16,
            ..MarketParams::default()
        },
        ..Params::default()
    };
    let genesis = Genesis {
        chain_id: chain_id.into(),
        params,
        accounts: [alice(), bob()]
            .iter()
            .map(|k| GenesisAccount {
                address: address_to_hex(&k.public_key()),
                balance: Amount::from_exo(1_000),
            })
            .collect(),
        validators: vec![address_to_hex(&validator)],
    };
    MemoryNode::new(genesis, validator)
}

/// What a test provider registers: a 4-core, 4 GiB pc in eu-west that runs wasm units of up
/// to 10^12 fuel, enough for any job of the market tests.
pub fn provider_resources() -> Resources {
    Resources {
        cores: 4,
        cpu_score: 1_000_000_000,
        memory_mib: 4_096,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

/// Encodes a transaction as `POST /v1/txs` expects it.
pub fn submit_body(tx: &SignedTx) -> String {
    serde_json::json!({ "tx": hex::encode(tx.encode()) }).to_string()
}

/// Checks `text` as a strict OpenMetrics parser reads it, so that a test can hold `/metrics`
/// to the format its Content-Type names: one `# EOF`, last, and nothing after it; no blank
/// line; `# HELP`, `# TYPE` and `# UNIT` only, once per family and before its samples; each
/// family's samples together and named as its type allows (a counter `foo`'s are `foo_total`
/// and `foo_created`); well-formed labels, none twice; a number for every value.
///
/// Why not a parser from crates.io (evaluated in December 2026): `prometheus-parse` 0.2.5
/// reads the older Prometheus format and skips any line it cannot parse, so a text broken
/// anywhere still "parses"; it has no notion of `# EOF`. `openmetrics-parser` 0.5.1 is strict
/// where we need it (text after `# EOF`, interleaved families, a counter sample without
/// `_total`, a histogram without `+Inf`) but wrong on both sides: it refuses valid texts (a
/// family with metadata and no sample yet, such as the API's `exo_api_txs_refused` before any
/// refusal, followed by another family is read as one family, "Invalid metric name in
/// family"; a `# UNIT` on a histogram; an exposition of `# EOF` alone) and accepts an invalid
/// one (an unknown escape such as `\q` in a label value). A checker that fails on a correct
/// `/metrics`, or passes a broken one, proves nothing; so this one stays, and
/// `the_strict_check_refuses_what_a_strict_parser_refuses` pins both sides of it. (Its licence,
/// LGPL-3.0, was a further cost for a workspace under MIT or Apache-2.0.)
pub fn check_openmetrics(text: &str) -> Result<(), String> {
    let body = text
        .strip_suffix("# EOF\n")
        .or_else(|| text.strip_suffix("# EOF"))
        .ok_or("the text does not end with `# EOF`")?;
    /// The family being read: its name, type, and whether a sample of it was read.
    struct Family {
        name: String,
        kind: String,
        described: Vec<String>,
        sampled: bool,
    }
    impl Family {
        /// A family seen for the first time, of a type not yet known.
        fn new(name: &str) -> Self {
            Self {
                name: name.to_string(),
                kind: "unknown".into(),
                described: Vec::new(),
                sampled: false,
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut family: Option<Family> = None;
    for (number, line) in body.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if line.is_empty() {
            return Err(at("blank line"));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.splitn(4, ' ');
            let (Some(""), Some(keyword), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(at("not a `# KEYWORD name ...` line"));
            };
            let rest = parts.next().unwrap_or("");
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
                return Err(at("not HELP, TYPE or UNIT (or `# EOF` before the end)"));
            }
            check_metric_name(name).map_err(|e| at(&e))?;
            let same = family
                .as_ref()
                .is_some_and(|f| f.name == name && !f.sampled);
            if !same {
                if !seen.insert(name.to_string()) {
                    return Err(at("a family described twice or not in one piece"));
                }
                family = Some(Family::new(name));
            }
            if let Some(family) = family.as_mut() {
                if family.described.iter().any(|k| k == keyword) {
                    return Err(at("a family's HELP, TYPE or UNIT given twice"));
                }
                family.described.push(keyword.to_string());
            }
            if keyword == "TYPE" {
                const TYPES: [&str; 8] = [
                    "counter",
                    "gauge",
                    "histogram",
                    "gaugehistogram",
                    "stateset",
                    "info",
                    "summary",
                    "unknown",
                ];
                if !TYPES.contains(&rest) {
                    return Err(at("not an OpenMetrics type"));
                }
                if let Some(family) = family.as_mut() {
                    family.kind = rest.to_string();
                }
            }
            continue;
        }
        // A sample: name, labels, value, then a timestamp or an exemplar.
        let sample = line.split(" # ").next().unwrap_or(line);
        let (name, rest) = match sample.find(['{', ' ']) {
            Some(i) => sample.split_at(i),
            None => return Err(at("a sample without a value")),
        };
        check_metric_name(name).map_err(|e| at(&e))?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => {
                let end = labels.find("} ").ok_or_else(|| at("labels not closed"))?;
                check_labels(&labels[..end]).map_err(|e| at(&e))?;
                &labels[end + 1..]
            }
            None => rest,
        };
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let value = fields.next().unwrap_or("");
        if value.parse::<f64>().is_err() {
            return Err(at("the value is not a number"));
        }
        if let Some(timestamp) = fields.next()
            && timestamp.parse::<f64>().is_err()
        {
            return Err(at("the timestamp is not a number"));
        }
        if fields.next().is_some() {
            return Err(at("more than a value and a timestamp"));
        }
        let belongs = family
            .as_ref()
            .is_some_and(|f| sample_names(&f.name, &f.kind).contains(&name.to_string()));
        if !belongs {
            // A sample without metadata starts a family of its own, of unknown type.
            if !seen.insert(name.to_string()) {
                return Err(at("a sample apart from its family"));
            }
            family = Some(Family::new(name));
        }
        if let Some(family) = family.as_mut() {
            family.sampled = true;
        }
    }
    Ok(())
}

/// The names a family's samples may have.
fn sample_names(family: &str, kind: &str) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_count", "_sum", "_created"],
        "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
        "summary" => &["", "_count", "_sum", "_created"],
        "info" => &["_info"],
        _ => &[""],
    };
    suffixes.iter().map(|s| format!("{family}{s}")).collect()
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("{name:?} is not a metric name"))
    }
}

/// `name="value",...`: names that are label names, values quoted with only `\\`, `\"` and
/// `\n` escaped, no name twice.
fn check_labels(labels: &str) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label {rest:?} is not name=\"value\""))?;
        let mut chars = name.chars();
        let name_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok || !names.insert(name) {
            return Err(format!("label name {name:?} is not one, or is given twice"));
        }
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, '\\' | '"' | 'n') => escaped = false,
                (true, _) => return Err(format!("bad escape in {after:?}")),
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => return Err("a new line in a label value".into()),
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("label value {after:?} is not closed"))?;
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("{rest:?} after a label"));
        }
    }
    Ok(())
}
