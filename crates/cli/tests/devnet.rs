//! End to end over real sockets on 127.0.0.1: the `exo` binary runs a devnet of four
//! validator processes, and the tests drive it through the same binary and the client.
//!
//! The two tests share the machine's cores, so they take turns. Every process they start is
//! stopped when a test ends, whether it passes or panics.

#![allow(clippy::unwrap_used)]

mod browser;

use commonware_cryptography::Signer as _;
use exo_client::{Client, ClientError, keyfile, wire};
use exo_types::{Action, Amount, SignedTx, UnsignedTx};
use serde_json::Value;
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

const EXO: &str = env!("CARGO_BIN_EXE_exo");
const VALIDATORS: usize = 4;

/// One test at a time: each runs four validators on two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Ports `base..base + 10`: APIs at `base + i`, p2p at `base + 5 + i`. Derived from the
/// process id (and `slot`, one per test) so that concurrent runs rarely meet; checked free.
fn free_ports(slot: u32) -> u16 {
    let mut base = 20_000 + ((std::process::id() * 2 + slot) % 1_200) * 10;
    loop {
        let all_free = (0..10).all(|i| TcpListener::bind(("127.0.0.1", (base + i) as u16)).is_ok());
        if all_free {
            return base as u16;
        }
        base = 20_000 + (base - 20_000 + 10) % 12_000;
    }
}

/// Processes started by a test: SIGTERM on drop, SIGKILL if they linger, and the same for
/// the validators a devnet process started (found by process id, never by name).
#[derive(Default)]
struct Processes {
    children: Vec<Child>,
    grandchildren: Vec<u32>,
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit, at most `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Child process ids of `pid` (Linux).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                signal(child.id(), "TERM");
            }
        }
        for child in &mut self.children {
            if wait_exit(child, Duration::from_secs(15)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for pid in &self.grandchildren {
            // Only if the id still names an `exo` process (ids are reused).
            let cmdline =
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.contains("exo") {
                signal(*pid, "KILL");
            }
        }
    }
}

/// Starts `exo ARGS` with its output in `log`.
fn spawn(args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(EXO)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Runs `exo ARGS --json` to completion; returns the exit code and the JSON it printed.
fn exo(args: &[&str]) -> (i32, Value) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(EXO).args(args).arg("--json").output().unwrap();
    let text = String::from_utf8_lossy(&stdout);
    let json = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "exo {args:?} printed no JSON: {text}\n{}",
            String::from_utf8_lossy(&stderr)
        )
    });
    (status.code().unwrap_or(-1), json)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn clients(api: u16) -> Vec<Client> {
    (0..VALIDATORS)
        .map(|i| Client::new(&format!("http://127.0.0.1:{}", api + i as u16)).unwrap())
        .collect()
}

/// Waits until every client in `which` reports a finalized height of at least `height`;
/// returns the lowest height they report.
async fn wait_height(clients: &[&Client], height: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let mut lowest = u64::MAX;
        for client in clients {
            let h = match client.status().await {
                Ok(status) => status.finalized_height,
                Err(_) => 0,
            };
            lowest = lowest.min(h);
        }
        if lowest >= height {
            return lowest;
        }
        assert!(
            start.elapsed() < limit,
            "validators did not reach height {height} in {limit:?} (lowest {lowest})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The state root every client reports for finalized block `height`; all must agree.
async fn common_state_root(clients: &[&Client], height: u64) -> wire::Block {
    let mut blocks = Vec::new();
    for client in clients {
        blocks.push(client.block(height).await.unwrap().expect("block exists"));
    }
    for block in &blocks[1..] {
        assert_eq!(block.digest, blocks[0].digest, "same block at {height}");
        assert_eq!(
            block.state_root, blocks[0].state_root,
            "same state root at {height}"
        );
    }
    blocks.swap_remove(0)
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// `devnet EXTRA... --data DATA` with APIs from port `api` and peers from `api + 5`.
fn devnet_args(data: &Path, api: u16, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["devnet".to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "--data".into(),
        data.display().to_string(),
        "--api-port".into(),
        api.to_string(),
        "--p2p-port".into(),
        (api + 5).to_string(),
    ]);
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// An `exo devnet` process started by a test in a directory of its own, and its validators'
/// clients.
struct Devnet {
    dir: tempfile::TempDir,
    data: PathBuf,
    rt: tokio::runtime::Runtime,
    clients: Vec<Client>,
    processes: Processes,
}

impl Devnet {
    /// `exo devnet EXTRA...` on the ports of `slot`, once every validator finalized height 2.
    ///
    /// With `EXO_KEEP_DEVNET` set, the devnet's directory (logs, data) is kept for a post-mortem
    /// and its path printed.
    fn start(slot: u32, extra: &[&str]) -> Self {
        Self::start_with_genesis(slot, extra, None)
    }

    /// [`Self::start`], on a genesis that `edit` rewrites (from the text `exo devnet
    /// --init-only` wrote) before any validator runs.
    fn start_with_genesis(
        slot: u32,
        extra: &[&str],
        edit: Option<&dyn Fn(&str) -> String>,
    ) -> Self {
        let keep = std::env::var_os("EXO_KEEP_DEVNET").is_some();
        let dir = tempfile::Builder::new()
            .disable_cleanup(keep)
            .tempdir()
            .unwrap();
        if keep {
            println!("devnet directory kept: {}", dir.path().display());
        }
        let data = dir.path().join("devnet");
        let api = free_ports(slot);
        if let Some(edit) = edit {
            let mut init = extra.to_vec();
            init.push("--init-only");
            let (code, written) = exo(&strs(&devnet_args(&data, api, &init)));
            assert_eq!(code, 0, "{written}");
            let genesis = data.join("genesis.toml");
            let text = std::fs::read_to_string(&genesis).unwrap();
            std::fs::write(&genesis, edit(&text)).unwrap();
        }
        let mut processes = Processes::default();
        processes.children.push(spawn(
            &strs(&devnet_args(&data, api, extra)),
            &dir.path().join("devnet.log"),
        ));
        let devnet = Self {
            dir,
            data,
            rt: runtime(),
            clients: clients(api),
            processes,
        };
        devnet
            .rt
            .block_on(wait_height(&devnet.all(), 2, Duration::from_secs(45)));
        devnet
    }

    fn all(&self) -> Vec<&Client> {
        self.clients.iter().collect()
    }

    /// `exo devnet --workers N` on the ports of `slot`, once its `workers` offer (within
    /// `limit`); the workers are stopped with the devnet.
    fn with_workers(slot: u32, workers: usize, limit: Duration) -> Self {
        let n = workers.to_string();
        let mut devnet = Self::start(slot, &["--workers", &n]);
        devnet.processes.grandchildren = children_of(devnet.processes.children[0].id());
        devnet
            .rt
            .block_on(wait_for_offers(&devnet.clients[0], workers, limit));
        devnet
    }

    /// Validator 0's API and the faucet's key file.
    fn node_and_faucet(&self) -> (String, String) {
        (
            self.clients[0].url().to_string(),
            path(&self.data, "faucet.key"),
        )
    }
}

/// A job's accounts: `escrowed = paid + royalties + fees + refunded + held`.
fn assert_accounts_add_up(a: &wire::JobAccounts) {
    let sum = [a.paid_total, a.royalties, a.fees, a.refunded, a.held]
        .into_iter()
        .try_fold(Amount::ZERO, Amount::checked_add);
    assert_eq!(sum, Some(a.escrowed), "{a:?}");
}

/// Waits until `workers` providers have an offer on the book, at most `limit`.
async fn wait_for_offers(client: &Client, workers: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let providers = client.offering_providers(100).await.unwrap_or_default();
        if providers.len() >= workers {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "only {} of {workers} workers offer",
            providers.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `exo account transfer --wait` of `amount` EXO from `key` to `to`, through `node`; returns the
/// exit code and the receipt.
fn transfer(node: &str, key: &str, to: &str, amount: &str) -> (i32, Value) {
    exo(&[
        "--node", node, "account", "transfer", "--key", key, "--to", to, "--amount", amount,
        "--wait",
    ])
}

#[test]
fn devnet_serves_transfers_with_one_state_on_every_validator() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let Devnet {
        dir,
        data,
        rt,
        clients,
        mut processes,
    } = Devnet::start(0, &["--validators", "4"]);
    let all: Vec<&Client> = clients.iter().collect();
    processes.grandchildren = children_of(processes.children[0].id());
    assert_eq!(processes.grandchildren.len(), VALIDATORS);

    // A new account receives 12.5 EXO from the faucet.
    let alice_key = path(dir.path(), "alice.key");
    let (code, key) = exo(&["key", "new", "--out", &alice_key]);
    assert_eq!(code, 0);
    let alice = key["address"].as_str().unwrap().to_string();
    let faucet_key = path(&data, "faucet.key");
    let node0 = clients[0].url().to_string();
    let (code, receipt) = transfer(&node0, &faucet_key, &alice, "12.5");
    assert_eq!(code, 0, "{receipt}");
    assert_eq!(receipt["status"], "ok");
    let transfer_height = receipt["height"].as_u64().unwrap();

    // Every validator's API agrees on the balance and, at one finalized height, on the state.
    let height = rt.block_on(wait_height(&all, transfer_height, Duration::from_secs(20)));
    for client in &clients {
        let (code, balance) = exo(&["--node", client.url(), "account", "balance", &alice]);
        assert_eq!(code, 0);
        assert_eq!(balance["balance_exo"], "12.5", "{}", client.url());
    }
    let block = rt.block_on(common_state_root(&all, height));
    assert_eq!(block.height, height);

    // A transfer of more than the balance is finalized as rejected, with its reason.
    let (code, rejected) = transfer(clients[1].url(), &alice_key, &alice, "1000");
    assert_eq!(code, 3, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"]["code"], "insufficient_funds");

    // Transactions for another chain or with a bad signature never reach the mempool.
    let faucet = keyfile::read(Path::new(&faucet_key)).unwrap();
    let status = rt.block_on(clients[2].status()).unwrap();
    let unsigned = |chain_id: &str| UnsignedTx {
        chain_id: chain_id.to_string(),
        sender: faucet.public_key(),
        nonce: 1,
        fee: status.min_fee,
        action: Action::Transfer {
            to: faucet.public_key(),
            amount: Amount::from_exo(1),
        },
    };
    let wrong_chain = unsigned("another-chain").sign(&faucet);
    let mut forged = unsigned(&status.chain_id).sign(&faucet);
    forged.signature = unsigned(&status.chain_id)
        .sign(&keyfile::generate())
        .signature;
    for (tx, expected) in [(wrong_chain, "wrong_chain"), (forged, "bad_signature")] {
        let tx: SignedTx = tx;
        match rt.block_on(clients[2].submit(&tx)) {
            Err(ClientError::Api { status, code, .. }) => {
                assert!((400..500).contains(&status), "{expected}: {status}");
                assert_eq!(code, expected);
            }
            other => panic!("{expected}: {other:?}"),
        }
    }

    // SIGTERM stops the devnet and its validators cleanly.
    let mut devnet = processes.children.remove(0);
    signal(devnet.id(), "TERM");
    let status = wait_exit(&mut devnet, Duration::from_secs(20)).expect("devnet exits");
    assert!(status.success(), "devnet exit: {status}");
    for pid in &processes.grandchildren {
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .is_empty(),
            "validator {pid} outlived the devnet"
        );
    }
    println!("devnet end to end took {:?}", started.elapsed());
}

#[test]
fn a_stopped_validator_restarts_and_catches_up() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let api = free_ports(1);
    let (code, layout) = exo(&strs(&devnet_args(&data, api, &["--init-only"])));
    assert_eq!(code, 0, "{layout}");
    let configs: Vec<PathBuf> = (0..VALIDATORS)
        .map(|i| data.join(format!("node-{i}")).join("config.toml"))
        .collect();
    let start_node = |i: usize, run: usize| {
        spawn(
            &["node", "--config", configs[i].to_str().unwrap()],
            &dir.path().join(format!("node-{i}-{run}.log")),
        )
    };
    let mut processes = Processes::default();
    for i in 0..VALIDATORS {
        processes.children.push(start_node(i, 0));
    }
    let rt = runtime();
    let clients = clients(api);
    let all: Vec<&Client> = clients.iter().collect();
    let others: Vec<&Client> = clients[..3].iter().collect();
    rt.block_on(wait_height(&all, 2, Duration::from_secs(45)));

    // Validator 3 stops cleanly on SIGTERM.
    signal(processes.children[3].id(), "TERM");
    let status = wait_exit(&mut processes.children[3], Duration::from_secs(15)).expect("exits");
    let log = std::fs::read_to_string(dir.path().join("node-3-0.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert!(
        status.success(),
        "node exit: {status}; the end of its log:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );

    // The other three keep finalizing, and state changes while validator 3 is away.
    let bob_key = path(dir.path(), "bob.key");
    let (_, key) = exo(&["key", "new", "--out", &bob_key]);
    let bob = key["address"].as_str().unwrap().to_string();
    let (code, receipt) = transfer(clients[0].url(), &path(&data, "faucet.key"), &bob, "3");
    assert_eq!(code, 0, "{receipt}");
    let down_at = rt.block_on(clients[0].status()).unwrap().finalized_height;
    // An idle chain makes about a block a second, and validator 3's views time out.
    rt.block_on(wait_height(&others, down_at + 30, Duration::from_secs(90)));

    // Restarted, it replays what it missed and agrees on the state.
    processes.children[3] = start_node(3, 1);
    let target = rt.block_on(clients[0].status()).unwrap().finalized_height;
    rt.block_on(wait_height(&all, target, Duration::from_secs(40)));
    rt.block_on(common_state_root(&all, target));
    let (code, balance) = exo(&["--node", clients[3].url(), "account", "balance", &bob]);
    assert_eq!(code, 0);
    assert_eq!(balance["balance_exo"], "3");
    println!("restart and catch-up took {:?}", started.elapsed());
}

/// Also the regression test of a stall hidden audits brought (docs/security.md, "An audit
/// replica nobody was free to take"): with two honest newcomers beside the liar, units whose
/// reveals waited for an audit replica held every slot that replica could take.
#[test]
fn a_lying_provider_is_caught_and_only_true_results_are_returned() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    // Four honest workers come with the devnet. A dispute is won by a margin of two votes,
    // and replicas dealt in one block count as one: when the liar is the hidden audit of a
    // unit an honest pair holds, the dispute ties one against one and needs two deciders
    // besides the pair (with three honest workers it waited for a fourth until the job's
    // window ended).
    let Devnet {
        dir,
        data,
        rt,
        clients,
        mut processes,
    } = Devnet::start(2, &["--workers", "4"]);
    processes.grandchildren = children_of(processes.children[0].id());
    let node0 = clients[0].url().to_string();
    let faucet_key = path(&data, "faucet.key");

    // A fifth worker lies about every result, and asks the lowest price so that it gets a
    // replica of every unit it has a slot for.
    let liar_key = start_liar(&dir, &mut processes, &node0, &faucet_key, "wrong-result");
    rt.block_on(wait_for_offers(&clients[0], 5, Duration::from_secs(300)));
    println!("five workers offer after {:?}", started.elapsed());
    // Sent to validator 0 only: workers of the other validators get the app and the input
    // through their own validator, which fetches them from its peers.
    let id = submit_hello_job(dir.path(), &node0, &faucet_key, "2");
    println!("job {id} done after {:?}", started.elapsed());
    assert_only_true_outputs(dir.path(), &node0, id);

    // The liar lost bond and reputation; the job's accounts add up to the escrow.
    let provider = provider_record(&rt, &clients[0], &node0, &liar_key);
    assert!(provider.invalid >= 1, "{provider:?}");
    assert_eq!(provider.valid, 0, "{provider:?}");
    assert!(provider.bond < Amount::from_exo(100), "{provider:?}");
    assert!(
        provider.reputation < exo_ledger::REPUTATION_START,
        "{provider:?}"
    );
    assert_hello_job_accepted_and_paid(&rt, &clients[0], id);
    println!("the liar's devnet took {:?}", started.elapsed());
}

/// Starts a worker of a new funded key (`liar.key` in `dir`) that misbehaves as `how`, asks the
/// lowest price (so that it gets a replica of every unit it has a slot for) and offers four
/// slots; returns its key file.
fn start_liar(
    dir: &tempfile::TempDir,
    processes: &mut Processes,
    node: &str,
    faucet_key: &str,
    how: &str,
) -> String {
    let liar_key = path(dir.path(), "liar.key");
    let (_, key) = exo(&["key", "new", "--out", &liar_key]);
    let liar = key["address"].as_str().unwrap().to_string();
    let (code, receipt) = transfer(node, faucet_key, &liar, "1000");
    assert_eq!(code, 0, "{receipt}");
    processes.children.push(spawn(
        &[
            "--node",
            node,
            "worker",
            "--key",
            &liar_key,
            "--data",
            &path(dir.path(), "liar"),
            "--misbehave",
            how,
            "--price",
            "0.5",
            "--slots",
            "4",
        ],
        &dir.path().join("liar.log"),
    ));
    liar_key
}

/// Submits a job of the hello app, 4 units at `trust`, with an input and unit arguments, and
/// waits for it: returns its id.
fn submit_hello_job(dir: &Path, node: &str, faucet_key: &str, trust: &str) -> u64 {
    let module = dir.join("hello.wasm");
    std::fs::write(&module, exo_apps::HELLO_WASM).unwrap();
    let input_path = dir.join("data.txt");
    std::fs::write(&input_path, b"the input of every unit").unwrap();
    let unit_args = dir.join("args.txt");
    std::fs::write(&unit_args, "frame 0\nframe 1\nframe 2\nframe 3\n").unwrap();
    let (code, submitted) = submit_module(
        node,
        faucet_key,
        (&module, trust),
        &unit_args,
        &["--input", input_path.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{submitted}");
    submitted["job_id"].as_u64().unwrap()
}

/// Every unit of hello job `id` was accepted with the true result: the outputs download and
/// check against the accepted digests (through `node`, wherever they were uploaded), and they
/// are what the app writes.
fn assert_only_true_outputs(dir: &Path, node: &str, id: u64) {
    let out = dir.join("results");
    let (code, fetched) = exo(&[
        "--node",
        node,
        "job",
        "results",
        "--out",
        out.to_str().unwrap(),
        &id.to_string(),
    ]);
    assert_eq!(code, 0, "{fetched}");
    for unit in 0..4 {
        let text = std::fs::read_to_string(out.join(format!("unit-{unit}/out/hello.txt"))).unwrap();
        assert!(
            text.contains(&format!("unit={unit}\nargs=frame {unit}\n")),
            "{text}"
        );
        assert!(text.contains("input data.txt 23"), "{text}");
    }
}

/// The provider record of the key in `key_file`, also shown by `exo provider show`.
fn provider_record(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    node: &str,
    key_file: &str,
) -> wire::Provider {
    let (code, shown) = exo(&["--node", node, "provider", "show", "--key", key_file]);
    assert_eq!(code, 0, "{shown}");
    let owner = keyfile::read(Path::new(key_file)).unwrap().public_key();
    rt.block_on(async {
        let id = client.provider_of(&owner).await.unwrap().unwrap();
        client.provider(id).await.unwrap().unwrap()
    })
}

/// Every unit of hello job `id` (see [`submit_hello_job`]) was accepted and its accounts add
/// up to its escrow.
fn assert_hello_job_accepted_and_paid(rt: &tokio::runtime::Runtime, client: &Client, id: u64) {
    let job = rt.block_on(client.job(id)).unwrap().unwrap();
    assert_accounts_add_up(&job.accounts);
    assert_eq!(job.counts.accepted, 4, "{job:?}");
}

/// The issue's must-show: a worker that lies only when it sees no second replica on its unit.
/// Audits are drawn after the commitment, so it sees none on any unit it holds alone and lies
/// on each; this devnet audits every unit (`audit_ppm` = 10^6), so its first lie is caught:
/// one wrong result at the starting reputation puts it below the matching floor, and no new
/// unit reaches it. The requester receives only true results, at trust 1.
#[test]
fn a_worker_lying_whenever_it_sees_no_second_replica_is_caught_and_ends_below_the_floor() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let Devnet {
        dir,
        data,
        rt,
        clients,
        mut processes,
    } = Devnet::start_with_genesis(
        8,
        // Three honest workers: the audit that catches the liar ties with it, and two deciders
        // must side with the audit (a dispute is won by a margin of two votes).
        &["--workers", "3"],
        Some(&|genesis: &str| {
            let audited = genesis.replace("audit_ppm = 100000", "audit_ppm = 1000000");
            assert_ne!(audited, genesis, "the devnet genesis sets audit_ppm");
            audited
        }),
    );
    processes.grandchildren = children_of(processes.children[0].id());
    let node0 = clients[0].url().to_string();
    let faucet_key = path(&data, "faucet.key");
    let liar_key = start_liar(&dir, &mut processes, &node0, &faucet_key, "lie-when-alone");
    rt.block_on(wait_for_offers(&clients[0], 4, Duration::from_secs(300)));
    let id = submit_hello_job(dir.path(), &node0, &faucet_key, "1");
    println!("job {id} done after {:?}", started.elapsed());
    assert_only_true_outputs(dir.path(), &node0, id);

    let provider = provider_record(&rt, &clients[0], &node0, &liar_key);
    // Caught within the units it could hold before its first verdict: its probation replica,
    // then at most its four slots.
    assert!((1..=5).contains(&provider.invalid), "{provider:?}");
    assert!(provider.bond < Amount::from_exo(100), "{provider:?}");
    let floor = exo_ledger::modules::market::MarketParams::default().min_match_reputation;
    assert!(provider.reputation < floor, "{provider:?}");
    assert_hello_job_accepted_and_paid(&rt, &clients[0], id);
    println!("the lone liar's devnet took {:?}", started.elapsed());
}

#[test]
fn the_demo_renders_a_verified_and_paid_frame() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    // The README's first command, on a frame of two small tiles.
    let Devnet {
        dir,
        data,
        mut processes,
        ..
    } = Devnet::start(3, &["--demo", "--demo-frame", "160x60x2"]);
    let log = dir.path().join("devnet.log");
    let png = data.join("demo").join("render.png");
    let deadline = Instant::now() + Duration::from_secs(600);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("the demo failed") || text.contains("Ctrl-C stops the network\n") {
            break text;
        }
        if let Some(status) = processes.children[0].try_wait().unwrap() {
            panic!("the devnet exited ({status}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not finish:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    processes.grandchildren = children_of(processes.children[0].id());
    assert!(
        text.contains("2 units, 2 accepted, 0 failed (trust 2)"),
        "{text}"
    );
    assert!(
        text.contains("paid + royalties + fees + refunded + held = escrowed"),
        "{text}"
    );
    // The frame is a PNG of the requested size, assembled from the verified tiles.
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (160, 60));
    println!("the demo took {:?}", started.elapsed());
}

/// The arguments of `exo job submit` of `app` (a file or a built-in app's name) at `trust` and
/// at most 2 EXO per compute unit, through `node` with `key`; the caller adds the job's plan
/// (`--units`, `--unit-args`, `--scene`...) and [`WAIT`] to wait for its end.
fn submit_args<'a>(node: &'a str, key: &'a str, app: &'a str, trust: &'a str) -> Vec<&'a str> {
    vec![
        "--node",
        node,
        "job",
        "submit",
        "--key",
        key,
        "--app",
        app,
        "--max-price",
        "2",
        "--trust",
        trust,
    ]
}

/// Makes `exo job submit` wait for the job's end, at most 10 minutes.
const WAIT: [&str; 3] = ["--wait", "--wait-timeout", "600"];

/// Submits the module file `module` at `trust` with one unit per line of `unit_args` and
/// `extra` arguments (see [`submit_args`]); its exit code and report.
fn submit_module(
    node: &str,
    key: &str,
    (module, trust): (&Path, &str),
    unit_args: &Path,
    extra: &[&str],
) -> (i32, Value) {
    let units = std::fs::read_to_string(unit_args)
        .unwrap()
        .lines()
        .count()
        .to_string();
    let mut args = submit_args(node, key, module.to_str().unwrap(), trust);
    args.extend(WAIT);
    args.extend([
        "--units",
        &units,
        "--unit-args",
        unit_args.to_str().unwrap(),
    ]);
    args.extend(extra);
    exo(&args)
}

/// Submits a built-in app's job at trust 2 (as the demo does: each unit on two providers at
/// once) through `node` with the faucet's key and waits for it; returns its id.
fn submit_builtin(node: &str, faucet_key: &str, app: &str, units: &str, params: &[&str]) -> u64 {
    let mut plan = vec!["--units", units, "--memory-mib", "128"];
    for p in params {
        plan.extend(["--param", p]);
    }
    submit_planned(node, faucet_key, app, &plan)["job_id"]
        .as_u64()
        .unwrap()
}

/// [`submit_builtin`] with the app's plan given as `exo job submit` arguments (`--units`,
/// `--param`, `--scene`...); returns the submission's report.
fn submit_planned(node: &str, faucet_key: &str, app: &str, plan: &[&str]) -> Value {
    let mut args = submit_args(node, faucet_key, app, "2");
    args.extend(WAIT);
    args.extend(plan);
    let (code, submitted) = exo(&args);
    assert_eq!(code, 0, "{submitted}");
    submitted
}

/// `exo job results ID --out OUT` through `node`, which must succeed; returns its report.
fn job_results(node: &str, out: &Path, id: u64) -> Value {
    let (code, results) = exo(&[
        "--node",
        node,
        "job",
        "results",
        "--out",
        out.to_str().unwrap(),
        &id.to_string(),
    ]);
    assert_eq!(code, 0, "{results}");
    results
}

/// `cargo test -p exo-cli --test devnet -- --ignored the_quant_and_the_scientist` (a few
/// minutes in a debug build: three workers benchmark, then both jobs run on them).
#[test]
#[ignore = "several minutes: a devnet, three workers and two jobs"]
fn the_quant_and_the_scientist_get_their_combined_files() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let devnet = Devnet::with_workers(4, 3, Duration::from_secs(600));
    let (node0, faucet_key) = devnet.node_and_faucet();
    let dir = &devnet.dir;
    println!("three workers offer after {:?}", started.elapsed());

    // The quant: a small grid of all three strategies over the shipped S&P 500 series.
    let id = submit_builtin(
        &node0,
        &faucet_key,
        "backtest",
        "3",
        &[
            "sma=10:50:20/100:200:50",
            "rsi=2:14:6/20:30:10/60:70:10",
            "breakout=50:100:50/20:40:20",
            "folds=3",
        ],
    );
    let out = dir.path().join("backtest");
    let results = job_results(&node0, &out, id);
    assert_eq!(results["combined"]["app"], "backtest", "{results}");
    let ranking = std::fs::read_to_string(out.join("ranking.csv")).unwrap();
    // 9 sma + 12 rsi + 4 breakout sets, one row each after the header.
    assert_eq!(ranking.lines().count(), 1 + 25, "{ranking}");
    assert!(
        ranking.lines().nth(1).unwrap().starts_with("1,"),
        "{ranking}"
    );
    let png = std::fs::read(out.join("equity.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    println!("backtest job {id} combined after {:?}", started.elapsed());

    // The scientist: a call on a low-priced underlying, 4 units of path batches.
    let id = submit_builtin(
        &node0,
        &faucet_key,
        "montecarlo",
        "4",
        &[
            "spot=0.0067",
            "strike=0.0067",
            "rate=0.05",
            "vol=0.2",
            "maturity=1",
            "paths=200000",
        ],
    );
    let out = dir.path().join("montecarlo");
    let results = job_results(&node0, &out, id);
    assert_eq!(results["combined"]["app"], "montecarlo", "{results}");
    let estimate: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("estimate.json")).unwrap()).unwrap();
    assert_eq!(estimate["samples"], 100_000, "{estimate}");
    let (price, se) = (
        estimate["estimate"].as_f64().unwrap(),
        estimate["standard_error"].as_f64().unwrap(),
    );
    let interval = estimate["interval"].as_array().unwrap();
    assert!(interval[0].as_f64().unwrap() < price && price < interval[1].as_f64().unwrap());
    let reference = estimate["reference"]["price"].as_f64().unwrap();
    assert!((price - reference).abs() < 4.0 * se, "{estimate}");
    println!("montecarlo job {id} combined after {:?}", started.elapsed());
}

/// The hostile job of the fair-blame rule on a real devnet: a job of `probe` units that read
/// metadata and listings of their filesystem, put 2 GiB into `/out` with one call, overflow the
/// stack, write one byte per call until their fuel runs out and read an input that does not
/// exist. Every unit but the stack overflow is a result both replicas share; the stack
/// overflow is reported by both and fails. The honest providers keep their bond and
/// reputation, the requester pays for the fuel burnt, and the job's accounts add up.
///
/// About a minute in a debug build (the workers benchmark, then compile `probe`); the
/// in-process version, with a unit that reaches the wall clock and a job naming an input
/// nobody uploaded as well, is `exo-worker`'s `hostile_units_cost_honest_workers_nothing_...`.
///
/// `cargo test -p exo-cli --test devnet -- --ignored a_hostile_job` (the default suite runs the
/// in-process version).
#[test]
#[ignore = "a minute or more: a devnet, two workers and a hostile job"]
fn a_hostile_job_leaves_honest_providers_whole_and_charges_the_requester_the_fuel_burnt() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let devnet = Devnet::with_workers(5, 2, Duration::from_secs(300));
    let (node0, faucet_key) = devnet.node_and_faucet();
    let (dir, rt, clients) = (&devnet.dir, &devnet.rt, &devnet.clients);
    let standing = |id: u64| {
        let p = rt.block_on(clients[0].provider(id)).unwrap().unwrap();
        (p.bond, p.reputation, p.invalid, p.missed)
    };
    let providers = rt.block_on(clients[0].offering_providers(100)).unwrap();
    let before: Vec<_> = providers.iter().map(|id| standing(*id)).collect();

    let module = dir.path().join("probe.wasm");
    std::fs::write(&module, exo_apps::PROBE_WASM).unwrap();
    let unit_args = dir.path().join("args.txt");
    let modes = ["listing", "bigwrite", "recurse", "slowio", "missing"];
    std::fs::write(&unit_args, modes.join("\n") + "\n").unwrap();
    let (_, submitted) = submit_module(
        &node0,
        &faucet_key,
        (&module, "2"),
        &unit_args,
        &["--fuel-limit", "200000000"],
    );
    let id = submitted["job_id"].as_u64().unwrap();
    println!("job {id} done after {:?}", started.elapsed());
    let job = rt.block_on(clients[0].job(id)).unwrap().unwrap();
    assert_eq!((job.counts.accepted, job.counts.failed), (4, 1), "{job:?}");

    // The guests saw the sandbox's fixed filesystem, and the missing file the same way.
    let out = dir.path().join("results");
    job_results(&node0, &out, id);
    let stdout = |unit: usize| std::fs::read_to_string(out.join(format!("unit-{unit}/stdout")));
    let listing = stdout(0).unwrap();
    assert!(
        listing.contains("probe len=5 modified=Some(946684800000000000)"),
        "{listing}"
    );
    assert!(stdout(4).unwrap().contains("read /in/missing: NotFound"));

    for (id, was) in providers.iter().zip(before) {
        let (bond, reputation, invalid, missed) = standing(*id);
        assert_eq!(
            (bond, invalid, missed),
            (was.0, was.2, was.3),
            "provider {id}"
        );
        assert!(reputation >= was.1, "provider {id}");
    }
    assert!(job.accounts.paid_total > Amount::ZERO, "{job:?}");
    assert_accounts_add_up(&job.accounts);
    println!("the hostile job's devnet took {:?}", started.elapsed());
}

/// Writes the scene file `toml` as `dir/scenes/shot.toml` beside the shipped meshes it may
/// name (`bunny.obj`, `props.obj` and its `props.mtl`); returns its path.
fn scene_file(dir: &Path, toml: &str) -> PathBuf {
    let scenes = dir.join("scenes");
    std::fs::create_dir_all(&scenes).unwrap();
    for (name, text) in [
        ("bunny.obj", exo_apps::BUNNY_OBJ),
        ("props.obj", exo_apps::PROPS_OBJ),
        ("props.mtl", exo_apps::PROPS_MTL),
    ] {
        std::fs::write(scenes.join(name), text).unwrap();
    }
    let scene = scenes.join("shot.toml");
    std::fs::write(&scene, toml).unwrap();
    scene
}

/// A scene file of the shipped props under one light at `width x height` and `samples` per
/// pixel, the camera moving from frame 0 to frame 2.
fn props_scene(dir: &Path, (width, height): (u32, u32), samples: u32) -> PathBuf {
    scene_file(
        dir,
        &format!(
            "[image]\nwidth = {width}\nheight = {height}\nsamples = {samples}\n\n\
             [[camera]]\nframe = 0\nfrom = [0.0, 1.0, 3.0]\nat = [0.0, 0.3, 0.0]\nfov = 40.0\n\
             [[camera]]\nframe = 2\nfrom = [2.0, 1.0, 2.0]\nat = [0.0, 0.3, 0.0]\nfov = 40.0\n\n\
             [[mesh]]\nobj = \"props.obj\"\n\n\
             [[light]]\ncenter = [1.0, 3.0, 1.0]\nradius = 0.4\ncolor = [20.0, 20.0, 20.0]\n"
        ),
    )
}

/// The shipped studio scene (the demo's) at `width x height` and `samples` per pixel.
fn studio_scene(dir: &Path, (width, height): (u32, u32), samples: u32) -> PathBuf {
    let shipped = "width = 400\nheight = 300\nsamples = 64\n";
    assert!(exo_apps::STUDIO_SCENE.contains(shipped));
    let image = format!("width = {width}\nheight = {height}\nsamples = {samples}\n");
    scene_file(dir, &exo_apps::STUDIO_SCENE.replace(shipped, &image))
}

/// `cargo test -p exo-cli --test devnet -- --ignored the_studio_gets` (a few minutes in a debug
/// build: three workers benchmark, then a three-frame animation runs on them).
#[test]
#[ignore = "several minutes: a devnet, three workers and a render job"]
fn the_studio_gets_every_frame_and_an_animation_from_a_scene_file() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let devnet = Devnet::with_workers(7, 3, Duration::from_secs(600));
    let (node0, faucet_key) = devnet.node_and_faucet();
    let dir = &devnet.dir;

    let scene = props_scene(dir.path(), (48, 36), 2);
    let submitted = submit_planned(
        &node0,
        &faucet_key,
        "render",
        &[
            "--scene",
            scene.to_str().unwrap(),
            "--frames",
            "3",
            "--tile",
            "24x36",
        ],
    );
    assert_eq!(submitted["units"], 6, "3 frames of 2 tiles: {submitted}");
    let id = submitted["job_id"].as_u64().unwrap();
    let out = dir.path().join("shots");
    let results = job_results(&node0, &out, id);
    assert_eq!(results["combined"]["app"], "render", "{results}");
    assert_eq!(results["combined"]["incomplete"], serde_json::json!([]));
    for frame in 0..3 {
        let png = std::fs::read(out.join(format!("frame-{frame:04}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 48);
    }
    let animation = std::fs::read(out.join("animation.png")).unwrap();
    assert!(
        animation.windows(4).any(|w| w == b"acTL"),
        "animation.png is an APNG"
    );
    println!("render job {id} combined after {:?}", started.elapsed());
}

/// Where the dashboard test saves its screenshots: `docs/screenshots/` with
/// `EXO_UPDATE_SCREENSHOTS` set (to refresh the committed ones), else beside the devnet's logs.
fn screenshot_dir(devnet: &Devnet) -> PathBuf {
    if std::env::var_os("EXO_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        devnet.dir.path().join("screenshots")
    }
}

/// The dashboard's text in `id` as a number (its digits only), 0 while it has none.
fn shown_number(id: &str) -> String {
    format!(
        "Number((document.getElementById('{id}')?.textContent || '').replace(/[^0-9]/g, '')) || 0"
    )
}

/// Records, on the job's page, every change of the frame's drawn-tile count together with the
/// units the page then showed as accepted, in `window.drawnLog`.
const WATCH_TILES: &str = "(() => {
    window.drawnLog = [];
    new MutationObserver(() => {
        const frames = document.getElementById('frames');
        const units = document.getElementById('job-units');
        if (!frames || !units) return;
        const drawn = Number(frames.dataset.drawn);
        const accepted = Number(units.textContent.split('/')[0]);
        const log = window.drawnLog;
        if (!log.length || log[log.length - 1][0] !== drawn) log.push([drawn, accepted]);
    }).observe(document.getElementById('main'), { subtree: true, childList: true, attributes: true });
    return true;
})()";

/// The RGB8 pixels of the canvas of `frame` on the job's page, every pixel drawn, as JSON.
fn frame_pixels(frame: u32) -> String {
    format!(
        "(() => {{
            const canvas = document.getElementById('frame-{frame}');
            const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const rgb = [];
            for (let i = 0; i < rgba.length; i += 4) {{
                if (rgba[i + 3] !== 255) return null;
                rgb.push(rgba[i], rgba[i + 1], rgba[i + 2]);
            }}
            return rgb;
        }})()"
    )
}

/// The committee table's rows as `[address, in committee, self-bond, backing]` texts.
const COMMITTEE_ROWS: &str = "Array.from(document.querySelectorAll('#committee tr.member'))
    .map((tr) => [tr.dataset.address, ...[2, 3, 4].map((i) => tr.cells[i].textContent)])";

/// Makes the page's API answer as a chain whose staking has no validator would (no candidate,
/// no committee for the epoch) and opens the chain page again.
const WITHOUT_STAKING: &str = "(() => {
    const real = window.fetch;
    const answer = (status, body) => Promise.resolve(new Response(JSON.stringify(body),
        { status, headers: { 'content-type': 'application/json' } }));
    window.fetch = (path, init) => {
        if (String(path).startsWith('/v1/validators')) return answer(200, { validators: [] });
        if (String(path).startsWith('/v1/epochs/')) return answer(404, { error: 'not_found', message: 'no committee' });
        return real(path, init);
    };
    location.hash = '#/?staking=none';
    return true;
})()";

/// Makes the page's API answer as if epoch 0 had ended and paid its committee (each member
/// with its votes of 40 certificates, its points and reward, the first jailed for downtime)
/// and opens the chain page again, now in epoch 1.
const PAID_EPOCH: &str = "(() => {
    const real = window.fetch;
    const patched = (path, edit) => real(path).then((r) => r.json()).then((body) =>
        new Response(JSON.stringify(edit(body)), { status: 200, headers: { 'content-type': 'application/json' } }));
    const earned = (i) => ({ proposed: 5, missed: 0, votes: 30 + i, points: 130 + i,
        reward: '2000000000', kept: '1000000000', jailed: i === 0 });
    window.fetch = (path, init) => {
        const p = String(path);
        if (p.startsWith('/v1/status')) return patched(p, (s) => ({ ...s, epoch: 1 }));
        if (p === '/v1/epochs/1') return real('/v1/epochs/0', init);
        if (p === '/v1/epochs/0') return patched(p, (e) => ({ ...e,
            payout: { ...(e.payout || {}), certificates: 40 },
            members: e.members.map((m, i) => ({ ...m, earned: earned(i) })) }));
        return real(path, init);
    };
    location.hash = '#/?epoch=paid';
    return true;
})()";

/// The committee table's last-epoch cells (votes, points, reward) of each member row.
const EARNED_CELLS: &str = "Array.from(document.querySelectorAll('#committee tr.member'))
    .map((tr) => [8, 9, 10].map((i) => tr.cells[i].textContent))";

/// The job ids the jobs list shows.
const LISTED_JOBS: &str =
    "Array.from(document.querySelectorAll('#jobs tr.job a[href^=\"#/jobs/\"]'))
    .map((a) => Number(a.getAttribute('href').split('/')[2]))";

/// The RGB8 pixels of the PNG the demo writes at `path`, once it is there (at most `limit`).
fn demo_frame(path: &Path, limit: Duration) -> Vec<u8> {
    let started = Instant::now();
    loop {
        if let Some(pixels) = std::fs::read(path).ok().and_then(|bytes| rgb8(&bytes)) {
            return pixels;
        }
        assert!(started.elapsed() < limit, "the demo wrote no {path:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pixels of an 8-bit RGB PNG; `None` while it is not one (not yet written in full).
fn rgb8(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .ok()?;
    let mut pixels = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut pixels).ok()?;
    let rgb = (info.color_type, info.bit_depth) == (png::ColorType::Rgb, png::BitDepth::Eight);
    pixels.truncate(info.buffer_size());
    rgb.then_some(pixels)
}

/// Waits until validator 0 has the demo's job (the devnet's first, `#0`), at most `limit`;
/// the demo has then sent every transaction it sends.
async fn demo_job(client: &Client, limit: Duration) -> wire::Job {
    let started = Instant::now();
    loop {
        if let Ok(Some(job)) = client.job(0).await {
            return job;
        }
        assert!(started.elapsed() < limit, "the demo submitted no job");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Submits an animation of two frames of 64x48, two tiles each, of the studio scene through
/// `node` with the faucet's key, without waiting for it; returns its id.
fn submit_two_frames(dir: &Path, node: &str, faucet_key: &str) -> u64 {
    let scene = studio_scene(dir, (64, 48), 2);
    let mut args = submit_args(node, faucet_key, "render", "2");
    args.extend([
        "--scene",
        scene.to_str().unwrap(),
        "--frames",
        "2",
        "--tile",
        "32x48",
    ]);
    let (code, submitted) = exo(&args);
    assert_eq!(code, 0, "{submitted}");
    assert_eq!(submitted["units"], 4, "2 frames of 2 tiles: {submitted}");
    submitted["job_id"].as_u64().unwrap()
}

#[test]
fn the_demo_frame_appears_tile_by_tile_on_a_validators_dashboard() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    // Eight tiles of 80x60, two providers each, on three workers: several rounds of acceptance.
    let (width, height, tiles): (usize, usize, u64) = (320, 120, 8);
    let devnet = Devnet::start(6, &["--demo", "--demo-frame", "320x120x2"]);
    let shots = screenshot_dir(&devnet);
    // Not the validator the demo submits through: any validator's dashboard shows every job.
    let base = devnet.clients[VALIDATORS - 1]
        .url()
        .trim_end_matches('/')
        .to_string();
    let long = Duration::from_secs(300);
    let short = Duration::from_secs(30);
    let (node0, faucet_key) = devnet.node_and_faucet();
    devnet.rt.block_on(async {
        // A person opens the jobs page before the demo's job is on the chain, waits for it and
        // follows its link. Watching from the start matters: the job's first tiles are
        // accepted a few seconds after it reaches the chain, and a browser started only then
        // (about 3.5 s to start, open and follow here) could miss them on a loaded machine.
        let browser = browser::Browser::start().await;
        browser.open(&format!("{base}/#/jobs")).await;
        let demo = demo_job(&devnet.clients[0], long).await;
        assert_eq!(demo.unit_count as u64, tiles);
        browser.follow(r##"tr.job a[href="#/jobs/0"]"##, long).await;
        browser.eval(WATCH_TILES).await;
        // The faucet's nonce is free now for a second job: an animation of two frames, run
        // beside the demo's on the same workers.
        let animation = submit_two_frames(devnet.dir.path(), &node0, &faucet_key);
        assert_eq!(browser.shows(".tiles span", tiles, long).await, tiles);
        assert_eq!(browser.shows("canvas.frame", 1, short).await, 1);

        // The frame fills in tile by tile; one screenshot on the way, one complete.
        let mut partial = false;
        let drawn = "Number(document.getElementById('frames')?.dataset.drawn || 0)";
        let deadline = Instant::now() + long;
        loop {
            let now = browser.eval(drawn).await.as_u64().unwrap_or(0);
            if now == tiles {
                break;
            }
            if now > 0 && !partial {
                browser.screenshot(&shots, "job-partial").await;
                partial = true;
            }
            assert!(
                Instant::now() < deadline,
                "only {now} of {tiles} tiles were drawn"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser.screenshot(&shots, "job").await;
        println!("the demo's frame was drawn after {:?}", started.elapsed());
        let log = browser.eval("window.drawnLog").await;
        let log: Vec<(u64, u64)> = serde_json::from_value(log).unwrap();
        let counts: Vec<u64> = log.iter().map(|(drawn, _)| *drawn).collect();
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "tiles only appear: {log:?}"
        );
        assert_eq!(counts.last(), Some(&tiles), "{log:?}");
        assert!(
            counts.len() > 2,
            "the frame filled in steps, not at once: {log:?}"
        );
        assert!(
            log.iter()
                .any(|(drawn, accepted)| *drawn > 0 && *accepted < tiles),
            "tiles appear while the job still runs: {log:?}"
        );
        // What the page drew is the frame the demo verified and assembled, pixel for pixel.
        let shown: Option<Vec<u8>> =
            serde_json::from_value(browser.eval(&frame_pixels(0)).await).unwrap();
        let shown = shown.expect("every pixel of the frame is drawn");
        let verified = demo_frame(&devnet.data.join("demo/render.png"), short);
        assert_eq!(shown.len(), width * height * 3);
        assert!(
            shown == verified,
            "the page's frame is not the demo's render.png"
        );
        assert_eq!(
            browser.shows(".tiles span.drawn", tiles, short).await,
            tiles
        );

        // The animation: one canvas per frame, each tile drawn at its place in its own frame,
        // the frames `exo job results` assembles from the verified tiles.
        browser.open(&format!("{base}/#/jobs/{animation}")).await;
        assert_eq!(browser.shows("canvas.frame", 2, short).await, 2);
        // The app by the name `exo job submit --app render` published it under.
        browser
            .shows_text("job-app", short, |t| t == "render 1")
            .await;
        browser
            .wait_for(drawn, long, |v| v.as_u64() == Some(4))
            .await;
        let out = devnet.dir.path().join("animation");
        job_results(&node0, &out, animation);
        for frame in 0..2 {
            let shown: Option<Vec<u8>> =
                serde_json::from_value(browser.eval(&frame_pixels(frame)).await).unwrap();
            let file = out.join(format!("frame-{frame:04}.png"));
            let verified = rgb8(&std::fs::read(&file).unwrap()).unwrap();
            assert!(
                shown.as_ref() == Some(&verified),
                "frame {frame} on the page is not {file:?}"
            );
        }
        browser.screenshot(&shots, "job-frames").await;

        // The jobs list, a page of one job at a time: the newest, then the demo's, and back.
        browser.open(&format!("{base}/#/jobs?rows=1")).await;
        let listed = |want: u64| move |v: &Value| v == &serde_json::json!([want]);
        browser
            .wait_for(LISTED_JOBS, short, listed(animation))
            .await;
        assert_eq!(
            browser
                .eval("document.querySelector('#jobs button.prev').disabled")
                .await,
            true
        );
        browser.follow("#jobs button.next", short).await;
        browser.wait_for(LISTED_JOBS, short, listed(0)).await;
        browser
            .wait_for(
                "document.querySelector('#jobs button.next').disabled",
                short,
                |v| v == true,
            )
            .await;
        browser.screenshot(&shots, "jobs").await;
        browser.follow("#jobs button.prev", short).await;
        browser
            .wait_for(LISTED_JOBS, short, listed(animation))
            .await;

        // The chain page: the height rises, and the committee is the staking module's four
        // genesis validators, each backed by its self-bond alone (the devnet's is zero).
        browser.open(&format!("{base}/#/")).await;
        let finalized = shown_number("finalized-height");
        let first = browser
            .wait_for(&finalized, short, |v| v.as_u64() > Some(0))
            .await;
        browser
            .wait_for(&finalized, short, |v| v.as_u64() > first.as_u64())
            .await;
        assert_eq!(
            browser
                .shows("#committee tr.member", VALIDATORS as u64, short)
                .await,
            VALIDATORS as u64
        );
        let rows: Vec<[String; 4]> =
            serde_json::from_value(browser.eval(COMMITTEE_ROWS).await).unwrap();
        let validators = devnet.clients[0].validators().await.unwrap().validators;
        assert_eq!(rows.len(), validators.len());
        for [address, member, self_bond, backing] in &rows {
            assert!(
                validators
                    .iter()
                    .any(|v| &exo_types::address_to_hex(&v.address) == address)
            );
            assert_eq!(member, "yes", "{rows:?}");
            assert!(self_bond.ends_with(" EXO"), "{rows:?}");
            assert_eq!(
                self_bond, backing,
                "genesis backing is the self-bond: {rows:?}"
            );
        }
        assert_eq!(browser.shows("#finality-chart canvas", 1, short).await, 1);
        browser.screenshot(&shots, "chain").await;
        browser
            .screenshot_of("section:has(#committee)", &shots, "committee")
            .await;
        // Once an epoch is paid, each member's votes of its certificates, points and reward.
        browser.eval(PAID_EPOCH).await;
        browser
            .shows_text("committee-summary", short, |t| {
                t.contains("those of epoch 0, the last paid")
            })
            .await;
        let earned: Vec<[String; 3]> =
            serde_json::from_value(browser.eval(EARNED_CELLS).await).unwrap();
        assert_eq!(earned.len(), VALIDATORS, "{earned:?}");
        for [votes, points, reward] in &earned {
            assert!(votes.contains(" of 40"), "{earned:?}");
            assert!(points.starts_with("13"), "{earned:?}");
            assert!(reward.ends_with(" EXO"), "{earned:?}");
        }
        assert_eq!(
            earned
                .iter()
                .filter(|[votes, ..]| votes.contains("jailed"))
                .count(),
            1,
            "{earned:?}"
        );
        // Without staking's validators the page falls back to the proposers of the last
        // blocks, and says so.
        browser.eval(WITHOUT_STAKING).await;
        browser
            .shows_text("committee-summary", short, |t| {
                t.contains("genesis committee")
            })
            .await;
        assert_eq!(
            browser
                .shows("#committee tr.proposer", VALIDATORS as u64, short)
                .await,
            VALIDATORS as u64
        );

        // The providers: the demo's three workers, with their resources and reputation.
        browser.open(&format!("{base}/#/providers")).await;
        assert_eq!(browser.shows("tr.provider", 3, short).await, 3);
        browser.screenshot(&shots, "providers").await;

        // The market: the book's depth by price.
        browser.open(&format!("{base}/#/market")).await;
        browser.shows("tr.level", 1, short).await;
        assert_eq!(browser.shows("#depth-chart canvas", 1, short).await, 1);
        browser.screenshot(&shots, "market").await;

        // The apps, and the requester's account with its jobs.
        browser.open(&format!("{base}/#/apps")).await;
        assert_eq!(browser.shows("main table", 1, short).await, 1);
        browser.open(&format!("{base}/#/jobs")).await;
        browser.follow("tr.job a.requester", short).await;
        browser
            .shows_text("balance", short, |t| t.ends_with(" EXO"))
            .await;
        browser.shows("tr.job", 2, short).await;
        browser.screenshot(&shots, "account").await;
        browser.close().await;
    });
    println!(
        "the dashboard test took {:?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
}

/// Blocks per epoch of the joining test's devnet: an idle devnet makes about a block a second,
/// so the newcomer has about this many seconds to catch up before the epoch it signs in.
const JOIN_EPOCH_LENGTH: u64 = 12;

/// `exo stake ARGS --key KEY` through `node`; requires the transaction executed.
fn stake(node: &str, key: &str, args: &[&str]) {
    let mut all = vec!["--node", node, "stake"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--key", key]);
    let (code, receipt) = exo(&all);
    assert_eq!(code, 0, "exo {all:?}: {receipt}");
    assert_eq!(receipt["status"], "ok", "exo {all:?}: {receipt}");
}

/// The members of `epoch`'s committee as `exo validators --epoch` prints them; `None` until
/// the chain has elected it.
fn committee_of(node: &str, epoch: u64) -> Option<Vec<String>> {
    let (code, view) = exo(&["--node", node, "validators", "--epoch", &epoch.to_string()]);
    if code != 0 {
        return None;
    }
    let mut members: Vec<String> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["validator"].as_str().unwrap().to_string())
        .collect();
    members.sort();
    Some(members)
}

/// The Must show of committee handover, with processes: `exo devnet` runs four genesis
/// validators, `exo devnet join` writes a fifth node with a fresh key and `exo node` runs it;
/// `exo stake` registers it and backs it above the weakest member, and in the epoch after next
/// it proposes blocks while the weakest has left the committee, with no stop of finality.
#[test]
fn a_fresh_node_joins_the_devnet_by_registering_and_signs_once_elected() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let epoch_length = JOIN_EPOCH_LENGTH.to_string();
    let Devnet {
        dir,
        data,
        rt,
        clients,
        mut processes,
    } = Devnet::start(9, &["--epoch-length", &epoch_length]);
    processes.grandchildren = children_of(processes.children[0].id());
    let node0 = clients[0].url().to_string();
    let faucet_key = path(&data, "faucet.key");
    let genesis: Vec<String> = (0..VALIDATORS)
        .map(|i| {
            let (code, key) = exo(&[
                "key",
                "show",
                &path(&data, &format!("node-{i}/validator.key")),
            ]);
            assert_eq!(code, 0, "{key}");
            key["address"].as_str().unwrap().to_string()
        })
        .collect();
    let weakest = genesis[3].clone();

    // A fifth node with a fresh key, its ports the next ones after the validators'.
    let (code, joined) = exo(&["devnet", "join", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{joined}");
    assert_eq!(joined["index"], 4);
    let newcomer = joined["address"].as_str().unwrap().to_string();
    let newcomer_key = joined["key_file"].as_str().unwrap().to_string();
    let p2p_address = joined["p2p_address"].as_str().unwrap().to_string();
    assert!(!genesis.contains(&newcomer));
    processes.children.push(spawn(
        &["node", "--config", joined["config"].as_str().unwrap()],
        &dir.path().join("newcomer.log"),
    ));
    let own_api = Client::new(joined["api_url"].as_str().unwrap()).unwrap();

    // Two nominators: one for the weakest genesis validator, one for the newcomer.
    let backers: Vec<(String, String)> = ["weak.key", "strong.key"]
        .iter()
        .map(|name| {
            let file = path(dir.path(), name);
            let (code, key) = exo(&["key", "new", "--out", &file]);
            assert_eq!(code, 0, "{key}");
            (file, key["address"].as_str().unwrap().to_string())
        })
        .collect();
    for (to, amount) in [
        (&newcomer, "2000"),
        (&backers[0].1, "4000"),
        (&backers[1].1, "11000"),
    ] {
        let (code, receipt) = transfer(&node0, &faucet_key, to, amount);
        assert_eq!(code, 0, "{receipt}");
    }
    // The faucet backs genesis validators 0 to 2 (about 5,000 EXO each once balanced), the
    // first nominator the weakest with 3,000; the newcomer registers with the minimum
    // self-bond and the second nominator lifts it to 11,000.
    let mut targets = vec!["nominate", "--bond", "15000"];
    for v in &genesis[..3] {
        targets.extend_from_slice(&["--target", v]);
    }
    stake(&node0, &faucet_key, &targets);
    stake(
        &node0,
        &backers[0].0,
        &["nominate", "--target", &weakest, "--bond", "3000"],
    );
    stake(
        &node0,
        &newcomer_key,
        &[
            "register-validator",
            "--p2p-address",
            &p2p_address,
            "--commission-bps",
            "500",
            "--bond",
            "1000",
        ],
    );
    stake(
        &node0,
        &backers[1].0,
        &["nominate", "--target", &newcomer, "--bond", "10000"],
    );
    let (code, listed) = exo(&["--node", &node0, "validators"]);
    assert_eq!(code, 0, "{listed}");
    let entry = listed["validators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["address"] == newcomer.as_str())
        .unwrap_or_else(|| panic!("the newcomer is not a candidate: {listed}"))
        .clone();
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["p2p_address"], p2p_address.as_str());

    // The election at the end of the epoch the stakes landed in seats the newcomer in the
    // epoch after next (or the one after, had they straddled a boundary).
    let all: Vec<&Client> = clients.iter().collect();
    let staked_at = rt.block_on(clients[0].status()).unwrap().finalized_height;
    let mut expected: Vec<String> = genesis[..3].to_vec();
    expected.push(newcomer.clone());
    expected.sort();
    let mut changed = staked_at / JOIN_EPOCH_LENGTH + 2;
    loop {
        let boundary = (changed - 1) * JOIN_EPOCH_LENGTH;
        rt.block_on(wait_height(&all, boundary, Duration::from_secs(90)));
        let members = committee_of(&node0, changed).expect("elected");
        if members == expected {
            break;
        }
        assert!(
            changed < staked_at / JOIN_EPOCH_LENGTH + 3,
            "epoch {changed}: {members:?}"
        );
        changed += 1;
    }
    assert!(
        committee_of(&node0, changed - 1)
            .unwrap()
            .contains(&weakest)
    );

    // Its epoch finalizes on every validator and on the newcomer, which proposes in it while
    // the weakest does not; no block waits long for the one before it.
    let first = changed * JOIN_EPOCH_LENGTH;
    let last = first + JOIN_EPOCH_LENGTH - 1;
    let mut everyone = all.clone();
    everyone.push(&own_api);
    rt.block_on(wait_height(&everyone, last + 1, Duration::from_secs(120)));
    let mut proposers = std::collections::BTreeSet::new();
    let mut previous: Option<wire::Block> = None;
    for height in 1..=last + 1 {
        let block = rt.block_on(clients[0].block(height)).unwrap().unwrap();
        if let Some(before) = &previous {
            let gap = block.timestamp_ms.saturating_sub(before.timestamp_ms);
            assert!(gap <= 6_000, "{gap} ms before height {height}");
        }
        if (first..=last).contains(&height) {
            proposers.insert(exo_types::address_to_hex(&block.proposer));
        }
        previous = Some(block);
    }
    assert!(proposers.contains(&newcomer), "{proposers:?}");
    assert!(!proposers.contains(&weakest), "{proposers:?}");
    assert!(
        proposers.iter().all(|p| expected.contains(p)),
        "{proposers:?}"
    );
    rt.block_on(common_state_root(&everyone, last));
    println!(
        "the newcomer signed in epoch {changed}, {:?} after the devnet started",
        started.elapsed()
    );
}
