//! The bridge: where HTTP requests, agent processes and the guests meet.
//!
//! It owns no protocol and no I/O of its own: `qserve-http` turns requests
//! into [`Backend`] calls, `qserve-acp` speaks to the agents, and the guests
//! (through `qserve-runtime`) keep the state that decides — the core holds
//! sessions, events and pending permissions; the policy decides permissions,
//! session creates and file access. One module per concern:
//!
//! | module | concern |
//! |---|---|
//! | [`hub`] | the core guest + SSE fan-out, on one owner thread |
//! | [`fanout`] | one session's subscribers: backpressure per subscriber, a bounded backlog per session, eviction |
//! | [`agent`] | one agent process per (workspace, agent): spawn, initialize, dispatch |
//! | [`agent_defs`] | the agents sessions can choose (`--agent`, `--agent-def NAME=…`) |
//! | [`sessions`] | create/attach (coalesced, capped, reaped), list, close |
//! | [`prompts`] | FIFO prompts, cancel |
//! | [`permissions`] | the agent's permission requests and the clients' votes |
//! | [`files`] | the agent's `fs/*` requests: resolved, gated by the policy, performed on what was approved |
//! | [`decisions`] | the context every policy decision gets; `policy_decision` events and decision-log records |
//! | [`policy_swap`] | hot swap: reload, `policy_changed` to every stream |
//! | [`shadow`] | shadow mode: a candidate policy's verdicts, recorded, never acted on |
//! | [`models`] | model switching |
//! | [`lifecycle`] | an agent's death, daemon shutdown |
//! | [`tombstones`] | why a recently ended session ended (404 `session_ended`) |
//! | [`seams`] | the traits between the bridge and the core, the policy (slot and decisions), the agent process and its start (unit tests put fakes behind them) |
//! | [`reaper`] | `--session-idle-timeout-ms`: idle sessions without subscribers are closed |
//! | [`metrics`] | gauges sampled for `GET /metrics`; an agent exit's cause as a label |

mod agent;
pub mod agent_defs;
mod decisions;
mod fanout;
mod files;
mod hub;
mod lifecycle;
mod metrics;
mod models;
mod permissions;
mod policy_swap;
mod prompts;
mod reaper;
pub(crate) mod seams;
mod sessions;
mod shadow;
#[cfg(test)]
mod testing;
mod tombstones;
mod waiters;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qserve_http::{
    Backend, BackendError, CreateSession, DeepHealth, PolicyHealth, PolicyInfo, PolicyReload,
    SessionCreated, SessionInfo, SessionSummary, Subscription, VoteOutcome,
};
use qserve_runtime::{AgentInfo, Context, CoreGuest, GuestActor, Phase, Scope};

use crate::policy::decision_log::DecisionLog;
use crate::policy::slot::PolicySlot;
use serde_json::Value;

pub use agent::AgentHost;
pub use agent_defs::AgentDefs;
pub use hub::Hub;
use seams::PolicySource;
use sessions::{InFlight, LiveSession};
use waiters::Waiters;

/// How the bridge runs agents and times things out.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `--agent` (named `default`) and the `--agent-def`s.
    pub agents: AgentDefs,
    pub default_scope: Scope,
    /// How long clients have to vote, unless the policy says otherwise.
    pub permission_timeout: Duration,
    /// How long an agent has to answer `initialize`.
    pub init_timeout: Duration,
    /// Longest accepted line on an agent's stdout.
    pub max_line_bytes: usize,
    /// Environment variables removed from every agent's environment (the token).
    pub scrub_env: Vec<String>,
    /// Bound on one model switch.
    pub model_switch_timeout: Duration,
    /// SIGTERM → SIGKILL grace when stopping an agent.
    pub stop_grace: Duration,
    /// `--memory-budget-mb` in bytes: no new agent while the agents' trees
    /// use this much RSS. `None` = no budget.
    pub memory_budget: Option<u64>,
    /// `--agent-mode`: the ACP session mode every session is put in, instead
    /// of the agent's asking mode from the quirks table.
    pub agent_mode: Option<String>,
    /// `--cancel-grace`: how long an agent has to end a cancelled prompt.
    pub cancel_grace: Duration,
    /// `--prompt-deadline-ms`: wall-clock cap on a prompt (then cancelled).
    pub prompt_deadline: Option<Duration>,
    /// `--session-idle-timeout-ms`: sessions idle this long with no subscriber are reaped.
    pub session_idle_timeout: Option<Duration>,
    /// `--max-pending-prompts-per-session` (running + queued; 0 = unlimited).
    pub max_pending_prompts: u32,
}

/// (agent name, canonical workspace): one agent process each.
type AgentKey = (String, String);
/// Coalesces concurrent spawns of one agent.
type AgentSlot = Arc<tokio::sync::OnceCell<Arc<AgentHost>>>;
/// The running (or starting) agent of each (agent, workspace).
type AgentSlots = HashMap<AgentKey, AgentSlot>;

/// Cheap to clone; every clone is the same daemon.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: BridgeConfig,
    hub: GuestActor<Hub>,
    /// The active policy; swapped whole by a reload.
    policy: Arc<dyn PolicySource>,
    /// `--shadow-component`: decides too, only recorded.
    shadow: Option<Arc<PolicySlot>>,
    /// `--decision-log` (a no-op handle when not configured).
    decisions: DecisionLog,
    /// The default agent as decisions name it (before a session exists).
    agent_info: AgentInfo,
    waiters: Arc<Waiters>,
    /// How agents are started (real processes; a pipe in unit tests).
    spawner: Arc<dyn seams::Spawner>,
    /// One agent per (agent name, canonical workspace); the cell coalesces
    /// concurrent spawns.
    agents: Mutex<AgentSlots>,
    /// Live sessions by daemon session id.
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
    /// Creates in flight, by core reservation, for single-scope waiters.
    in_flight: Mutex<HashMap<u64, InFlight>>,
    /// Set once shutdown starts: no new sessions.
    shutting_down: AtomicBool,
    /// Recently ended sessions and why (bounded in count and time).
    tombstones: Mutex<tombstones::Tombstones>,
}

impl Bridge {
    /// Start the guests' owner threads. The guests are built on their threads
    /// (a `Store` never moves), from loaders that already validated them.
    pub fn new(
        config: BridgeConfig,
        core: impl FnOnce() -> CoreGuest + Send + 'static,
        policy: Arc<PolicySlot>,
        shadow: Option<Arc<PolicySlot>>,
        decisions: DecisionLog,
    ) -> Self {
        let (recovered, recoveries) = tokio::sync::mpsc::unbounded_channel();
        let agent_info = config.agents.default_agent().info();
        let runtime = tokio::runtime::Handle::current();
        let bridge = Bridge {
            inner: Arc::new(Inner {
                config,
                agent_info,
                decisions,
                hub: GuestActor::spawn("core", move || {
                    let mut core = core();
                    core.on_recovery(move |recovery| {
                        let _ = recovered.send(recovery);
                    });
                    Hub::new(Box::new(core), runtime)
                }),
                policy,
                shadow,
                waiters: Arc::default(),
                spawner: Arc::new(seams::ProcessSpawner),
                agents: Mutex::default(),
                sessions: Mutex::default(),
                in_flight: Mutex::default(),
                shutting_down: AtomicBool::new(false),
                tombstones: Mutex::default(),
            }),
        };
        if let Some(idle) = bridge.inner.config.session_idle_timeout {
            tokio::spawn(reaper::reap_idle_sessions(
                Arc::downgrade(&bridge.inner),
                idle,
            ));
        }
        metrics::sample_gauges(Arc::downgrade(&bridge.inner));
        tokio::spawn(lifecycle::after_core_faults(
            Arc::downgrade(&bridge.inner),
            recoveries,
        ));
        bridge
    }

    /// Stop everything: see [`lifecycle`].
    pub async fn shutdown(&self) {
        self.inner.shutdown().await
    }

    /// Kill every agent's process group now (a second signal during shutdown).
    pub fn kill_all_agents(&self) {
        self.inner.kill_all_agents()
    }

    /// SIGHUP: reload `--component`/`--policy-config` and reopen the decision log.
    pub async fn on_hangup(&self) {
        self.inner.decisions.reopen();
        if let Err(err) = self.inner.reload_startup_policy().await {
            tracing::error!("policy reload on SIGHUP failed; the old policy stays active: {err}");
        }
        if let Some(shadow) = &self.inner.shadow {
            match shadow.reload_startup().await {
                Ok((_, new)) => {
                    tracing::info!(shadow = %new.name, version = %new.version, "shadow policy reloaded")
                }
                Err(err) => tracing::error!(
                    "shadow policy reload on SIGHUP failed; the old shadow stays: {err}"
                ),
            }
        }
    }

    /// `--watch-policy` saw a policy file change: reload as SIGHUP does (a
    /// failure is logged by the reload and leaves the old policy active).
    pub async fn on_policy_files_changed(&self) {
        let _ = self.inner.reload_changed_policy().await;
    }

    /// Wait until the decision log has written everything queued (shutdown).
    pub fn flush_decision_log(&self) {
        self.inner.decisions.flush()
    }
}

impl Inner {
    /// The context of a decision inside a live session (its scope is the
    /// session's own; the daemon default if it is already gone).
    fn decision_context(&self, session_id: &str, workspace: &str, phase: Phase) -> Context {
        let (scope, agent) = self.sessions.lock().unwrap().get(session_id).map_or(
            (self.config.default_scope, self.agent_info.clone()),
            |live| (live.scope, live.agent_info.clone()),
        );
        decisions::context(
            session_id,
            workspace,
            &agent,
            decisions::scope_of(scope),
            phase,
        )
    }

    fn session(&self, session_id: &str) -> Result<Arc<LiveSession>, BackendError> {
        let live = self.sessions.lock().unwrap().get(session_id).cloned();
        live.ok_or_else(|| self.session_not_found(session_id))
    }

    /// 404 for a session that is not live: `session_ended` with the reason
    /// when it ended recently, a plain 404 otherwise.
    fn session_not_found(&self, session_id: &str) -> BackendError {
        self.tombstones
            .lock()
            .unwrap()
            .ended(session_id)
            .unwrap_or_else(|| BackendError::NotFound(format!("session {session_id} not found")))
    }
}

fn internal(message: impl Into<String>) -> BackendError {
    BackendError::Internal {
        message: message.into(),
        code: None,
    }
}

impl Backend for Bridge {
    async fn create_or_attach(&self, req: CreateSession) -> Result<SessionCreated, BackendError> {
        self.inner.clone().create_or_attach(req).await
    }

    async fn prompt(
        &self,
        session_id: &str,
        body: serde_json::Map<String, Value>,
    ) -> Result<Value, BackendError> {
        self.inner.clone().prompt(session_id, body).await
    }

    async fn cancel(&self, session_id: &str) -> Result<(), BackendError> {
        self.inner.cancel(session_id).await
    }

    async fn subscribe(
        &self,
        session_id: &str,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, BackendError> {
        if let Some(live) = self.inner.sessions.lock().unwrap().get(session_id) {
            live.turn.touch();
        }
        let sid = session_id.to_owned();
        self.inner
            .hub
            .call(move |hub| hub.subscribe(&sid, last_event_id))
            .await
            .map_err(|_| internal("the core is not running"))?
            .map_err(|err| match err {
                BackendError::NotFound(_) => self.inner.session_not_found(session_id),
                other => other,
            })
    }

    async fn vote(&self, request_id: &str, outcome: VoteOutcome) -> Result<(), BackendError> {
        self.inner.vote(request_id, outcome).await
    }

    async fn session_info(&self, session_id: &str) -> Result<SessionInfo, BackendError> {
        let live = self.inner.session(session_id)?;
        Ok(SessionInfo {
            session_id: live.id.clone(),
            workspace_cwd: live.agent.workspace.clone(),
            agent: live.agent_info.name.clone(),
            agent_command: live.agent_info.command.clone(),
            agent_mode: live.agent_info.mode.clone(),
            scope: match live.scope {
                Scope::Single => "single",
                Scope::Thread => "thread",
            },
        })
    }

    async fn list_workspace(&self, cwd: PathBuf) -> Result<Vec<SessionSummary>, BackendError> {
        self.inner.list_workspace(cwd).await
    }

    /// From the host's table of live sessions (the web console's list).
    async fn list_sessions(&self) -> Result<Vec<SessionSummary>, BackendError> {
        let mut listed: Vec<SessionSummary> = self
            .inner
            .sessions
            .lock()
            .unwrap()
            .values()
            .map(|live| SessionSummary {
                session_id: live.id.clone(),
                workspace_cwd: live.agent.workspace.clone(),
                agent: live.agent_info.name.clone(),
            })
            .collect();
        listed.sort_by(|a, b| {
            (&a.workspace_cwd, &a.agent, &a.session_id).cmp(&(
                &b.workspace_cwd,
                &b.agent,
                &b.session_id,
            ))
        });
        Ok(listed)
    }

    async fn set_model(&self, session_id: &str, model_id: String) -> Result<Value, BackendError> {
        self.inner.set_model(session_id, &model_id).await
    }

    async fn close(&self, session_id: &str) -> Result<(), BackendError> {
        self.inner.clone().close(session_id).await
    }

    async fn deep_health(&self) -> Result<DeepHealth, BackendError> {
        let stats = tokio::time::timeout(
            Duration::from_secs(2),
            self.inner.hub.call(|hub| hub.core.stats()),
        )
        .await
        .map_err(|_| BackendError::Unavailable("the core did not answer within 2 s".into()))?
        .map_err(|_| BackendError::Unavailable("the core is not running".into()))?
        .map_err(hub::core_unavailable)?;
        let policy = self.inner.policy.current().policy.health();
        Ok(DeepHealth {
            sessions: stats.sessions,
            pending_permissions: stats.pending_permissions,
            policy: PolicyHealth {
                in_flight: policy.in_flight,
                stuck: policy.stuck,
                faults: policy.faults,
                recent_faults: policy.recent_faults,
                last_fault: policy.last_fault,
            },
        })
    }

    fn agent_names(&self) -> Vec<String> {
        self.inner.config.agents.names()
    }

    fn policy_info(&self) -> PolicyInfo {
        self.inner.policy.info()
    }

    async fn reload_policy(&self, req: PolicyReload) -> Result<PolicyInfo, BackendError> {
        self.inner
            .reload_admin_policy(req)
            .await
            .map_err(|err| BackendError::PolicyRejected(err.to_string()))
    }
}
