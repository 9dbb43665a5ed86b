//! `POST /permission/{requestId}`: a client's vote on a pending permission.
//!
//! `DaemonClient.respondToPermission` treats exactly 200 as "my vote won"
//! and 404 as "another client was first"; anything else throws.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::backend::{Backend, VoteOutcome};
use crate::body::JsonObject;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn vote<B: Backend>(
    State(app): State<AppState<B>>,
    Path(request_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let outcome = parse_outcome(&body)?;
    app.backend.vote(&request_id, outcome).await?;
    Ok(Json(json!({ "accepted": true })))
}

/// `{"outcome":{"outcome":"selected","optionId":S}}` or `{"outcome":{"outcome":"cancelled"}}`.
fn parse_outcome(body: &Map<String, Value>) -> Result<VoteOutcome, ApiError> {
    let Some(Value::Object(outcome)) = body.get("outcome") else {
        return Err(ApiError::bad_request(
            "`outcome` must be an object like {\"outcome\":\"selected\",\"optionId\":\"…\"}",
        ));
    };
    match outcome.get("outcome").and_then(Value::as_str) {
        Some("cancelled") => Ok(VoteOutcome::Cancelled),
        Some("selected") => match outcome.get("optionId") {
            Some(Value::String(option_id)) if !option_id.is_empty() => Ok(VoteOutcome::Selected {
                option_id: option_id.clone(),
            }),
            _ => Err(ApiError::bad_request(
                "`outcome.optionId` must be a non-empty string when the outcome is \"selected\"",
            )),
        },
        _ => Err(ApiError::bad_request(
            "`outcome.outcome` must be \"selected\" or \"cancelled\"",
        )),
    }
}
