//! The wire format: what each route takes and answers, in serde types.
//!
//! Fields a newer daemon may add are kept (`extra`), never rejected, so this
//! crate keeps working against daemons newer than itself.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /session`'s body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    /// Absolute path of the workspace; must be an existing directory.
    pub cwd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_service_id: Option<String>,
    /// `single` (attach to the workspace's live session) or `thread` (always new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_scope: Option<SessionScope>,
    /// A named agent (`--agent-def NAME=…`); `None`: the daemon's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl CreateSession {
    pub fn new(cwd: impl Into<String>) -> CreateSession {
        CreateSession {
            cwd: cwd.into(),
            model_service_id: None,
            session_scope: None,
            agent: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionScope {
    Single,
    Thread,
}

/// `POST /session`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    pub session_id: String,
    /// The canonical workspace path.
    pub workspace_cwd: String,
    /// True when the request joined a live session instead of creating one.
    pub attached: bool,
    /// The agent the session runs on (absent from daemons without named agents).
    #[serde(default)]
    pub agent: Option<String>,
}

/// `GET /session/:id`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub workspace_cwd: String,
    /// The agent the session runs on (`default` for `--agent`).
    pub agent: String,
    /// The agent's program name, e.g. `qwen`.
    pub agent_command: String,
    /// The ACP session mode the daemon put the session in, if the agent has modes.
    pub agent_mode: Option<String>,
    pub scope: SessionScope,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entry of `GET /workspace/:cwd/sessions`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session_id: String,
    pub workspace_cwd: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
}

/// `POST /session/:id/prompt`'s answer: the agent's ACP `PromptResponse`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromptResponse {
    /// `end_turn`, `cancelled`, `max_tokens`, … as the agent answered.
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A vote on a permission request (`POST /permission/:requestId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vote {
    Selected(String),
    Cancelled,
}

impl Vote {
    pub(crate) fn body(&self) -> Value {
        match self {
            Vote::Selected(option_id) => serde_json::json!(
                {"outcome": {"outcome": "selected", "optionId": option_id}}
            ),
            Vote::Cancelled => serde_json::json!({"outcome": {"outcome": "cancelled"}}),
        }
    }
}

/// The active policy, as `/capabilities` and `policy_changed` describe it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /capabilities`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub v: u32,
    pub mode: String,
    pub features: Vec<String>,
    #[serde(default)]
    pub model_services: Vec<Value>,
    #[serde(default)]
    pub policy: Option<PolicyInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /health` (and `?deep=1`, whose extra figures land in `extra`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One event of a session's stream: the SSE envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Per session, from 1, gapless; `None` for synthetic terminal frames
    /// (`client_evicted`, `stream_error`).
    #[serde(default)]
    pub id: Option<u64>,
    /// Envelope version (1).
    pub v: u32,
    /// `session_update`, `permission_request`, `permission_resolved`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

impl Event {
    /// The request, when this event is a `permission_request`.
    pub fn permission_request(&self) -> Option<PermissionRequest> {
        if self.kind != "permission_request" {
            return None;
        }
        serde_json::from_value(self.data.clone()).ok()
    }

    /// The text of an `agent_message_chunk` update, when this is one.
    pub fn agent_text(&self) -> Option<&str> {
        let update = &self.data["update"];
        if self.kind == "session_update" && update["sessionUpdate"] == "agent_message_chunk" {
            update["content"]["text"].as_str()
        } else {
            None
        }
    }

    /// Whether the daemon closes the stream after this event for good
    /// (`session_died`). `client_evicted` and `stream_error` also close the
    /// connection, but a resumed stream can go on after them.
    pub fn ends_session(&self) -> bool {
        self.kind == "session_died"
    }
}

/// The data of a `permission_request` event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionRequest {
    pub request_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    /// The agent's tool call as it sent it.
    #[serde(default)]
    pub tool_call: Value,
    pub options: Vec<PermissionOption>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    pub option_id: String,
    pub name: String,
    /// `allow_once`, `allow_always`, `reject_once`, `reject_always`.
    pub kind: String,
}
