//! Hostile and faulty agents, through the real daemon (issue 11, findings 3,
//! 8 and 9): nothing an agent started outlives the daemon however it dies,
//! failed creates leave no agent behind, start-up refuses what cannot work.

mod common;

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use qserve_e2e::binaries::{fake_agent_path, qserve_host_path};
use qserve_e2e::process_group::is_running;
use reqwest::StatusCode;
use serde_json::json;

/// Waits (bounded) until none of `pids` runs; returns the survivors.
async fn wait_all_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_running(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pids the fake agent wrote (itself first), once the file exists.
async fn read_pid_file(path: &Path, expected: usize) -> Vec<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let pids: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
            assert_eq!(pids.len(), expected, "pid file: {text}");
            return pids;
        }
        assert!(Instant::now() < deadline, "the agent wrote no pid file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn no_agent_process_survives_a_sigkilled_daemon() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let mut daemon = daemon(
        &[],
        &[
            ("FAKE_AGENT_GRANDCHILD", "1"),
            ("FAKE_AGENT_DETACHED_GRANDCHILD", "1"),
            ("FAKE_AGENT_IGNORE_STDIN_EOF", "1"),
            ("FAKE_AGENT_IGNORE_TERM", "1"),
            ("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap()),
        ],
    )
    .await;
    let ws = tempdir();
    create(&daemon, ws.path()).await;
    // The agent, a child in its group and a child that left the group.
    let mut family = read_pid_file(&pid_file, 3).await;
    family.extend(daemon.descendant_pids());
    family.sort_unstable();
    family.dedup();
    assert!(
        family.iter().all(|&p| is_running(p)),
        "all run before the kill"
    );

    daemon.signal(Signal::SIGKILL);
    daemon
        .wait_for_exit(WAIT)
        .await
        .expect("a SIGKILLed daemon exits");
    let survivors = wait_all_gone(&family, WAIT).await;
    assert!(
        survivors.is_empty(),
        "processes outlived the SIGKILLed daemon: {survivors:?} of {family:?}"
    );
}

#[tokio::test]
async fn an_agent_and_its_detached_child_are_killed_when_the_daemon_stops_it() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let daemon = daemon(
        &[],
        &[
            ("FAKE_AGENT_DETACHED_GRANDCHILD", "1"),
            ("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap()),
        ],
    )
    .await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let family = read_pid_file(&pid_file, 2).await;
    let status = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let survivors = wait_all_gone(&family, WAIT).await;
    assert!(
        survivors.is_empty(),
        "the stopped agent left {survivors:?} of {family:?}"
    );
}

#[tokio::test]
async fn failed_creates_in_five_workspaces_leave_no_agent_alive() {
    let daemon = daemon(&[], &[("FAKE_AGENT_FAIL_NEW_SESSION", "1")]).await;
    let workspaces: Vec<_> = (0..5).map(|_| tempdir()).collect();
    for ws in &workspaces {
        let (status, body) = daemon
            .post_json("/session", &json!({ "cwd": ws.path() }))
            .await;
        assert!(
            status.is_server_error(),
            "session/new fails: {status} {body}"
        );
    }
    let deadline = Instant::now() + WAIT;
    while !daemon.descendant_pids().is_empty() {
        assert!(
            Instant::now() < deadline,
            "agents left after failed creates: {:?}\n{}",
            daemon.descendant_pids(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_vote_for_an_option_not_offered_names_the_request_and_the_option() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let turn = tokio::spawn({
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        async move {
            http.post(url)
                .json(&json!({ "prompt": [{ "type": "text", "text": "permission edit" }] }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let request = wait_event(&mut events, "permission_request", |_| true).await;
    let request_id = request["data"]["requestId"].as_str().unwrap().to_owned();
    let (status, body) = daemon.vote(&request_id, "not-offered").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_option_id");
    assert_eq!(body["requestId"], request_id.as_str(), "{body}");
    assert_eq!(body["optionId"], "not-offered", "{body}");
    // The request stays pending: a valid vote still ends the turn.
    let (status, _) = daemon.vote(&request_id, "proceed_once").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(turn.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn init_timeout_zero_is_refused_at_start_up_with_the_reason() {
    let mut command = tokio::process::Command::new(qserve_host_path());
    command
        .args([
            "--port",
            "0",
            "--hostname",
            "127.0.0.1",
            "--init-timeout",
            "0",
        ])
        .args(["--agent", &fake_agent_path().display().to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    qserve_e2e::process_group::own_group(&mut command);
    let child = command.spawn().expect("qserve-host starts");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the daemon refuses to start instead of serving")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--init-timeout"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

/// `to` relative to `from` (both absolute): `../target/debug/fake-agent`.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    path
}

#[tokio::test]
async fn a_relative_agent_path_names_a_file_beside_the_daemon_not_in_the_workspace() {
    // The daemon runs in this test's directory; `--agent` is relative to it.
    let cwd = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
    let agent = std::fs::canonicalize(fake_agent_path()).unwrap();
    let relative = relative_path(&cwd, &agent);
    assert!(relative.is_relative() && relative.components().count() > 1);

    // A workspace where that same relative path names a client's program.
    let root = tempdir();
    let ups = relative
        .components()
        .take_while(|c| *c == Component::ParentDir)
        .count();
    let mut ws = root.path().to_path_buf();
    for i in 0..ups {
        ws.push(format!("d{i}"));
    }
    std::fs::create_dir_all(&ws).unwrap();
    let planted = ws.join(&relative);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    let marker = root.path().join("planted-program-ran");
    std::fs::write(
        &planted,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &planted,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let mut options = qserve_e2e::daemon::DaemonOptions::with_agent(relative.display().to_string());
    options.args.extend(["--init-timeout".into(), "20".into()]);
    let daemon = qserve_e2e::daemon::Daemon::start(options).await;
    let (session, _) = create(&daemon, &ws).await;
    prompt_ok(&daemon, &session, "echo the daemon's agent").await;
    assert!(!marker.exists(), "the program planted in the workspace ran");
}

#[tokio::test]
async fn updates_for_sessions_the_agent_never_created_are_bounded_and_logged() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    prompt_ok(&daemon, &session, "foreign-updates 500").await;
    wait_chunk(&mut events, "foreign-updates: sent 500").await;
    assert!(
        daemon
            .wait_for_log("update for an unknown agent session dropped", WAIT)
            .await,
        "held without a bound on the number of ids:\n{}",
        daemon.log()
    );
    prompt_ok(&daemon, &session, "echo still serving").await;
    wait_chunk(&mut events, "still serving").await;
}

#[tokio::test]
async fn agent_text_reaches_the_log_escaped_not_as_terminal_control() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    prompt_ok(
        &daemon,
        &session,
        r"stderr marker-3f9 \e[2J\e[31mred\rFORGED INFO line",
    )
    .await;
    wait_chunk(&mut events, "stderr: written").await;
    assert!(daemon.wait_for_log("marker-3f9", WAIT).await);
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("marker-3f9")).unwrap();
    assert!(
        !line.chars().any(|c| c.is_control()),
        "raw control characters in the log: {line:?}"
    );
    assert!(
        line.contains(r"\u{1b}[2J\u{1b}[31mred\rFORGED INFO line"),
        "{line}"
    );
}

#[tokio::test]
async fn past_the_memory_budget_a_new_agent_is_refused_with_503_and_the_reason() {
    // 1 MiB: the first agent is admitted (nothing runs yet); any agent uses
    // more than that, so the second workspace's agent is refused.
    let daemon = daemon(&["--memory-budget-mb", "1"], &[]).await;
    let (first, second) = (tempdir(), tempdir());
    let (session, _) = create(&daemon, first.path()).await;
    let (status, body) = daemon
        .post_json("/session", &json!({ "cwd": second.path() }))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.contains("memory budget"), "{reason}");
    assert!(reason.contains("--memory-budget-mb"), "{reason}");
    // Sessions of the running agent are unaffected; so is a thread on it.
    prompt_ok(&daemon, &session, "echo still here").await;
    let (again, attached) = create(&daemon, first.path()).await;
    assert!(attached && again == session);
}

#[tokio::test]
async fn an_agent_that_stops_reading_its_stdin_is_stopped_naming_the_cause() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    // 20 answers of 4 MiB each: more than the 64 MiB the daemon keeps for
    // an agent's stdin.
    let file = ws.path().join("big.txt");
    std::fs::write(&file, "x".repeat(4 << 20)).unwrap();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let turn = tokio::spawn({
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        let text = format!("deaf-reads {} 20", file.display());
        async move {
            http.post(url)
                .json(&json!({ "prompt": [{ "type": "text", "text": text }] }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let died = wait_event(&mut events, "session_died", |_| true).await;
    let reason = died["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("stopped reading its stdin"), "{died}");
    assert!(turn.await.unwrap().is_server_error());
    // The workspace gets a fresh agent.
    let (again, _) = create(&daemon, ws.path()).await;
    prompt_ok(&daemon, &again, "echo fresh").await;
}

/// A regression test: the daemon before the guard passed it too (the
/// spawn's future was dropped at exit, and its `AgentProcess` killed the
/// group); now shutdown waits for the spawn and stops it gracefully.
#[tokio::test]
async fn shutdown_during_an_agent_start_leaves_no_agent_behind() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let mut daemon = daemon(
        &["--init-timeout", "60"],
        &[
            ("FAKE_AGENT_INIT_DELAY_MS", "3000"),
            ("FAKE_AGENT_GRANDCHILD", "1"),
            ("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap()),
        ],
    )
    .await;
    let ws = tempdir();
    let create = {
        let url = daemon.url("/session");
        let http = daemon.http().clone();
        let cwd = ws.path().display().to_string();
        tokio::spawn(async move { http.post(url).json(&json!({ "cwd": cwd })).send().await })
    };
    // The agent runs and has not answered `initialize` yet.
    let family = read_pid_file(&pid_file, 2).await;
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_for_exit(WAIT).await.expect("the daemon exits");
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    let survivors = wait_all_gone(&family, WAIT).await;
    assert!(
        survivors.is_empty(),
        "an agent started during shutdown outlived it: {survivors:?}\n{}",
        daemon.log()
    );
    let _ = create.await;
}
