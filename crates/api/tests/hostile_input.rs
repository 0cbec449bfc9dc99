//! Malformed and oversized input to every route the router serves: each answer is a 4xx with
//! a reason in the error body format, never a 5xx, and the node keeps answering afterwards.
//!
//! The table is checked against the OpenAPI document, so a route added without hostile cases
//! fails here.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use commonware_cryptography::Signer;
use exo_api::{ApiConfig, ApiLimits, BlobStore, router_with, testing::MemoryNode, wire};
use exo_ledger::{Genesis, GenesisAccount, Params};
use exo_types::{Amount, PrivateKey, address_to_hex};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt;

fn app() -> (Router, tempfile::TempDir) {
    let validator = PrivateKey::from_seed(9).public_key();
    let genesis = Genesis {
        chain_id: "exo-hostile".into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&PrivateKey::from_seed(1).public_key()),
            balance: Amount::from_exo(10),
        }],
        validators: vec![address_to_hex(&validator)],
    };
    let node = MemoryNode::new(genesis, validator);
    let dir = tempfile::tempdir().unwrap();
    let limits = ApiLimits {
        rate_per_sec: 0,
        max_body_bytes: 4_096,
        max_blob_bytes: 8_192,
        ..ApiLimits::default()
    };
    let app = router_with(
        node,
        ApiConfig {
            limits,
            blobs: Some(BlobStore::open(dir.path(), 1 << 20).unwrap()),
            ..ApiConfig::default()
        },
    );
    (app, dir)
}

/// One hostile request: method, path (with query), body and headers.
struct Case {
    method: Method,
    uri: String,
    body: Vec<u8>,
    headers: Vec<(header::HeaderName, String)>,
}

fn case(method: Method, uri: impl Into<String>) -> Case {
    Case {
        method,
        uri: uri.into(),
        body: Vec::new(),
        headers: Vec::new(),
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Path segments no route accepts as an id, hash, address or height.
fn bad_segments() -> Vec<String> {
    vec![
        "x".into(),
        "-1".into(),
        "1.5".into(),
        "99999999999999999999999999".into(),
        "0x10".into(),
        "%FF%FE".into(),
        "%00".into(),
        "%E2%82".into(),
        "%zz".into(),
        "z".repeat(70),
        "a".repeat(4_000),
        "%20".into(),
        "%F0%9F%92%A3".into(),
    ]
}

/// Queries no route accepts.
fn bad_queries() -> Vec<String> {
    vec![
        "from=x".into(),
        "limit=0".into(),
        "limit=-1".into(),
        "limit=99999999999999999999999".into(),
        "nope=1".into(),
        "from=%FF".into(),
        "%zz=1".into(),
        format!("from={}", "9".repeat(3_000)),
        "from=1&from=2".into(),
        "requester=zz&height=1".into(),
        "height=x".into(),
        "provider=%00".into(),
    ]
}

fn cases() -> Vec<(&'static str, Case)> {
    let hash = "ab".repeat(32);
    let mut cases = Vec::new();
    // Routes with a path parameter: each bad segment.
    let developer = "cd".repeat(32);
    let app_by_hash = format!("/v1/apps/{{}}/{developer}");
    let app_by_developer = format!("/v1/apps/{hash}/{{}}");
    let templates: [(&str, &str, Method); 16] = [
        ("/dashboard/{file}", "/dashboard/{}", Method::GET),
        ("/v1/txs/{hash}", "/v1/txs/{}", Method::GET),
        ("/v1/accounts/{address}", "/v1/accounts/{}", Method::GET),
        (
            "/v1/accounts/{address}/provider",
            "/v1/accounts/{}/provider",
            Method::GET,
        ),
        ("/v1/blocks/{height}", "/v1/blocks/{}", Method::GET),
        ("/v1/providers/{id}", "/v1/providers/{}", Method::GET),
        (
            "/v1/providers/{id}/work",
            "/v1/providers/{}/work",
            Method::GET,
        ),
        (
            "/v1/providers/{id}/capacity",
            "/v1/providers/{}/capacity",
            Method::GET,
        ),
        ("/v1/jobs/{id}", "/v1/jobs/{}", Method::GET),
        ("/v1/apps/{hash}/{developer}", &app_by_hash, Method::GET),
        (
            "/v1/apps/{hash}/{developer}",
            &app_by_developer,
            Method::GET,
        ),
        ("/v1/blobs/{hash}", "/v1/blobs/{}", Method::GET),
        ("/v1/blobs/{hash}", "/v1/blobs/{}", Method::HEAD),
        ("/v1/outputs/{job}/{unit}", "/v1/outputs/{}/0", Method::GET),
        ("/v1/outputs/{job}/{unit}", "/v1/outputs/0/{}", Method::GET),
        ("/v1/epochs/{n}", "/v1/epochs/{}", Method::GET),
    ];
    for (route, pattern, method) in templates {
        for segment in bad_segments() {
            cases.push((route, case(method.clone(), pattern.replace("{}", &segment))));
        }
    }
    for segment in bad_segments() {
        cases.push((
            "/v1/outputs/{job}/{unit}",
            case(Method::PUT, format!("/v1/outputs/{segment}/0"))
                .body(format!("{{\"archive\":\"{hash}\"}}")),
        ));
    }
    // The one-request upload: bad path segments, queries and signatures, unsigned bodies.
    let archive_route = "/v1/outputs/{job}/{unit}/replicas/{replica}";
    for segment in bad_segments() {
        for uri in [
            format!("/v1/outputs/{segment}/0/replicas/0?archive={hash}"),
            format!("/v1/outputs/0/{segment}/replicas/0?archive={hash}"),
            format!("/v1/outputs/0/0/replicas/{segment}?archive={hash}"),
        ] {
            cases.push((
                archive_route,
                case(Method::PUT, uri)
                    .header(header::HeaderName::from_static("x-exo-signature"), "00")
                    .body("x"),
            ));
        }
    }
    for (query, signature) in [
        (String::new(), Some("00")),
        ("?archive=zz".to_string(), Some("00")),
        (format!("?archive={hash}&other=1"), Some("00")),
        (format!("?archive={hash}"), None),
        (format!("?archive={hash}"), Some("zz")),
        (format!("?archive={hash}"), Some("00")),
    ] {
        let mut put = case(Method::PUT, format!("/v1/outputs/0/0/replicas/0{query}")).body("x");
        if let Some(signature) = signature {
            put = put.header(
                header::HeaderName::from_static("x-exo-signature"),
                signature,
            );
        }
        cases.push((archive_route, put));
    }
    // The outputs batch: missing or bad signer and signature, bodies that are not a batch, too
    // many archives, an archive or a body over its bound, and a signature that is not the
    // signer's.
    let batch_route = "/v1/outputs/batch";
    let signer = address_to_hex(&PrivateKey::from_seed(5).public_key());
    let signature = "00".repeat(64);
    let one = |archive: Vec<u8>| wire::OutputsBatchItem {
        job: 0,
        unit: 0,
        replica: 0,
        archive,
    };
    let good = wire::OutputsBatch {
        items: vec![one(b"x".to_vec())],
    }
    .to_bytes();
    let mut too_many = wire::OutputsBatch {
        items: vec![one(b"x".to_vec())],
    }
    .to_bytes();
    too_many[0] = wire::MAX_OUTPUTS_BATCH_ITEMS as u8 + 1;
    let archive_too_big = wire::OutputsBatch {
        items: vec![one(vec![0; wire::MAX_OUTPUTS_BATCH_ARCHIVE_BYTES + 1])],
    }
    .to_bytes();
    for (signer, signature, body) in [
        (None, None, good.clone()),
        (Some(signer.as_str()), None, good.clone()),
        (Some("zz"), Some(signature.as_str()), good.clone()),
        (Some(signer.as_str()), Some("zz"), good.clone()),
        (Some(signer.as_str()), Some(signature.as_str()), Vec::new()),
        (Some(signer.as_str()), Some(signature.as_str()), vec![0]),
        (
            Some(signer.as_str()),
            Some(signature.as_str()),
            vec![0xff; 40],
        ),
        (Some(signer.as_str()), Some(signature.as_str()), too_many),
        (
            Some(signer.as_str()),
            Some(signature.as_str()),
            archive_too_big,
        ),
        (
            Some(signer.as_str()),
            Some(signature.as_str()),
            vec![1; wire::MAX_OUTPUTS_BATCH_BYTES + 1],
        ),
        (
            Some(signer.as_str()),
            Some(signature.as_str()),
            good.clone(),
        ),
    ] {
        let mut post = case(Method::POST, batch_route).body(body);
        if let Some(signer) = signer {
            post = post.header(header::HeaderName::from_static("x-exo-signer"), signer);
        }
        if let Some(signature) = signature {
            post = post.header(
                header::HeaderName::from_static("x-exo-signature"),
                signature,
            );
        }
        cases.push((batch_route, post));
    }
    cases.push((batch_route, case(Method::GET, batch_route)));
    // Routes with a query: each bad query.
    for route in [
        "/v1/providers",
        "/v1/providers/{id}/work",
        "/v1/market/offers",
        "/v1/market/depth",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/apps",
        "/v1/events",
        "/v1/validators",
    ] {
        let path = route.replace("{id}", "0");
        for query in bad_queries() {
            cases.push((route, case(Method::GET, format!("{path}?{query}"))));
        }
    }
    // Bodies.
    let big = vec![b'{'; 10_000];
    for body in [
        b"".to_vec(),
        b"not json".to_vec(),
        b"{}".to_vec(),
        b"{\"tx\": 5}".to_vec(),
        b"{\"tx\": \"zz\"}".to_vec(),
        b"{\"tx\": \"00\"}".to_vec(),
        b"{\"tx\": \"\", \"extra\": 1}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        big.clone(),
        format!("{{\"tx\": \"{}\"}}", "00".repeat(3_000)).into_bytes(),
    ] {
        cases.push(("/v1/txs", case(Method::POST, "/v1/txs").body(body)));
    }
    for body in [
        b"".to_vec(),
        b"[]".to_vec(),
        b"{\"archive\": 1}".to_vec(),
        b"{\"archive\": \"zz\"}".to_vec(),
        format!("{{\"archive\":\"{hash}\",\"replica\":-1}}").into_bytes(),
        format!("{{\"archive\":\"{hash}\",\"replica\":0,\"signature\":\"zz\"}}").into_bytes(),
        format!("{{\"archive\":\"{hash}\",\"more\":1}}").into_bytes(),
        big.clone(),
    ] {
        cases.push((
            "/v1/outputs/{job}/{unit}",
            case(Method::PUT, "/v1/outputs/0/0").body(body),
        ));
    }
    for (uri, body, headers) in [
        ("/v1/blobs?hash=zz", b"x".to_vec(), vec![]),
        ("/v1/blobs?other=1", b"x".to_vec(), vec![]),
        ("/v1/blobs?hash=%FF", b"x".to_vec(), vec![]),
        (
            "/v1/blobs",
            vec![1u8; 9_000],
            vec![(header::CONTENT_LENGTH, "9000".to_string())],
        ),
        (
            "/v1/blobs",
            b"x".to_vec(),
            vec![(header::CONTENT_LENGTH, "99999999999999999999".to_string())],
        ),
    ] {
        let mut c = case(Method::PUT, uri).body(body);
        for (name, value) in headers {
            c = c.header(name, value);
        }
        cases.push(("/v1/blobs", c));
    }
    // Ranges no blob can satisfy, on a blob that does not exist either way.
    for range in [
        "bytes=5-1",
        "bytes=x",
        "bytes=-0",
        "lines=1-2",
        "bytes=99999999999999999999-",
    ] {
        cases.push((
            "/v1/blobs/{hash}",
            case(Method::GET, format!("/v1/blobs/{hash}")).header(header::RANGE, range),
        ));
    }
    // Wrong methods on every route, and routes that do not exist.
    for (route, uri) in [
        ("/", "/"),
        ("/v1/status", "/v1/status"),
        ("/v1/supply", "/v1/supply"),
        ("/v1/openapi.json", "/v1/openapi.json"),
        ("/metrics", "/metrics"),
        ("/v1/events", "/v1/events"),
        ("/v1/txs", "/v1/txs"),
        ("/v1/blobs", "/v1/blobs"),
    ] {
        cases.push((route, case(Method::DELETE, uri)));
        cases.push((route, case(Method::PATCH, uri).body("x")));
    }
    for uri in [
        "/index.html",
        "/v2/status",
        "/v1/status/extra",
        "/v1//status",
        "/%FF",
    ] {
        cases.push(("", case(Method::GET, uri)));
    }
    cases
}

async fn send(app: &Router, case: &Case) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(case.uri.as_str());
    for (name, value) in &case.headers {
        request = request.header(name, value.as_str());
    }
    let request = request.body(Body::from(case.body.clone())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn hostile_input_to_every_route_is_a_4xx_with_a_reason() {
    let (app, _dir) = app();
    let cases = cases();
    let mut failures = Vec::new();
    for (route, case) in &cases {
        let (status, body) = send(&app, case).await;
        let what = format!("{} {} ({route})", case.method, case.uri);
        if !status.is_client_error() {
            failures.push(format!("{what}: {status}"));
            continue;
        }
        if case.method == Method::HEAD {
            continue;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v["error"].is_string() && !v["message"].as_str().unwrap_or("").is_empty() => {}
            _ => failures.push(format!(
                "{what}: {status} without an error body: {:?}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(120)
                    .collect::<String>()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every route of the OpenAPI document had hostile cases (the status, the document and
    // the metrics are reached with a wrong method).
    let (_, doc) = send(&app, &case(Method::GET, "/v1/openapi.json")).await;
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    let covered: BTreeSet<&str> = cases.iter().map(|(route, _)| *route).collect();
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(
            covered.contains(path.as_str()),
            "no hostile case for {path}"
        );
    }

    // The node is still up and answers.
    let (status, _) = send(&app, &case(Method::GET, "/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
}
