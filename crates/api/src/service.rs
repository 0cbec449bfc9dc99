//! What each route does, apart from HTTP: admission checks, state reads and their JSON forms.
//! Handlers only extract, call one function here and turn the result into a response.

use crate::{ApiError, ApiLimits, NodeView, wire};
use exo_chain::FinalizedBlock;
use exo_ledger::{
    Rejection, TxStatus,
    exec::{self, Created, Nonce, Precheck, Rules, precheck},
    modules::bank,
};
use exo_types::{Address, MAX_TX_BYTES, SignedTx, TxHash, address_from_hex};
use std::{future::Future, time::Duration};

/// Bounds a call into the node.
pub(crate) async fn bounded<T>(
    limits: &ApiLimits,
    fut: impl Future<Output = T>,
) -> Result<T, ApiError> {
    tokio::time::timeout(Duration::from_millis(limits.node_timeout_ms), fut)
        .await
        .map_err(|_| ApiError::Timeout(limits.node_timeout_ms))
}

/// The finalized value of `key`, within the node timeout.
pub(crate) async fn read_state<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    key: exo_ledger::Key,
) -> Result<Option<Vec<u8>>, ApiError> {
    bounded(limits, node.state(key))
        .await?
        .map_err(ApiError::Unavailable)
}

/// The finalized account of `address` (zero balance, nonce 0 if never touched).
pub(crate) async fn read_account<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    address: &Address,
) -> Result<exo_ledger::Account, ApiError> {
    let query = bank::queries::account(address);
    let value = read_state(node, limits, query.key).await?;
    Ok(query
        .decode(value.as_deref())
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .unwrap_or_default())
}

/// Checks a `POST /v1/txs` body and admits the transaction to the mempool.
///
/// Runs the checks the ledger would make against finalized state (signature, chain, fee,
/// nonce, funds for the fee), so that a transaction that is certain to be rejected never
/// costs block space. Checks that depend on pending transactions stay with the ledger.
///
/// `charge` is asked once the sender's signature and the prechecks passed, before the mempool
/// sees the transaction: the rate limit of the sender's key.
pub async fn admit<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    body: &[u8],
    charge: impl FnOnce(&exo_types::Address) -> Result<(), ApiError>,
) -> Result<TxHash, ApiError> {
    let request: wire::SubmitRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))?;
    let text = request.tx.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    // Refuse before decoding: hex of more than MAX_TX_BYTES can only decode to too much.
    if text.len() / 2 > MAX_TX_BYTES {
        return Err(oversize(text.len() / 2));
    }
    let bytes = hex::decode(text).map_err(|e| ApiError::BadHex(e.to_string()))?;
    if bytes.len() > MAX_TX_BYTES {
        return Err(oversize(bytes.len()));
    }
    let signed =
        SignedTx::decode_untrusted(&bytes).map_err(|e| ApiError::BadEncoding(e.to_string()))?;
    // The ledger's own prechecks, against finalized state; a nonce may run ahead of it by the
    // API's limit, to wait in the mempool behind the sender's pending transactions.
    let status = node.status();
    let tx = &signed.tx;
    let account = read_account(node, limits, &tx.sender).await?;
    let rules = Rules {
        chain_id: &status.chain_id,
        min_fee: status.min_fee,
    };
    let ahead = Nonce::UpTo(limits.max_nonce_ahead);
    match precheck(
        &signed,
        signed.verify_signature(),
        bytes.len(),
        rules,
        &account,
        ahead,
    ) {
        Ok(()) => {}
        Err(Precheck::GappedNonce { expected, got }) => {
            return Err(ApiError::NonceTooFar {
                expected,
                got,
                max_ahead: limits.max_nonce_ahead,
            });
        }
        Err(Precheck::WrongChain) => {
            return Err(ApiError::WrongChain {
                expected: status.chain_id,
            });
        }
        Err(rejection) => return Err(ApiError::Rejected(Rejection::Exec(rejection))),
    }
    charge(&signed.tx.sender)?;
    node.submit(signed, &account).map_err(ApiError::Mempool)
}

fn oversize(size: usize) -> ApiError {
    ApiError::Rejected(Rejection::Exec(Precheck::Oversize {
        size: u32::try_from(size).unwrap_or(u32::MAX),
        max: MAX_TX_BYTES as u32,
    }))
}

/// `GET /v1/txs/{hash}`: the receipt, or pending, or not found.
pub async fn receipt<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    hash_text: &str,
) -> Result<wire::Receipt, ApiError> {
    let hash =
        wire::digest_from_hex(hash_text).ok_or_else(|| ApiError::BadHash(truncate(hash_text)))?;
    // Look at the mempool first: a transaction that leaves it between the two looks has been
    // finalized, and the state read then finds its receipt.
    let pending = node.pending(&hash);
    let query = exec::queries::receipt(&hash);
    let value = read_state(node, limits, query.key).await?;
    match query
        .decode(value.as_deref())
        .map_err(|e| ApiError::Internal(e.to_string()))?
    {
        Some(receipt) => {
            let (status, reason) = match receipt.status {
                TxStatus::Ok => (wire::TxStatus::Ok, None),
                TxStatus::Rejected(rejection) => {
                    (wire::TxStatus::Rejected, Some(reason_json(&rejection)))
                }
            };
            Ok(wire::Receipt {
                hash,
                status,
                reason,
                height: Some(receipt.height),
                index: Some(receipt.index),
                fee_paid: Some(receipt.fee_paid),
                created: receipt.created.iter().map(created_json).collect(),
            })
        }
        None if pending => Ok(wire::Receipt {
            hash,
            status: wire::TxStatus::Pending,
            reason: None,
            height: None,
            index: None,
            fee_paid: None,
            created: Vec::new(),
        }),
        None => Err(ApiError::TxNotFound(wire::digest_to_hex(&hash))),
    }
}

/// The reason of a ledger rejection: its module, code, numbers and sentence.
pub fn reason_json(rejection: &Rejection) -> wire::Reason {
    wire::Reason {
        module: rejection.module().name().to_string(),
        code: rejection.code().to_string(),
        fields: rejection.fields().iter().map(u128::to_string).collect(),
        message: rejection.to_string(),
    }
}

fn created_json(created: &Created) -> wire::Created {
    let (kind, id) = match created {
        Created::Provider(id) => ("provider", *id),
        Created::Offer(id) => ("offer", *id),
        Created::Job(id) => ("job", *id),
    };
    wire::Created {
        kind: kind.to_string(),
        id,
    }
}

/// `GET /v1/accounts/{address}`.
pub async fn account<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    address_text: &str,
) -> Result<wire::Account, ApiError> {
    let address = address_from_hex(address_text)
        .ok_or_else(|| ApiError::BadAddress(truncate(address_text)))?;
    let account = read_account(node, limits, &address).await?;
    Ok(wire::Account {
        address,
        balance: account.balance,
        nonce: account.nonce,
    })
}

/// `GET /v1/blocks/{height}`.
pub async fn block<N: NodeView>(
    node: &N,
    limits: &ApiLimits,
    height_text: &str,
) -> Result<wire::Block, ApiError> {
    let height = parse_height(height_text)?;
    // Marshal may wait for a block it does not have yet; only ask for finalized heights.
    if height > node.status().finalized_height {
        return Err(ApiError::BlockNotFound(height));
    }
    let block = bounded(limits, node.block(height))
        .await?
        .ok_or(ApiError::BlockNotFound(height))?;
    Ok(block_json(&FinalizedBlock::from_block(&block)))
}

fn parse_height(text: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadHeight(truncate(text)));
    }
    text.parse()
        .map_err(|_| ApiError::BadHeight(truncate(text)))
}

/// The JSON form of a finalized block.
pub fn block_json(block: &FinalizedBlock) -> wire::Block {
    wire::Block {
        height: block.height,
        timestamp_ms: block.timestamp_ms,
        digest: block.digest,
        parent: block.parent,
        state_root: block.state_root,
        epoch: block.epoch,
        view: block.view,
        proposer: block.proposer.clone(),
        tx_hashes: block.tx_hashes.clone(),
        evidence: block.evidence as u64,
    }
}

/// Echoes at most 80 characters of client input in an error message.
fn truncate(text: &str) -> String {
    const MAX_ECHO_CHARS: usize = 80;
    if text.chars().count() <= MAX_ECHO_CHARS {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(MAX_ECHO_CHARS).collect();
        out.push('…');
        out
    }
}
