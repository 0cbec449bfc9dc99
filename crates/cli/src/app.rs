//! `exo app`: scaffold a new task app (`exo app new`, in [`crate::scaffold`]), publish task apps
//! (their modules go to the node's blob store) and list them.

use crate::{
    CliError, GlobalArgs, Report, block_on,
    tx::{self, TxArgs},
};
use clap::{Args, Subcommand};
use exo_client::{Client, wire};
use exo_types::{Action, Amount, Hash32, MAX_APP_NAME_LEN, PrivateKey};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Largest module read from disk: the node's default blob bound.
pub const MAX_MODULE_BYTES: u64 = exo_client::MAX_BLOB_BYTES as u64;

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create a new task app: a guest crate on the exo-guest SDK, ready to build and publish.
    New(crate::scaffold::NewArgs),
    /// Upload a wasm module to the node and publish it as an app.
    // `--version` names the app's version here, not the program's.
    #[command(disable_version_flag = true)]
    Publish(PublishArgs),
    /// List published apps.
    List(ListArgs),
}

#[derive(Clone, Debug, Args)]
pub struct PublishArgs {
    /// The module (a wasm32-wasip1 command).
    #[arg(value_name = "FILE.wasm")]
    pub module: PathBuf,
    #[command(flatten)]
    pub tx: TxArgs,
    /// Name of the app (printable, no spaces, at most 64 bytes).
    #[arg(long, value_name = "N")]
    pub name: String,
    /// Version of the app.
    #[arg(long, value_name = "V", default_value = "1")]
    pub version: String,
    /// Royalty in EXO per compute unit, paid to the publisher for every accepted unit.
    #[arg(long, value_name = "EXO")]
    pub royalty: String,
}

#[derive(Clone, Debug, Args)]
pub struct ListArgs {
    /// Index of the first app.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Most apps listed.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
}

pub fn run(command: AppCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    match command {
        AppCommand::New(args) => crate::scaffold::new_app(&args),
        AppCommand::Publish(args) => block_on(publish(&Client::new(&global.node)?, &args)),
        AppCommand::List(args) => block_on(list(&Client::new(&global.node)?, &args)),
    }
}

/// Reads a file of at most `max` bytes, with errors that name it.
pub fn read_file(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::Invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(CliError::Invalid(format!(
            "{what} {} is not a file",
            path.display()
        )));
    }
    if meta.len() > max {
        return Err(CliError::Invalid(format!(
            "{what} {} is {} bytes, over the {max}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path)
        .map_err(|e| CliError::Invalid(format!("cannot read {what} {}: {e}", path.display())))
}

/// Checks an app name or version as the ledger will.
pub fn check_app_text(what: &str, text: &str) -> Result<(), CliError> {
    if text.is_empty()
        || text.len() > MAX_APP_NAME_LEN
        || !text.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(CliError::Invalid(format!(
            "the app {what} {text:?} must be 1 to {MAX_APP_NAME_LEN} printable characters without spaces"
        )));
    }
    Ok(())
}

/// Uploads `module` and publishes it; answers its hash and the publication's report.
pub async fn upload_and_publish(
    client: &Client,
    key: &PrivateKey,
    options: &tx::TxOptions,
    module: Vec<u8>,
    name: &str,
    version: &str,
    royalty: Amount,
) -> Result<(Hash32, Report), CliError> {
    let module_hash = client.put_blob(module, key).await?;
    let action = Action::PublishApp {
        module_hash,
        name: name.to_string(),
        version: version.to_string(),
        royalty_per_unit: royalty,
    };
    let sent = tx::send(client, key, action, options).await?;
    let report = tx::report(
        &sent,
        json!({
            "module_hash": hex::encode(module_hash),
            "name": name,
            "version": version,
            "royalty_per_unit": royalty.0.to_string(),
        }),
        "published",
    );
    Ok((module_hash, report))
}

/// `exo app publish`.
pub async fn publish(client: &Client, args: &PublishArgs) -> Result<Report, CliError> {
    check_app_text("name", &args.name)?;
    check_app_text("version", &args.version)?;
    let royalty = Amount::parse_exo(&args.royalty)?;
    let module = read_file(&args.module, MAX_MODULE_BYTES, "module")?;
    let (key, options) = args.tx.load()?;
    let (hash, mut report) = upload_and_publish(
        client,
        &key,
        &options,
        module,
        &args.name,
        &args.version,
        royalty,
    )
    .await?;
    if report.success {
        report
            .text
            .push_str(&format!("\napp {}", hex::encode(hash)));
    }
    Ok(report)
}

fn app_line(app: &wire::App) -> String {
    format!(
        "{}  {} {}  royalty {} EXO/cu  published at block {}",
        hex::encode(app.module_hash),
        app.name,
        app.version,
        app.royalty_per_unit.to_exo_string(),
        app.published_height
    )
}

/// `exo app list`.
pub async fn list(client: &Client, args: &ListArgs) -> Result<Report, CliError> {
    let page = client.apps(args.from, Some(args.limit)).await?;
    let text = if page.apps.is_empty() {
        "no apps".to_string()
    } else {
        page.apps
            .iter()
            .map(app_line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let json = serde_json::to_value(&page).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(Report::ok(text, json))
}
