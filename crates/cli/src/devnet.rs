//! `exo devnet`: a local network of validator processes, in the foreground until Ctrl-C.

use crate::{
    CliError, GlobalArgs, Report,
    args::{DemoFrame, DevnetArgs, DevnetCommand, DevnetJoinArgs},
    block_on,
    job::{self, ResultsArgs, SubmitArgs},
    other,
    tx::{self, TxArgs, TxOptions},
};
use commonware_cryptography::Signer as _;
use exo_client::{Client, keyfile};
use exo_ledger::{GenesisAccount, Params};
use exo_node::devnet::{
    self, DevnetLayout, DevnetOptions, DevnetProcesses, JoinOptions, Processes,
};
use exo_types::{Action, Amount, address_to_hex};
use serde_json::{Value, json};
use std::{
    ffi::OsStr,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// What each worker account holds at genesis (or is sent by the faucet on a resumed devnet).
const WORKER_BALANCE_EXO: u64 = 100_000;

/// How long the validators get to finalize their first block.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the validator processes are checked.
const POLL: Duration = Duration::from_millis(500);

/// Creates or resumes the devnet of `args.data`; unless `--init-only`, runs its validators
/// until SIGINT or SIGTERM and then stops them.
pub fn run(args: DevnetArgs, global: &GlobalArgs) -> Result<Report, CliError> {
    if let Some(DevnetCommand::Join(join_args)) = &args.command {
        return join(join_args);
    }
    let fresh = !args.data.join("genesis.toml").exists();
    let workers = args.worker_count();
    // Worker keys: created here; funded at genesis on a fresh devnet, by the faucet later
    // on a resumed one.
    let mut extra_accounts = Vec::new();
    let mut unfunded = Vec::new();
    for i in 0..workers {
        let path = worker_key_path(&args.data, i);
        let existed = path.exists();
        let key = if existed {
            keyfile::read(&path)?
        } else {
            let dir = worker_dir(&args.data, i);
            std::fs::create_dir_all(&dir)
                .map_err(|e| other(format!("cannot create {}: {e}", dir.display())))?;
            let key = keyfile::generate();
            keyfile::write_new(&path, &key)?;
            key
        };
        if fresh {
            extra_accounts.push(GenesisAccount {
                address: address_to_hex(&key.public_key()),
                balance: Amount::from_exo(WORKER_BALANCE_EXO),
            });
        } else if !existed {
            unfunded.push(key.public_key());
        }
    }
    let options = DevnetOptions {
        validators: args.validators,
        data_dir: args.data.clone(),
        api_port: args.api_port,
        p2p_port: args.p2p_port,
        extra_accounts,
    };
    let layout = match args.epoch_length {
        None => devnet::init(&options),
        Some(epoch_length) => devnet::init_with_params(
            &options,
            &Params {
                epoch_length,
                ..Params::default()
            },
        ),
    }
    .map_err(other)?;
    let mut summary = summary(&layout)?;
    summary["workers"] = json!(
        (0..workers)
            .map(|i| worker_key_path(&layout.data_dir, i).display().to_string())
            .collect::<Vec<_>>()
    );
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
    let mut workers = Processes::default();
    let outcome = block_on(supervise(
        &layout,
        &mut processes,
        &mut workers,
        &exe,
        &unfunded,
        &args,
        global,
        &summary,
    ));
    // Workers first: they would only retry against stopped validators.
    workers.stop();
    processes.stop();
    outcome
}

/// `exo devnet join`: writes a node with a fresh key beside the devnet's validators and says
/// how to start and register it.
fn join(args: &DevnetJoinArgs) -> Result<Report, CliError> {
    let joined = devnet::join(&JoinOptions {
        data_dir: args.data.clone(),
        api_port: args.api_port,
        p2p_port: args.p2p_port,
    })
    .map_err(other)?;
    let dir = args.data.display();
    let address = address_to_hex(&joined.public_key);
    let config = joined.config.display();
    let key = joined.key_file.display();
    let api = &joined.validator_api_url;
    let text = format!(
        "wrote node {} of the devnet in {dir}: key {key}, address {address}\n\
         \n\
         Start it (it waits for the validators to accept it):\n\
         \x20 exo node --config {config}\n\
         Fund it and register it as a validator candidate, through a genesis validator's API:\n\
         \x20 exo --node {api} account transfer --key {dir}/faucet.key --to {address} --amount 2000 --wait\n\
         \x20 exo --node {api} stake register-validator --key {key} --p2p-address {} --bond 1000\n\
         From the next epoch the validators accept its connection and it follows the chain. Back\n\
         it above the weakest member and the last block of the epoch elects it for the epoch\n\
         after next:\n\
         \x20 exo --node {api} stake nominate --key NOMINATOR.key --target {address} --bond 10000\n\
         \x20 exo --node {api} validators --epoch N\n\
         Its own API, once it has caught up: {}",
        joined.index, joined.p2p_address, joined.api_url,
    );
    Ok(Report::ok(
        text,
        json!({
            "index": joined.index,
            "config": joined.config.display().to_string(),
            "key_file": joined.key_file.display().to_string(),
            "address": address,
            "p2p_address": joined.p2p_address.to_string(),
            "api_url": joined.api_url,
            "validator_api_url": joined.validator_api_url,
        }),
    ))
}

fn worker_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("worker-{i}"))
}

fn worker_key_path(data: &Path, i: usize) -> PathBuf {
    worker_dir(data, i).join("worker.key")
}

/// Starts `count` `exo worker` processes: worker i against validator i mod V, logging to
/// `worker-<i>/worker.log`.
fn spawn_workers(
    workers: &mut Processes,
    exe: &Path,
    layout: &DevnetLayout,
    count: usize,
) -> anyhow::Result<()> {
    for i in 0..count {
        let dir = worker_dir(&layout.data_dir, i);
        let url = &layout.api_urls[i % layout.api_urls.len()];
        let (key, data) = (dir.join("worker.key"), dir.join("data"));
        let args = [
            OsStr::new("--node"),
            OsStr::new(url),
            OsStr::new("worker"),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--data"),
            data.as_os_str(),
        ];
        workers
            .start(exe, &args, &dir.join("worker.log"))
            .map_err(|e| anyhow::anyhow!("cannot start worker {i}: {e:#}"))?;
    }
    Ok(())
}

/// Sends each worker account of a resumed devnet its balance from the faucet.
async fn fund_workers(
    layout: &DevnetLayout,
    accounts: &[exo_types::Address],
) -> Result<(), CliError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let client = Client::new(&layout.api_urls[0])?;
    let faucet = keyfile::read(&layout.faucet_key)?;
    let options = TxOptions {
        fee: None,
        nonce: None,
        wait: true,
        timeout: Duration::from_secs(60),
    };
    for to in accounts {
        let action = Action::Transfer {
            to: to.clone(),
            amount: Amount::from_exo(WORKER_BALANCE_EXO),
        };
        let sent = tx::send(&client, &faucet, action, &options).await?;
        if !sent.ok() {
            return Err(CliError::Other(format!(
                "funding worker {} failed",
                address_to_hex(to)
            )));
        }
    }
    Ok(())
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

#[allow(clippy::too_many_arguments)]
async fn supervise(
    layout: &DevnetLayout,
    processes: &mut DevnetProcesses,
    workers: &mut Processes,
    exe: &Path,
    unfunded: &[exo_types::Address],
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
    let worker_count = args.worker_count();
    if worker_count > 0 {
        if let Err(err) = fund_workers(layout, unfunded).await {
            note(&format!("cannot fund the new workers: {err}"));
        }
        spawn_workers(workers, exe, layout, worker_count).map_err(other)?;
        note(&format!(
            "started {worker_count} workers (logs in worker-<i>/worker.log)"
        ));
    }
    let mut demo = std::pin::pin!(async {
        if args.demo {
            run_demo(layout, worker_count, args.demo_frame).await
        } else {
            Ok(String::new())
        }
    });
    let mut demo_done = !args.demo;

    let tolerance = layout.fault_tolerance();
    loop {
        tokio::select! {
            () = &mut stop => break,
            result = &mut demo, if !demo_done => {
                demo_done = true;
                match result {
                    Ok(text) => {
                        let _ = writeln!(std::io::stdout().lock(), "{text}");
                    }
                    Err(err) => note(&format!("the demo failed: {err}; the devnet keeps running")),
                }
                note("Ctrl-C stops the network");
            }
            () = tokio::time::sleep(POLL) => {}
        }
        for (i, status) in processes.exited() {
            note(&died(layout, i, &status));
        }
        for (i, status) in workers.exited() {
            let log = worker_dir(&layout.data_dir, i).join("worker.log");
            note(&format!(
                "worker {i} exited ({status}); its log {} ends with:\n{}",
                log.display(),
                log_tail(&log, 8)
            ));
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
         \x20 web     {api}/  the dashboard (every validator serves one)\n\
         \x20 faucet  {dir}/faucet.key  address {faucet}\n\
         \x20 logs    {dir}/node-<i>/node.log\n\
         \n\
         Try, in another terminal (exo is target/release/exo after cargo build --release):\n\
         \x20 curl {api}/v1/status\n\
         \x20 exo{node} account balance {faucet}\n\
         \x20 exo key new --out alice.key\n\
         \x20 exo{node} account transfer --key {dir}/faucet.key --to $(exo key show alice.key) --amount 12.5 --wait\n\
         \x20 exo{node} account balance $(exo key show alice.key)\n\
         \x20 exo devnet join --data {dir}   # a fresh node that registers and is elected (docs/joining.md)\n\
         \n\
         Ctrl-C stops the network; exo devnet --data {dir} resumes it.",
        layout.configs.len(),
        layout.api_urls.join(" "),
    )
}

/// The demo's tiles: one unit each.
const DEMO_TILE: (u32, u32) = (80, 60);
/// Offers looked at to find the workers' ones (a fresh devnet has only those).
const OFFERS_PAGE: u64 = 100;
/// How long the workers get to benchmark, register and post their offers.
const OFFERS_TIMEOUT: Duration = Duration::from_secs(600);

/// Renders a frame on the devnet's workers as the faucet account and writes
/// `DIR/demo/render.png`; returns what to print.
async fn run_demo(
    layout: &DevnetLayout,
    workers: usize,
    frame: DemoFrame,
) -> Result<String, CliError> {
    let DemoFrame {
        width,
        height,
        samples,
    } = frame;
    if workers < 2 {
        return Err(CliError::Invalid(
            "the demo submits with trust 2, so it needs at least 2 workers".into(),
        ));
    }
    let start = Instant::now();
    let client = Client::new(&layout.api_urls[0])?;
    // Wait until every worker has an offer on the book (at least 2 after the timeout).
    let mut last_note = Instant::now();
    loop {
        let providers = client
            .offering_providers(OFFERS_PAGE)
            .await
            .unwrap_or_default();
        if providers.len() >= workers {
            break;
        }
        if start.elapsed() > OFFERS_TIMEOUT {
            if providers.len() >= 2 {
                break;
            }
            return Err(CliError::Other(format!(
                "only {} of {workers} workers posted offers within {} s (see worker-<i>/worker.log)",
                providers.len(),
                OFFERS_TIMEOUT.as_secs()
            )));
        }
        if last_note.elapsed() > Duration::from_secs(15) || start.elapsed() < Duration::from_secs(1)
        {
            note(&format!(
                "demo: waiting for the workers to benchmark and post offers ({} of {workers})",
                providers.len()
            ));
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let offers_after = start.elapsed();
    let dir = layout.data_dir.join("demo");
    let io = |path: &Path, e: std::io::Error| {
        CliError::Other(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let module = dir.join("render.wasm");
    std::fs::write(&module, exo_apps::RENDER_WASM).map_err(|e| io(&module, e))?;
    let scene = dir.join(exo_apps::render::SCENE_INPUT);
    let studio = exo_apps::render::studio_scene().map_err(other)?;
    std::fs::write(&scene, &studio.canonical).map_err(|e| io(&scene, e))?;
    let tiles =
        exo_apps::render::plan_tiles(width, height, DEMO_TILE.0, DEMO_TILE.1).map_err(other)?;
    let lines: Vec<String> = tiles
        .iter()
        .map(|t| exo_apps::render::tile_args(width, height, t, samples, 0).join(" "))
        .collect();
    let unit_args = dir.join("unit-args.txt");
    std::fs::write(&unit_args, lines.join("\n") + "\n").map_err(|e| io(&unit_args, e))?;
    note(&format!(
        "demo: {} workers are offering; submitting a {width}x{height} render of the \
         studio scene (the bunny), {samples} samples per pixel, {} tiles, trust 2",
        workers,
        tiles.len()
    ));
    let submit_args = SubmitArgs {
        tx: TxArgs {
            key: layout.faucet_key.clone(),
            fee: None,
            nonce: None,
            no_wait: false,
            timeout: 60,
        },
        app: module.display().to_string(),
        params: Vec::new(),
        developer: None,
        units: Some(tiles.len() as u32),
        scene: None,
        frames: 1,
        tile: DEMO_TILE,
        cores: 1,
        memory_mib: 256,
        gpu: None,
        region: None,
        class: None,
        max_price: "2".into(),
        trust: 2,
        fuel_limit: 50_000_000_000,
        // Tiles differ widely in cost (sky against bunny): unit 0 would not bound the others.
        estimate: false,
        inputs: vec![scene],
        unit_args: Some(unit_args),
        wait: true,
        wait_timeout: 1_800,
    };
    let submitted_at = Instant::now();
    let report = job::submit(&client, &submit_args, true).await?;
    if !report.success {
        return Err(CliError::Other(format!(
            "the job was rejected: {}",
            report.text
        )));
    }
    let id = report.json["job_id"]
        .as_u64()
        .ok_or_else(|| CliError::Other("the node did not report the job's id".into()))?;
    let job_took = submitted_at.elapsed();
    let results_dir = dir.join("results");
    let results = job::results(
        &client,
        &ResultsArgs {
            id,
            out: results_dir.clone(),
            sources: Vec::new(),
        },
    )
    .await?;
    let mut ppms = Vec::with_capacity(tiles.len());
    for i in 0..tiles.len() {
        let path = results_dir
            .join(format!("unit-{i}"))
            .join("out")
            .join("tile.ppm");
        let bytes = std::fs::read(&path).map_err(|e| {
            CliError::Other(format!(
                "tile {i} has no output ({}: {e}); {}",
                path.display(),
                results.text
            ))
        })?;
        ppms.push(bytes);
    }
    let parts: Vec<_> = tiles
        .iter()
        .copied()
        .zip(ppms.iter().map(Vec::as_slice))
        .collect();
    let png = exo_apps::render::assemble_png(width, height, &parts).map_err(other)?;
    let png_path = dir.join("render.png");
    std::fs::write(&png_path, png).map_err(|e| io(&png_path, e))?;
    let job = client
        .job(id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("job {id} does not exist")))?;
    Ok(demo_text(
        &job,
        &png_path,
        offers_after,
        job_took,
        start.elapsed(),
    ))
}

/// The demo's outcome: the job's accounts, which must add up, and where the frame is.
fn demo_text(
    job: &exo_client::wire::Job,
    png: &Path,
    offers_after: Duration,
    job_took: Duration,
    total: Duration,
) -> String {
    let a = &job.accounts;
    let c = &job.counts;
    let mut text = format!(
        "\nDemo job {} {}: {} units, {} accepted, {} failed (trust 2)\n\
         \x20 escrowed   {:>16} EXO\n",
        job.id,
        job.state,
        job.unit_count,
        c.accepted,
        c.failed,
        a.escrowed.to_exo_string()
    );
    for p in &a.paid {
        text.push_str(&format!(
            "\x20 paid       {:>16} EXO to provider {}\n",
            p.amount.to_exo_string(),
            p.provider
        ));
    }
    let sum = [a.paid_total, a.royalties, a.fees, a.refunded, a.held]
        .into_iter()
        .try_fold(Amount::ZERO, Amount::checked_add);
    text.push_str(&format!(
        "\x20 royalties  {:>16} EXO\n\
         \x20 fees       {:>16} EXO\n\
         \x20 refunded   {:>16} EXO\n\
         \x20 held       {:>16} EXO\n\
         \x20 {}\n\
         \x20 frame      {}\n\
         \x20 time       offers after {:.0} s, job {:.0} s, demo {:.0} s",
        a.royalties.to_exo_string(),
        a.fees.to_exo_string(),
        a.refunded.to_exo_string(),
        a.held.to_exo_string(),
        match sum {
            Some(sum) if sum == a.escrowed => {
                "paid + royalties + fees + refunded + held = escrowed".to_string()
            }
            Some(sum) => format!(
                "MISMATCH: paid + royalties + fees + refunded + held = {} EXO, escrowed {} EXO",
                sum.to_exo_string(),
                a.escrowed.to_exo_string()
            ),
            None => "MISMATCH: the accounts overflow".to_string(),
        },
        png.display(),
        offers_after.as_secs_f64(),
        job_took.as_secs_f64(),
        total.as_secs_f64(),
    ));
    text
}
