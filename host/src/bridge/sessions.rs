//! Sessions: create or attach (coalesced, capped by the core, admitted by the
//! policy, never orphaned), list, close.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use qserve_acp::methods::{self, method, NewSessionInfo};
use qserve_acp::RpcError;
use qserve_http::{BackendError, CreateSession, SessionCreated, SessionScope, SessionSummary};
use qserve_runtime::{AgentInfo, OpenError, OpenOutcome, Phase, Scope};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use super::agent::AgentHost;
use super::agent_defs::{self, AgentDef};
use super::decisions::{self, DecisionRecord, Source};
use super::hub::core_unavailable;
use super::{internal, Inner};

/// A live session as the bridge needs it: where its agent is, and the turns
/// that keep one prompt and one model switch at a time.
pub struct LiveSession {
    pub id: String,
    pub agent_session_id: String,
    pub agent: Arc<AgentHost>,
    /// Held by the active prompt. tokio's mutex is fair, so waiting prompts
    /// run in arrival order (FIFO).
    pub prompt_turn: tokio::sync::Mutex<()>,
    /// Serializes model switches.
    pub model_turn: tokio::sync::Mutex<()>,
    /// The agent's config option for the model, when it advertised one.
    pub model_option: Option<String>,
    /// How the session is shared (part of every decision's context).
    pub scope: Scope,
    /// The agent as this session's decisions name it, with the session mode
    /// the daemon put it in (or the agent reported).
    pub agent_info: AgentInfo,
    /// Prompt queue count, cancels, last activity (see `prompts.rs`).
    pub turn: super::prompts::TurnState,
}

/// A create in flight: single-scope callers that asked meanwhile wait on it.
pub struct InFlight {
    outcome: watch::Sender<Option<Result<String, String>>>,
}

impl InFlight {
    fn new() -> Self {
        InFlight {
            outcome: watch::channel(None).0,
        }
    }
}

/// Why a session ended, as published in its `session_died` frame.
pub struct SessionEnd {
    pub data: Value,
}

impl Inner {
    pub(super) async fn create_or_attach(
        self: Arc<Self>,
        req: CreateSession,
    ) -> Result<SessionCreated, BackendError> {
        if self.is_shutting_down() {
            return Err(BackendError::Unavailable(
                "the daemon is shutting down".into(),
            ));
        }
        let def = self.config.agents.get(req.agent.as_deref())?.clone();
        let workspace = canonical_workspace(&req.cwd);
        // A workspace that is not a directory can never host an agent: say so
        // as the client's mistake (400), not as a failed spawn (500).
        if !Path::new(&workspace).is_dir() {
            return Err(BackendError::BadRequest {
                message: format!("workspace {workspace} is not an existing directory"),
                code: Some("workspace_not_found"),
            });
        }
        let core_key = agent_defs::core_key(&workspace, &def.name);
        let scope = match req.scope {
            Some(SessionScope::Single) => Scope::Single,
            Some(SessionScope::Thread) => Scope::Thread,
            None => self.config.default_scope,
        };
        let in_flight = self.clone();
        let ws = core_key;
        let opened = self
            .hub
            .call(move |hub| {
                let outcome = hub.core.open(&ws, scope);
                // Registered on the hub thread, so a waiter can never see the
                // reservation before its in-flight entry exists.
                if let Ok(Ok(OpenOutcome::Create(reservation))) = &outcome {
                    in_flight
                        .in_flight
                        .lock()
                        .unwrap()
                        .insert(*reservation, InFlight::new());
                }
                outcome
            })
            .await
            .map_err(|_| internal("the core is not running"))?
            .map_err(core_unavailable)?;

        let (session_id, attached) = match opened {
            Err(OpenError::LimitExceeded(max)) => return Err(BackendError::SessionLimit { max }),
            Ok(OpenOutcome::Attached(session)) => (session.id, true),
            Ok(OpenOutcome::Wait(reservation)) => (self.wait_and_attach(reservation).await?, true),
            Ok(OpenOutcome::Create(reservation)) => (
                self.clone()
                    .create_unorphaned(reservation, workspace.clone(), scope, def.clone())
                    .await?,
                false,
            ),
        };
        if attached {
            // An attach is a client call: the session's idle clock restarts.
            if let Some(live) = self.sessions.lock().unwrap().get(&session_id) {
                live.turn.touch();
            }
            // The policy judges attaches too; a refused one gives the
            // attach back (and reaps the session if nobody else holds it).
            let agent = self
                .sessions
                .lock()
                .unwrap()
                .get(&session_id)
                .map_or_else(|| def.info(), |live| live.agent_info.clone());
            if let Err(refused) = self
                .admit(&session_id, &workspace, &agent, scope, Phase::Attach)
                .await
            {
                self.release(&session_id).await;
                return Err(refused);
            }
        }
        if let Some(model) = req.model_service_id.as_deref() {
            // A failed switch keeps the session (and publishes `model_switch_failed`).
            let _ = self.set_model(&session_id, model).await;
            // The switch yields, and the agent can die meanwhile: a session
            // whose agent is gone is not handed out as live (seed edge case:
            // `qwen serve` once answered 200 with an id that 404ed ever after).
            self.ensure_agent_alive(&session_id, "while its model was being switched")?;
        }
        Ok(SessionCreated {
            session_id,
            workspace_cwd: workspace,
            attached,
            agent: def.name,
        })
    }

    /// `agent_died` when the session is gone or its agent's connection has
    /// closed (its death is being handled: the session is about to end).
    fn ensure_agent_alive(&self, session_id: &str, when: &str) -> Result<(), BackendError> {
        let live = self.sessions.lock().unwrap().get(session_id).cloned();
        match live {
            Some(live) if !live.agent.conn.is_closed() => Ok(()),
            _ => Err(BackendError::Internal {
                message: format!("the agent of session {session_id} exited {when}"),
                code: Some("agent_died"),
            }),
        }
    }

    /// Ask the policy whether this create or attach may happen; publish
    /// (attach) and log the decision.
    async fn admit(
        self: &Arc<Self>,
        session_id: &str,
        workspace: &str,
        agent: &AgentInfo,
        scope: Scope,
        phase: Phase,
    ) -> Result<(), BackendError> {
        let started = std::time::Instant::now();
        let ctx = decisions::context(
            session_id,
            workspace,
            agent,
            decisions::scope_of(scope),
            phase,
        );
        let active = self.policy.current();
        let shadow = self.shadow_session(&ctx);
        let span = super::metrics::decision_span("session_create", session_id);
        let decision =
            tracing::Instrument::instrument(active.policy.decide_session(&ctx), span.clone()).await;
        let record = DecisionRecord {
            decision_id: uuid::Uuid::new_v4().to_string(),
            kind: "session_create",
            subject: serde_json::Map::new(),
            context: ctx,
            policy: decisions::policy_json(active.policy.identity()),
            policy_verdict: if decision.fault.is_some() {
                "fault"
            } else if decision.allow {
                "allow"
            } else {
                "deny"
            },
            policy_reason: decision.reason.clone(),
            policy_latency: decision.latency,
            log_only: serde_json::Map::new(),
        };
        super::metrics::count_decision(&record, decision.fault.as_deref(), &span);
        if phase == Phase::Attach {
            self.publish_decision(session_id, &record, None, None).await;
        }
        self.record(
            record.log_line(
                if decision.allow { "allow" } else { "deny" },
                None,
                if decision.fault.is_some() {
                    Source::Fault
                } else {
                    Source::Policy
                },
                &decision.reason,
                None,
                started.elapsed(),
            ),
            shadow,
        );
        if decision.allow {
            Ok(())
        } else {
            Err(BackendError::Forbidden(format!(
                "the policy refused a session in {workspace}: {}",
                decision.reason
            )))
        }
    }

    /// Run the create on its own task: when the client that asked goes away
    /// mid-spawn, the session is released (and reaped unless someone attached).
    async fn create_unorphaned(
        self: Arc<Self>,
        reservation: u64,
        workspace: String,
        scope: Scope,
        def: AgentDef,
    ) -> Result<String, BackendError> {
        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let created = this.create(reservation, &workspace, scope, &def).await;
            if let Err(Ok(session_id)) = tx.send(created) {
                tracing::info!(session = %session_id, "creator left before the session was ready");
                this.release(&session_id).await;
            }
        });
        rx.await
            .map_err(|_| internal("the session create task failed"))?
    }

    async fn create(
        self: &Arc<Self>,
        reservation: u64,
        workspace: &str,
        scope: Scope,
        def: &AgentDef,
    ) -> Result<String, BackendError> {
        let created = self.create_inner(reservation, workspace, scope, def).await;
        if created.is_err() {
            let _ = self
                .hub
                .call(move |hub| hub.core.abort_create(reservation))
                .await;
            self.after_failed_create(&def.name, workspace).await;
        }
        if let Some(in_flight) = self.in_flight.lock().unwrap().remove(&reservation) {
            let shared = created
                .as_ref()
                .map(Clone::clone)
                .map_err(ToString::to_string);
            in_flight.outcome.send_replace(Some(shared));
        }
        created
    }

    async fn create_inner(
        self: &Arc<Self>,
        reservation: u64,
        workspace: &str,
        scope: Scope,
        def: &AgentDef,
    ) -> Result<String, BackendError> {
        // Before any agent is spawned: a refused create costs nothing.
        self.admit("", workspace, &def.info(), scope, Phase::Create)
            .await?;
        let host = self.agent_for(workspace, def).await?;
        let answer = tokio::time::timeout(
            self.config.init_timeout,
            host.conn.request(
                method::SESSION_NEW,
                methods::new_session_params(Path::new(workspace)),
            ),
        )
        .await
        .map_err(|_| {
            internal(format!(
                "the agent did not answer `session/new` within {} s",
                self.config.init_timeout.as_secs()
            ))
        })?
        .map_err(|err| agent_error("session/new", err))?;
        let info = NewSessionInfo::parse(&answer).map_err(|err| {
            internal(format!(
                "the agent's `session/new` answer is malformed: {err}"
            ))
        })?;
        let agent_session_id = info.session_id.clone();
        let model_option = info.model_config_option().map(|option| option.id.clone());
        let mode = self.enter_asking_mode(&host, &info).await?;
        let agent_info = AgentInfo {
            mode: mode.clone(),
            ..def.info()
        };

        let agent_sid = agent_session_id.clone();
        let session = self
            .hub
            .call(move |hub| hub.core.finish_create(reservation, &agent_sid))
            .await
            .map_err(|_| internal("the core is not running"))?
            .map_err(core_unavailable)?
            .map_err(|reason| internal(format!("the core refused the new session: {reason}")))?;
        let live = Arc::new(LiveSession {
            id: session.id.clone(),
            agent_session_id: agent_session_id.clone(),
            agent: host.clone(),
            prompt_turn: Default::default(),
            model_turn: Default::default(),
            model_option,
            scope,
            agent_info,
            turn: Default::default(),
        });
        self.sessions
            .lock()
            .unwrap()
            .insert(session.id.clone(), live);
        self.add_route(&host, &agent_session_id, &session.id).await;
        // The session holds the agent from now on (given back at its close).
        host.keep();
        tracing::info!(session = %session.id, agent = %def.name, agent_session = %agent_session_id, workspace, mode = mode.as_deref().unwrap_or("-"), "session created");
        Ok(session.id)
    }

    /// Put a new agent session in the agent's asking mode (or `--agent-mode`)
    /// with `session/set_mode`, so that the agent's own auto-approval cannot
    /// bypass the policy and the clients' votes. Which modes ask is in the
    /// quirks table; an agent that advertises no modes is left to its
    /// settings. Fails closed: a session the daemon could not put in the
    /// wanted mode is not handed out. Returns the session's mode.
    async fn enter_asking_mode(
        &self,
        host: &AgentHost,
        info: &NewSessionInfo,
    ) -> Result<Option<String>, BackendError> {
        let wanted = self.config.agent_mode.as_deref();
        let (current, advertised) = match &info.modes {
            Some(modes) => (modes.current_mode_id.as_deref(), modes.available.as_slice()),
            None => (None, &[][..]),
        };
        if advertised.is_empty() {
            if let Some(wanted) = wanted {
                tracing::warn!(
                    mode = wanted,
                    "--agent-mode ignored: the agent advertises no session modes (its own settings decide whether it asks)"
                );
            }
            return Ok(current.map(str::to_owned));
        }
        let to_set = host
            .quirks
            .mode_to_set(wanted, current, advertised)
            .map_err(|why| BackendError::Internal {
                message: format!("--agent-mode: {why}"),
                code: Some("agent_mode_unavailable"),
            })?;
        let Some(mode) = to_set else {
            return Ok(current.map(str::to_owned));
        };
        tokio::time::timeout(
            self.config.init_timeout,
            host.conn.request(
                method::SESSION_SET_MODE,
                methods::set_mode_params(&info.session_id, mode),
            ),
        )
        .await
        .map_err(|_| {
            internal(format!(
                "the agent did not answer `session/set_mode` within {} s",
                self.config.init_timeout.as_secs()
            ))
        })?
        .map_err(|err| agent_error("session/set_mode", err))?;
        tracing::debug!(
            agent_session = %info.session_id,
            mode,
            was = current.unwrap_or("-"),
            "session mode set"
        );
        Ok(Some(mode.to_owned()))
    }

    async fn wait_and_attach(&self, reservation: u64) -> Result<String, BackendError> {
        let watcher = self
            .in_flight
            .lock()
            .unwrap()
            .get(&reservation)
            .map(|f| f.outcome.subscribe());
        let session_id = match watcher {
            Some(mut rx) => {
                let outcome = rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| internal("the coalesced create was abandoned"))?
                    .clone();
                outcome.expect("waited for Some").map_err(internal)?
            }
            // The create finished between `open` and here: its outcome is gone,
            // but a successful one left a live session to attach to.
            None => return Err(internal("the coalesced create finished; retry")),
        };
        let sid = session_id.clone();
        self.hub
            .call(move |hub| hub.core.attach(&sid))
            .await
            .map_err(|_| internal("the core is not running"))?
            .map_err(core_unavailable)?
            .ok_or_else(|| {
                BackendError::NotFound(format!("session {session_id} ended while attaching"))
            })?;
        Ok(session_id)
    }

    /// A client no longer holds the session: detach, and close it when nobody does.
    /// The detach and the decision to close are one hub job: an attach can
    /// never slip between "nobody holds it" and the close (seed edge case).
    async fn release(self: &Arc<Self>, session_id: &str) {
        let sid = session_id.to_owned();
        let last_holder_left = move |hub: &mut super::Hub| matches!(hub.core.detach(&sid), Ok(Some(s)) if s.attach_count == 0);
        self.clone()
            .close_if(session_id, json!({ "reason": "closed" }), last_holder_left)
            .await;
    }

    pub(super) async fn list_workspace(
        &self,
        cwd: PathBuf,
    ) -> Result<Vec<SessionSummary>, BackendError> {
        let workspace = canonical_workspace(&cwd);
        let keys: Vec<(String, String)> = self
            .config
            .agents
            .iter()
            .map(|def| {
                (
                    def.name.clone(),
                    agent_defs::core_key(&workspace, &def.name),
                )
            })
            .collect();
        // One hub job: every agent's sessions of the workspace, as one snapshot.
        let listed = self
            .hub
            .call(move |hub| {
                let mut listed = Vec::new();
                for (agent, key) in keys {
                    listed.push((agent, hub.core.list_workspace(&key)?));
                }
                Ok::<_, qserve_runtime::CoreFault>(listed)
            })
            .await
            .map_err(|_| internal("the core is not running"))?
            .map_err(core_unavailable)?;
        Ok(listed
            .into_iter()
            .flat_map(|(agent, sessions)| {
                let workspace = workspace.clone();
                sessions.into_iter().map(move |s| SessionSummary {
                    session_id: s.id,
                    workspace_cwd: workspace.clone(),
                    agent: agent.clone(),
                })
            })
            .collect())
    }

    /// `DELETE /session/:id`: end it for everyone, tell the agent, and stop
    /// the agent when this was its last session.
    pub(super) async fn close(self: Arc<Self>, session_id: &str) -> Result<(), BackendError> {
        self.close_because(session_id, json!({ "reason": "closed" }))
            .await
    }

    /// Close a session for everyone; `end` is its `session_died` data (and
    /// its tombstone's reason).
    pub(super) async fn close_because(
        self: Arc<Self>,
        session_id: &str,
        end: Value,
    ) -> Result<(), BackendError> {
        let live = self.session(session_id)?;
        self.end_session(&live.id, SessionEnd { data: end }).await;
        self.close_agent_side(&live).await;
        Ok(())
    }

    /// Close a session if `still_closing` holds on the hub thread when it is
    /// removed ([`Inner::end_session_if`]); returns whether it closed.
    pub(super) async fn close_if(
        self: Arc<Self>,
        session_id: &str,
        end: Value,
        still_closing: impl FnOnce(&mut super::Hub) -> bool + Send + 'static,
    ) -> bool {
        let Ok(live) = self.session(session_id) else {
            return false;
        };
        if !self
            .end_session_if(&live.id, SessionEnd { data: end }, still_closing)
            .await
        {
            return false;
        }
        self.close_agent_side(&live).await;
        true
    }

    /// The agent's half of a close: `session/close` when it supports it, and
    /// the agent stopped when this was its last session.
    async fn close_agent_side(&self, live: &LiveSession) {
        let session_id = live.id.as_str();
        let host = &live.agent;
        if host.supports_close.get() == Some(&true) {
            let close = host.conn.request(
                method::SESSION_CLOSE,
                methods::session_id_params(&live.agent_session_id),
            );
            match tokio::time::timeout(std::time::Duration::from_secs(5), close).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(session = session_id, "session/close failed: {err}"),
                Err(_) => tracing::warn!(session = session_id, "session/close timed out"),
            }
        }
        if host.remove_route(&live.agent_session_id).await {
            host.release_user();
            self.stop_if_unused(host, "its last session was closed")
                .await;
        }
    }
}

/// The workspace key: the real path, or — for a path that does not exist —
/// the absolute path with `.` and `..` resolved lexically.
pub fn canonical_workspace(cwd: &Path) -> String {
    match std::fs::canonicalize(cwd) {
        Ok(real) => real.display().to_string(),
        Err(_) => {
            let mut out = PathBuf::new();
            for part in cwd.components() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other),
                }
            }
            out.display().to_string()
        }
    }
}

/// An agent's JSON-RPC error on a call, as the client sees it: a 502
/// `agent_error` whose `data` is the agent's JSON-RPC error (`code`,
/// `message`, `data`) and whose message carries its details (qwen puts the
/// useful part, e.g. "Connection error.", in `data.details`). An agent that
/// died meanwhile is a 500 `agent_died`.
pub fn agent_error(method: &str, err: RpcError) -> BackendError {
    if err.is_connection_closed() {
        return BackendError::Internal {
            message: format!("the agent exited during `{method}`: {err}"),
            code: Some("agent_died"),
        };
    }
    BackendError::Agent {
        message: format!("the agent failed `{method}`: {err}{}", error_details(&err)),
        data: serde_json::to_value(&err).ok(),
    }
}

/// `: DETAILS` from a JSON-RPC error's `data` (`data.details`, or `data`
/// itself when it is a string), bounded; empty when there is none.
pub fn error_details(err: &RpcError) -> String {
    let details = match &err.data {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(data) => data.get("details").and_then(Value::as_str),
        None => None,
    };
    match details.map(str::trim).filter(|d| !d.is_empty()) {
        Some(details) => {
            let bounded: String = details.chars().take(500).collect();
            format!(": {bounded}")
        }
        None => String::new(),
    }
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod create_tests;
