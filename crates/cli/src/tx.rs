//! Signing, submitting and following one transaction: what every command that changes the
//! chain shares (`account transfer`, `provider ...`, `app publish`, `job submit`, `job cancel`).

use crate::{CliError, Report};
use clap::Args;
use commonware_cryptography::Signer;
use exo_client::{Client, ClientError, keyfile, wire};
use exo_types::{Action, Address, Amount, PrivateKey, TxHash, UnsignedTx, address_to_hex};
use serde_json::{Value, json};
use std::{path::PathBuf, time::Duration};

/// How to send a transaction: who signs, its fee and nonce, and whether to wait for it.
#[derive(Clone, Debug)]
pub struct TxOptions {
    /// Fee; the chain's minimum if `None`.
    pub fee: Option<Amount>,
    /// Nonce; the account's next finalized nonce if `None`.
    pub nonce: Option<u64>,
    /// Wait until the transaction is in a finalized block.
    pub wait: bool,
    pub timeout: Duration,
}

/// The options of the market commands, which wait for their transaction unless told not to.
#[derive(Clone, Debug, Args)]
pub struct TxArgs {
    /// Key file of the account that signs.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Fee in EXO; the chain's minimum fee if not given.
    #[arg(long, value_name = "EXO")]
    pub fee: Option<String>,
    /// Nonce to use instead of the account's next finalized nonce.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Return once the node admitted the transaction, without waiting for its block.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the transaction's block, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
}

impl TxArgs {
    /// The signing key and the options, checked before any round trip.
    pub fn load(&self) -> Result<(PrivateKey, TxOptions), CliError> {
        let key = keyfile::read(&self.key)?;
        let fee = self.fee.as_deref().map(Amount::parse_exo).transpose()?;
        Ok((
            key,
            TxOptions {
                fee,
                nonce: self.nonce,
                wait: !self.no_wait,
                timeout: Duration::from_secs(self.timeout),
            },
        ))
    }
}

/// A transaction sent, and its receipt if it was waited for.
#[derive(Clone, Debug)]
pub struct Sent {
    pub hash: TxHash,
    pub sender: Address,
    pub nonce: u64,
    pub fee: Amount,
    pub receipt: Option<wire::Receipt>,
}

impl Sent {
    /// Whether the transaction executed (false if rejected or not waited for).
    pub fn ok(&self) -> bool {
        self.receipt
            .as_ref()
            .is_some_and(|r| r.status == wire::TxStatus::Ok)
    }

    /// The height of its block, if it was waited for.
    pub fn height(&self) -> Option<u64> {
        self.receipt.as_ref().and_then(|r| r.height)
    }

    /// The id of the `kind` (`job`, `offer`, `provider`) the transaction created, from its
    /// receipt.
    pub fn created(&self, kind: &str) -> Option<u64> {
        self.receipt.as_ref().and_then(|r| r.created(kind))
    }
}

/// Keeps the node's reason when it refuses a transaction at submission.
pub fn refused(err: ClientError) -> CliError {
    match err {
        ClientError::Api { code, message, .. } => CliError::Refused { code, message },
        other => CliError::Client(other),
    }
}

/// Times a transaction whose nonce was read from the node is signed again with a fresh nonce
/// after the node refused it as already used.
const NONCE_RETRIES: u32 = 3;

/// Reads the chain id, fee and nonce from the node, signs `action` with `key`, submits it and,
/// if asked, waits for its receipt.
pub async fn send(
    client: &Client,
    key: &PrivateKey,
    action: Action,
    options: &TxOptions,
) -> Result<Sent, CliError> {
    let status = client.status().await?;
    let fee = options.fee.unwrap_or(status.min_fee);
    let sender = key.public_key();
    let mut replayed = 0;
    let (hash, nonce) = loop {
        let nonce = match options.nonce {
            Some(nonce) => nonce,
            None => client.account(&sender).await?.nonce,
        };
        let tx = UnsignedTx {
            chain_id: status.chain_id.clone(),
            sender: sender.clone(),
            nonce,
            fee,
            action: action.clone(),
        }
        .sign(key);
        match client.submit(&tx).await {
            // The account's nonce was read while an earlier transaction of the sender was
            // pending, and that one was finalized before this arrived: read it again.
            Err(ClientError::Api { code, .. })
                if code == "replayed_nonce"
                    && options.nonce.is_none()
                    && replayed < NONCE_RETRIES =>
            {
                replayed += 1;
            }
            submitted => break (submitted.map_err(refused)?, nonce),
        }
    };
    let receipt = if options.wait {
        Some(client.wait_for_receipt(&hash, options.timeout).await?)
    } else {
        None
    };
    Ok(Sent {
        hash,
        sender,
        nonce,
        fee,
        receipt,
    })
}

/// The report of a sent transaction: `fields` plus its hash, status, sender, fee and nonce,
/// and once finalized its height, index, fee paid and (if rejected) the reason. `done` is the
/// text's first line when the transaction executed; the text says `rejected: ...` otherwise,
/// and such a report is not a success (exit code 3).
pub fn report(sent: &Sent, fields: Value, done: &str) -> Report {
    let hash_hex = wire::digest_to_hex(&sent.hash);
    let mut json = json!({
        "hash": hash_hex,
        "status": "submitted",
        "from": address_to_hex(&sent.sender),
        "fee": sent.fee.0.to_string(),
        "nonce": sent.nonce,
    });
    if let (Some(out), Value::Object(fields)) = (json.as_object_mut(), fields) {
        out.extend(fields);
    }
    let Some(receipt) = &sent.receipt else {
        return Report::ok(format!("submitted {hash_hex}"), json);
    };
    let height = receipt.height.unwrap_or_default();
    let fee_paid = receipt.fee_paid.unwrap_or_default();
    json["status"] = json!(receipt.status);
    json["height"] = json!(height);
    json["index"] = json!(receipt.index);
    json["fee_paid"] = json!(fee_paid.0.to_string());
    match (receipt.status, &receipt.reason) {
        (wire::TxStatus::Rejected, reason) => {
            let (code, message) = reason
                .as_ref()
                .map(|r| (r.code.clone(), r.message.clone()))
                .unwrap_or_else(|| ("unknown".into(), "no reason given".into()));
            json["reason"] = json!({ "code": code, "message": message });
            Report {
                text: format!(
                    "rejected: {message} ({code})\ntransaction {hash_hex} in block {height}, fee {} EXO",
                    fee_paid.to_exo_string()
                ),
                json,
                success: false,
            }
        }
        _ => Report::ok(
            format!(
                "{done}: transaction {hash_hex} finalized in block {height}, fee {} EXO",
                fee_paid.to_exo_string()
            ),
            json,
        ),
    }
}
