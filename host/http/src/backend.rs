//! What the HTTP layer needs from the rest of the daemon.
//!
//! The routes know nothing of agents, guests or processes: they translate
//! HTTP into calls on a [`Backend`] and its typed errors back into status
//! codes. The daemon's bridge implements it; route tests use a fake.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

/// `sessionScope` of `POST /session` (overrides the daemon's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    Single,
    Thread,
}

/// `POST /session`, validated: `cwd` is absolute.
#[derive(Debug, Clone)]
pub struct CreateSession {
    pub cwd: PathBuf,
    pub model_service_id: Option<String>,
    pub scope: Option<SessionScope>,
    /// Which of the daemon's named agents (`--agent-def`); `None`: the default.
    pub agent: Option<String>,
}

/// The 200 body of `POST /session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCreated {
    pub session_id: String,
    /// The canonical workspace path the session runs in.
    pub workspace_cwd: String,
    pub attached: bool,
    /// The name of the agent the session runs on (`default` for `--agent`).
    pub agent: String,
}

/// One row of `GET /workspace/:cwd/sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    pub workspace_cwd: String,
    /// The name of the agent the session runs on.
    pub agent: String,
}

/// `GET /session/:id`: what a live session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub workspace_cwd: String,
    /// The name of the agent the session runs on.
    pub agent: String,
    /// The agent's program, e.g. `qwen`.
    pub agent_command: String,
    /// The agent session mode the daemon put the session in, if any.
    pub agent_mode: Option<String>,
    /// `single` or `thread`.
    pub scope: &'static str,
}

/// A client's vote on `POST /permission/:requestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    Selected { option_id: String },
    Cancelled,
}

/// `GET /health?deep=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepHealth {
    pub sessions: u32,
    pub pending_permissions: u32,
    /// The active policy's state; a stuck or faulting policy makes the
    /// answer `degraded` (503) even though the core is fine.
    pub policy: PolicyHealth,
}

/// How the active policy is doing, for `/health?deep=1`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyHealth {
    /// Decisions running right now.
    pub in_flight: usize,
    /// Decisions running past their deadline (should never happen: each is
    /// cut off at its deadline; non-zero means the sandbox failed).
    pub stuck: usize,
    /// Faults since the policy was loaded.
    pub faults: u64,
    /// Faults in the last minute.
    pub recent_faults: u64,
    pub last_fault: Option<String>,
}

impl PolicyHealth {
    /// Faults within a minute from which the policy counts as faulting.
    pub const FAULTING_PER_MINUTE: u64 = 3;

    /// A stuck decision, or repeated faults in the last minute, mean the
    /// policy is not deciding as written: readiness probes must see it. One
    /// fault alone (it failed closed, on a fresh instance) does not.
    pub fn is_degraded(&self) -> bool {
        self.stuck > 0 || self.recent_faults >= Self::FAULTING_PER_MINUTE
    }
}

/// The loaded policy, advertised in `/capabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
    /// `builtin:NAME`, a path, or `upload`.
    pub origin: String,
    /// When it was loaded (Unix ms).
    pub loaded_at_ms: u64,
}

/// `PUT /admin/policy`: what to load. A part left out keeps the current one
/// (e.g. only a new config re-initializes the same component with it).
#[derive(Debug, Clone, Default)]
pub struct PolicyReload {
    pub component: Option<ComponentSource>,
    pub config: Option<ConfigSource>,
}

#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// `builtin:NAME` or a path on the daemon's machine.
    Named(String),
    /// The component's bytes, uploaded.
    Uploaded(Bytes),
}

#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The configuration document itself.
    Inline(String),
    /// A file on the daemon's machine.
    Path(PathBuf),
}

/// A live view of one session's event stream.
///
/// Frames are complete SSE frames (`id: …\nevent: …\ndata: …\n\n`), encoded
/// once by the publisher and shared by every subscriber. The writer sends
/// `replay` first, then `live`, skipping any live frame whose id it has
/// already sent (a frame published while the subscription was being set up
/// may appear in both).
pub struct Subscription {
    /// Retained frames after the requested `Last-Event-ID`, oldest first.
    pub replay: Vec<EventFrame>,
    /// Frames published from now on. Closed when the session ends (its
    /// terminal frame is the last one) or when this subscriber is evicted.
    pub live: mpsc::Receiver<EventFrame>,
    /// Set before `live` is closed when the daemon dropped this subscriber
    /// for falling behind: the writer then ends with `client_evicted`.
    pub evicted: Arc<AtomicBool>,
}

/// One encoded SSE frame and the event id it carries (none for synthetic frames).
#[derive(Debug, Clone)]
pub struct EventFrame {
    pub id: Option<u64>,
    pub bytes: Bytes,
}

/// Every way a backend call can fail, each mapping to one status code.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// 400 with an optional machine-readable `code`.
    #[error("{message}")]
    BadRequest {
        message: String,
        code: Option<&'static str>,
    },
    /// 400 `invalid_option_id`: a vote named an option the agent did not
    /// offer; the body names both ids. The request stays pending.
    #[error("option {option_id} was not offered for permission request {request_id}")]
    InvalidOption {
        request_id: String,
        option_id: String,
    },
    /// 403 `policy_refused`: the loaded policy refused (e.g. a session create);
    /// the message carries the policy's reason.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 404 `session_ended`: the session existed and ended recently (a
    /// tombstone); `reason` says why (the agent's death, `closed`,
    /// `reaped`) and `data` is its `session_died` data.
    #[error("session {session_id} has ended: {reason}")]
    SessionEnded {
        session_id: String,
        reason: String,
        data: Value,
    },
    /// 503 `prompt_queue_full` + `Retry-After`: the session already has
    /// `limit` prompts running or queued (as `qwen serve`).
    #[error("prompt queue full for session {session_id} ({pending}/{limit} pending)")]
    PromptQueueFull {
        session_id: String,
        limit: u32,
        pending: u32,
    },
    /// 503 `session_limit_exceeded` + `Retry-After: 5`.
    #[error("session limit reached ({max} sessions)")]
    SessionLimit { max: u32 },
    /// 429 + `Retry-After` at the per-session subscriber cap.
    #[error("too many subscribers on this session (max {max})")]
    TooManySubscribers { max: u32 },
    /// 501: the agent does not implement what was asked (e.g. model switching).
    #[error("{0}")]
    NotSupported(String),
    /// 502: the agent answered with an error; `data` is its JSON-RPC error.
    #[error("{message}")]
    Agent {
        message: String,
        data: Option<Value>,
    },
    /// 503: the bridge cannot answer (e.g. the core guest is wedged).
    #[error("{0}")]
    Unavailable(String),
    /// 422 `policy_load_failed`: a policy reload was refused; the old policy
    /// stays active. The message says why.
    #[error("{0}")]
    PolicyRejected(String),
    /// 500: anything else (spawn failure, agent died, internal fault).
    #[error("{message}")]
    Internal {
        message: String,
        code: Option<&'static str>,
    },
}

/// The daemon as the routes see it. Every method is cancel-safe in the sense
/// the protocol needs: dropping a `prompt` future (the client went away)
/// cancels that prompt; dropping a `create_or_attach` future does not leave an
/// orphan session.
pub trait Backend: Send + Sync + 'static {
    fn create_or_attach(
        &self,
        req: CreateSession,
    ) -> impl Future<Output = Result<SessionCreated, BackendError>> + Send;

    /// `body` is the whole request body (an object with a non-empty `prompt`
    /// array of objects, already validated); the backend forwards the ACP
    /// fields and replaces any `sessionId` with `session_id`. Returns the
    /// agent's `PromptResponse` JSON.
    fn prompt(
        &self,
        session_id: &str,
        body: serde_json::Map<String, Value>,
    ) -> impl Future<Output = Result<Value, BackendError>> + Send;

    fn cancel(&self, session_id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// `last_event_id`: replay retained events with a greater id first.
    fn subscribe(
        &self,
        session_id: &str,
        last_event_id: Option<u64>,
    ) -> impl Future<Output = Result<Subscription, BackendError>> + Send;

    /// `Ok` = this vote won. `NotFound` = unknown or already resolved.
    /// `InvalidOption` = option not offered.
    fn vote(
        &self,
        request_id: &str,
        outcome: VoteOutcome,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// `GET /session/:id`. The default knows no session (404).
    fn session_info(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<SessionInfo, BackendError>> + Send {
        let message = format!("session {session_id} not found");
        async move { Err(BackendError::NotFound(message)) }
    }

    /// `cwd` is absolute (not necessarily canonical).
    fn list_workspace(
        &self,
        cwd: PathBuf,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, BackendError>> + Send;

    /// Every live session of every workspace (`GET /sessions`, what the web
    /// console lists), by workspace, then agent, then id. A backend that
    /// cannot tell lists none.
    fn list_sessions(
        &self,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, BackendError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Returns the agent's JSON response (the route always answers with a JSON body).
    fn set_model(
        &self,
        session_id: &str,
        model_id: String,
    ) -> impl Future<Output = Result<Value, BackendError>> + Send;

    fn close(&self, session_id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn deep_health(&self) -> impl Future<Output = Result<DeepHealth, BackendError>> + Send;

    fn policy_info(&self) -> PolicyInfo;

    /// The names of the agents sessions can choose (`POST /session` `agent`),
    /// the default first; listed by `/capabilities`.
    fn agent_names(&self) -> Vec<String> {
        vec!["default".to_string()]
    }

    /// Load, check and atomically activate another policy (admin only).
    /// Decisions in flight finish on the old one. On error the old policy
    /// stays active.
    fn reload_policy(
        &self,
        req: PolicyReload,
    ) -> impl Future<Output = Result<PolicyInfo, BackendError>> + Send;
}
