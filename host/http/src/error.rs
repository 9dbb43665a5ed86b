//! The JSON error envelope every 4xx/5xx answer uses:
//! `{"error": message, "code"?: string, "data"?: any}`.
//!
//! `DaemonClient` turns any non-2xx into a `DaemonHttpError` carrying the
//! parsed body, so clients branch on `status` and `code`; an HTML or plain
//! text body would reach them as an opaque string.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::backend::BackendError;

/// Seconds a client should wait before retrying when the session cap is hit.
pub const SESSION_LIMIT_RETRY_AFTER_SECS: u32 = 5;

/// Seconds a client should wait before retrying when a session's prompt queue is full.
pub const PROMPT_QUEUE_RETRY_AFTER_SECS: u32 = 5;

/// Seconds a client should wait before retrying at the subscriber cap.
pub const SUBSCRIBER_LIMIT_RETRY_AFTER_SECS: u32 = 5;

/// The one body every authentication failure gets, so a caller cannot tell
/// "no header" from "bad scheme" from "wrong token".
pub const UNAUTHORIZED_MESSAGE: &str = "Unauthorized";

/// An error answer: status, envelope fields and the few headers that go with it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: Option<&'static str>,
    /// Boxed: keeps `Result<_, ApiError>` small on the happy path.
    pub data: Option<Box<Value>>,
    /// Fields beside `error` and `code` that clients read by name (e.g.
    /// `requestId` and `optionId` of an `invalid_option_id`, as `qwen serve`).
    pub fields: Option<Box<Map<String, Value>>>,
    pub retry_after_secs: Option<u32>,
    /// Adds `WWW-Authenticate: Bearer` (401 only).
    pub bearer_challenge: bool,
    /// Members beside `error`/`code`/`data`, where a client reads them at the
    /// top level (`DaemonClient` reads `prompt_queue_full`'s `sessionId`,
    /// `limit`, `pendingCount` there).
    pub extra: Option<Box<Map<String, Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            data: None,
            fields: None,
            retry_after_secs: None,
            bearer_challenge: false,
            extra: None,
        }
    }

    /// 400 for a request body or parameter that breaks the contract.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthorized() -> Self {
        Self {
            bearer_challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED_MESSAGE)
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The envelope as JSON.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        if let Some(fields) = &self.fields {
            body.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        body.insert("error".into(), Value::String(self.message.clone()));
        if let Some(code) = self.code {
            body.insert("code".into(), Value::String(code.into()));
        }
        if let Some(data) = &self.data {
            body.insert("data".into(), (**data).clone());
        }
        if let Some(extra) = &self.extra {
            for (key, value) in extra.iter() {
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        Value::Object(body)
    }
}

/// Put on a 5xx response so that the logging middleware
/// ([`crate::fallback::json_error_bodies`]) can say why, next to the route.
#[derive(Debug, Clone)]
pub struct ErrorCause {
    pub message: String,
    pub code: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status.is_server_error() {
            response.extensions_mut().insert(ErrorCause {
                message: self.message.clone(),
                code: self.code,
            });
        }
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.bearer_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        let message = error.to_string();
        match error {
            BackendError::BadRequest { code, .. } => Self {
                code,
                ..Self::bad_request(message)
            },
            BackendError::InvalidOption {
                request_id,
                option_id,
            } => {
                let mut fields = Map::new();
                fields.insert("requestId".into(), Value::String(request_id));
                fields.insert("optionId".into(), Value::String(option_id));
                Self {
                    fields: Some(Box::new(fields)),
                    ..Self::bad_request(message).with_code("invalid_option_id")
                }
            }
            BackendError::Forbidden(_) => Self::forbidden(message).with_code("policy_refused"),
            BackendError::NotFound(_) => Self::not_found(message),
            BackendError::SessionEnded {
                session_id,
                reason,
                data,
            } => {
                let mut extra = Map::new();
                extra.insert("sessionId".into(), Value::String(session_id));
                extra.insert("reason".into(), Value::String(reason));
                Self {
                    data: Some(Box::new(data)),
                    extra: Some(Box::new(extra)),
                    ..Self::not_found(message).with_code("session_ended")
                }
            }
            BackendError::PromptQueueFull {
                session_id,
                limit,
                pending,
            } => {
                let mut extra = Map::new();
                extra.insert("sessionId".into(), Value::String(session_id));
                extra.insert("limit".into(), Value::from(limit));
                extra.insert("pendingCount".into(), Value::from(pending));
                Self {
                    retry_after_secs: Some(PROMPT_QUEUE_RETRY_AFTER_SECS),
                    extra: Some(Box::new(extra)),
                    ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
                        .with_code("prompt_queue_full")
                }
            }
            BackendError::SessionLimit { .. } => Self {
                retry_after_secs: Some(SESSION_LIMIT_RETRY_AFTER_SECS),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
                    .with_code("session_limit_exceeded")
            },
            BackendError::TooManySubscribers { .. } => Self {
                retry_after_secs: Some(SUBSCRIBER_LIMIT_RETRY_AFTER_SECS),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
                    .with_code("too_many_subscribers")
            },
            BackendError::NotSupported(_) => {
                Self::new(StatusCode::NOT_IMPLEMENTED, message).with_code("not_supported")
            }
            BackendError::Agent { data, .. } => Self {
                data: data.map(Box::new),
                ..Self::new(StatusCode::BAD_GATEWAY, message).with_code("agent_error")
            },
            BackendError::Unavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message).with_code("unavailable")
            }
            BackendError::PolicyRejected(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_code("policy_load_failed")
            }
            BackendError::Internal { code, .. } => Self {
                code,
                ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            },
        }
    }
}
