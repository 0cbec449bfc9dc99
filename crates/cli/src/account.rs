//! `exo account`: balances and transfers.

use crate::{
    CliError, GlobalArgs, Report,
    args::{AccountCommand, TransferArgs},
    block_on,
};
use commonware_cryptography::Signer;
use exo_client::{Client, ClientError, keyfile, wire};
use exo_types::{Action, Address, Amount, UnsignedTx, address_from_hex, address_to_hex};
use serde_json::json;
use std::time::Duration;

pub fn run(command: AccountCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    match command {
        AccountCommand::Balance { address } => block_on(balance(&client, &address)),
        AccountCommand::Transfer(args) => block_on(transfer(&client, &args)),
    }
}

fn parse_address(text: &str) -> Result<Address, CliError> {
    // Only exact 64-character hex: a shorter string that happened to decode is a typo.
    if text.trim().len() != 64 {
        return Err(CliError::BadAddress(text.to_string()));
    }
    address_from_hex(text).ok_or_else(|| CliError::BadAddress(text.to_string()))
}

/// `exo account balance ADDRESS`.
pub async fn balance(client: &Client, address: &str) -> Result<Report, CliError> {
    let address = parse_address(address)?;
    let account = client.account(&address).await?;
    Ok(Report::ok(
        format!("{} EXO", account.balance.to_exo_string()),
        json!({
            "address": address_to_hex(&account.address),
            "balance": account.balance.0.to_string(),
            "balance_exo": account.balance.to_exo_string(),
            "nonce": account.nonce,
        }),
    ))
}

/// Keeps the node's reason when it refuses a transaction at submission.
fn refused(err: ClientError) -> CliError {
    match err {
        ClientError::Api { code, message, .. } => CliError::Refused { code, message },
        other => CliError::Client(other),
    }
}

/// `exo account transfer`: reads the chain id, fee and nonce from the node, signs, submits
/// and, with `--wait`, reports the outcome.
pub async fn transfer(client: &Client, args: &TransferArgs) -> Result<Report, CliError> {
    // Local checks first: a bad argument never costs a round trip.
    let key = keyfile::read(&args.key)?;
    let to = parse_address(&args.to)?;
    let amount = Amount::parse_exo(&args.amount)?;
    if amount == Amount::ZERO {
        return Err(CliError::ZeroAmount);
    }
    let fee = args.fee.as_deref().map(Amount::parse_exo).transpose()?;

    let status = client.status().await?;
    let fee = fee.unwrap_or(status.min_fee);
    let sender = key.public_key();
    let nonce = match args.nonce {
        Some(nonce) => nonce,
        None => client.account(&sender).await?.nonce,
    };
    let tx = UnsignedTx {
        chain_id: status.chain_id,
        sender: sender.clone(),
        nonce,
        fee,
        action: Action::Transfer {
            to: to.clone(),
            amount,
        },
    }
    .sign(&key);
    let hash = client.submit(&tx).await.map_err(refused)?;
    let hash_hex = wire::digest_to_hex(&hash);
    let mut report = json!({
        "hash": hash_hex,
        "status": "submitted",
        "from": address_to_hex(&sender),
        "to": address_to_hex(&to),
        "amount": amount.0.to_string(),
        "amount_exo": amount.to_exo_string(),
        "fee": fee.0.to_string(),
        "nonce": nonce,
    });
    if !args.wait {
        return Ok(Report::ok(format!("submitted {hash_hex}"), report));
    }

    let receipt = client
        .wait_for_receipt(&hash, Duration::from_secs(args.timeout))
        .await?;
    let height = receipt.height.unwrap_or_default();
    let fee_paid = receipt.fee_paid.unwrap_or_default();
    report["status"] = json!(receipt.status);
    report["height"] = json!(height);
    report["index"] = json!(receipt.index);
    report["fee_paid"] = json!(fee_paid.0.to_string());
    match (receipt.status, receipt.reason) {
        (wire::TxStatus::Rejected, reason) => {
            let (code, message) = reason
                .map(|r| (r.code, r.message))
                .unwrap_or_else(|| ("unknown".into(), "no reason given".into()));
            report["reason"] = json!({ "code": code, "message": message });
            Ok(Report {
                text: format!(
                    "rejected: {message} ({code})\ntransaction {hash_hex} in block {height}, fee {} EXO",
                    fee_paid.to_exo_string()
                ),
                json: report,
                success: false,
            })
        }
        _ => Ok(Report::ok(
            format!(
                "ok: transaction {hash_hex} finalized in block {height}, fee {} EXO",
                fee_paid.to_exo_string()
            ),
            report,
        )),
    }
}
