//! The real `qwen --acp` (from npm) behind the real daemon, its model a
//! scripted mock on loopback: a prompt streams text; a write raises a
//! permission request that the clients vote on — allow lands the file,
//! reject leaves none; SIGTERM leaves none of qwen's processes behind.
//!
//! Skips loudly where qwen is not installed (`bash scripts/npm-deps.sh`),
//! except under CI=true, where it fails.

mod common;

use std::time::Duration;

use common::{chunk_text, wait_event};
use nix::sys::signal::Signal;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::mock_openai::{MockOpenAi, HELLO_TEXT};
use qserve_e2e::process_group::processes_with_home;
use qserve_e2e::real_agent::{qwen_available_or_skip, RealAgentEnv};
use qserve_e2e::real_agent_suite::wait_until;
use qserve_e2e::sse::SseStream;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A write through the real agent: prompt, wait for its permission request,
/// vote `option`, and return the prompt's answer.
async fn write_with_vote(
    daemon: &Daemon,
    events: &mut SseStream,
    session: &str,
    path: &std::path::Path,
    option: &str,
) -> Value {
    let prompt = {
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        let text = format!("write {} hello from the real agent", path.display());
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({ "prompt": [{ "type": "text", "text": text }] }))
                .send()
                .await
                .expect("prompt");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        })
    };
    let request = wait_event(events, "permission_request", |_| true).await;
    let data = &request["data"];
    assert_eq!(data["toolCall"]["kind"], "edit", "{request}");
    let offered: Vec<&str> = data["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["optionId"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"proceed_once") && offered.contains(&"cancel"),
        "{offered:?}"
    );
    let (status, body) = daemon
        .post_json(
            &format!("/permission/{}", data["requestId"].as_str().unwrap()),
            &json!({ "outcome": { "outcome": "selected", "optionId": option } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::timeout(Duration::from_secs(120), prompt)
        .await
        .expect("the turn ends after the vote")
        .unwrap()
}

#[tokio::test]
async fn real_qwen_streams_asks_permission_and_writes_only_when_allowed() {
    if !qwen_available_or_skip("real_qwen_streams_asks_permission_and_writes_only_when_allowed") {
        return;
    }
    let mock = MockOpenAi::start().expect("mock model");
    let agent = RealAgentEnv::new(&mock.base_url());
    // The harness gives the cold start of qwen's three node processes a long --init-timeout.
    let mut daemon = Daemon::start(DaemonOptions::with_real_agent(&agent)).await;

    let workspace = agent.workspace();
    let (status, created) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": workspace.display().to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}\n{}", daemon.log());
    let session = created["sessionId"].as_str().unwrap().to_owned();
    let mut events = daemon.subscribe(&session, Some("0")).await;

    let (status, answer) = tokio::time::timeout(
        Duration::from_secs(120),
        common::prompt(&daemon, &session, "say hello"),
    )
    .await
    .expect("the first turn ends");
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", daemon.log());
    assert_eq!(answer["stopReason"], "end_turn");
    let mut text = String::new();
    while !text.contains(HELLO_TEXT) {
        let chunk = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
        text.push_str(chunk_text(&chunk).unwrap());
    }

    let allowed = workspace.join("allowed.txt");
    let answer = write_with_vote(&daemon, &mut events, &session, &allowed, "proceed_once").await;
    assert_eq!(answer["stopReason"], "end_turn");
    assert_eq!(
        std::fs::read_to_string(&allowed).expect("the allowed write landed"),
        "hello from the real agent"
    );

    let refused = workspace.join("refused.txt");
    let answer = write_with_vote(&daemon, &mut events, &session, &refused, "cancel").await;
    assert_eq!(answer["stopReason"], "end_turn");
    assert!(!refused.exists(), "a rejected write leaves no file");

    assert!(
        !processes_with_home(&agent.home()).is_empty(),
        "qwen is running"
    );
    daemon.signal(Signal::SIGTERM);
    let exit = daemon
        .wait_for_exit(Duration::from_secs(30))
        .await
        .expect("daemon exits");
    assert_eq!(exit.code(), Some(0), "{}", daemon.log());
    let left = processes_with_home(&agent.home());
    assert!(
        left.is_empty(),
        "qwen processes outlived the daemon: {left:?}"
    );
}

/// qwen's package default approval mode is `auto`: it writes files without ever sending
/// `session/request_permission`, so neither the policy nor the clients would see the write.
/// The daemon puts every session in the agent's asking mode (`session/set_mode` to `default`),
/// and the policy's context names that mode. The same daemon also serves the fake agent under
/// the name `fake`: a session on it in the same workspace runs in its own child, on its own
/// stream, and the policy's context names each session's agent.
#[tokio::test]
async fn with_qwens_package_defaults_a_write_still_asks_because_the_daemon_sets_the_asking_mode() {
    if !qwen_available_or_skip("with_qwens_package_defaults_a_write_still_asks") {
        return;
    }
    let mock = MockOpenAi::start().expect("mock model");
    let agent = RealAgentEnv::new(&mock.base_url());
    agent.use_qwen_package_default_approval();
    let log_dir = tempfile::tempdir().unwrap();
    let decision_log = log_dir.path().join("decisions.jsonl");
    let mut options = DaemonOptions::with_real_agent(&agent);
    options.args.extend([
        "--decision-log".to_string(),
        decision_log.display().to_string(),
        "--agent-def".to_string(),
        format!("fake={}", qserve_e2e::fake_agent_path().display()),
    ]);
    let daemon = Daemon::start(options).await;

    let workspace = agent.workspace();
    let (status, on_fake) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": workspace.display().to_string(), "agent": "fake" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{on_fake}\n{}", daemon.log());
    assert_eq!(on_fake["agent"], "fake");
    let fake_session = on_fake["sessionId"].as_str().unwrap().to_owned();
    let mut fake_events = daemon.subscribe(&fake_session, Some("0")).await;
    let (status, _) = common::prompt(&daemon, &fake_session, "echo from the fake agent").await;
    assert_eq!(status, StatusCode::OK);
    let chunk = wait_event(&mut fake_events, "session_update", |e| {
        chunk_text(e).is_some()
    })
    .await;
    assert_eq!(chunk_text(&chunk), Some("from the fake agent"));

    let (status, created) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": workspace.display().to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}\n{}", daemon.log());
    let session = created["sessionId"].as_str().unwrap().to_owned();
    let mut events = daemon.subscribe(&session, Some("0")).await;

    let target = workspace.join("asked.txt");
    let answer = write_with_vote(&daemon, &mut events, &session, &target, "cancel").await;
    assert_eq!(answer["stopReason"], "end_turn");
    assert!(!target.exists(), "the write was asked about and refused");

    // The record is written by the log's own thread: wait for it.
    let permission = || {
        std::fs::read_to_string(&decision_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|record| record["kind"] == "permission")
    };
    wait_until("the permission decision is logged", || {
        permission().is_some()
    })
    .await
    .unwrap();
    let permission = permission().unwrap();
    assert_eq!(permission["agent"]["mode"], "default", "{permission}");
    assert_eq!(permission["agent"]["name"], "default", "{permission}");
    assert_ne!(session, fake_session);
    let created_on: Vec<Value> = std::fs::read_to_string(&decision_log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["kind"] == "session_create")
        .map(|record| record["agent"]["name"].clone())
        .collect();
    assert!(
        created_on.contains(&json!("fake")) && created_on.contains(&json!("default")),
        "{created_on:?}"
    );
    // Two agents, two children (qwen runs as node processes).
    let cmdline = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default()
    };
    // Each agent runs under a guard (`qserve-agent-guard …`, whose argv
    // repeats the agent's command line): count the agents themselves.
    let children: Vec<u32> = daemon
        .descendant_pids()
        .into_iter()
        .filter(|pid| !cmdline(pid).starts_with("qserve-agent-guard"))
        .collect();
    let fake = children
        .iter()
        .filter(|pid| cmdline(pid).contains("fake-agent"))
        .count();
    let qwen = children
        .iter()
        .filter(|pid| cmdline(pid).contains("qwen"))
        .count();
    assert!(
        fake == 1 && qwen >= 1,
        "fake {fake}, qwen {qwen}: {children:?}"
    );
}
