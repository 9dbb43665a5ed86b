//! Policies in Rust, Python and JavaScript pass one case table
//! (examples/policies/cases.toml) under `qserve-host policy test`, and a
//! Python policy decides a live agent's permission in the daemon.
//!
//! The components come from `scripts/build-example-policies.sh` (which
//! scripts/test.sh runs before the tests): a missing one fails the test,
//! naming the command that builds it. A test that skipped would let CI pass
//! with the Python and JavaScript toolchains broken.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use std::time::Duration;

use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

use qserve_e2e::binaries::run_qserve_host as qserve_host;

/// A built example component; panics (never skips) when it is missing.
fn example(name: &str) -> PathBuf {
    let path = repo_file(&format!("target/example-policies/{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build it with `bash scripts/build-example-policies.sh` \
         (scripts/test.sh does; a missing registry package is an error there)",
        path.display()
    );
    path
}

fn passes_the_shared_table(component: &Path) {
    let table = repo_file("examples/policies/cases.toml");
    let (code, out, err) = qserve_host(&[
        "policy",
        "test",
        component.to_str().unwrap(),
        table.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{}:\n{out}{err}", component.display());
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // Every case ran: the table has 30-odd; a parse that dropped them would
    // pass with none.
    let passed: usize = out
        .lines()
        .find_map(|line| line.strip_prefix("policy test: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 30, "only {passed} cases ran: {out}");
}

#[test]
fn the_rust_example_passes_the_shared_table() {
    passes_the_shared_table(&example("policy-rust"));
}

#[test]
fn the_python_example_passes_the_same_table() {
    passes_the_shared_table(&example("policy-python"));
}

#[test]
fn the_javascript_example_passes_the_same_table() {
    passes_the_shared_table(&example("policy-js"));
}

/// The starter every `policy new` crate begins from (built by
/// guest/build.sh into target/guests) passes the table it ships with.
#[test]
fn the_starter_passes_its_own_table() {
    let component = repo_file("target/guests/policy-starter.wasm");
    assert!(
        component.is_file(),
        "{} is missing: run `bash guest/build.sh`",
        component.display()
    );
    let table = repo_file("guest/templates/policy-starter/cases.toml");
    let (code, out, err) = qserve_host(&[
        "policy",
        "test",
        component.to_str().unwrap(),
        table.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 passed, 0 failed"), "{out}");
}

/// The Python policy on a live daemon: the fake agent's read is answered by
/// the policy itself (its allow-once option, its reason, its name in the
/// `policy_decision` event), and an edit still goes to the clients.
#[tokio::test]
async fn a_python_policy_decides_a_live_agents_permissions() {
    let component = example("policy-python");
    let workspace = tempdir();
    let config = workspace.path().join("policy.json");
    std::fs::write(&config, r#"{"deny_commands": ["rm "]}"#).unwrap();
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            component.to_str().unwrap(),
            "--policy-config",
            config.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    // A componentize-py component is tens of MB: a debug build compiles it
    // for a while when the shared cache is cold.
    options.startup_timeout = Duration::from_secs(300);
    let daemon = Daemon::start(options).await;
    let (session, _) = create(&daemon, workspace.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    prompt_ok(&daemon, &session, "permission read").await;
    let decided = wait_event(&mut events, "policy_decision", |e| {
        e["data"]["kind"] == "permission"
    })
    .await;
    assert_eq!(decided["data"]["verdict"], "select", "{decided}");
    assert_eq!(decided["data"]["optionId"], "proceed_once", "{decided}");
    assert_eq!(decided["data"]["reason"], "reads are allowed", "{decided}");
    assert_eq!(
        decided["data"]["policy"]["name"], "example-python",
        "{decided}"
    );
    wait_chunk(&mut events, "outcome: selected proceed_once").await;

    // An edit: the policy asks the clients; a client answers.
    let edit = {
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        tokio::spawn(async move {
            http.post(url)
                .json(&serde_json::json!({"prompt": [{"type": "text", "text": "permission edit"}]}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let asked = wait_event(&mut events, "permission_request", |_| true).await;
    let request_id = asked["data"]["requestId"].as_str().unwrap().to_owned();
    daemon.vote(&request_id, "cancel").await;
    wait_chunk(&mut events, "outcome: selected cancel").await;
    assert!(edit.await.unwrap().is_success());
}
