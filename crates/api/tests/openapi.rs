//! The OpenAPI document against the server it describes: the document the node serves is
//! valid OpenAPI 3.1, it lists exactly the routes the router serves, and requests made from it
//! (valid and not) are answered only with statuses it lists for their operation, never with a
//! server error, in the shapes it gives.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use commonware_cryptography::Signer;
use exo_api::{
    ApiConfig, ApiLimits, BlobStore,
    outputs::{Archive, pack},
    router_with,
    testing::{
        MemoryNode, StateMode, alice, bob, check_openmetrics, market_node, provider_resources,
        submit_body,
    },
    wire,
};
use exo_market::{Requirements, Runtime};
use exo_types::{
    Action, Amount, Hash32, JobSpec, PrivateKey, ResultCommit, ResultReveal, SignedTx, UnsignedTx,
    address_to_hex, result_commitment, result_seal,
};
use http_body_util::BodyExt;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tower::ServiceExt;

const CHAIN: &str = "exo-openapi";

/// A node with a little of everything: a provider with an offer, a published app, a job whose
/// one unit was run, proven and accepted, and its outputs in the blob store.
struct Node {
    app: Router,
    node: MemoryNode,
    limits: ApiLimits,
    /// Hashes of blobs the store holds.
    blobs: Vec<Hash32>,
    nonces: [u64; 2],
    _dir: tempfile::TempDir,
}

impl Node {
    async fn new() -> Self {
        let node = market_node(CHAIN);
        let dir = tempfile::tempdir().unwrap();
        let limits = ApiLimits {
            rate_per_sec: 0,
            max_page_items: 50,
            max_blob_bytes: 64 * 1024,
            ..ApiLimits::default()
        };
        let app = router_with(
            node.clone(),
            ApiConfig {
                limits,
                blobs: Some(BlobStore::open(dir.path(), 1 << 24).unwrap()),
                ..ApiConfig::default()
            },
        );
        let mut node = Self {
            app,
            node,
            limits,
            blobs: Vec::new(),
            nonces: [0; 2],
            _dir: dir,
        };
        node.market().await;
        node
    }

    async fn market(&mut self) {
        let resources = provider_resources();
        let bond = Amount::from_exo(10);
        self.send(1, Action::RegisterProvider { resources, bond })
            .await;
        let offer = Action::PostOffer {
            slots: 2,
            price_per_unit: Amount(1_000),
            expiry_secs: exo_api::testing::GENESIS_TIME_MS / 1_000 + 1_000,
        };
        self.send(1, offer).await;
        let module = self.upload(b"\0asm module").await;
        let publish = Action::PublishApp {
            module_hash: module,
            name: "render".into(),
            version: "1".into(),
            royalty_per_unit: Amount(0),
        };
        self.send(0, publish).await;
        let spec = JobSpec {
            app: module,
            app_developer: alice().public_key(),
            inputs: vec![],
            unit_args: vec![],
            units: 2,
            requirements: Requirements {
                min_cores: 1,
                min_memory_mib: 128,
                min_cpu_score: 0,
                gpu: None,
                class: None,
                region: None,
                runtime: Runtime::Wasm32Wasip1,
                fuel_limit: 1_000_000_000,
                min_reputation: 0,
            },
            max_price_per_unit: Amount(2_000),
            trust: 1,
        };
        self.send(0, Action::SubmitJob(Box::new(spec))).await;
        // Bob runs unit 0, proves it and hands over its outputs.
        let archive = pack(&Archive {
            outcome: "ok".into(),
            stdout: b"unit 0\n".to_vec(),
            dirs: vec![],
            files: vec![],
        })
        .unwrap();
        let digest = exo_api::outputs::unpack(&archive).unwrap().result_digest();
        let archive = self.upload(&archive).await;
        let (salt, fuel) = ([1u8; 32], 10);
        let commit = ResultCommit {
            job: 0,
            unit: 0,
            replica: 0,
            commitment: result_commitment(&digest, fuel, &salt, &bob().public_key()),
            seal: result_seal(&digest, fuel, 0, 0),
        };
        self.send(1, Action::CommitResults(vec![commit])).await;
        self.node.produce_blocks_to_the_audit_draw();
        let reveal = ResultReveal {
            job: 0,
            unit: 0,
            replica: 0,
            digest,
            fuel,
            salt,
        };
        self.send(1, Action::RevealResults(vec![reveal])).await;
        let body = json!({ "archive": hex::encode(archive) }).to_string();
        let request = Request::put("/v1/outputs/0/0")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, _, body) = call(&self.app, request).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }

    /// Signs `action` with alice's key (0) or bob's (1) and has it finalized.
    async fn send(&mut self, who: usize, action: Action) {
        let key = [alice(), bob()][who].clone();
        let tx = self.tx(&key, self.nonces[who], action);
        self.nonces[who] += 1;
        let request = Request::post("/v1/txs")
            .body(Body::from(submit_body(&tx)))
            .unwrap();
        let (status, _, body) = call(&self.app, request).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        self.node.produce_block();
    }

    fn tx(&self, key: &PrivateKey, nonce: u64, action: Action) -> SignedTx {
        UnsignedTx {
            chain_id: CHAIN.into(),
            sender: key.public_key(),
            nonce,
            fee: Amount(1_000),
            action,
        }
        .sign(key)
    }

    async fn upload(&mut self, bytes: &[u8]) -> Hash32 {
        let hash = *blake3::hash(bytes).as_bytes();
        let mut request = Request::put(format!("/v1/blobs?hash={}", hex::encode(hash)));
        for (name, value) in wire::blob_upload_headers(CHAIN, hash, &alice()) {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(bytes.to_vec())).unwrap();
        let (status, _, body) = call(&self.app, request).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        self.blobs.push(hash);
        hash
    }

    async fn document(&self) -> Value {
        let (status, headers, body) = call(&self.app, get("/v1/openapi.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        serde_json::from_slice(&body).unwrap()
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Sends `request`; answers the status, the headers and the body, except an event stream's
/// (which never ends).
async fn call(app: &Router, request: Request<Body>) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t == "text/event-stream")
    {
        return (status, headers, Vec::new());
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

/// The document's operations: method, path template and the operation object.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.clone(), operation.clone()));
        }
    }
    operations
}

/// Follows `$ref`s to the schema they name.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(reference) = schema["$ref"].as_str() {
        let name = reference.strip_prefix("#/components/schemas/").unwrap();
        schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "{reference} is not defined");
    }
    schema
}

/// Every `$ref` in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => references(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_and_the_router_serves_exactly_its_routes() {
    let node = Node::new().await;
    let doc = node.document().await;

    // It parses as OpenAPI 3.1, and each of its references resolves.
    let spec = oas3::from_json(doc.to_string()).unwrap();
    assert_eq!(spec.validate_version().unwrap().major, 3);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        resolve(&doc, &json!({ "$ref": reference }));
    }

    // Every operation: a unique id, each path parameter of its template declared (and no
    // other), a success and the refusals every route can give, each error an `ErrorBody` with
    // its codes.
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        assert!(ids.insert(operation["operationId"].as_str().unwrap().to_string()));
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_template, declared, "{what}");
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{what}");
        for status in ["408", "429", "500"] {
            assert!(responses.contains_key(status), "{what} lacks {status}");
        }
        for (status, response) in responses {
            status.parse::<StatusCode>().unwrap();
            if status.starts_with('2') || method == Method::HEAD {
                continue;
            }
            let codes = error_codes(&doc, &operation, status.parse().unwrap());
            assert!(!codes.is_empty(), "{what} {status}: {response}");
        }
        if !in_template.is_empty() {
            assert!(responses.contains_key("400"), "{what}: a bad path is a 400");
        }
    }
    // Numbers are bounded; hashes, addresses and amounts have their patterns.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Hash"]["pattern"], wire::schema::Hash::PATTERN);
    assert_eq!(schemas["Address"]["pattern"], "^[0-9a-fA-F]{64}$");
    assert_eq!(schemas["BaseUnits"]["pattern"], "^[0-9]{1,39}$");
    let height = &schemas["Block"]["properties"]["height"];
    assert_eq!(height["minimum"], 0);
    assert_eq!(height["maximum"], u64::MAX);
    assert_eq!(schemas["Job"]["properties"]["trust"]["maximum"], 255);
    // Bodies the server refuses with unknown fields say so.
    for body in ["SubmitRequest", "OutputsPut"] {
        assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
    }
    let jobs = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
    let limit = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], node.limits.max_page_items);

    // The router's routes are the document's operations, both ways.
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .map(|(path, method, _)| (method.to_string(), path))
        .collect();
    let served: BTreeSet<(String, String)> = exo_api::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect();
    assert_eq!(documented, served);

    // And the router itself agrees: on each documented path, every documented method is
    // routed (HEAD too where GET is, as HTTP has it) and every other answers 405.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let uri = example_path(path);
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::TRACE,
        ] {
            let has = |m: &Method| documented.contains(&(m.to_string(), path.clone()));
            let routed = has(&method) || (method == Method::HEAD && has(&Method::GET));
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = call(&node.app, request).await;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || body["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no route");
            assert_eq!(!unrouted, routed, "{method} {uri}: {status} {body}");
        }
    }
    // A path the document does not have is not served.
    let (status, _, _) = call(&node.app, get("/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `template` with each parameter filled with a valid value.
fn example_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{hash}" => "ab".repeat(32),
            "{address}" | "{developer}" => address_to_hex(&alice().public_key()),
            s if s.starts_with('{') => "0".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The codes the document gives for `status` of `operation`.
fn error_codes(doc: &Value, operation: &Value, status: StatusCode) -> BTreeSet<String> {
    let schema = &operation["responses"][status.as_str()]["content"]["application/json"]["schema"];
    schema["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|part| resolve(doc, part))
        .filter_map(|part| part["properties"]["error"]["enum"].as_array())
        .flatten()
        .map(|code| code.as_str().unwrap().to_string())
        .collect()
}

/// Whether `value` is valid under `schema` (the JSON Schema the document uses: types,
/// `$ref`, `allOf`, `oneOf`, `enum`, `pattern`, bounds, `required`, `properties`,
/// `additionalProperties`, `items`); the reason if not.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |why: String| Err(format!("{at}: {why}: {value}"));
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            validate(doc, part, value, at)?;
        }
    }
    if let Some(options) = schema["oneOf"].as_array()
        && !options.iter().any(|o| validate(doc, o, value, at).is_ok())
    {
        return fail("matches none of oneOf".into());
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let is = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return fail(format!("not of type {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return fail(format!("not one of {allowed:?}"));
    }
    if let (Some(pattern), Some(text)) = (schema["pattern"].as_str(), value.as_str())
        && !regex::Regex::new(pattern).unwrap().is_match(text)
    {
        return fail(format!("does not match {pattern}"));
    }
    if let Some(n) = value.as_u64() {
        if schema["minimum"].as_u64().is_some_and(|min| n < min) {
            return fail("under its minimum".into());
        }
        if schema["maximum"].as_u64().is_some_and(|max| n > max) {
            return fail("over its maximum".into());
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap()) {
                return fail(format!("lacks {name}"));
            }
        }
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match (&schema["properties"][name], &schema["additionalProperties"]) {
                (Value::Null, Value::Bool(false)) => return fail(format!("has {name}")),
                (Value::Null, Value::Object(_)) => {
                    validate(doc, &schema["additionalProperties"], field, &at)?
                }
                (Value::Null, _) => {}
                (property, _) => validate(doc, property, field, &at)?,
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(doc, schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// How one part of a request is made.
#[derive(Clone, Debug)]
enum Part {
    /// Left out (an optional parameter).
    Absent,
    /// Valid by the document.
    Valid(Vec<u8>),
    /// Anything.
    Garbage(Vec<u8>),
}

/// A request made from the document.
#[derive(Clone, Debug)]
struct Made {
    path: Vec<Part>,
    query: Vec<(String, Part)>,
    headers: Vec<(String, Part)>,
    body: Option<Part>,
    /// An extra query parameter no route takes.
    stray: bool,
}

impl Made {
    /// Whether the document says the request is well formed.
    fn valid(&self) -> bool {
        let ok = |part: &Part| !matches!(part, Part::Garbage(_));
        self.path.iter().all(ok)
            && self.query.iter().all(|(_, p)| ok(p))
            && self.headers.iter().all(|(_, p)| ok(p))
            && self.body.as_ref().is_none_or(ok)
            && !self.stray
    }
}

/// Values the node has records for, so that valid requests reach past their lookups.
struct Known {
    addresses: Vec<String>,
    hashes: Vec<String>,
    txs: Vec<String>,
}

/// Text valid under `schema`.
fn valid_text(doc: &Value, schema: &Value, known: &Known) -> BoxedStrategy<String> {
    let named = schema["$ref"].as_str().unwrap_or("");
    let schema = resolve(doc, schema);
    let types = schema["type"].to_string();
    if named.ends_with("/Address") {
        return proptest::sample::select(known.addresses.clone()).boxed();
    }
    if types.contains("boolean") {
        return proptest::sample::select(vec!["true".to_string(), "false".to_string()]).boxed();
    }
    if types.contains("integer") {
        let min = schema["minimum"].as_u64().unwrap_or(0);
        let max = schema["maximum"].as_u64().unwrap();
        return prop_oneof![
            4 => min..=max.min(min + 3),
            1 => Just(max),
            1 => min..=max,
        ]
        .prop_map(|n| n.to_string())
        .boxed();
    }
    match schema["pattern"].as_str() {
        Some(pattern) => {
            let inner = pattern.trim_start_matches('^').trim_end_matches('$');
            let made = proptest::string::string_regex(inner).unwrap();
            if named.ends_with("/Hash") {
                prop_oneof![made, proptest::sample::select(known.hashes.clone())].boxed()
            } else {
                made.boxed()
            }
        }
        None => "[a-z0-9=-]{0,12}".boxed(),
    }
}

/// Bytes that may be anything a client sends: wrong forms of numbers and hashes, other text,
/// bytes that are not UTF-8.
fn garbage() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop_oneof![
            Just("-1".to_string()),
            Just("1.5".to_string()),
            Just("0x10".to_string()),
            Just("+7".to_string()),
            Just(" 1".to_string()),
            Just("18446744073709551616".to_string()),
            Just("99999999999999999999999999999999".to_string()),
            "[0-9a-f]{63}",
            "[0-9a-f]{65}",
            "[0-9a-fA-Fg-z]{64}",
            ".{0,80}",
        ]
        .prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
    .boxed()
}

fn part(valid: BoxedStrategy<String>, required: bool) -> BoxedStrategy<Part> {
    let valid = valid.prop_map(|text| Part::Valid(text.into_bytes()));
    let garbage = garbage().prop_map(Part::Garbage);
    if required {
        prop_oneof![3 => valid, 1 => garbage].boxed()
    } else {
        prop_oneof![2 => Just(Part::Absent), 2 => valid, 1 => garbage].boxed()
    }
}

/// A JSON value valid under `schema`.
fn valid_json(doc: &Value, schema: &Value, known: &Known) -> BoxedStrategy<Value> {
    let named = schema["$ref"].as_str().unwrap_or("");
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        let options: Vec<_> = options.iter().map(|o| valid_json(doc, o, known)).collect();
        return proptest::strategy::Union::new(options).boxed();
    }
    let types = schema["type"].to_string();
    if types.contains("null") && types.contains("integer") {
        let number = valid_json(
            doc,
            &json!({ "type": "integer", "minimum": schema["minimum"], "maximum": schema["maximum"] }),
            known,
        );
        return prop_oneof![Just(Value::Null), number].boxed();
    }
    if types.contains("null") {
        return Just(Value::Null).boxed();
    }
    if types.contains("integer") {
        return valid_text(doc, schema, known)
            .prop_map(|n| json!(n.parse::<u64>().unwrap()))
            .boxed();
    }
    if types.contains("object") {
        let required: BTreeSet<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
        for (name, property) in schema["properties"].as_object().unwrap() {
            let name = name.clone();
            let value = valid_json(doc, property, known);
            let field = if required.contains(&name) {
                value.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                proptest::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
            };
            fields.push(field);
        }
        return fields
            .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
            .boxed();
    }
    if named.ends_with("/Signature") || named.ends_with("/Hash") || types.contains("string") {
        let text = match schema["pattern"].as_str() {
            // A transaction: one the node can admit, or any hex.
            Some(pattern) if pattern.contains("0x") => prop_oneof![
                proptest::sample::select(known.txs.clone()),
                valid_text(doc, schema, known)
            ]
            .boxed(),
            _ if named.is_empty() => valid_text(doc, schema, known),
            _ => valid_text(doc, &json!({ "$ref": named }), known),
        };
        return text.prop_map(Value::String).boxed();
    }
    panic!("no generator for {schema}");
}

/// A body for `operation`: valid by its schema, or bent (a field too many, one missing, one
/// of the wrong type), or any bytes.
fn body(doc: &Value, operation: &Value, known: &Known) -> Option<BoxedStrategy<Part>> {
    let content = operation["requestBody"]["content"].as_object()?;
    let (media, content) = content.iter().next().unwrap();
    let bytes = proptest::collection::vec(any::<u8>(), 0..2_000);
    if media != "application/json" {
        return Some(
            prop_oneof![
                bytes.clone().prop_map(Part::Valid),
                bytes.prop_map(Part::Garbage)
            ]
            .boxed(),
        );
    }
    let valid = valid_json(doc, &content["schema"], known);
    let bent = (valid.clone(), 0..4usize, any::<u8>()).prop_map(|(value, how, pick)| {
        let mut object = value.as_object().unwrap().clone();
        match how {
            0 => {
                object.insert("extra".into(), json!(1));
            }
            1 => {
                let keys: Vec<String> = object.keys().cloned().collect();
                if let Some(key) = keys.get(usize::from(pick) % keys.len().max(1)) {
                    object.remove(key);
                }
            }
            2 => {
                for (i, (_, v)) in object.iter_mut().enumerate() {
                    if i == usize::from(pick) % 3 {
                        *v = json!([pick]);
                    }
                }
            }
            _ => return Part::Garbage(format!("{value}").into_bytes().split_off(1)),
        }
        Part::Garbage(Value::Object(object).to_string().into_bytes())
    });
    Some(
        prop_oneof![
            3 => valid.prop_map(|v| Part::Valid(v.to_string().into_bytes())),
            2 => bent,
            1 => bytes.prop_map(Part::Garbage),
        ]
        .boxed(),
    )
}

/// Requests for `operation`, made from its parameters and body.
fn requests(doc: &Value, operation: &Value, known: &Known) -> BoxedStrategy<Made> {
    let mut path = Vec::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str().unwrap().to_string();
        let required = parameter["required"].as_bool().unwrap_or(false);
        let part = part(valid_text(doc, &parameter["schema"], known), required);
        match parameter["in"].as_str().unwrap() {
            "path" => path.push(part),
            "query" => query.push(part.prop_map(move |p| (name.clone(), p)).boxed()),
            "header" => headers.push(part.prop_map(move |p| (name.clone(), p)).boxed()),
            other => panic!("parameter in {other}"),
        }
    }
    let body = match body(doc, operation, known) {
        Some(body) => body.prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    (path, query, headers, body, proptest::bool::weighted(0.1))
        .prop_map(|(path, query, headers, body, stray)| Made {
            path,
            query,
            headers,
            body,
            stray,
        })
        .boxed()
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn request(method: &Method, template: &str, made: &Made) -> Request<Body> {
    let mut values = made.path.iter();
    let mut uri: String = template
        .split('/')
        .map(|segment| {
            if !segment.starts_with('{') {
                return segment.to_string();
            }
            match values.next().unwrap() {
                Part::Valid(bytes) | Part::Garbage(bytes) if !bytes.is_empty() => encode(bytes),
                // An empty segment is another path, not this operation's.
                _ => "%20".to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut pairs: Vec<String> = made
        .query
        .iter()
        .filter_map(|(name, part)| match part {
            Part::Absent => None,
            Part::Valid(bytes) | Part::Garbage(bytes) => Some(format!("{name}={}", encode(bytes))),
        })
        .collect();
    if made.stray {
        pairs.push("stray=1".into());
    }
    if !pairs.is_empty() {
        uri = format!("{uri}?{}", pairs.join("&"));
    }
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    for (name, part) in &made.headers {
        if let Part::Valid(bytes) | Part::Garbage(bytes) = part {
            // Header values cannot hold control characters: those bytes go.
            let value: Vec<u8> = bytes
                .iter()
                .copied()
                .filter(|b| *b >= 0x20 && *b != 0x7f)
                .collect();
            builder = builder.header(name.as_str(), value);
        }
    }
    let body = match &made.body {
        Some(Part::Valid(bytes) | Part::Garbage(bytes)) => bytes.clone(),
        _ => Vec::new(),
    };
    builder.body(Body::from(body)).unwrap()
}

/// The answer to `made` is one the document gives for the operation: a status it lists and
/// no server error (but 503 from a node that is not `ready`); for an error, a code it lists
/// for that status; for a success, a body of its schema. A request the document calls valid
/// is never refused for its form.
fn check(
    doc: &Value,
    method: &Method,
    operation: &Value,
    made: &Made,
    ready: bool,
    (status, headers, body): (StatusCode, header::HeaderMap, Vec<u8>),
) -> Result<(), String> {
    let text = String::from_utf8_lossy(&body);
    let response = &operation["responses"][status.as_str()];
    if !response.is_object() {
        return Err(format!("{status} is not documented: {text}"));
    }
    if status.is_server_error() && (ready || status != StatusCode::SERVICE_UNAVAILABLE) {
        return Err(format!("a server error: {status} {text}"));
    }
    if *method == Method::HEAD {
        return Ok(());
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .map(|t| t.to_str().unwrap().to_string())
        .unwrap_or_default();
    if !status.is_success() {
        let error: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{status}: {e}: {text}"))?;
        let code = error["error"].as_str().unwrap_or("");
        let codes = error_codes(doc, operation, status);
        if !codes.contains(code) {
            return Err(format!("{status} `{code}` is not among {codes:?}: {text}"));
        }
        const FORM: [&str; 7] = [
            "bad_path",
            "bad_query",
            "bad_id",
            "bad_height",
            "bad_hash",
            "bad_address",
            "bad_json",
        ];
        if made.valid() && FORM.contains(&code) {
            return Err(format!("a valid request refused for its form: {text}"));
        }
        return Ok(());
    }
    let Some(content) = response["content"].get(media.as_str()) else {
        return Err(format!(
            "{status} as {media:?}, not as the document says: {response}"
        ));
    };
    match media.as_str() {
        "application/json" => {
            let value: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {text}"))?;
            validate(doc, &content["schema"], &value, "body")
        }
        exo_metrics if exo_metrics.starts_with("application/openmetrics-text") => {
            check_openmetrics(&text)
        }
        _ => Ok(()),
    }
}

/// Runs `cases` requests made from the document against each of its operations, checking
/// each answer; a node whose state store is `failing` may answer what the document gives for
/// it (503 `unavailable`) where the route reads state.
fn fuzz(
    runtime: &tokio::runtime::Runtime,
    node: &Node,
    doc: &Value,
    known: &Known,
    cases: u32,
    failing: bool,
) -> usize {
    let answered = std::cell::Cell::new(0);
    for (method, path, operation) in &operations(doc) {
        // No seed file: the strategies are made from the document, so a stored seed would not
        // replay the same request once it changes. A failure prints the smallest request.
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = requests(doc, operation, known);
        let result = runner.run(&strategy, |made| {
            let request = request(method, path, &made);
            let uri = request.uri().to_string();
            let answer = runtime.block_on(call(&node.app, request));
            answered.set(answered.get() + 1);
            check(doc, method, operation, &made, !failing, answer)
                .map_err(|e| TestCaseError::fail(format!("{method} {uri}: {e}")))
        });
        if let Err(failure) = result {
            panic!("{method} {path}: {failure}");
        }
    }
    answered.get()
}

/// From the document, requests for every operation, valid ones and others; each answer is
/// one the document gives. Then the same with the node's state store failing. 64 requests
/// per operation run in seconds; `PROPTEST_CASES` sets another count.
#[test]
fn requests_made_from_the_document_get_only_the_answers_it_gives() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = runtime.block_on(Node::new());
    let doc = runtime.block_on(node.document());
    let key = |seed| address_to_hex(&PrivateKey::from_seed(seed).public_key());
    let known = Known {
        addresses: (1..5).map(key).collect(),
        hashes: node.blobs.iter().map(hex::encode).collect(),
        // Transfers alice can make: admitted, or refused for their nonce or as duplicates.
        txs: (0..8)
            .map(|nonce| {
                let action = Action::Transfer {
                    to: bob().public_key(),
                    amount: Amount(1),
                };
                hex::encode(commonware_codec::Encode::encode(&node.tx(
                    &alice(),
                    node.nonces[0] + nonce,
                    action,
                )))
            })
            .collect(),
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let operations = operations(&doc).len();
    let answered = fuzz(&runtime, &node, &doc, &known, cases, false);
    assert_eq!(answered, operations * cases as usize);
    let (status, _, _) = runtime.block_on(call(&node.app, get("/v1/status")));
    assert_eq!(status, StatusCode::OK);

    node.node.set_state_mode(StateMode::Fails);
    let answered = fuzz(&runtime, &node, &doc, &known, cases.div_ceil(4), true);
    assert_eq!(answered, operations * cases.div_ceil(4) as usize);
}
