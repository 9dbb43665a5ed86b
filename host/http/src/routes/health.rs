//! `GET /health` (cheap liveness) and `GET /health?deep=1` (asks the bridge,
//! so a wedged guest shows up as 503 instead of "ok" on a zombie daemon).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::backend::Backend;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct HealthQuery {
    deep: Option<String>,
}

pub async fn health<B: Backend>(
    State(app): State<AppState<B>>,
    Query(query): Query<HealthQuery>,
) -> Response {
    let deep = matches!(query.deep.as_deref(), Some("1" | "true"));
    if !deep {
        return Json(json!({ "status": "ok" })).into_response();
    }
    match app.backend.deep_health().await {
        Ok(health) => {
            let policy = &health.policy;
            let degraded = policy.is_degraded();
            let body = json!({
                "status": if degraded { "degraded" } else { "ok" },
                "sessions": health.sessions,
                "pendingPermissions": health.pending_permissions,
                "policy": {
                    "status": if degraded { "degraded" } else { "ok" },
                    "inFlight": policy.in_flight,
                    "stuck": policy.stuck,
                    "faults": policy.faults,
                    "recentFaults": policy.recent_faults,
                    "lastFault": policy.last_fault,
                },
            });
            if degraded {
                // A policy that hangs or faults decides nothing as written:
                // a readiness probe must take this daemon out of rotation.
                let mut body = body;
                body["error"] = json!("the policy is stuck or faulting");
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            } else {
                Json(body).into_response()
            }
        }
        Err(error) => {
            tracing::warn!(%error, "deep health check failed");
            // `status` is what probes read; `error` keeps the envelope rule.
            let body = json!({ "status": "degraded", "error": error.to_string() });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
