//! Session lifecycle routes: create/attach, describe, prompt, cancel, set model, close.
//! Each validates its input, calls the backend once, and shapes the answer.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::backend::{Backend, CreateSession, SessionScope};
use crate::body::JsonObject;
use crate::error::ApiError;
use crate::fields::{check_path_text, optional_string, required_string};
use crate::state::AppState;

/// `POST /session` → 200 `{sessionId, workspaceCwd, attached, agent}`.
pub async fn create<B: Backend>(
    State(app): State<AppState<B>>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let request = parse_create(&body)?;
    let created = app.backend.create_or_attach(request).await?;
    Ok(Json(json!({
        "sessionId": created.session_id,
        "workspaceCwd": created.workspace_cwd,
        "attached": created.attached,
        "agent": created.agent,
    })))
}

fn parse_create(body: &Map<String, Value>) -> Result<CreateSession, ApiError> {
    let cwd = required_string(body, "cwd")?;
    check_path_text("`cwd`", &cwd)?;
    let cwd = PathBuf::from(cwd);
    if !cwd.is_absolute() {
        return Err(ApiError::bad_request("`cwd` must be an absolute path"));
    }
    let scope = match optional_string(body, "sessionScope")?.as_deref() {
        None => None,
        Some("single") => Some(SessionScope::Single),
        Some("thread") => Some(SessionScope::Thread),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`sessionScope` must be \"single\" or \"thread\", not {other:?}"
            )))
        }
    };
    Ok(CreateSession {
        cwd,
        model_service_id: optional_string(body, "modelServiceId")?,
        scope,
        agent: optional_string(body, "agent")?,
    })
}

/// `POST /session/{id}/prompt` → 200 with the agent's `PromptResponse`.
/// If the client goes away, hyper drops this future, which cancels the prompt.
pub async fn prompt<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    check_prompt(&body)?;
    let response = app.backend.prompt(&session_id, body).await?;
    Ok(Json(response))
}

fn check_prompt(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("prompt") {
        None | Some(Value::Null) => Err(ApiError::bad_request("`prompt` is required")),
        Some(Value::Array(blocks)) if blocks.is_empty() => Err(ApiError::bad_request(
            "`prompt` must contain at least one content block",
        )),
        Some(Value::Array(blocks)) => match blocks.iter().position(|block| !block.is_object()) {
            Some(index) => Err(ApiError::bad_request(format!(
                "`prompt[{index}]` must be a content block object"
            ))),
            None => Ok(()),
        },
        Some(_) => Err(ApiError::bad_request(
            "`prompt` must be an array of content blocks",
        )),
    }
}

/// `POST /session/{id}/cancel` → 204. Any body is ignored.
pub async fn cancel<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.backend.cancel(&session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /session/{id}/model` → 200 with a JSON body (`DaemonClient` parses
/// one; a 204 would break it).
pub async fn set_model<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let model_id = required_string(&body, "modelId")?;
    let response = app.backend.set_model(&session_id, model_id).await?;
    Ok(Json(match response {
        Value::Null => json!({}),
        other => other,
    }))
}

/// `GET /session/{id}` → 200 `{sessionId, workspaceCwd, agent, agentCommand,
/// agentMode, scope}`; 404 (with `session_ended` and the reason for a
/// session that ended recently).
pub async fn info<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = app.backend.session_info(&session_id).await?;
    Ok(Json(json!({
        "sessionId": info.session_id,
        "workspaceCwd": info.workspace_cwd,
        "agent": info.agent,
        "agentCommand": info.agent_command,
        "agentMode": info.agent_mode,
        "scope": info.scope,
    })))
}

/// `DELETE /session/{id}` → 204.
pub async fn close<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.backend.close(&session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
