//! Permission requests: the policy decides, or the clients vote.
//!
//! Path of a request the policy hands to the clients: the core registers it
//! (fresh request id, offered options, the per-session cap), a waiter is
//! recorded and `permission_request` is published — all in one hub job, so a
//! vote can never arrive before its waiter exists. Then the first of: a valid
//! vote, the deadline, a cancel, the session's end, answers the agent. The
//! agent is never left waiting, whatever the policy or the clients do.

use std::sync::Arc;
use std::time::Duration;

use qserve_acp::methods::{PermissionOutcome, PermissionRequest};
use qserve_acp::RpcError;
use qserve_http::{BackendError, VoteOutcome as ClientVote};
use qserve_runtime::{
    OfferedOption, PermissionAnswer, PermissionOption, RegisterError, Resolution, ToolCall,
    VoteError, VoteOutcome,
};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::agent::AgentHost;
use super::hub::core_unavailable;
use super::{internal, Inner};

impl Inner {
    pub(super) async fn on_permission_request(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let request = PermissionRequest::parse(params)?;
        let session_id = self.route(host, &request.session_id).await?;
        let summary = &request.tool_call;
        let call = ToolCall {
            session_id: session_id.clone(),
            workspace: host.workspace.clone(),
            kind: summary.kind.clone(),
            title: summary.title.clone(),
            locations: summary.locations.clone(),
            raw_input: summary
                .raw_input
                .as_ref()
                .map_or_else(|| "null".to_owned(), Value::to_string),
        };
        let offered: Vec<OfferedOption> = request
            .options
            .iter()
            .map(|o| OfferedOption {
                option_id: o.option_id.clone(),
                name: o.name.clone(),
                kind: o.kind.clone(),
            })
            .collect();
        let answer = self
            .policy
            .call(move |policy| policy.decide_permission(&call, &offered))
            .await
            .unwrap_or(PermissionAnswer::Cancelled);
        let outcome = match answer {
            PermissionAnswer::Selected(option_id) => VoteOutcome::Selected(option_id),
            PermissionAnswer::Cancelled => VoteOutcome::Cancelled,
            PermissionAnswer::AskClients(timeout) => {
                let timeout = timeout.unwrap_or(self.config.permission_timeout);
                self.ask_clients(&session_id, &request, timeout).await
            }
        };
        Ok(agent_answer(outcome))
    }

    async fn ask_clients(
        self: &Arc<Self>,
        session_id: &str,
        request: &PermissionRequest,
        timeout: Duration,
    ) -> VoteOutcome {
        let options: Vec<PermissionOption> = request
            .options
            .iter()
            .map(|o| PermissionOption {
                option_id: o.option_id.clone(),
                name: o.name.clone(),
                kind: o.kind.clone(),
            })
            .collect();
        let data_tail = json!({
            "sessionId": session_id,
            "toolCall": request.tool_call_raw,
            "options": request.options_raw,
        });
        let sid = session_id.to_owned();
        let waiters = self.waiters.clone();
        let registered = self
            .hub
            .call(move |hub| {
                let request_id = match hub.core.register_permission(&sid, &options) {
                    Ok(Ok(id)) => id,
                    Ok(Err(err)) => return Err(err),
                    Err(fault) => {
                        tracing::error!("{fault}");
                        return Err(RegisterError::UnknownSession);
                    }
                };
                let waiter = waiters.insert(request_id.clone());
                let mut data = data_tail;
                data["requestId"] = Value::String(request_id.clone());
                let data = data.to_string();
                let _ = hub.publish(&sid, "permission_request", &data, None);
                Ok((request_id, waiter))
            })
            .await;
        let (request_id, mut waiter) = match registered {
            Ok(Ok(pair)) => pair,
            Ok(Err(RegisterError::TooManyPending(max))) => {
                tracing::warn!(
                    session = session_id,
                    "{max} permissions already pending; cancelled"
                );
                return VoteOutcome::Cancelled;
            }
            _ => return VoteOutcome::Cancelled,
        };
        match tokio::time::timeout(timeout, &mut waiter).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => VoteOutcome::Cancelled,
            Err(_) => {
                // Deadline: resolve it unless a vote won in the meantime.
                let rid = request_id.clone();
                let expired = self
                    .hub
                    .call(move |hub| {
                        let resolution = hub.core.expire_permission(&rid).ok().flatten();
                        if let Some(resolution) = &resolution {
                            let _ = hub.publish(
                                &resolution.session_id,
                                "permission_resolved",
                                &resolved_data(resolution),
                                None,
                            );
                        }
                        resolution
                    })
                    .await;
                match expired {
                    Ok(Some(_)) => {
                        tracing::info!(request = %request_id, "permission timed out; cancelled");
                        self.waiters.resolve(&request_id, VoteOutcome::Cancelled);
                        VoteOutcome::Cancelled
                    }
                    // A vote won just before the deadline (its outcome is on the
                    // way), or a core fault lost the request (the waiter is
                    // answered `cancelled`). Bounded either way.
                    _ => tokio::time::timeout(Duration::from_secs(5), waiter)
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(VoteOutcome::Cancelled),
                }
            }
        }
    }

    /// A client's vote. First valid vote wins; the winner's outcome goes to the agent.
    pub(super) async fn vote(
        &self,
        request_id: &str,
        vote: ClientVote,
    ) -> Result<(), BackendError> {
        let outcome = match vote {
            ClientVote::Selected { option_id } => VoteOutcome::Selected(option_id),
            ClientVote::Cancelled => VoteOutcome::Cancelled,
        };
        let rid = request_id.to_owned();
        let waiters = self.waiters.clone();
        self.hub
            .call(move |hub| {
                let resolution = hub.core.vote(&rid, &outcome).map_err(core_unavailable)?;
                match resolution {
                    Ok(resolution) => {
                        let _ = hub.publish(
                            &resolution.session_id,
                            "permission_resolved",
                            &resolved_data(&resolution),
                            None,
                        );
                        waiters.resolve(&rid, resolution.outcome);
                        Ok(())
                    }
                    Err(VoteError::NotFound) => Err(BackendError::NotFound(format!(
                        "permission request {rid} not found or already resolved"
                    ))),
                    Err(VoteError::InvalidOption) => Err(BackendError::BadRequest {
                        message: format!(
                            "that option was not offered for permission request {rid}"
                        ),
                        code: Some("invalid_option_id"),
                    }),
                }
            })
            .await
            .map_err(|_| internal("the core is not running"))?
    }

    /// Resolve every pending permission of a session `cancelled` (ACP: a
    /// cancelled turn must answer its outstanding permission requests).
    pub(super) async fn cancel_permissions(&self, session_id: &str) {
        let sid = session_id.to_owned();
        let cancelled = self
            .hub
            .call(move |hub| cancel_in_hub(hub, &sid))
            .await
            .unwrap_or_default();
        self.answer_cancelled(cancelled);
    }

    /// Tell the agents' waiting tasks about permissions the core cancelled.
    pub(super) fn answer_cancelled(&self, cancelled: Vec<Resolution>) {
        for resolution in cancelled {
            self.waiters
                .resolve(&resolution.request_id, resolution.outcome);
        }
    }
}

/// On the hub thread: resolve a session's pending permissions `cancelled` and
/// publish each resolution.
pub fn cancel_in_hub(hub: &mut super::Hub, session_id: &str) -> Vec<Resolution> {
    let resolutions = hub
        .core
        .cancel_permissions(session_id)
        .unwrap_or_else(|fault| {
            tracing::error!("{fault}");
            Vec::new()
        });
    for resolution in &resolutions {
        let _ = hub.publish(
            session_id,
            "permission_resolved",
            &resolved_data(resolution),
            None,
        );
    }
    resolutions
}

fn acp_outcome(outcome: VoteOutcome) -> PermissionOutcome {
    match outcome {
        VoteOutcome::Selected(option_id) => PermissionOutcome::Selected(option_id),
        VoteOutcome::Cancelled => PermissionOutcome::Cancelled,
    }
}

/// ACP's `RequestPermissionResponse` for an outcome.
fn agent_answer(outcome: VoteOutcome) -> Value {
    acp_outcome(outcome).to_response()
}

/// The `data` of a `permission_resolved` event: `{requestId, outcome}` with
/// the same `outcome` object the agent receives.
pub fn resolved_data(resolution: &Resolution) -> String {
    let response = agent_answer(resolution.outcome.clone());
    json!({ "requestId": resolution.request_id, "outcome": response["outcome"] }).to_string()
}
