//! `exo devnet`: a local network of validator processes, in the foreground until Ctrl-C.

use crate::{CliError, GlobalArgs, Report, args::DevnetArgs, block_on, other};
use exo_node::devnet::{self, DevnetLayout, DevnetOptions, DevnetProcesses};
use exo_types::address_to_hex;
use serde_json::{Value, json};
use std::{io::Write, path::Path, time::Duration};

/// How long the validators get to finalize their first block.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the validator processes are checked.
const POLL: Duration = Duration::from_millis(500);

/// Creates or resumes the devnet of `args.data`; unless `--init-only`, runs its validators
/// until SIGINT or SIGTERM and then stops them.
pub fn run(args: DevnetArgs, global: &GlobalArgs) -> Result<Report, CliError> {
    let layout = devnet::init(&DevnetOptions {
        validators: args.validators,
        data_dir: args.data.clone(),
        api_port: args.api_port,
        p2p_port: args.p2p_port,
        extra_accounts: Vec::new(),
    })
    .map_err(other)?;
    let summary = summary(&layout)?;
    if args.init_only {
        let verb = if layout.resumed { "found" } else { "wrote" };
        return Ok(Report::ok(
            format!(
                "{verb} a devnet of {} validators in {}\nstart it with: exo devnet --data {}",
                layout.configs.len(),
                layout.data_dir.display(),
                layout.data_dir.display()
            ),
            summary,
        ));
    }
    let expected = format!("http://127.0.0.1:{}", args.api_port);
    if layout.resumed && layout.api_urls.first() != Some(&expected) {
        note(&format!(
            "{} already holds a devnet; its configurations' ports are used",
            layout.data_dir.display()
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Other(format!("cannot find the exo binary: {e}")))?;
    note(&format!(
        "{} a devnet of {} validators in {} (logs in node-<i>/node.log)",
        if layout.resumed {
            "resuming"
        } else {
            "starting"
        },
        layout.configs.len(),
        layout.data_dir.display()
    ));
    let mut processes = DevnetProcesses::spawn(&exe, &layout).map_err(other)?;
    let outcome = block_on(supervise(&layout, &mut processes, &args, global, &summary));
    processes.stop();
    outcome
}

/// Everything a user needs to reach the devnet.
fn summary(layout: &DevnetLayout) -> Result<Value, CliError> {
    let faucet = layout.faucet_address().map_err(other)?;
    Ok(json!({
        "data_dir": layout.data_dir.display().to_string(),
        "resumed": layout.resumed,
        "validators": layout.configs.len(),
        "genesis": layout.genesis.display().to_string(),
        "faucet_key": layout.faucet_key.display().to_string(),
        "faucet_address": address_to_hex(&faucet),
        "api_urls": layout.api_urls,
        "configs": layout.configs.iter().map(|c| c.display().to_string()).collect::<Vec<_>>(),
    }))
}

/// A progress line on standard error, so that standard output stays the command's result.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "devnet: {message}");
}

/// The last lines of a validator's log, to explain why it died.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn died(layout: &DevnetLayout, i: usize, status: &str) -> String {
    let log = layout.log_path(i);
    format!(
        "validator {i} exited ({status}); its log {} ends with:\n{}",
        log.display(),
        log_tail(&log, 8)
    )
}

async fn supervise(
    layout: &DevnetLayout,
    processes: &mut DevnetProcesses,
    args: &DevnetArgs,
    global: &GlobalArgs,
    summary: &Value,
) -> Result<Report, CliError> {
    let mut stop = std::pin::pin!(exo_node::api::shutdown_signal());
    // Every validator must come up: a death during startup is a broken configuration.
    let started = {
        let check = || match processes.exited().first() {
            Some((i, status)) => Err(anyhow::anyhow!(died(layout, *i, status))),
            None => Ok(()),
        };
        tokio::select! {
            result = devnet::wait_for_height(&layout.api_urls, 1, START_TIMEOUT, check) => {
                Some(result.map_err(other)?)
            }
            () = &mut stop => None,
        }
    };
    let Some(statuses) = started else {
        return Ok(Report::ok(
            "devnet stopped before it started",
            summary.clone(),
        ));
    };
    let height = statuses
        .iter()
        .map(|s| s.finalized_height)
        .min()
        .unwrap_or_default();
    let chain_id = statuses
        .first()
        .map(|s| s.chain_id.clone())
        .unwrap_or_default();
    let ready = if global.json {
        let mut ready = summary.clone();
        ready["event"] = json!("ready");
        ready["chain_id"] = json!(chain_id);
        ready["finalized_height"] = json!(height);
        ready.to_string()
    } else {
        ready_text(layout, summary, &chain_id, height)
    };
    let _ = writeln!(std::io::stdout().lock(), "{ready}");
    if args.demo {
        note(
            "the demo job is not available yet: the job pipeline has not landed; \
             the devnet runs without it",
        );
    }

    let tolerance = layout.fault_tolerance();
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(POLL) => {}
        }
        for (i, status) in processes.exited() {
            note(&died(layout, i, &status));
        }
        let dead = processes.exited_count();
        if dead > tolerance {
            return Err(CliError::Other(format!(
                "{dead} of {} validators exited; more than {tolerance} cannot finalize, \
                 so the devnet stops",
                layout.configs.len()
            )));
        }
    }
    let mut report = summary.clone();
    report["status"] = json!("stopped");
    Ok(Report::ok("devnet stopped", report))
}

fn ready_text(layout: &DevnetLayout, summary: &Value, chain_id: &str, height: u64) -> String {
    let api = layout.api_urls.first().cloned().unwrap_or_default();
    let dir = layout.data_dir.display();
    let faucet = summary["faucet_address"].as_str().unwrap_or_default();
    let node = if api == "http://127.0.0.1:8080" {
        String::new()
    } else {
        format!(" --node {api}")
    };
    format!(
        "Exodus devnet is running: {} validators, chain {chain_id}, finalized height {height}\n\
         \x20 APIs    {}\n\
         \x20 faucet  {dir}/faucet.key  address {faucet}\n\
         \x20 logs    {dir}/node-<i>/node.log\n\
         \n\
         Try, in another terminal (exo is target/release/exo after cargo build --release):\n\
         \x20 curl {api}/v1/status\n\
         \x20 exo{node} account balance {faucet}\n\
         \x20 exo key new --out alice.key\n\
         \x20 exo{node} account transfer --key {dir}/faucet.key --to $(exo key show alice.key) --amount 12.5 --wait\n\
         \x20 exo{node} account balance $(exo key show alice.key)\n\
         \n\
         Ctrl-C stops the network; exo devnet --data {dir} resumes it.",
        layout.configs.len(),
        layout.api_urls.join(" "),
    )
}
