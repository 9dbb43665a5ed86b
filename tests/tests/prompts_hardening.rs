//! Prompts under a hostile or stuck agent (issue 11, findings 2, 10 and 11):
//! a cancel is bounded by `--cancel-grace`, a prompt by
//! `--prompt-deadline-ms`, a session's queue by
//! `--max-pending-prompts-per-session`; a turn's updates are in the ring
//! before its answer, followed by `turn_complete`.

mod common;

use common::{create, daemon, prompt, prompt_ok, tempdir, wait_chunk, wait_event, WAIT};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Starts a prompt on its own task; its answer comes back through the handle.
fn spawn_prompt(
    daemon: &std::sync::Arc<qserve_e2e::daemon::Daemon>,
    session: &str,
    text: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let daemon = daemon.clone();
    let session = session.to_owned();
    let text = text.to_owned();
    tokio::spawn(async move { prompt(&daemon, &session, &text).await })
}

async fn answer(handle: tokio::task::JoinHandle<(StatusCode, Value)>) -> (StatusCode, Value) {
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("the prompt was answered in time")
        .expect("the prompt task")
}

#[tokio::test]
async fn an_agent_that_ignores_cancel_cannot_hold_its_session_past_the_grace() {
    let daemon = std::sync::Arc::new(daemon(&["--cancel-grace", "300ms"], &[]).await);
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    let stuck = spawn_prompt(&daemon, &session, "stuck turn started");
    wait_chunk(&mut events, "turn started").await;
    // Queued behind the stuck prompt: it must run once the stuck one ends.
    let queued = spawn_prompt(&daemon, &session, "echo queued ran");

    let (status, _) = daemon
        .post_json(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, body) = answer(stuck).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", daemon.log());
    assert_eq!(body["stopReason"], "cancelled");
    let complete = wait_event(&mut events, "turn_complete", |_| true).await;
    assert_eq!(complete["data"]["stopReason"], "cancelled");
    assert_eq!(complete["data"]["reason"], "cancel_grace_expired");
    assert_eq!(complete["data"]["sessionId"], session.as_str());

    let (status, body) = answer(queued).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stopReason"], "end_turn");
    wait_chunk(&mut events, "queued ran").await;

    // And the session keeps working.
    assert_eq!(
        prompt_ok(&daemon, &session, "echo still usable").await["stopReason"],
        "end_turn"
    );
}

#[tokio::test]
async fn the_prompt_deadline_cancels_a_prompt_and_bounds_it_by_the_grace() {
    let daemon = std::sync::Arc::new(
        daemon(
            &["--prompt-deadline-ms", "500", "--cancel-grace", "300ms"],
            &[],
        )
        .await,
    );
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    // An agent that honours the cancel ends the turn itself.
    let (status, body) = prompt(&daemon, &session, "sleep 600000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stopReason"], "cancelled");
    let complete = wait_event(&mut events, "turn_complete", |_| true).await;
    assert_eq!(complete["data"]["stopReason"], "cancelled");

    // One that ignores it is cut off after the grace.
    let (status, body) = prompt(&daemon, &session, "stuck ignoring the deadline").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stopReason"], "cancelled");
    let complete = wait_event(&mut events, "turn_complete", |_| true).await;
    assert_eq!(complete["data"]["reason"], "prompt_deadline_exceeded");

    assert_eq!(
        prompt_ok(&daemon, &session, "echo fast").await["stopReason"],
        "end_turn"
    );
}

#[tokio::test]
async fn a_full_prompt_queue_is_refused_with_prompt_queue_full() {
    // Limit 1: the running prompt alone fills the queue, so the refusal does
    // not depend on when a concurrently sent prompt reaches the daemon.
    let daemon = std::sync::Arc::new(
        daemon(
            &[
                "--max-pending-prompts-per-session",
                "1",
                "--cancel-grace",
                "200ms",
            ],
            &[],
        )
        .await,
    );
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    let stuck = spawn_prompt(&daemon, &session, "stuck first");
    wait_chunk(&mut events, "first").await;
    let response = daemon
        .request(reqwest::Method::POST, &format!("/session/{session}/prompt"))
        .json(&json!({ "prompt": [{ "type": "text", "text": "echo second" }] }))
        .send()
        .await
        .expect("POST prompt");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "prompt_queue_full");
    assert_eq!(body["limit"], 1);
    assert_eq!(body["pendingCount"], 1);
    assert_eq!(body["sessionId"], session.as_str());
    assert_eq!(retry_after.expect("Retry-After"), "5");

    let (status, _) = daemon
        .post_json(&format!("/session/{session}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(answer(stuck).await.1["stopReason"], "cancelled");
    // The slot is given back.
    assert_eq!(
        prompt_ok(&daemon, &session, "echo again").await["stopReason"],
        "end_turn"
    );
}

#[tokio::test]
async fn every_update_of_a_turn_is_in_the_ring_before_its_answer_then_turn_complete() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    const CHUNKS: u64 = 300;
    // The race it guards is narrow: several turns make it show.
    for round in 0..10 {
        let body = prompt_ok(&daemon, &session, &format!("chunks {CHUNKS}")).await;
        assert_eq!(body["stopReason"], "end_turn");
        // Subscribed only after the answer: replay shows what the ring held.
        let mut replay = daemon.subscribe(&session, Some("0")).await;
        let mut chunks_this_round = 0;
        let mut seen_turns = 0;
        loop {
            let (frame, envelope) = replay
                .next_event(WAIT)
                .await
                .expect("replay")
                .expect("the stream stays open");
            match frame.event.as_deref() {
                Some("session_update") => chunks_this_round += 1,
                Some("turn_complete") => {
                    assert_eq!(envelope["data"]["stopReason"], "end_turn");
                    assert_eq!(envelope["data"]["sessionId"], session.as_str());
                    seen_turns += 1;
                    if seen_turns == round + 1 {
                        break;
                    }
                    assert_eq!(
                        chunks_this_round, CHUNKS,
                        "turn {seen_turns}: all its updates precede its turn_complete"
                    );
                    chunks_this_round = 0;
                }
                _ => {}
            }
        }
        assert_eq!(
            chunks_this_round, CHUNKS,
            "round {round}: every update of the turn was ringed before the 200"
        );
    }
}

/// The `turn_error` and `turn_complete` events read from `events` up to the first of `last`.
async fn turn_ends_until(
    events: &mut qserve_e2e::sse::SseStream,
    last: &str,
) -> Vec<(String, Value)> {
    let mut ends = Vec::new();
    loop {
        let (frame, envelope) = events
            .next_event(WAIT)
            .await
            .expect("the stream stays up")
            .expect("no end of stream");
        let kind = frame.event.unwrap_or_default();
        if kind == "turn_error" || kind == "turn_complete" {
            ends.push((kind.clone(), envelope));
            if kind == last {
                return ends;
            }
        }
    }
}

fn kinds(ends: &[(String, Value)]) -> Vec<&str> {
    ends.iter().map(|(kind, _)| kind.as_str()).collect()
}

/// A failed prompt says why on the stream: `turn_error` with the turn's `sessionId`, a `code`
/// and a `message`, published before the HTTP answer (as `turn_complete`). Shown with the
/// agent's error (502) and the prompt deadline; a turn that succeeds has none.
#[tokio::test]
async fn a_failed_turn_publishes_turn_error_before_its_http_answer() {
    let daemon = daemon(
        &["--prompt-deadline-ms", "500", "--cancel-grace", "300ms"],
        &[],
    )
    .await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;

    // The agent's error: 502, and turn_error carries the same code and message.
    let (status, body) = prompt(&daemon, &session, "fail Connection error.").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let ends = turn_ends_until(&mut events, "turn_error").await;
    assert_eq!(kinds(&ends), ["turn_error"]);
    let error = &ends[0].1["data"];
    assert_eq!(error["sessionId"], session.as_str());
    assert_eq!(error["code"], "agent_error");
    assert_eq!(error["message"], body["error"], "the 502's message");

    // The deadline, with an agent that ignores the cancel: turn_error, then the turn_complete
    // that says `cancelled` as before. (A stray turn_complete of the failed turn would come
    // first here.)
    let (status, body) = prompt(&daemon, &session, "stuck ignoring the deadline").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ends = turn_ends_until(&mut events, "turn_complete").await;
    assert_eq!(kinds(&ends), ["turn_error", "turn_complete"]);
    let error = &ends[0].1["data"];
    assert_eq!(error["code"], "prompt_deadline_exceeded");
    assert_eq!(error["sessionId"], session.as_str());
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("--prompt-deadline-ms"),
        "{error}"
    );
    assert_eq!(ends[1].1["data"]["reason"], "prompt_deadline_exceeded");

    // A turn that succeeds has no turn_error.
    prompt_ok(&daemon, &session, "echo fine").await;
    let ends = turn_ends_until(&mut events, "turn_complete").await;
    assert_eq!(kinds(&ends), ["turn_complete"]);
    assert_eq!(ends[0].1["data"]["stopReason"], "end_turn");
}
