//! Staking's read side on the in-memory node: the candidates, and an epoch's committee with
//! its backing, after a registration and a nomination went through the mempool.

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
use exo_ledger::{Genesis, GenesisAccount, Params, modules::staking::StakingParams};
use exo_types::{Action, Amount, PrivateKey, UnsignedTx, address_to_hex};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const CHAIN: &str = "exo-staking";
const EPOCH: u64 = 4;

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, Value) {
    call(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn submit(app: &axum::Router, key: &PrivateKey, action: Action) {
    let tx = UnsignedTx {
        chain_id: CHAIN.into(),
        sender: key.public_key(),
        nonce: 0,
        fee: Amount(1_000),
        action,
    }
    .sign(key);
    let request = Request::post("/v1/txs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(submit_body(&tx)))
        .unwrap();
    let (status, body) = call(app, request).await;
    assert!(status.is_success(), "{status} {body}");
}

#[tokio::test]
async fn validators_and_epochs_show_the_committee_its_backing_and_what_it_earned() {
    let candidate = PrivateKey::from_seed(1);
    let nominator = PrivateKey::from_seed(2);
    let genesis_validator = PrivateKey::from_seed(9).public_key();
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params {
            epoch_length: EPOCH,
            staking: StakingParams {
                committee_size: 1,
                ..StakingParams::default()
            },
            ..Params::default()
        },
        accounts: [&candidate, &nominator]
            .iter()
            .map(|k| GenesisAccount {
                address: address_to_hex(&k.public_key()),
                balance: Amount::from_exo(5_000),
            })
            .collect(),
        validators: vec![address_to_hex(&genesis_validator)],
    };
    let node = MemoryNode::new(genesis, genesis_validator.clone());
    let app = router(node.clone(), ApiLimits::default());
    node.produce_block();
    submit(
        &app,
        &candidate,
        Action::RegisterValidator {
            consensus_key: PrivateKey::from_seed(3).public_key(),
            p2p_address: "127.0.0.1:4100".into(),
            commission_bps: 250,
            self_bond: Amount::from_exo(1_000),
        },
    )
    .await;
    node.produce_block();
    submit(
        &app,
        &nominator,
        Action::Nominate {
            targets: vec![candidate.public_key()],
            bond: Amount::from_exo(300),
        },
    )
    .await;
    // Block 3 is the last of epoch 0: it elects the committee of epoch 2.
    while node.produce_block().height < EPOCH - 1 {}

    let (status, body) = get(&app, "/v1/validators").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let validators = body["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 2);
    let registered = validators
        .iter()
        .find(|v| v["address"] == address_to_hex(&candidate.public_key()))
        .unwrap();
    assert_eq!(registered["status"], "active");
    assert_eq!(registered["commission_bps"], 250);
    assert_eq!(registered["nominators"], 1);
    assert_eq!(
        registered["self_bond"],
        Amount::from_exo(1_000).0.to_string()
    );

    let (status, body) = get(&app, "/v1/epochs/2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["elected"], true);
    let member = &body["members"][0];
    assert_eq!(member["validator"], address_to_hex(&candidate.public_key()));
    assert_eq!(member["backing"], Amount::from_exo(1_300).0.to_string());
    assert_eq!(member["own"], Amount::from_exo(1_000).0.to_string());
    assert_eq!(
        member["nominators"][0]["nominator"],
        address_to_hex(&nominator.public_key())
    );
    assert_eq!(body["minimum_backing"], member["backing"]);

    // Epoch 0 has ended: its three blocks, all proposed by the genesis validator, were paid.
    let (status, body) = get(&app, "/v1/epochs/0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let amount = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
    let payout = &body["payout"];
    assert_eq!(amount(&payout["minted"]), Amount::from_exo(3).0);
    assert!(
        amount(&payout["fees"]) > 0,
        "the epoch's fees are in its payout"
    );
    let pool = amount(&payout["fees"]) + amount(&payout["minted"]);
    let earned = &body["members"][0]["earned"];
    assert_eq!(earned["proposed"], 3);
    // No consensus runs here, so no block carries votes: 20 points a block.
    assert_eq!(earned["votes"], 0);
    assert_eq!(payout["certificates"], 0);
    assert_eq!(earned["points"], 3 * 20);
    assert_eq!(earned["jailed"], false);
    let to_committee = pool - pool * 3_000 / 10_000;
    assert_eq!(amount(&earned["reward"]), to_committee);
    assert_eq!(amount(&payout["to_treasury"]), pool - to_committee);
    // Nobody worked: the providers' pool went whole to the treasury, and the payout is done.
    assert_eq!(amount(&payout["providers_pool"]), pool - to_committee);
    assert_eq!(amount(&payout["to_providers"]), 0);
    assert_eq!(payout["providers_paid"], true);
    assert_eq!(body["slashes"].as_array().unwrap().len(), 0);

    let (status, body) = get(&app, "/v1/epochs/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["elected"], false, "genesis wrote epoch 1");
    assert!(body["payout"].is_null(), "epoch 1 has not run");
    assert_eq!(get(&app, "/v1/epochs/9").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/v1/epochs/two").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, "/v1/validators?from=1").await.0,
        StatusCode::BAD_REQUEST
    );
}
