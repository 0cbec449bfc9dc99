//! `exo account`: balances and transfers.

use crate::{
    CliError, GlobalArgs, Report,
    args::{AccountCommand, TransferArgs},
    block_on,
    tx::{self, TxOptions},
};
use exo_client::{Client, keyfile};
use exo_types::{Action, Address, Amount, address_from_hex, address_to_hex};
use serde_json::json;
use std::time::Duration;

pub fn run(command: AccountCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    match command {
        AccountCommand::Balance { address } => block_on(balance(&client, &address)),
        AccountCommand::Transfer(args) => block_on(transfer(&client, &args)),
    }
}

pub fn parse_address(text: &str) -> Result<Address, CliError> {
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
    let options = TxOptions {
        fee: args.fee.as_deref().map(Amount::parse_exo).transpose()?,
        nonce: args.nonce,
        wait: args.wait,
        timeout: Duration::from_secs(args.timeout),
    };
    let action = Action::Transfer {
        to: to.clone(),
        amount,
    };
    let sent = tx::send(client, &key, action, &options).await?;
    Ok(tx::report(
        &sent,
        json!({
            "to": address_to_hex(&to),
            "amount": amount.0.to_string(),
            "amount_exo": amount.to_exo_string(),
        }),
        "ok",
    ))
}
