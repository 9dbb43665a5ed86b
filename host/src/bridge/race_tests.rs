//! The races around a permission the clients vote on, deterministic: the
//! core's real logic behind the seam (`testing.rs`), the hub's thread held
//! while the contenders queue, so each order is forced, not hoped for; the
//! permission timeout fires by advancing paused time.
//!
//! Whatever the order, the agent is answered once with the winner's
//! outcome, exactly one `permission_resolved` is published, and the loser
//! is told (a late vote gets 404).

use std::sync::Arc;
use std::time::Duration;

use qserve_acp::methods::PermissionRequest;
use qserve_http::{BackendError, VoteOutcome as ClientVote};
use qserve_runtime::{Phase, Scope, VoteOutcome};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::AskEnd;
use crate::bridge::decisions::{self, DecisionRecord, Source};
use crate::bridge::testing::{busy, core_session, events, hold_hub, inner, settle};
use crate::bridge::Inner;

const TIMEOUT: Duration = Duration::from_secs(3600);

fn request() -> PermissionRequest {
    let raw = serde_json::value::RawValue::from_string(
        json!({
            "sessionId": "agent-session",
            "toolCall": { "toolCallId": "call-1", "title": "edit", "kind": "edit" },
            "options": [
                { "optionId": "proceed_once", "name": "Allow", "kind": "allow_once" },
                { "optionId": "cancel", "name": "Reject", "kind": "reject_once" }
            ]
        })
        .to_string(),
    )
    .unwrap();
    PermissionRequest::parse(&raw).unwrap()
}

fn record(inner: &Inner, session_id: &str) -> DecisionRecord {
    DecisionRecord {
        decision_id: "decision-1".into(),
        kind: "permission",
        context: decisions::context(
            session_id,
            "/ws",
            &inner.agent_info,
            decisions::scope_of(Scope::Thread),
            Phase::Running,
        ),
        subject: Default::default(),
        policy: json!({}),
        policy_verdict: "ask",
        policy_reason: "ask the clients".into(),
        policy_latency: Duration::ZERO,
        log_only: Default::default(),
    }
}

/// The agent's request handed to the clients; returns its task (what the
/// agent will be answered) and the request id once it is published.
async fn ask(inner: &Arc<Inner>, session_id: &str) -> (JoinHandle<AskEnd>, String) {
    let task = tokio::spawn({
        let inner = inner.clone();
        let sid = session_id.to_owned();
        async move {
            let record = record(&inner, &sid);
            inner.ask_clients(&sid, &request(), TIMEOUT, &record).await
        }
    });
    loop {
        let published = busy(events(inner, session_id)).await;
        if let Some((_, data)) = published.iter().find(|(k, _)| k == "permission_request") {
            // The asking task resumes from the hub's answer and starts its
            // timeout before the test moves the clock.
            settle().await;
            return (task, data["requestId"].as_str().unwrap().to_owned());
        }
        tokio::task::yield_now().await;
    }
}

fn vote(inner: &Arc<Inner>, request_id: &str) -> JoinHandle<Result<(), BackendError>> {
    let inner = inner.clone();
    let rid = request_id.to_owned();
    tokio::spawn(async move {
        let vote = ClientVote::Selected {
            option_id: "proceed_once".into(),
        };
        inner.vote(&rid, vote).await
    })
}

fn cancel(inner: &Arc<Inner>, session_id: &str) -> JoinHandle<()> {
    let inner = inner.clone();
    let sid = session_id.to_owned();
    tokio::spawn(async move { inner.cancel_permissions(&sid).await })
}

async fn resolved(inner: &Inner, session_id: &str) -> Vec<Value> {
    events(inner, session_id)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "permission_resolved")
        .map(|(_, data)| data["outcome"].clone())
        .collect()
}

fn selected(end: &AskEnd) -> bool {
    matches!(&end.outcome, VoteOutcome::Selected(id) if id == "proceed_once")
}

#[tokio::test(start_paused = true)]
async fn a_vote_just_before_the_timeout_wins_and_the_agent_is_answered_once() {
    let inner = inner(TIMEOUT);
    let sid = busy(core_session(&inner, "/ws")).await;
    let (asked, request_id) = ask(&inner, &sid).await;
    let open = busy(hold_hub(&inner)).await;
    let voted = vote(&inner, &request_id);
    settle().await;
    // The deadline passes with the vote queued but not yet decided.
    tokio::time::advance(TIMEOUT).await;
    settle().await;
    open.send(()).unwrap();

    let end = asked.await.unwrap();
    assert!(selected(&end), "the vote won: {:?}", end.outcome);
    assert_eq!(end.source, Source::Client);
    voted.await.unwrap().expect("the vote is accepted");
    assert_eq!(
        resolved(&inner, &sid).await,
        [json!({ "outcome": "selected", "optionId": "proceed_once" })]
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_just_before_a_vote_wins_and_the_late_vote_gets_404() {
    let inner = inner(TIMEOUT);
    let sid = busy(core_session(&inner, "/ws")).await;
    let (asked, request_id) = ask(&inner, &sid).await;
    let open = busy(hold_hub(&inner)).await;
    tokio::time::advance(TIMEOUT).await;
    settle().await;
    let voted = vote(&inner, &request_id);
    settle().await;
    open.send(()).unwrap();

    let end = asked.await.unwrap();
    assert!(matches!(end.outcome, VoteOutcome::Cancelled));
    assert_eq!(end.source, Source::Timeout);
    assert!(matches!(
        voted.await.unwrap(),
        Err(BackendError::NotFound(_))
    ));
    assert_eq!(
        resolved(&inner, &sid).await,
        [json!({ "outcome": "cancelled" })]
    );
}

#[tokio::test]
async fn a_cancel_just_before_a_vote_wins_and_the_vote_gets_404() {
    let inner = inner(TIMEOUT);
    let sid = busy(core_session(&inner, "/ws")).await;
    let (asked, request_id) = ask(&inner, &sid).await;
    let open = busy(hold_hub(&inner)).await;
    let cancelled = cancel(&inner, &sid);
    settle().await;
    let voted = vote(&inner, &request_id);
    settle().await;
    open.send(()).unwrap();

    let end = asked.await.unwrap();
    assert!(matches!(end.outcome, VoteOutcome::Cancelled));
    assert_eq!(end.source, Source::Cancel);
    cancelled.await.unwrap();
    assert!(matches!(
        voted.await.unwrap(),
        Err(BackendError::NotFound(_))
    ));
    assert_eq!(
        resolved(&inner, &sid).await,
        [json!({ "outcome": "cancelled" })]
    );
}

#[tokio::test]
async fn a_vote_just_before_a_cancel_wins_and_the_cancel_finds_nothing_left() {
    let inner = inner(TIMEOUT);
    let sid = busy(core_session(&inner, "/ws")).await;
    let (asked, request_id) = ask(&inner, &sid).await;
    let open = busy(hold_hub(&inner)).await;
    let voted = vote(&inner, &request_id);
    settle().await;
    let cancelled = cancel(&inner, &sid);
    settle().await;
    open.send(()).unwrap();

    let end = asked.await.unwrap();
    assert!(selected(&end), "the vote won: {:?}", end.outcome);
    assert_eq!(end.source, Source::Client);
    voted.await.unwrap().expect("the vote is accepted");
    cancelled.await.unwrap();
    assert_eq!(
        resolved(&inner, &sid).await,
        [json!({ "outcome": "selected", "optionId": "proceed_once" })]
    );
}
