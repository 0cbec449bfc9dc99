//! The in-memory node behaves like a chain: submitted transfers finalize with receipts.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use commonware_cryptography::Signer;
use exo_api::{
    ApiLimits, router,
    testing::{MemoryNode, submit_body},
};
use exo_ledger::{Genesis, GenesisAccount, Params};
use exo_types::{Action, Amount, PrivateKey, UnsignedTx, address_to_hex};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn transfer_finalizes_with_a_receipt_and_moves_funds() {
    let alice = PrivateKey::from_seed(1);
    let bob = PrivateKey::from_seed(2);
    let genesis = Genesis {
        chain_id: "exo-mem".into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&alice.public_key()),
            balance: Amount::from_exo(10),
        }],
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let app = router(node.clone(), ApiLimits::default());
    let tx = UnsignedTx {
        chain_id: "exo-mem".into(),
        sender: alice.public_key(),
        nonce: 0,
        fee: Amount(1_000),
        action: Action::Transfer {
            to: bob.public_key(),
            amount: Amount::from_exo(3),
        },
    }
    .sign(&alice);
    let request = Request::post("/v1/txs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(submit_body(&tx)))
        .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let hash = body["hash"].as_str().unwrap().to_string();

    let block = node.produce_block();
    assert_eq!(block.height, 1);
    assert_eq!(block.tx_hashes, vec![tx.hash()]);
    assert!(node.mempool().is_empty());

    let get = |path: String| Request::get(path).body(Body::empty()).unwrap();
    let (status, receipt) = call(&app, get(format!("/v1/txs/{hash}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(receipt["status"], "ok");
    assert_eq!(receipt["height"], 1);
    assert_eq!(receipt["fee_paid"], "1000");

    let path = format!("/v1/accounts/{}", address_to_hex(&bob.public_key()));
    let (_, account) = call(&app, get(path)).await;
    assert_eq!(account["balance"], "3000000000");
    let path = format!("/v1/accounts/{}", address_to_hex(&alice.public_key()));
    let (_, account) = call(&app, get(path)).await;
    assert_eq!(account["balance"], "6999999000");
    assert_eq!(account["nonce"], 1);

    let (status, block) = call(&app, get("/v1/blocks/1".into())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(block["tx_hashes"][0], hash);
    let (_, status) = call(&app, get("/v1/status".into())).await;
    assert_eq!(status["finalized_height"], 1);
    assert_eq!(status["chain_id"], "exo-mem");
}

/// A pot changed behind the bank's back (here: one token added to a provider's bond in the
/// store) is caught the next time its module touches it, and the node stops with a fault that
/// says which pot and by how much, instead of paying the extra token out.
#[tokio::test]
async fn a_corrupted_pot_stops_the_node_with_a_clear_fault() {
    use exo_api::NodeView;
    use exo_ledger::{
        Fault,
        modules::bank::{self, Pot, PotBalance},
        state::Record,
    };
    let alice = PrivateKey::from_seed(1);
    let genesis = Genesis {
        chain_id: "exo-mem".into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&alice.public_key()),
            balance: Amount::from_exo(100),
        }],
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let tx = |nonce, action| {
        UnsignedTx {
            chain_id: "exo-mem".into(),
            sender: alice.public_key(),
            nonce,
            fee: Amount(1_000),
            action,
        }
        .sign(&alice)
    };
    let bond = Amount::from_exo(10);
    let register = Action::RegisterProvider {
        resources: exo_types::exo_market::Resources {
            cores: 4,
            cpu_score: 1_000_000_000,
            memory_mib: 4_096,
            gpu: None,
            class: exo_types::exo_market::DeviceClass::Pc,
            region: "eu".into(),
            runtimes: exo_types::exo_market::RuntimeSet::only(
                exo_types::exo_market::Runtime::Wasm32Wasip1,
            ),
            max_unit_fuel: 1_000_000_000_000,
        },
        bond,
    };
    // The sender's account as admission would read it (the node has not run its genesis yet).
    let funded = |nonce| exo_ledger::Account {
        balance: Amount::from_exo(100),
        nonce,
    };
    node.submit(tx(0, register), &funded(0)).unwrap();
    assert_eq!(node.produce_block().tx_hashes.len(), 1);

    let pot = bank::pot_key(Pot::ProviderBond(0));
    node.put_state(pot, Some(PotBalance(Amount(bond.0 + 1)).to_bytes()));
    node.submit(tx(1, Action::RetireProvider), &funded(1))
        .unwrap();
    let fault = node.try_produce_block().unwrap_err();
    assert_eq!(
        fault,
        Fault::Invariant(format!(
            "pot provider_bond(0) holds {} but its module's record says {}",
            bond.0 + 1,
            bond.0
        ))
    );
    // The node as a validator runs it: it stops, saying why.
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.produce_block()));
    let message = stopped.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("ledger fault: pot provider_bond(0)"),
        "{message}"
    );
    // Nothing of the block was kept.
    assert_eq!(node.status().finalized_height, 1);
}
