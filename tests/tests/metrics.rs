//! `GET /metrics` through the real binary and the fake agent: the token is
//! needed, and the counters and gauges move by exactly what happened — a
//! session created, a prompt streamed, a permission the policy decided, one
//! a client voted on, a reconnect that replayed, an agent stopped.
//!
//! The exposition text is parsed sample by sample
//! (`qserve_metrics::exposition`), so a malformed line fails the test.

mod common;

use std::time::Duration;

use common::*;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_metrics::exposition::Scrape;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "metrics-token-3";
const ADMIN: &str = "metrics-admin-5";

async fn scrape(daemon: &Daemon) -> Scrape {
    let response = daemon
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// How much `name{labels…}` (summed over other labels) grew between two scrapes.
fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

fn gauge(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .value(name, labels)
        .unwrap_or_else(|| panic!("no {name}{labels:?} in the scrape"))
}

/// The last of `chunks 5` (each text starts `chunk I `).
fn last_chunk(envelope: &Value) -> bool {
    chunk_text(envelope).is_some_and(|text| text.starts_with("chunk 4 "))
}

async fn admin_put(daemon: &Daemon, body: &Value) -> StatusCode {
    daemon
        .http()
        .put(daemon.url("/admin/policy"))
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_counters_move_by_what_the_fake_agent_did_and_the_route_needs_the_token() {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.token = Some(TOKEN.into());
    options
        .args
        .extend(["--component", "builtin:readonly"].map(str::to_owned));
    options
        .envs
        .push(("QSERVE_ADMIN_TOKEN".into(), ADMIN.into()));
    let daemon = Daemon::start(options).await;

    // Without the token: the JSON 401 every route gives.
    let refused = daemon
        .http()
        .get(daemon.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.expect("a JSON 401 body");
    assert!(body["error"].is_string(), "{body}");

    let before = scrape(&daemon).await;
    assert_eq!(gauge(&before, "qserve_sessions", &[]), 0.0);

    // A session, its stream, and a prompt that streams five chunks.
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;
    prompt_ok(&daemon, &session, "chunks 5").await;
    wait_event(&mut events, "session_update", last_chunk).await;

    // The readonly policy selects allow-once for a read tool by itself.
    prompt_ok(&daemon, &session, "permission read").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;

    // The default policy asks the clients; while it waits, it is pending.
    let swapped = admin_put(
        &daemon,
        &json!({"component": "builtin:default", "config": ""}),
    )
    .await;
    assert_eq!(swapped, StatusCode::OK);
    let voting = {
        let request = daemon
            .request(reqwest::Method::POST, &format!("/session/{session}/prompt"))
            .json(&json!({"prompt": [{"type": "text", "text": "permission edit"}]}));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    let asked = wait_event(&mut events, "permission_request", |_| true).await;
    let request_id = asked["data"]["requestId"].as_str().unwrap().to_owned();
    let waiting = scrape(&daemon).await;
    assert_eq!(gauge(&waiting, "qserve_pending_permissions", &[]), 1.0);
    let (status, _) = daemon.vote(&request_id, "proceed_once").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(voting.await.unwrap(), StatusCode::OK);
    wait_chunk(&mut events, "outcome: selected proceed_once").await;

    // A reconnect from the first event replays the rest from the ring.
    let mut resumed = daemon.subscribe(&session, Some("1")).await;
    wait_event(&mut resumed, "session_update", last_chunk).await;

    let after = scrape(&daemon).await;
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);

    // Gauges: what is there now.
    assert_eq!(gauge(&after, "qserve_sessions", &[]), 1.0);
    assert_eq!(gauge(&after, "qserve_agents", &[("state", "live")]), 1.0);
    assert_eq!(
        gauge(&after, "qserve_agents", &[("state", "spawning")]),
        0.0
    );
    assert_eq!(gauge(&after, "qserve_subscribers", &[]), 2.0);
    assert_eq!(gauge(&after, "qserve_pending_permissions", &[]), 0.0);

    // Agents and events.
    assert_eq!(d("qserve_agent_spawns_total", &[]), 1.0);
    let updates = d(
        "qserve_events_published_total",
        &[("kind", "session_update")],
    );
    // Five chunks and two outcome chunks at least (tool-call updates may add more).
    assert!(updates >= 7.0, "session_update published: {updates}");
    assert_eq!(
        d(
            "qserve_events_published_total",
            &[("kind", "permission_request")]
        ),
        1.0
    );
    assert_eq!(
        d(
            "qserve_events_published_total",
            &[("kind", "permission_resolved")]
        ),
        1.0
    );
    assert_eq!(
        d(
            "qserve_events_published_total",
            &[("kind", "policy_decision")]
        ),
        2.0
    );
    // Every update reached the first stream, and the resumed one replayed
    // at least the five chunks.
    let replayed = d("qserve_events_replayed_total", &[]);
    assert!(replayed >= 5.0, "replayed: {replayed}");
    let delivered = d("qserve_events_delivered_total", &[]);
    assert!(
        delivered >= updates + replayed,
        "delivered {delivered}, updates {updates}, replayed {replayed}"
    );
    assert_eq!(d("qserve_subscriber_evictions_total", &[]), 0.0);

    // Decisions: one by the policy, one by a client's vote.
    let permissions = |source, outcome| {
        d(
            "qserve_permission_decisions_total",
            &[("source", source), ("outcome", outcome)],
        )
    };
    assert_eq!(permissions("policy", "selected"), 1.0);
    assert_eq!(permissions("client", "selected"), 1.0);
    assert_eq!(d("qserve_permission_decisions_total", &[]), 2.0);
    let policy = |kind, verdict| {
        d(
            "qserve_policy_decisions_total",
            &[("kind", kind), ("verdict", verdict)],
        )
    };
    assert_eq!(policy("permission", "select"), 1.0);
    assert_eq!(policy("permission", "ask"), 1.0);
    assert_eq!(policy("session_create", "allow"), 1.0);
    assert_eq!(
        d(
            "qserve_policy_decision_seconds_count",
            &[("kind", "permission")]
        ),
        2.0
    );
    assert_eq!(d("qserve_policy_faults_total", &[]), 0.0);
    assert_eq!(d("qserve_core_faults_total", &[]), 0.0);

    // HTTP requests by route template and status.
    let http = |method, route, status| {
        d(
            "qserve_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(http("POST", "/session", "200"), 1.0);
    assert_eq!(http("POST", "/session/{id}/prompt", "200"), 3.0);
    assert_eq!(http("POST", "/permission/{requestId}", "200"), 1.0);
    assert_eq!(http("GET", "/session/{id}/events", "200"), 2.0);
    assert!(
        after.sum(
            "qserve_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ) >= 1.0
    );

    // Closing the only session stops its agent: counted as `stopped`.
    drop(resumed);
    let closed = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let deadline = tokio::time::Instant::now() + WAIT;
    let ended = loop {
        let now = scrape(&daemon).await;
        if now.sum("qserve_agent_exits_total", &[("cause", "stopped")]) >= 1.0 {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agent exit counted within {WAIT:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gauge(&ended, "qserve_sessions", &[]), 0.0);
    assert_eq!(gauge(&ended, "qserve_agents", &[("state", "live")]), 0.0);
}

/// A policy that answers with an option nobody offered fails closed, and a
/// core trap rebuilds the core: both counted, each under a fixed cause word.
#[tokio::test]
async fn policy_and_core_faults_are_counted_by_cause() {
    let bad_option = guest_component("policy-hostile-bad-option");
    let faulty_core = guest_component("core-faulty");
    let daemon = daemon(
        &[
            "--component",
            bad_option.to_str().unwrap(),
            "--core-component",
            faulty_core.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let before = scrape(&daemon).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    prompt_ok(&daemon, &session, "permission edit").await;
    wait_chunk(&mut events, "outcome: cancelled").await;
    // The test core traps on this text.
    prompt_ok(&daemon, &session, "echo qserve-test-core-trap").await;
    wait_event(&mut events, "core_restarted", |_| true).await;

    let after = scrape(&daemon).await;
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    assert_eq!(
        d(
            "qserve_policy_faults_total",
            &[("kind", "permission"), ("cause", "bad_answer")]
        ),
        1.0
    );
    assert_eq!(d("qserve_policy_faults_total", &[]), 1.0);
    assert_eq!(
        d(
            "qserve_policy_decisions_total",
            &[("kind", "permission"), ("verdict", "fault")]
        ),
        1.0
    );
    assert_eq!(
        d(
            "qserve_permission_decisions_total",
            &[("source", "fault"), ("outcome", "cancelled")]
        ),
        1.0
    );
    assert_eq!(d("qserve_core_faults_total", &[]), 1.0);
    let causes: Vec<_> = after
        .matching("qserve_core_faults_total", &[])
        .map(|s| s.labels["cause"].clone())
        .collect();
    assert_eq!(causes, ["trap"], "the core fault's cause word");
}
