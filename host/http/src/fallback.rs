//! Error answers nobody's handler wrote: unknown routes (404), wrong methods
//! (405), and a last-resort rewrite of any other non-JSON 4xx/5xx (axum's
//! own extractor rejections answer in plain text) into the JSON envelope.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Bodies longer than this are not worth quoting in an error message.
const MAX_QUOTED_BODY: usize = 4096;

pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Middleware: rewrites a 4xx/5xx whose body is not JSON into the envelope,
/// keeping status and headers (e.g. `Allow`, `Retry-After`), and logs every
/// 5xx with its route and cause (one line, not just a status).
pub async fn json_error_bodies(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    if response.status().is_server_error() {
        let status = response.status().as_u16();
        match response.extensions().get::<crate::error::ErrorCause>() {
            Some(cause) => tracing::warn!(
                %method,
                path = %path,
                status,
                code = cause.code.unwrap_or("-"),
                "request failed: {}",
                cause.message
            ),
            None => tracing::warn!(%method, path = %path, status, "request failed"),
        }
    }
    if !needs_rewrite(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_QUOTED_BODY)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let message = text.unwrap_or_else(|| {
        parts
            .status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    let rewritten = ApiError::new(parts.status, message).into_response();
    let (rewritten_parts, body) = rewritten.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        rewritten_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    Response::from_parts(parts, body)
}

fn needs_rewrite(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    !is_json
}
