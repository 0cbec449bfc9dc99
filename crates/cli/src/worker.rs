//! `exo worker`: the provider agent (`exo-worker`) in the foreground until SIGINT or SIGTERM.

use crate::{CliError, GlobalArgs, Report, other};
use clap::Args;
use exo_client::keyfile;
use exo_market::DeviceClass;
use exo_types::Amount;
use exo_worker::{IdlePolicy, Misbehave, WorkerConfig};
use serde_json::json;
use std::path::PathBuf;

#[derive(Clone, Debug, Args)]
pub struct WorkerArgs {
    /// Key file of the provider: it pays fees and the bond, and is paid.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Units run at once, and the slots of the offer unless --offer-slots is given.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub slots: u32,
    /// Slots of the offer: units held from assignment until their verdict, a few blocks. For
    /// tiny units, offer many more than run at once; the extra ones wait for a run slot.
    #[arg(long, value_name = "N")]
    pub offer_slots: Option<u32>,
    /// Asked price in EXO per compute unit (10^9 fuel).
    #[arg(long, value_name = "EXO", default_value = "1")]
    pub price: String,
    /// Bond locked when the provider registers, in EXO; slashing takes from it, and offers are
    /// refused once it falls below the chain's minimum.
    #[arg(long, value_name = "EXO", default_value = "100")]
    pub bond: String,
    /// Where the worker keeps its state, blob cache, outputs and compile cache.
    #[arg(long, value_name = "DIR", default_value = "./worker")]
    pub data: PathBuf,
    /// Where each run's /in and /out are made (default: the system temporary directory). A
    /// tmpfs such as /dev/shm is much faster for short units.
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// What kind of machine this is: server, pc, laptop, phone or iot. Jobs may require one.
    #[arg(long, value_name = "C", default_value = "pc", value_parser = parse_class_arg)]
    pub class: DeviceClass,
    /// Where this machine is, as a region name jobs can require (such as eu-west).
    #[arg(long, value_name = "R", default_value = "local", value_parser = parse_region_arg)]
    pub region: String,
    /// Offer work only while the host is idle (low load, on mains power).
    #[arg(long)]
    pub idle_only: bool,
    /// Most threads the proof of a capacity round searches on (default: the machine's cores;
    /// one per free slot). 0 answers no round: the offer's idle slots then earn no capacity
    /// reward.
    #[arg(long, value_name = "N")]
    pub capacity_threads: Option<u32>,
    /// Misbehave on purpose, for tests: wrong-result, wrong-fuel, no-show, copy or
    /// lie-when-alone.
    #[arg(long, value_name = "HOW", value_parser = parse_misbehave)]
    pub misbehave: Option<Misbehave>,
    /// Longest a finished unit's commitment or reveal waits, while other units still run,
    /// for their results to share its transaction, in milliseconds (at most 1000): fewer,
    /// fuller transactions for the chain against a little latency.
    #[arg(long, value_name = "MS", default_value_t = exo_worker::holdback::DEFAULT_RESULT_DELAY_MS,
          value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub result_delay_ms: u64,
}

fn parse_class_arg(text: &str) -> Result<DeviceClass, String> {
    crate::provider::parse_class(text).map_err(|e| e.to_string())
}

fn parse_region_arg(text: &str) -> Result<String, String> {
    crate::provider::parse_region(text).map_err(|e| e.to_string())
}

fn parse_misbehave(text: &str) -> Result<Misbehave, String> {
    Misbehave::parse(text).ok_or_else(|| {
        format!(
            "expected one of {}",
            Misbehave::ALL.map(Misbehave::name).join(", ")
        )
    })
}

/// Runs the worker until SIGINT or SIGTERM; logs go to standard error.
pub fn run(args: WorkerArgs, global: &GlobalArgs) -> Result<Report, CliError> {
    let key = keyfile::read(&args.key)?;
    let address = exo_types::address_to_hex(&keyfile::address(&key));
    let price = Amount::parse_exo(&args.price)?;
    if price == Amount::ZERO {
        return Err(CliError::ZeroAmount);
    }
    let mut config = WorkerConfig::new(global.node.clone(), key, args.data.clone());
    config.slots = args.slots;
    config.offer_slots = args.offer_slots;
    config.scratch_dir = args.scratch.clone();
    config.class = args.class;
    config.region = args.region.clone();
    config.price_per_unit = price;
    config.bond = Amount::parse_exo(&args.bond)?;
    config.idle_only = args.idle_only.then(IdlePolicy::default);
    config.capacity_threads = args.capacity_threads;
    config.misbehave = args.misbehave;
    config.result_delay = std::time::Duration::from_millis(args.result_delay_ms);
    exo_node::init_logging();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(exo_worker::run(config, exo_node::api::shutdown_signal()))
        .map_err(other)?;
    Ok(Report::ok(
        "worker stopped",
        json!({ "status": "stopped", "address": address, "data": args.data.display().to_string() }),
    ))
}
