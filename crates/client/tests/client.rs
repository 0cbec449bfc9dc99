//! The client against a real API server on loopback, over an in-memory node.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{ApiLimits, serve, testing::MemoryNode};
use exo_client::{Client, ClientError, Event, wire};
use exo_ledger::{Genesis, GenesisAccount, Params};
use exo_types::{Action, Amount, PrivateKey, SignedTx, UnsignedTx, address_to_hex, hash_bytes};
use futures::StreamExt;
use std::time::Duration;

const CHAIN: &str = "exo-client-test";

fn alice() -> PrivateKey {
    PrivateKey::from_seed(1)
}

fn bob() -> PrivateKey {
    PrivateKey::from_seed(2)
}

fn transfer(nonce: u64, amount: Amount) -> SignedTx {
    UnsignedTx {
        chain_id: CHAIN.into(),
        sender: alice().public_key(),
        nonce,
        fee: Amount(1_000),
        action: Action::Transfer {
            to: bob().public_key(),
            amount,
        },
    }
    .sign(&alice())
}

/// Serves an in-memory node on a free loopback port.
async fn start() -> (MemoryNode, Client) {
    start_with(ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    })
    .await
}

/// Serves an in-memory node with `limits` on a free loopback port.
async fn start_with(limits: ApiLimits) -> (MemoryNode, Client) {
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&alice().public_key()),
            balance: Amount::from_exo(100),
        }],
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        node.clone(),
        limits,
        std::future::pending(),
        100,
    ));
    (node, Client::new(&url).unwrap())
}

/// A node closes a kept-alive connection that stays idle past its header timeout. A client
/// whose runtime did not run meanwhile (a CLI or a test between two `block_on`s) has not seen
/// the close; reusing the connection failed the next request ("connection closed before
/// message completed"). The client never reuses a connection idle that long.
#[test]
fn a_request_after_a_long_pause_does_not_reuse_a_connection_the_node_closed() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let (_node, client) = server.block_on(start_with(ApiLimits {
        rate_per_sec: 0,
        header_timeout_ms: 300,
        ..ApiLimits::default()
    }));
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(client.status()).unwrap();
    // The client's runtime does not run while the node closes the idle connection.
    std::thread::sleep(Duration::from_secs(6));
    client_rt.block_on(client.status()).unwrap();
}

#[tokio::test]
async fn every_endpoint_returns_typed_answers() {
    let (node, client) = start().await;

    let status = client.status().await.unwrap();
    assert_eq!(status.chain_id, CHAIN);
    assert_eq!(status.finalized_height, 0);
    assert_eq!(status.min_fee, Amount(1_000));

    let account = client.account(&alice().public_key()).await.unwrap();
    assert_eq!(account.balance, Amount::from_exo(100));
    assert_eq!(account.nonce, 0);

    let tx = transfer(0, Amount::from_exo(5));
    let hash = client.submit(&tx).await.unwrap();
    assert_eq!(hash, tx.hash());
    let pending = client.receipt(&hash).await.unwrap().unwrap();
    assert_eq!(pending.status, wire::TxStatus::Pending);

    node.produce_block();
    let receipt = client.receipt(&hash).await.unwrap().unwrap();
    assert_eq!(receipt.status, wire::TxStatus::Ok);
    assert_eq!(receipt.height, Some(1));
    assert_eq!(receipt.fee_paid, Some(Amount(1_000)));
    assert_eq!(
        client.account(&bob().public_key()).await.unwrap().balance,
        Amount::from_exo(5)
    );

    let block = client.block(1).await.unwrap().unwrap();
    assert_eq!(block.tx_hashes, vec![hash]);
    assert!(client.block(2).await.unwrap().is_none());
    assert!(
        client
            .receipt(&hash_bytes(b"nope"))
            .await
            .unwrap()
            .is_none()
    );

    let metrics = client.metrics().await.unwrap();
    assert!(metrics.contains("exo_api_txs_admitted_total 1"));
    let openapi = client.openapi().await.unwrap();
    assert!(openapi["paths"]["/v1/txs"].is_object());
}

#[tokio::test]
async fn refusals_carry_the_node_reason() {
    let (_node, client) = start().await;
    let tx = transfer(0, Amount::from_exo(5));
    client.submit(&tx).await.unwrap();
    let err = client.submit(&tx).await.unwrap_err();
    assert_eq!(err.code(), Some("duplicate"));
    assert!(matches!(err, ClientError::Api { status: 409, .. }));
    assert_eq!(
        err.to_string(),
        "mempool refused the transaction: transaction is already pending (duplicate)"
    );

    let mut forged = transfer(1, Amount::from_exo(5));
    forged.tx.nonce = 2;
    let err = client.submit(&forged).await.unwrap_err();
    assert_eq!(err.code(), Some("bad_signature"));
}

#[tokio::test]
async fn unreachable_and_bad_urls_are_distinct_errors() {
    // Bind then drop, so that the port is very likely closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = client.status().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("node http://127.0.0.1:{port} is unreachable")
    );
    assert!(matches!(
        Client::new("ftp://nowhere"),
        Err(ClientError::BadUrl(_))
    ));
}

#[tokio::test]
async fn wait_for_receipt_returns_final_outcomes_or_times_out() {
    let (node, client) = start().await;
    let producer = tokio::spawn(node.clone().run(Duration::from_millis(50)));

    let ok = transfer(0, Amount::from_exo(5));
    client.submit(&ok).await.unwrap();
    let receipt = client
        .wait_for_receipt(&ok.hash(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(receipt.status, wire::TxStatus::Ok);

    // More than the balance: included (the fee is paid) but rejected.
    let too_much = transfer(1, Amount::from_exo(1_000));
    client.submit(&too_much).await.unwrap();
    let receipt = client
        .wait_for_receipt(&too_much.hash(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(receipt.status, wire::TxStatus::Rejected);
    let reason = receipt.reason.unwrap();
    assert_eq!(reason.code, "insufficient_funds");
    producer.abort();

    // Nothing is produced any more: a new transaction stays pending.
    let stuck = transfer(2, Amount::from_exo(1));
    client.submit(&stuck).await.unwrap();
    let err = client
        .wait_for_receipt(&stuck.hash(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReceiptTimeout {
                last_seen: "pending",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn events_stream_finalized_blocks() {
    let (node, client) = start().await;
    let mut events = Box::pin(client.events().await.unwrap());
    // The subscription exists once the server answered; give it a block.
    let tx = transfer(0, Amount::from_exo(1));
    client.submit(&tx).await.unwrap();
    node.produce_block();
    node.produce_block();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        Event::Block(block) => {
            assert_eq!(block.height, 1);
            assert_eq!(block.tx_hashes, vec![tx.hash()]);
        }
        other => panic!("expected a block, got {other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(second, Event::Block(b) if b.height == 2));
}

/// A node older than `GET /v1/events?assignments=false` refuses the parameter (400
/// `bad_query`); `Client::blocks` then follows the node's whole stream, whose blocks are the
/// same, instead of failing (a worker would retry it with a backoff forever).
#[tokio::test]
async fn blocks_follow_the_whole_stream_of_a_node_without_the_blocks_only_one() {
    use axum::{extract::Request, http::StatusCode, middleware::Next, response::IntoResponse};
    let (node, _) = start().await;
    let older = |request: Request, next: Next| async move {
        if request
            .uri()
            .query()
            .is_some_and(|q| q.contains("assignments"))
        {
            let body = serde_json::json!({
                "error": "bad_query",
                "message": "unknown query parameter assignments",
            });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        next.run(request).await
    };
    let config = exo_api::ApiConfig {
        limits: ApiLimits {
            rate_per_sec: 0,
            ..ApiLimits::default()
        },
        ..exo_api::ApiConfig::default()
    };
    let routes = exo_api::router_with(node.clone(), config).layer(axum::middleware::from_fn(older));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let mut blocks = Box::pin(client.blocks().await.unwrap());
    node.produce_block();
    let first = tokio::time::timeout(Duration::from_secs(5), blocks.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, Event::Block(b) if b.height == 1),
        "{first:?}"
    );
}
