//! qserve's Prometheus metrics: one registry for the whole daemon, typed
//! handles, and the OpenMetrics text that `GET /metrics` serves.
//!
//! Why a process-wide registry ([`get`]): the things worth counting happen in
//! three crates (`qserve-http`, `qserve-runtime`'s callers in the bridge, the
//! bridge itself), and threading a handle through each would touch every
//! constructor for a one-line increment. A daemon is one process; its
//! metrics are too.
//!
//! Why every label value is a `&'static str` (or a number): label
//! cardinality is bounded by construction — a session id, a raw path or a
//! fault message cannot become a label, only a name the code spells.
//!
//! Gauges that mirror state the bridge owns (sessions, agents, pending
//! permissions) are not incremented and decremented at call sites, where a
//! missed path would drift forever: they are read from that state at each
//! scrape ([`Metrics::sample_with`]).

pub mod exposition;

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `tracing` target of the spans `--otlp-endpoint` exports (HTTP
/// requests, agent requests, policy decisions). The log never shows them;
/// the exporter sees nothing else.
pub const SPAN_TARGET: &str = "qserve_trace";

/// What a scrape is answered with: the OpenMetrics text format, which
/// Prometheus asks for first and parses with the metric types intact.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Policy decision latency buckets, in seconds: a builtin answers in tens of
/// microseconds, the default call deadline is a few hundred milliseconds.
const POLICY_SECONDS_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Event kinds the daemon publishes; anything else is counted as `other`.
const EVENT_KINDS: [&str; 10] = [
    "session_update",
    "policy_decision",
    "permission_request",
    "permission_resolved",
    "session_died",
    "turn_complete",
    "core_restarted",
    "policy_changed",
    "model_switched",
    "model_switch_failed",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PermissionLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    kind: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    kind: &'static str,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    /// The matched route template (`/session/{id}`), never the raw path.
    route: String,
    status: u16,
}

type Sampler = Box<dyn Fn(&Metrics) + Send + Sync>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the daemon. Obtain it with [`get`].
pub struct Metrics {
    registry: Registry,
    sampler: Mutex<Option<Sampler>>,
    sessions: Gauge,
    agents: Family<StateLabel, Gauge>,
    subscribers: Gauge,
    pending_permissions: Gauge,
    events_published: Family<KindLabel, Counter>,
    events_delivered: Counter,
    events_replayed: Counter,
    subscriber_evictions: Counter,
    permission_decisions: Family<PermissionLabels, Counter>,
    policy_decisions: Family<PolicyLabels, Counter>,
    policy_decision_seconds: HistogramFamily<KindLabel>,
    policy_faults: Family<FaultLabels, Counter>,
    core_faults: Family<CauseLabel, Counter>,
    agent_spawns: Counter,
    agent_exits: Family<CauseLabel, Counter>,
    http_requests: Family<HttpLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The daemon's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

fn policy_histogram() -> Histogram {
    Histogram::new(POLICY_SECONDS_BUCKETS)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("qserve");
        let metrics = Metrics {
            registry: Registry::default(),
            sampler: Mutex::new(None),
            sessions: Gauge::default(),
            agents: Family::default(),
            subscribers: Gauge::default(),
            pending_permissions: Gauge::default(),
            events_published: Family::default(),
            events_delivered: Counter::default(),
            events_replayed: Counter::default(),
            subscriber_evictions: Counter::default(),
            permission_decisions: Family::default(),
            policy_decisions: Family::default(),
            policy_decision_seconds: Family::new_with_constructor(policy_histogram),
            policy_faults: Family::default(),
            core_faults: Family::default(),
            agent_spawns: Counter::default(),
            agent_exits: Family::default(),
            http_requests: Family::default(),
        };
        let r = &mut registry;
        r.register("sessions", "Live sessions", metrics.sessions.clone());
        r.register(
            "agents",
            "Agent processes by state: live (initialized) or spawning",
            metrics.agents.clone(),
        );
        r.register(
            "subscribers",
            "Open SSE event streams",
            metrics.subscribers.clone(),
        );
        r.register(
            "pending_permissions",
            "Permission requests waiting for a client's vote",
            metrics.pending_permissions.clone(),
        );
        r.register(
            "events_published",
            "Events ringed in a session's stream, by kind",
            metrics.events_published.clone(),
        );
        r.register(
            "events_delivered",
            "Event frames handed to SSE response bodies (live and replayed)",
            metrics.events_delivered.clone(),
        );
        r.register(
            "events_replayed",
            "Event frames sent from the ring to a reconnecting client (Last-Event-ID)",
            metrics.events_replayed.clone(),
        );
        r.register(
            "subscriber_evictions",
            "SSE subscribers dropped because their queue was full (client_evicted)",
            metrics.subscriber_evictions.clone(),
        );
        r.register(
            "permission_decisions",
            "Permission requests ended, by who decided (policy, client, timeout, cancel, fault) and outcome",
            metrics.permission_decisions.clone(),
        );
        r.register(
            "policy_decisions",
            "Policy calls by decision kind and the policy's verdict",
            metrics.policy_decisions.clone(),
        );
        r.register(
            "policy_decision_seconds",
            "Time the active policy took to decide, by decision kind",
            metrics.policy_decision_seconds.clone(),
        );
        r.register(
            "policy_faults",
            "Policy calls that failed closed, by decision kind and cause",
            metrics.policy_faults.clone(),
        );
        r.register(
            "core_faults",
            "Core guest faults (each rebuilt the core), by cause",
            metrics.core_faults.clone(),
        );
        r.register(
            "agent_spawns",
            "Agent processes started",
            metrics.agent_spawns.clone(),
        );
        r.register(
            "agent_exits",
            "Agent processes ended, by cause",
            metrics.agent_exits.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            metrics.http_requests.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Read the state-mirroring gauges from their owner at each scrape
    /// (the last registration wins: there is one bridge per daemon).
    pub fn sample_with(&self, sampler: impl Fn(&Metrics) + Send + Sync + 'static) {
        *self.sampler.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(sampler));
    }

    /// The OpenMetrics text of every metric, gauges sampled first.
    pub fn encode(&self) -> String {
        if let Some(sampler) = &*self.sampler.lock().unwrap_or_else(|e| e.into_inner()) {
            sampler(self);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    // ── gauges (sampled) ────────────────────────────────────────────────

    pub fn set_sessions(&self, live: usize) {
        self.sessions.set(live as i64);
    }

    pub fn set_agents(&self, live: usize, spawning: usize) {
        let state = |state| StateLabel { state };
        self.agents.get_or_create(&state("live")).set(live as i64);
        self.agents
            .get_or_create(&state("spawning"))
            .set(spawning as i64);
    }

    pub fn set_pending_permissions(&self, pending: usize) {
        self.pending_permissions.set(pending as i64);
    }

    /// One open SSE stream, for as long as the guard lives.
    pub fn subscriber(&self) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(())
    }

    // ── events ──────────────────────────────────────────────────────────

    pub fn events_published(&self, kind: &str, count: usize) {
        let kind = EVENT_KINDS
            .iter()
            .find(|known| **known == kind)
            .copied()
            .unwrap_or("other");
        self.events_published
            .get_or_create(&KindLabel { kind })
            .inc_by(count as u64);
    }

    pub fn event_delivered(&self, replayed: bool) {
        self.events_delivered.inc();
        if replayed {
            self.events_replayed.inc();
        }
    }

    pub fn subscriber_evicted(&self) {
        self.subscriber_evictions.inc();
    }

    // ── decisions ───────────────────────────────────────────────────────

    /// A permission request ended: `source` is who decided, `outcome`
    /// `selected` or `cancelled`.
    pub fn permission_decided(&self, source: &'static str, outcome: &'static str) {
        self.permission_decisions
            .get_or_create(&PermissionLabels { source, outcome })
            .inc();
    }

    /// One call of the active policy: `kind` is `permission`, `file_access`
    /// or `session_create`; `fault` the cause class when it failed closed.
    pub fn policy_decided(
        &self,
        kind: &'static str,
        verdict: &'static str,
        latency: Duration,
        fault: Option<&'static str>,
    ) {
        self.policy_decisions
            .get_or_create(&PolicyLabels { kind, verdict })
            .inc();
        self.policy_decision_seconds
            .get_or_create(&KindLabel { kind })
            .observe(latency.as_secs_f64());
        if let Some(cause) = fault {
            self.policy_faults
                .get_or_create(&FaultLabels { kind, cause })
                .inc();
        }
    }

    pub fn core_fault(&self, cause: &'static str) {
        self.core_faults.get_or_create(&CauseLabel { cause }).inc();
    }

    // ── agents ──────────────────────────────────────────────────────────

    pub fn agent_spawned(&self) {
        self.agent_spawns.inc();
    }

    pub fn agent_exited(&self, cause: &'static str) {
        self.agent_exits.get_or_create(&CauseLabel { cause }).inc();
    }

    // ── HTTP ────────────────────────────────────────────────────────────

    /// `route` is the matched route template, or `unmatched`.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
    }
}

/// Counts one open SSE stream until dropped (the body ends or the client
/// goes away).
#[must_use]
pub struct SubscriberGuard(());

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        get().subscribers.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_labels_are_the_ones_given() {
        let metrics = get();
        metrics.events_published("session_update", 3);
        metrics.events_published("something_new", 1);
        metrics.permission_decided("client", "selected");
        metrics.policy_decided(
            "permission",
            "fault",
            Duration::from_millis(3),
            Some("deadline"),
        );
        metrics.http_request("GET", "/session/{id}", 404);
        let guard = metrics.subscriber();
        let text = metrics.encode();
        drop(guard);
        for line in [
            "qserve_events_published_total{kind=\"session_update\"} 3",
            "qserve_events_published_total{kind=\"other\"} 1",
            "qserve_permission_decisions_total{source=\"client\",outcome=\"selected\"} 1",
            "qserve_policy_faults_total{kind=\"permission\",cause=\"deadline\"} 1",
            "qserve_policy_decision_seconds_bucket{le=\"0.005\",kind=\"permission\"} 1",
            "qserve_http_requests_total{method=\"GET\",route=\"/session/{id}\",status=\"404\"} 1",
            "qserve_subscribers 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
