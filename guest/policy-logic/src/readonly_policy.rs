//! The readonly policy: the agent may look but not touch.
//!
//! Tools that only look (read, search, think) are allowed at once, once,
//! when the agent offers an allow-once option and every path they touch is
//! inside the workspace; every other kind (edit, delete, move, execute,
//! fetch, switch-mode, kinds this contract does not know) is rejected
//! without bothering the clients. Through the daemon, the agent may read
//! files inside the workspace and write none.
//!
//! `fetch` counts as touching: it reaches the network, and a URL can carry
//! data out. Unknown kinds are rejected because a policy that promises
//! "read-only" must not let something new through by default. Only
//! allow-once is selected, never allow-always, so the agent is not told to
//! stop asking.

use crate::config;
use crate::default_policy::outside_the_workspace;
use crate::types::{
    AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall, ToolKind,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct ReadonlyPolicy;

impl ReadonlyPolicy {
    pub const NAME: &'static str = "readonly";
}

/// Kinds that only look.
fn only_looks(kind: &ToolKind) -> bool {
    matches!(kind, ToolKind::Read | ToolKind::Search | ToolKind::Think)
}

impl Policy for ReadonlyPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        config::refuse_any(Self::NAME, config).map_err(|error| error.to_string())?;
        Ok(PolicyInfo {
            name: Self::NAME.into(),
            version: crate::VERSION.into(),
        })
    }

    fn on_permission_request(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        let kind = call.kind.name();
        if !only_looks(&call.kind) {
            return PermissionDecision::reject(format!("the readonly policy rejects {kind} tools"));
        }
        if let Some(path) = call.locations.iter().find(|path| !path.inside_workspace) {
            return PermissionDecision::reject(format!(
                "{} is outside the workspace {}",
                path.resolved, ctx.workspace
            ));
        }
        match options
            .iter()
            .find(|option| option.kind == OptionKind::AllowOnce)
        {
            Some(option) => PermissionDecision::select(
                option.option_id.clone(),
                format!("a {kind} tool only looks"),
            ),
            None => {
                PermissionDecision::ask_clients("no allow-once option offered; asking the clients")
            }
        }
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        AccessDecision::allow("sessions are open to every client")
    }

    fn on_file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        if !path.inside_workspace {
            return outside_the_workspace(ctx);
        }
        match access {
            FileAccess::Read => AccessDecision::allow("a read inside the workspace"),
            FileAccess::Write => AccessDecision::deny("the readonly policy refuses file writes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::types::{Phase, Verdict};
    use crate::DefaultPolicy;

    fn decide(call: &ToolCall, options: &[PermissionOption]) -> PermissionDecision {
        ReadonlyPolicy.on_permission_request(&running(), call, options)
    }

    #[test]
    fn init_names_the_policy_and_accepts_no_configuration() {
        let info = ReadonlyPolicy.init("").unwrap();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("readonly", crate::VERSION)
        );
        let refused = ReadonlyPolicy.init("allow = edit").unwrap_err();
        assert!(
            refused.contains("readonly policy takes no configuration"),
            "{refused}"
        );
    }

    #[test]
    fn looking_tools_are_allowed_once_when_offered() {
        for kind in [ToolKind::Read, ToolKind::Search, ToolKind::Think] {
            let decision = decide(&ToolCall::of_kind(kind.clone()), &all_options());
            assert_eq!(decision.verdict, Verdict::Select("once".into()), "{kind:?}");
            assert_eq!(
                decision.reason,
                format!("a {} tool only looks", kind.name())
            );
        }
    }

    #[test]
    fn allow_always_is_never_selected_so_without_allow_once_the_clients_decide() {
        let options = [
            option("always", OptionKind::AllowAlways),
            option("no", OptionKind::RejectOnce),
        ];
        let decision = decide(&ToolCall::of_kind(ToolKind::Read), &options);
        assert_eq!(decision.verdict, Verdict::AskClients(None));
        assert_eq!(
            decision.reason,
            "no allow-once option offered; asking the clients"
        );
    }

    #[test]
    fn a_looking_tool_touching_a_path_outside_the_workspace_is_rejected() {
        let mut call = ToolCall::of_kind(ToolKind::Read);
        call.locations = vec![inside("README.md"), outside("/home/me/.ssh/id_ed25519")];
        let decision = decide(&call, &all_options());
        assert_eq!(decision.verdict, Verdict::Reject);
        assert_eq!(
            decision.reason,
            format!("/home/me/.ssh/id_ed25519 is outside the workspace {WORKSPACE}")
        );

        call.locations.pop();
        assert_eq!(
            decide(&call, &all_options()).verdict,
            Verdict::Select("once".into())
        );
    }

    #[test]
    fn every_other_kind_is_rejected_naming_the_kind() {
        let others = all_tool_kinds()
            .into_iter()
            .filter(|kind| !only_looks(kind));
        for kind in others {
            let decision = decide(&ToolCall::of_kind(kind.clone()), &all_options());
            assert_eq!(decision.verdict, Verdict::Reject, "{kind:?}");
            assert_eq!(
                decision.reason,
                format!("the readonly policy rejects {} tools", kind.name())
            );
        }
        let decision = decide(&ToolCall::of_kind(ToolKind::SwitchMode), &all_options());
        assert_eq!(
            decision.reason,
            "the readonly policy rejects switch_mode tools"
        );
    }

    #[test]
    fn admits_session_creates_and_attaches() {
        for phase in [Phase::Create, Phase::Attach] {
            let decision = ReadonlyPolicy.on_session_create(&Context { phase, ..running() });
            assert_eq!(
                decision,
                AccessDecision::allow("sessions are open to every client")
            );
        }
    }

    #[test]
    fn file_reads_inside_the_workspace_are_allowed_and_writes_refused() {
        let path = inside("src/main.rs");
        assert_eq!(
            ReadonlyPolicy.on_file_access(&running(), FileAccess::Read, &path),
            AccessDecision::allow("a read inside the workspace")
        );
        assert_eq!(
            ReadonlyPolicy.on_file_access(&running(), FileAccess::Write, &path),
            AccessDecision::deny("the readonly policy refuses file writes")
        );
    }

    #[test]
    fn file_accesses_outside_the_workspace_are_refused_naming_it() {
        for access in [FileAccess::Read, FileAccess::Write] {
            let decision =
                ReadonlyPolicy.on_file_access(&running(), access, &outside("/etc/hosts"));
            assert_eq!(
                decision,
                AccessDecision::deny(format!("outside the workspace {WORKSPACE}")),
                "{access:?}"
            );
        }
    }

    #[test]
    fn differs_from_the_default_policy_on_the_same_requests() {
        for kind in [ToolKind::Read, ToolKind::Execute] {
            let call = ToolCall::of_kind(kind.clone());
            let (default, readonly) = (
                DefaultPolicy.on_permission_request(&running(), &call, &all_options()),
                decide(&call, &all_options()),
            );
            assert_ne!(default.verdict, readonly.verdict, "{kind:?}");
        }
        let path = inside("a.txt");
        assert_ne!(
            DefaultPolicy
                .on_file_access(&running(), FileAccess::Write, &path)
                .allow,
            ReadonlyPolicy
                .on_file_access(&running(), FileAccess::Write, &path)
                .allow
        );
    }
}
