//! `exo job`: submit a job (uploading its module and inputs), follow it, cancel it, and fetch
//! the outputs of its accepted units.

use crate::{
    CliError, GlobalArgs, Report,
    app::{MAX_MODULE_BYTES, check_app_text, read_file, upload_and_publish},
    block_on, builtin, estimate,
    provider::{parse_class, parse_region},
    tx::{self, TxArgs},
};
use clap::{Args, Subcommand};
use commonware_cryptography::Signer as _;
use exo_apps::render;
use exo_client::{Client, outputs::Archive, wire};
use exo_market::{GpuRequirement, Requirements, Runtime, canonical_gpu_model};
use exo_types::{
    Action, Address, Amount, Hash32, InputRef, JobSpec, MAX_INPUT_NAME_LEN, MAX_JOB_INPUTS,
    MAX_JOB_UNITS, MAX_TRUST, MAX_UNIT_ARGS_LEN, address_from_hex, address_to_hex,
};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Largest input file read from disk: the node's default blob bound.
const MAX_INPUT_BYTES: u64 = exo_client::MAX_BLOB_BYTES as u64;
/// Largest unit-arguments file read.
const MAX_UNIT_ARGS_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Upload a job's module and inputs and submit it.
    Submit(Box<SubmitArgs>),
    /// Show a job: its accounts and each unit's state.
    Status(StatusArgs),
    /// Cancel a job: units not yet assigned are refunded.
    Cancel(CancelArgs),
    /// Download the outputs of a job's accepted units, checked against their digests.
    Results(ResultsArgs),
}

#[derive(Clone, Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The app: a wasm file (published first under this account, royalty 0, unless this
    /// account published it already), the module hash of a published app, or a built-in app
    /// by name (hello, render, backtest, montecarlo), published the same way.
    #[arg(long, value_name = "FILE.wasm|APP_HASH|NAME")]
    pub app: String,
    /// A parameter of a built-in app's plan, KEY=VALUE (repeatable): with `--app backtest` or
    /// `--app montecarlo` the job is split into `--units` units by the app (see README).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// The developer of the app named by its hash: the same module published by another
    /// account is another app, with its own royalty. Default: this account.
    #[arg(long, value_name = "ADDRESS")]
    pub developer: Option<String>,
    /// Number of work units. A render of a --scene plans its own (frames × tiles): give this
    /// only to check the count.
    #[arg(long, value_name = "N", required_unless_present = "scene")]
    pub units: Option<u32>,
    /// With `--app render`: the scene file to render (TOML naming OBJ and MTL meshes, lights,
    /// materials and a camera path; see apps/render/README.md). Compiled here into the canonical
    /// scene every unit reads.
    #[arg(long, value_name = "FILE")]
    pub scene: Option<PathBuf>,
    /// With --scene: how many frames of the camera path to render, from frame 0.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "scene")]
    pub frames: u32,
    /// With --scene: the largest tile a unit renders, WxH.
    #[arg(long, value_name = "WxH", default_value = "80x60", value_parser = parse_tile, requires = "scene")]
    pub tile: (u32, u32),
    /// Cores a provider must have.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cores: u32,
    /// Memory a provider must have, in MiB; also each unit's memory limit.
    #[arg(long, value_name = "M", default_value_t = 64)]
    pub memory_mib: u64,
    /// A GPU a provider must have: MODEL[:COUNT[:MEM_MIB]].
    #[arg(long, value_name = "MODEL")]
    pub gpu: Option<String>,
    /// Region a provider must be in.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Kind of machine required: server, pc, laptop, phone or iot.
    #[arg(long, value_name = "C")]
    pub class: Option<String>,
    /// The most paid a provider, in EXO per compute unit (10^9 fuel).
    #[arg(long, value_name = "EXO")]
    pub max_price: String,
    /// Agreeing replica weight a unit needs (1 trusts one provider's word).
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub trust: u8,
    /// Fuel each unit may burn (the escrow holds this much per replica at --max-price).
    #[arg(long, value_name = "F", default_value_t = 10_000_000_000)]
    pub fuel_limit: u64,
    /// Run unit 0 on this machine first, in the providers' sandbox: submit only if it ends
    /// `ok`, set the fuel limit to its fuel plus 50% (at most --fuel-limit), and print the
    /// expected cost at the book's cheapest ask.
    #[arg(long)]
    pub estimate: bool,
    /// An input file, seen by every unit as /in/<file name>. Repeatable.
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// A file whose line i holds the arguments of unit i (split on spaces); exactly one line
    /// per unit.
    #[arg(long, value_name = "FILE")]
    pub unit_args: Option<PathBuf>,
    /// Follow the job until it is done, with a progress bar, then print its accounts.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, how long to follow the job, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3_600)]
    pub wait_timeout: u64,
}

#[derive(Clone, Debug, Args)]
pub struct StatusArgs {
    /// Job id.
    #[arg(value_name = "ID")]
    pub id: u64,
}

#[derive(Clone, Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// Job id.
    #[arg(value_name = "ID")]
    pub id: u64,
}

#[derive(Clone, Debug, Args)]
pub struct ResultsArgs {
    /// Job id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// Directory to write into: `unit-<i>/stdout` and `unit-<i>/out/...` per accepted unit,
    /// and a built-in app's combined files (`ranking.csv` and `equity.png` for backtest,
    /// `estimate.json` for montecarlo).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Another node to ask for outputs when --node has none. Repeatable.
    #[arg(long = "source", value_name = "URL")]
    pub sources: Vec<String>,
}

pub fn run(command: JobCommand, global: &GlobalArgs) -> Result<Report, CliError> {
    let client = Client::new(&global.node)?;
    match command {
        JobCommand::Submit(args) => block_on(submit(&client, &args, !global.json)),
        JobCommand::Status(args) => block_on(status(&client, args.id)),
        JobCommand::Cancel(args) => block_on(cancel(&client, &args)),
        JobCommand::Results(args) => block_on(results(&client, &args)),
    }
}

/// Parses `WxH` with both sides positive.
fn parse_tile(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not WxH with positive sides, for example 80x60");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    match (w.parse(), h.parse()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(bad()),
    }
}

/// Parses `MODEL[:COUNT[:MEM_MIB]]`.
fn parse_gpu_requirement(text: &str) -> Result<GpuRequirement, CliError> {
    let bad = || CliError::Invalid(format!("--gpu {text:?}: expected MODEL[:COUNT[:MEM_MIB]]"));
    let mut parts = text.split(':');
    let model = parts.next().unwrap_or_default();
    let min_count = parts
        .next()
        .map(|c| c.parse().map_err(|_| bad()))
        .transpose()?
        .unwrap_or(1);
    let min_memory_mib = parts
        .next()
        .map(|m| m.parse().map_err(|_| bad()))
        .transpose()?
        .unwrap_or(0);
    if parts.next().is_some() {
        return Err(bad());
    }
    let model = match model.trim() {
        "" | "any" | "ANY" | "Any" => None,
        name => Some(canonical_gpu_model(name).ok_or_else(|| {
            CliError::Invalid(format!(
                "--gpu {text:?}: {name:?} is not a GPU model name (letters, digits, '-', '_', '.')"
            ))
        })?),
    };
    Ok(GpuRequirement {
        model,
        min_count,
        min_memory_mib,
    })
}

/// The unit argument lines of `path`: exactly `units` lines.
fn read_unit_args(path: &Path, units: u32) -> Result<Vec<String>, CliError> {
    let bytes = read_file(path, MAX_UNIT_ARGS_FILE_BYTES, "unit arguments")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::Invalid(format!("unit arguments {} are not UTF-8", path.display()))
    })?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    if lines.len() != units as usize {
        return Err(CliError::Invalid(format!(
            "unit arguments {} hold {} lines for {units} units: give exactly one line per unit",
            path.display(),
            lines.len()
        )));
    }
    if let Some((i, _)) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.len() > MAX_UNIT_ARGS_LEN)
    {
        return Err(CliError::Invalid(format!(
            "line {} of {} is over {MAX_UNIT_ARGS_LEN} bytes",
            i + 1,
            path.display()
        )));
    }
    Ok(lines)
}

/// The name an input file gets under /in.
fn input_name(path: &Path) -> Result<String, CliError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_INPUT_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        return Err(CliError::Invalid(format!(
            "input {}: file names must be 1 to {MAX_INPUT_NAME_LEN} of a-z A-Z 0-9 . _ -",
            path.display()
        )));
    }
    Ok(name)
}

/// What `--app` names.
enum AppSource {
    Hash(Hash32),
    File(PathBuf),
    /// A built-in app: its name and embedded module.
    Builtin(String, &'static [u8]),
}

fn app_source(text: &str) -> Result<AppSource, CliError> {
    let path = PathBuf::from(text);
    if path.is_file() {
        return Ok(AppSource::File(path));
    }
    if let Some(module) = builtin::module(text) {
        return Ok(AppSource::Builtin(text.to_string(), module));
    }
    match wire::hash32_from_hex(text) {
        Some(hash) => Ok(AppSource::Hash(hash)),
        None => Err(CliError::Invalid(format!(
            "--app {text:?} is neither a file, a 64-character hex module hash nor a built-in \
             app (hello, render, backtest, montecarlo)"
        ))),
    }
}

/// Where an input's bytes come from.
enum InputSource {
    File(PathBuf),
    Builtin(&'static [u8]),
    /// Made here, such as a compiled scene.
    Made(Vec<u8>),
}

impl InputSource {
    fn bytes(&self) -> Result<Vec<u8>, CliError> {
        match self {
            InputSource::File(path) => read_file(path, MAX_INPUT_BYTES, "input"),
            InputSource::Builtin(bytes) => Ok(bytes.to_vec()),
            InputSource::Made(bytes) => Ok(bytes.clone()),
        }
    }
}

/// Everything about a submission that can be checked without the node.
pub struct Prepared {
    app: AppSource,
    pub requirements: Requirements,
    pub max_price: Amount,
    inputs: Vec<(String, InputSource)>,
    pub unit_args: Vec<String>,
    pub units: u32,
}

impl Prepared {
    /// The app's module: from its file, built in, or from the node's blob store.
    pub async fn module_bytes(&self, client: &Client) -> Result<Vec<u8>, CliError> {
        match &self.app {
            AppSource::Hash(hash) => Ok(client.get_blob(hash).await?),
            AppSource::File(path) => read_file(path, MAX_MODULE_BYTES, "module"),
            AppSource::Builtin(_, module) => Ok(module.to_vec()),
        }
    }

    /// Every input, by name.
    pub fn input_bytes(&self) -> Result<Vec<(String, Vec<u8>)>, CliError> {
        self.inputs
            .iter()
            .map(|(name, source)| Ok((name.clone(), source.bytes()?)))
            .collect()
    }
}

fn prepare(args: &SubmitArgs) -> Result<Prepared, CliError> {
    // A count given by hand is checked before anything is read or planned.
    if let Some(units) = args.units {
        check_unit_count(units)?;
    }
    let prepared = prepare_units(args)?;
    check_unit_count(prepared.units)?;
    Ok(prepared)
}

fn check_unit_count(units: u32) -> Result<(), CliError> {
    if units == 0 || units > MAX_JOB_UNITS {
        return Err(CliError::Invalid(format!(
            "--units must be 1 to {MAX_JOB_UNITS}, not {units}"
        )));
    }
    Ok(())
}

/// The render plan of `--scene`: the compiled scene as input `scene.bin` and one unit per tile
/// of every frame.
fn render_plan(args: &SubmitArgs, scene: &Path) -> Result<(Vec<String>, Vec<u8>), CliError> {
    if args.app != "render" || args.unit_args.is_some() {
        return Err(CliError::Invalid(
            "--scene is for --app render, which plans its units' arguments (no --unit-args)".into(),
        ));
    }
    let text = read_file(
        scene,
        render::scene_file::MAX_SCENE_FILE_BYTES as u64,
        "scene",
    )?;
    let text = String::from_utf8(text)
        .map_err(|_| CliError::Invalid(format!("scene {} is not UTF-8", scene.display())))?;
    let dir = scene.parent().map(Path::to_path_buf).unwrap_or_default();
    let compiled = render::scene_file::compile(&text, &|path| {
        read_file(
            &dir.join(path),
            render::scene_file::MAX_MESH_FILE_BYTES as u64,
            "mesh",
        )
        .map_err(|e| e.to_string())
    })
    .map_err(|e| CliError::Invalid(format!("scene {}: {e}", scene.display())))?;
    for warning in &compiled.warnings {
        eprintln!("warning: {warning}");
    }
    let unit_args = render::plan_job(
        compiled.width,
        compiled.height,
        compiled.samples,
        args.frames,
        args.tile,
        MAX_JOB_UNITS,
    )
    .map_err(|e| CliError::Invalid(format!("--scene: {e}")))?;
    Ok((unit_args, compiled.canonical))
}

/// Everything but the unit count's checks: the plan decides the count when it makes the units.
fn prepare_units(args: &SubmitArgs) -> Result<Prepared, CliError> {
    if args.trust == 0 || args.trust > MAX_TRUST {
        return Err(CliError::Invalid(format!(
            "--trust must be 1 to {MAX_TRUST}, not {}",
            args.trust
        )));
    }
    let max_price = Amount::parse_exo(&args.max_price)?;
    if max_price == Amount::ZERO {
        return Err(CliError::ZeroAmount);
    }
    let requirements = Requirements {
        min_cores: args.cores,
        min_memory_mib: args.memory_mib,
        min_cpu_score: 0,
        gpu: args.gpu.as_deref().map(parse_gpu_requirement).transpose()?,
        class: args.class.as_deref().map(parse_class).transpose()?,
        region: args.region.as_deref().map(parse_region).transpose()?,
        runtime: Runtime::Wasm32Wasip1,
        fuel_limit: args.fuel_limit,
        min_reputation: 0,
    };
    requirements
        .validate()
        .map_err(|e| CliError::Invalid(format!("invalid requirements: {e}")))?;
    if args.inputs.len() > MAX_JOB_INPUTS {
        return Err(CliError::Invalid(format!(
            "a job takes at most {MAX_JOB_INPUTS} inputs, not {}",
            args.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        let name = input_name(path)?;
        if inputs.iter().any(|(n, _)| *n == name) {
            return Err(CliError::Invalid(format!(
                "two inputs are named {name:?}: input names must differ"
            )));
        }
        inputs.push((name, InputSource::File(path.clone())));
    }
    let app = app_source(&args.app)?;
    let plan = plan_units(args, &app, inputs)?;
    Ok(Prepared {
        app,
        requirements,
        max_price,
        inputs: plan.inputs,
        unit_args: plan.unit_args,
        units: plan.units,
    })
}

/// A job's inputs, unit argument lines and unit count.
struct UnitPlan {
    inputs: Vec<(String, InputSource)>,
    unit_args: Vec<String>,
    units: u32,
}

/// The inputs, unit argument lines and unit count: from a render scene, a built-in app's plan,
/// or the requester's own `--unit-args` and `--units`.
fn plan_units(
    args: &SubmitArgs,
    app: &AppSource,
    mut inputs: Vec<(String, InputSource)>,
) -> Result<UnitPlan, CliError> {
    if let Some(scene) = &args.scene {
        let (unit_args, canonical) = render_plan(args, scene)?;
        if inputs.iter().any(|(n, _)| n == render::SCENE_INPUT) {
            return Err(CliError::Invalid(format!(
                "--scene makes the input {}: do not give one",
                render::SCENE_INPUT
            )));
        }
        inputs.push((render::SCENE_INPUT.into(), InputSource::Made(canonical)));
        let units = unit_args.len() as u32;
        if let Some(n) = args.units.filter(|&n| n != units) {
            return Err(CliError::Invalid(format!(
                "--units {n}, but {} frames of this scene make {units} tiles",
                args.frames
            )));
        }
        return Ok(UnitPlan {
            inputs,
            unit_args,
            units,
        });
    }
    // Required by the argument parser unless --scene is given.
    let units = args.units.unwrap_or_default();
    let planned = match app {
        AppSource::Builtin(name, _) if name == "backtest" || name == "montecarlo" => {
            if args.unit_args.is_some() {
                return Err(CliError::Invalid(format!(
                    "--app {name} plans its units' arguments: give --param, not --unit-args"
                )));
            }
            let has_prices = inputs.iter().any(|(n, _)| n == builtin::PRICES_INPUT);
            if name == "backtest" && !inputs.is_empty() && !has_prices {
                return Err(CliError::Invalid(format!(
                    "a backtest reads its bars from an input named {}",
                    builtin::PRICES_INPUT
                )));
            }
            Some(builtin::plan(name, &args.params, units, has_prices)?)
        }
        _ if !args.params.is_empty() => {
            return Err(CliError::Invalid(
                "--param is for --app backtest or --app montecarlo".into(),
            ));
        }
        _ => None,
    };
    let unit_args = match planned {
        Some(plan) => {
            inputs.extend(
                plan.inputs
                    .into_iter()
                    .map(|(name, bytes)| (name, InputSource::Builtin(bytes))),
            );
            plan.unit_args
        }
        None => args
            .unit_args
            .as_deref()
            .map(|p| read_unit_args(p, units))
            .transpose()?
            .unwrap_or_default(),
    };
    Ok(UnitPlan {
        inputs,
        unit_args,
        units,
    })
}

/// The app's module hash and developer: a hash names `developer`'s app; a file or a built-in
/// app is uploaded and published under this account (royalty 0, named after the file) unless this account
/// published it already. Another account's app with the same module is never used unless
/// named: its royalty is its developer's choice.
async fn ensure_app(
    client: &Client,
    key: &exo_types::PrivateKey,
    options: &tx::TxOptions,
    app: &AppSource,
    developer: Option<&Address>,
) -> Result<(Hash32, Option<Value>), CliError> {
    let me = key.public_key();
    let (module, stem) = match app {
        AppSource::Hash(hash) => {
            let developer = developer.unwrap_or(&me);
            if client.app(hash, developer).await?.is_none() {
                return Err(CliError::NotFound(format!(
                    "{} published no app with module {}",
                    address_to_hex(developer),
                    hex::encode(hash)
                )));
            }
            return Ok((*hash, None));
        }
        AppSource::File(path) => (
            read_file(path, MAX_MODULE_BYTES, "module")?,
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("app"),
        ),
        AppSource::Builtin(name, module) => (module.to_vec(), name.as_str()),
    };
    let hash = exo_client::blob_hash(&module);
    if client.app(&hash, &me).await?.is_some() {
        // Providers fetch the module from the blob store: make sure this node has it.
        client.put_blob(module, key).await?;
        return Ok((hash, None));
    }
    let name: String = stem
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(exo_types::MAX_APP_NAME_LEN)
        .collect();
    let name = if name.is_empty() { "app".into() } else { name };
    check_app_text("name", &name)?;
    let options = tx::TxOptions {
        nonce: None,
        wait: true,
        ..options.clone()
    };
    let (hash, report) =
        upload_and_publish(client, key, &options, module, &name, "1", Amount::ZERO).await?;
    if !report.success {
        // This account published the same module meanwhile: that is as good.
        if client.app(&hash, &me).await?.is_none() {
            return Err(CliError::Other(format!(
                "publishing the app failed: {}",
                report.text
            )));
        }
    }
    Ok((hash, Some(report.json)))
}

/// `exo job submit`.
pub async fn submit(
    client: &Client,
    args: &SubmitArgs,
    show_progress: bool,
) -> Result<Report, CliError> {
    let mut prepared = prepare(args)?;
    let (key, options) = args.tx.load()?;
    let estimate = if args.estimate {
        let estimate = estimate::unit_zero(client, &prepared, prepared.units, args.trust).await?;
        prepared.requirements.fuel_limit = estimate.fuel_limit;
        if show_progress {
            eprintln!("{}", estimate.text(prepared.units, args.trust));
        }
        Some(estimate)
    } else {
        None
    };
    let developer = match &args.developer {
        Some(text) => {
            Some(address_from_hex(text).ok_or_else(|| CliError::BadAddress(text.clone()))?)
        }
        None => None,
    };
    let (app, published) =
        ensure_app(client, &key, &options, &prepared.app, developer.as_ref()).await?;
    let app_developer = developer.unwrap_or_else(|| key.public_key());
    let mut inputs = Vec::with_capacity(prepared.inputs.len());
    for (name, source) in &prepared.inputs {
        let bytes = source.bytes()?;
        let size = bytes.len() as u64;
        let hash = client.put_blob(bytes, &key).await?;
        inputs.push(InputRef {
            name: name.clone(),
            hash,
            size,
        });
    }
    let spec_units = prepared.units;
    let spec = JobSpec {
        app,
        app_developer: app_developer.clone(),
        inputs,
        unit_args: prepared.unit_args,
        units: prepared.units,
        requirements: prepared.requirements,
        max_price_per_unit: prepared.max_price,
        trust: args.trust,
    };
    // The job id is known only once the transaction is in a block: always wait for it.
    let options = tx::TxOptions {
        wait: true,
        nonce: if published.is_some() {
            None
        } else {
            options.nonce
        },
        ..options
    };
    let sent = tx::send(client, &key, Action::SubmitJob(Box::new(spec)), &options).await?;
    let mut fields = json!({
        "app": hex::encode(app),
        "developer": address_to_hex(&app_developer),
        "units": spec_units
    });
    if let Some(published) = published {
        fields["published"] = published;
    }
    if let Some(estimate) = &estimate {
        fields["estimate"] = estimate.json();
    }
    let mut report = tx::report(&sent, fields, "submitted");
    if !sent.ok() {
        return Ok(report);
    }
    // The receipt names the job the transaction created: two identical jobs in one block are
    // told apart.
    let id = sent.created("job").ok_or_else(|| {
        CliError::Other("the job was accepted but its receipt names no job id".into())
    })?;
    report.json["job_id"] = json!(id);
    report.text = format!("job {id}\n{}", report.text);
    if args.wait {
        let job = follow(
            client,
            id,
            show_progress,
            Duration::from_secs(args.wait_timeout),
        )
        .await?;
        report.json["job"] =
            serde_json::to_value(&job).map_err(|e| CliError::Other(e.to_string()))?;
        report.text.push('\n');
        report.text.push_str(&job_summary(&job));
    }
    Ok(report)
}

/// Polls a job until it is finished, drawing a progress bar when asked.
async fn follow(
    client: &Client,
    id: u64,
    show_progress: bool,
    timeout: Duration,
) -> Result<wire::Job, CliError> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let start = tokio::time::Instant::now();
    let bar = ProgressBar::with_draw_target(
        None,
        if show_progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("job {prefix} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(id.to_string());
    loop {
        let job = client
            .job_page(id, 0, Some(1))
            .await?
            .ok_or_else(|| CliError::NotFound(format!("job {id} does not exist")))?;
        let c = job.counts;
        bar.set_length(u64::from(job.unit_count));
        bar.set_position(u64::from(c.accepted) + u64::from(c.failed));
        bar.set_message(format!(
            "waiting {} running {} accepted {} failed {}",
            c.waiting, c.running, c.accepted, c.failed
        ));
        if job.is_finished() {
            bar.finish();
            return Ok(job);
        }
        if start.elapsed() >= timeout {
            bar.abandon();
            return Err(CliError::Other(format!(
                "job {id} is still {} after {} s (waiting {}, running {}, accepted {}, failed {})",
                job.state,
                timeout.as_secs(),
                c.waiting,
                c.running,
                c.accepted,
                c.failed
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The accounts and counts of a job, for people.
fn job_summary(job: &wire::Job) -> String {
    let a = &job.accounts;
    let c = &job.counts;
    let mut text = format!(
        "job {} {}: {} units, waiting {}, running {}, accepted {}, failed {}\nescrowed {} EXO: paid {} EXO to {} providers, royalties {}, fees {}, refunded {}, held {}",
        job.id,
        job.state,
        job.unit_count,
        c.waiting,
        c.running,
        c.accepted,
        c.failed,
        a.escrowed.to_exo_string(),
        a.paid_total.to_exo_string(),
        a.paid.len(),
        a.royalties.to_exo_string(),
        a.fees.to_exo_string(),
        a.refunded.to_exo_string(),
        a.held.to_exo_string(),
    );
    if let Some(reason) = &job.wait_reason
        && c.waiting > 0
    {
        text.push_str(&format!("\nwaiting because: {}", reason.sentence));
    }
    text
}

fn unit_line(unit: &wire::UnitView) -> String {
    let mut line = format!("unit {}: {}", unit.unit, unit.state);
    if let Some(reason) = &unit.reason {
        line.push_str(&format!(" ({})", reason.sentence));
    }
    if !unit.replicas.is_empty() {
        let replicas: Vec<String> = unit
            .replicas
            .iter()
            .map(|r| format!("{}@provider {} {}", r.index, r.provider, r.status))
            .collect();
        line.push_str(&format!(" replicas [{}]", replicas.join(", ")));
    }
    if let (Some(digest), Some(fuel)) = (unit.accepted_digest, unit.accepted_fuel) {
        line.push_str(&format!(" digest {} fuel {fuel}", hex::encode(digest)));
    }
    line
}

/// `exo job status ID`.
pub async fn status(client: &Client, id: u64) -> Result<Report, CliError> {
    let job = client
        .job(id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("job {id} does not exist")))?;
    let mut text = job_summary(&job);
    for unit in &job.units {
        text.push('\n');
        text.push_str(&unit_line(unit));
    }
    let json = serde_json::to_value(&job).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(Report::ok(text, json))
}

/// `exo job cancel ID`.
pub async fn cancel(client: &Client, args: &CancelArgs) -> Result<Report, CliError> {
    let (key, options) = args.tx.load()?;
    let sent = tx::send(client, &key, Action::CancelJob { job: args.id }, &options).await?;
    Ok(tx::report(&sent, json!({ "job_id": args.id }), "cancelled"))
}

/// Writes one unit's outputs under `dir`: `stdout`, `outcome` and `out/<paths>`.
fn write_unit(dir: &Path, archive: &Archive) -> Result<(), CliError> {
    let io = |path: &Path, e: std::io::Error| {
        CliError::Other(format!("cannot write {}: {e}", path.display()))
    };
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(|e| io(&out, e))?;
    // Paths were checked by unpack: relative, without `..`, so they stay inside `out`.
    for d in &archive.dirs {
        let path = out.join(d);
        std::fs::create_dir_all(&path).map_err(|e| io(&path, e))?;
    }
    for (name, bytes) in &archive.files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    let stdout = dir.join("stdout");
    std::fs::write(&stdout, &archive.stdout).map_err(|e| io(&stdout, e))?;
    let outcome = dir.join("outcome");
    std::fs::write(&outcome, format!("{}\n", archive.outcome)).map_err(|e| io(&outcome, e))
}

/// How long `exo job results` keeps asking for accepted outputs that no node asked has yet. A
/// node that misses them asks its peers, which answer once they have finalized the unit's
/// verdict themselves: a requester's node a block ahead of the worker's sees them missing for a
/// moment after the job is done.
const OUTPUTS_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The outputs of an accepted unit from the first of `sources` that has them, asking again
/// for up to [`OUTPUTS_SETTLE`] while every source answers that it has none; otherwise the
/// last source's error.
async fn fetch_unit_outputs(
    sources: &[Client],
    job: u64,
    unit: u32,
    digest: &Hash32,
) -> Result<Archive, String> {
    let deadline = tokio::time::Instant::now() + OUTPUTS_SETTLE;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        let mut last_error = String::new();
        let mut only_missing = true;
        for source in sources {
            match source.fetch_outputs(job, unit, digest).await {
                Ok(archive) => return Ok(archive),
                Err(err) => {
                    only_missing &= err.is_not_found();
                    last_error = format!("{}: {err}", source.url());
                }
            }
        }
        if !only_missing || tokio::time::Instant::now() + pause > deadline {
            return Err(last_error);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// `exo job results ID --out DIR`.
pub async fn results(client: &Client, args: &ResultsArgs) -> Result<Report, CliError> {
    let mut sources = vec![client.clone()];
    for url in &args.sources {
        sources.push(Client::new(url)?);
    }
    let job = client
        .job(args.id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("job {} does not exist", args.id)))?;
    let mut fetched = Vec::new();
    let mut archives = Vec::new();
    let mut missing = Vec::new();
    for unit in &job.units {
        let Some(digest) = unit.accepted_digest else {
            continue;
        };
        match fetch_unit_outputs(&sources, job.id, unit.unit, &digest).await {
            Ok(archive) => {
                let dir = args.out.join(format!("unit-{}", unit.unit));
                write_unit(&dir, &archive)?;
                fetched.push(json!({
                    "unit": unit.unit,
                    "dir": dir.display().to_string(),
                    "digest": hex::encode(digest),
                    "outcome": archive.outcome,
                    "files": archive.files.len(),
                }));
                archives.push(archive);
            }
            Err(error) => missing.push(json!({
                "unit": unit.unit,
                "error": error,
            })),
        }
    }
    let text = format!(
        "job {}: outputs of {} accepted units written to {}{}",
        job.id,
        fetched.len(),
        args.out.display(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; {} accepted units have no outputs on the nodes asked",
                missing.len()
            )
        }
    );
    let mut success = missing.is_empty();
    if !success && fetched.is_empty() {
        return Err(CliError::NotFound(format!(
            "no outputs of job {} were found on the nodes asked ({})",
            job.id,
            missing
                .first()
                .and_then(|m| m["error"].as_str())
                .unwrap_or("no accepted units")
        )));
    }
    let mut text = text;
    let mut json = json!({ "job_id": job.id, "units": fetched, "missing": missing });
    // A built-in app's units combine into its files; a failure to combine leaves the units'
    // outputs written and says why.
    let refs: Vec<&Archive> = archives.iter().collect();
    match builtin::combine(client, &job, &refs, &args.out).await {
        Ok(Some((summary, combined))) => {
            text.push('\n');
            text.push_str(&summary);
            json["combined"] = combined;
        }
        Ok(None) => {}
        Err(err) => {
            text.push_str(&format!("\ncannot combine the units' outputs: {err}"));
            json["combine_error"] = json!(err.to_string());
            success = false;
        }
    }
    Ok(Report {
        text,
        json,
        success,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gpu_requirements_parse() {
        let gpu = parse_gpu_requirement("rtx4090").unwrap();
        assert_eq!(gpu.model.as_deref(), Some("rtx4090"));
        // As people write them: the spelling providers declare.
        for (text, model) in [
            ("A100", "a100"),
            ("RTX 4090", "rtx4090"),
            ("NVIDIA GeForce RTX 4090:2", "rtx4090"),
            ("H100-SXM5-80GB", "h100-sxm5-80gb"),
        ] {
            let gpu = parse_gpu_requirement(text).unwrap();
            assert_eq!(gpu.model.as_deref(), Some(model), "{text}");
        }
        assert_eq!(parse_gpu_requirement("ANY:2").unwrap().model, None);
        assert!(parse_gpu_requirement("NVIDIA ///").is_err());
        assert_eq!(parse_region("EU-West").unwrap(), "eu-west");
        assert!(parse_region("eu west").is_err());
        assert_eq!((gpu.min_count, gpu.min_memory_mib), (1, 0));
        let gpu = parse_gpu_requirement("any:2:8192").unwrap();
        assert_eq!(
            (gpu.model, gpu.min_count, gpu.min_memory_mib),
            (None, 2, 8192)
        );
        assert!(parse_gpu_requirement("a:b").is_err());
    }

    /// `exo job submit ARGS...` as parsed, with a key and a price.
    fn submit_args(args: &[&str]) -> Result<SubmitArgs, clap::Error> {
        use clap::Parser as _;
        let mut argv = vec!["exo", "job", "submit", "--key", "k.key", "--max-price", "1"];
        argv.extend_from_slice(args);
        match crate::args::Cli::try_parse_from(argv)?.command {
            crate::args::Command::Job(JobCommand::Submit(args)) => Ok(*args),
            other => panic!("not a submission: {other:?}"),
        }
    }

    #[test]
    fn a_scene_plans_frames_times_tiles_and_refuses_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("props.obj"), exo_apps::PROPS_OBJ).unwrap();
        std::fs::write(dir.path().join("props.mtl"), exo_apps::PROPS_MTL).unwrap();
        let scene = dir.path().join("shot.toml");
        std::fs::write(
            &scene,
            "[image]\nwidth = 100\nheight = 60\nsamples = 8\n[[camera]]\nframe = 0\n\
             from = [0.0, 1.0, 3.0]\nat = [0.0, 0.3, 0.0]\nfov = 40.0\n[[mesh]]\nobj = \"props.obj\"\n",
        )
        .unwrap();
        let scene = scene.to_str().unwrap();
        let base = ["--app", "render", "--scene", scene];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            prepare(&submit_args(&args).unwrap())
        };
        let p = with(&["--frames", "4", "--tile", "50x60"]).unwrap();
        assert_eq!(p.units, 8, "4 frames of 2 tiles");
        assert_eq!(p.unit_args[7], "100 60 50 0 50 60 8 3");
        let inputs = p.input_bytes().unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].0, "scene.bin");
        assert!(inputs[0].1.starts_with(b"EXOSCN01"), "the canonical scene");

        assert!(with(&["--units", "8", "--frames", "4", "--tile", "50x60"]).is_ok());
        let refused = |extra: &[&str]| match with(extra) {
            Err(CliError::Invalid(reason)) => reason,
            other => panic!("{extra:?} was not refused: {:?}", other.map(|p| p.units)),
        };
        assert!(refused(&["--units", "3"]).contains("make 2 tiles"));
        assert!(refused(&["--frames", "100000"]).contains("units"));
        assert!(submit_args(&["--app", "render", "--scene", scene, "--tile", "0x5"]).is_err());
        assert!(
            submit_args(&["--app", "hello", "--frames", "2"]).is_err(),
            "--frames needs --scene"
        );
        let hello = submit_args(&["--app", "hello", "--units", "1", "--scene", scene]).unwrap();
        assert!(matches!(prepare(&hello), Err(CliError::Invalid(_))));
    }

    #[test]
    fn unit_args_need_one_line_per_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args");
        std::fs::write(&path, "a b\nc\n").unwrap();
        assert_eq!(read_unit_args(&path, 2).unwrap(), vec!["a b", "c"]);
        let err = read_unit_args(&path, 3).unwrap_err();
        assert!(err.to_string().contains("2 lines for 3 units"), "{err}");
    }

    #[test]
    fn input_names_are_plain() {
        assert_eq!(input_name(Path::new("/tmp/data.csv")).unwrap(), "data.csv");
        assert!(input_name(Path::new("/tmp/a b")).is_err());
    }
}
