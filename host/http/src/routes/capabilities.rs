//! `GET /capabilities`: what this daemon can do. Clients gate on `features`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::backend::{Backend, PolicyInfo};
use crate::state::AppState;

/// The tags every qserve advertises, in `qwen serve`'s order.
pub const BASE_FEATURES: [&str; 9] = [
    "health",
    "capabilities",
    "session_create",
    "session_prompt",
    "session_cancel",
    "session_events",
    "permission_vote",
    "session_list",
    "session_set_model",
];

/// Base tags followed by the extras not already among them.
pub fn feature_list(extra: &[String]) -> Vec<String> {
    let mut features: Vec<String> = BASE_FEATURES.iter().map(|tag| tag.to_string()).collect();
    for tag in extra {
        if !features.contains(tag) {
            features.push(tag.clone());
        }
    }
    features
}

pub async fn capabilities<B: Backend>(State(app): State<AppState<B>>) -> Json<Value> {
    let policy = app.backend.policy_info();
    let mut body = json!({
        "v": 1,
        "mode": &*app.mode,
        "features": &*app.features,
        "modelServices": [],
        "policy": policy_json(&policy),
        // The names `POST /session` accepts as `agent`, the default first.
        "agents": app.backend.agent_names(),
    });
    // `--node-id`: which daemon behind a proxy answered (docs/deploy.md).
    if let Some(node) = &app.node_id {
        body["nodeId"] = json!(&**node);
    }
    Json(body)
}

/// The active policy as `/capabilities` and the admin route show it.
pub fn policy_json(policy: &PolicyInfo) -> Value {
    json!({
        "name": policy.name,
        "version": policy.version,
        "sha256": policy.sha256,
        "origin": policy.origin,
        "loadedAtMs": policy.loaded_at_ms,
    })
}
