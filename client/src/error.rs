//! What can go wrong talking to a daemon.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with a non-2xx status. `code` is the body's
    /// machine-readable `code` (e.g. `session_limit_exceeded`), `message` its
    /// `error` text; `body` is the whole JSON body (e.g. `data` of an agent
    /// error), `Value::Null` when it was not JSON.
    #[error("HTTP {status}: {message}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Http {
        status: u16,
        code: Option<String>,
        message: String,
        body: Value,
    },
    /// The request never got an answer: connection refused, reset, timed out.
    #[error("cannot reach the daemon: {0}")]
    Transport(#[from] reqwest::Error),
    /// A 2xx answer whose body is not what the protocol says.
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
    /// The base URL given to [`crate::Client::new`] is not an http(s) URL.
    #[error("invalid daemon URL {0:?}: expected http://HOST:PORT")]
    InvalidUrl(String),
    /// The event stream gave up after this many failed reconnects in a row.
    #[error("the event stream gave up after {attempts} failed reconnects: {last}")]
    StreamGaveUp {
        attempts: u32,
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// The HTTP status, when the daemon answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            ClientError::StreamGaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The body's `code`, when the daemon gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Http { code, .. } => code.as_deref(),
            ClientError::StreamGaveUp { last, .. } => last.code(),
            _ => None,
        }
    }
}
