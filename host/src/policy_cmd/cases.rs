//! Decision inputs written by people: the case tables of `policy test`
//! (TOML) and the input of `policy eval` (JSON), both in one shape.
//!
//! The shape follows the contract (`wit/policy/policy.wit`) with friendly
//! defaults, documented at the top of `examples/policies/cases.toml`. Unknown
//! keys are errors: a misspelt expectation must not pass silently.

use qserve_runtime::{
    AgentInfo, Context, FileAccess, PermissionOption, Phase, ResolvedPath, SessionScope, ToolCall,
};
use serde::Deserialize;

use crate::policy::kinds::{option_kind, tool_kind};

/// A whole case table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTable {
    pub version: u32,
    /// The config every case's `init` gets unless it sets its own.
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub context: ContextSpec,
    #[serde(default)]
    pub options: Option<Vec<OptionSpec>>,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

/// One decision to make (and, in a table, what it must be).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: String,
    pub kind: CaseKind,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub context: ContextSpec,
    #[serde(default)]
    pub call: Option<CallSpec>,
    #[serde(default)]
    pub options: Option<Vec<OptionSpec>>,
    #[serde(default)]
    pub access: Option<String>,
    #[serde(default)]
    pub path: Option<PathSpec>,
    #[serde(default)]
    pub expect: Option<String>,
    #[serde(default)]
    pub option: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseKind {
    Permission,
    File,
    Session,
    Init,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    pub session_id: Option<String>,
    pub workspace: Option<String>,
    pub scope: Option<String>,
    pub phase: Option<String>,
    pub agent: Option<AgentSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: Option<String>,
    pub command: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub kind: Option<String>,
    pub title: Option<String>,
    pub command: Option<String>,
    pub url: Option<String>,
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
    /// JSON text, or (in JSON input) any JSON value.
    pub raw_input: Option<toml_or_json::Raw>,
    #[serde(default)]
    pub locations: Vec<PathSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    pub requested: Option<String>,
    pub resolved: String,
    #[serde(default)]
    pub inside_workspace: bool,
    pub exists: Option<bool>,
}

/// `raw_input` as a string of JSON (TOML) or any JSON value (eval input).
pub mod toml_or_json {
    use serde::Deserialize;

    #[derive(Debug, Clone, Deserialize)]
    #[serde(untagged)]
    pub enum Raw {
        Text(String),
        Json(serde_json::Value),
    }

    impl Raw {
        pub fn to_json_text(&self) -> String {
            match self {
                Raw::Text(text) => text.clone(),
                Raw::Json(value) => value.to_string(),
            }
        }
    }
}

/// The table's defaults a case falls back on.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub config: Option<String>,
    pub context: ContextSpec,
    pub options: Option<Vec<OptionSpec>>,
}

fn merge_context(base: &ContextSpec, over: &ContextSpec) -> ContextSpec {
    let agent = match (&base.agent, &over.agent) {
        (Some(b), Some(o)) => Some(AgentSpec {
            name: o.name.clone().or_else(|| b.name.clone()),
            command: o.command.clone().or_else(|| b.command.clone()),
            mode: o.mode.clone().or_else(|| b.mode.clone()),
        }),
        (b, o) => o.clone().or_else(|| b.clone()),
    };
    ContextSpec {
        session_id: over.session_id.clone().or_else(|| base.session_id.clone()),
        workspace: over.workspace.clone().or_else(|| base.workspace.clone()),
        scope: over.scope.clone().or_else(|| base.scope.clone()),
        phase: over.phase.clone().or_else(|| base.phase.clone()),
        agent,
    }
}

/// The inputs of one case, as the policy receives them.
pub struct Inputs {
    pub config: String,
    pub context: Context,
    pub call: ToolCall,
    pub options: Vec<PermissionOption>,
    pub access: FileAccess,
    pub path: ResolvedPath,
}

fn resolved(spec: &PathSpec) -> ResolvedPath {
    ResolvedPath {
        requested: spec
            .requested
            .clone()
            .unwrap_or_else(|| spec.resolved.clone()),
        resolved: spec.resolved.clone(),
        inside_workspace: spec.inside_workspace,
        exists: spec.exists.unwrap_or(true),
    }
}

impl Case {
    /// Build the policy's inputs, or say what is malformed.
    pub fn inputs(&self, defaults: &Defaults) -> Result<Inputs, String> {
        let ctx = merge_context(&defaults.context, &self.context);
        let agent = ctx.agent.clone().unwrap_or_default();
        let scope = match ctx.scope.as_deref().unwrap_or("single") {
            "single" => SessionScope::Single,
            "thread" => SessionScope::Thread,
            other => return Err(format!("scope {other:?}: expected single or thread")),
        };
        let default_phase = if self.kind == CaseKind::Session {
            "create"
        } else {
            "running"
        };
        let phase = match ctx.phase.as_deref().unwrap_or(default_phase) {
            "create" => Phase::Create,
            "attach" => Phase::Attach,
            "running" => Phase::Running,
            other => {
                return Err(format!(
                    "phase {other:?}: expected create, attach or running"
                ))
            }
        };
        let context = Context {
            session_id: ctx.session_id.clone().unwrap_or_default(),
            workspace: ctx.workspace.clone().unwrap_or_else(|| "/workspace".into()),
            agent: AgentInfo {
                name: agent.name.unwrap_or_else(|| "default".into()),
                command: agent.command.unwrap_or_else(|| "agent".into()),
                mode: agent.mode,
            },
            scope,
            phase,
        };
        let call_spec = self.call.clone().unwrap_or_default();
        let call = ToolCall {
            tool_call_id: call_spec.tool_call_id.unwrap_or_else(|| "call-1".into()),
            kind: tool_kind(call_spec.kind.as_deref().unwrap_or("other")),
            tool_name: call_spec.tool_name,
            title: call_spec.title.unwrap_or_default(),
            command: call_spec.command,
            url: call_spec.url,
            locations: call_spec.locations.iter().map(resolved).collect(),
            raw_input: call_spec
                .raw_input
                .map_or_else(|| "null".to_owned(), |raw| raw.to_json_text()),
        };
        let options = self
            .options
            .clone()
            .or_else(|| defaults.options.clone())
            .unwrap_or_else(|| {
                vec![
                    OptionSpec {
                        id: "allow_once".into(),
                        name: Some("Allow once".into()),
                        kind: "allow-once".into(),
                    },
                    OptionSpec {
                        id: "allow_always".into(),
                        name: Some("Allow always".into()),
                        kind: "allow-always".into(),
                    },
                    OptionSpec {
                        id: "reject_once".into(),
                        name: Some("Reject".into()),
                        kind: "reject-once".into(),
                    },
                ]
            })
            .iter()
            .map(|o| PermissionOption {
                option_id: o.id.clone(),
                name: o.name.clone().unwrap_or_else(|| o.id.clone()),
                kind: option_kind(&o.kind),
            })
            .collect();
        let access = match self.access.as_deref().unwrap_or("read") {
            "read" => FileAccess::Read,
            "write" => FileAccess::Write,
            other => return Err(format!("access {other:?}: expected read or write")),
        };
        if self.kind == CaseKind::File && self.path.is_none() {
            return Err("a file case needs `path = { resolved = …, inside_workspace = … }`".into());
        }
        let path = self.path.as_ref().map(resolved).unwrap_or(ResolvedPath {
            requested: String::new(),
            resolved: String::new(),
            inside_workspace: false,
            exists: false,
        });
        Ok(Inputs {
            config: self
                .config
                .clone()
                .or_else(|| defaults.config.clone())
                .unwrap_or_default(),
            context,
            call,
            options,
            access,
            path,
        })
    }
}
