//! The command line, declared with clap. Each subcommand's arguments live here; what it does
//! lives in its own module.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exodus: a decentralized compute market.
#[derive(Debug, Parser)]
#[command(name = "exo", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// URL of the node's API.
    #[arg(
        long,
        global = true,
        env = "EXO_NODE",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub node: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands. Each is one variant with its arguments declared here and its work done by
/// a `run` function in a module of its own. Still to come: `exec`, `provider`, `job`, `app`
/// and `worker`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a provider, describe its machine, post and cancel offers, retire.
    #[command(subcommand)]
    Provider(crate::provider::ProviderCommand),
    /// Publish and list task apps.
    #[command(subcommand)]
    App(crate::app::AppCommand),
    /// Register a validator, nominate, unbond, withdraw, unjail.
    #[command(subcommand)]
    Stake(crate::stake::StakeCommand),
    /// List the validator candidates, or the committee of an epoch with its backing.
    Validators(crate::stake::ValidatorsArgs),
    /// Submit jobs, follow and cancel them, fetch their outputs.
    #[command(subcommand)]
    Job(crate::job::JobCommand),
    /// Run a work unit in the sandbox on this machine.
    #[command(subcommand)]
    Exec(crate::exec::ExecCommand),
    /// Create and inspect key files.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Read balances and send transfers.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Run a validator and its HTTP API until SIGINT or SIGTERM.
    Node(NodeArgs),
    /// Run a local network of validators, one process each, until Ctrl-C; or add a node
    /// with a fresh key to one (`exo devnet join`).
    Devnet(DevnetArgs),
    /// Measure this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run a provider: benchmark, register, offer, and run assigned units until Ctrl-C.
    Worker(crate::worker::WorkerArgs),
}

#[derive(Clone, Debug, Args)]
pub struct NodeArgs {
    /// The node's config.toml (as `exo devnet` and `exo devnet join` write them). A node whose
    /// key is not a genesis validator follows the chain from the peers it lists and signs once
    /// the chain elects it.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Clone, Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevnetArgs {
    #[command(subcommand)]
    pub command: Option<DevnetCommand>,
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Directory of the devnet: created on the first start, resumed on the next ones.
    #[arg(long, value_name = "DIR", default_value = "./devnet")]
    pub data: PathBuf,
    /// Validator i serves its API on this port + i (127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub api_port: u16,
    /// Validator i listens for its peers on this port + i (127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 9000)]
    pub p2p_port: u16,
    /// Blocks per epoch of a new devnet (the genesis default, 100000, when not given): the
    /// committee can change only at an epoch boundary, and the chain elects each committee
    /// two epochs ahead. A resumed devnet keeps its own and refuses another.
    #[arg(long, value_name = "BLOCKS",
          value_parser = clap::value_parser!(u64).range(2..=MAX_EPOCH_LENGTH))]
    pub epoch_length: Option<u64>,
    /// Write keys, genesis and configurations, then exit without starting anything.
    #[arg(long)]
    pub init_only: bool,
    /// Also run a demo job on the network: render a frame on the workers and write
    /// DIR/demo/render.png. Implies --workers 3 unless given.
    #[arg(long, conflicts_with = "init_only")]
    pub demo: bool,
    /// Provider agents (`exo worker`) to run, worker i against validator i mod V; their keys
    /// are funded at genesis. 0 unless --demo.
    #[arg(long, value_name = "M")]
    pub workers: Option<usize>,
    /// The demo's frame of the studio scene: width x height x samples per pixel, rendered in
    /// tiles of 80 x 60. 32 samples: with light sampling they cost about the fuel 64 did
    /// without, and are cleaner than 64 were (docs/render.md).
    #[arg(long, value_name = "WxHxS", default_value = "400x300x32", value_parser = parse_frame)]
    pub demo_frame: DemoFrame,
}

/// Longest epoch `exo devnet --epoch-length` takes, in blocks (a year of idle blocks).
pub const MAX_EPOCH_LENGTH: u64 = 366 * 86_400;

#[derive(Clone, Debug, Subcommand)]
pub enum DevnetCommand {
    /// Add a node with a fresh key to a devnet; it joins the committee by registering.
    ///
    /// Writes DIR/node-<i>/ (key and config.toml, the genesis validators as its peers). Start
    /// it with `exo node --config`, fund its account and register it with `exo stake
    /// register-validator`: the validators then accept its connection, it follows the chain,
    /// and it signs once nominations elect it (docs/joining.md).
    Join(DevnetJoinArgs),
}

#[derive(Clone, Debug, Args)]
pub struct DevnetJoinArgs {
    /// Directory of the devnet to join.
    #[arg(long, value_name = "DIR", default_value = "./devnet")]
    pub data: PathBuf,
    /// The node's API port (127.0.0.1); the devnet's first API port + i by default.
    #[arg(long, value_name = "PORT")]
    pub api_port: Option<u16>,
    /// The node's p2p port (127.0.0.1); the devnet's first p2p port + i by default.
    #[arg(long, value_name = "PORT")]
    pub p2p_port: Option<u16>,
}

/// The frame `exo devnet --demo` renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoFrame {
    pub width: u32,
    pub height: u32,
    pub samples: u32,
}

/// Largest demo frame side, in pixels, and most samples per pixel.
const MAX_DEMO_SIDE: u32 = 4_096;
const MAX_DEMO_SAMPLES: u32 = 1_024;

/// Parses `WIDTHxHEIGHTxSAMPLES`.
fn parse_frame(text: &str) -> Result<DemoFrame, String> {
    let parts: Vec<&str> = text.split('x').collect();
    let [width, height, samples] = parts.as_slice() else {
        return Err("expected WIDTHxHEIGHTxSAMPLES, for example 400x300x32".into());
    };
    let number = |s: &str, what: &str, max: u32| match s.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{what} must be a whole number from 1 to {max}, not {s:?}"
        )),
    };
    Ok(DemoFrame {
        width: number(width, "the width", MAX_DEMO_SIDE)?,
        height: number(height, "the height", MAX_DEMO_SIDE)?,
        samples: number(samples, "the samples per pixel", MAX_DEMO_SAMPLES)?,
    })
}

impl DevnetArgs {
    /// Workers to run: `--workers`, or 3 with `--demo`, else 0.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or(if self.demo { 3 } else { 0 })
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Finalized transfers per second, finality latency and the signature-verification
    /// ceiling of a local network, and the peak memory of a devnet of validator processes.
    Chain(BenchChainArgs),
    /// Batch-matching throughput at 10k, 100k and 1M resting orders, and the cost of one
    /// demand-offer constraint check.
    Market,
    /// Slowdown of the sandbox against native on the same kernels (fuel metering on), and
    /// the latency of running a tiny module.
    Exec,
    /// Accepted work units per second and the overhead per unit of the whole market: four
    /// validators and three provider workers in this process, tiny units at trust 1.
    Tasks(BenchTasksArgs),
    /// A devnet in this process under honest load and every attack of the security audit at
    /// once, for a bounded time; fails (exit 3) when a token is lost, a unit stuck, finality
    /// stalls, an honest transfer or job is not served, or an attack gets a 5xx.
    Soak(BenchSoakArgs),
}

#[derive(Clone, Debug, Args)]
pub struct BenchSoakArgs {
    /// Seconds of honest load and attacks (10 to 3600).
    #[arg(long, value_name = "N", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(10..=3_600))]
    pub secs: u64,
    /// The attacks to run, comma-separated (default: all of them).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', value_parser = exo_bench::soak::ATTACKS)]
    pub attacks: Vec<String>,
    /// Honest load alone, to compare its figures with the attacks' (overrides --attacks).
    #[arg(long)]
    pub no_attacks: bool,
    /// Longest gap between finalized blocks accepted, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub max_gap_ms: u64,
}

#[derive(Clone, Debug, Args)]
pub struct BenchTasksArgs {
    /// Units of the throughput phase.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub units: u32,
    /// Units per job in the throughput phase.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub job_units: u32,
    /// Single-unit jobs of the latency phase, one every `--latency-interval-ms`.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub latency_jobs: u32,
    /// Milliseconds between the latency phase's jobs: at 300 their lives overlap; from about
    /// 1,500 each job runs on an otherwise idle chain.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub latency_interval_ms: u64,
    /// Units each worker runs at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub run_slots: u32,
    /// Slots of each worker's offer (units held from assignment to verdict).
    #[arg(long, value_name = "N", default_value_t = 1_024)]
    pub offer_slots: u32,
    /// The validators' minimum block interval under load, in milliseconds (a node's
    /// `min_block_ms`; 0 proposes as soon as there is work; at most 750).
    #[arg(long, value_name = "MS", default_value_t = exo_node::config::DEFAULT_MIN_BLOCK_MS)]
    pub min_block_ms: u64,
    /// The units' app: hello (writes an output file) or tiny (an empty module).
    #[arg(long, value_name = "APP", default_value = "hello", value_parser = ["hello", "tiny"])]
    pub app: String,
}

#[derive(Clone, Debug, Args)]
pub struct BenchChainArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Transfers of the throughput phase.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub txs: usize,
    /// Transfers of the latency phase, one every 10 ms.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub latency_txs: usize,
    /// Skip the devnet memory measurement (about 30 s).
    #[arg(long)]
    pub no_devnet: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a new ed25519 key and write it to a new file (mode 0600).
    New {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the address of a key file.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print an account's finalized balance.
    Balance {
        /// Account address, 64 hex characters.
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Sign and submit a transfer.
    Transfer(TransferArgs),
}

#[derive(Clone, Debug, Args)]
pub struct TransferArgs {
    /// Key file of the sender.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Recipient address, 64 hex characters.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// Amount in EXO, with up to 9 decimals.
    #[arg(long, value_name = "EXO")]
    pub amount: String,
    /// Fee in EXO; the chain's minimum fee if not given.
    #[arg(long, value_name = "EXO")]
    pub fee: Option<String>,
    /// Nonce to use instead of the account's next finalized nonce (to queue several
    /// transfers before the first is finalized).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transfer is finalized and report its outcome.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, how long to wait, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "exo",
            "account",
            "balance",
            "ab",
            "--json",
            "--node",
            "http://n:1",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.node, "http://n:1");
        let cli = Cli::try_parse_from(["exo", "--json", "key", "show", "k"]).unwrap();
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Key(KeyCommand::Show { .. })));
    }

    #[test]
    fn transfer_requires_key_to_and_amount() {
        assert!(Cli::try_parse_from(["exo", "account", "transfer", "--to", "ab"]).is_err());
        let cli = Cli::try_parse_from([
            "exo", "account", "transfer", "--key", "k", "--to", "ab", "--amount", "1.5", "--wait",
        ])
        .unwrap();
        let Command::Account(AccountCommand::Transfer(args)) = cli.command else {
            panic!("not a transfer");
        };
        assert!(args.wait);
        assert_eq!(args.fee, None);
        assert_eq!(args.timeout, 60);
    }

    #[test]
    fn devnet_defaults() {
        let cli = Cli::try_parse_from(["exo", "devnet"]).unwrap();
        let Command::Devnet(args) = cli.command else {
            panic!("not devnet");
        };
        assert_eq!(args.validators, 4);
        assert_eq!(args.data, PathBuf::from("./devnet"));
        assert_eq!((args.api_port, args.p2p_port), (8080, 9000));
        assert!(!args.init_only && !args.demo);
        assert!(Cli::try_parse_from(["exo", "devnet", "--demo", "--init-only"]).is_err());
        assert_eq!(args.epoch_length, None);
        assert!(args.command.is_none());
        let cli = Cli::try_parse_from(["exo", "bench", "chain", "--json", "--txs", "10"]).unwrap();
        assert!(cli.global.json);
        let Command::Bench(BenchCommand::Chain(args)) = cli.command else {
            panic!("not bench chain");
        };
        assert_eq!(args.txs, 10);
        assert!(Cli::try_parse_from(["exo", "node"]).is_err());
        let cli = Cli::try_parse_from(["exo", "bench", "tasks", "--units", "50"]).unwrap();
        let Command::Bench(BenchCommand::Tasks(args)) = cli.command else {
            panic!("not bench tasks");
        };
        assert_eq!(
            (args.units, args.job_units, args.app.as_str()),
            (50, 1_000, "hello")
        );
        assert!(Cli::try_parse_from(["exo", "bench", "tasks", "--app", "render"]).is_err());
    }

    #[test]
    fn devnet_join_is_a_subcommand_and_epoch_lengths_are_bounded() {
        let cli = Cli::try_parse_from(["exo", "devnet", "join", "--data", "d", "--api-port", "9"])
            .unwrap();
        let Command::Devnet(args) = cli.command else {
            panic!("not devnet");
        };
        let Some(DevnetCommand::Join(join)) = args.command else {
            panic!("not join");
        };
        assert_eq!(join.data, PathBuf::from("d"));
        assert_eq!((join.api_port, join.p2p_port), (Some(9), None));
        let cli = Cli::try_parse_from(["exo", "devnet", "--epoch-length", "20"]).unwrap();
        let Command::Devnet(args) = cli.command else {
            panic!("not devnet");
        };
        assert_eq!(args.epoch_length, Some(20));
        for bad in ["0", "1", "99999999999"] {
            assert!(Cli::try_parse_from(["exo", "devnet", "--epoch-length", bad]).is_err());
        }
        // The devnet's own options belong to running it, not to joining it.
        assert!(Cli::try_parse_from(["exo", "devnet", "--validators", "4", "join"]).is_err());
    }

    #[test]
    fn bench_soak_bounds_its_duration_and_names_its_attacks() {
        let cli = Cli::try_parse_from([
            "exo",
            "bench",
            "soak",
            "--secs",
            "60",
            "--attacks",
            "h1_ranged_get,h1_blob_miss",
        ])
        .unwrap();
        let Command::Bench(BenchCommand::Soak(args)) = cli.command else {
            panic!("not bench soak");
        };
        assert_eq!(args.secs, 60);
        assert_eq!(args.attacks, ["h1_ranged_get", "h1_blob_miss"]);
        assert_eq!(args.max_gap_ms, 2_000);
        for bad in [
            &["--secs", "5"][..],
            &["--secs", "3601"],
            &["--attacks", "h1_ranged_get,nonsense"],
        ] {
            let mut argv = vec!["exo", "bench", "soak"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
