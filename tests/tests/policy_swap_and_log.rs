//! Hot swap (SIGHUP and `PUT /admin/policy`) and the decision log, through
//! the real binary and the fake agent: a swap is atomic (no request lost or
//! decided twice), a failed load keeps the old policy, every decision is one
//! JSON line and a `policy_decision` event.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN: &str = "admin-secret-7";

struct Setup {
    daemon: Daemon,
    config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A daemon on `policy-select-first` (its version comes from its config),
/// with a decision log and an admin token.
async fn setup(extra: &[&str]) -> Setup {
    let dir = tempdir();
    let config = dir.path().join("policy.conf");
    std::fs::write(&config, "version=1\n").unwrap();
    let log = dir.path().join("decisions.jsonl");
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            guest_component("policy-select-first").to_str().unwrap(),
            "--policy-config",
            config.to_str().unwrap(),
            "--decision-log",
            log.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    options.args.extend(extra.iter().map(|a| a.to_string()));
    options
        .envs
        .push(("QSERVE_ADMIN_TOKEN".into(), ADMIN.into()));
    let daemon = Daemon::start(options).await;
    Setup {
        daemon,
        config,
        log,
        _dir: dir,
    }
}

async fn admin_put(daemon: &Daemon, body: &Value) -> (StatusCode, Value) {
    let response = daemon
        .http()
        .put(daemon.url("/admin/policy"))
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn active_policy(daemon: &Daemon) -> Value {
    daemon.get_json("/capabilities").await.1["policy"].clone()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each decision-log line is JSON"))
        .collect()
}

/// Wait until the log has `n` records of `kind` (the writer is asynchronous).
async fn wait_records(path: &Path, kind: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found: Vec<Value> = records(path)
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect();
        if found.len() >= n || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_and_the_admin_route_swap_and_every_stream_is_told() {
    let s = setup(&[]).await;
    let ws = tempdir();
    let (session, _) = create(&s.daemon, ws.path()).await;
    let mut events = s.daemon.subscribe(&session, None).await;
    let first = active_policy(&s.daemon).await;
    assert_eq!(first["version"], "1");

    std::fs::write(&s.config, "version=2\n").unwrap();
    s.daemon.signal(Signal::SIGHUP);
    let changed = wait_event(&mut events, "policy_changed", |_| true).await;
    assert_eq!(changed["data"]["policy"]["version"], "2");
    assert_eq!(changed["data"]["previous"]["version"], "1");
    assert_eq!(active_policy(&s.daemon).await["version"], "2");

    // The config is kept unless replaced: readonly refuses select-first's.
    let (status, body) = admin_put(&s.daemon, &json!({"component": "builtin:readonly"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("takes no configuration"),
        "{body}"
    );
    let (status, body) = admin_put(
        &s.daemon,
        &json!({"component": "builtin:readonly", "config": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = wait_event(&mut events, "policy_changed", |_| true).await;
    assert_eq!(changed["data"]["policy"]["origin"], "builtin:readonly");
    let active = active_policy(&s.daemon).await;
    assert_eq!(active["origin"], "builtin:readonly");
    assert_eq!(active["sha256"].as_str().unwrap().len(), 64);
    // The new policy decides: readonly rejects an edit.
    let mut events = s.daemon.subscribe(&session, None).await;
    prompt_ok(&s.daemon, &session, "permission edit").await;
    wait_chunk(&mut events, "outcome: selected cancel").await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_old_policy_and_says_why() {
    let s = setup(&[]).await;
    let before = active_policy(&s.daemon).await;

    // Admin: a config the policy refuses, garbage bytes, a 0.1.0 component.
    let (status, body) = admin_put(&s.daemon, &json!({"config": "refuse-me"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "policy_load_failed");
    assert!(
        body["error"].as_str().unwrap().contains("refuse-me"),
        "{body}"
    );
    let garbage = s
        .daemon
        .http()
        .put(s.daemon.url("/admin/policy"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/wasm")
        .body(b"not a component".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let legacy = guest_component("policy-legacy-v0-1");
    let (status, body) = admin_put(
        &s.daemon,
        &json!({"component": legacy.display().to_string()}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("qserve:bridge@0.1.0") && message.contains("qserve:policy@0.2.0"),
        "{message}"
    );
    // The client token does not open the admin route.
    let response = s
        .daemon
        .http()
        .put(s.daemon.url("/admin/policy"))
        .json(&json!({"component": "builtin:readonly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // SIGHUP with a config the policy refuses.
    std::fs::write(&s.config, "refuse-me\n").unwrap();
    s.daemon.signal(Signal::SIGHUP);
    assert!(
        s.daemon
            .wait_for_log("the old policy stays active", WAIT)
            .await,
        "{}",
        s.daemon.log()
    );
    assert_eq!(active_policy(&s.daemon).await, before);
    // And it still decides.
    let ws = tempdir();
    let (session, _) = create(&s.daemon, ws.path()).await;
    let mut events = s.daemon.subscribe(&session, None).await;
    prompt_ok(&s.daemon, &session, "permission edit").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
}

#[tokio::test]
async fn every_decision_is_one_log_record_and_a_policy_decision_event() {
    let s = setup(&["--permission-timeout", "1"]).await;
    let ws = tempdir();
    std::fs::write(ws.path().join("a.txt"), "a\n").unwrap();
    let (session, _) = create(&s.daemon, ws.path()).await;
    let mut events = s.daemon.subscribe(&session, None).await;

    // 1. The policy selects: the clients see it as a policy_decision.
    prompt_ok(&s.daemon, &session, "permission edit").await;
    let decision = wait_event(&mut events, "policy_decision", |e| {
        e["data"]["kind"] == "permission"
    })
    .await;
    let data = &decision["data"];
    assert_eq!(data["verdict"], "select");
    assert_eq!(data["optionId"], "proceed_once");
    assert_eq!(data["source"], "policy");
    assert_eq!(data["reason"], "policy-select-first allowed");
    assert_eq!(data["policy"]["version"], "1");
    assert_eq!(data["toolCall"]["kind"], "edit");
    let location = &data["toolCall"]["locations"][0];
    assert_eq!(location["insideWorkspace"], true);
    wait_chunk(&mut events, "outcome: selected proceed_once").await;

    // 2. A file read: allowed, recorded with the resolved path.
    let path = ws.path().join("a.txt");
    prompt_ok(&s.daemon, &session, &format!("read {}", path.display())).await;
    let file = wait_event(&mut events, "policy_decision", |e| {
        e["data"]["kind"] == "file_access"
    })
    .await;
    assert_eq!(file["data"]["verdict"], "allow");
    assert_eq!(file["data"]["access"], "read");
    assert_eq!(
        file["data"]["path"]["resolved"],
        path.canonicalize().unwrap().display().to_string()
    );

    // 3. The default policy asks; a client votes; then one times out.
    let (status, _) = admin_put(
        &s.daemon,
        &json!({"component": "builtin:default", "config": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let voting = {
        let daemon_url = s.daemon.url("");
        let http = s.daemon.http().clone();
        let session = session.clone();
        tokio::spawn(async move {
            http.post(format!("{daemon_url}/session/{session}/prompt"))
                .json(&json!({"prompt": [{"type": "text", "text": "permission execute"}]}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let asked = wait_event(&mut events, "policy_decision", |e| {
        e["data"]["verdict"] == "ask"
    })
    .await;
    let request = wait_event(&mut events, "permission_request", |_| true).await;
    let request_id = request["data"]["requestId"].as_str().unwrap().to_owned();
    assert_eq!(asked["data"]["requestId"], request_id.as_str());
    let (status, _) = s.daemon.vote(&request_id, "proceed_always").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(voting.await.unwrap(), StatusCode::OK);
    wait_chunk(&mut events, "outcome: selected proceed_always").await;
    prompt_ok(&s.daemon, &session, "permission edit").await;
    wait_chunk(&mut events, "outcome: cancelled").await;

    let permissions = wait_records(&s.log, "permission", 3).await;
    assert_eq!(permissions.len(), 3, "{permissions:#?}");
    let [selected, voted, timed_out] = [&permissions[0], &permissions[1], &permissions[2]];
    assert_eq!(
        (
            selected["source"].as_str(),
            selected["verdict"].as_str(),
            selected["policyVerdict"].as_str()
        ),
        (Some("policy"), Some("selected"), Some("select"))
    );
    assert_eq!(selected["policy"]["name"], data["policy"]["name"]);
    assert_eq!(
        selected["workspace"],
        ws.path().canonicalize().unwrap().display().to_string()
    );
    assert_eq!(selected["agent"]["name"], "default");
    assert_eq!(selected["options"].as_array().unwrap().len(), 3);
    assert!(selected["latencyMs"].as_f64().unwrap() >= 0.0);
    assert!(selected["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            voted["source"].as_str(),
            voted["optionId"].as_str(),
            voted["policyVerdict"].as_str()
        ),
        (Some("client"), Some("proceed_always"), Some("ask"))
    );
    assert_eq!(voted["requestId"], request_id.as_str());
    assert_eq!(
        (timed_out["source"].as_str(), timed_out["verdict"].as_str()),
        (Some("timeout"), Some("cancelled"))
    );
    let files = wait_records(&s.log, "file_access", 1).await;
    assert_eq!(files[0]["verdict"], "allow");
    let sessions = wait_records(&s.log, "session_create", 1).await;
    assert_eq!(sessions[0]["phase"], "create");
    assert_eq!(sessions[0]["verdict"], "allow");
}

/// The acceptance test of hot swap: a stream of permission requests runs
/// while the policy is swapped 20 times (SIGHUP and the admin route in
/// turn); every request is answered once and logged once.
#[tokio::test]
async fn hot_swap_under_load_loses_nothing_and_decides_nothing_twice() {
    let s = setup(&[]).await;
    let ws = tempdir();
    let (session, _) = create(&s.daemon, ws.path()).await;
    let mut events = s.daemon.subscribe(&session, None).await;
    let load = {
        let url = s.daemon.url(&format!("/session/{session}/prompt"));
        let http = s.daemon.http().clone();
        tokio::spawn(async move {
            http.post(url)
                .json(
                    &json!({"prompt": [{"type": "text", "text": "permissions-until-cancel edit"}]}),
                )
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The stream is running before the first swap.
    wait_event(&mut events, "policy_decision", |_| true).await;
    for swap in 2..=21 {
        if swap % 2 == 0 {
            std::fs::write(&s.config, format!("version={swap}\n")).unwrap();
            s.daemon.signal(Signal::SIGHUP);
        } else {
            let (status, body) =
                admin_put(&s.daemon, &json!({"config": format!("version={swap}")})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let changed = wait_event(&mut events, "policy_changed", |_| true).await;
        assert_eq!(changed["data"]["policy"]["version"], swap.to_string());
        // Some requests are decided by each policy.
        wait_event(&mut events, "policy_decision", |e| {
            e["data"]["policy"]["version"].as_str() == Some(swap.to_string().as_str())
        })
        .await;
    }
    let (status, _) = s
        .daemon
        .post_json(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(load.await.unwrap(), StatusCode::OK);
    let report = wait_event(&mut events, "session_update", |e| {
        chunk_text(e).is_some_and(|t| t.starts_with("permissions: "))
    })
    .await;
    let words: Vec<&str> = chunk_text(&report).unwrap().split_whitespace().collect();
    let sent: usize = words[2].parse().unwrap();
    assert_eq!(words[4], words[2], "every request was answered: {words:?}");
    assert_eq!(
        words[6], words[2],
        "every answer was the policy's select: {words:?}"
    );

    let logged = wait_records(&s.log, "permission", sent).await;
    assert_eq!(logged.len(), sent, "one record per request");
    let mut ids: Vec<&str> = logged
        .iter()
        .map(|r| r["toolCall"]["toolCallId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sent, "no request decided twice");
    let versions: std::collections::BTreeSet<&str> = logged
        .iter()
        .map(|r| r["policy"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions.len(),
        21,
        "all 21 policies decided some: {versions:?}"
    );
    assert!(logged
        .iter()
        .all(|r| r["verdict"] == "selected" && r["source"] == "policy"));
}
