//! The few ACP messages the daemon acts on, typed; everything else stays raw
//! JSON (above all `session/update`, whose variants keep growing).
//!
//! Parsing is lenient: unknown fields are ignored, optional fields may be
//! missing, and an odd value in a field the daemon does not need never fails
//! the whole message. Where the `agent-client-protocol-schema` types are
//! that lenient (capabilities) they are used; where they are strict about
//! enums the daemon only passes through (tool kinds, option kinds, stop
//! reasons) plain strings are kept instead, as the WIT policy interface does.

use std::path::{Path, PathBuf};

use agent_client_protocol_schema::v1::{
    AgentCapabilities, ClientCapabilities, FileSystemCapabilities, Implementation,
    InitializeRequest,
};
use agent_client_protocol_schema::ProtocolVersion;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::fs;
use crate::rpc::RpcError;

/// ACP method names used by the daemon.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const SESSION_NEW: &str = "session/new";
    pub const SESSION_PROMPT: &str = "session/prompt";
    pub const SESSION_CANCEL: &str = "session/cancel";
    pub const SESSION_CLOSE: &str = "session/close";
    /// Left the ACP spec in mid-2026; see [`crate::quirks`].
    pub const SESSION_SET_MODEL: &str = "session/set_model";
    pub const SESSION_SET_CONFIG_OPTION: &str = "session/set_config_option";
    /// Puts a session in one of the modes its `session/new` advertised.
    pub const SESSION_SET_MODE: &str = "session/set_mode";
    pub const SESSION_UPDATE: &str = "session/update";
    pub const SESSION_REQUEST_PERMISSION: &str = "session/request_permission";
    pub const FS_READ_TEXT_FILE: &str = "fs/read_text_file";
    pub const FS_WRITE_TEXT_FILE: &str = "fs/write_text_file";
}

/// The ACP protocol version the daemon speaks.
pub const PROTOCOL_VERSION: u16 = 1;

// ---------------------------------------------------------------- initialize

/// `initialize` params: protocol version 1, and the client can serve
/// `fs/read_text_file` and `fs/write_text_file` (so the agent routes file
/// access through the daemon, where the policy sees it). No terminal.
pub fn initialize_params() -> Value {
    let request = InitializeRequest::new(ProtocolVersion::V1)
        .client_capabilities(
            ClientCapabilities::new().fs(FileSystemCapabilities::new()
                .read_text_file(true)
                .write_text_file(true)),
        )
        .client_info(Implementation::new("qserve", env!("CARGO_PKG_VERSION")));
    serde_json::to_value(request).expect("InitializeRequest serializes")
}

/// What the agent said about itself in its `initialize` result.
#[derive(Debug, Clone)]
pub struct InitializeInfo {
    pub protocol_version: u16,
    /// Unknown or malformed sub-fields fall back to "not supported".
    pub agent_capabilities: AgentCapabilities,
    /// The result's top-level `_meta` (agent extensions, e.g. qwen's
    /// `qwen-code/external-tool-guard-ready`).
    pub meta: Map<String, Value>,
    /// The whole result as the agent sent it.
    pub raw: Value,
}

impl InitializeInfo {
    pub fn parse(result: &Value) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            protocol_version: u16,
            #[serde(default)]
            agent_capabilities: Option<Value>,
            #[serde(default, rename = "_meta")]
            meta: Option<Value>,
        }
        let wire: Wire = parse_value(result, "initialize result")?;
        let agent_capabilities = wire
            .agent_capabilities
            .and_then(|caps| serde_json::from_value(caps).ok())
            .unwrap_or_default();
        Ok(Self {
            protocol_version: wire.protocol_version,
            agent_capabilities,
            meta: object_or_empty(wire.meta),
            raw: result.clone(),
        })
    }

    /// `session/load` is supported.
    pub fn supports_load_session(&self) -> bool {
        self.agent_capabilities.load_session
    }

    /// `session/close` is supported (`sessionCapabilities.close` present).
    pub fn supports_close(&self) -> bool {
        self.agent_capabilities.session_capabilities.close.is_some()
    }

    /// A key of the top-level `_meta`.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.meta.get(key)
    }
}

// ---------------------------------------------------------------- sessions

/// `session/new` params: the workspace, no MCP servers.
pub fn new_session_params(cwd: &Path) -> Value {
    json!({ "cwd": cwd, "mcpServers": [] })
}

/// The parts of a `session/new` result the daemon uses.
#[derive(Debug, Clone)]
pub struct NewSessionInfo {
    pub session_id: String,
    /// The pre-config-options model list (`models`), when the agent sends one.
    pub models: Option<SessionModels>,
    /// `configOptions`; entries without an `id` are dropped.
    pub config_options: Vec<ConfigOption>,
    /// `modes`, when the agent has session modes (qwen, claude-code-acp).
    pub modes: Option<SessionModes>,
    pub raw: Value,
}

/// A session's modes (`modes` of `session/new`): what it is in, what it offers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionModes {
    pub current_mode_id: Option<String>,
    /// `availableModes[].id`, in the agent's order.
    pub available: Vec<String>,
}

impl SessionModes {
    fn parse(value: &Value) -> Option<Self> {
        let available: Vec<String> = value
            .get("availableModes")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Some(Self {
            current_mode_id: value
                .get("currentModeId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            available,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionModels {
    #[serde(default)]
    pub current_model_id: Option<String>,
    #[serde(default, deserialize_with = "skip_bad_items")]
    pub available_models: Vec<ModelInfo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub model_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One session configuration option (ACP `configOptions` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOption {
    pub id: String,
    pub name: Option<String>,
    /// e.g. `model`, `mode`, `thought_level`.
    pub category: Option<String>,
    pub current_value: Option<Value>,
    pub raw: Value,
}

impl NewSessionInfo {
    pub fn parse(result: &Value) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            session_id: String,
            #[serde(default)]
            models: Option<Value>,
            #[serde(default)]
            config_options: Option<Vec<Value>>,
            #[serde(default)]
            modes: Option<Value>,
        }
        let wire: Wire = parse_value(result, "session/new result")?;
        let config_options = wire
            .config_options
            .unwrap_or_default()
            .into_iter()
            .filter_map(|raw| {
                let id = raw.get("id")?.as_str()?.to_owned();
                let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
                Some(ConfigOption {
                    id,
                    name: text("name"),
                    category: text("category"),
                    current_value: raw.get("currentValue").cloned(),
                    raw,
                })
            })
            .collect();
        Ok(Self {
            session_id: wire.session_id,
            models: wire.models.and_then(|m| serde_json::from_value(m).ok()),
            config_options,
            modes: wire.modes.as_ref().and_then(SessionModes::parse),
            raw: result.clone(),
        })
    }

    /// The config option that selects the model (category `model`), if any:
    /// switch models with `session/set_config_option` on it.
    pub fn model_config_option(&self) -> Option<&ConfigOption> {
        self.config_options
            .iter()
            .find(|o| o.category.as_deref() == Some("model"))
    }
}

/// `session/prompt` params from a client's request body: every field of the
/// body is kept (`prompt`, `_meta`, …) and `sessionId` is set to the agent's
/// session id, replacing any the client sent.
pub fn prompt_params(agent_session_id: &str, mut body: Map<String, Value>) -> Value {
    body.insert(
        "sessionId".into(),
        Value::String(agent_session_id.to_owned()),
    );
    Value::Object(body)
}

/// A `session/prompt` result.
#[derive(Debug, Clone)]
pub struct PromptResult {
    /// `end_turn`, `cancelled`, `max_tokens`, `max_turn_requests`, `refusal`, or newer.
    pub stop_reason: String,
    /// The result as the agent sent it (what the HTTP client gets).
    pub raw: Value,
}

impl PromptResult {
    pub fn parse(result: &Value) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            stop_reason: String,
        }
        let wire: Wire = parse_value(result, "session/prompt result")?;
        Ok(Self {
            stop_reason: wire.stop_reason,
            raw: result.clone(),
        })
    }

    pub fn is_cancelled(&self) -> bool {
        self.stop_reason == "cancelled"
    }
}

/// Params of `session/cancel` (a notification) and `session/close`.
pub fn session_id_params(agent_session_id: &str) -> Value {
    json!({ "sessionId": agent_session_id })
}

/// `session/set_model` params (send raw; agents disagree on it).
pub fn set_model_params(agent_session_id: &str, model_id: &str) -> Value {
    json!({ "sessionId": agent_session_id, "modelId": model_id })
}

/// `session/set_mode` params.
pub fn set_mode_params(agent_session_id: &str, mode_id: &str) -> Value {
    json!({ "sessionId": agent_session_id, "modeId": mode_id })
}

/// `session/set_config_option` params.
pub fn set_config_option_params(agent_session_id: &str, config_id: &str, value: &str) -> Value {
    json!({ "sessionId": agent_session_id, "configId": config_id, "value": value })
}

// ---------------------------------------------------------------- permissions

/// An agent's `session/request_permission`, as the policy sees it.
#[derive(Debug, Clone)]
pub struct PermissionRequest {
    pub session_id: String,
    pub tool_call: ToolCallSummary,
    pub options: Vec<PermissionOption>,
    /// `toolCall` exactly as the agent sent it, for the `permission_request` event.
    pub tool_call_raw: Value,
    /// `options` exactly as the agent sent them.
    pub options_raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallSummary {
    pub tool_call_id: String,
    pub title: String,
    /// ACP tool kind (`edit`, `execute`, …); `other` when absent.
    pub kind: String,
    /// `locations[].path`.
    pub locations: Vec<String>,
    pub raw_input: Option<Value>,
    /// The agent's own name for the tool, where it sends one: qwen puts it
    /// in `_meta.toolName`, claude-code-acp in `_meta.claudeCode.toolName`.
    /// Extracted here, once, so policies never parse agent-specific `_meta`.
    pub tool_name: Option<String>,
    /// For shell tools: `rawInput.command` (an argv array is joined with spaces).
    pub command: Option<String>,
    /// For fetch tools: `rawInput.url`.
    pub url: Option<String>,
}

/// What a `tool_call` / `tool_call_update` notification says about a tool
/// call, kept so a later permission request for the same call can be
/// completed: claude-code-acp sends `kind` and `_meta.claudeCode.toolName`
/// only in its updates, not in `session/request_permission`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCallNote {
    pub tool_call_id: String,
    pub kind: Option<String>,
    pub tool_name: Option<String>,
}

impl ToolCallNote {
    /// The note of a `session/update` params, when it is a tool call (or an
    /// update of one) that names a kind or a tool. Cheap for the rest: the
    /// text is checked before anything is parsed.
    pub fn from_update(params: &RawValue) -> Option<Self> {
        if !params.get().contains("\"tool_call") {
            return None;
        }
        #[derive(Deserialize)]
        struct Wire {
            update: WireUpdate,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WireUpdate {
            session_update: String,
            tool_call_id: Option<String>,
            kind: Option<String>,
            #[serde(rename = "_meta")]
            meta: Option<Value>,
        }
        let wire: Wire = serde_json::from_str(params.get()).ok()?;
        let update = wire.update;
        if update.session_update != "tool_call" && update.session_update != "tool_call_update" {
            return None;
        }
        let note = Self {
            tool_call_id: update.tool_call_id?,
            kind: update.kind.filter(|k| !k.is_empty()),
            tool_name: ToolCallSummary::tool_name_from_meta(update.meta.as_ref()),
        };
        (note.kind.is_some() || note.tool_name.is_some()).then_some(note)
    }
}

impl ToolCallSummary {
    /// Fill what the permission request left out (kind `other` for a missing
    /// kind, no tool name) from the call's earlier updates.
    pub fn complete_from(&mut self, note: &ToolCallNote) {
        if self.kind == "other" {
            if let Some(kind) = &note.kind {
                self.kind = kind.clone();
            }
        }
        if self.tool_name.is_none() {
            self.tool_name = note.tool_name.clone();
        }
    }

    fn tool_name_from_meta(meta: Option<&Value>) -> Option<String> {
        let meta = meta?;
        [
            meta.get("toolName"),
            meta.get("claudeCode").and_then(|c| c.get("toolName")),
        ]
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
    }

    fn command_from_input(raw_input: Option<&Value>) -> Option<String> {
        match raw_input?.get("command")? {
            Value::String(command) => Some(command.clone()),
            Value::Array(argv) => {
                let words: Option<Vec<&str>> = argv.iter().map(Value::as_str).collect();
                words.map(|words| words.join(" "))
            }
            _ => None,
        }
    }

    fn url_from_input(raw_input: Option<&Value>) -> Option<String> {
        raw_input?.get("url")?.as_str().map(str::to_owned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    pub option_id: String,
    #[serde(default)]
    pub name: String,
    /// `allow_once`, `allow_always`, `reject_once`, `reject_always`, or newer.
    #[serde(default)]
    pub kind: String,
}

impl PermissionRequest {
    pub fn parse(params: &RawValue) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            session_id: String,
            tool_call: Value,
            options: Value,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct WireToolCall {
            tool_call_id: Option<String>,
            title: Option<String>,
            kind: Option<String>,
            locations: Option<Vec<Value>>,
            raw_input: Option<Value>,
            #[serde(rename = "_meta")]
            meta: Option<Value>,
        }
        let wire: Wire = parse_raw(params, "session/request_permission params")?;
        let call: WireToolCall = serde_json::from_value(wire.tool_call.clone()).unwrap_or_default();
        let options: Vec<PermissionOption> =
            serde_json::from_value::<Vec<Value>>(wire.options.clone())
                .map_err(|e| {
                    RpcError::invalid_params(format!(
                        "invalid session/request_permission options: {e}"
                    ))
                })?
                .into_iter()
                .filter_map(|o| serde_json::from_value(o).ok())
                .collect();
        let locations = call
            .locations
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l.get("path").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(Self {
            session_id: wire.session_id,
            tool_call: ToolCallSummary {
                tool_call_id: call.tool_call_id.unwrap_or_default(),
                title: call.title.unwrap_or_default(),
                kind: call.kind.unwrap_or_else(|| "other".into()),
                locations,
                tool_name: ToolCallSummary::tool_name_from_meta(call.meta.as_ref()),
                command: ToolCallSummary::command_from_input(call.raw_input.as_ref()),
                url: ToolCallSummary::url_from_input(call.raw_input.as_ref()),
                raw_input: call.raw_input,
            },
            options,
            tool_call_raw: wire.tool_call,
            options_raw: wire.options,
        })
    }

    pub fn offers(&self, option_id: &str) -> bool {
        self.options.iter().any(|o| o.option_id == option_id)
    }

    /// The option a plain "reject" picks: `reject_once`, else `reject_always`.
    pub fn reject_option(&self) -> Option<&PermissionOption> {
        ["reject_once", "reject_always"]
            .iter()
            .find_map(|kind| self.options.iter().find(|o| o.kind == *kind))
    }
}

/// The answer to a `session/request_permission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionOutcome {
    Selected(String),
    Cancelled,
}

impl PermissionOutcome {
    /// `{"outcome":{"outcome":"selected","optionId":…}}` or `{"outcome":{"outcome":"cancelled"}}`.
    pub fn to_response(&self) -> Value {
        match self {
            PermissionOutcome::Selected(option_id) => {
                json!({ "outcome": { "outcome": "selected", "optionId": option_id } })
            }
            PermissionOutcome::Cancelled => json!({ "outcome": { "outcome": "cancelled" } }),
        }
    }

    /// Reads the same shape back (a vote body, or an agent-side test).
    pub fn parse(response: &Value) -> Result<Self, String> {
        let outcome = response.get("outcome").ok_or("missing `outcome`")?;
        match outcome.get("outcome").and_then(Value::as_str) {
            Some("cancelled") => Ok(PermissionOutcome::Cancelled),
            Some("selected") => match outcome.get("optionId").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => Ok(PermissionOutcome::Selected(id.to_owned())),
                _ => Err("`outcome.optionId` must be a non-empty string".into()),
            },
            _ => Err("`outcome.outcome` must be \"selected\" or \"cancelled\"".into()),
        }
    }
}

// ---------------------------------------------------------------- fs

/// `fs/read_text_file` params, validated: `line`/`limit` must be whole
/// numbers, `limit` at least 1, `line` not negative (0 reads as 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadTextFileParams {
    pub session_id: String,
    pub path: PathBuf,
    pub line: Option<u32>,
    pub limit: Option<u32>,
}

impl ReadTextFileParams {
    pub fn parse(params: &RawValue) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            session_id: String,
            path: PathBuf,
            #[serde(default)]
            line: Option<i64>,
            #[serde(default)]
            limit: Option<i64>,
        }
        let wire: Wire = parse_raw(params, "fs/read_text_file params")?;
        let line = match wire.line {
            Some(n) if n < 0 => {
                return Err(RpcError::invalid_params(format!(
                    "invalid `line` {n}: lines count from 1"
                )))
            }
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        let limit = match wire.limit {
            Some(n) if n <= 0 => {
                return Err(RpcError::invalid_params(format!(
                    "invalid `limit` {n}: must be at least 1 (a number of lines)"
                )))
            }
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        Ok(Self {
            session_id: wire.session_id,
            path: wire.path,
            line,
            limit,
        })
    }

    /// Reads the file; the result is `{"content": …}`. Call only after the
    /// policy allowed the access.
    pub async fn execute(&self) -> Result<Value, RpcError> {
        let content = fs::read_text_file(&self.path, self.line, self.limit).await?;
        Ok(json!({ "content": content }))
    }
}

/// `fs/write_text_file` params.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteTextFileParams {
    pub session_id: String,
    pub path: PathBuf,
    pub content: String,
}

impl WriteTextFileParams {
    pub fn parse(params: &RawValue) -> Result<Self, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            session_id: String,
            path: PathBuf,
            content: String,
        }
        let wire: Wire = parse_raw(params, "fs/write_text_file params")?;
        Ok(Self {
            session_id: wire.session_id,
            path: wire.path,
            content: wire.content,
        })
    }

    /// Writes the file; the result is `{}`. Call only after the policy
    /// allowed the access.
    pub async fn execute(self) -> Result<Value, RpcError> {
        fs::write_text_file(&self.path, self.content).await?;
        Ok(json!({}))
    }
}

// ---------------------------------------------------------------- helpers

fn parse_raw<T: DeserializeOwned>(raw: &RawValue, what: &str) -> Result<T, RpcError> {
    serde_json::from_str(raw.get())
        .map_err(|e| RpcError::invalid_params(format!("invalid {what}: {e}")))
}

fn parse_value<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, RpcError> {
    T::deserialize(value)
        .map_err(|e| RpcError::internal(format!("unexpected {what} from the agent: {e}")))
}

fn object_or_empty(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A list where entries that do not parse are left out instead of failing the list.
fn skip_bad_items<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let items = Option::<Vec<Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

#[cfg(test)]
mod tests;
