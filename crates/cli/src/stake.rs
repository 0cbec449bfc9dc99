//! `exo stake`: register a validator, nominate, unbond, withdraw, unjail; and `exo validators`:
//! the candidates and the committee of an epoch.

use crate::{
    CliError, GlobalArgs, Report,
    account::parse_address,
    block_on,
    tx::{self, TxArgs},
};
use clap::{Args, Subcommand};
use commonware_cryptography::Signer as _;
use exo_client::{Client, wire};
use exo_types::{Action, Amount, MAX_NOMINATION_TARGETS, address_to_hex};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum StakeCommand {
    /// Register this account as a validator candidate, locking a self-bond.
    RegisterValidator(RegisterArgs),
    /// Back up to 16 validators with this account's nomination bond.
    Nominate(NominateArgs),
    /// Start unbonding part of this account's active bond.
    Unbond(UnbondArgs),
    /// Take back every unbonding chunk whose period is over.
    Withdraw(PlainArgs),
    /// Stand for election again after a chill or a jail term.
    Unjail(PlainArgs),
    /// Stop standing for election (the bond stays).
    Chill(PlainArgs),
}

#[derive(Clone, Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// Consensus public key (hex); the signing key's own if not given.
    #[arg(long, value_name = "HEX")]
    pub consensus_key: Option<String>,
    /// Address other validators reach this node at, `IP:PORT`: they dial it, and accept this
    /// node's connections from that IP once it is a candidate.
    #[arg(long, value_name = "IP:PORT")]
    pub p2p_address: String,
    /// Share of nominators' rewards kept, in basis points.
    #[arg(long, value_name = "BPS", default_value_t = 0)]
    pub commission_bps: u32,
    /// Self-bond in EXO (at least the chain's minimum).
    #[arg(long, value_name = "EXO")]
    pub bond: String,
}

#[derive(Clone, Debug, Args)]
pub struct NominateArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// Validator addresses (hex), 1 to 16; they replace the current targets.
    #[arg(long = "target", value_name = "HEX", required = true)]
    pub targets: Vec<String>,
    /// EXO added to the nomination bond.
    #[arg(long, value_name = "EXO", default_value = "0")]
    pub bond: String,
}

#[derive(Clone, Debug, Args)]
pub struct UnbondArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// EXO to unbond.
    #[arg(long, value_name = "EXO")]
    pub amount: String,
}

#[derive(Clone, Debug, Args)]
pub struct PlainArgs {
    #[command(flatten)]
    pub tx: TxArgs,
}

/// `exo validators`.
#[derive(Clone, Debug, Args)]
pub struct ValidatorsArgs {
    /// Show the committee of this epoch, with its backing, instead of the candidates.
    #[arg(long, value_name = "N")]
    pub epoch: Option<u64>,
}

pub fn run(command: StakeCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    block_on(async {
        let (action, fields, done, tx) = match command {
            StakeCommand::RegisterValidator(args) => register(&args)?,
            StakeCommand::Nominate(args) => nominate(&args)?,
            StakeCommand::Unbond(args) => {
                let amount = positive(&args.amount)?;
                let fields = json!({ "amount": amount.0.to_string() });
                (Action::Unbond { amount }, fields, "unbonding", args.tx)
            }
            StakeCommand::Withdraw(args) => (Action::Withdraw, json!({}), "withdrawn", args.tx),
            StakeCommand::Unjail(args) => (Action::Unjail, json!({}), "standing", args.tx),
            StakeCommand::Chill(args) => (Action::Chill, json!({}), "chilled", args.tx),
        };
        let (key, options) = tx.load()?;
        let sent = tx::send(&client, &key, action, &options).await?;
        Ok(tx::report(&sent, fields, done))
    })
}

type Prepared = (Action, serde_json::Value, &'static str, TxArgs);

fn positive(text: &str) -> Result<Amount, CliError> {
    let amount = Amount::parse_exo(text)?;
    if amount == Amount::ZERO {
        return Err(CliError::ZeroAmount);
    }
    Ok(amount)
}

fn register(args: &RegisterArgs) -> Result<Prepared, CliError> {
    let self_bond = positive(&args.bond)?;
    let consensus_key = match &args.consensus_key {
        Some(text) => parse_address(text)?,
        None => args.tx.load()?.0.public_key(),
    };
    if args.p2p_address.is_empty() || args.p2p_address.len() > exo_types::MAX_P2P_ADDRESS_LEN {
        return Err(CliError::Invalid(format!(
            "--p2p-address must be 1 to {} bytes",
            exo_types::MAX_P2P_ADDRESS_LEN
        )));
    }
    // The ledger takes any printable address, but nodes only dial (and accept) a socket
    // address: a host name registered here would leave the validator unreachable.
    if args.p2p_address.parse::<std::net::SocketAddr>().is_err() {
        return Err(CliError::Invalid(format!(
            "--p2p-address must be IP:PORT (for example 203.0.113.7:9000), not {:?}",
            args.p2p_address
        )));
    }
    let fields = json!({
        "consensus_key": address_to_hex(&consensus_key),
        "p2p_address": args.p2p_address,
        "commission_bps": args.commission_bps,
        "self_bond": self_bond.0.to_string(),
    });
    let action = Action::RegisterValidator {
        consensus_key,
        p2p_address: args.p2p_address.clone(),
        commission_bps: args.commission_bps,
        self_bond,
    };
    Ok((action, fields, "registered", args.tx.clone()))
}

fn nominate(args: &NominateArgs) -> Result<Prepared, CliError> {
    if args.targets.len() > MAX_NOMINATION_TARGETS {
        return Err(CliError::Invalid(format!(
            "at most {MAX_NOMINATION_TARGETS} --target, not {}",
            args.targets.len()
        )));
    }
    let targets = args
        .targets
        .iter()
        .map(|t| parse_address(t))
        .collect::<Result<Vec<_>, _>>()?;
    let bond = Amount::parse_exo(&args.bond)?;
    let fields = json!({
        "targets": targets.iter().map(address_to_hex).collect::<Vec<_>>(),
        "bond": bond.0.to_string(),
    });
    Ok((
        Action::Nominate { targets, bond },
        fields,
        "nominating",
        args.tx.clone(),
    ))
}

/// `exo validators [--epoch N]`.
pub fn validators(args: &ValidatorsArgs, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    block_on(async {
        match args.epoch {
            None => Ok(candidates(&client.validators().await?)),
            Some(epoch) => match client.epoch(epoch).await? {
                Some(view) => Ok(committee(&view)),
                None => Err(CliError::Invalid(format!(
                    "the chain has no committee for epoch {epoch} yet"
                ))),
            },
        }
    })
}

fn candidates(list: &wire::Validators) -> Report {
    let lines: Vec<String> = list
        .validators
        .iter()
        .map(|v| {
            format!(
                "{} {:<8} self-bond {} nominators {} commission {} bps {}",
                address_to_hex(&v.address),
                v.status,
                v.self_bond,
                v.nominators,
                v.commission_bps,
                v.p2p_address
            )
        })
        .collect();
    let json = serde_json::to_value(list).unwrap_or_default();
    Report::ok(
        format!("{} validators\n{}", lines.len(), lines.join("\n")),
        json,
    )
}

fn committee(view: &wire::EpochView) -> Report {
    let lines: Vec<String> = view
        .members
        .iter()
        .map(|m| {
            let earned = m.earned.as_ref().map_or(String::new(), |e| {
                let jailed = if e.jailed { ", jailed" } else { "" };
                format!(
                    ": {} blocks, {} missed, {} votes, {} points, reward {} (kept {}){jailed}",
                    e.proposed, e.missed, e.votes, e.points, e.reward, e.kept
                )
            });
            format!(
                "{} backing {} ({} nominators){earned}",
                address_to_hex(&m.validator),
                m.backing,
                m.nominators.len()
            )
        })
        .collect();
    let how = if view.elected { "elected" } else { "kept" };
    let payout = view.payout.as_ref().map_or(String::new(), |p| {
        format!(
            "\npaid: fees {} + minted {}; providers {} of {} for {} units ({} of proven \
             capacity){}, treasury {}; {} certificates; {} slashes",
            p.fees,
            p.minted,
            p.to_providers,
            p.providers_pool,
            p.work_units,
            p.capacity_units,
            if p.providers_paid { "" } else { " (paying)" },
            p.to_treasury,
            p.certificates,
            view.slashes.len()
        )
    });
    let json = serde_json::to_value(view).unwrap_or_default();
    Report::ok(
        format!(
            "epoch {} committee ({how}), minimum backing {}\n{}{payout}",
            view.epoch,
            view.minimum_backing,
            lines.join("\n")
        ),
        json,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn register_args(p2p_address: &str) -> RegisterArgs {
        RegisterArgs {
            tx: TxArgs {
                key: PathBuf::from("never-read.key"),
                fee: None,
                nonce: None,
                no_wait: false,
                timeout: 60,
            },
            consensus_key: Some(address_to_hex(
                &exo_types::PrivateKey::from_seed(1).public_key(),
            )),
            p2p_address: p2p_address.into(),
            commission_bps: 0,
            bond: "1000".into(),
        }
    }

    #[test]
    fn a_validator_registers_only_an_address_nodes_can_dial() {
        for good in ["127.0.0.1:9004", "[2001:db8::7]:9000"] {
            let (action, ..) = register(&register_args(good)).unwrap();
            assert!(
                matches!(action, Action::RegisterValidator { ref p2p_address, .. } if p2p_address == good)
            );
        }
        for bad in ["validator.example:9000", "127.0.0.1", "", &"1".repeat(65)] {
            let err = register(&register_args(bad)).unwrap_err();
            assert!(matches!(err, CliError::Invalid(_)), "{bad:?}: {err}");
        }
    }
}
