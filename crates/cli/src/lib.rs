//! The `exo` command line: key files, balances and transfers through a node's public API, and
//! the commands that run things: a validator (`exo node`), a local network (`exo devnet`) and
//! benchmarks (`exo bench`), whose work is done by `exo-node` and, for the benchmarks'
//! harnesses, `exo-bench`.
//!
//! `main.rs` only parses arguments and dispatches to one `run` function per subcommand; each
//! returns a [`Report`] (text and JSON forms of its result) or a [`CliError`], and [`finish`]
//! prints it and picks the exit code. A subcommand that needs its own runtime (a node, a
//! devnet) is free to build it: nothing here starts one globally.
//!
//! Exit codes: 0 success, 1 error, 2 bad usage, 3 a transaction finalized as rejected.
//!
//! This crate must never reach a node other than through `exo-client` (running one is
//! `exo-node`'s job), nor print a backtrace or panic on bad input: every failure is one line
//! starting with `error:`.

pub mod account;
pub mod args;
pub mod bench;
pub mod devnet;
pub mod key;
pub mod node;

pub use args::{Cli, Command, GlobalArgs};

use exo_client::{ClientError, keyfile::KeyFileError};
use serde_json::{Value, json};
use std::{future::Future, io::Write, process::ExitCode};

// The compute market's commands and the shared transaction helper.
pub mod app;
pub mod builtin;
pub mod estimate;
pub mod exec;
pub mod job;
pub mod provider;
pub mod scaffold;
pub mod stake;
pub mod tx;
pub mod worker;

/// Exit code of a transaction that was finalized but rejected.
pub const EXIT_REJECTED: u8 = 3;

/// What a command did, for people and for scripts.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub text: String,
    pub json: Value,
    /// False when the command ran but its subject failed (a rejected transaction).
    pub success: bool,
}

impl Report {
    pub fn ok(text: impl Into<String>, json: Value) -> Self {
        Self {
            text: text.into(),
            json,
            success: true,
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("node refused the transaction: {message} ({code})")]
    Refused { code: String, message: String },
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("{0:?} is not a 64-character hex address")]
    BadAddress(String),
    #[error("{0}")]
    BadAmount(#[from] exo_types::AmountError),
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// An argument the command cannot use, found before any round trip.
    #[error("{0}")]
    Invalid(String),
    /// What the command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// For subcommands whose failures are not worth a variant of their own.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// A stable code for `--json` output.
    pub fn code(&self) -> String {
        match self {
            Self::Client(err) => match err {
                ClientError::BadUrl(_) => "bad_url".into(),
                ClientError::Unreachable { .. } => "node_unreachable".into(),
                ClientError::Timeout { .. } => "node_timeout".into(),
                ClientError::Api { code, .. } => code.clone(),
                ClientError::Protocol { .. } => "protocol".into(),
                ClientError::ReceiptTimeout { .. } => "receipt_timeout".into(),
            },
            Self::Refused { code, .. } => code.clone(),
            Self::KeyFile(_) => "key_file".into(),
            Self::BadAddress(_) => "bad_address".into(),
            Self::BadAmount(_) | Self::ZeroAmount => "bad_amount".into(),
            Self::Runtime(_) => "runtime".into(),
            Self::Invalid(_) => "invalid_argument".into(),
            Self::NotFound(_) => "not_found".into(),
            Self::Other(_) => "error".into(),
        }
    }
}

/// Keeps an error's whole chain of causes (`{:#}`) as a [`CliError::Other`].
pub fn other(err: impl std::fmt::Display) -> CliError {
    CliError::Other(format!("{err:#}"))
}

/// Runs a future on a small runtime of its own, for commands that talk to a node.
pub fn block_on<T>(future: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(future)
}

/// Prints a command's result and returns the process exit code.
///
/// With `--json`, the report or `{"error", "message"}` goes to standard output; otherwise the
/// report goes to standard output and the error to standard error as `error: ...`.
pub fn finish(global: &GlobalArgs, result: Result<Report, CliError>) -> ExitCode {
    // A closed pipe (`exo ... | head -0`) is not worth a panic: printing errors are ignored.
    match result {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let _ = if global.json {
                writeln!(out, "{}", report.json)
            } else {
                writeln!(out, "{}", report.text)
            };
            if report.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            }
        }
        Err(err) => {
            if global.json {
                let body = json!({ "error": err.code(), "message": err.to_string() });
                let _ = writeln!(std::io::stdout().lock(), "{body}");
            } else {
                let _ = writeln!(std::io::stderr().lock(), "error: {err}");
            }
            ExitCode::FAILURE
        }
    }
}
