//! What the bridge tells `qserve-metrics`: the gauges read from the state
//! the bridge owns at each scrape (so no missed path can make them drift),
//! and the fixed words an agent's exit is counted under.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use qserve_acp::ExitInfo;

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
pub(super) fn count_decision(record: &DecisionRecord, fault: Option<&str>) {
    qserve_metrics::get().policy_decided(
        record.kind,
        record.policy_verdict,
        record.policy_latency,
        fault.map(qserve_runtime::fault_class),
    );
}
