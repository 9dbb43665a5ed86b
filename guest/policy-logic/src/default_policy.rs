//! The default policy: the clients decide every permission request, as with
//! `qwen serve`; any client may open or join a session; the agent's file
//! reads and writes through the daemon stay inside the workspace.

use crate::config;
use crate::types::{
    AccessDecision, Context, FileAccess, PermissionDecision, PermissionOption, Policy, PolicyInfo,
    ResolvedPath, ToolCall,
};

/// Shown for file accesses outside the workspace, by every built-in policy.
pub(crate) fn outside_the_workspace(ctx: &Context) -> AccessDecision {
    AccessDecision::deny(format!("outside the workspace {}", ctx.workspace))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    pub const NAME: &'static str = "default";
}

impl Policy for DefaultPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        config::refuse_any(Self::NAME, config).map_err(|error| error.to_string())?;
        Ok(PolicyInfo {
            name: Self::NAME.into(),
            version: crate::VERSION.into(),
        })
    }

    fn on_permission_request(
        &self,
        _ctx: &Context,
        _call: &ToolCall,
        _options: &[PermissionOption],
    ) -> PermissionDecision {
        PermissionDecision::ask_clients("asking the clients")
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        AccessDecision::allow("sessions are open to every client")
    }

    fn on_file_access(
        &self,
        ctx: &Context,
        _access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        if path.inside_workspace {
            AccessDecision::allow("inside the workspace")
        } else {
            outside_the_workspace(ctx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::types::{Phase, ToolKind, Verdict};

    #[test]
    fn init_names_the_policy_and_accepts_no_configuration() {
        let info = DefaultPolicy.init("").unwrap();
        assert_eq!(info.name, "default");
        assert_eq!(info.version, crate::VERSION);
        assert!(
            DefaultPolicy.init("\n").is_ok(),
            "a blank file is no configuration"
        );
        let refused = DefaultPolicy.init("auto_allow = read").unwrap_err();
        assert!(
            refused.contains("default policy takes no configuration"),
            "{refused}"
        );
    }

    #[test]
    fn asks_the_clients_whatever_the_tool_does() {
        for kind in all_tool_kinds() {
            let decision = DefaultPolicy.on_permission_request(
                &running(),
                &ToolCall::of_kind(kind.clone()),
                &all_options(),
            );
            assert_eq!(decision.verdict, Verdict::AskClients(None), "{kind:?}");
            assert_eq!(decision.reason, "asking the clients");
        }
    }

    #[test]
    fn admits_session_creates_and_attaches() {
        for phase in [Phase::Create, Phase::Attach] {
            let decision = DefaultPolicy.on_session_create(&Context { phase, ..running() });
            assert!(decision.allow, "{phase:?}");
            assert_eq!(decision.reason, "sessions are open to every client");
        }
    }

    #[test]
    fn file_reads_and_writes_inside_the_workspace_are_allowed() {
        for access in [FileAccess::Read, FileAccess::Write] {
            let decision = DefaultPolicy.on_file_access(&running(), access, &inside("src/main.rs"));
            assert_eq!(
                decision,
                AccessDecision::allow("inside the workspace"),
                "{access:?}"
            );
        }
    }

    #[test]
    fn file_reads_and_writes_outside_the_workspace_are_refused_naming_it() {
        for access in [FileAccess::Read, FileAccess::Write] {
            let decision =
                DefaultPolicy.on_file_access(&running(), access, &outside("/etc/passwd"));
            assert_eq!(
                decision,
                AccessDecision::deny(format!("outside the workspace {WORKSPACE}")),
                "{access:?}"
            );
        }
    }

    #[test]
    fn an_unknown_tool_kind_is_still_left_to_the_clients() {
        let call = ToolCall::of_kind(ToolKind::Other("teleport".into()));
        let decision = DefaultPolicy.on_permission_request(&running(), &call, &[]);
        assert_eq!(decision.verdict, Verdict::AskClients(None));
    }
}
