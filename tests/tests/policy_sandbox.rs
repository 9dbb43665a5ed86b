//! The policy sandbox through the real binary: a policy that blocks in a
//! host call fails closed at its deadline and stalls no other workspace,
//! `/health?deep=1` tells a faulting policy, and the policies compiled into
//! the binary, pins and contract versions behave as documented.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use qserve_e2e::binaries::qserve_host_path;
use reqwest::StatusCode;
use serde_json::json;

fn qserve_host(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(qserve_host_path())
        .args(args)
        .env(
            "QSERVE_CACHE_DIR",
            qserve_e2e::daemon::shared_component_cache(),
        )
        .env_remove("QSERVE_COMPONENT")
        .env_remove("QSERVE_TOKEN")
        .output()
        .expect("run qserve-host");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A policy that blocks for 10 s inside `pollable.block()` (or `poll`) is cut
/// off at its deadline, the request fails closed, and meanwhile another
/// workspace creates sessions and attaches as if nothing happened.
async fn blocking_policy_fails_closed_and_stalls_nobody(guest: &str) {
    let component = guest_component(guest);
    let daemon = daemon(&["--component", component.to_str().unwrap()], &[]).await;
    let blocked_ws = tempdir();
    let (blocked, _) = create(&daemon, blocked_ws.path()).await;
    let mut events = daemon.subscribe(&blocked, None).await;

    let started = Instant::now();
    let prompt = {
        let url = daemon.url(&format!("/session/{blocked}/prompt"));
        let http = daemon.http().clone();
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"prompt": [{"type": "text", "text": "permission edit"}]}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // While that decision is (at most) blocking: other workspaces go on.
    for _ in 0..3 {
        let other = tempdir();
        let (first, attached) = create(&daemon, other.path()).await;
        assert!(!attached);
        let (second, attached) = create(&daemon, other.path()).await;
        assert!(attached && second == first);
    }
    let decision = wait_event(&mut events, "policy_decision", |_| true).await;
    assert_eq!(decision["data"]["verdict"], "fault", "{decision}");
    assert_eq!(decision["data"]["source"], "fault");
    let reason = decision["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("deadline"), "{reason}");
    wait_chunk(&mut events, "outcome: cancelled").await;
    assert_eq!(prompt.await.unwrap(), StatusCode::OK);
    // Generous bound on a loaded machine; the point is "not 10 s".
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the block was cut off: {:?}",
        started.elapsed()
    );

    // Faulting again and again: deep health says so (a readiness probe
    // takes the daemon out), with the cause.
    for _ in 0..2 {
        prompt_ok(&daemon, &blocked, "permission edit").await;
        wait_chunk(&mut events, "outcome: cancelled").await;
    }
    let (status, body) = daemon.get_json("/health?deep=1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["policy"]["status"], "degraded");
    assert!(body["policy"]["recentFaults"].as_u64().unwrap() >= 3);
    assert!(body["policy"]["lastFault"]
        .as_str()
        .unwrap()
        .contains("deadline"));
}

#[tokio::test]
async fn a_policy_blocking_in_sleep_fails_closed_and_stalls_nobody() {
    blocking_policy_fails_closed_and_stalls_nobody("policy-hostile-sleep").await;
}

#[tokio::test]
async fn a_policy_blocking_in_poll_fails_closed_and_stalls_nobody() {
    blocking_policy_fails_closed_and_stalls_nobody("policy-hostile-poll").await;
}

#[tokio::test]
async fn a_table_bomb_and_a_log_flood_cannot_hurt_the_daemon() {
    let table = guest_component("policy-hostile-table");
    let daemon = daemon(&["--component", table.to_str().unwrap()], &[]).await;
    let ws = tempdir();
    // Every decision grows a table: even a session create fails closed,
    // with the cap named, and the daemon goes on answering.
    let (status, body) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": ws.path().display().to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "policy_refused");
    assert!(body["error"].as_str().unwrap().contains("table"), "{body}");
    let (status, _) = daemon.get_json("/health").await;
    assert_eq!(status, StatusCode::OK);

    let flood = guest_component("policy-hostile-logflood");
    let daemon = common::daemon(&["--component", flood.to_str().unwrap()], &[]).await;
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;
    let before = daemon.log().len();
    prompt_ok(&daemon, &session, "permission edit").await;
    // However far the flood got before its verdict or its deadline.
    wait_event(&mut events, "policy_decision", |_| true).await;
    let logged = daemon.log().len() - before;
    // 100 000 messages of 64 KiB were attempted (6.4 GB).
    assert!(logged < 256 * 1024, "the log grew by {logged} bytes");
    assert!(daemon.log().contains("suppressed") || daemon.log().contains("dropped"));
}

#[test]
fn builtin_policies_are_listed_with_their_hash_and_run_without_a_toolchain() {
    let (code, out, err) = qserve_host(&["policy", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("INFO"),
        "subcommands print no INFO lines: {err}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert!(
        names.contains(&"builtin:default") && names.contains(&"builtin:readonly"),
        "{out}"
    );
    for row in &rows {
        let sha = row.last().unwrap();
        assert_eq!(sha.len(), 64, "{out}");
        assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let (code, out, err) = qserve_host(&["policy", "check", "builtin:readonly"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = qserve_host(&["--port", "0", "--component", "builtin:nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("builtin:default") && err.contains("builtin:readonly"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pinned_hash_refuses_any_other_bytes() {
    let (_, out, _) = qserve_host(&["policy", "list"]);
    let readonly_sha = out
        .lines()
        .find(|l| l.starts_with("builtin:readonly"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    let daemon = daemon(
        &[
            "--component",
            "builtin:readonly",
            "--component-sha256",
            &readonly_sha,
        ],
        &[],
    )
    .await;
    let caps = daemon.get_json("/capabilities").await.1;
    assert_eq!(caps["policy"]["sha256"], readonly_sha.as_str());
    assert_eq!(caps["policy"]["origin"], "builtin:readonly");

    let (code, _, err) = qserve_host(&[
        "--port",
        "0",
        "--component",
        "builtin:default",
        "--component-sha256",
        &readonly_sha,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("pins") && err.contains(&readonly_sha), "{err}");
    let (code, _, err) = qserve_host(&["--port", "0", "--component-sha256", "abc"]);
    assert_ne!(code, 0);
    assert!(err.contains("64 hex digits"), "{err}");
}

#[test]
fn a_component_built_for_the_0_1_0_contract_is_refused_naming_both_versions() {
    let legacy = guest_component("policy-legacy-v0-1");
    let (code, _, err) = qserve_host(&["--port", "0", "--component", legacy.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("qserve:bridge@0.1.0") && err.contains("qserve:policy@0.2.0"),
        "{err}"
    );
    let (code, _, err) = qserve_host(&["policy", "check", legacy.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("qserve:policy@0.2.0"), "{err}");
}

#[test]
fn a_config_the_policy_refuses_stops_the_start_with_its_message() {
    let dir = tempdir();
    let config = dir.path().join("policy.conf");
    std::fs::write(&config, "this policy takes no config\n").unwrap();
    let (code, _, err) = qserve_host(&["--port", "0", "--policy-config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("builtin:default") || err.contains("default"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("config"), "{err}");
}

#[test]
fn policy_check_honours_the_deployment_flags_in_any_position() {
    for args in [
        [
            "--policy-memory-mib",
            "1",
            "policy",
            "check",
            "builtin:readonly",
        ],
        [
            "policy",
            "check",
            "builtin:readonly",
            "--policy-memory-mib",
            "1",
        ],
    ] {
        let (code, _, err) = qserve_host(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("1 MiB memory limit"), "{args:?}: {err}");
    }
    let (code, out, _) = qserve_host(&[
        "policy",
        "inspect",
        "builtin:readonly",
        "--policy-memory-mib",
        "1",
    ]);
    assert_eq!(
        code, 1,
        "inspect exits non-zero when the component does not fit: {out}"
    );
    let (code, _, err) = qserve_host(&["policy", "check", "builtin:readonly"]);
    assert_eq!(code, 0, "{err}");
}
