//! The agent side through the real daemon: the real qserve-host binary, real
//! sockets, the scripted fake ACP agent as a real child process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use qserve_e2e::process_group::is_running;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_prompt_streams_its_chunks_with_gapless_ids() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, attached) = create(&daemon, ws.path()).await;
    assert!(!attached);
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let (status, body) = prompt(&daemon, &session, "chunks 5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stopReason"], "end_turn");
    let mut ids = Vec::new();
    for i in 0..5 {
        let envelope = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
        assert_eq!(envelope["v"], 1);
        assert!(chunk_text(&envelope)
            .unwrap()
            .starts_with(&format!("chunk {i} ")));
        ids.push(envelope["id"].as_u64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "gapless: {ids:?}");
}

#[tokio::test]
async fn unknown_updates_big_lines_and_garbage_are_survived_and_forwarded_raw() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;

    prompt_ok(&daemon, &session, "unknown-update").await;
    let unknown = wait_event(&mut events, "session_update", |e| {
        e["data"]["update"]["sessionUpdate"] == "future_variant_xyz"
    })
    .await;
    assert!(
        unknown["data"]["update"].as_object().unwrap().len() > 1,
        "extra fields kept: {unknown}"
    );

    prompt_ok(&daemon, &session, "bigline 2000000").await;
    let big = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
    assert_eq!(chunk_text(&big).unwrap().len(), 2_000_000);

    prompt_ok(&daemon, &session, "garbage").await;
    wait_chunk(&mut events, "after garbage").await;

    prompt_ok(&daemon, &session, "ext").await;
    wait_chunk(&mut events, "ext: error -32601").await;
}

#[tokio::test]
async fn a_line_over_the_cap_is_a_loud_error_for_that_agent_not_a_silent_drop() {
    let daemon = daemon(&["--max-line-bytes", "100000"], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let (status, body) = prompt(&daemon, &session, "bigline 200000").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let died = wait_event(&mut events, "session_died", |_| true).await;
    assert!(
        died["data"]["reason"].as_str().unwrap().contains("line"),
        "{died}"
    );
}

#[tokio::test]
async fn two_workspaces_get_distinct_sessions_even_with_the_same_acp_id() {
    let daemon = daemon(&[], &[]).await;
    let (a, b) = (tempdir(), tempdir());
    let (sa, _) = create(&daemon, a.path()).await;
    let (sb, _) = create(&daemon, b.path()).await;
    assert_ne!(sa, sb, "both agents answered fake-session-1");
    let mut events = daemon.subscribe(&sb, Some("0")).await;
    prompt_ok(&daemon, &sb, "echo only-b").await;
    let e = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
    assert_eq!(chunk_text(&e), Some("only-b"));
}

#[tokio::test]
async fn concurrent_creates_for_one_workspace_coalesce_into_one_agent() {
    let daemon = daemon(&[], &[("FAKE_AGENT_INIT_DELAY_MS", "300")]).await;
    let ws = tempdir();
    let creates = (0..5).map(|_| create(&daemon, ws.path()));
    let results = futures::future::join_all(creates).await;
    let ids: std::collections::HashSet<_> = results.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 1, "one session: {results:?}");
    assert_eq!(results.iter().filter(|(_, attached)| !attached).count(), 1);
    assert_eq!(
        daemon.log().matches("agent started").count(),
        1,
        "{}",
        daemon.log()
    );
}

#[tokio::test]
async fn thread_scope_makes_new_sessions_on_one_agent_and_the_cap_holds() {
    let daemon = daemon(&["--session-scope", "thread", "--max-sessions", "2"], &[]).await;
    let ws = tempdir();
    let (s1, _) = create(&daemon, ws.path()).await;
    let (s2, _) = create(&daemon, ws.path()).await;
    assert_ne!(s1, s2);
    assert_eq!(daemon.log().matches("agent started").count(), 1);
    let response = daemon
        .request(reqwest::Method::POST, "/session")
        .json(&json!({ "cwd": ws.path() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "session_limit_exceeded");
}

#[tokio::test]
async fn prompts_queue_fifo_and_a_failed_prompt_does_not_block_the_queue() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let send = |text: &'static str| {
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            let status = http
                .post(url)
                .json(&json!({ "prompt": [{ "type": "text", "text": text }] }))
                .send()
                .await
                .unwrap()
                .status();
            finished.lock().unwrap().push(text);
            status
        })
    };
    // The first turn is running (its permission request is out) and stays
    // so until the vote: the second must wait behind it, whatever the agent
    // would do with two turns at once.
    let first = send("permission edit");
    let request = wait_event(&mut events, "permission_request", |_| true).await;
    let second = send("echo second");
    let request_id = request["data"]["requestId"].as_str().unwrap();
    let (status, body) = daemon.vote(request_id, "proceed_once").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for turn in [first, second] {
        assert_eq!(turn.await.unwrap(), StatusCode::OK);
    }
    // On the stream: the first turn's last update, then the second turn's.
    let mut order = Vec::new();
    while order.len() < 2 {
        let event = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
        let text = chunk_text(&event).unwrap().to_owned();
        if text.starts_with("outcome:") || text == "second" {
            order.push(text);
        }
    }
    assert_eq!(order, ["outcome: selected proceed_once", "second"]);
    // A failed prompt does not block the queue either.
    let (status, body) = prompt(&daemon, &session, "fail").await;
    assert!(status.is_server_error(), "{status} {body}");
    prompt_ok(&daemon, &session, "echo after").await;
    wait_chunk(&mut events, "after").await;
    assert_eq!(
        finished.lock().unwrap()[..2],
        ["permission edit", "echo second"]
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_prompt() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let gone = daemon
        .request(reqwest::Method::POST, &format!("/session/{session}/prompt"))
        .timeout(Duration::from_millis(300))
        .json(&json!({ "prompt": [{ "type": "text", "text": "sleep 30000" }] }))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let started = Instant::now();
    let (status, body) = prompt(&daemon, &session, "echo next").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the abandoned prompt was cancelled"
    );
}

#[tokio::test]
async fn a_child_killed_mid_turn_fails_the_prompt_fast_and_the_next_create_works() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let started = Instant::now();
    let (status, body) = prompt(&daemon, &session, "crash").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let died = wait_event(&mut events, "session_died", |_| true).await;
    assert_eq!(died["data"]["exitCode"], 3, "{died}");
    assert_eq!(
        prompt(&daemon, &session, "echo x").await.0,
        StatusCode::NOT_FOUND
    );
    let (again, attached) = create(&daemon, ws.path()).await;
    assert!(!attached);
    assert_ne!(again, session);
    prompt_ok(&daemon, &again, "echo alive").await;
}

#[tokio::test]
async fn an_agent_that_is_not_installed_is_named_with_how_to_fix_it() {
    let mut options = qserve_e2e::daemon::DaemonOptions::with_agent("no-such-agent-xyz --acp");
    options.args.push("--init-timeout".into());
    options.args.push("5".into());
    let daemon = qserve_e2e::daemon::Daemon::start(options).await;
    let ws = tempdir();
    let (status, body) = daemon
        .post_json("/session", &json!({ "cwd": ws.path() }))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("no-such-agent-xyz"), "{message}");
    assert!(message.contains("--agent"), "{message}");
}

#[tokio::test]
async fn sigterm_stops_every_agent_process_group_and_tells_subscribers() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let mut daemon = daemon(
        &[],
        &[
            ("FAKE_AGENT_GRANDCHILD", "1"),
            ("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap()),
        ],
    )
    .await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let agent_pids: Vec<u32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(agent_pids.len(), 2, "agent and its grandchild");
    daemon.signal(Signal::SIGTERM);
    let died = wait_event(&mut events, "session_died", |_| true).await;
    assert_eq!(died["data"]["reason"], "daemon shutting down");
    let status = daemon
        .wait_for_exit(Duration::from_secs(15))
        .await
        .expect("daemon exits");
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    for pid in agent_pids {
        assert!(!is_running(pid), "agent process {pid} outlived the daemon");
    }
}

#[tokio::test]
async fn a_second_signal_kills_agents_that_ignore_sigterm_and_exits_1() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let mut daemon = daemon(
        &[],
        &[
            ("FAKE_AGENT_IGNORE_TERM", "1"),
            ("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap()),
        ],
    )
    .await;
    let ws = tempdir();
    create(&daemon, ws.path()).await;
    let agent_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    daemon.signal(Signal::SIGTERM);
    assert!(
        daemon
            .wait_for_log("fake-agent: ignoring SIGTERM", WAIT)
            .await,
        "the agent got the SIGTERM: {}",
        daemon.log()
    );
    assert!(
        is_running(agent_pid),
        "the agent ignores SIGTERM during the grace"
    );
    let started = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_for_exit(Duration::from_secs(10))
        .await
        .expect("daemon exits");
    assert_eq!(status.code(), Some(1), "{}", daemon.log());
    assert!(started.elapsed() < Duration::from_secs(2));
    let deadline = Instant::now() + WAIT;
    while is_running(agent_pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!is_running(agent_pid), "killed by the second signal");
}
