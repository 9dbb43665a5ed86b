//! Prompts: one active per session (ACP), the rest wait their turn in arrival
//! order; a failed prompt never blocks the queue; a client that goes away
//! cancels its own prompt.
//!
//! Every prompt is bounded once it is asked to stop: after `POST …/cancel`
//! (or the `--prompt-deadline-ms` cap, which cancels it) the agent has
//! `--cancel-grace` to end the turn. An agent that ignores the cancel does
//! not hold the session: the prompt ends `cancelled` for the client, its
//! late answer is discarded, and the next prompt in the queue runs.
//!
//! Ordering: the agent's answer is delivered only after every update it
//! sent before it was handed to the hub (`agent.rs` stops its lookahead at
//! an answer), and `turn_complete` is published through the hub after them,
//! before the HTTP answer goes out. So a client that sees the 200 (or the
//! `turn_complete`) has every update of the turn in the ring.
//!
//! A turn that fails (the agent's error, its death, the prompt deadline, the
//! cancel grace) publishes `turn_error` (`code`, `message`) the same way,
//! before the HTTP answer: a client that only watches the stream learns why.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qserve_acp::methods::{self, method};
use qserve_acp::RpcError;
use qserve_http::BackendError;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::sessions::LiveSession;
use super::Inner;

/// A session's prompt bookkeeping beside its FIFO turn lock.
pub struct TurnState {
    /// Bumped by every cancel: the active prompt starts its grace.
    cancels: watch::Sender<u64>,
    /// Prompts running or queued (the running one included, as `qwen serve`).
    pending: AtomicU32,
    /// The last time a client did something with the session (idle reaping).
    last_activity: Mutex<Instant>,
}

impl Default for TurnState {
    fn default() -> Self {
        TurnState {
            cancels: watch::channel(0).0,
            pending: AtomicU32::new(0),
            last_activity: Mutex::new(Instant::now()),
        }
    }
}

impl TurnState {
    pub fn touch(&self) {
        *self.last_activity.lock().unwrap() = Instant::now();
    }

    pub fn idle_since(&self) -> Instant {
        *self.last_activity.lock().unwrap()
    }

    /// Prompts running or queued.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Acquire)
    }
}

/// One admitted prompt; gives its queue slot back when dropped.
struct QueueSlot<'a>(&'a TurnState);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// How a prompt ended when it did not end with the agent's own answer.
enum Forced {
    /// The agent did not end a cancelled turn within the grace.
    GraceExpired { deadline: bool },
}

impl Inner {
    pub(super) async fn prompt(
        self: Arc<Self>,
        session_id: &str,
        body: serde_json::Map<String, Value>,
    ) -> Result<Value, BackendError> {
        let live = self.session(session_id)?;
        let _slot = self.admit_prompt(&live)?;
        // The URL names the session; a `sessionId` in the body never wins.
        let params = methods::prompt_params(&live.agent_session_id, body);
        let _turn = live.prompt_turn.lock().await;
        // The session may have ended while this prompt waited.
        self.session(session_id)?;
        live.turn.touch();
        let mut cancel_if_dropped = CancelOnDrop {
            inner: self.clone(),
            live: live.clone(),
            armed: true,
        };
        let answer = self.run_turn(&live, params).await;
        cancel_if_dropped.armed = false;
        let answer = match answer {
            Ok((answer, by_deadline)) => {
                if by_deadline && answer.is_ok() {
                    self.turn_error(
                        &live.id,
                        "prompt_deadline_exceeded",
                        &self.deadline_message(),
                    )
                    .await;
                }
                answer
            }
            Err(Forced::GraceExpired { deadline }) => {
                tracing::warn!(
                    session = %live.id,
                    grace_ms = self.config.cancel_grace.as_millis() as u64,
                    "the agent did not end a cancelled prompt within the cancel grace; \
                     the prompt ends `cancelled` and its late answer is discarded"
                );
                let (reason, message) = if deadline {
                    ("prompt_deadline_exceeded", self.deadline_message())
                } else {
                    (
                        "cancel_grace_expired",
                        format!(
                            "the agent did not end the cancelled turn within --cancel-grace ({} ms)",
                            self.config.cancel_grace.as_millis()
                        ),
                    )
                };
                self.turn_error(&live.id, reason, &message).await;
                self.turn_complete(&live.id, "cancelled", Some(reason))
                    .await;
                return Ok(json!({ "stopReason": "cancelled" }));
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) => {
                let (code, err) = if err.is_connection_closed() {
                    let err = BackendError::Internal {
                        message: format!("the agent exited during the prompt: {err}"),
                        code: Some("agent_died"),
                    };
                    ("agent_died", err)
                } else {
                    // Its JSON-RPC code and data reach the client (502 `agent_error`).
                    let err = super::sessions::agent_error("session/prompt", err);
                    ("agent_error", err)
                };
                self.turn_error(&live.id, code, &err.to_string()).await;
                return Err(err);
            }
        };
        let stop_reason = answer["stopReason"].as_str().unwrap_or("end_turn");
        self.turn_complete(&live.id, stop_reason, None).await;
        Ok(answer)
    }

    /// `--max-pending-prompts-per-session`: count this prompt in, or refuse it.
    fn admit_prompt<'a>(&self, live: &'a LiveSession) -> Result<QueueSlot<'a>, BackendError> {
        let limit = self.config.max_pending_prompts;
        let before = live.turn.pending.fetch_add(1, Ordering::AcqRel);
        let slot = QueueSlot(&live.turn);
        if limit > 0 && before >= limit {
            drop(slot);
            return Err(BackendError::PromptQueueFull {
                session_id: live.id.clone(),
                limit,
                pending: before,
            });
        }
        Ok(slot)
    }

    /// The agent's `session/prompt`, bounded once a cancel (or the deadline)
    /// asked it to stop.
    /// `Ok` carries whether the prompt deadline cancelled the turn.
    async fn run_turn(
        &self,
        live: &LiveSession,
        params: Value,
    ) -> Result<(Result<Value, RpcError>, bool), Forced> {
        let mut cancels = live.turn.cancels.subscribe();
        let _ = cancels.borrow_and_update();
        let span = super::metrics::agent_request_span(
            method::SESSION_PROMPT,
            "daemon_to_agent",
            Some(&live.id),
        );
        let request = tracing::Instrument::instrument(
            live.agent.conn.request(method::SESSION_PROMPT, params),
            span,
        );
        tokio::pin!(request);
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        let deadline = self
            .config
            .prompt_deadline
            .map_or_else(far, |d| tokio::time::Instant::now() + d);
        let mut grace: Option<tokio::time::Instant> = None;
        let mut by_deadline = false;
        loop {
            tokio::select! {
                answer = &mut request => return Ok((answer, by_deadline)),
                changed = cancels.changed(), if grace.is_none() => {
                    if changed.is_ok() {
                        grace = Some(tokio::time::Instant::now() + self.config.cancel_grace);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if grace.is_none() && self.config.prompt_deadline.is_some() => {
                    tracing::warn!(session = %live.id, "the prompt reached --prompt-deadline-ms; cancelling it");
                    by_deadline = true;
                    self.cancel_turn(live).await;
                    grace = Some(tokio::time::Instant::now() + self.config.cancel_grace);
                }
                _ = tokio::time::sleep_until(grace.unwrap_or_else(far)), if grace.is_some() => {
                    return Err(Forced::GraceExpired { deadline: by_deadline });
                }
            }
        }
    }

    /// `turn_complete` (as `qwen serve`): published through the hub after
    /// every update of the turn, before the HTTP answer.
    async fn turn_complete(&self, session_id: &str, stop_reason: &str, reason: Option<&str>) {
        let mut data = json!({ "sessionId": session_id, "stopReason": stop_reason });
        if let Some(reason) = reason {
            data["reason"] = json!(reason);
        }
        let sid = session_id.to_owned();
        let data = data.to_string();
        // `call`, not `submit`: the event is in the ring when this returns.
        let _ = self
            .hub
            .call(move |hub| {
                if let Err(fault) = hub.publish(&sid, "turn_complete", &data, None) {
                    tracing::error!("{fault}");
                }
            })
            .await;
    }

    /// `turn_error`: a failed turn's `code` and `message`, published through
    /// the hub (so after the turn's updates) before the HTTP answer.
    async fn turn_error(&self, session_id: &str, code: &str, message: &str) {
        let data = json!({ "sessionId": session_id, "code": code, "message": message }).to_string();
        let sid = session_id.to_owned();
        let _ = self
            .hub
            .call(move |hub| {
                if let Err(fault) = hub.publish(&sid, "turn_error", &data, None) {
                    tracing::error!("{fault}");
                }
            })
            .await;
    }

    fn deadline_message(&self) -> String {
        format!(
            "the prompt reached --prompt-deadline-ms ({} ms) and was cancelled",
            self.config.prompt_deadline.unwrap_or_default().as_millis()
        )
    }

    /// Wind down the active prompt (queued prompts still run) and answer every
    /// pending permission of the session `cancelled`.
    pub(super) async fn cancel(&self, session_id: &str) -> Result<(), BackendError> {
        let live = self.session(session_id)?;
        live.turn.touch();
        // The active prompt's grace starts now.
        live.turn.cancels.send_modify(|n| *n += 1);
        self.cancel_turn(&live).await;
        Ok(())
    }

    /// Tell the agent to stop the turn, and cancel the session's pending
    /// permissions.
    async fn cancel_turn(&self, live: &LiveSession) {
        self.cancel_permissions(&live.id).await;
        if let Err(err) = live.agent.conn.notify(
            method::SESSION_CANCEL,
            methods::session_id_params(&live.agent_session_id),
        ) {
            tracing::warn!(session = %live.id, "could not send session/cancel: {err}");
        }
    }
}

/// Cancels the prompt when the HTTP request that sent it is dropped (the
/// client disconnected) before the agent answered.
struct CancelOnDrop {
    inner: Arc<Inner>,
    live: Arc<LiveSession>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let inner = self.inner.clone();
            let live = self.live.clone();
            tracing::info!(session = %live.id, "client left mid-prompt; cancelling it");
            tokio::spawn(async move { inner.cancel_turn(&live).await });
        }
    }
}
