//! The policy author's tools through the real binary: `policy test` (with
//! its failure output), `policy eval`, `policy replay` over a log the daemon
//! recorded, and shadow mode on a live daemon.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use serde_json::Value;

use qserve_e2e::binaries::run_qserve_host as qserve_host;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

#[test]
fn every_shipped_policy_passes_its_case_table() {
    for (policy, table) in [
        ("builtin:default", "tests/policy-cases/default.toml"),
        ("builtin:readonly", "tests/policy-cases/readonly.toml"),
    ] {
        let table = repo_file(table);
        let (code, out, err) = qserve_host(&["policy", "test", policy, table.to_str().unwrap()]);
        assert_eq!(code, 0, "{policy}: {out}{err}");
        assert!(out.contains(" passed, 0 failed"), "{out}");
        assert!(!err.contains("INFO"), "no INFO lines: {err}");
    }
}

#[test]
fn builtin_rules_passes_its_table_through_the_component_and_reports_coverage() {
    let table = repo_file("tests/policy-cases/rules.toml");
    let config = repo_file("guest/rules-logic/examples/rules.toml");
    let (code, out, err) = qserve_host(&[
        "policy",
        "test",
        "builtin:rules",
        table.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--coverage",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // The example's rules no case of the table exercises, by name.
    assert!(out.contains("rules decided no case"), "{out}");
    assert!(out.contains(r#"allow rule "Bash(ls)""#), "{out}");
    assert!(
        !out.contains(r#"deny rule "Bash(rm -rf)""#),
        "exercised: {out}"
    );
}

#[test]
fn cedar_and_rules_agree_on_the_shared_table_and_a_bad_policy_set_is_refused() {
    let table = repo_file("tests/policy-cases/equivalent.toml");
    for (policy, config) in [
        ("builtin:rules", "tests/policy-cases/equivalent.rules.toml"),
        ("builtin:cedar", "guest/cedar-logic/examples/policy.cedar"),
    ] {
        let config = repo_file(config);
        let (code, out, err) = qserve_host(&[
            "policy",
            "test",
            policy,
            table.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{policy}: {out}{err}");
        assert!(out.contains("11 passed, 0 failed"), "{policy}: {out}");
    }
    // A policy set that does not validate against the schema is refused at
    // load with Cedar's own message.
    let dir = tempdir();
    let bad = dir.path().join("bad.cedar");
    std::fs::write(
        &bad,
        "permit (principal, action == Qserve::Action::\"execute\", resource) when { resource.commandz == \"x\" };",
    )
    .unwrap();
    let (code, _, err) = qserve_host(&[
        "--policy-config",
        bad.to_str().unwrap(),
        "policy",
        "check",
        "builtin:cedar",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("commandz"), "Cedar's message: {err}");
}

#[test]
fn a_failing_case_prints_expected_got_and_the_reason_and_exits_1() {
    let dir = tempdir();
    let table = dir.path().join("cases.toml");
    std::fs::write(
        &table,
        r#"version = 1
[[case]]
name = "edits are allowed once (wrong for default)"
kind = "permission"
call = { kind = "edit", title = "x" }
expect = "select"
option = "allow_once"

[[case]]
name = "sessions are admitted"
kind = "session"
expect = "allow"
"#,
    )
    .unwrap();
    let (code, out, _) =
        qserve_host(&["policy", "test", "builtin:default", table.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  edits are allowed once (wrong for default)"),
        "{out}"
    );
    assert!(out.contains("expected: select allow_once"), "{out}");
    assert!(out.contains("got:      ask"), "{out}");
    assert!(
        out.contains("asking the clients"),
        "the policy's reason: {out}"
    );
    assert!(
        out.trim_end().ends_with("policy test: 1 passed, 1 failed"),
        "{out}"
    );

    // A misspelt expectation is an error, never a pass.
    std::fs::write(
        &table,
        "version = 1\n[[case]]\nname = \"x\"\nkind = \"session\"\nexpcet = \"allow\"\n",
    )
    .unwrap();
    let (code, _, err) =
        qserve_host(&["policy", "test", "builtin:default", table.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown field `expcet`"), "{err}");
}

#[test]
fn eval_prints_one_decision_with_its_reason_and_latency() {
    let dir = tempdir();
    let input = dir.path().join("call.json");
    std::fs::write(
        &input,
        r#"{"kind": "permission", "context": {"workspace": "/w"},
            "call": {"kind": "execute", "title": "Shell", "command": "git push"}}"#,
    )
    .unwrap();
    let (code, out, err) = qserve_host(&[
        "policy",
        "eval",
        "builtin:readonly",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verdict: reject"), "{out}");
    assert!(
        out.contains("reason:  the readonly policy rejects execute tools"),
        "{out}"
    );
    assert!(out.contains("latency: ") && out.contains(" ms"), "{out}");
    assert!(out.contains("policy:  readonly"), "{out}");
}

/// A daemon with a decision log, on select-first, and (optionally) a shadow.
async fn recording_daemon(log: &Path, shadow: Option<&str>) -> Daemon {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            guest_component("policy-select-first").to_str().unwrap(),
            "--decision-log",
            log.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    if let Some(shadow) = shadow {
        options
            .args
            .extend(["--shadow-component".to_owned(), shadow.to_owned()]);
    }
    Daemon::start(options).await
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn wait_for_records(path: &Path, n: usize, with_shadow: bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = records(path);
        let ready =
            found.len() >= n && (!with_shadow || found.iter().all(|r| r.get("shadow").is_some()));
        if ready || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replay_finds_no_difference_against_the_same_policy_and_the_expected_ones_against_readonly()
{
    let dir = tempdir();
    let log = dir.path().join("decisions.jsonl");
    let ws = tempdir();
    std::fs::write(ws.path().join("a.txt"), "a\n").unwrap();
    {
        let daemon = recording_daemon(&log, None).await;
        let (session, _) = create(&daemon, ws.path()).await;
        let mut events = daemon.subscribe(&session, None).await;
        for text in ["permission edit", "permission read", "permission execute"] {
            prompt_ok(&daemon, &session, text).await;
            wait_chunk(&mut events, "outcome: selected proceed_once").await;
        }
        let path = ws.path().join("a.txt");
        prompt_ok(&daemon, &session, &format!("read {}", path.display())).await;
        wait_event(&mut events, "session_update", |e| {
            chunk_text(e).is_some_and(|t| t.starts_with("read: ok"))
        })
        .await;
        wait_for_records(&log, 5, false).await;
    }
    let select_first = guest_component("policy-select-first");
    let (code, out, err) = qserve_host(&[
        "policy",
        "replay",
        select_first.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed 5 decisions"), "{out}");
    assert!(out.contains("differences: 0"), "{out}");

    let (code, out, err) = qserve_host(&[
        "policy",
        "replay",
        "builtin:readonly",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // readonly rejects the edit and the execute, allows the read (once) and
    // the file read inside the workspace, and admits the session.
    assert!(out.contains("differences: 2"), "{out}");
    assert!(out.contains("select → reject: 2"), "{out}");
    assert!(out.contains("permission edit"), "{out}");
    assert!(out.contains("permission execute"), "{out}");
}

#[tokio::test]
async fn a_shadow_policy_is_recorded_and_never_acted_on() {
    let dir = tempdir();
    let log = dir.path().join("decisions.jsonl");
    let daemon = recording_daemon(&log, Some("builtin:readonly")).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;
    prompt_ok(&daemon, &session, "permission edit").await;
    // The agent gets the active policy's answer…
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
    // …and the log shows what the shadow would have done.
    let found = wait_for_records(&log, 2, true).await;
    let permission = found
        .iter()
        .find(|r| r["kind"] == "permission")
        .expect("a permission record");
    assert_eq!(permission["verdict"], "selected");
    assert_eq!(permission["optionId"], "proceed_once");
    assert_eq!(permission["shadow"]["verdict"], "reject", "{permission}");
    assert_eq!(permission["shadow"]["policy"]["name"], "readonly");
    assert!(permission["shadow"]["reason"]
        .as_str()
        .unwrap()
        .contains("rejects edit"));
    let session_record = found
        .iter()
        .find(|r| r["kind"] == "session_create")
        .unwrap();
    assert_eq!(session_record["shadow"]["verdict"], "allow");
}

#[tokio::test]
async fn builtin_rules_decides_live_and_a_config_whose_example_fails_is_refused_on_reload() {
    let config = repo_file("guest/rules-logic/examples/rules.toml");
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            "builtin:rules",
            "--policy-config",
            config.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    options
        .envs
        .push(("QSERVE_ADMIN_TOKEN".into(), "rules-admin".into()));
    // A debug build compiles builtin:rules (1.7 MB) in tens of seconds when
    // the shared cache is cold (scripts/test.sh warms it first).
    options.startup_timeout = Duration::from_secs(300);
    let daemon = Daemon::start(options).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;
    // A read inside the workspace: allowed by the rules, no client asked.
    prompt_ok(&daemon, &session, "permission read").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
    // An edit: asked.
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
    daemon
        .post_json(
            &format!("/permission/{request_id}"),
            &serde_json::json!({"outcome": {"outcome": "cancelled"}}),
        )
        .await;
    assert!(edit.await.unwrap().is_success());

    // A reload whose [[example]] does not hold is refused; the rules stay.
    let broken = "deny = [\"Bash(git push)\"]\n[[example]]\nname = \"push is fine\"\ntool = \"Bash\"\ncommand = \"git push\"\nexpect = \"allow\"\n";
    let response = daemon
        .http()
        .put(daemon.url("/admin/policy"))
        .bearer_auth("rules-admin")
        .json(&serde_json::json!({"config": broken}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("push is fine"),
        "{body}"
    );
    prompt_ok(&daemon, &session, "permission read").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
}
