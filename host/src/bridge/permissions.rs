//! Permission requests: the policy decides, or the clients vote.
//!
//! Path of a request the policy hands to the clients: the core registers it
//! (fresh request id, offered options, the per-session cap), a waiter is
//! recorded and `policy_decision` + `permission_request` are published — all
//! in one hub job, so a vote can never arrive before its waiter exists. Then
//! the first of: a valid vote, the deadline, a cancel, the session's end,
//! answers the agent. The agent is never left waiting, whatever the policy or
//! the clients do, and every request ends as one decision-log record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qserve_acp::methods::{PermissionOutcome, PermissionRequest};
use qserve_acp::RpcError;
use qserve_http::{BackendError, VoteOutcome as ClientVote};
use qserve_runtime::{PermissionAnswer, Phase, RegisterError, Resolution, VoteError, VoteOutcome};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::agent::AgentHost;
use super::decisions::{self, DecisionRecord, Source};
use super::hub::core_unavailable;
use super::{internal, Inner};

/// How an ask ended: the outcome, who decided, why, and the request id.
struct AskEnd {
    outcome: VoteOutcome,
    source: Source,
    reason: String,
    request_id: Option<String>,
}

impl Inner {
    pub(super) async fn on_permission_request(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let started = Instant::now();
        let mut request = PermissionRequest::parse(params)?;
        // The tool's name and kind, where only the call's updates carry them.
        host.complete_tool_call(&mut request.tool_call);
        let session_id = self.route(host, &request.session_id).await?;
        let ctx = self.decision_context(&session_id, &host.workspace, Phase::Running);
        let summary = &request.tool_call;
        let call = decisions::tool_call(&host.workspace, summary).await;
        let offered = decisions::offered_options(&request);
        // Cloned now: a policy swapped meanwhile does not touch this decision.
        let active = self.policy.current();
        let shadow = self.shadow_permission(&ctx, &call, &offered);
        let span = super::metrics::decision_span("permission", &session_id);
        let decided = active.policy.decide_permission(&ctx, &call, &offered);
        let decision = tracing::Instrument::instrument(decided, span.clone()).await;
        let record = DecisionRecord {
            decision_id: uuid::Uuid::new_v4().to_string(),
            kind: "permission",
            subject: decisions::permission_subject(&call, summary, &request),
            context: ctx,
            policy: decisions::policy_json(active.policy.identity()),
            policy_verdict: decision.verdict,
            policy_reason: decision.reason.clone(),
            policy_latency: decision.latency,
            log_only: decisions::permission_log_only(
                summary,
                match decision.answer {
                    PermissionAnswer::AskClients(timeout) => timeout,
                    _ => None,
                },
            ),
        };
        super::metrics::count_decision(&record, decision.fault.as_deref(), &span);
        let policy_source = if decision.fault.is_some() {
            Source::Fault
        } else {
            Source::Policy
        };
        let end = match decision.answer {
            PermissionAnswer::Selected(option_id) => {
                self.publish_decision(&session_id, &record, Some(&option_id), None)
                    .await;
                AskEnd {
                    outcome: VoteOutcome::Selected(option_id),
                    source: policy_source,
                    reason: decision.reason,
                    request_id: None,
                }
            }
            PermissionAnswer::Cancelled => {
                self.publish_decision(&session_id, &record, None, None)
                    .await;
                AskEnd {
                    outcome: VoteOutcome::Cancelled,
                    source: policy_source,
                    reason: decision.reason,
                    request_id: None,
                }
            }
            PermissionAnswer::AskClients(timeout) => {
                let timeout = timeout.unwrap_or(self.config.permission_timeout);
                self.ask_clients(&session_id, &request, timeout, &record)
                    .await
            }
        };
        let (outcome_name, option_id) = match &end.outcome {
            VoteOutcome::Selected(option_id) => ("selected", Some(option_id.as_str())),
            VoteOutcome::Cancelled => ("cancelled", None),
        };
        qserve_metrics::get().permission_decided(end.source.as_str(), outcome_name);
        self.record(
            record.log_line(
                outcome_name,
                option_id,
                end.source,
                &end.reason,
                end.request_id.as_deref(),
                started.elapsed(),
            ),
            shadow,
        );
        Ok(agent_answer(end.outcome))
    }

    /// Publish a `policy_decision` on the session's stream.
    pub(super) async fn publish_decision(
        &self,
        session_id: &str,
        record: &DecisionRecord,
        option_id: Option<&str>,
        request_id: Option<&str>,
    ) {
        let data = record.event_data(option_id, request_id).to_string();
        let sid = session_id.to_owned();
        let _ = self
            .hub
            .call(move |hub| hub.publish(&sid, "policy_decision", &data, None))
            .await;
    }

    async fn ask_clients(
        self: &Arc<Self>,
        session_id: &str,
        request: &PermissionRequest,
        timeout: Duration,
        record: &DecisionRecord,
    ) -> AskEnd {
        let option_ids: Vec<String> = request
            .options
            .iter()
            .map(|o| o.option_id.clone())
            .collect();
        let data_tail = json!({
            "sessionId": session_id,
            "toolCall": request.tool_call_raw,
            "options": request.options_raw,
        });
        let sid = session_id.to_owned();
        let waiters = self.waiters.clone();
        // The request id is minted by the core inside the hub job; the event
        // is completed there.
        let decision_data = record.event_data(None, None);
        let registered = self
            .hub
            .call(move |hub| {
                let request_id = match hub.core.register_permission(&sid, &option_ids) {
                    Ok(Ok(id)) => id,
                    Ok(Err(err)) => return Err(err),
                    Err(fault) => {
                        tracing::error!("{fault}");
                        return Err(RegisterError::UnknownSession);
                    }
                };
                let waiter = waiters.insert(request_id.clone());
                let mut decision = decision_data;
                decision["requestId"] = Value::String(request_id.clone());
                let _ = hub.publish(&sid, "policy_decision", &decision.to_string(), None);
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
                return AskEnd {
                    outcome: VoteOutcome::Cancelled,
                    source: Source::Cancel,
                    reason: format!("{max} permission requests already pending in this session"),
                    request_id: None,
                };
            }
            _ => {
                return AskEnd {
                    outcome: VoteOutcome::Cancelled,
                    source: Source::Cancel,
                    reason: "the session ended before the request could be asked".into(),
                    request_id: None,
                }
            }
        };
        let ended = |(outcome, source): (VoteOutcome, Source)| {
            let reason = match source {
                Source::Client => "a client voted".to_owned(),
                Source::Timeout => format!("no vote within {} ms", timeout.as_millis()),
                _ => "the turn or the session ended first".to_owned(),
            };
            AskEnd {
                outcome,
                source,
                reason,
                request_id: Some(request_id.clone()),
            }
        };
        match tokio::time::timeout(timeout, &mut waiter).await {
            Ok(Ok(pair)) => ended(pair),
            Ok(Err(_)) => ended((VoteOutcome::Cancelled, Source::Cancel)),
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
                        self.waiters
                            .resolve(&request_id, VoteOutcome::Cancelled, Source::Timeout);
                        ended((VoteOutcome::Cancelled, Source::Timeout))
                    }
                    // A vote won just before the deadline (its outcome is on the
                    // way), or a core fault lost the request (the waiter is
                    // answered `cancelled`). Bounded either way.
                    _ => ended(
                        tokio::time::timeout(Duration::from_secs(5), waiter)
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .unwrap_or((VoteOutcome::Cancelled, Source::Cancel)),
                    ),
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
        let voted_option = match &vote {
            ClientVote::Selected { option_id } => option_id.clone(),
            ClientVote::Cancelled => String::new(),
        };
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
                        waiters.resolve(&rid, resolution.outcome, Source::Client);
                        Ok(())
                    }
                    Err(VoteError::NotFound) => Err(BackendError::NotFound(format!(
                        "permission request {rid} not found or already resolved"
                    ))),
                    Err(VoteError::InvalidOption) => Err(BackendError::InvalidOption {
                        request_id: rid,
                        option_id: voted_option,
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
                .resolve(&resolution.request_id, resolution.outcome, Source::Cancel);
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

#[cfg(test)]
#[path = "race_tests.rs"]
mod race_tests;
