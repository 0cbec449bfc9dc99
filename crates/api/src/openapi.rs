//! The OpenAPI 3 description of the routes, written by hand next to [`crate::wire`].

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn path_param(name: &str, description: &str, pattern: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "pattern": pattern }
    })
}

fn query_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": { "type": "string" }
    })
}

fn page_params(from: &str) -> Value {
    json!([
        query_param("from", from),
        query_param(
            "limit",
            "Items of the page, 1 to the node's maximum (1000 by default); 100 if absent."
        )
    ])
}

fn obj(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The paths of the compute market, the blob store and outputs.
fn market_paths() -> Value {
    let id = |what: &str| path_param("id", what, "^[0-9]+$");
    let hash = |what: &str| path_param("hash", what, "^[0-9a-fA-F]{64}$");
    json!({
        "/v1/providers": { "get": {
            "summary": "Registered providers by id.",
            "parameters": page_params("First provider id (default 0)."),
            "responses": {
                "200": json_response("A page of providers; `next` is the `from` of the next page.", "ProviderPage"),
                "400": error_response("bad_query.")
            }
        }},
        "/v1/providers/{id}": { "get": {
            "summary": "A provider: owner, resources, bond, reputation and record.",
            "parameters": [id("Provider id.")],
            "responses": {
                "200": json_response("The provider.", "Provider"),
                "400": error_response("bad_id."),
                "404": error_response("not_found.")
            }
        }},
        "/v1/providers/{id}/work": { "get": {
            "summary": "A provider's open replicas, with everything its worker needs to run them.",
            "parameters": [id("Provider id."), query_param("from", "Index into the work list (default 0)."), query_param("limit", "Items of the page.")],
            "responses": {
                "200": json_response("A page of work.", "WorkPage"),
                "400": error_response("bad_id or bad_query."),
                "404": error_response("not_found: no such provider.")
            }
        }},
        "/v1/accounts/{address}/provider": { "get": {
            "summary": "The provider an account registered.",
            "parameters": [path_param("address", "Account address, hex.", "^[0-9a-fA-F]{64}$")],
            "responses": {
                "200": json_response("Its provider id.", "ProviderOf"),
                "400": error_response("bad_address."),
                "404": error_response("not_found: the account has no provider.")
            }
        }},
        "/v1/market/offers": { "get": {
            "summary": "Offers on the book by id.",
            "parameters": page_params("First offer id (default 0)."),
            "responses": {
                "200": json_response("A page of offers.", "OfferPage"),
                "400": error_response("bad_query.")
            }
        }},
        "/v1/market/depth": { "get": {
            "summary": "Free slots of offers live at the next block, aggregated by price, cheapest first.",
            "responses": { "200": json_response("The book's depth.", "Depth") }
        }},
        "/v1/jobs": { "get": {
            "summary": "Jobs. With `height`: every job submitted at that height or later, newest first (how a requester finds the id of its job from its receipt). Without: open jobs by id.",
            "parameters": [
                query_param("requester", "Only this requester's jobs (hex address)."),
                query_param("height", "Scan jobs submitted at this height or later."),
                query_param("from", "First open job id (without `height`)."),
                query_param("limit", "Items of the page (with `height`: records scanned).")
            ],
            "responses": {
                "200": json_response("Matching jobs.", "JobPage"),
                "400": error_response("bad_query or bad_address.")
            }
        }},
        "/v1/jobs/{id}": { "get": {
            "summary": "A job, its accounts, unit counts and a page of its units with their state (waiting, running, accepted, failed, cancelled), reason, replicas and accepted digest.",
            "parameters": [id("Job id."), query_param("from", "First unit index (default 0)."), query_param("limit", "Units of the page.")],
            "responses": {
                "200": json_response("The job; `next_unit` is the `from` of the next page of units.", "Job"),
                "400": error_response("bad_id or bad_query."),
                "404": error_response("not_found.")
            }
        }},
        "/v1/apps": { "get": {
            "summary": "Published apps in publication order.",
            "parameters": page_params("Index of the first app (default 0)."),
            "responses": { "200": json_response("A page of apps.", "AppPage"), "400": error_response("bad_query.") }
        }},
        "/v1/apps/{hash}/{developer}": { "get": {
            "summary": "A published app by module hash and developer: the same module published by another account is another app.",
            "parameters": [
                hash("Module hash (BLAKE3 of the wasm), hex."),
                path_param("developer", "The developer's address, hex.", "^[0-9a-fA-F]{64}$")
            ],
            "responses": {
                "200": json_response("The app.", "App"),
                "400": error_response("bad_hash."),
                "404": error_response("not_found.")
            }
        }},
        "/v1/blobs": { "put": {
            "summary": "Store a blob (job input, module, outputs archive) for the funded account that signs the upload, within its quota. The node names it by the BLAKE3 of the bytes it received. A blob nothing on chain references is deleted after a grace period (an hour by default), a job's inputs once the job ended, its outputs a retention period (a week) after.",
            "parameters": [
                query_param("hash", "Expected BLAKE3 (hex), required: bytes of another hash are refused and not stored."),
                { "name": "x-exo-signer", "in": "header", "required": true, "description": "The uploading account's address (hex).", "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } },
                { "name": "x-exo-signature", "in": "header", "required": true, "description": "The account's ed25519 signature (hex) over the chain id and the blob hash (namespace exodus-blob-v1).", "schema": { "type": "string", "pattern": "^[0-9a-f]{128}$" } }
            ],
            "requestBody": { "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
            "responses": {
                "201": json_response("Stored.", "BlobStored"),
                "400": error_response("hash_mismatch, bad_hash, bad_query, bad_address, bad_signature or bad_header."),
                "401": error_response("unsigned: the upload carries no signer and signature."),
                "403": error_response("bad_signer (the signature is not the signer's) or unfunded (the signer's balance is below the node's minimum, 1 EXO by default)."),
                "413": error_response("blob_too_large: over the node's blob bound (64 MiB by default)."),
                "429": error_response("quota_exceeded: the signer's blobs on this node reach its quota (1 GiB by default); or rate_limited."),
                "503": error_response("blobs_disabled."),
                "507": error_response("store_full: the store's disk bound is reached.")
            }
        }},
        "/v1/blobs/{hash}": {
            "get": {
                "summary": "A blob's bytes; supports `Range: bytes=a-b`, `a-` and `-n`. A range is served from the file verified at upload; a whole blob is hashed as it is served (a corrupt one is deleted: answered 500 if small, its stream cut if big).",
                "parameters": [hash("Blob hash, hex.")],
                "responses": {
                    "200": { "description": "The whole blob.", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "206": { "description": "The range asked for; Content-Range says which.", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "400": error_response("bad_hash."),
                    "404": error_response("not_found."),
                    "416": error_response("range_not_satisfiable; Content-Range: bytes */SIZE."),
                    "500": error_response("blob_corrupt: the file no longer had its hash and was deleted."),
                    "503": error_response("blobs_disabled.")
                }
            },
            "head": {
                "summary": "Whether the node holds a blob; Content-Length is its size.",
                "parameters": [hash("Blob hash, hex.")],
                "responses": { "200": { "description": "Held." }, "404": { "description": "Not held." } }
            }
        },
        "/v1/outputs/{job}/{unit}": {
            "get": {
                "summary": "The outputs archive of an accepted unit held by this node: a blob whose recomputed result digest is the unit's accepted digest.",
                "parameters": [path_param("job", "Job id.", "^[0-9]+$"), path_param("unit", "Unit index.", "^[0-9]+$")],
                "responses": {
                    "200": json_response("Where the archive is.", "Outputs"),
                    "404": error_response("not_accepted (no verdict yet) or not_found (no such job or unit, or no archive here).")
                }
            },
            "put": {
                "summary": "Record the outputs archive of a unit (upload it with PUT /v1/blobs first). Before the unit's verdict only the provider of one of its replicas may, signing {chain id, job, unit, replica, archive} (namespace exodus-outputs-v1); each replica holds one candidate. After the verdict anyone may, and the archive must have the accepted digest.",
                "parameters": [path_param("job", "Job id.", "^[0-9]+$"), path_param("unit", "Unit index.", "^[0-9]+$")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema_ref("OutputsPut") } } },
                "responses": {
                    "200": json_response("Recorded; `accepted` says whether it was checked against the verdict.", "Outputs"),
                    "400": error_response("bad_archive, bad_query, bad_id or bad_signature."),
                    "401": error_response("unsigned: the unit has no verdict yet and the request names no replica and signature."),
                    "403": error_response("not_a_replica: the signature is not that of the named replica's provider."),
                    "404": error_response("not_found: no such job, unit or blob."),
                    "409": error_response("digest_mismatch, not_assigned, unit_failed or too_many_candidates."),
                    "503": error_response("blobs_disabled.")
                }
            }
        }
    })
}

/// The schemas of the compute market's bodies.
fn market_schemas(hex32: &Value, base_units: &Value) -> Value {
    let int = json!({ "type": "integer", "format": "int64", "minimum": 0 });
    let int_or_null =
        json!({ "type": "integer", "format": "int64", "minimum": 0, "nullable": true });
    let text = json!({ "type": "string" });
    let text_or_null = json!({ "type": "string", "nullable": true });
    let boolean = json!({ "type": "boolean" });
    // Why units wait: the matcher's numbers, a code and the sentence made of them (null when
    // nothing waits).
    let wait_reason = json!({
        "type": "object", "nullable": true,
        "required": ["code", "binding", "live_offers", "excluded_by", "passed", "passed_exact", "best_ask", "max_price_per_unit", "sentence"],
        "properties": {
            "code": { "type": "string", "enum": ["empty_book", "no_provider", "price_too_low", "slots_taken"] },
            "binding": { "type": "string", "nullable": true, "description": "With no_provider: the requirement that excludes the most offers." },
            "live_offers": int, "excluded_by": { "type": "object", "additionalProperties": int },
            "passed": int, "passed_exact": boolean,
            "best_ask": { "type": "string", "pattern": "^[0-9]+$", "nullable": true }, "max_price_per_unit": base_units,
            "sentence": text
        }
    });
    let hex_or_null = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$", "nullable": true });
    let array = |items: Value| json!({ "type": "array", "items": items });
    let next = json!({ "type": "integer", "format": "int64", "nullable": true, "description": "The `from` of the next page; null on the last." });
    let schemas: Vec<(&str, Value)> = vec![
        (
            "Resources",
            obj(
                &[
                    "cores",
                    "cpu_score",
                    "memory_mib",
                    "gpu",
                    "class",
                    "region",
                    "runtimes",
                    "max_unit_fuel",
                ],
                json!({
                    "cores": int, "cpu_score": int, "memory_mib": int,
                    "gpu": { "type": "object", "nullable": true, "required": ["model", "count", "memory_mib"],
                             "properties": { "model": text, "count": int, "memory_mib": int } },
                    "class": { "type": "string", "enum": ["server", "pc", "laptop", "phone", "iot"] },
                    "region": text, "runtimes": array(text.clone()), "max_unit_fuel": int
                }),
            ),
        ),
        (
            "Requirements",
            obj(
                &[
                    "min_cores",
                    "min_memory_mib",
                    "min_cpu_score",
                    "gpu",
                    "class",
                    "region",
                    "runtime",
                    "fuel_limit",
                    "min_reputation",
                ],
                json!({
                    "min_cores": int, "min_memory_mib": int, "min_cpu_score": int,
                    "gpu": { "type": "object", "nullable": true, "required": ["model", "min_count", "min_memory_mib"],
                             "properties": { "model": text_or_null, "min_count": int, "min_memory_mib": int } },
                    "class": text_or_null, "region": text_or_null, "runtime": text, "fuel_limit": int, "min_reputation": int
                }),
            ),
        ),
        (
            "Provider",
            obj(
                &[
                    "id",
                    "owner",
                    "resources",
                    "bond",
                    "reputation",
                    "reputation_max",
                    "trusted",
                    "active",
                    "valid",
                    "invalid",
                    "missed",
                    "retired",
                    "registered_height",
                ],
                json!({
                    "id": int, "owner": hex32, "resources": schema_ref("Resources"), "bond": base_units,
                    "reputation": int, "reputation_max": int, "trusted": boolean, "active": int,
                    "valid": int, "invalid": int, "missed": int, "retired": boolean, "registered_height": int
                }),
            ),
        ),
        (
            "ProviderPage",
            obj(
                &["providers", "next"],
                json!({ "providers": array(schema_ref("Provider")), "next": next }),
            ),
        ),
        (
            "ProviderOf",
            obj(
                &["address", "provider"],
                json!({ "address": hex32, "provider": int }),
            ),
        ),
        (
            "InputRef",
            obj(
                &["name", "hash", "size"],
                json!({ "name": text, "hash": hex32, "size": int }),
            ),
        ),
        (
            "WorkItem",
            obj(
                &[
                    "job",
                    "unit",
                    "replica",
                    "status",
                    "assigned_height",
                    "commit_deadline",
                    "reveal_open",
                    "reveal_deadline",
                    "app",
                    "inputs",
                    "args",
                    "fuel_limit",
                    "memory_mib",
                    "price_per_unit",
                ],
                json!({
                    "job": int, "unit": int, "replica": int,
                    "status": { "type": "string", "enum": ["assigned", "committed", "revealed"] },
                    "assigned_height": int, "commit_deadline": int, "reveal_open": boolean, "reveal_deadline": int_or_null,
                    "app": hex32, "inputs": array(schema_ref("InputRef")),
                    "args": { "type": "array", "items": text, "nullable": true },
                    "fuel_limit": int, "memory_mib": int, "price_per_unit": base_units
                }),
            ),
        ),
        (
            "WorkPage",
            obj(
                &["provider", "height", "work", "next"],
                json!({ "provider": int, "height": int, "work": array(schema_ref("WorkItem")), "next": next }),
            ),
        ),
        (
            "Offer",
            obj(
                &[
                    "id",
                    "provider",
                    "owner",
                    "resources",
                    "reputation",
                    "slots",
                    "price_per_unit",
                    "posted_height",
                    "expiry_height",
                ],
                json!({
                    "id": int, "provider": int, "owner": hex32, "resources": schema_ref("Resources"), "reputation": int,
                    "slots": int, "price_per_unit": base_units, "posted_height": int, "expiry_height": int
                }),
            ),
        ),
        (
            "OfferPage",
            obj(
                &["offers", "next"],
                json!({ "offers": array(schema_ref("Offer")), "next": next }),
            ),
        ),
        (
            "Depth",
            obj(
                &["height", "levels"],
                json!({ "height": int, "levels": array(obj(&["price_per_unit", "slots", "offers"], json!({
            "price_per_unit": base_units, "slots": int, "offers": int
        }))) }),
            ),
        ),
        (
            "App",
            obj(
                &[
                    "module_hash",
                    "developer",
                    "name",
                    "version",
                    "royalty_per_unit",
                    "published_height",
                ],
                json!({
                    "module_hash": hex32, "developer": hex32, "name": text, "version": text, "royalty_per_unit": base_units, "published_height": int
                }),
            ),
        ),
        (
            "AppPage",
            obj(
                &["apps", "next"],
                json!({ "apps": array(schema_ref("App")), "next": next }),
            ),
        ),
        (
            "UnitCounts",
            obj(
                &["waiting", "running", "accepted", "failed"],
                json!({ "waiting": int, "running": int, "accepted": int, "failed": int }),
            ),
        ),
        (
            "Replica",
            obj(
                &[
                    "index",
                    "provider",
                    "offer",
                    "price_per_unit",
                    "assigned_height",
                    "commit_deadline",
                    "status",
                    "commitment",
                    "revealed_digest",
                    "revealed_fuel",
                ],
                json!({
                    "index": int, "provider": int, "offer": int, "price_per_unit": base_units, "assigned_height": int, "commit_deadline": int,
                    "status": { "type": "string", "enum": ["assigned", "committed", "revealed", "agreed", "disagreed", "no_show", "cancelled", "unfinished", "excused"] },
                    "commitment": hex_or_null, "revealed_digest": hex_or_null, "revealed_fuel": int_or_null
                }),
            ),
        ),
        (
            "Unit",
            obj(
                &[
                    "unit",
                    "state",
                    "reason",
                    "replicas",
                    "reveal_deadline",
                    "accepted_digest",
                    "accepted_fuel",
                ],
                json!({
                    "unit": int,
                    "state": { "type": "string", "enum": ["waiting", "running", "accepted", "failed", "cancelled"] },
                    "reason": wait_reason.clone(), "replicas": array(schema_ref("Replica")), "reveal_deadline": int_or_null,
                    "accepted_digest": hex_or_null, "accepted_fuel": int_or_null
                }),
            ),
        ),
        (
            "Job",
            obj(
                &[
                    "id",
                    "requester",
                    "state",
                    "app",
                    "inputs",
                    "unit_args",
                    "unit_count",
                    "requirements",
                    "max_price_per_unit",
                    "trust",
                    "fuel_limit",
                    "max_replicas",
                    "developer",
                    "royalty_per_unit",
                    "submitted_height",
                    "accounts",
                    "counts",
                    "wait_reason",
                    "units",
                    "next_unit",
                ],
                json!({
                    "id": int, "requester": hex32,
                    "state": { "type": "string", "enum": ["open", "done", "cancelled"] },
                    "app": hex32, "inputs": array(schema_ref("InputRef")), "unit_args": boolean, "unit_count": int,
                    "requirements": schema_ref("Requirements"), "max_price_per_unit": base_units, "trust": int,
                    "fuel_limit": int, "max_replicas": int, "developer": hex32, "royalty_per_unit": base_units, "submitted_height": int,
                    "accounts": obj(&["escrowed", "paid", "paid_total", "royalties", "fees", "refunded", "held"], json!({
                        "escrowed": base_units, "paid": array(obj(&["provider", "amount"], json!({ "provider": int, "amount": base_units }))),
                        "paid_total": base_units, "royalties": base_units, "fees": base_units, "refunded": base_units, "held": base_units
                    })),
                    "counts": schema_ref("UnitCounts"), "wait_reason": wait_reason,
                    "units": array(schema_ref("Unit")), "next_unit": next
                }),
            ),
        ),
        (
            "JobPage",
            obj(
                &["jobs", "next"],
                json!({ "jobs": array(obj(&["id", "requester", "state", "app", "submitted_height", "unit_count", "counts"], json!({
            "id": int, "requester": hex32, "state": text, "app": hex32, "submitted_height": int, "unit_count": int, "counts": schema_ref("UnitCounts")
        }))), "next": next }),
            ),
        ),
        (
            "AssignmentEvent",
            obj(
                &[
                    "height",
                    "job",
                    "unit",
                    "replica",
                    "provider",
                    "price_per_unit",
                    "commit_deadline",
                ],
                json!({
                    "height": int, "job": int, "unit": int, "replica": int, "provider": int, "price_per_unit": base_units, "commit_deadline": int
                }),
            ),
        ),
        (
            "BlobStored",
            obj(&["hash", "size"], json!({ "hash": hex32, "size": int })),
        ),
        (
            "OutputsPut",
            obj(
                &["archive"],
                json!({
                    "archive": hex32,
                    "replica": { "type": "integer", "minimum": 0, "description": "The replica whose provider signs; required before the unit's verdict." },
                    "signature": { "type": "string", "pattern": "^[0-9a-f]{128}$", "description": "Hex ed25519 signature of the replica's provider over the outputs claim; required before the unit's verdict." }
                }),
            ),
        ),
        (
            "Outputs",
            obj(
                &["job", "unit", "archive", "size", "digest", "accepted"],
                json!({
                    "job": int, "unit": int, "archive": hex32, "size": int, "digest": hex32, "accepted": boolean
                }),
            ),
        ),
    ];
    Value::Object(
        schemas
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The OpenAPI document served at `GET /v1/openapi.json`.
pub fn document() -> Value {
    let hex32 = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    let base_units = json!({
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Amount in base units (1 EXO = 10^9), as a decimal string."
    });
    let mut document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Exodus node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status, transactions, accounts, finalized blocks and events of an Exodus node, its compute market (providers, offers, jobs, apps, work), its blob store and unit outputs. Every error is a JSON object {error, message}; errors caused by the request are 4xx. On any route: 400 bad_path (a path parameter that is not UTF-8), 408 request_timeout (the handler took longer than the node's bound, 30 s by default), 429 rate_limited (unsigned requests per address, an IPv6 /64 counting as one; transactions, outputs registrations and blob uploads per signing key; list reads cost more) or busy (the node handles as many requests as it may at once; retry after Retry-After)."
        },
        "paths": {
            "/v1/status": { "get": {
                "summary": "The chain as this node sees it.",
                "responses": {
                    "200": json_response("Node status.", "Status"),
                    "429": error_response("Rate limited.")
                }
            }},
            "/v1/txs": { "post": {
                "summary": "Submit a signed transaction to the mempool.",
                "description": "Checks the signature, the chain id, the fee against the minimum, the nonce against the finalized account nonce and that the balance covers the fee before admission.",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/SubmitRequest" } } } },
                "responses": {
                    "202": json_response("Admitted to the mempool.", "SubmitResponse"),
                    "400": error_response("bad_json, bad_hex, bad_encoding, bad_signature, wrong_chain, fee_too_low, replayed_nonce, nonce_too_far or insufficient_funds."),
                    "409": error_response("duplicate or underpriced."),
                    "413": error_response("body_too_large or oversize."),
                    "429": error_response("rate_limited, mempool_full or sender_full."),
                    "503": error_response("unavailable or timeout: the node's state could not be read.")
                }
            }},
            "/v1/txs/{hash}": { "get": {
                "summary": "The receipt of a transaction, or pending while it is in the mempool.",
                "parameters": [path_param("hash", "Transaction hash, hex.", "^[0-9a-fA-F]{64}$")],
                "responses": {
                    "200": json_response("Receipt or pending.", "Receipt"),
                    "400": error_response("bad_hash."),
                    "404": error_response("not_found: neither finalized nor pending on this node.")
                }
            }},
            "/v1/accounts/{address}": { "get": {
                "summary": "Finalized balance and next nonce of an account.",
                "parameters": [path_param("address", "Account address (ed25519 public key), hex.", "^[0-9a-fA-F]{64}$")],
                "responses": {
                    "200": json_response("The account; never-used accounts have balance 0 and nonce 0.", "Account"),
                    "400": error_response("bad_address.")
                }
            }},
            "/v1/blocks/{height}": { "get": {
                "summary": "A finalized block's header and transaction hashes.",
                "parameters": [path_param("height", "Block height.", "^[0-9]+$")],
                "responses": {
                    "200": json_response("The block.", "Block"),
                    "400": error_response("bad_height."),
                    "404": error_response("not_found: not finalized on this node.")
                }
            }},
            "/v1/events": { "get": {
                "summary": "Server-sent events: one `block` event (data: Block) per finalized block, then one `assignment` event (data: AssignmentEvent) per replica its batch match assigned; `lagged` (data: {skipped}) when the client fell behind.",
                "parameters": [query_param("provider", "Only this provider's `assignment` events (blocks are always sent).")],
                "responses": {
                    "200": { "description": "An event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                    "400": error_response("bad_query."),
                    "429": error_response("too_many_streams (the node's bound, 256, or the client address's, 8) or rate_limited.")
                }
            }},
            "/v1/openapi.json": { "get": {
                "summary": "This document.",
                "responses": { "200": { "description": "OpenAPI 3 document.", "content": { "application/json": {} } } }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics of the node and the API. Rate limited like every route, at five requests' cost.",
                "responses": {
                    "200": { "description": "Prometheus text format.", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "429": error_response("rate_limited.")
                }
            }}
        },
        "components": { "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": { "type": "string", "description": "Stable machine-readable code." },
                    "message": { "type": "string", "description": "One sentence for people." }
                }
            },
            "Status": {
                "type": "object",
                "required": ["chain_id", "height", "finalized_height", "epoch", "state_root", "peers", "min_fee"],
                "properties": {
                    "chain_id": { "type": "string" },
                    "height": { "type": "integer", "format": "int64", "minimum": 0 },
                    "finalized_height": { "type": "integer", "format": "int64", "minimum": 0 },
                    "epoch": { "type": "integer", "format": "int64", "minimum": 0 },
                    "state_root": { "type": "string", "nullable": true, "pattern": "^[0-9a-f]{64}$" },
                    "peers": { "type": "integer", "minimum": 0 },
                    "min_fee": base_units
                }
            },
            "SubmitRequest": {
                "type": "object",
                "required": ["tx"],
                "additionalProperties": false,
                "properties": {
                    "tx": { "type": "string", "pattern": "^(0x)?[0-9a-fA-F]*$", "description": "Hex of the transaction's canonical encoding." }
                }
            },
            "SubmitResponse": {
                "type": "object",
                "required": ["hash"],
                "properties": { "hash": hex32 }
            },
            "Receipt": {
                "type": "object",
                "required": ["hash", "status"],
                "properties": {
                    "hash": hex32,
                    "status": { "type": "string", "enum": ["pending", "ok", "rejected"] },
                    "reason": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "module": { "type": "string", "enum": ["exec", "bank", "evidence", "market"] },
                            "code": { "type": "string" },
                            "fields": { "type": "array", "items": { "type": "string", "pattern": "^[0-9]+$" }, "description": "The refusal's numbers, in its code's order." },
                            "message": { "type": "string" }
                        }
                    },
                    "height": { "type": "integer", "format": "int64", "minimum": 0 },
                    "index": { "type": "integer", "format": "int32", "minimum": 0 },
                    "fee_paid": base_units,
                    "created": {
                        "type": "array",
                        "description": "The ids the transaction created (the job of a SubmitJob).",
                        "items": {
                            "type": "object", "required": ["kind", "id"],
                            "properties": {
                                "kind": { "type": "string", "enum": ["provider", "offer", "job"] },
                                "id": { "type": "integer", "format": "int64", "minimum": 0 }
                            }
                        }
                    }
                }
            },
            "Account": {
                "type": "object",
                "required": ["address", "balance", "nonce"],
                "properties": {
                    "address": hex32,
                    "balance": base_units,
                    "nonce": { "type": "integer", "format": "int64", "minimum": 0 }
                }
            },
            "Block": {
                "type": "object",
                "required": ["height", "digest", "parent", "state_root", "epoch", "view", "proposer", "tx_hashes", "evidence"],
                "properties": {
                    "height": { "type": "integer", "format": "int64", "minimum": 0 },
                    "digest": hex32,
                    "parent": hex32,
                    "state_root": hex32,
                    "epoch": { "type": "integer", "format": "int64", "minimum": 0 },
                    "view": { "type": "integer", "format": "int64", "minimum": 0 },
                    "proposer": hex32,
                    "tx_hashes": { "type": "array", "items": hex32 },
                    "evidence": { "type": "integer", "minimum": 0 }
                }
            }
        }}
    });
    merge(&mut document["paths"], market_paths());
    merge(
        &mut document["components"]["schemas"],
        market_schemas(&hex32, &base_units),
    );
    document
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
