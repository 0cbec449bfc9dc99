//! The node's configuration file.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// A peer to dial: another validator, or for a node joining a running chain, one of the
/// validators it bootstraps from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Hex public key.
    pub public_key: String,
    pub address: SocketAddr,
}

/// `config.toml` of one node. Relative paths are relative to the file's directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The validator's private key file.
    pub key_file: PathBuf,
    /// The genesis file shared by all validators.
    pub genesis_file: PathBuf,
    /// Where the validator keeps its chain and state.
    pub data_dir: PathBuf,
    /// Address for validator-to-validator traffic.
    pub p2p_listen: SocketAddr,
    /// Address of the HTTP API.
    pub api_listen: SocketAddr,
    /// The peers dialed from the start: the other genesis validators, or for a node whose key
    /// is not a genesis validator, the validators it follows the chain from. Later peers (the
    /// committees the ledger elects, registered candidates) come from the chain's state.
    pub peers: Vec<PeerConfig>,
    /// Other nodes' API URLs: a blob or a unit's outputs missing here is fetched from them
    /// (and checked) when a client asks for it.
    #[serde(default)]
    pub blob_peers: Vec<String>,
    /// Tokio worker threads; two keep a 4-validator devnet light on a small machine.
    #[serde(default = "default_threads")]
    pub worker_threads: usize,
    /// How long a leader with nothing to include waits for work before it proposes an empty
    /// block, so that an idle chain does not spin; must stay below the 1.5 s leader timeout.
    #[serde(default = "default_empty_block_ms")]
    pub empty_block_ms: u64,
    /// The shortest time from its parent's time at which a leader with transactions proposes,
    /// unless its mempool fills a block first: under load, fewer and fuller blocks. Zero
    /// proposes as soon as there is work; at most 750 ms, half the leader timeout.
    #[serde(default = "default_min_block_ms")]
    pub min_block_ms: u64,
}

fn default_threads() -> usize {
    2
}

fn default_empty_block_ms() -> u64 {
    1_000
}

/// The interval chosen by measuring `exo bench tasks` (docs/benchmarks.md, "A leader gathers
/// for a minimum block interval").
pub const DEFAULT_MIN_BLOCK_MS: u64 = 200;

fn default_min_block_ms() -> u64 {
    DEFAULT_MIN_BLOCK_MS
}

impl NodeConfig {
    /// Reads a configuration and makes its paths absolute.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .with_context(|| format!("config {} is not valid", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.key_file,
            &mut config.genesis_file,
            &mut config.data_dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, toml::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Reads a genesis file (TOML).
pub fn load_genesis(path: &Path) -> anyhow::Result<exo_ledger::Genesis> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    // A genesis from before the ledger's modules kept the market's parameters at the top level;
    // its chain's state is in the old encodings too, so it cannot be resumed, only restarted.
    let genesis: exo_ledger::Genesis = toml::from_str(&text).with_context(|| {
        format!(
            "genesis {} is not valid (a devnet written by an earlier version cannot be resumed: \
             delete its directory and start a new one)",
            path.display()
        )
    })?;
    genesis
        .validate()
        .with_context(|| format!("genesis {} is not usable", path.display()))?;
    Ok(genesis)
}
