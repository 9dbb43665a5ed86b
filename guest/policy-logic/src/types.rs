//! What a policy sees and answers: the types of `qserve:policy@0.2.0`
//! (`wit/policy/policy.wit`, interface `types`) as plain Rust, so policies
//! can be written and unit-tested without Wasm. The policy glue
//! (guest/components/policy-glue) converts between these and the generated
//! WIT bindings one to one; the field docs are the WIT's, in short.

/// ACP's tool kinds, with `Other` for kinds newer than the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolKind {
    Read,
    Edit,
    Delete,
    Move,
    Search,
    Execute,
    Think,
    Fetch,
    SwitchMode,
    Other(String),
}

impl ToolKind {
    /// The ACP spelling (`switch_mode`), for reasons and logs.
    pub fn name(&self) -> &str {
        match self {
            Self::Read => "read",
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::Move => "move",
            Self::Search => "search",
            Self::Execute => "execute",
            Self::Think => "think",
            Self::Fetch => "fetch",
            Self::SwitchMode => "switch_mode",
            Self::Other(name) => name,
        }
    }
}

/// ACP's permission option kinds, with `Other` for agent-specific ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OptionKind {
    AllowOnce,
    AllowAlways,
    RejectOnce,
    RejectAlways,
    Other(String),
}

/// One answer the agent offers for a permission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionOption {
    pub option_id: String,
    /// The label the agent shows, e.g. "Allow once" (untrusted).
    pub name: String,
    pub kind: OptionKind,
}

/// How the session is shared (`POST /session` `sessionScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionScope {
    /// Creates in a workspace with a live session attach to it.
    #[default]
    Single,
    /// Every create makes a new session.
    Thread,
}

/// Where in a session's life the decision is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// `on_session_create`: a new session would be created (no id yet).
    Create,
    /// `on_session_create`: a client would attach to a live session.
    Attach,
    /// A permission request or file access inside a live session.
    #[default]
    Running,
}

/// The agent a session runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentInfo {
    /// The agent's name (`--agent-def NAME=…`; `default` for `--agent`).
    pub name: String,
    /// The program's file name, e.g. `qwen`.
    pub command: String,
    /// The agent's approval mode the daemon put the session in, if any.
    pub mode: Option<String>,
}

/// Who asks, where: handed to every decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The daemon's session id; empty for [`Phase::Create`].
    pub session_id: String,
    /// The canonical absolute workspace path (symlinks resolved).
    pub workspace: String,
    pub agent: AgentInfo,
    pub scope: SessionScope,
    pub phase: Phase,
}

/// A path the agent named, as the host resolved it (the host does the I/O on
/// exactly this, so what is approved is what is opened).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedPath {
    /// What the agent sent (untrusted, for display).
    pub requested: String,
    /// Canonical absolute path, `..` and symlinks resolved.
    pub resolved: String,
    /// `resolved` is the workspace or beneath it.
    pub inside_workspace: bool,
    /// The object exists now.
    pub exists: bool,
}

/// A tool call the agent asks permission for. Every string in it was written
/// by the agent: untrusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub tool_call_id: String,
    pub kind: ToolKind,
    /// The tool's own name where the agent sends one.
    pub tool_name: Option<String>,
    pub title: String,
    /// For `execute`: the shell command.
    pub command: Option<String>,
    /// For `fetch`: the URL.
    pub url: Option<String>,
    /// The paths the call touches, resolved like file accesses.
    pub locations: Vec<ResolvedPath>,
    /// The tool call's `rawInput` as JSON (`null` when absent).
    pub raw_input: String,
}

impl ToolCall {
    /// A call of `kind` with nothing else filled in (tests, mostly).
    pub fn of_kind(kind: ToolKind) -> Self {
        Self {
            tool_call_id: String::new(),
            kind,
            tool_name: None,
            title: String::new(),
            command: None,
            url: None,
            locations: Vec::new(),
            raw_input: "null".into(),
        }
    }
}

/// What to do with a permission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer at once with this offered option (its `option_id`).
    Select(String),
    /// Answer at once with the offered reject option, else `cancelled`.
    Reject,
    /// Ask the clients; resolve `cancelled` after this many ms (None = the
    /// daemon's `--permission-timeout`).
    AskClients(Option<u64>),
}

/// A permission decision and why. The reason is shown to clients and kept
/// in the decision log, so it is short and human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDecision {
    pub verdict: Verdict,
    pub reason: String,
}

impl PermissionDecision {
    pub fn select(option_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Select(option_id.into()),
            reason: reason.into(),
        }
    }

    pub fn reject(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Reject,
            reason: reason.into(),
        }
    }

    /// Ask the clients, with the daemon's `--permission-timeout`.
    pub fn ask_clients(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::AskClients(None),
            reason: reason.into(),
        }
    }
}

/// A yes or no, and why (session opens and file accesses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub allow: bool,
    pub reason: String,
}

impl AccessDecision {
    pub fn allow(reason: impl Into<String>) -> Self {
        Self {
            allow: true,
            reason: reason.into(),
        }
    }

    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            allow: false,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAccess {
    Read,
    Write,
}

/// Who the policy is, as shown by `/capabilities`, `policy list` and the
/// decision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
}

/// A permission policy: the WIT `decide` interface in plain Rust.
///
/// The host makes one value per Wasm instance (`Default`), calls [`init`]
/// once, then the decisions; several instances may run side by side, so a
/// policy must not rely on seeing every decision.
///
/// [`init`]: Policy::init
pub trait Policy {
    /// Checks and takes the operator's `--policy-config` (empty when none).
    /// `Err(message)` refuses it: the daemon does not start, or a reload
    /// keeps the old policy; the message is shown to the operator.
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String>;

    /// The agent asks permission for a tool call.
    fn on_permission_request(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision;

    /// A client would create a session ([`Phase::Create`]) or attach to one
    /// ([`Phase::Attach`]).
    fn on_session_create(&self, ctx: &Context) -> AccessDecision;

    /// The agent would read or write a file through the daemon.
    fn on_file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision;
}
