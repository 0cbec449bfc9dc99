//! `exo node`: one validator and its API, in the foreground.

use crate::{CliError, GlobalArgs, Report, args::NodeArgs, other};
use exo_node::NodeConfig;
use serde_json::json;

/// Runs the validator of `args.config` until SIGINT or SIGTERM; logs go to standard error.
pub fn run(args: NodeArgs, _global: &GlobalArgs) -> Result<Report, CliError> {
    exo_node::init_logging();
    let config = NodeConfig::load(&args.config).map_err(other)?;
    exo_node::api::run_node(config).map_err(other)?;
    Ok(Report::ok(
        "node stopped",
        json!({ "status": "stopped", "config": args.config.display().to_string() }),
    ))
}
