//! Prompts: one active per session (ACP), the rest wait their turn in arrival
//! order; a failed prompt never blocks the queue; a client that goes away
//! cancels its own prompt.

use std::sync::Arc;

use qserve_acp::methods::{self, method};
use qserve_http::BackendError;
use serde_json::Value;

use super::sessions::LiveSession;
use super::Inner;

impl Inner {
    pub(super) async fn prompt(
        self: Arc<Self>,
        session_id: &str,
        body: serde_json::Map<String, Value>,
    ) -> Result<Value, BackendError> {
        let live = self.session(session_id)?;
        // The URL names the session; a `sessionId` in the body never wins.
        let params = methods::prompt_params(&live.agent_session_id, body);
        let _turn = live.prompt_turn.lock().await;
        // The session may have ended while this prompt waited.
        self.session(session_id)?;
        let mut cancel_if_dropped = CancelOnDrop {
            inner: self.clone(),
            live: live.clone(),
            armed: true,
        };
        let answer = live
            .agent
            .conn
            .request(method::SESSION_PROMPT, params)
            .await;
        cancel_if_dropped.armed = false;
        answer.map_err(|err| {
            if err.is_connection_closed() {
                BackendError::Internal {
                    message: format!("the agent exited during the prompt: {err}"),
                    code: Some("agent_died"),
                }
            } else {
                // Its JSON-RPC code and data reach the client (502 `agent_error`).
                super::sessions::agent_error("session/prompt", err)
            }
        })
    }

    /// Wind down the active prompt (queued prompts still run) and answer every
    /// pending permission of the session `cancelled`.
    pub(super) async fn cancel(&self, session_id: &str) -> Result<(), BackendError> {
        let live = self.session(session_id)?;
        self.cancel_turn(&live).await;
        Ok(())
    }

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
