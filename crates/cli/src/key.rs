//! `exo key`: create and inspect key files.

use crate::{CliError, GlobalArgs, Report, args::KeyCommand};
use exo_client::keyfile;
use exo_types::address_to_hex;
use serde_json::json;

pub fn run(command: KeyCommand, _global: &GlobalArgs) -> Result<Report, CliError> {
    match command {
        KeyCommand::New { out } => {
            let key = keyfile::generate();
            keyfile::write_new(&out, &key)?;
            let address = address_to_hex(&keyfile::address(&key));
            Ok(Report::ok(
                format!("wrote a new key to {}\naddress {address}", out.display()),
                json!({ "address": address, "file": out.display().to_string() }),
            ))
        }
        KeyCommand::Show { file } => {
            let key = keyfile::read(&file)?;
            let address = address_to_hex(&keyfile::address(&key));
            Ok(Report::ok(
                address.clone(),
                json!({ "address": address, "file": file.display().to_string() }),
            ))
        }
    }
}
