//! Permission requests, the agent's file requests and model switching,
//! through the real daemon and the fake agent.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn vote(daemon: &qserve_e2e::daemon::Daemon, request_id: &str, outcome: Value) -> StatusCode {
    daemon
        .post_json(
            &format!("/permission/{request_id}"),
            &json!({ "outcome": outcome }),
        )
        .await
        .0
}

#[tokio::test]
async fn ask_the_clients_first_valid_vote_wins_and_reaches_the_agent() {
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
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    let request = wait_event(&mut events, "permission_request", |_| true).await;
    let data = &request["data"];
    let request_id = data["requestId"].as_str().unwrap();
    assert_eq!(data["sessionId"], session.as_str());
    assert_eq!(data["toolCall"]["kind"], "edit");
    assert_eq!(data["options"].as_array().unwrap().len(), 3);

    let invalid = daemon.vote(request_id, "not-offered").await;
    assert_eq!(invalid.0, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.1["code"], "invalid_option_id");

    let won = vote(
        &daemon,
        request_id,
        json!({ "outcome": "selected", "optionId": "proceed_once" }),
    )
    .await;
    let lost = vote(&daemon, request_id, json!({ "outcome": "cancelled" })).await;
    assert_eq!((won, lost), (StatusCode::OK, StatusCode::NOT_FOUND));
    let resolved = wait_event(&mut events, "permission_resolved", |_| true).await;
    assert_eq!(resolved["data"]["outcome"]["optionId"], "proceed_once");
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
    assert_eq!(turn.await.unwrap()["stopReason"], "end_turn");
}

#[tokio::test]
async fn an_unanswered_permission_times_out_cancelled() {
    let daemon = daemon(&["--permission-timeout", "1"], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let started = Instant::now();
    let (status, _) = prompt(&daemon, &session, "permission execute").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let resolved = wait_event(&mut events, "permission_resolved", |_| true).await;
    assert_eq!(resolved["data"]["outcome"]["outcome"], "cancelled");
    wait_chunk(&mut events, "outcome: cancelled").await;
}

#[tokio::test]
async fn cancel_answers_pending_permissions_cancelled_and_ends_the_turn() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let turn = prompt(&daemon, &session, "permission edit");
    let cancel = async {
        let request = wait_event(&mut events, "permission_request", |_| true).await;
        let status = daemon
            .request(reqwest::Method::POST, &format!("/session/{session}/cancel"))
            .send()
            .await
            .unwrap()
            .status();
        (request, status)
    };
    let ((status, body), (request, cancel_status)) = tokio::join!(turn, cancel);
    assert_eq!(cancel_status, StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stopReason"], "cancelled");
    let request_id = request["data"]["requestId"].as_str().unwrap();
    assert_eq!(
        vote(&daemon, request_id, json!({ "outcome": "cancelled" })).await,
        StatusCode::NOT_FOUND,
        "already resolved by the cancel"
    );
}

#[tokio::test]
async fn the_readonly_policy_answers_without_asking_and_refuses_writes() {
    let readonly = guest_component("policy-readonly");
    let daemon = daemon(&["--component", readonly.to_str().unwrap()], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    prompt_ok(&daemon, &session, "permission read").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
    prompt_ok(&daemon, &session, "permission execute").await;
    wait_chunk(&mut events, "outcome: selected cancel").await;

    let target = ws.path().join("out.txt");
    assert_eq!(
        prompt(
            &daemon,
            &session,
            &format!("write {} hello", target.display())
        )
        .await
        .0,
        StatusCode::OK
    );
    let report = wait_event(&mut events, "session_update", |e| {
        chunk_text(e).is_some_and(|t| t.starts_with("write:"))
    })
    .await;
    assert!(chunk_text(&report).unwrap().contains("policy"), "{report}");
    assert!(!target.exists(), "the refused write left no file");
    let caps = daemon.get_json("/capabilities").await.1;
    assert_eq!(caps["policy"]["name"], "readonly");
}

#[tokio::test]
async fn the_agent_reads_and_writes_files_through_the_daemon() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let target = ws.path().join("notes.txt");
    assert_eq!(
        prompt(
            &daemon,
            &session,
            &format!("write {} one\\ntwo\\nthree", target.display())
        )
        .await
        .0,
        StatusCode::OK
    );
    wait_chunk(&mut events, "write: ok").await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "one\ntwo\nthree");
    assert_eq!(
        prompt(&daemon, &session, &format!("read {} 2 1", target.display()))
            .await
            .0,
        StatusCode::OK
    );
    let read = wait_event(&mut events, "session_update", |e| {
        chunk_text(e).is_some_and(|t| t.starts_with("read:"))
    })
    .await;
    assert_eq!(chunk_text(&read), Some("read: ok two"));
}

#[tokio::test]
async fn model_switching_reports_success_and_plain_unsupported() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let (status, body) = set_model(&daemon, &session, "fast").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_object());
    let switched = wait_event(&mut events, "model_switched", |_| true).await;
    assert_eq!(switched["data"]["modelId"], "fast");

    let unsupported = daemon_no_model().await;
    let ws2 = tempdir();
    let (s2, _) = create(&unsupported, ws2.path()).await;
    let (status, body) = set_model(&unsupported, &s2, "fast").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not supported"),
        "{body}"
    );
}

#[tokio::test]
async fn an_agent_without_set_model_switches_through_its_model_config_option() {
    let daemon = daemon(
        &[],
        &[
            ("FAKE_AGENT_NO_SET_MODEL", "1"),
            ("FAKE_AGENT_MODEL_CONFIG_OPTION", "1"),
        ],
    )
    .await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let (status, body) = set_model(&daemon, &session, "fake-model-b").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let switched = wait_event(&mut events, "model_switched", |_| true).await;
    assert_eq!(switched["data"]["modelId"], "fake-model-b");
    let (status, body) = set_model(&daemon, &session, "no-such-model").await;
    assert_eq!(status, StatusCode::OK, "the fake accepts any value: {body}");
}

async fn daemon_no_model() -> qserve_e2e::daemon::Daemon {
    daemon(&[], &[("FAKE_AGENT_NO_SET_MODEL", "1")]).await
}

#[tokio::test]
async fn closing_the_last_session_stops_its_agent() {
    let pids = tempdir();
    let pid_file = pids.path().join("pids");
    let daemon = daemon(&[], &[("FAKE_AGENT_PID_FILE", pid_file.to_str().unwrap())]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;
    let agent: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let died = wait_event(&mut events, "session_died", |_| true).await;
    assert_eq!(died["data"]["reason"], "closed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while qserve_e2e::process_group::is_running(agent) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !qserve_e2e::process_group::is_running(agent),
        "agent stopped with its last session"
    );
    let again = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(again, StatusCode::NOT_FOUND);
}
