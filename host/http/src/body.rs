//! Where request bodies are read: a JSON object or a JSON error answer
//! (400 malformed, 413 too large, 415 not JSON) — never axum's plain text.

use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest body a route reads, in bytes (from [`crate::HttpConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body that parsed as a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S> FromRequest<S> for JsonObject
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        check_content_type(request.headers())?;
        if declared_length(request.headers()).is_some_and(|length| length > limit as u64) {
            // Refuse before reading a byte of it.
            return Err(too_large(limit));
        }
        let bytes = match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => return Err(too_large(limit)),
            Err(error) => {
                return Err(ApiError::bad_request(format!(
                    "failed to read the request body: {error}"
                )))
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
            Err(error) => Err(ApiError::bad_request(format!(
                "request body is not valid JSON: {error}"
            ))),
        }
    }
}

/// A body without a Content-Type is tried as JSON (some clients omit it);
/// one that says it is something else (`curl -d` sends a form type) is
/// refused with a message naming the fix.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request body must be JSON (Content-Type: application/json)",
        ))
    }
}

pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the limit of {limit} bytes"),
    )
    .with_code("payload_too_large")
}
