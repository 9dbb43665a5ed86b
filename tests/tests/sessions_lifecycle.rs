//! Sessions that end (issue 11, findings 6 and 10–11): a tombstone tells a
//! client that was not watching why its session is gone; idle sessions are
//! reaped; the event ring is bounded by bytes too.

mod common;

use common::{create, daemon, prompt, prompt_ok, tempdir, wait_event, WAIT};
use reqwest::StatusCode;
use serde_json::Value;

async fn delete(daemon: &qserve_e2e::daemon::Daemon, session: &str) -> (StatusCode, Value) {
    let response = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .expect("DELETE /session/:id");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_closed_session_answers_404_session_ended_with_the_reason() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let (status, _) = delete(&daemon, &session).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // DaemonClient's closeSession accepts only 204 or 404: still a 404.
    let (status, body) = delete(&daemon, &session).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "session_ended");
    assert_eq!(body["reason"], "closed");
    assert_eq!(body["sessionId"], session.as_str());

    let (status, body) = prompt(&daemon, &session, "echo late").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "session_ended");
    let (status, body) = daemon.get_json(&format!("/session/{session}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "session_ended");

    // A session that never existed is a plain 404.
    let (status, body) = delete(&daemon, "no-such-session").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["code"].is_null(), "{body}");
}

#[tokio::test]
async fn a_client_that_was_not_watching_learns_that_the_agent_died() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let (status, _) = prompt(&daemon, &session, "crash").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The session ends once the daemon has seen the exit.
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (status, body) = prompt(&daemon, &session, "echo after the crash").await;
        if status == StatusCode::NOT_FOUND {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session outlived its agent: {status} {body}"
        );
        daemon.wait_for_log("agent ended", WAIT).await;
    };
    assert_eq!(body["code"], "session_ended", "{body}");
    let reason = body["reason"].as_str().expect("a reason");
    assert!(!reason.is_empty() && reason != "closed", "{reason}");
    assert_eq!(body["data"]["exitCode"], 3, "{body}");
}

#[tokio::test]
async fn an_idle_session_without_subscribers_is_reaped_and_a_watched_one_is_not() {
    let daemon = daemon(&["--session-idle-timeout-ms", "400"], &[]).await;
    let idle_ws = tempdir();
    let watched_ws = tempdir();
    let (idle, _) = create(&daemon, idle_ws.path()).await;
    let (watched, _) = create(&daemon, watched_ws.path()).await;
    let mut events = daemon.subscribe(&watched, None).await;

    assert!(
        daemon.wait_for_log("reaped an idle session", WAIT).await,
        "no session was reaped:\n{}",
        daemon.log()
    );
    let (status, body) = delete(&daemon, &idle).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "session_ended");
    assert_eq!(body["reason"], "reaped");

    // The watched session was just as old, and is still there.
    assert_eq!(
        prompt_ok(&daemon, &watched, "echo alive").await["stopReason"],
        "end_turn"
    );
    wait_event(&mut events, "turn_complete", |_| true).await;
}

/// An attach is a client call: a session that clients keep attaching to is
/// in use and is not reaped, while an untouched one beside it is. (The attach
/// also re-checks, on the hub thread, what the reaper decided on: see
/// `Inner::end_session_if`.)
#[tokio::test]
async fn a_session_that_clients_keep_attaching_to_is_not_reaped() {
    let daemon = daemon(&["--session-idle-timeout-ms", "3000"], &[]).await;
    let ws = tempdir();
    let untouched_ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let (untouched, _) = create(&daemon, untouched_ws.path()).await;
    // Attaches paced well inside the timeout, for more than twice its length.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(7);
    while tokio::time::Instant::now() < until {
        let (again, attached) = create(&daemon, ws.path()).await;
        assert!(
            attached,
            "the session was reaped under its clients:\n{}",
            daemon.log()
        );
        assert_eq!(again, session);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        daemon.wait_for_log("reaped an idle session", WAIT).await,
        "the reaper ran meanwhile:\n{}",
        daemon.log()
    );
    let (status, body) = delete(&daemon, &untouched).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the untouched one was reaped: {body}"
    );
    assert_eq!(body["reason"], "reaped");
    let (status, body) = delete(&daemon, &session).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the attached one is live: {body}"
    );
}

#[tokio::test]
async fn the_event_ring_is_bounded_by_bytes_and_keeps_the_newest_events() {
    // 200 chunks of ~1 KiB into a 32 KiB ring: only the newest ~30 stay.
    let daemon = daemon(&["--event-ring-bytes", "32768"], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    prompt_ok(&daemon, &session, "chunks 200 1024").await;
    let mut replay = daemon.subscribe(&session, Some("0")).await;
    let mut ids = Vec::new();
    let mut bytes = 0;
    loop {
        let (frame, envelope) = replay
            .next_event(WAIT)
            .await
            .expect("replay")
            .expect("the stream stays open");
        ids.push(envelope["id"].as_u64().expect("an id"));
        bytes += frame.data.as_deref().unwrap_or("").len();
        if frame.event.as_deref() == Some("turn_complete") {
            break;
        }
    }
    assert!(ids.len() < 60, "{} events retained", ids.len());
    assert!(ids.len() > 10, "{} events retained", ids.len());
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "the newest events, without holes: {ids:?}"
    );
    assert_eq!(
        *ids.last().unwrap(),
        201,
        "200 chunks and the turn_complete"
    );
    assert!(bytes < 64 << 10, "{bytes} bytes replayed");
    assert!(
        !daemon.log().contains("core guest fault"),
        "{}",
        daemon.log()
    );
}
