//! Model switching. `session/set_model` left the ACP spec, and agents
//! disagree on it: send it as raw JSON, fall back to the agent's `model`
//! config option when it has one, and say plainly when neither exists.

use qserve_acp::methods::{self, method};
use qserve_acp::quirks::ModelSwitch;
use qserve_http::BackendError;
use serde_json::{json, Value};

use super::Inner;

impl Inner {
    /// Switch one session's model (serialized per session, bounded in time,
    /// failing at once if the agent dies) and tell every subscriber.
    pub(super) async fn set_model(
        &self,
        session_id: &str,
        model_id: &str,
    ) -> Result<Value, BackendError> {
        let live = self.session(session_id)?;
        let _turn = live.model_turn.lock().await;
        let conn = &live.agent.conn;
        let sid = &live.agent_session_id;
        let set_model = || {
            conn.request(
                method::SESSION_SET_MODEL,
                methods::set_model_params(sid, model_id),
            )
        };
        let set_option = |config_id: &str| {
            conn.request(
                method::SESSION_SET_CONFIG_OPTION,
                methods::set_config_option_params(sid, config_id, model_id),
            )
        };
        let switch = async {
            match (live.agent.quirks.model_switch, live.model_option.as_deref()) {
                // The agent's model config option is the canonical path.
                (ModelSwitch::ConfigOptionElseSetModel, Some(config_id)) => {
                    set_option(config_id).await.map_err(agent_failed)
                }
                // `session/set_model` first; on -32601, the config option if any.
                (_, option) => match set_model().await {
                    Err(err) if err.is_method_not_found() => match option {
                        Some(config_id) => set_option(config_id).await.map_err(agent_failed),
                        None => Err(BackendError::NotSupported(
                            "model switching is not supported by this agent (it does not implement \
                             session/set_model and advertises no model config option)"
                                .into(),
                        )),
                    },
                    other => other.map_err(agent_failed),
                },
            }
        };
        let timeout = self.config.model_switch_timeout;
        let result = tokio::time::timeout(timeout, switch)
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Agent {
                    message: format!(
                        "the agent did not switch models within {} s",
                        timeout.as_secs()
                    ),
                    data: None,
                })
            });
        let sid = live.id.clone();
        match result {
            Ok(answer) => {
                let data = json!({ "sessionId": sid, "modelId": model_id }).to_string();
                self.publish(&sid, "model_switched", data).await;
                Ok(if answer.is_object() {
                    answer
                } else {
                    json!({})
                })
            }
            Err(err) => {
                let data =
                    json!({ "sessionId": sid, "modelId": model_id, "error": err.to_string() })
                        .to_string();
                self.publish(&sid, "model_switch_failed", data).await;
                Err(err)
            }
        }
    }

    /// Publish one event from a request path (not the agent's stream).
    pub(super) async fn publish(&self, session_id: &str, kind: &'static str, data: String) {
        let sid = session_id.to_owned();
        let _ = self
            .hub
            .submit(move |hub| {
                if let Err(fault) = hub.publish(&sid, kind, &data, None) {
                    tracing::error!("{fault}");
                }
            })
            .await;
    }
}

fn agent_failed(err: qserve_acp::RpcError) -> BackendError {
    if err.is_connection_closed() {
        BackendError::Internal {
            message: format!("the agent exited during the model switch: {err}"),
            code: Some("agent_died"),
        }
    } else if err.is_method_not_found() {
        BackendError::NotSupported(format!(
            "model switching is not supported by this agent: {err}"
        ))
    } else {
        BackendError::Agent {
            message: format!("the agent refused the model switch: {}", err.message),
            data: serde_json::to_value(&err).ok(),
        }
    }
}
