//! The client's market, blob and outputs methods against a real API server on loopback, over
//! an in-memory node running the real ledger.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{
    ApiConfig, ApiLimits, BlobStore, serve_with,
    testing::{MemoryNode, alice, bob, market_node},
};
use exo_client::{
    Client, Event, blob_hash,
    outputs::{Archive, pack},
    wire,
};
use exo_market::{DeviceClass, Requirements, Resources, Runtime, RuntimeSet};
use exo_types::{
    Action, Amount, JobSpec, PrivateKey, ResultCommit, ResultReveal, UnsignedTx, result_commitment,
    result_seal,
};
use futures::StreamExt;
use std::time::Duration;

const CHAIN: &str = "exo-client-market";

async fn start(with_blobs: bool) -> (MemoryNode, Client, tempfile::TempDir) {
    let node = market_node(CHAIN);
    let dir = tempfile::tempdir().unwrap();
    let blobs = with_blobs.then(|| BlobStore::open(dir.path().join("blobs"), 1 << 30).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ApiConfig {
        limits: ApiLimits {
            rate_per_sec: 0,
            ..ApiLimits::default()
        },
        blobs,
        ..ApiConfig::default()
    };
    tokio::spawn(serve_with(
        listener,
        node.clone(),
        config,
        std::future::pending(),
        100,
    ));
    (node, Client::new(&url).unwrap(), dir)
}

/// Signs and submits `action`, produces a block and checks the receipt.
async fn execute(node: &MemoryNode, client: &Client, key: &PrivateKey, action: Action) {
    let nonce = client.account(&key.public_key()).await.unwrap().nonce;
    let tx = UnsignedTx {
        chain_id: CHAIN.into(),
        sender: key.public_key(),
        nonce,
        fee: Amount(1_000),
        action,
    }
    .sign(key);
    let hash = client.submit(&tx).await.unwrap();
    node.produce_block();
    let receipt = client.receipt(&hash).await.unwrap().unwrap();
    assert_eq!(
        receipt.status,
        exo_client::wire::TxStatus::Ok,
        "{receipt:?}"
    );
}

#[tokio::test]
async fn blobs_round_trip_and_are_checked() {
    let (_node, client, _dir) = start(true).await;
    let bytes: Vec<u8> = (0..5_000u32).map(|i| (i % 251) as u8).collect();
    let hash = client.put_blob(bytes.clone(), &alice()).await.unwrap();
    assert_eq!(hash, blob_hash(&bytes));
    assert_eq!(client.get_blob(&hash).await.unwrap(), bytes);
    assert_eq!(client.blob_size(&hash).await.unwrap(), Some(5_000));
    assert_eq!(
        client
            .get_blob_range(&hash, Some((100, 199)))
            .await
            .unwrap(),
        bytes[100..200]
    );
    let unknown = blob_hash(b"never stored");
    assert_eq!(client.blob_size(&unknown).await.unwrap(), None);
    let err = client.get_blob(&unknown).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let (_node, bare, _dir) = start(false).await;
    let err = bare.put_blob(b"x".to_vec(), &alice()).await.unwrap_err();
    assert_eq!(err.code(), Some("blobs_disabled"));
}

/// Bob registers provider 0 with an offer of 4 slots, and Alice publishes an app: the hash of
/// its module.
async fn provider_and_app(node: &MemoryNode, client: &Client) -> exo_types::Hash32 {
    assert_eq!(client.provider_of(&bob().public_key()).await.unwrap(), None);
    assert!(client.provider(0).await.unwrap().is_none());
    assert!(client.job(0).await.unwrap().is_none());

    let resources = Resources {
        cores: 2,
        cpu_score: 1_000_000_000,
        memory_mib: 2_048,
        gpu: None,
        class: DeviceClass::Server,
        region: "local".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    };
    execute(
        node,
        client,
        &bob(),
        Action::RegisterProvider {
            resources,
            bond: Amount::from_exo(10),
        },
    )
    .await;
    assert_eq!(
        client.provider_of(&bob().public_key()).await.unwrap(),
        Some(0)
    );
    let provider = client.provider(0).await.unwrap().unwrap();
    assert_eq!(provider.resources.class, "server");
    execute(
        node,
        client,
        &bob(),
        Action::PostOffer {
            slots: 4,
            price_per_unit: Amount(500),
            expiry_secs: exo_api::testing::GENESIS_TIME_MS / 1_000 + 10_000,
        },
    )
    .await;
    assert_eq!(client.offers(0, None).await.unwrap().offers.len(), 1);
    assert_eq!(client.depth().await.unwrap().levels[0].slots, 4);

    let module = b"\0asm module bytes".to_vec();
    let module_hash = client.put_blob(module, &alice()).await.unwrap();
    execute(
        node,
        client,
        &alice(),
        Action::PublishApp {
            module_hash,
            name: "mc".into(),
            version: "2".into(),
            royalty_per_unit: Amount::ZERO,
        },
    )
    .await;
    assert_eq!(
        client
            .app(&module_hash, &alice().public_key())
            .await
            .unwrap()
            .unwrap()
            .version,
        "2"
    );
    assert_eq!(client.apps(0, None).await.unwrap().apps.len(), 1);
    module_hash
}

#[tokio::test]
async fn a_provider_sees_its_work_and_a_requester_its_outputs() {
    let (node, client, _dir) = start(true).await;
    let module_hash = provider_and_app(&node, &client).await;

    // A worker follows its assignments.
    let mut events = Box::pin(client.events_for(Some(0)).await.unwrap());
    submit_two_units(&node, &client, module_hash).await;
    let height = client.status().await.unwrap().finalized_height;
    let mut assigned = Vec::new();
    while assigned.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Event::Assignment(a) = event {
            assert_eq!((a.height, a.provider, a.job), (height, 0, 0));
            assigned.push(a.unit);
        }
    }
    assert_eq!(assigned, vec![0, 1]);

    let jobs = client
        .jobs_since(&alice().public_key(), height)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, 0);
    let work = client.provider_work(0).await.unwrap();
    assert_eq!(work.len(), 2);
    assert_eq!(work[0].args, None);
    assert_eq!(work[0].fuel_limit, 1_000_000);
    assert_eq!(work[0].memory_mib, 64);

    // The worker runs unit 0, uploads its outputs, commits and reveals.
    let archive = Archive {
        outcome: "ok".into(),
        stdout: b"pi is 3.14\n".to_vec(),
        dirs: vec![],
        files: vec![("result.json".into(), b"{\"pi\":3.14}".to_vec())],
    };
    let archive_hash = client
        .put_blob(pack(&archive).unwrap(), &bob())
        .await
        .unwrap();
    // Before the verdict only the replica's provider may offer outputs.
    let err = client.put_outputs(0, 0, &archive_hash).await.unwrap_err();
    assert!(err.to_string().contains("unsigned"), "{err}");
    let provisional = client
        .put_replica_outputs(CHAIN, 0, 0, 0, &archive_hash, &bob())
        .await
        .unwrap();
    assert!(!provisional.accepted);
    // The worker's one-request path: the same archive, uploaded and registered together;
    // only by the replica's provider.
    let stranger = PrivateKey::from_seed(9);
    let err = client
        .put_replica_archive(CHAIN, (0, 0, 0), pack(&archive).unwrap(), &stranger)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not_a_replica"), "{err}");
    let again = client
        .put_replica_archive(CHAIN, (0, 0, 0), pack(&archive).unwrap(), &bob())
        .await
        .unwrap();
    assert_eq!(again.archive, archive_hash);
    assert!(!again.accepted);
    let digest = archive.result_digest();
    commit_and_reveal(&node, &client, 0, digest).await;
    let job = client.job(0).await.unwrap().unwrap();
    assert_eq!(job.units[0].state, "accepted");
    assert_eq!(job.units[0].accepted_digest, Some(digest));
    assert_eq!(job.units[1].state, "running");

    // The requester fetches and checks them.
    let fetched = client.fetch_outputs(0, 0, &digest).await.unwrap();
    assert_eq!(fetched, archive);
    let err = client.fetch_outputs(0, 1, &digest).await.unwrap_err();
    assert_eq!(err.code(), Some("not_accepted"));
    // A digest that is not the accepted one is caught by the client too.
    let err = client.fetch_outputs(0, 0, &[0; 32]).await.unwrap_err();
    assert!(
        err.to_string().contains("do not have the accepted digest"),
        "{err}"
    );
}

/// Alice submits job 0: two units of `app` at trust 1.
async fn submit_two_units(node: &MemoryNode, client: &Client, app: exo_types::Hash32) {
    let spec = JobSpec {
        app,
        app_developer: alice().public_key(),
        inputs: vec![],
        unit_args: vec![],
        units: 2,
        requirements: Requirements::wasm(64, 1_000_000),
        max_price_per_unit: Amount(1_000),
        trust: 1,
    };
    execute(node, client, &alice(), Action::SubmitJob(Box::new(spec))).await;
}

/// Bob commits and reveals `digest` as the result of replica 0 of unit `unit` of job 0.
async fn commit_and_reveal(
    node: &MemoryNode,
    client: &Client,
    unit: u32,
    digest: exo_types::Hash32,
) {
    let salt = [3u8; 32];
    let commit = ResultCommit {
        job: 0,
        unit,
        replica: 0,
        commitment: result_commitment(&digest, 900, &salt, &bob().public_key()),
        seal: result_seal(&digest, 900, 0, unit),
    };
    execute(node, client, &bob(), Action::CommitResults(vec![commit])).await;
    node.produce_blocks_to_the_audit_draw();
    let reveal = ResultReveal {
        job: 0,
        unit,
        replica: 0,
        digest,
        fuel: 900,
        salt,
    };
    execute(node, client, &bob(), Action::RevealResults(vec![reveal])).await;
}

#[tokio::test]
async fn an_outputs_batch_registers_each_archive_under_one_signature_and_refuses_only_wrong_ones() {
    let (node, client, _dir) = start(true).await;
    let app = provider_and_app(&node, &client).await;
    submit_two_units(&node, &client, app).await;
    assert_eq!(client.provider_work(0).await.unwrap().len(), 2);

    let archive = Archive {
        outcome: "ok".into(),
        stdout: b"done\n".to_vec(),
        dirs: vec![],
        files: vec![("out.txt".into(), b"42".to_vec())],
    };
    let packed = pack(&archive).unwrap();
    let item = |unit: u32, replica: u32, archive: &[u8]| wire::OutputsBatchItem {
        job: 0,
        unit,
        replica,
        archive: archive.to_vec(),
    };
    let batch = wire::OutputsBatch {
        items: vec![
            item(0, 0, &packed),
            item(1, 0, b"not an archive"),
            item(1, 7, &packed),
            item(5, 0, &packed),
        ],
    };
    let result = client
        .put_outputs_batch(CHAIN, &batch, &bob())
        .await
        .unwrap();
    let codes: Vec<Option<&str>> = result
        .items
        .iter()
        .map(|item| item.error.as_ref().map(|e| e.error.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            Some("bad_archive"),
            Some("not_a_replica"),
            Some("not_found")
        ]
    );
    let registered = result.items[0].outputs.clone().unwrap();
    assert_eq!(registered.archive, blob_hash(&packed));
    assert_eq!(registered.digest, archive.result_digest());
    assert!(!registered.accepted);

    // Signed for another chain, or by someone who is not the replicas' provider owner, the
    // batch registers nothing.
    let err = client
        .put_outputs_batch("exo-other", &batch, &bob())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("bad_signer"), "{err}");
    let only_unit_1 = wire::OutputsBatch {
        items: vec![item(1, 0, &packed)],
    };
    let stranger = client
        .put_outputs_batch(CHAIN, &only_unit_1, &alice())
        .await
        .unwrap();
    let refused = stranger.items[0].error.as_ref().unwrap();
    assert_eq!(refused.error, "not_a_replica");

    // The batch's registration is what the requester fetches once the unit is accepted.
    let digest = archive.result_digest();
    commit_and_reveal(&node, &client, 0, digest).await;
    assert_eq!(client.fetch_outputs(0, 0, &digest).await.unwrap(), archive);
    // Unit 1's outputs were never registered by anyone.
    commit_and_reveal(&node, &client, 1, digest).await;
    let err = client.fetch_outputs(0, 1, &digest).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
