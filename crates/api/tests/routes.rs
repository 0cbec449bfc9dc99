//! Every route and every refusal, against an in-memory node.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use commonware_codec::Encode;
use commonware_consensus::types::Height;
use commonware_cryptography::Signer;
use commonware_storage::mmr::Location;
use commonware_utils::range::NonEmptyRange;
use exo_api::{ApiLimits, NodeView, router, wire};
use exo_chain::{Block, FinalizedBlock, Mempool, MempoolError, MempoolLimits};
use exo_ledger::{
    Account, Key, Receipt, Rejection, TxStatus,
    exec::{self, Created},
    modules::bank,
    state::Record,
};
use exo_types::{
    Action, Address, Amount, MAX_TX_BYTES, PrivateKey, SignedTx, TxHash, UnsignedTx,
    address_to_hex, hash_bytes,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};
use tokio::sync::broadcast;
use tower::ServiceExt;

const CHAIN: &str = "exo-test";
const MIN_FEE: Amount = Amount(1_000);

/// How the fake store answers reads.
const STATE_OK: u8 = 0;
const STATE_FAILS: u8 = 1;
const STATE_HANGS: u8 = 2;

#[derive(Clone)]
struct FakeNode {
    state: Arc<Mutex<BTreeMap<Key, Vec<u8>>>>,
    state_mode: Arc<AtomicU8>,
    blocks: Arc<Mutex<BTreeMap<u64, Block>>>,
    mempool: Mempool,
    events: broadcast::Sender<FinalizedBlock>,
    finalized_height: u64,
    panics: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeNode {
    fn new() -> Self {
        Self {
            state: Arc::default(),
            state_mode: Arc::default(),
            blocks: Arc::default(),
            mempool: Mempool::new(MempoolLimits {
                max_txs: 100,
                max_per_sender: 4,
                ..MempoolLimits::default()
            }),
            events: broadcast::channel(4).0,
            finalized_height: 2,
            panics: Arc::default(),
        }
    }

    fn fund(&self, address: &Address, balance: Amount, nonce: u64) {
        let account = Account { balance, nonce };
        self.state
            .lock()
            .unwrap()
            .insert(bank::account_key(address), account.to_bytes());
    }

    fn put_receipt(&self, hash: &TxHash, receipt: Receipt) {
        self.state
            .lock()
            .unwrap()
            .insert(exec::keys::receipt_key(hash), receipt.to_bytes());
    }
}

impl NodeView for FakeNode {
    fn status(&self) -> wire::Status {
        if self.panics.load(Ordering::SeqCst) {
            panic!("status exploded");
        }
        wire::Status {
            chain_id: CHAIN.into(),
            height: self.finalized_height + 1,
            finalized_height: self.finalized_height,
            finalized_time_ms: self.finalized_height * 1_000,
            epoch: 0,
            state_root: Some(hash_bytes(b"root")),
            peers: 3,
            min_fee: MIN_FEE,
        }
    }

    fn submit(&self, tx: SignedTx, sender: &Account) -> Result<TxHash, MempoolError> {
        self.mempool.insert(tx, sender)
    }

    fn pending(&self, hash: &TxHash) -> bool {
        self.mempool.contains(hash)
    }

    fn state(&self, key: Key) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send {
        let mode = self.state_mode.load(Ordering::SeqCst);
        let value = self.state.lock().unwrap().get(&key).cloned();
        async move {
            match mode {
                STATE_OK => Ok(value),
                STATE_FAILS => Err("disk on fire".to_string()),
                _ => std::future::pending().await,
            }
        }
    }

    fn block(&self, height: u64) -> impl Future<Output = Option<Block>> + Send {
        let block = self.blocks.lock().unwrap().get(&height).cloned();
        async move { block }
    }

    fn subscribe(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.events.subscribe()
    }

    /// As the runtime's registry writes it: OpenMetrics, closed by `# EOF`.
    fn metrics(&self) -> String {
        "# TYPE exo_node_height gauge\nexo_node_height 3\n# EOF\n".into()
    }
}

fn key(seed: u64) -> PrivateKey {
    PrivateKey::from_seed(seed)
}

fn unsigned(sender: &PrivateKey, nonce: u64, fee: Amount) -> UnsignedTx {
    UnsignedTx {
        chain_id: CHAIN.into(),
        sender: sender.public_key(),
        nonce,
        fee,
        action: Action::Transfer {
            to: key(99).public_key(),
            amount: Amount::from_exo(1),
        },
    }
}

fn transfer(sender: &PrivateKey, nonce: u64) -> SignedTx {
    unsigned(sender, nonce, MIN_FEE).sign(sender)
}

fn tx_body(tx: &SignedTx) -> String {
    json!({ "tx": hex::encode(tx.encode()) }).to_string()
}

fn sample_block(height: u64, txs: Vec<SignedTx>) -> Block {
    let range = NonEmptyRange::new(Location::new(0)..Location::new(1)).unwrap();
    let mut block = Block::genesis(
        hash_bytes(b"chain"),
        hash_bytes(b"root"),
        range,
        key(7).public_key(),
    );
    block.height = Height::new(height);
    block.timestamp_ms = height * 1_000;
    block.txs = txs;
    block
}

fn open_limits() -> ApiLimits {
    ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    }
}

fn app(node: &FakeNode) -> Router {
    router(node.clone(), open_limits())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    send(app, request).await
}

/// Asserts an error answer: its status, its code, and that it says something.
fn assert_error(answer: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "unexpected status for {:?}", answer.1);
    assert_eq!(answer.1["error"], code, "unexpected body {:?}", answer.1);
    let message = answer.1["message"].as_str().unwrap();
    assert!(!message.is_empty());
}

#[tokio::test]
async fn status_reports_the_node() {
    let node = FakeNode::new();
    let (status, body) = get(&app(&node), "/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["chain_id"], CHAIN);
    assert_eq!(body["height"], 3);
    assert_eq!(body["finalized_height"], 2);
    assert_eq!(body["epoch"], 0);
    assert_eq!(
        body["state_root"],
        wire::digest_to_hex(&hash_bytes(b"root"))
    );
    assert_eq!(body["peers"], 3);
    assert_eq!(body["min_fee"], "1000");
    let typed: wire::Status = serde_json::from_value(body).unwrap();
    assert_eq!(typed, node.status());
}

#[tokio::test]
async fn submit_admits_then_receipt_says_pending() {
    let node = FakeNode::new();
    let alice = key(1);
    node.fund(&alice.public_key(), Amount::from_exo(10), 0);
    let app = app(&node);
    let tx = transfer(&alice, 0);

    let (status, body) = post(&app, "/v1/txs", tx_body(&tx)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["hash"], wire::digest_to_hex(&tx.hash()));
    assert!(node.mempool.contains(&tx.hash()));

    // A nonce ahead of the account's is fine: the mempool queues it behind the first.
    let (status, _) = post(&app, "/v1/txs", tx_body(&transfer(&alice, 1))).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, body) = get(&app, &format!("/v1/txs/{}", body["hash"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "hash": wire::digest_to_hex(&tx.hash()), "status": "pending" })
    );

    // A 0x prefix is accepted.
    let body = json!({ "tx": format!("0x{}", hex::encode(transfer(&alice, 2).encode())) });
    let (status, _) = post(&app, "/v1/txs", body.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn submit_refuses_malformed_bodies() {
    let node = FakeNode::new();
    let app = app(&node);
    assert_error(
        post(&app, "/v1/txs", "not json").await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    assert_error(
        post(&app, "/v1/txs", r#"{"tx": "zz"}"#).await,
        StatusCode::BAD_REQUEST,
        "bad_hex",
    );
    assert_error(
        post(&app, "/v1/txs", r#"{"tx": "abc"}"#).await,
        StatusCode::BAD_REQUEST,
        "bad_hex",
    );
    assert_error(
        post(&app, "/v1/txs", r#"{"tx": "00", "extra": 1}"#).await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    assert_error(
        post(&app, "/v1/txs", r#"{"tx": "deadbeef"}"#).await,
        StatusCode::BAD_REQUEST,
        "bad_encoding",
    );
    // Trailing bytes after a valid transaction.
    let mut bytes = transfer(&key(1), 0).encode().to_vec();
    bytes.push(0);
    let body = json!({ "tx": hex::encode(bytes) }).to_string();
    assert_error(
        post(&app, "/v1/txs", body).await,
        StatusCode::BAD_REQUEST,
        "bad_encoding",
    );
    assert!(node.mempool.is_empty());
}

#[tokio::test]
async fn submit_refuses_oversize_bodies_and_transactions() {
    let node = FakeNode::new();
    let app = app(&node);
    let limit = ApiLimits::default().max_body_bytes;
    let body = format!(r#"{{"tx": "{}"}}"#, "00".repeat(limit));
    assert_error(
        post(&app, "/v1/txs", body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    // Within the body limit but over the transaction limit.
    let body = format!(r#"{{"tx": "{}"}}"#, "00".repeat(MAX_TX_BYTES + 1));
    assert!(body.len() < limit);
    assert_error(
        post(&app, "/v1/txs", body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "oversize",
    );
    // A streamed body without a length is cut off at the limit too.
    let half = vec![b' '; limit / 2 + 1];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(half.clone()), Ok(half)];
    let body = Body::from_stream(futures::stream::iter(chunks));
    assert_error(
        post(&app, "/v1/txs", body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
}

#[tokio::test]
async fn submit_refuses_bad_signature_and_wrong_chain() {
    let node = FakeNode::new();
    let alice = key(1);
    node.fund(&alice.public_key(), Amount::from_exo(10), 0);
    let app = app(&node);

    let mut forged = transfer(&alice, 0);
    forged.tx.fee = Amount(5_000);
    assert_error(
        post(&app, "/v1/txs", tx_body(&forged)).await,
        StatusCode::BAD_REQUEST,
        "bad_signature",
    );
    // Signed by someone else than the sender.
    let stolen = unsigned(&alice, 0, MIN_FEE).sign(&key(2));
    assert_error(
        post(&app, "/v1/txs", tx_body(&stolen)).await,
        StatusCode::BAD_REQUEST,
        "bad_signature",
    );

    let mut other_chain = unsigned(&alice, 0, MIN_FEE);
    other_chain.chain_id = "exo-other".into();
    let (status, body) = post(&app, "/v1/txs", tx_body(&other_chain.sign(&alice))).await;
    assert_error(
        (status, body.clone()),
        StatusCode::BAD_REQUEST,
        "wrong_chain",
    );
    assert!(body["message"].as_str().unwrap().contains(CHAIN));
    assert!(node.mempool.is_empty());
}

#[tokio::test]
async fn submit_checks_nonce_and_fee_against_finalized_state() {
    let node = FakeNode::new();
    let alice = key(1);
    let bob = key(2);
    node.fund(&alice.public_key(), Amount::from_exo(10), 5);
    node.fund(&bob.public_key(), Amount(MIN_FEE.0 - 1), 0);
    let app = app(&node);

    let (status, body) = post(&app, "/v1/txs", tx_body(&transfer(&alice, 4))).await;
    assert_error(
        (status, body.clone()),
        StatusCode::BAD_REQUEST,
        "replayed_nonce",
    );
    assert_eq!(body["message"], "nonce 4 already used (next is 5)");

    let far = 5 + ApiLimits::default().max_nonce_ahead + 1;
    assert_error(
        post(&app, "/v1/txs", tx_body(&transfer(&alice, far))).await,
        StatusCode::BAD_REQUEST,
        "nonce_too_far",
    );

    let cheap = unsigned(&alice, 5, Amount(MIN_FEE.0 - 1)).sign(&alice);
    assert_error(
        post(&app, "/v1/txs", tx_body(&cheap)).await,
        StatusCode::BAD_REQUEST,
        "fee_too_low",
    );

    // Bob cannot pay the fee; an account never funded cannot either.
    assert_error(
        post(&app, "/v1/txs", tx_body(&transfer(&bob, 0))).await,
        StatusCode::BAD_REQUEST,
        "insufficient_funds",
    );
    assert_error(
        post(&app, "/v1/txs", tx_body(&transfer(&key(3), 0))).await,
        StatusCode::BAD_REQUEST,
        "insufficient_funds",
    );
    assert!(node.mempool.is_empty());

    let (status, _) = post(&app, "/v1/txs", tx_body(&transfer(&alice, 5))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn submit_reports_mempool_refusals() {
    let node = FakeNode::new();
    let alice = key(1);
    node.fund(&alice.public_key(), Amount::from_exo(10), 0);
    let app = app(&node);
    let tx = transfer(&alice, 0);
    assert_eq!(
        post(&app, "/v1/txs", tx_body(&tx)).await.0,
        StatusCode::ACCEPTED
    );
    assert_error(
        post(&app, "/v1/txs", tx_body(&tx)).await,
        StatusCode::CONFLICT,
        "duplicate",
    );
    for nonce in 1..4 {
        let (status, _) = post(&app, "/v1/txs", tx_body(&transfer(&alice, nonce))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert_error(
        post(&app, "/v1/txs", tx_body(&transfer(&alice, 4))).await,
        StatusCode::TOO_MANY_REQUESTS,
        "sender_full",
    );
}

#[tokio::test]
async fn receipts_ok_rejected_unknown_and_bad_hash() {
    let node = FakeNode::new();
    let app = app(&node);
    let ok = transfer(&key(1), 0);
    let rejected = transfer(&key(2), 0);
    node.put_receipt(
        &ok.hash(),
        Receipt {
            height: 2,
            index: 0,
            status: TxStatus::Ok,
            fee_paid: MIN_FEE,
            created: vec![Created::Job(7)],
        },
    );
    node.put_receipt(
        &rejected.hash(),
        Receipt {
            height: 2,
            index: 1,
            status: TxStatus::Rejected(Rejection::Bank(bank::Refusal::InsufficientFunds {
                needed: Amount(10),
                available: Amount(3),
            })),
            fee_paid: MIN_FEE,
            created: Vec::new(),
        },
    );

    let (status, body) = get(
        &app,
        &format!("/v1/txs/{}", wire::digest_to_hex(&ok.hash())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "hash": wire::digest_to_hex(&ok.hash()),
            "status": "ok",
            "height": 2,
            "index": 0,
            "fee_paid": "1000",
            "created": [{"kind": "job", "id": 7}],
        })
    );

    let path = format!(
        "/v1/txs/{}",
        wire::digest_to_hex(&rejected.hash()).to_uppercase()
    );
    let (status, body) = get(&app, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "rejected");
    // The receipt holds the module, the code and the numbers; the sentence is rendered.
    assert_eq!(body["reason"]["module"], "bank");
    assert_eq!(body["reason"]["code"], "insufficient_funds");
    assert_eq!(body["reason"]["fields"], json!(["10", "3"]));
    assert_eq!(
        body["reason"]["message"],
        "insufficient funds: needs 10, has 3"
    );
    assert_eq!(body["index"], 1);
    let typed: wire::Receipt = serde_json::from_value(body).unwrap();
    assert_eq!(typed.status, wire::TxStatus::Rejected);

    let unknown = wire::digest_to_hex(&hash_bytes(b"nothing"));
    assert_error(
        get(&app, &format!("/v1/txs/{unknown}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&app, "/v1/txs/1234").await,
        StatusCode::BAD_REQUEST,
        "bad_hash",
    );
    assert_error(
        get(&app, &format!("/v1/txs/{}", "g".repeat(64))).await,
        StatusCode::BAD_REQUEST,
        "bad_hash",
    );
}

#[tokio::test]
async fn accounts_known_unknown_and_bad_address() {
    let node = FakeNode::new();
    let app = app(&node);
    let alice = key(1).public_key();
    node.fund(&alice, Amount(u128::MAX), 9);

    let (status, body) = get(&app, &format!("/v1/accounts/{}", address_to_hex(&alice))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "address": address_to_hex(&alice), "balance": u128::MAX.to_string(), "nonce": 9 })
    );

    let stranger = key(5).public_key();
    let (status, body) = get(&app, &format!("/v1/accounts/{}", address_to_hex(&stranger))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["balance"], "0");
    assert_eq!(body["nonce"], 0);

    for bad in ["xyz", "00", &"0".repeat(66), &"%20".repeat(40)] {
        assert_error(
            get(&app, &format!("/v1/accounts/{bad}")).await,
            StatusCode::BAD_REQUEST,
            "bad_address",
        );
    }
}

#[tokio::test]
async fn blocks_by_height() {
    let node = FakeNode::new();
    let tx = transfer(&key(1), 0);
    let block = sample_block(2, vec![tx.clone()]);
    node.blocks.lock().unwrap().insert(2, block.clone());
    let app = app(&node);

    let (status, body) = get(&app, "/v1/blocks/2").await;
    assert_eq!(status, StatusCode::OK);
    let expected = FinalizedBlock::from_block(&block);
    assert_eq!(body["height"], 2);
    assert_eq!(body["digest"], wire::digest_to_hex(&expected.digest));
    assert_eq!(body["parent"], wire::digest_to_hex(&expected.parent));
    assert_eq!(
        body["state_root"],
        wire::digest_to_hex(&hash_bytes(b"root"))
    );
    assert_eq!(body["epoch"], 0);
    assert_eq!(body["view"], 0);
    assert_eq!(body["proposer"], address_to_hex(&key(7).public_key()));
    assert_eq!(body["tx_hashes"], json!([wire::digest_to_hex(&tx.hash())]));
    assert_eq!(body["evidence"], 0);

    // Finalized but not held, and not finalized yet.
    assert_error(
        get(&app, "/v1/blocks/1").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&app, "/v1/blocks/3").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for bad in ["abc", "-1", "+2", "99999999999999999999999"] {
        assert_error(
            get(&app, &format!("/v1/blocks/{bad}")).await,
            StatusCode::BAD_REQUEST,
            "bad_height",
        );
    }
}

#[tokio::test]
async fn events_stream_finalized_blocks() {
    let node = FakeNode::new();
    let app = app(&node);
    let response = app
        .clone()
        .oneshot(Request::get("/v1/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let block = FinalizedBlock::from_block(&sample_block(3, vec![transfer(&key(1), 0)]));
    node.events.send(block.clone()).unwrap();

    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: block\n"), "{text}");
    assert!(text.contains("id: 3\n"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let sent: wire::Block = serde_json::from_str(data).unwrap();
    assert_eq!(sent.height, 3);
    assert_eq!(sent.tx_hashes, block.tx_hashes);

    // A subscriber that falls behind is told how much it missed.
    for height in 4..10 {
        let mut next = block.clone();
        next.height = height;
        node.events.send(next).unwrap();
    }
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: lagged\n"), "{text}");
    assert!(text.contains(r#"data: {"skipped":2}"#), "{text}");
}

#[tokio::test]
async fn event_streams_are_bounded() {
    let node = FakeNode::new();
    let app = router(
        node.clone(),
        ApiLimits {
            max_event_streams: 1,
            ..open_limits()
        },
    );
    let first = app
        .clone()
        .oneshot(Request::get("/v1/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_error(
        get(&app, "/v1/events").await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    drop(first);
    let again = app
        .clone()
        .oneshot(Request::get("/v1/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_one_openmetrics_text_of_the_node_and_the_api() {
    let node = FakeNode::new();
    let app = app(&node);
    let _ = get(&app, "/v1/status").await;
    let _ = post(&app, "/v1/txs", "{}").await;
    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    // The whole text, the node's `# EOF` gone and one closing it.
    exo_api::testing::check_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(text.starts_with("# TYPE exo_node_height gauge\nexo_node_height 3\n"));
    assert!(
        text.contains(
            "exo_api_requests_total{method=\"GET\",route=\"/v1/status\",status=\"200\"} 1"
        )
    );
    assert!(
        text.contains("exo_api_requests_total{method=\"POST\",route=\"/v1/txs\",status=\"400\"} 1")
    );
    assert!(text.contains("exo_api_txs_refused_total{reason=\"bad_json\"} 1"));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let node = FakeNode::new();
    let app = app(&node);
    assert_error(
        get(&app, "/v2/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("/v1/status")
        .body(Body::empty())
        .unwrap();
    assert_error(
        send(&app, request).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        get(&app, "/v1/txs").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn rate_limit_refuses_bursts_metrics_included() {
    let node = FakeNode::new();
    let app = router(
        node,
        ApiLimits {
            rate_per_sec: 1,
            rate_burst: 2,
            ..ApiLimits::default()
        },
    );
    assert_eq!(get(&app, "/v1/status").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/v1/status").await.0, StatusCode::OK);
    let response = app
        .clone()
        .oneshot(Request::get("/v1/status").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"], "rate_limited");
    // H1: rendering every registry of the node is not free; /metrics shares the budget.
    assert_eq!(get(&app, "/metrics").await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn state_failures_are_503_not_panics() {
    let node = FakeNode::new();
    let alice = key(1);
    let app = router(
        node.clone(),
        ApiLimits {
            node_timeout_ms: 50,
            ..open_limits()
        },
    );
    let account_path = format!("/v1/accounts/{}", address_to_hex(&alice.public_key()));

    node.state_mode.store(STATE_FAILS, Ordering::SeqCst);
    assert_error(
        get(&app, &account_path).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_error(
        post(&app, "/v1/txs", tx_body(&transfer(&alice, 0))).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );

    node.state_mode.store(STATE_HANGS, Ordering::SeqCst);
    assert_error(
        get(&app, &account_path).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
    );

    // A corrupt record is the node's fault, reported as such.
    node.state_mode.store(STATE_OK, Ordering::SeqCst);
    node.state
        .lock()
        .unwrap()
        .insert(bank::account_key(&alice.public_key()), vec![1, 2, 3]);
    assert_error(
        get(&app, &account_path).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
}

#[tokio::test]
async fn arbitrary_bodies_never_panic() {
    let node = FakeNode::new();
    let app = app(&node);
    let tx = transfer(&key(1), 0).encode().to_vec();
    // Every truncation of a valid transaction, and some bit flips.
    for len in 0..tx.len() {
        let body = json!({ "tx": hex::encode(&tx[..len]) }).to_string();
        let (status, _) = post(&app, "/v1/txs", body).await;
        assert!(status.is_client_error(), "{status}");
    }
    for bit in (0..tx.len() * 8).step_by(37) {
        let mut flipped = tx.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let body = json!({ "tx": hex::encode(&flipped) }).to_string();
        let (status, _) = post(&app, "/v1/txs", body).await;
        assert!(status.is_client_error(), "{status}");
    }
}

#[tokio::test]
async fn a_panicking_node_gives_a_json_500() {
    let node = FakeNode::new();
    node.panics.store(true, Ordering::SeqCst);
    assert_error(
        get(&app(&node), "/v1/status").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
}
