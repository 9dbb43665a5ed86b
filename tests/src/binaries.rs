//! Finds the workspace binaries the e2e tests run, building them when needed.
//!
//! Integration tests of this crate are compiled by cargo, but qserve-host is another package's
//! binary and cargo does not rebuild it for `cargo test -p qserve-e2e`. So the first test of a
//! process that needs it runs `cargo build -p qserve-host` once (a no-op when it is fresh):
//! a test must never pass or fail against a stale daemon. Set `QSERVE_HOST_BIN` to use a given
//! binary instead (a release build for benchmarks, say).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The qserve-host binary, fresh for this checkout.
pub fn qserve_host_path() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // The outcome, failure included, is kept: one failed build per process, not one per test.
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("QSERVE_HOST_BIN") {
            return Ok(PathBuf::from(path));
        }
        cargo_build(&["-p", "qserve-host", "--bin", "qserve-host"])?;
        expect_binary("qserve-host")
    })
    .clone()
    .unwrap_or_else(|error| panic!("{error}"))
}

/// The fake ACP agent of this crate. `cargo test -p qserve-e2e` builds it before running the
/// integration tests; only when it is missing (a lone unit test run) is it built here.
pub fn fake_agent_path() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        if !profile_dir().join("fake-agent").exists() {
            cargo_build(&["-p", "qserve-e2e", "--bin", "fake-agent"])?;
        }
        expect_binary("fake-agent")
    })
    .clone()
    .unwrap_or_else(|error| panic!("{error}"))
}

/// `target/<profile>`: the test executable lives in its `deps/` subdirectory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe.parent().expect("the test executable is in a directory");
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn expect_binary(name: &str) -> Result<PathBuf, String> {
    let path = profile_dir().join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} does not exist even after building it: run `cargo build -p qserve-host -p qserve-e2e` and look at its errors",
            path.display()
        ))
    }
}

/// Runs `cargo build ARGS` for the profile this test was built with (the target dir follows
/// from the inherited `CARGO_TARGET_DIR`, as it did for the test); the error carries cargo's
/// output.
fn cargo_build(args: &[&str]) -> Result<(), String> {
    let profile_dir = profile_dir();
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug")
        .to_string();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .args(args)
        .current_dir(workspace_root());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    eprintln!("e2e: building {args:?} (profile {profile}) once for this test process");
    let output = command
        .output()
        .map_err(|error| format!("running cargo: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
}

/// Runs `qserve-host ARGS` (a subcommand such as `policy test`) on the
/// tests' shared component cache, without the caller's policy variables:
/// (exit code, stdout, stderr).
pub fn run_qserve_host(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(qserve_host_path())
        .args(args)
        .env("QSERVE_CACHE_DIR", crate::daemon::shared_component_cache())
        .env_remove("QSERVE_COMPONENT")
        .env_remove("QSERVE_POLICY_CONFIG")
        .output()
        .expect("run qserve-host");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
