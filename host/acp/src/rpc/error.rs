//! The JSON-RPC 2.0 error object, plus the codes ACP and this crate use.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A JSON-RPC error: sent by the agent, sent to the agent, or made up by the
/// connection when the agent is gone ([`RpcError::is_connection_closed`]).
///
/// Displayed with the agent's message escaped ([`escape_for_log`]): the
/// message is the agent's text and ends up in log lines. `message` itself
/// stays as the agent sent it.
///
/// [`escape_for_log`]: crate::escape_for_log
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{} (JSON-RPC error {code})", crate::lines::escape_for_log(message))]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// ACP: authentication required (what `qwen --acp` answers `session/new` without a key).
    pub const AUTH_REQUIRED: i64 = -32000;
    /// ACP: a resource (file, session) does not exist.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Ours (implementation-defined server-error range): the agent's
    /// connection is closed, so the request never got an answer.
    pub const CONNECTION_CLOSED: i64 = -32099;

    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The answer to a method this side does not implement.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            Self::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
        .with_data(json!({ "method": method }))
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_PARAMS, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL_ERROR, message)
    }

    pub fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new(Self::RESOURCE_NOT_FOUND, message)
    }

    pub fn connection_closed(reason: impl std::fmt::Display) -> Self {
        Self::new(
            Self::CONNECTION_CLOSED,
            format!("the agent connection is closed: {reason}"),
        )
    }

    pub fn is_method_not_found(&self) -> bool {
        self.code == Self::METHOD_NOT_FOUND
    }

    /// True when the error was made up locally because the agent went away,
    /// as opposed to an answer from the agent.
    pub fn is_connection_closed(&self) -> bool {
        self.code == Self::CONNECTION_CLOSED
    }
}
