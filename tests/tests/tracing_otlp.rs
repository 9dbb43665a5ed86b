//! `--otlp-endpoint`: the daemon's spans reach an OTLP/HTTP collector (a
//! loopback mock), flushed at the SIGTERM drain — an HTTP request span, an
//! agent JSON-RPC request span and a policy decision span, each carrying
//! the same `qserve.session_id`, so a trace backend links them.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::mock_otlp::{MockOtlp, ReceivedSpan};

#[tokio::test]
async fn spans_of_a_request_its_agent_call_and_its_policy_decision_share_the_session_id() {
    let collector = MockOtlp::start().expect("the mock collector");
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            "builtin:readonly",
            "--otlp-endpoint",
            &collector.endpoint(),
        ]
        .map(str::to_owned),
    );
    let mut daemon = Daemon::start(options).await;

    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;
    // The readonly policy decides a read tool's permission by itself.
    prompt_ok(&daemon, &session, "permission read").await;
    wait_chunk(&mut events, "outcome: selected proceed_once").await;
    drop(events);

    // The drain exports what is still queued before the process exits.
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_for_exit(Duration::from_secs(30))
        .await
        .expect("the daemon exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", daemon.log());

    let spans = collector.spans();
    let of_session = |span: &&ReceivedSpan| span.attribute("qserve.session_id") == Some(&session);
    let find = |what: &str, pred: &dyn Fn(&ReceivedSpan) -> bool| -> ReceivedSpan {
        spans
            .iter()
            .filter(of_session)
            .find(|span| pred(span))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no {what} span with qserve.session_id={session} among {} spans \
                     ({} export requests): {spans:#?}\n{}",
                    spans.len(),
                    collector.export_requests(),
                    daemon.log()
                )
            })
    };

    let http = find("HTTP request", &|span| {
        span.attribute("http.route") == Some("/session/{id}/prompt")
    });
    assert_eq!(http.name, "POST /session/{id}/prompt");
    assert_eq!(http.attribute("http.request.method"), Some("POST"));
    assert_eq!(http.attribute("http.response.status_code"), Some("200"));

    let asked = find("agent request", &|span| {
        span.attribute("rpc.method") == Some("session/request_permission")
    });
    assert_eq!(asked.attribute("qserve.direction"), Some("agent_to_daemon"));
    let prompted = find("daemon-to-agent request", &|span| {
        span.attribute("rpc.method") == Some("session/prompt")
    });
    assert_eq!(
        prompted.attribute("qserve.direction"),
        Some("daemon_to_agent")
    );
    // The prompt went to the agent inside the HTTP request that sent it.
    assert_eq!(prompted.trace_id, http.trace_id);
    assert_eq!(prompted.parent_span_id, http.span_id);

    let decision = find("policy decision", &|span| {
        span.attribute("qserve.decision_kind") == Some("permission")
    });
    assert_eq!(decision.attribute("qserve.verdict"), Some("select"));
    // The decision ran inside the agent's request: one trace, parent and child.
    assert_eq!(decision.trace_id, asked.trace_id);
    assert_eq!(decision.parent_span_id, asked.span_id);
}
