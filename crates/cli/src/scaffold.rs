//! `exo app new NAME`: writes a new task app crate (a `wasm32-wasip1` command on the `exo-guest`
//! SDK) from the templates under `crates/cli/templates/app`, ready to build, run in the sandbox
//! and publish.
//!
//! `exo-guest` is not on crates.io, so the new crate names where to find it: a local checkout of
//! this repository (`--guest-path`, by default the checkout this `exo` was built from) or a git
//! repository (`--guest-git`, optionally pinned with `--guest-rev`).
//!
//! This module must never write into a directory that already exists, nor leave a half-written
//! crate behind.

use crate::{CliError, Report};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../templates/app/Cargo.toml.tmpl");
const MAIN_RS: &str = include_str!("../templates/app/main.rs.tmpl");
const README_MD: &str = include_str!("../templates/app/README.md.tmpl");
const GITIGNORE: &str = include_str!("../templates/app/gitignore.tmpl");

/// Longest app name: the ledger's bound on published app names.
const MAX_NAME_LEN: usize = exo_types::MAX_APP_NAME_LEN;

/// Names cargo refuses for a package or a binary (Rust keywords, the standard crates, cargo's
/// own `build` directory and `exo-guest`, which the app depends on), so that an accepted name
/// always builds.
const RESERVED_NAMES: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "build",
    "const",
    "continue",
    "core",
    "crate",
    "deps",
    "do",
    "dyn",
    "else",
    "enum",
    "examples",
    "exo-guest",
    "exo_guest",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "incremental",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

#[derive(Clone, Debug, Args)]
pub struct NewArgs {
    /// Name of the app: its package, its module (NAME.wasm) and the name to publish it under.
    /// 1 to 64 of a-z 0-9 - _, starting with a letter.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Directory to create (default: ./NAME); it must not exist.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A local checkout of the Exodus repository (or its crates/guest) to take `exo-guest`
    /// from. Default: the checkout this `exo` was built from, if it is still there.
    #[arg(long, value_name = "DIR", conflicts_with = "guest_git")]
    pub guest_path: Option<PathBuf>,
    /// A git repository of Exodus to take `exo-guest` from, instead of a local checkout.
    #[arg(long, value_name = "URL")]
    pub guest_git: Option<String>,
    /// The commit, tag or branch of --guest-git to use (default: its default branch).
    #[arg(long, value_name = "REV", requires = "guest_git")]
    pub guest_rev: Option<String>,
}

/// Where the new crate takes `exo-guest` from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestSource {
    /// The `crates/guest` directory of a local checkout (absolute).
    Path(PathBuf),
    /// A git repository holding the Exodus workspace, at `rev` or its default branch.
    Git { url: String, rev: Option<String> },
}

impl GuestSource {
    /// The `exo-guest = ...` line of the new crate's `[dependencies]`.
    fn dependency_line(&self) -> String {
        let fields = match self {
            Self::Path(path) => format!("path = {}", toml_string(&path.to_string_lossy())),
            Self::Git { url, rev } => {
                let mut fields = format!("git = {}", toml_string(url));
                if let Some(rev) = rev {
                    fields.push_str(&format!(", rev = {}", toml_string(rev)));
                }
                fields
            }
        };
        format!("exo-guest = {{ {fields} }}")
    }

    /// Where the dependency comes from, for the new crate's README.
    fn describe(&self) -> String {
        match self {
            Self::Path(path) => format!("the local checkout at `{}`", path.display()),
            Self::Git { url, rev: None } => format!("the git repository `{url}`"),
            Self::Git {
                url,
                rev: Some(rev),
            } => {
                format!("the git repository `{url}` at `{rev}`")
            }
        }
    }
}

/// A TOML basic string holding `text`, quoted and escaped by the TOML library: a path may hold
/// quotes, backslashes or non-ASCII characters.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Refuses a name cargo would refuse, or that cannot be published as an app.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let bad = |why: &str| {
        Err(CliError::Invalid(format!(
            "the app name {name:?} {why}: use 1 to {MAX_NAME_LEN} of a-z 0-9 - _, starting \
             with a letter (for example word-count)"
        )))
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad(&format!("is not 1 to {MAX_NAME_LEN} characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("does not start with a lowercase letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return bad(&format!("holds {c:?}"));
    }
    if RESERVED_NAMES.contains(&name) {
        return bad("is reserved by Rust or cargo");
    }
    Ok(())
}

/// The `crates/guest` directory of `dir`, which is either a checkout of the repository or that
/// directory itself; absolute, so that the new crate builds from wherever it is moved.
fn guest_crate_dir(dir: &Path) -> Result<PathBuf, CliError> {
    let candidates = [dir.join("crates").join("guest"), dir.to_path_buf()];
    let found = candidates
        .iter()
        .find(|c| is_guest_crate(c))
        .ok_or_else(|| {
            CliError::Invalid(format!(
                "--guest-path {}: neither it nor its crates/guest is the exo-guest crate (a \
                 checkout of the Exodus repository)",
                dir.display()
            ))
        })?;
    std::fs::canonicalize(found)
        .map_err(|e| CliError::Invalid(format!("--guest-path {}: {e}", dir.display())))
}

/// Whether `dir` holds the `exo-guest` package (its manifest names it).
fn is_guest_crate(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|manifest| {
            let name = manifest.get("package")?.get("name")?.as_str()?.to_string();
            Some(name == "exo-guest")
        })
        .unwrap_or(false)
}

/// The `crates/guest` of the checkout this binary was built from, if it is still there: an
/// `exo` built from a checkout scaffolds apps against the same SDK without further flags.
fn built_from_checkout() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest");
    is_guest_crate(&dir)
        .then(|| std::fs::canonicalize(&dir).ok())
        .flatten()
}

/// Where `args` say `exo-guest` comes from.
fn guest_source(args: &NewArgs) -> Result<GuestSource, CliError> {
    if let Some(url) = &args.guest_git {
        if url.trim().is_empty() {
            return Err(CliError::Invalid("--guest-git needs a URL".into()));
        }
        return Ok(GuestSource::Git {
            url: url.clone(),
            rev: args.guest_rev.clone(),
        });
    }
    match &args.guest_path {
        Some(dir) => guest_crate_dir(dir).map(GuestSource::Path),
        None => built_from_checkout().map(GuestSource::Path).ok_or_else(|| {
            CliError::Invalid(
                "this exo was not built from a checkout that is still on this machine: say \
                 where exo-guest is with --guest-path DIR (a checkout of the Exodus repository) \
                 or --guest-git URL"
                    .into(),
            )
        }),
    }
}

/// The new crate's files (relative path, contents) for app `name`.
pub fn files(name: &str, guest: &GuestSource) -> Vec<(&'static str, String)> {
    let fill = |template: &str| {
        template
            .replace("@GUEST_DEPENDENCY@", &guest.dependency_line())
            .replace("@GUEST_SOURCE@", &guest.describe())
            .replace("@NAME@", name)
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/main.rs", fill(MAIN_RS)),
        ("README.md", fill(README_MD)),
        (".gitignore", fill(GITIGNORE)),
    ]
}

/// Creates `dir` (which must not exist) and writes `files` into it; on failure removes what it
/// created.
fn write_new_dir(dir: &Path, files: &[(&str, String)]) -> Result<(), CliError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::Invalid(format!("cannot create {}: {e}", parent.display())))?;
    }
    // `create_dir` fails on anything already there, so no existing file is ever overwritten,
    // even if it appears between a check and the write.
    std::fs::create_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Invalid(format!(
            "{} already exists: choose another name or --dir",
            dir.display()
        )),
        _ => CliError::Invalid(format!("cannot create {}: {e}", dir.display())),
    })?;
    let written = files.iter().try_for_each(|(path, text)| {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
    });
    written.map_err(|e| {
        // The directory is ours: we just created it.
        let _ = std::fs::remove_dir_all(dir);
        CliError::Other(format!("cannot write the app into {}: {e}", dir.display()))
    })
}

/// `exo app new`.
pub fn new_app(args: &NewArgs) -> Result<Report, CliError> {
    check_name(&args.name)?;
    let guest = guest_source(args)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    write_new_dir(&dir, &files(&args.name, &guest))?;
    let name = &args.name;
    let text = format!(
        "created the app {name} in {dir} (exo-guest from {source})\nnext:\n  cd {dir}\n  cargo \
         build --release --target wasm32-wasip1\n  exo exec run \
         target/wasm32-wasip1/release/{name}.wasm --input README.md --arg app --out out\n  (see \
         {dir}/README.md)",
        dir = dir.display(),
        source = guest.describe(),
    );
    Ok(Report::ok(
        text,
        json!({
            "name": name,
            "dir": dir.display().to_string(),
            "module": format!("target/wasm32-wasip1/release/{name}.wasm"),
            "exo_guest": guest.dependency_line(),
        }),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_or_the_ledger_would_refuse_are_refused() {
        for good in ["a", "word-count", "ray_tracer2", &"a".repeat(MAX_NAME_LEN)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "2fast",
            "-x",
            "_x",
            "Word",
            "has space",
            "a/b",
            "../up",
            "é",
            "test",
            "std",
            "fn",
            "exo-guest",
            &too_long,
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("a-z 0-9 - _"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_manifest_names_the_guest_source_as_valid_toml() {
        let odd = GuestSource::Path(PathBuf::from("/tmp/a \"quoted\" \\ dir"));
        let git = GuestSource::Git {
            url: "https://example.org/exodus.git".into(),
            rev: Some("v0.1.0".into()),
        };
        for (guest, key, value) in [
            (&odd, "path", "/tmp/a \"quoted\" \\ dir"),
            (&git, "git", "https://example.org/exodus.git"),
        ] {
            let files = files("word-count", guest);
            let manifest: toml::Table = files[0].1.parse().unwrap();
            assert_eq!(manifest["package"]["name"].as_str(), Some("word-count"));
            assert_eq!(manifest["bin"][0]["name"].as_str(), Some("word-count"));
            let dep = &manifest["dependencies"]["exo-guest"];
            assert_eq!(dep[key].as_str(), Some(value));
            assert!(manifest.contains_key("workspace"));
            assert!(
                files.iter().all(|(_, text)| !text.contains('@')),
                "{files:?}"
            );
        }
        let manifest: toml::Table = files("x", &git)[0].1.parse().unwrap();
        assert_eq!(
            manifest["dependencies"]["exo-guest"]["rev"].as_str(),
            Some("v0.1.0")
        );
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("taken");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("mine.txt"), "keep").unwrap();
        let err = write_new_dir(&dir, &[("Cargo.toml", "x".into())]).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("mine.txt")).unwrap(),
            "keep"
        );
        assert!(!dir.join("Cargo.toml").exists());
    }

    #[test]
    fn the_guest_path_may_be_the_checkout_or_its_guest_crate() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let guest = std::fs::canonicalize(checkout.join("crates/guest")).unwrap();
        assert_eq!(guest_crate_dir(&checkout).unwrap(), guest);
        assert_eq!(guest_crate_dir(&guest).unwrap(), guest);
        let err = guest_crate_dir(&checkout.join("crates/cli")).unwrap_err();
        assert!(err.to_string().contains("exo-guest"), "{err}");
    }
}
