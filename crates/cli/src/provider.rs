//! `exo provider`: register a machine as a provider, describe it, post and cancel offers,
//! retire, show a provider, and show the capacity round its offers may prove their free slots in.

use crate::{
    CliError, GlobalArgs, Report, block_on,
    tx::{self, TxArgs},
};
use clap::{Args, Subcommand};
use exo_client::{Client, keyfile, wire};
use exo_market::{
    DeviceClass, Gpu, Resources, Runtime, RuntimeSet, canonical_gpu_model, canonical_region,
};
use exo_types::{Action, Amount};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Register this account's machine as a provider, locking a bond.
    Register(RegisterArgs),
    /// Replace the provider's resource description (offers posted later carry it).
    Update(UpdateArgs),
    /// Offer slots of the machine at a price per compute unit.
    Offer(OfferArgs),
    /// Withdraw one of the provider's offers.
    Cancel(CancelArgs),
    /// Retire the provider: its offers leave the book and its bond comes back.
    Retire(RetireArgs),
    /// Show a provider, by id or by the key file of its owner.
    Show(ShowArgs),
    /// Show the capacity round (open or last) and which of the provider's offers may prove
    /// their free slots in it; its worker answers on its own.
    Capacity(ShowArgs),
}

/// What the machine can do.
#[derive(Clone, Debug, Args)]
pub struct ResourceArgs {
    /// Cores the provider runs units on.
    #[arg(long, value_name = "N")]
    pub cores: u32,
    /// Memory available to units, in MiB.
    #[arg(long, value_name = "M")]
    pub memory_mib: u64,
    /// Single-core benchmark score, in fuel per second.
    #[arg(long, value_name = "S", default_value_t = 1_000_000_000)]
    pub cpu_score: u64,
    /// GPUs: model, count and memory of one GPU in MiB (1 if not given: jobs asking for GPU
    /// memory will not match).
    #[arg(long, value_name = "MODEL:COUNT[:MEM_MIB]")]
    pub gpu: Option<String>,
    /// Kind of machine: server, pc, laptop, phone or iot.
    #[arg(long, value_name = "CLASS", default_value = "pc")]
    pub class: String,
    /// Region name: lower-case letters, digits, '-', '_' and '.'.
    #[arg(long, value_name = "R", default_value = "local")]
    pub region: String,
    /// Longest unit accepted, in fuel.
    #[arg(long, value_name = "F", default_value_t = 1_000_000_000_000)]
    pub max_unit_fuel: u64,
}

#[derive(Clone, Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Bond to lock, in EXO (at least the chain's minimum).
    #[arg(long, value_name = "EXO", default_value = "10")]
    pub bond: String,
}

#[derive(Clone, Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

#[derive(Clone, Debug, Args)]
pub struct OfferArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// Units the offer runs at once.
    #[arg(long, value_name = "N")]
    pub slots: u32,
    /// Price in EXO per compute unit (10^9 fuel).
    #[arg(long, value_name = "EXO")]
    pub price: String,
    /// Seconds of chain time until the offer expires (at most the chain's
    /// `max_offer_lifetime_secs`).
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    pub expires_in: u64,
}

#[derive(Clone, Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// Offer id.
    #[arg(long, value_name = "ID")]
    pub offer: u64,
}

#[derive(Clone, Debug, Args)]
pub struct RetireArgs {
    #[command(flatten)]
    pub tx: TxArgs,
}

#[derive(Clone, Debug, Args)]
pub struct ShowArgs {
    /// Provider id.
    #[arg(
        value_name = "ID",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    pub id: Option<u64>,
    /// Key file of the provider's owner.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

pub fn run(command: ProviderCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    match command {
        ProviderCommand::Register(args) => block_on(register(&client, &args)),
        ProviderCommand::Update(args) => block_on(update(&client, &args)),
        ProviderCommand::Offer(args) => block_on(offer(&client, &args)),
        ProviderCommand::Cancel(args) => block_on(cancel(&client, &args)),
        ProviderCommand::Retire(args) => block_on(retire(&client, &args)),
        ProviderCommand::Show(args) => block_on(show(&client, &args)),
        ProviderCommand::Capacity(args) => block_on(capacity(&client, &args)),
    }
}

/// Parses `MODEL:COUNT[:MEM_MIB]`.
pub fn parse_gpu(text: &str) -> Result<Gpu, CliError> {
    let bad = |why: &str| CliError::Invalid(format!("--gpu {text:?}: {why}"));
    let mut parts = text.split(':');
    let model = parts.next().unwrap_or_default();
    let model =
        canonical_gpu_model(model).ok_or_else(|| bad("the model is not a GPU model name"))?;
    let count = parts
        .next()
        .ok_or_else(|| bad("expected MODEL:COUNT[:MEM_MIB]"))?
        .parse()
        .map_err(|_| bad("the count is not a number"))?;
    let memory_mib = match parts.next() {
        Some(mem) => mem
            .parse()
            .map_err(|_| bad("the memory is not a number of MiB"))?,
        None => 1,
    };
    if parts.next().is_some() {
        return Err(bad("expected MODEL:COUNT[:MEM_MIB]"));
    }
    Ok(Gpu {
        model,
        count,
        memory_mib,
    })
}

/// Parses a device class name.
pub fn parse_class(text: &str) -> Result<DeviceClass, CliError> {
    let lower = text.trim().to_ascii_lowercase();
    DeviceClass::ALL
        .into_iter()
        .find(|c| c.name() == lower)
        .ok_or_else(|| {
            CliError::Invalid(format!(
                "class {text:?} is not one of server, pc, laptop, phone, iot"
            ))
        })
}

/// A region name, in its canonical spelling (`EU-West` is `eu-west`).
pub fn parse_region(text: &str) -> Result<String, CliError> {
    canonical_region(text).ok_or_else(|| {
        CliError::Invalid(format!(
            "region {text:?} is not a name of letters, digits, '-', '_' and '.'"
        ))
    })
}

impl ResourceArgs {
    /// The resources, checked as the ledger will check them.
    pub fn resources(&self) -> Result<Resources, CliError> {
        let resources = Resources {
            cores: self.cores,
            cpu_score: self.cpu_score,
            memory_mib: self.memory_mib,
            gpu: self.gpu.as_deref().map(parse_gpu).transpose()?,
            class: parse_class(&self.class)?,
            region: canonical_region(&self.region).unwrap_or_else(|| self.region.clone()),
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
            max_unit_fuel: self.max_unit_fuel,
        };
        resources
            .validate()
            .map_err(|e| CliError::Invalid(format!("invalid resources: {e}")))?;
        Ok(resources)
    }
}

fn resources_json(r: &Resources) -> serde_json::Value {
    json!({
        "cores": r.cores,
        "cpu_score": r.cpu_score,
        "memory_mib": r.memory_mib,
        "gpu": r.gpu.as_ref().map(|g| json!({ "model": g.model, "count": g.count, "memory_mib": g.memory_mib })),
        "class": r.class.name(),
        "region": r.region,
        "max_unit_fuel": r.max_unit_fuel,
    })
}

/// Adds the provider id to a finished report once the transaction executed.
async fn with_provider_id(client: &Client, sent: &tx::Sent, mut report: Report) -> Report {
    if sent.ok()
        && let Ok(Some(id)) = client.provider_of(&sent.sender).await
    {
        report.json["provider"] = json!(id);
        report.text.push_str(&format!("\nprovider {id}"));
    }
    report
}

/// `exo provider register`.
pub async fn register(client: &Client, args: &RegisterArgs) -> Result<Report, CliError> {
    let resources = args.resources.resources()?;
    let bond = Amount::parse_exo(&args.bond)?;
    let (key, options) = args.tx.load()?;
    let fields = json!({ "resources": resources_json(&resources), "bond": bond.0.to_string() });
    let sent = tx::send(
        client,
        &key,
        Action::RegisterProvider { resources, bond },
        &options,
    )
    .await?;
    let report = tx::report(&sent, fields, "registered");
    Ok(with_provider_id(client, &sent, report).await)
}

/// `exo provider update`.
pub async fn update(client: &Client, args: &UpdateArgs) -> Result<Report, CliError> {
    let resources = args.resources.resources()?;
    let (key, options) = args.tx.load()?;
    let fields = json!({ "resources": resources_json(&resources) });
    let sent = tx::send(client, &key, Action::UpdateProvider { resources }, &options).await?;
    let report = tx::report(&sent, fields, "updated");
    Ok(with_provider_id(client, &sent, report).await)
}

/// `exo provider offer`.
pub async fn offer(client: &Client, args: &OfferArgs) -> Result<Report, CliError> {
    if args.slots == 0 || args.slots > exo_market::MAX_SLOTS_PER_OFFER {
        return Err(CliError::Invalid(format!(
            "--slots must be 1 to {}, not {}",
            exo_market::MAX_SLOTS_PER_OFFER,
            args.slots
        )));
    }
    let price = Amount::parse_exo(&args.price)?;
    if price == Amount::ZERO {
        return Err(CliError::ZeroAmount);
    }
    if args.expires_in == 0 {
        return Err(CliError::Invalid("--expires-in must be at least 1".into()));
    }
    let (key, options) = args.tx.load()?;
    // Counted from the last finalized block's time: the chain's clock, not this machine's.
    let now_secs = client.status().await?.finalized_time_ms / 1_000;
    let expiry_secs = now_secs.saturating_add(args.expires_in);
    let action = Action::PostOffer {
        slots: args.slots,
        price_per_unit: price,
        expiry_secs,
    };
    let sent = tx::send(client, &key, action, &options).await?;
    let fields = json!({
        "slots": args.slots,
        "price_per_unit": price.0.to_string(),
        "expiry_secs": expiry_secs,
    });
    let mut report = tx::report(&sent, fields, "offered");
    // The new offer is the provider's newest on the book.
    if sent.ok()
        && let Ok(Some(provider)) = client.provider_of(&sent.sender).await
        && let Some(id) = newest_offer(client, provider).await
    {
        report.json["offer"] = json!(id);
        report.text.push_str(&format!("\noffer {id}"));
    }
    Ok(report)
}

/// The highest offer id of `provider` on the book.
async fn newest_offer(client: &Client, provider: u64) -> Option<u64> {
    let mut from = 0;
    let mut newest = None;
    loop {
        let page = client.offers(from, Some(1_000)).await.ok()?;
        newest = page
            .offers
            .iter()
            .filter(|o| o.provider == provider)
            .map(|o| o.id)
            .max()
            .or(newest);
        match page.next {
            Some(next) if next > from => from = next,
            _ => return newest,
        }
    }
}

/// `exo provider cancel`.
pub async fn cancel(client: &Client, args: &CancelArgs) -> Result<Report, CliError> {
    let (key, options) = args.tx.load()?;
    let sent = tx::send(
        client,
        &key,
        Action::CancelOffer { offer: args.offer },
        &options,
    )
    .await?;
    Ok(tx::report(
        &sent,
        json!({ "offer": args.offer }),
        "cancelled",
    ))
}

/// `exo provider retire`.
pub async fn retire(client: &Client, args: &RetireArgs) -> Result<Report, CliError> {
    let (key, options) = args.tx.load()?;
    let sent = tx::send(client, &key, Action::RetireProvider, &options).await?;
    Ok(tx::report(&sent, json!({}), "retired"))
}

/// The text form of a provider.
pub fn provider_text(p: &wire::Provider) -> String {
    let r = &p.resources;
    let gpu = r.gpu.as_ref().map_or_else(
        || "none".to_string(),
        |g| format!("{} x{} ({} MiB)", g.model, g.count, g.memory_mib),
    );
    format!(
        "provider {}{}\nowner {}\nresources {} cores, {} MiB, cpu score {}, gpu {gpu}, {} in {}, units up to {} fuel\nbond {} EXO, reputation {}/{}{}\nrunning {}, valid {}, invalid {}, missed {}, registered at block {}",
        p.id,
        if p.retired { " (retired)" } else { "" },
        exo_types::address_to_hex(&p.owner),
        r.cores,
        r.memory_mib,
        r.cpu_score,
        r.class,
        r.region,
        r.max_unit_fuel,
        p.bond.to_exo_string(),
        p.reputation,
        p.reputation_max,
        if p.trusted { ", trusted" } else { "" },
        p.active,
        p.valid,
        p.invalid,
        p.missed,
        p.registered_height,
    )
}

/// The provider `args` names, by id or by its owner's key file.
async fn provider_id(client: &Client, args: &ShowArgs) -> Result<u64, CliError> {
    match (&args.id, &args.key) {
        (Some(id), _) => Ok(*id),
        (None, Some(path)) => {
            let owner = keyfile::address(&keyfile::read(path)?);
            client.provider_of(&owner).await?.ok_or_else(|| {
                CliError::NotFound(format!(
                    "account {} has no provider",
                    exo_types::address_to_hex(&owner)
                ))
            })
        }
        (None, None) => Err(CliError::Invalid("give a provider id or --key".into())),
    }
}

/// `exo provider show [ID | --key FILE]`.
pub async fn show(client: &Client, args: &ShowArgs) -> Result<Report, CliError> {
    let id = provider_id(client, args).await?;
    let provider = client
        .provider(id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("provider {id} does not exist")))?;
    let json = serde_json::to_value(&provider).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(Report::ok(provider_text(&provider), json))
}

/// `exo provider capacity [ID | --key FILE]`.
pub async fn capacity(client: &Client, args: &ShowArgs) -> Result<Report, CliError> {
    let id = provider_id(client, args).await?;
    let view = client.provider_capacity(id).await?;
    let json = serde_json::to_value(&view).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(Report::ok(capacity_text(&view), json))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn capacity_text(view: &wire::ProviderCapacity) -> String {
    let mut text = match &view.round {
        None => "no capacity round yet".to_string(),
        Some(r) => format!(
            "capacity round {} ({}), opened at {} ms, closes at {} ms, {} hashes per slot",
            r.number,
            if r.open { "open" } else { "closed" },
            r.opened_ms,
            r.closes_ms,
            r.hashes_per_slot
        ),
    };
    text.push_str(&format!(
        "\neach proven slot earns {} reward unit{}; offers above {} EXO per unit earn nothing",
        view.units_per_slot,
        plural(view.units_per_slot),
        view.max_price.to_exo_string()
    ));
    if view.offers.is_empty() {
        text.push_str(&format!(
            "\nprovider {} has no offer on the book",
            view.provider
        ));
    }
    for o in &view.offers {
        let proven = o.proven_round.map_or("never proven".to_string(), |r| {
            format!("last proven in round {r}")
        });
        text.push_str(&format!(
            "\noffer {}: {} free slot{} at {} EXO per unit, {proven}{}",
            o.offer,
            o.free_slots,
            plural(u64::from(o.free_slots)),
            o.price_per_unit.to_exo_string(),
            if o.may_answer {
                ", may answer the open round"
            } else {
                ""
            }
        ));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_view_says_which_offers_may_answer_the_round() {
        let view = wire::ProviderCapacity {
            provider: 3,
            round: Some(wire::CapacityRound {
                number: 5,
                seed: [1; 32],
                opened_ms: 1_000,
                closes_ms: 21_000,
                hashes_per_slot: 1 << 24,
                open: true,
            }),
            offers: vec![
                wire::CapacityOffer {
                    offer: 8,
                    free_slots: 4,
                    posted_secs: 0,
                    price_per_unit: Amount::from_exo(1),
                    proven_round: Some(4),
                    may_answer: true,
                },
                wire::CapacityOffer {
                    offer: 9,
                    free_slots: 2,
                    posted_secs: 0,
                    price_per_unit: Amount::from_exo(1),
                    proven_round: None,
                    may_answer: false,
                },
            ],
            units_per_slot: 1,
            max_price: Amount::from_exo(10),
        };
        let text = capacity_text(&view);
        assert!(text.starts_with("capacity round 5 (open)"), "{text}");
        assert!(
            text.contains("offer 8: 4 free slots at 1 EXO per unit, last proven in round 4, may answer the open round"),
            "{text}"
        );
        assert!(
            text.ends_with("offer 9: 2 free slots at 1 EXO per unit, never proven"),
            "{text}"
        );
        assert!(
            text.contains("each proven slot earns 1 reward unit;"),
            "{text}"
        );
        let none = capacity_text(&wire::ProviderCapacity {
            round: None,
            offers: Vec::new(),
            ..view
        });
        assert!(none.starts_with("no capacity round yet"), "{none}");
        assert!(
            none.ends_with("provider 3 has no offer on the book"),
            "{none}"
        );
    }

    #[test]
    fn gpus_parse() {
        let gpu = parse_gpu("rtx4090:2:24576").unwrap();
        assert_eq!(
            (gpu.model.as_str(), gpu.count, gpu.memory_mib),
            ("rtx4090", 2, 24576)
        );
        assert_eq!(parse_gpu("a100:1").unwrap().memory_mib, 1);
        assert_eq!(parse_gpu("NVIDIA A100:1").unwrap().model, "a100");
        for bad in ["rtx4090", "rtx:x", "rtx:1:y", "rtx:1:2:3"] {
            assert!(parse_gpu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_are_checked_locally() {
        let args = ResourceArgs {
            cores: 4,
            memory_mib: 1024,
            cpu_score: 1,
            gpu: None,
            class: "pc".into(),
            region: "eu-west".into(),
            max_unit_fuel: 10,
        };
        assert!(args.resources().is_ok());
        let upper = ResourceArgs {
            region: "EU-West".into(),
            ..args.clone()
        };
        assert_eq!(upper.resources().unwrap().region, "eu-west");
        let err = ResourceArgs {
            region: "eu west".into(),
            ..args.clone()
        }
        .resources()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid resources: the region name is invalid")
        );
        let err = ResourceArgs {
            cores: 0,
            ..args.clone()
        }
        .resources()
        .unwrap_err();
        assert!(err.to_string().contains("cores must be between"), "{err}");
        assert!(
            ResourceArgs {
                class: "mainframe".into(),
                ..args
            }
            .resources()
            .is_err()
        );
    }
}
