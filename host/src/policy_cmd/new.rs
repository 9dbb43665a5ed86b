//! `qserve-host policy new NAME [--dir DIR]`: write a Rust policy crate
//! that builds on its own.
//!
//! The crate is guest/templates/policy-starter with its package renamed,
//! plus a copy of the SDK (guest/sdk, package `qserve-policy`), of the
//! plain-Rust types it re-exports (guest/policy-logic) and of the WIT the
//! SDK generates its bindings from (wit/policy). Why a copy and not a path
//! into a qserve checkout: an author who has only the `qserve-host` binary
//! gets a crate that builds, and the crate keeps building against the
//! contract version of the binary that wrote it.
//!
//! Everything is compiled into the binary (`include_str!`), so it cannot
//! drift from the sources it was built with; a unit test checks that no file
//! of those directories is left out.
//!
//! Layout written:
//!
//! ```text
//! NAME/Cargo.toml, Cargo.lock, README.md, cases.toml, src/lib.rs   the policy
//! NAME/vendor/sdk/…            qserve-policy (its WIT path ../../wit/policy
//! NAME/vendor/policy-logic/…   still resolves: NAME/wit/policy)
//! NAME/wit/policy/policy.wit
//! ```
//!
//! The policy's `[workspace]` table makes NAME a workspace of its own (the
//! vendored crates are path dependencies inside it, hence members), so an
//! enclosing workspace does not swallow it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

/// One file of the generated crate: where it goes, and its text as compiled in.
struct Embedded {
    /// Relative to the new crate's directory.
    path: &'static str,
    text: &'static str,
}

macro_rules! embedded {
    ($($path:literal => $source:literal),* $(,)?) => {
        &[$(Embedded { path: $path, text: include_str!(concat!("../../../", $source)) }),*]
    };
}

/// The starter policy (guest/templates/policy-starter), with the SDK's
/// path dependency and the package name rewritten on the way out.
const TEMPLATE: &[Embedded] = embedded![
    ".gitignore" => "guest/templates/policy-starter/.gitignore",
    "Cargo.lock" => "guest/templates/policy-starter/Cargo.lock",
    "Cargo.toml" => "guest/templates/policy-starter/Cargo.toml",
    "README.md" => "guest/templates/policy-starter/README.md",
    "cases.toml" => "guest/templates/policy-starter/cases.toml",
    "src/lib.rs" => "guest/templates/policy-starter/src/lib.rs",
];

/// The SDK and what it needs, copied as they are except for the
/// `*.workspace = true` keys of their manifests (see [`standalone_manifest`]).
const VENDORED: &[Embedded] = embedded![
    "vendor/sdk/Cargo.toml" => "guest/sdk/Cargo.toml",
    "vendor/sdk/src/glue.rs" => "guest/sdk/src/glue.rs",
    "vendor/sdk/src/host.rs" => "guest/sdk/src/host.rs",
    "vendor/sdk/src/lib.rs" => "guest/sdk/src/lib.rs",
    "vendor/policy-logic/Cargo.toml" => "guest/policy-logic/Cargo.toml",
    "vendor/policy-logic/src/config.rs" => "guest/policy-logic/src/config.rs",
    "vendor/policy-logic/src/default_policy.rs" => "guest/policy-logic/src/default_policy.rs",
    "vendor/policy-logic/src/lib.rs" => "guest/policy-logic/src/lib.rs",
    "vendor/policy-logic/src/readonly_policy.rs" => "guest/policy-logic/src/readonly_policy.rs",
    "vendor/policy-logic/src/types.rs" => "guest/policy-logic/src/types.rs",
    "wit/policy/policy.wit" => "wit/policy/policy.wit",
];

/// The template's package name, replaced by NAME.
const TEMPLATE_PACKAGE: &str = "policy-starter";
/// The template's dependency on the SDK in the checkout, and its replacement.
const TEMPLATE_SDK_DEPENDENCY: &str = r#"qserve-policy = { path = "../../sdk" }"#;
const VENDORED_SDK_DEPENDENCY: &str = r#"qserve-policy = { path = "vendor/sdk" }"#;

/// The qserve workspace's values the vendored manifests inherit
/// (the root Cargo.toml's `[workspace.package]` and `[workspace.dependencies]`).
const WORKSPACE_KEYS: &[(&str, &str)] = &[
    ("version.workspace = true", r#"version = "0.1.0""#),
    ("edition.workspace = true", r#"edition = "2021""#),
    ("license.workspace = true", r#"license = "Apache-2.0""#),
    ("thiserror = { workspace = true }", r#"thiserror = "2""#),
];

/// Names the crate may not take: Rust's and Cargo's reserved names, and the
/// packages already in the generated workspace.
const RESERVED: &[&str] = &[
    "test",
    "core",
    "std",
    "alloc",
    "proc_macro",
    "proc-macro",
    "self",
    "crate",
    "super",
    "build",
    "deps",
    "examples",
    "incremental",
    "qserve-policy",
    "qserve-policy-logic",
    "qserve_policy",
    "qserve_policy_logic",
    "thiserror",
    "wit-bindgen",
    "wit_bindgen",
];

const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("the crate name is empty")]
    Empty,
    #[error("`{0}` is not a crate name: use ASCII letters, digits, `-` and `_`, starting with a letter (e.g. my-policy)")]
    Characters(String),
    #[error("`{0}` is reserved (a Rust keyword, a Cargo name or a crate the policy depends on): choose another name")]
    Reserved(String),
    #[error("`{0}` is longer than 64 characters")]
    TooLong(String),
}

/// Cargo's rules for a package name, a little stricter: a leading letter,
/// so that the library's name (`-` → `_`) is a Rust identifier too.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let first = name.chars().next().ok_or(NameError::Empty)?;
    if !first.is_ascii_alphabetic()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(NameError::Characters(name.to_owned()));
    }
    if name.len() > 64 {
        return Err(NameError::TooLong(name.to_owned()));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || KEYWORDS.contains(&lower.replace('-', "_").as_str()) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// `text` with `from` replaced by `to`; an error when `from` is absent (the
/// template changed under this code: the unit tests catch it).
fn replace_required(text: &str, from: &str, to: &str, file: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        text.contains(from),
        "internal: `{from}` not found in the embedded {file}"
    );
    Ok(text.replace(from, to))
}

/// The template's manifest, renamed and pointing at the vendored SDK.
fn policy_manifest(name: &str) -> anyhow::Result<String> {
    let text = template_text("Cargo.toml");
    let text = replace_required(
        text,
        &format!("name = \"{TEMPLATE_PACKAGE}\""),
        &format!("name = \"{name}\""),
        "Cargo.toml",
    )?;
    let text = replace_required(
        &text,
        "# This path is right inside a qserve checkout (guest/templates/…); in a copy\n\
         # elsewhere, point it at the checkout's guest/sdk.\n",
        "# A copy of the SDK `qserve-host policy new` wrote (vendor/sdk), for the\n\
         # contract of that qserve-host (wit/policy).\n",
        "Cargo.toml",
    )?;
    replace_required(
        &text,
        TEMPLATE_SDK_DEPENDENCY,
        VENDORED_SDK_DEPENDENCY,
        "Cargo.toml",
    )
}

/// The template's lock file with the package renamed, its entries in the
/// order Cargo writes them (by name), so that `cargo build --locked` finds
/// nothing to change.
fn policy_lock(name: &str) -> anyhow::Result<String> {
    let text = template_text("Cargo.lock");
    let separator = "\n[[package]]\n";
    let mut blocks = text.split(separator);
    let header = blocks.next().unwrap_or_default();
    let mut packages: Vec<String> = blocks.map(str::to_owned).collect();
    let starter = format!("name = \"{TEMPLATE_PACKAGE}\"\n");
    let renamed = packages
        .iter_mut()
        .find(|block| block.starts_with(&starter))
        .context("internal: the embedded Cargo.lock has no policy-starter package")?;
    *renamed = renamed.replacen(&starter, &format!("name = \"{name}\"\n"), 1);
    // A stable sort: two versions of one crate keep their order.
    packages.sort_by(|a, b| package_name(a).cmp(package_name(b)));
    let mut lock = header.to_owned();
    for block in &packages {
        lock.push_str(separator);
        lock.push_str(block);
    }
    Ok(lock)
}

fn package_name(block: &str) -> &str {
    block
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_default()
}

/// A vendored manifest without `*.workspace = true`: the values are those
/// of the qserve workspace it was built in.
fn standalone_manifest(text: &str, file: &str) -> anyhow::Result<String> {
    let mut out = text.to_owned();
    for (inherited, value) in WORKSPACE_KEYS {
        out = out.replace(inherited, value);
    }
    anyhow::ensure!(
        !out.contains("workspace = true") && !out.contains(".workspace"),
        "internal: {file} inherits a workspace key this command does not know"
    );
    Ok(out)
}

fn template_text(path: &str) -> &'static str {
    TEMPLATE
        .iter()
        .find(|file| file.path == path)
        .map(|file| file.text)
        .unwrap_or_else(|| panic!("{path} is embedded"))
}

/// Every file of the new crate: (relative path, contents).
fn crate_files(name: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut files = Vec::new();
    for file in TEMPLATE {
        let text = match file.path {
            "Cargo.toml" => policy_manifest(name)?,
            "Cargo.lock" => policy_lock(name)?,
            _ => file.text.to_owned(),
        };
        files.push((file.path, text));
    }
    for file in VENDORED {
        let text = if file.path.ends_with("Cargo.toml") {
            standalone_manifest(file.text, file.path)?
        } else {
            file.text.to_owned()
        };
        files.push((file.path, text));
    }
    Ok(files)
}

/// Refuses a directory that exists and is not empty (a file, or a
/// directory with anything in it): nothing of an author's is overwritten.
fn check_destination(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            anyhow::ensure!(
                entries.next().is_none(),
                "{} exists and is not empty: choose another NAME or --dir",
                dir.display()
            );
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
            anyhow::bail!("{} exists and is not a directory", dir.display())
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Writes the crate into `dir` (checked first: see [`check_destination`]).
pub fn write_crate(name: &str, dir: &Path) -> anyhow::Result<()> {
    check_name(name)?;
    check_destination(dir)?;
    // Every file is made before anything is written.
    let files = crate_files(name)?;
    for (path, text) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(())
}

pub fn run(name: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    write_crate(name, &dir)?;
    // Absolute, so that every next command works from wherever it is run.
    let dir = dir.canonicalize().unwrap_or(dir);
    let shown = dir.display();
    let module = name.replace('-', "_");
    println!("Created the policy crate `{name}` in {shown}");
    println!("(src/lib.rs is the policy, cases.toml its case table; vendor/ holds the");
    println!("qserve-policy SDK and wit/ the contract it builds against.)");
    println!();
    println!("Next:");
    println!("  (cd {shown} && cargo test)    # its unit tests, natively");
    println!();
    println!(
        "  # build the component with a qserve checkout (finds or installs the Wasm toolchain):"
    );
    println!("  path/to/qserve/guest/build.sh --policy {shown}");
    println!("  # or with rustup and wasm-tools, in {shown}:");
    println!("  #   rustup target add wasm32-unknown-unknown");
    println!("  #   cargo build --release --target wasm32-unknown-unknown");
    println!("  #   wasm-tools component new target/wasm32-unknown-unknown/release/{module}.wasm -o target/{name}.wasm");
    println!();
    println!("  qserve-host policy test {shown}/target/{name}.wasm {shown}/cases.toml");
    println!("  qserve-host --component {shown}/target/{name}.wasm --policy-config FILE   # a daemon on it");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Files under `dir` (relative, `/`-separated), skipping `target`.
    fn files_under(dir: &Path) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path.file_name().unwrap() != "target" {
                        walk(root, &path, out);
                    }
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    out.insert(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(dir, dir, &mut out);
        out
    }

    /// The embedded files are exactly those of the source directories, with
    /// the same contents: a file added to the template, the SDK, its logic
    /// crate or the WIT must be added here too, or `policy new` writes a crate
    /// that differs from (or does not build like) the checkout's.
    #[test]
    fn the_embedded_files_are_the_template_sdk_and_wit_of_the_checkout() {
        for (source, prefix, list) in [
            ("guest/templates/policy-starter", "", TEMPLATE),
            ("guest/sdk", "vendor/sdk/", VENDORED),
            ("guest/policy-logic", "vendor/policy-logic/", VENDORED),
            ("wit/policy", "wit/policy/", VENDORED),
        ] {
            let on_disk = files_under(&repo().join(source));
            let embedded: BTreeSet<String> = list
                .iter()
                .filter_map(|file| file.path.strip_prefix(prefix))
                .map(str::to_owned)
                .collect();
            assert_eq!(embedded, on_disk, "{source}: embedded vs on disk");
            for path in &on_disk {
                let embedded = list
                    .iter()
                    .find(|file| file.path == format!("{prefix}{path}"))
                    .unwrap();
                let disk = std::fs::read_to_string(repo().join(source).join(path)).unwrap();
                assert_eq!(embedded.text, disk, "{source}/{path}");
            }
        }
    }

    #[test]
    fn the_generated_crate_is_renamed_and_depends_on_nothing_outside_it() {
        let files = crate_files("my-policy").unwrap();
        let get = |path: &str| &files.iter().find(|(p, _)| *p == path).unwrap().1;
        let manifest = get("Cargo.toml");
        assert!(manifest.contains(r#"name = "my-policy""#), "{manifest}");
        assert!(manifest.contains(VENDORED_SDK_DEPENDENCY), "{manifest}");
        assert!(manifest.contains("[workspace]"), "{manifest}");
        for (path, text) in &files {
            if path.ends_with("Cargo.toml") {
                assert!(!text.contains("workspace = true"), "{path}: {text}");
                assert!(!text.contains("../../sdk"), "{path}: {text}");
            }
        }
        let lock = get("Cargo.lock");
        assert!(lock.contains("name = \"my-policy\"\n"), "{lock}");
        assert!(!lock.contains("policy-starter"), "{lock}");
        let names: Vec<&str> = lock
            .split("\n[[package]]\n")
            .skip(1)
            .map(package_name)
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "the lock's packages stay in Cargo's order");
    }

    #[test]
    fn bad_names_are_refused_and_nothing_is_written() {
        let temp = tempfile::tempdir().unwrap();
        for name in [
            "",
            "1policy",
            "my policy",
            "../escape",
            "my/policy",
            "fn",
            "test",
            "qserve-policy",
            "é",
        ] {
            let dir = temp.path().join("out");
            assert!(write_crate(name, &dir).is_err(), "{name:?} accepted");
            assert!(!dir.exists(), "{name:?}: something was written");
        }
        for name in ["my-policy", "p", "Policy_2"] {
            check_name(name).unwrap();
        }
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("mine.txt"), "keep").unwrap();
        let err = write_crate("my-policy", temp.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(
            files_under(temp.path()),
            BTreeSet::from(["mine.txt".to_owned()])
        );
        // An empty directory is fine.
        let empty = temp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        write_crate("my-policy", &empty).unwrap();
        assert!(empty.join("vendor/sdk/src/lib.rs").is_file());
        assert!(empty.join("wit/policy/policy.wit").is_file());
    }
}
