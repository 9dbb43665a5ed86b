//! What a policy sees and answers: the WIT `decide` types without Wasm.

/// A tool call the agent asks permission for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    pub session_id: String,
    pub workspace: String,
    /// ACP tool kind: read, edit, delete, move, search, execute, think, fetch, other.
    pub kind: String,
    pub title: String,
    /// Paths the tool call touches.
    pub locations: Vec<String>,
    /// The tool call's `rawInput`, as JSON (`null` when absent).
    pub raw_input: String,
}

/// An option the agent offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionOption {
    pub option_id: String,
    pub name: String,
    /// ACP option kind: allow_once, allow_always, reject_once, reject_always.
    pub kind: String,
}

/// A policy's answer to a permission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer at once with this offered option.
    Select(String),
    /// Answer at once with the offered reject option, else `cancelled`.
    Reject,
    /// Ask the clients; resolve `cancelled` after this many ms (None = the
    /// daemon's `--permission-timeout`).
    AskClients(Option<u64>),
}

/// The decisions a policy makes (WIT `decide`, minus `info`).
pub trait Policy {
    fn on_permission_request(&self, call: &ToolCall, options: &[PermissionOption]) -> Verdict;

    /// `Err(reason)` refuses the session create.
    fn on_session_create(&self, workspace: &str) -> Result<(), String>;

    /// `Err(reason)` refuses the agent's `fs/*` request.
    fn on_file_access(&self, session_id: &str, path: &str, write: bool) -> Result<(), String>;
}
