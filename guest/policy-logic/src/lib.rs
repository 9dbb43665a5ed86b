//! The built-in permission policies, in plain Rust, and the types every
//! policy written against `qserve:policy@0.2.0` works with.
//!
//! The Wasm components (guest/components: `policy-default`,
//! `policy-readonly`, and test policies) export a [`Policy`] through the
//! `policy-glue` macro, which maps the WIT types onto [`types`] one to one;
//! keeping the decisions here lets them be unit-tested natively.

pub mod config;
mod default_policy;
mod readonly_policy;
pub mod types;

pub use config::ConfigError;
pub use default_policy::DefaultPolicy;
pub use readonly_policy::ReadonlyPolicy;
pub use types::{
    AccessDecision, AgentInfo, Context, FileAccess, OptionKind, PermissionDecision,
    PermissionOption, Phase, Policy, PolicyInfo, ResolvedPath, SessionScope, ToolCall, ToolKind,
    Verdict,
};

/// The built-in policies' version (`policy-info.version`): this crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Fixtures shared by the policies' unit tests.
#[cfg(test)]
mod testing {
    use crate::types::*;

    pub const WORKSPACE: &str = "/home/me/project";

    pub fn running() -> Context {
        Context {
            session_id: "s-1".into(),
            workspace: WORKSPACE.into(),
            agent: AgentInfo {
                name: "default".into(),
                command: "qwen".into(),
                mode: None,
            },
            scope: SessionScope::Single,
            phase: Phase::Running,
        }
    }

    pub fn inside(relative: &str) -> ResolvedPath {
        ResolvedPath {
            requested: relative.into(),
            resolved: format!("{WORKSPACE}/{relative}"),
            inside_workspace: true,
            exists: true,
        }
    }

    pub fn outside(absolute: &str) -> ResolvedPath {
        ResolvedPath {
            requested: absolute.into(),
            resolved: absolute.into(),
            inside_workspace: false,
            exists: true,
        }
    }

    pub fn option(id: &str, kind: OptionKind) -> PermissionOption {
        PermissionOption {
            option_id: id.into(),
            name: id.into(),
            kind,
        }
    }

    /// One of each kind, allow-always first (so picking it by position would show).
    pub fn all_options() -> Vec<PermissionOption> {
        vec![
            option("always", OptionKind::AllowAlways),
            option("once", OptionKind::AllowOnce),
            option("no", OptionKind::RejectOnce),
            option("never", OptionKind::RejectAlways),
            option("custom", OptionKind::Other("ask_later".into())),
        ]
    }

    pub fn all_tool_kinds() -> Vec<ToolKind> {
        vec![
            ToolKind::Read,
            ToolKind::Edit,
            ToolKind::Delete,
            ToolKind::Move,
            ToolKind::Search,
            ToolKind::Execute,
            ToolKind::Think,
            ToolKind::Fetch,
            ToolKind::SwitchMode,
            ToolKind::Other("teleport".into()),
        ]
    }
}
