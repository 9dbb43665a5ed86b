//! What the bridge tells `qserve-metrics`: the gauges read from the state
//! the bridge owns at each scrape (so no missed path can make them drift),
//! and the fixed words an agent's exit is counted under; and the spans
//! `--otlp-endpoint` exports (agent requests, policy decisions), each with
//! `qserve.session_id` so a tracing backend links them to the HTTP request.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use qserve_acp::ExitInfo;
use qserve_metrics::SPAN_TARGET;
use tracing::Span;

use super::agent::AgentHost;
use super::decisions::DecisionRecord;
use super::Inner;

/// Sessions, agents (live and still spawning) and pending permissions, read
/// when `/metrics` is scraped; nothing once the bridge is gone.
pub(super) fn sample_gauges(inner: Weak<Inner>) {
    qserve_metrics::get().sample_with(move |metrics| {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        metrics.set_sessions(inner.sessions.lock().unwrap().len());
        let (live, spawning) =
            inner
                .agents
                .lock()
                .unwrap()
                .values()
                .fold((0, 0), |(live, spawning), cell| match cell.initialized() {
                    true => (live + 1, spawning),
                    false => (live, spawning + 1),
                });
        metrics.set_agents(live, spawning);
        metrics.set_pending_permissions(inner.waiters.len());
    });
}

/// `qserve_agent_exits_total{cause}`: `stopped` (the daemon stopped it: its
/// last session closed, or a failed create), `shutdown`, else how it ended
/// on its own: `signal`, `error` (non-zero exit) or `exited` (zero).
pub(super) fn exit_cause(inner: &Inner, host: &AgentHost, exit: &ExitInfo) -> &'static str {
    if host.stopping.load(Ordering::Acquire) {
        "stopped"
    } else if inner.is_shutting_down() {
        "shutdown"
    } else if exit.signal.is_some() {
        "signal"
    } else if exit.code.is_some_and(|code| code != 0) {
        "error"
    } else {
        "exited"
    }
}

/// One call of the active policy: its verdict, latency and, when it failed
/// closed, the class of the fault (`qserve_policy_*`).
pub(super) fn count_decision(record: &DecisionRecord, fault: Option<&str>, span: &Span) {
    span.record("qserve.verdict", record.policy_verdict);
    qserve_metrics::get().policy_decided(
        record.kind,
        record.policy_verdict,
        record.policy_latency,
        fault.map(qserve_runtime::fault_class),
    );
}

/// One policy decision (`kind`: `permission`, `file_access`,
/// `session_create`); the verdict is recorded by [`count_decision`].
pub(super) fn decision_span(kind: &'static str, session_id: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "policy.decide",
        otel.name = %format_args!("policy {kind}"),
        qserve.decision_kind = kind,
        qserve.session_id = %session_id,
        qserve.verdict = tracing::field::Empty,
    )
}

/// One JSON-RPC request between the daemon and an agent. `direction` is
/// `agent_to_daemon` (the agent asks: permission, `fs/*`; the daemon
/// session is recorded once routed) or `daemon_to_agent`.
pub(super) fn agent_request_span(
    method: &str,
    direction: &'static str,
    session_id: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "acp.request",
        otel.name = %format_args!("acp {method}"),
        rpc.system = "jsonrpc",
        rpc.method = %method,
        qserve.direction = direction,
        qserve.session_id = tracing::field::Empty,
    );
    if let Some(session_id) = session_id {
        span.record("qserve.session_id", session_id);
    }
    span
}
