//! `GET /workspace/{cwd}/sessions`: the live sessions of one workspace;
//! `GET /sessions`: those of every workspace (qserve only; the web console's list).
//! `{cwd}` is a URL-encoded absolute path (`%2Fhome%2Fme%2Frepo`), which the
//! path extractor has already decoded. Query parameters (`DaemonClient`
//! sends `?size=20`) are accepted and ignored: the list is never long.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::error::ApiError;
use crate::fields::check_path_text;
use crate::state::AppState;

pub async fn list_sessions<B: Backend>(
    State(app): State<AppState<B>>,
    Path(cwd): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_path_text("the workspace path", &cwd)?;
    let cwd = PathBuf::from(cwd);
    if !cwd.is_absolute() {
        return Err(ApiError::bad_request(
            "the workspace must be a URL-encoded absolute path",
        ));
    }
    let sessions: Vec<Value> = app
        .backend
        .list_workspace(cwd)
        .await?
        .into_iter()
        .map(summary_json)
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

pub async fn list_all<B: Backend>(State(app): State<AppState<B>>) -> Result<Json<Value>, ApiError> {
    let sessions: Vec<Value> = app
        .backend
        .list_sessions()
        .await?
        .into_iter()
        .map(summary_json)
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

fn summary_json(summary: crate::backend::SessionSummary) -> Value {
    json!({ "sessionId": summary.session_id, "workspaceCwd": summary.workspace_cwd, "agent": summary.agent })
}
