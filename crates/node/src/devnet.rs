//! A local network: keys, genesis and one configuration per validator under one directory,
//! and the validators run as separate `exo node` processes.

use crate::config::{NodeConfig, PeerConfig};
use anyhow::{Context, anyhow, bail};
use commonware_cryptography::Signer as _;
use exo_client::{Client, keyfile, wire};
use exo_ledger::{Genesis, GenesisAccount, Params};
use exo_types::{Address, Amount, PrivateKey, address_to_hex};
use std::{
    ffi::OsStr,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The chain id of local networks starts with this; a random suffix makes each devnet's id its
/// own, so that a transaction signed for one devnet never replays on another (audit L2).
pub const DEVNET_CHAIN_ID_PREFIX: &str = "exo-devnet-";
/// What the development account holds at genesis.
pub const FAUCET_BALANCE_EXO: u64 = 1_000_000_000;

/// How to lay out a devnet.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    pub validators: usize,
    pub data_dir: PathBuf,
    /// Validator i serves its API on `api_port + i`.
    pub api_port: u16,
    /// Validator i listens for peers on `p2p_port + i`.
    pub p2p_port: u16,
    /// Accounts funded at genesis besides the faucet (benchmarks and tests).
    pub extra_accounts: Vec<GenesisAccount>,
}

/// Where a devnet's files are.
#[derive(Clone, Debug)]
pub struct DevnetLayout {
    pub data_dir: PathBuf,
    pub genesis: PathBuf,
    pub faucet_key: PathBuf,
    pub configs: Vec<PathBuf>,
    pub api_urls: Vec<String>,
    /// True when the directory already held a devnet that is resumed.
    pub resumed: bool,
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Writes keys, genesis and configurations, or finds those of an earlier run; a fresh devnet
/// has the default genesis parameters, a resumed one keeps its own.
pub fn init(options: &DevnetOptions) -> anyhow::Result<DevnetLayout> {
    init_inner(options, None)
}

/// [`init`] with the genesis parameters `params` for a fresh devnet (a short epoch, to see
/// committees change). A resumed devnet keeps its own; one whose epoch length differs from
/// `params`' is refused rather than silently run with another.
pub fn init_with_params(options: &DevnetOptions, params: &Params) -> anyhow::Result<DevnetLayout> {
    init_inner(options, Some(params))
}

fn init_inner(options: &DevnetOptions, params: Option<&Params>) -> anyhow::Result<DevnetLayout> {
    if options.validators == 0 || options.validators > 64 {
        bail!(
            "a devnet has 1 to 64 validators, not {}",
            options.validators
        );
    }
    let last_port = |base: u16| base.checked_add(options.validators as u16 - 1);
    if last_port(options.api_port).is_none() || last_port(options.p2p_port).is_none() {
        bail!("ports overflow past 65535");
    }
    let dir = &options.data_dir;
    let genesis_path = dir.join("genesis.toml");
    let faucet_path = dir.join("faucet.key");
    let config_path = |i: usize| dir.join(format!("node-{i}")).join("config.toml");
    let resumed = genesis_path.exists();
    if resumed {
        let genesis = crate::config::load_genesis(&genesis_path)?;
        if genesis.validators.len() != options.validators {
            bail!(
                "{} holds a devnet of {} validators; pass --validators {} or use another --data",
                dir.display(),
                genesis.validators.len(),
                genesis.validators.len()
            );
        }
        if let Some(params) = params
            && genesis.params.epoch_length != params.epoch_length
        {
            bail!(
                "{} holds a devnet with epochs of {} blocks, not {}; pass --epoch-length {} or \
                 use another --data",
                dir.display(),
                genesis.params.epoch_length,
                params.epoch_length,
                genesis.params.epoch_length
            );
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let keys: Vec<PrivateKey> = (0..options.validators)
            .map(|_| keyfile::generate())
            .collect();
        let faucet = keyfile::generate();
        keyfile::write_new(&faucet_path, &faucet)?;
        // The faucet's fresh key is random: 8 bytes of it name this devnet.
        let chain_id = format!(
            "{DEVNET_CHAIN_ID_PREFIX}{}",
            hex::encode(&faucet.public_key().as_ref()[..8])
        );
        let genesis = Genesis {
            chain_id,
            params: params.cloned().unwrap_or_default(),
            accounts: std::iter::once(GenesisAccount {
                address: address_to_hex(&faucet.public_key()),
                balance: Amount::from_exo(FAUCET_BALANCE_EXO),
            })
            .chain(options.extra_accounts.iter().cloned())
            .collect(),
            validators: keys
                .iter()
                .map(|k| address_to_hex(&k.public_key()))
                .collect(),
        };
        genesis
            .validate()
            .context("the devnet's genesis is not usable")?;
        std::fs::write(&genesis_path, toml::to_string_pretty(&genesis)?)
            .with_context(|| format!("cannot write {}", genesis_path.display()))?;
        for (i, key) in keys.iter().enumerate() {
            let node_dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir)?;
            keyfile::write_new(&node_dir.join("validator.key"), key)?;
            let peers = keys
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, k)| PeerConfig {
                    public_key: address_to_hex(&k.public_key()),
                    address: localhost(options.p2p_port + j as u16),
                })
                .collect();
            let config = NodeConfig {
                key_file: PathBuf::from("validator.key"),
                genesis_file: PathBuf::from("../genesis.toml"),
                data_dir: PathBuf::from("data"),
                p2p_listen: localhost(options.p2p_port + i as u16),
                api_listen: localhost(options.api_port + i as u16),
                peers,
                blob_peers: (0..keys.len())
                    .filter(|j| *j != i)
                    .map(|j| format!("http://{}", localhost(options.api_port + j as u16)))
                    .collect(),
                worker_threads: 2,
                empty_block_ms: 1_000,
                min_block_ms: crate::config::DEFAULT_MIN_BLOCK_MS,
            };
            config.save(&config_path(i))?;
        }
    }
    let configs: Vec<PathBuf> = (0..options.validators).map(config_path).collect();
    let mut api_urls = Vec::new();
    for path in &configs {
        let config = NodeConfig::load(path)?;
        api_urls.push(format!("http://{}", config.api_listen));
    }
    Ok(DevnetLayout {
        data_dir: dir.clone(),
        genesis: genesis_path,
        faucet_key: faucet_path,
        configs,
        api_urls,
        resumed,
    })
}

impl DevnetLayout {
    /// The chain id in this devnet's genesis.
    pub fn chain_id(&self) -> anyhow::Result<String> {
        Ok(crate::config::load_genesis(&self.genesis)?.chain_id)
    }

    /// The address of the faucet account, funded at genesis.
    pub fn faucet_address(&self) -> anyhow::Result<Address> {
        Ok(keyfile::address(&keyfile::read(&self.faucet_key)?))
    }

    /// The log file of validator `i` when run by [`DevnetProcesses`].
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.configs[i].with_file_name("node.log")
    }

    /// Validators that may fail while the rest still finalize (`f` of `3f + 1`).
    pub fn fault_tolerance(&self) -> usize {
        self.configs.len().saturating_sub(1) / 3
    }
}

/// How a node joins a devnet: which devnet, and the ports it listens on when not the next
/// ones after the devnet's nodes.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The devnet's directory, as `exo devnet` wrote it.
    pub data_dir: PathBuf,
    /// The node's API port; by default the devnet's first API port plus the node's index.
    pub api_port: Option<u16>,
    /// The node's p2p port; by default the devnet's first p2p port plus the node's index.
    pub p2p_port: Option<u16>,
}

/// A node added to a devnet by [`join`]: its key is fresh, so it is not a genesis validator.
#[derive(Clone, Debug)]
pub struct JoinedNode {
    /// Its number: node `index` lives in `node-<index>`, after the genesis validators' ones.
    pub index: usize,
    pub config: PathBuf,
    pub key_file: PathBuf,
    /// Its public key, which is also its account's address and its consensus key.
    pub public_key: Address,
    /// Where the others reach it: what it registers as its p2p address.
    pub p2p_address: SocketAddr,
    pub api_url: String,
    /// The first genesis validator's API, which serves the chain's state while this node
    /// catches up: where its funding and registration go.
    pub validator_api_url: String,
}

/// Most nodes a devnet directory holds, genesis validators and joined nodes together.
pub const MAX_DEVNET_NODES: usize = 256;

/// Adds a node with a fresh key to the devnet in `options.data_dir`: writes `node-<i>/` (the
/// first free index after the genesis validators) with the key and a configuration whose
/// peers are the genesis validators. Run by `exo node --config`, the node follows the chain
/// once it has registered as a validator candidate (the validators accept connections from
/// registered candidates) and signs once the ledger elects it.
pub fn join(options: &JoinOptions) -> anyhow::Result<JoinedNode> {
    let dir = &options.data_dir;
    let genesis_path = dir.join("genesis.toml");
    if !genesis_path.exists() {
        bail!(
            "{} holds no devnet; create one first with exo devnet --data {} --init-only",
            dir.display(),
            dir.display()
        );
    }
    let genesis = crate::config::load_genesis(&genesis_path)?;
    let node_dir = |i: usize| dir.join(format!("node-{i}"));
    // The genesis validators are node-0 .. node-(V-1); their configurations give each one's
    // addresses and their key files its public key.
    let mut peers = Vec::with_capacity(genesis.validators.len());
    let mut blob_peers = Vec::with_capacity(genesis.validators.len());
    let mut first: Option<NodeConfig> = None;
    for i in 0..genesis.validators.len() {
        let config = NodeConfig::load(&node_dir(i).join("config.toml"))?;
        let key = keyfile::read(&config.key_file)?;
        peers.push(PeerConfig {
            public_key: address_to_hex(&key.public_key()),
            address: config.p2p_listen,
        });
        blob_peers.push(format!("http://{}", config.api_listen));
        first.get_or_insert(config);
    }
    let first = first.ok_or_else(|| anyhow!("the devnet's genesis names no validator"))?;
    let index = (genesis.validators.len()..MAX_DEVNET_NODES)
        .find(|i| !node_dir(*i).exists())
        .ok_or_else(|| anyhow!("{} already holds {MAX_DEVNET_NODES} nodes", dir.display()))?;
    let port = |explicit: Option<u16>, base: u16| -> anyhow::Result<u16> {
        match explicit {
            Some(port) => Ok(port),
            None => u16::try_from(index)
                .ok()
                .and_then(|i| base.checked_add(i))
                .ok_or_else(|| anyhow!("node {index}'s port overflows past 65535")),
        }
    };
    let api_listen = localhost(port(options.api_port, first.api_listen.port())?);
    let p2p_listen = localhost(port(options.p2p_port, first.p2p_listen.port())?);
    let taken = peers.iter().any(|p| p.address == p2p_listen)
        || blob_peers.contains(&format!("http://{api_listen}"));
    if taken || api_listen == p2p_listen {
        bail!("a genesis validator already uses port {api_listen} or {p2p_listen}");
    }

    let node = node_dir(index);
    std::fs::create_dir_all(&node).with_context(|| format!("cannot create {}", node.display()))?;
    let key_file = node.join("validator.key");
    let key = keyfile::generate();
    keyfile::write_new(&key_file, &key)?;
    let config = NodeConfig {
        key_file: PathBuf::from("validator.key"),
        genesis_file: PathBuf::from("../genesis.toml"),
        data_dir: PathBuf::from("data"),
        p2p_listen,
        api_listen,
        peers,
        blob_peers,
        worker_threads: first.worker_threads,
        empty_block_ms: first.empty_block_ms,
        min_block_ms: first.min_block_ms,
    };
    let config_path = node.join("config.toml");
    let validator_api_url = config.blob_peers.first().cloned().unwrap_or_default();
    config.save(&config_path)?;
    Ok(JoinedNode {
        index,
        config: config_path,
        key_file,
        public_key: key.public_key(),
        p2p_address: p2p_listen,
        api_url: format!("http://{api_listen}"),
        validator_api_url,
    })
}

/// Waits until every API in `urls` reports a finalized height of at least `height`, calling
/// `check` between polls (to notice a validator process that died). Returns the statuses.
pub async fn wait_for_height(
    urls: &[String],
    height: u64,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<wire::Status>> {
    let clients = urls
        .iter()
        .map(|url| Client::new(url).map(|c| c.with_timeout(Duration::from_secs(2))))
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    loop {
        check()?;
        let mut statuses = Vec::with_capacity(clients.len());
        for client in &clients {
            match client.status().await {
                Ok(status) if status.finalized_height >= height => statuses.push(status),
                _ => break,
            }
        }
        if statuses.len() == clients.len() {
            return Ok(statuses);
        }
        if start.elapsed() > timeout {
            return Err(anyhow!(
                "validators did not all finalize height {height} within {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long a child gets to exit after SIGTERM before it is killed: longer than a node's own
/// shutdown (API grace plus the runtime's stop grace).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Child processes of this one, each appending its output to a log file; dropping it stops
/// them. Children are numbered in the order they were started.
#[derive(Default)]
pub struct Processes {
    children: Vec<Child>,
    /// Children whose exit [`Self::exited`] already reported.
    reported: Vec<usize>,
}

/// The validator processes of a running devnet.
pub type DevnetProcesses = Processes;

impl Processes {
    /// Starts `exe node --config ...` for every validator, logging to `node-<i>/node.log`.
    pub fn spawn(exe: &Path, layout: &DevnetLayout) -> anyhow::Result<Self> {
        let mut processes = Self::default();
        for (i, config) in layout.configs.iter().enumerate() {
            let args = [
                OsStr::new("node"),
                OsStr::new("--config"),
                config.as_os_str(),
            ];
            processes
                .start(exe, &args, &config.with_file_name("node.log"))
                .with_context(|| format!("cannot start validator {i}"))?;
        }
        Ok(processes)
    }

    /// Starts `exe ARGS` with standard output and error appended to `log_path`.
    pub fn start(&mut self, exe: &Path, args: &[&OsStr], log_path: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        self.children.push(child);
        Ok(())
    }

    /// Process ids of the children, for measurements.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Children that exited since the last call, with their number and exit status.
    pub fn exited(&mut self) -> Vec<(usize, String)> {
        let mut exited = Vec::new();
        for (i, child) in self.children.iter_mut().enumerate() {
            if self.reported.contains(&i) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.reported.push(i);
                exited.push((i, status.to_string()));
            }
        }
        exited
    }

    /// How many children have exited so far.
    pub fn exited_count(&self) -> usize {
        self.reported.len()
    }

    /// Sum of the children's peak resident memory (`VmHWM`), in MiB; `None` if a process has
    /// exited or the platform has no `/proc`.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.pids().into_iter().map(peak_rss_mib).sum()
    }

    /// Stops every child: a polite signal first, then a kill.
    pub fn stop(&mut self) {
        for child in &mut self.children {
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            #[cfg(unix)]
            {
                // SIGTERM lets a validator finish its current durable write.
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .stderr(Stdio::null())
                    .status();
            }
            #[cfg(not(unix))]
            let _ = child.kill();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for child in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        self.reported.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Peak resident memory of a process in MiB (Linux), from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> DevnetOptions {
        DevnetOptions {
            validators: 2,
            data_dir: dir.to_path_buf(),
            api_port: 28_000,
            p2p_port: 29_000,
            extra_accounts: Vec::new(),
        }
    }

    /// Audit L2: a transaction signed for one devnet names its chain id, so two devnets with
    /// distinct ids cannot replay each other's transactions; a resumed devnet keeps its id.
    #[test]
    fn every_devnet_has_its_own_chain_id_and_keeps_it_when_resumed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = init(&options(a.path())).unwrap().chain_id().unwrap();
        let second = init(&options(b.path())).unwrap().chain_id().unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with(DEVNET_CHAIN_ID_PREFIX), "{first}");
        assert!(first.len() <= exo_types::MAX_CHAIN_ID_LEN, "{first}");
        let resumed = init(&options(a.path())).unwrap();
        assert!(resumed.resumed);
        assert_eq!(resumed.chain_id().unwrap(), first);
    }

    #[test]
    fn a_devnet_keeps_the_epoch_length_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let short = Params {
            epoch_length: 12,
            ..Params::default()
        };
        let layout = init_with_params(&options(dir.path()), &short).unwrap();
        let genesis = crate::config::load_genesis(&layout.genesis).unwrap();
        assert_eq!(genesis.params.epoch_length, 12);
        assert!(
            init_with_params(&options(dir.path()), &short)
                .unwrap()
                .resumed
        );
        // Resumed without parameters, it keeps its own; with other ones, it is refused.
        assert!(init(&options(dir.path())).unwrap().resumed);
        let err = init_with_params(&options(dir.path()), &Params::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs of 12 blocks"), "{err}");
        let other = tempfile::tempdir().unwrap();
        let too_short = Params {
            epoch_length: 1,
            ..Params::default()
        };
        assert!(init_with_params(&options(other.path()), &too_short).is_err());
    }

    #[test]
    fn a_joined_node_has_a_fresh_key_the_next_ports_and_the_genesis_validators_as_peers() {
        let dir = tempfile::tempdir().unwrap();
        let join_options = JoinOptions {
            data_dir: dir.path().to_path_buf(),
            api_port: None,
            p2p_port: None,
        };
        let err = join(&join_options).unwrap_err().to_string();
        assert!(err.contains("holds no devnet"), "{err}");

        let layout = init(&options(dir.path())).unwrap();
        let genesis = crate::config::load_genesis(&layout.genesis).unwrap();
        let validators = genesis.validators().unwrap();
        let joined = join(&join_options).unwrap();
        assert_eq!(joined.index, 2);
        assert!(!validators.contains(&joined.public_key));
        assert_eq!(joined.p2p_address, localhost(29_002));
        assert_eq!(joined.api_url, "http://127.0.0.1:28002");
        assert_eq!(joined.validator_api_url, "http://127.0.0.1:28000");

        let config = NodeConfig::load(&joined.config).unwrap();
        assert_eq!(config.key_file, joined.key_file);
        assert_eq!(
            config.genesis_file.canonicalize().unwrap(),
            layout.genesis.canonicalize().unwrap()
        );
        assert_eq!(
            keyfile::read(&config.key_file).unwrap().public_key(),
            joined.public_key
        );
        let peers: Vec<(String, SocketAddr)> = config
            .peers
            .iter()
            .map(|p| (p.public_key.clone(), p.address))
            .collect();
        // Node i's key, at node i's port.
        let expected: Vec<(String, SocketAddr)> = (0..2)
            .map(|i| {
                let key = keyfile::read(&dir.path().join(format!("node-{i}/validator.key")));
                let key = key.unwrap().public_key();
                assert!(validators.contains(&key));
                (address_to_hex(&key), localhost(29_000 + i as u16))
            })
            .collect();
        assert_eq!(peers, expected);
        assert_eq!(
            config.blob_peers,
            ["http://127.0.0.1:28000", "http://127.0.0.1:28001"]
        );

        // A second joined node takes the next index and ports; explicit ports are kept.
        let second = join(&JoinOptions {
            api_port: Some(31_000),
            ..join_options.clone()
        })
        .unwrap();
        assert_eq!(second.index, 3);
        assert_ne!(second.public_key, joined.public_key);
        assert_eq!(second.api_url, "http://127.0.0.1:31000");
        assert_eq!(second.p2p_address, localhost(29_003));
        // The devnet itself still resumes with its genesis validators.
        assert_eq!(init(&options(dir.path())).unwrap().configs.len(), 2);
    }
}
