//! The command line and policy swapping, through the real binary: `policy
//! inspect|check`, one clear start-up message for a bad component, and a
//! daemon that stays up (and fails closed) behind each hostile policy.

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
        .output()
        .expect("run qserve-host");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_inspect_and_check_tell_whether_a_component_fits() {
    let readonly = guest_component("policy-readonly");
    let (code, out, _) = qserve_host(&["policy", "inspect", readonly.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("exports:") && out.contains("qserve:policy/decide@0.2.0"),
        "{out}"
    );
    assert!(out.contains("imports:"), "{out}");
    assert!(
        out.contains("fits the `policy` world: yes (readonly"),
        "{out}"
    );
    assert_eq!(
        qserve_host(&["policy", "check", readonly.to_str().unwrap()]).0,
        0
    );

    let core = guest_component("core");
    let (code, out, _) = qserve_host(&["policy", "inspect", core.to_str().unwrap()]);
    assert_ne!(
        code, 0,
        "inspect exits non-zero when the component does not fit"
    );
    assert!(out.contains("fits the `policy` world: no"), "{out}");
    let (code, _, err) = qserve_host(&["policy", "check", core.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("does not export `qserve:policy/decide@0.2.0`"),
        "{err}"
    );
    // It warns about imports that will fail when called.
    assert!(err.contains("which qserve does not provide"), "{err}");
}

#[test]
fn a_bad_component_fails_start_up_with_one_clear_message() {
    let dir = tempdir();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let missing = dir.path().join("missing.wasm");
    let core = guest_component("core");
    let cases = [
        (garbage.clone(), "not a WebAssembly file"),
        (module.clone(), "core WebAssembly module, not a component"),
        (missing.clone(), "cannot read"),
        (core.clone(), "does not fit the `policy` world"),
    ];
    for (file, expected) in cases {
        let (code, _, err) = qserve_host(&["--port", "0", "--component", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{}: {err}", file.display());
        assert!(
            err.contains(expected) && err.contains(file.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        assert!(!err.contains("listening on"), "it never started: {err}");
    }
}

#[tokio::test]
async fn behind_a_looping_policy_the_daemon_fails_closed_quickly_and_stays_up() {
    let hostile = guest_component("policy-hostile-loop");
    let daemon = daemon(&["--component", hostile.to_str().unwrap()], &[]).await;
    let ws = tempdir();
    let started = Instant::now();
    let (status, body) = daemon
        .post_json("/session", &json!({ "cwd": ws.path() }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "policy_refused");
    assert!(
        body["error"].as_str().unwrap().contains("deadline"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "not stuck");
    // Again and again: each call on a fresh instance, the daemon unharmed.
    for _ in 0..5 {
        assert_eq!(
            daemon
                .post_json("/session", &json!({ "cwd": ws.path() }))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
    }
    // Up, and telling probes that its policy keeps faulting.
    assert_eq!(daemon.get_json("/health").await.0, StatusCode::OK);
    let (status, health) = daemon.get_json("/health?deep=1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["policy"]["status"], "degraded");
    assert!(health["policy"]["lastFault"]
        .as_str()
        .unwrap()
        .contains("deadline"));
}

#[tokio::test]
async fn behind_a_policy_naming_an_unoffered_option_the_permission_resolves_cancelled() {
    let hostile = guest_component("policy-hostile-bad-option");
    let daemon = daemon(&["--component", hostile.to_str().unwrap()], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let (status, body) = prompt(&daemon, &session, "permission edit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_chunk(&mut events, "outcome: cancelled").await;
    assert!(
        daemon.log().contains("did not offer"),
        "the cause is logged"
    );
}

#[tokio::test]
async fn trapping_and_memory_hungry_policies_refuse_creates_with_a_one_line_cause() {
    for (name, cause) in [
        ("policy-hostile-trap", "trapped"),
        // It hoards 1 MiB at a time: under load the deadline may come first.
        ("policy-hostile-memory", "policy fault"),
    ] {
        let hostile = guest_component(name);
        let daemon = daemon(&["--component", hostile.to_str().unwrap()], &[]).await;
        let ws = tempdir();
        for _ in 0..3 {
            let (status, body) = daemon
                .post_json("/session", &json!({ "cwd": ws.path() }))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(cause), "{name}: {message}");
            assert!(
                !message.contains('\n'),
                "{name}: one line, no wasm backtrace: {message}"
            );
        }
        assert_eq!(
            daemon.get_json("/health").await.0,
            StatusCode::OK,
            "{name}: still up"
        );
        let (_, health) = daemon.get_json("/health?deep=1").await;
        assert_eq!(health["policy"]["faults"], 3, "{name}: {health}");
    }
}
