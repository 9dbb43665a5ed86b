//! The real `DaemonClient` of `@qwen-code/sdk` against the real daemon: the compatibility
//! promise of PROTOCOL.md checked with the client users actually run, not with our reading of
//! it. The client is driven by tests/node/daemon-client-e2e.mjs (plain ESM, no build step);
//! this test starts the daemons it talks to (the fake ACP agent behind them), runs it with
//! node and asserts on its exit code and its JSON report.
//!
//! Needs node >= 20 (`QSERVE_E2E_NODE` names another binary than the `node` on PATH) and the
//! npm packages of scripts/npm-deps.sh. Without them the test says SKIPPED loudly and passes —
//! except under `CI=true`, where a missing client is a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::process_group::own_group;
use serde_json::Value;

/// The token of the daemon that requires one.
const TOKEN: &str = "e2e-daemon-client-token";

/// Longer than the script's own watchdog, so that a hang is reported by the script first.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(58);

/// Every check the script must report, in its order: a check that silently went missing
/// from the script fails here instead of passing unseen.
const EXPECTED_CHECKS: &[&str] = &[
    "capabilities",
    "create_session",
    "attach_session",
    "session_scope_thread",
    "subscribe_and_prompt",
    "reconnect_with_last_event_id",
    "invalid_option_id_is_400",
    "permission_vote_race",
    "cancel",
    "list_workspace_sessions",
    "set_session_model",
    "close_session",
    "wrong_token_is_401",
    "right_token_works",
    "origin_header_is_403",
    "foreign_host_is_403",
];

fn tests_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script_path() -> PathBuf {
    tests_dir().join("node/daemon-client-e2e.mjs")
}

fn node_binary() -> std::ffi::OsString {
    std::env::var_os("QSERVE_E2E_NODE").unwrap_or_else(|| "node".into())
}

fn npm_dir() -> PathBuf {
    tests_dir().join("npm")
}

/// Why the client cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let sdk_manifest = npm_dir().join("node_modules/@qwen-code/sdk/package.json");
    match std::process::Command::new(node_binary())
        .arg("--version")
        .output()
    {
        Err(error) => return Some(format!("cannot run {:?} ({error})", node_binary())),
        Ok(output) => {
            let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let major: u32 = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|major| major.parse().ok())
                .unwrap_or(0);
            if !output.status.success() || major < 20 {
                return Some(format!("node >= 20 is needed, found {version:?}"));
            }
        }
    }
    (!sdk_manifest.exists()).then(|| format!("{} does not exist", sdk_manifest.display()))
}

/// Whether the test can run; prints a loud SKIPPED line when not, and panics instead under
/// `CI=true`, where a missing client means a broken setup.
fn client_available_or_skip(test_name: &str) -> bool {
    let Some(reason) = missing_prerequisite() else {
        return true;
    };
    let message = format!("{reason} — run scripts/npm-deps.sh");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{test_name}: {message} (CI=true: a missing client is a failure, not a skip)");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    let rule = "=".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED {test_name}: {message}\n{rule}\n"
    );
    false
}

/// What one run of the script produced.
struct ScriptRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl ScriptRun {
    /// The report: the last stdout line that parses as JSON.
    fn report(&self) -> Option<Value> {
        self.stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
    }
}

async fn run_script(open: &Daemon, guarded: &Daemon, workspace: &Path) -> ScriptRun {
    let mut command = tokio::process::Command::new(node_binary());
    command
        .arg(script_path())
        .env("QSERVE_E2E_BASE_URL", open.base_url())
        .env("QSERVE_E2E_AUTH_BASE_URL", guarded.base_url())
        .env("QSERVE_E2E_TOKEN", TOKEN)
        .env("QSERVE_E2E_WORKSPACE", workspace)
        .env("QSERVE_E2E_NPM_DIR", npm_dir())
        .env_remove("QWEN_SERVER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    own_group(&mut command);
    let child = command.spawn().expect("spawning node");
    // On timeout the future drops the child, and kill_on_drop ends it.
    let output = tokio::time::timeout(SCRIPT_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "node {} ran over {SCRIPT_DEADLINE:?}",
                script_path().display()
            )
        })
        .expect("waiting for node");
    ScriptRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_real_daemon_client_of_the_sdk_works_against_the_daemon() {
    if !client_available_or_skip("the_real_daemon_client_of_the_sdk_works_against_the_daemon") {
        return;
    }
    let open = daemon(&[], &[]).await;
    let mut guarded_options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    guarded_options.token = Some(TOKEN.to_string());
    let guarded = Daemon::start(guarded_options).await;
    let workspace = tempdir();

    let run = run_script(&open, &guarded, workspace.path()).await;
    let context = || {
        format!(
            "exit code {:?}\n--- script stdout ---\n{}\n--- script stderr ---\n{}\n--- open daemon ---\n{}\n--- token daemon ---\n{}",
            run.code,
            run.stdout,
            run.stderr,
            open.log(),
            guarded.log()
        )
    };
    let report = run
        .report()
        .unwrap_or_else(|| panic!("the script printed no JSON report\n{}", context()));

    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|check| check["ok"] != true)
        .collect();
    assert!(
        failed.is_empty(),
        "checks failed with the real DaemonClient: {}\n{}",
        serde_json::to_string_pretty(&failed).unwrap(),
        context()
    );
    let names: Vec<&str> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|check| check["name"].as_str())
        .collect();
    assert_eq!(names, EXPECTED_CHECKS, "the checks that ran\n{}", context());
    assert_eq!(report["ok"], true, "{}", context());
    assert_eq!(run.code, Some(0), "{}", context());
}
