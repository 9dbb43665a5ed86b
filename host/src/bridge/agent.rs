//! One agent process per canonical workspace: spawn, `initialize`, and the
//! loop that routes everything the agent sends.
//!
//! Notifications (above all `session/update`) are forwarded as the raw JSON
//! the agent sent — never re-serialized, never dropped for having an unknown
//! shape. Requests from the agent (permission, `fs/*`, extensions) are each
//! answered on their own task, so a permission waiting for votes never stalls
//! the stream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use qserve_acp::methods::{self, method as acp, InitializeInfo, ToolCallNote, ToolCallSummary};
use qserve_acp::{
    Connection, ConnectionConfig, Incoming, IncomingReceiver, Quirks, Responder, RpcError,
};
use qserve_http::BackendError;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::agent_defs::AgentDef;
use super::Inner;

/// Updates that arrive for an agent session before its `session/new` answer
/// has been processed are held (per session, at most this many) and published
/// once the session is registered.
const MAX_UNROUTED_UPDATES: usize = 1024;
/// Held updates are bounded per agent too: an agent that sends updates for
/// session ids it never created must not grow the daemon (finding 6).
const MAX_UNROUTED_IDS: usize = 64;
const MAX_UNROUTED_BYTES: usize = 32 * 1024 * 1024;
/// How long an agent whose stdout closed may take to exit before its group is killed.
const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(2);

pub struct AgentHost {
    pub workspace: String,
    /// Which of the daemon's agents this is (`default` for `--agent`).
    pub agent: String,
    /// What differs about this agent (from its command's name).
    pub quirks: &'static Quirks,
    pub conn: Connection,
    pub process: Box<dyn super::seams::AgentProc>,
    /// The agent advertised `session/close` (set once `initialize` answered).
    pub supports_close: OnceLock<bool>,
    /// Set when the daemon stops this agent on purpose (its last session was
    /// closed): its exit is then a normal stop, not an incident.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Its sessions plus the creates that took it and have not finished.
    /// It is stopped only at zero, decided under the daemon's agents lock,
    /// where a create takes it too ([`Inner::agent_for`],
    /// [`Inner::stop_if_unused`]): a create never gets an agent whose stop
    /// has begun.
    pub users: std::sync::atomic::AtomicUsize,
    routes: tokio::sync::Mutex<Routes>,
    /// Updates from this agent in flight to the hub (a slot is freed once
    /// the hub ran the job; no subscriber holds one: see `fanout.rs`).
    publish_window: Arc<tokio::sync::Semaphore>,
    /// What the latest tool-call updates said (kind, tool name), newest
    /// last, to complete permission requests that leave them out.
    tool_calls: std::sync::Mutex<std::collections::VecDeque<ToolCallNote>>,
}

/// Tool calls remembered per agent: a permission request follows its call's
/// updates closely, so a short memory is enough.
const TOOL_CALL_NOTES: usize = 256;

/// Updates from one agent that may be in flight to the hub at once, so one
/// agent's flood cannot fill the hub's queue ahead of everyone else.
const PUBLISH_WINDOW: usize = 64;
/// Most queued updates gathered into one run (two runs fit in the window).
const MAX_BATCH: usize = PUBLISH_WINDOW / 2;

/// A create's hold on its agent (one of its `users`): given back when the
/// create fails, kept by the session when it succeeds ([`AgentClaim::keep`]).
pub struct AgentClaim {
    host: Arc<AgentHost>,
    kept: bool,
}

impl AgentClaim {
    /// The create succeeded: the hold is now its session's, given back when
    /// the session closes (`Inner::close_agent_side`).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl std::ops::Deref for AgentClaim {
    type Target = Arc<AgentHost>;
    fn deref(&self) -> &Arc<AgentHost> {
        &self.host
    }
}

impl Drop for AgentClaim {
    fn drop(&mut self) {
        if !self.kept {
            self.host.release_user();
        }
    }
}

#[derive(Default)]
struct Routes {
    /// Agent session id → daemon session id.
    by_agent: HashMap<String, String>,
    unrouted: HashMap<String, Vec<Box<RawValue>>>,
    /// Bytes held in `unrouted`.
    unrouted_bytes: usize,
}

/// Just the routing field of an agent message; the rest stays raw.
#[derive(Deserialize)]
struct Routed<'a> {
    #[serde(rename = "sessionId", borrow)]
    session_id: std::borrow::Cow<'a, str>,
}

impl AgentHost {
    /// One user (a session or a create) is done with this agent.
    pub fn release_user(&self) {
        let _ = self
            .users
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Remember what a tool-call update said (merged with what earlier
    /// updates of the same call said).
    fn note_tool_call(&self, note: ToolCallNote) {
        let mut notes = self.tool_calls.lock().unwrap();
        if let Some(known) = notes
            .iter_mut()
            .rev()
            .find(|known| known.tool_call_id == note.tool_call_id)
        {
            known.kind = note.kind.or(known.kind.take());
            known.tool_name = note.tool_name.or(known.tool_name.take());
            return;
        }
        if notes.len() == TOOL_CALL_NOTES {
            notes.pop_front();
        }
        notes.push_back(note);
    }

    /// Complete a permission request's tool call (kind, tool name) from its
    /// earlier updates, where the request itself leaves them out
    /// (claude-code-acp), so the policy sees the agent's tool name.
    pub fn complete_tool_call(&self, summary: &mut ToolCallSummary) {
        let notes = self.tool_calls.lock().unwrap();
        if let Some(note) = notes
            .iter()
            .rev()
            .find(|note| note.tool_call_id == summary.tool_call_id)
        {
            summary.complete_from(note);
        }
    }

    /// The daemon session an agent session id belongs to.
    pub async fn daemon_session(&self, agent_session_id: &str) -> Option<String> {
        self.routes
            .lock()
            .await
            .by_agent
            .get(agent_session_id)
            .cloned()
    }

    pub async fn daemon_sessions(&self) -> Vec<String> {
        self.routes
            .lock()
            .await
            .by_agent
            .values()
            .cloned()
            .collect()
    }

    /// Forget a session; returns how many remain on this agent.
    /// Forget a session's route; whether it was there (a session closed
    /// twice at once is counted off its agent once).
    pub async fn remove_route(&self, agent_session_id: &str) -> bool {
        let mut routes = self.routes.lock().await;
        routes.by_agent.remove(agent_session_id).is_some()
    }
}

impl Inner {
    /// The workspace's agent, spawning it if there is none. Concurrent callers
    /// share one spawn; a failed spawn leaves the slot empty for a retry.
    ///
    /// The agent is taken (its `users` count raised) under the agents lock,
    /// where [`Inner::stop_if_unused`] decides a stop: an agent whose stop
    /// has begun is never handed out, a fresh one is started instead.
    pub(super) async fn agent_for(
        self: &Arc<Self>,
        workspace: &str,
        def: &AgentDef,
    ) -> Result<AgentClaim, BackendError> {
        let key = (def.name.clone(), workspace.to_owned());
        // A stopping agent was already forgotten, so each retry spawns
        // afresh; only a fresh agent stopped by a concurrent failed create
        // before we took it brings us back here.
        for _ in 0..3 {
            let cell = self
                .agents
                .lock()
                .unwrap()
                .entry(key.clone())
                .or_default()
                .clone();
            let host = cell
                .get_or_try_init(|| self.spawn_agent(workspace, def))
                .await?
                .clone();
            let _agents = self.agents.lock().unwrap();
            if !host.stopping.load(Ordering::Acquire) {
                host.users.fetch_add(1, Ordering::AcqRel);
                return Ok(AgentClaim { host, kept: false });
            }
        }
        Err(BackendError::Internal {
            message: format!(
                "the agent of {workspace} kept stopping while a session was created; retry"
            ),
            code: Some("agent_spawn_failed"),
        })
    }

    async fn spawn_agent(
        self: &Arc<Self>,
        workspace: &str,
        def: &AgentDef,
    ) -> Result<Arc<AgentHost>, BackendError> {
        self.admit_new_agent()?;
        let scrub: Vec<&str> = self.config.scrub_env.iter().map(String::as_str).collect();
        let (process, stdin, stdout) = self
            .spawner
            .spawn(&def.command, Path::new(workspace), &scrub)
            .map_err(|err| BackendError::Internal {
                message: err.to_string(),
                code: Some("agent_spawn_failed"),
            })?;
        qserve_metrics::get().agent_spawned();
        let label = format!("agent={} pid={} cwd={workspace}", def.name, process.pid());
        let (conn, incoming) = Connection::start(
            stdin,
            stdout,
            ConnectionConfig {
                max_line_bytes: self.config.max_line_bytes,
                label,
                ..ConnectionConfig::default()
            },
        );
        let host = Arc::new(AgentHost {
            workspace: workspace.to_owned(),
            agent: def.name.clone(),
            quirks: def.quirks,
            conn,
            process,
            supports_close: OnceLock::new(),
            users: std::sync::atomic::AtomicUsize::new(0),
            stopping: Default::default(),
            routes: Default::default(),
            publish_window: Arc::new(tokio::sync::Semaphore::new(PUBLISH_WINDOW)),
            tool_calls: Default::default(),
        });
        // The loop must run before any request is awaited: answers are
        // delivered through the same ordered stream as the agent's messages.
        tokio::spawn(self.clone().run_agent(host.clone(), incoming));
        let init = tokio::time::timeout(
            self.config.init_timeout,
            host.conn
                .request(acp::INITIALIZE, methods::initialize_params()),
        )
        .await;
        let init = match init {
            Ok(Ok(result)) => result,
            Ok(Err(err)) if err.is_connection_closed() => {
                // It died before answering: how it ended is the useful part.
                let exit = tokio::time::timeout(EXIT_AFTER_CLOSE, host.process.wait()).await;
                host.process.kill_group();
                let how = exit.map_or_else(|_| "it did not exit".to_owned(), |e| e.to_string());
                let stderr = host.process.stderr_tail(EXIT_AFTER_CLOSE).await;
                let stderr = if stderr.is_empty() {
                    "it wrote nothing on stderr".to_owned()
                } else {
                    format!("its last stderr lines: {}", stderr.join(" | "))
                };
                return Err(spawn_failed(format!(
                    "the agent `{}` ended before answering `initialize` ({how}); {stderr}",
                    def.command
                )));
            }
            Ok(Err(err)) => {
                host.process.kill_group();
                return Err(spawn_failed(format!(
                    "the agent failed to initialize: {err}{}",
                    super::sessions::error_details(&err)
                )));
            }
            Err(_) => {
                host.process.kill_group();
                return Err(spawn_failed(format!(
                    "the agent did not answer `initialize` within {} s",
                    self.config.init_timeout.as_secs()
                )));
            }
        };
        let supports_close = InitializeInfo::parse(&init)
            .map(|info| info.supports_close())
            .unwrap_or(false);
        let _ = host.supports_close.set(supports_close);
        Ok(host)
    }

    /// Register a daemon session for an agent session and publish whatever
    /// the agent already sent for it.
    pub(super) async fn add_route(
        &self,
        host: &AgentHost,
        agent_session_id: &str,
        session_id: &str,
    ) {
        let mut routes = host.routes.lock().await;
        routes
            .by_agent
            .insert(agent_session_id.to_owned(), session_id.to_owned());
        let held = routes.unrouted.remove(agent_session_id).unwrap_or_default();
        routes.unrouted_bytes -= held.iter().map(|p| p.get().len()).sum::<usize>();
        let datas: Vec<String> = held
            .iter()
            .filter_map(|params| replace_session_id(params, session_id).ok())
            .collect();
        // Still under the routes lock: these go out before any later update.
        self.publish_updates(host, session_id.to_owned(), datas)
            .await;
    }

    /// Everything the agent sends, until its connection closes or it exits.
    async fn run_agent(self: Arc<Self>, host: Arc<AgentHost>, mut incoming: IncomingReceiver) {
        let reason = 'agent: loop {
            let mut next = tokio::select! {
                message = incoming.recv() => match message {
                    Some(message) => Some(message),
                    None => break "the agent connection ended".to_owned(),
                },
                exit = host.process.wait() => break exit_reason(&host.conn, exit),
            };
            while let Some(message) = next.take() {
                match message {
                    Incoming::Notification { method, params } if method == acp::SESSION_UPDATE => {
                        // Updates already queued behind this one go to the
                        // core together (one guest call per session's run).
                        // The lookahead stops at an answer: a prompt's result
                        // is delivered only after the updates sent before it
                        // were handed to the hub (see `prompts.rs`).
                        let mut updates = vec![params];
                        while updates.len() < MAX_BATCH {
                            match incoming.try_recv_message() {
                                Some(Incoming::Notification { method, params })
                                    if method == acp::SESSION_UPDATE =>
                                {
                                    updates.push(params)
                                }
                                Some(other) => {
                                    next = Some(other);
                                    break;
                                }
                                None => break,
                            }
                        }
                        self.on_updates(&host, updates).await;
                    }
                    Incoming::Notification { method, .. } => {
                        tracing::debug!(%method, "ignoring agent notification");
                    }
                    Incoming::Request {
                        method,
                        params,
                        responder,
                    } => {
                        let span =
                            super::metrics::agent_request_span(&method, "agent_to_daemon", None);
                        tokio::spawn(tracing::Instrument::instrument(
                            self.clone().on_request(
                                host.clone(),
                                method.into_owned(),
                                params,
                                responder,
                            ),
                            span,
                        ));
                    }
                    Incoming::Closed { reason } => break 'agent reason.to_string(),
                }
            }
        };
        // Whatever ended first, make sure the whole group is gone.
        let exit = match tokio::time::timeout(EXIT_AFTER_CLOSE, host.process.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                host.process.kill_group();
                host.process.wait().await
            }
        };
        host.process.kill_group();
        self.on_agent_exit(&host, &reason, exit).await;
    }

    /// Route a run of `session/update`s: each becomes its session's
    /// `session_update` event with the daemon's session id; consecutive ones
    /// of one session are published together. Updates for a session whose
    /// `session/new` answer is still being processed are held.
    async fn on_updates(&self, host: &AgentHost, updates: Vec<Box<RawValue>>) {
        let mut runs: Vec<(String, Vec<String>)> = Vec::new();
        let mut routes = host.routes.lock().await;
        for params in updates {
            if let Some(note) = ToolCallNote::from_update(&params) {
                host.note_tool_call(note);
            }
            let Ok(routed) = serde_json::from_str::<Routed>(params.get()) else {
                tracing::warn!("session/update without a sessionId; dropped");
                continue;
            };
            let Some(session_id) = routes.by_agent.get(routed.session_id.as_ref()) else {
                let len = params.get().len();
                let known = routes.unrouted.contains_key(routed.session_id.as_ref());
                let room = (known || routes.unrouted.len() < MAX_UNROUTED_IDS)
                    && routes.unrouted_bytes + len <= MAX_UNROUTED_BYTES;
                let held = room.then(|| {
                    routes
                        .unrouted
                        .entry(routed.session_id.clone().into_owned())
                        .or_default()
                });
                match held {
                    Some(held) if held.len() < MAX_UNROUTED_UPDATES => {
                        held.push(params);
                        routes.unrouted_bytes += len;
                    }
                    _ => tracing::warn!(
                        agent_session = %qserve_acp::escape_for_log(&routed.session_id),
                        bytes = len,
                        "update for an unknown agent session dropped: too many held"
                    ),
                }
                continue;
            };
            let data = match replace_session_id(&params, session_id) {
                Ok(data) => data,
                Err(err) => {
                    tracing::warn!(session = %session_id, "malformed session/update dropped: {err}");
                    continue;
                }
            };
            match runs.last_mut() {
                Some((run_session, datas)) if run_session == session_id => datas.push(data),
                _ => runs.push((session_id.clone(), vec![data])),
            }
        }
        drop(routes);
        for (session_id, datas) in runs {
            self.publish_updates(host, session_id, datas).await;
        }
    }

    /// Publish one session's run of updates in one hub job. The reader waits
    /// only for the hub, never for a subscriber (see `fanout.rs`).
    async fn publish_updates(&self, host: &AgentHost, session_id: String, mut datas: Vec<String>) {
        // A run never needs more of the window than exists.
        while datas.len() > MAX_BATCH {
            let rest = datas.split_off(MAX_BATCH);
            self.publish_run(host, session_id.clone(), datas).await;
            datas = rest;
        }
        self.publish_run(host, session_id, datas).await;
    }

    async fn publish_run(&self, host: &AgentHost, session_id: String, datas: Vec<String>) {
        if datas.is_empty() {
            return;
        }
        let Ok(permit) = host
            .publish_window
            .clone()
            .acquire_many_owned(datas.len() as u32)
            .await
        else {
            return;
        };
        let _ = self
            .hub
            .submit(move |hub| {
                if let Err(fault) = hub.publish_batch(&session_id, "session_update", &datas) {
                    tracing::error!("{fault}");
                }
                drop(permit);
            })
            .await;
    }

    async fn on_request(
        self: Arc<Self>,
        host: Arc<AgentHost>,
        method: String,
        params: Box<RawValue>,
        responder: Responder,
    ) {
        let answer = match method.as_str() {
            acp::SESSION_REQUEST_PERMISSION => self.on_permission_request(&host, &params).await,
            acp::FS_READ_TEXT_FILE => self.on_read_text_file(&host, &params).await,
            acp::FS_WRITE_TEXT_FILE => self.on_write_text_file(&host, &params).await,
            _ => {
                if host.quirks.is_quiet_unknown_method(&method) {
                    tracing::debug!(method, "answered -32601 (expected from this agent)");
                } else {
                    tracing::warn!(
                        method,
                        "the agent asked for a method the daemon does not offer; answered -32601"
                    );
                }
                Err(RpcError::method_not_found(&method))
            }
        };
        responder.respond(answer);
    }

    /// The daemon session an agent request is about.
    pub(super) async fn route(
        &self,
        host: &AgentHost,
        agent_session_id: &str,
    ) -> Result<String, RpcError> {
        let session = host.daemon_session(agent_session_id).await;
        tracing::Span::current().record("qserve.session_id", session.as_deref());
        session
            .ok_or_else(|| RpcError::invalid_params(format!("unknown session {agent_session_id}")))
    }
}

fn spawn_failed(message: String) -> BackendError {
    BackendError::Internal {
        message,
        code: Some("agent_spawn_failed"),
    }
}

/// Why the agent went away, when its exit is noticed before the connection's
/// close: a broken connection (e.g. a line over the cap) is usually the cause
/// of the exit, so it is named first.
fn exit_reason(conn: &Connection, exit: qserve_acp::ExitInfo) -> String {
    match conn.close_reason() {
        Some(reason) if reason != qserve_acp::CloseReason::Eof => {
            format!("{reason}; the agent exited ({exit})")
        }
        _ => format!("the agent exited ({exit})"),
    }
}

/// `params` with its top-level `sessionId` set to `session_id`; the other
/// members are copied as the agent wrote them, in order.
fn replace_session_id(params: &RawValue, session_id: &str) -> serde_json::Result<String> {
    use std::fmt::Write as _;
    let members: Vec<(std::borrow::Cow<str>, &RawValue)> = {
        struct Members<'a>(Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);
        impl<'de> serde::Deserialize<'de> for Members<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = Members<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Members<'de>, A::Error> {
                        let mut members = Vec::new();
                        while let Some(entry) = map.next_entry()? {
                            members.push(entry);
                        }
                        Ok(Members(members))
                    }
                }
                d.deserialize_map(Visit)
            }
        }
        serde_json::from_str::<Members>(params.get())?.0
    };
    let mut out = String::with_capacity(params.get().len() + session_id.len());
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:", serde_json::to_string(key.as_ref())?);
        if key == "sessionId" {
            out.push_str(&serde_json::to_string(session_id)?);
        } else {
            out.push_str(value.get());
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::replace_session_id;

    #[test]
    fn only_the_top_level_session_id_changes_and_the_rest_stays_byte_for_byte() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"update":{"sessionId":"inner","text":"a\u00e9 \n"},"sessionId":"agent-1","x":[1, 2]}"#.into(),
        )
        .unwrap();
        assert_eq!(
            replace_session_id(&raw, "daemon-9").unwrap(),
            r#"{"update":{"sessionId":"inner","text":"a\u00e9 \n"},"sessionId":"daemon-9","x":[1, 2]}"#
        );
    }
}
