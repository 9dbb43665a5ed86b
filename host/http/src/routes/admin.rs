//! `PUT /admin/policy`: the operator swaps the policy without a restart.
//!
//! Exists only when an admin token is configured, and only that token opens
//! it (never the client token: clients, and agents that learned the client
//! token, must not choose the policy that judges them). The body is either
//! the component itself (`Content-Type: application/wasm`) or JSON naming
//! what to load:
//!
//! ```json
//! {"component": "builtin:readonly" | "/path/policy.wasm",
//!  "config": "inline document" , "configPath": "/path/config.toml"}
//! ```
//!
//! Everything left out is kept. The answer is the newly active policy, or
//! 422 `policy_load_failed` with the reason while the old policy stays.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};

use crate::backend::{Backend, ComponentSource, ConfigSource, PolicyReload};
use crate::body::{declared_length, too_large};
use crate::error::ApiError;
use crate::routes::capabilities::policy_json;
use crate::state::AppState;

/// The admin token, checked by [`require_admin`].
#[derive(Debug)]
pub struct AdminAuth {
    token: Vec<u8>,
}

impl AdminAuth {
    pub fn new(token: String) -> Self {
        AdminAuth {
            token: token.into_bytes(),
        }
    }
}

/// Middleware on `/admin/*`: 401 unless `Authorization: Bearer <admin token>`.
pub async fn require_admin(
    State(auth): State<Arc<AdminAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if crate::auth::bearer_matches(request.headers().get(header::AUTHORIZATION), &auth.token) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Largest upload accepted on `PUT /admin/policy`.
#[derive(Debug, Clone, Copy)]
pub struct AdminBodyLimit(pub usize);

pub async fn put_policy<B: Backend>(
    State(app): State<AppState<B>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let limit = app.admin_body_limit.0;
    if declared_length(&headers).is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large(limit)),
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "failed to read the request body: {error}"
            )))
        }
    };
    let reload = if is_wasm(&headers) {
        PolicyReload {
            component: Some(ComponentSource::Uploaded(bytes)),
            config: None,
        }
    } else {
        parse_json_reload(&bytes)?
    };
    let info = app.backend.reload_policy(reload).await?;
    Ok(Json(json!({ "policy": policy_json(&info) })))
}

fn is_wasm(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/wasm"))
}

fn parse_json_reload(bytes: &Bytes) -> Result<PolicyReload, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "body must be a component (Content-Type: application/wasm) or a JSON object: {error}"
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("body must be a JSON object"));
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "component" | "config" | "configPath") {
            return Err(ApiError::bad_request(format!(
                "unknown field `{key}` (expected component, config, configPath)"
            )));
        }
    }
    let string = |key: &str| -> Result<Option<String>, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
        }
    };
    let component = string("component")?;
    if let Some(name) = &component {
        crate::fields::check_path_text("`component`", name)?;
    }
    let component = component.map(ComponentSource::Named);
    let config = match (string("config")?, string("configPath")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `config` or `configPath`, not both",
            ))
        }
        (Some(inline), None) => Some(ConfigSource::Inline(inline)),
        (None, Some(path)) => {
            crate::fields::check_path_text("`configPath`", &path)?;
            Some(ConfigSource::Path(PathBuf::from(path)))
        }
        (None, None) => None,
    };
    if component.is_none() && config.is_none() {
        return Err(ApiError::bad_request(
            "nothing to load: give `component`, `config` or `configPath`",
        ));
    }
    Ok(PolicyReload { component, config })
}
