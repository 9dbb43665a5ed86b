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

use qserve_acp::RpcError;
use qserve_http::{BackendError, VoteOutcome as ClientVote};
use qserve_runtime::{
    OfferedOption, PermissionAnswer, PermissionOption, RegisterError, Resolution, ToolCall,
    VoteError, VoteOutcome,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::agent::AgentHost;
use super::hub::core_unavailable;
use super::{internal, Inner};

#[derive(Deserialize)]
struct PermissionParams<'a> {
    #[serde(rename = "toolCall", borrow)]
    tool_call: &'a RawValue,
    options: Vec<OptionParams>,
}

#[derive(Deserialize)]
struct OptionParams {
    #[serde(rename = "optionId")]
    option_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
}

/// The parts of a tool call the policy looks at.
#[derive(Deserialize, Default)]
struct ToolCallView {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    locations: Vec<LocationView>,
    #[serde(rename = "rawInput", default)]
    raw_input: Option<Value>,
}

#[derive(Deserialize)]
struct LocationView {
    path: String,
}

impl Inner {
    pub(super) async fn on_permission_request(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let session_id = self.route_request(host, params).await?;
        let request: PermissionParams = serde_json::from_str(params.get())
            .map_err(|err| RpcError::invalid_params(format!("bad request_permission: {err}")))?;
        let view: ToolCallView = serde_json::from_str(request.tool_call.get()).unwrap_or_default();
        let call = ToolCall {
            session_id: session_id.clone(),
            workspace: host.workspace.clone(),
            kind: view.kind.unwrap_or_else(|| "other".into()),
            title: view.title.unwrap_or_default(),
            locations: view.locations.into_iter().map(|l| l.path).collect(),
            raw_input: view
                .raw_input
                .map(|v| v.to_string())
                .unwrap_or_else(|| "null".into()),
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
        Ok(agent_answer(&outcome))
    }

    async fn ask_clients(
        self: &Arc<Self>,
        session_id: &str,
        request: &PermissionParams<'_>,
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
        let options_json: Vec<Value> = request
            .options
            .iter()
            .map(|o| json!({ "optionId": o.option_id, "name": o.name, "kind": o.kind }))
            .collect();
        let tool_call = request.tool_call.get().to_owned();
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
                let data = format!(
                    r#"{{"requestId":{},"sessionId":{},"toolCall":{},"options":{}}}"#,
                    json!(request_id),
                    json!(sid),
                    tool_call,
                    Value::Array(options_json)
                );
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
                    // A vote won just before the deadline: its outcome is on the way.
                    _ => waiter.await.unwrap_or(VoteOutcome::Cancelled),
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
            .call(move |hub| {
                let resolutions = hub.core.cancel_permissions(&sid).unwrap_or_default();
                for resolution in &resolutions {
                    let _ = hub.publish(
                        &sid,
                        "permission_resolved",
                        &resolved_data(resolution),
                        None,
                    );
                }
                resolutions
            })
            .await
            .unwrap_or_default();
        for resolution in cancelled {
            self.waiters
                .resolve(&resolution.request_id, resolution.outcome);
        }
    }
}

/// The `outcome` object of ACP's `RequestPermissionResponse`.
fn outcome_json(outcome: &VoteOutcome) -> Value {
    match outcome {
        VoteOutcome::Selected(option_id) => json!({ "outcome": "selected", "optionId": option_id }),
        VoteOutcome::Cancelled => json!({ "outcome": "cancelled" }),
    }
}

fn agent_answer(outcome: &VoteOutcome) -> Value {
    json!({ "outcome": outcome_json(outcome) })
}

/// The `data` of a `permission_resolved` event.
pub fn resolved_data(resolution: &Resolution) -> String {
    json!({ "requestId": resolution.request_id, "outcome": outcome_json(&resolution.outcome) })
        .to_string()
}
