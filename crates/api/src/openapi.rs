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

/// The OpenAPI document served at `GET /v1/openapi.json`.
pub fn document() -> Value {
    let hex32 = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    let base_units = json!({
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Amount in base units (1 EXO = 10^9), as a decimal string."
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Exodus node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status, transactions, accounts, finalized blocks and events of an Exodus node. Every error is a JSON object {error, message}; errors caused by the request are 4xx."
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
                    "409": error_response("duplicate, underpriced or already_finalized."),
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
                "summary": "Server-sent events: one `block` event (data: Block) per finalized block, `lagged` (data: {skipped}) when the client fell behind.",
                "responses": {
                    "200": { "description": "An event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                    "429": error_response("too_many_streams or rate_limited.")
                }
            }},
            "/v1/openapi.json": { "get": {
                "summary": "This document.",
                "responses": { "200": { "description": "OpenAPI 3 document.", "content": { "application/json": {} } } }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics of the node and the API.",
                "responses": { "200": { "description": "Prometheus text format.", "content": { "text/plain": { "schema": { "type": "string" } } } } }
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
                        "properties": { "code": { "type": "string" }, "message": { "type": "string" } }
                    },
                    "height": { "type": "integer", "format": "int64", "minimum": 0 },
                    "index": { "type": "integer", "format": "int32", "minimum": 0 },
                    "fee_paid": base_units
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
    })
}
