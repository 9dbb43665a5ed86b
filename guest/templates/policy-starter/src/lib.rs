//! A starter qserve permission policy.
//!
//! What it decides (change it to yours):
//! - tools that only look (read, search, think) at paths inside the
//!   workspace: allowed once, without asking anyone;
//! - commands (`execute`) whose first word is in the configured `deny`
//!   list: rejected;
//! - every other tool call: the clients are asked, as without a policy;
//! - sessions: open to every client;
//! - the agent's file reads and writes: inside the workspace only.
//!
//! Configuration (`--policy-config FILE`): `key = value` lines, `#`
//! comments. `deny = rm, sudo` (default: none). Unknown keys are refused:
//! a typo in a security setting must stop the daemon, not be ignored.

use qserve_policy::config::{self, ConfigError};
use qserve_policy::{
    host, AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption,
    Policy, PolicyInfo, ResolvedPath, ToolCall, ToolKind,
};

/// One value per Wasm instance: `Default`, then `init` with the config.
#[derive(Debug, Default)]
pub struct StarterPolicy {
    /// Programs whose commands are rejected.
    deny: Vec<String>,
}

impl StarterPolicy {
    fn configure(&mut self, text: &str) -> Result<(), ConfigError> {
        for setting in config::key_values(text, &["deny"])? {
            self.deny = setting
                .value
                .split(',')
                .map(str::trim)
                .filter(|program| !program.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }
}

impl Policy for StarterPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        self.configure(config)
            .map_err(|error| format!("starter policy: {error}"))?;
        host::info(&format!("starter policy: denying {:?}", self.deny));
        Ok(PolicyInfo {
            name: "starter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        &self,
        _ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        if call.kind == ToolKind::Execute {
            let program = call
                .command
                .as_deref()
                .and_then(|command| command.split_whitespace().next())
                .unwrap_or_default();
            if self.deny.iter().any(|denied| denied == program) {
                return PermissionDecision::reject(format!("{program} is denied"));
            }
        }
        let only_looks = matches!(
            call.kind,
            ToolKind::Read | ToolKind::Search | ToolKind::Think
        );
        let inside = call.locations.iter().all(|path| path.inside_workspace);
        let allow_once = options
            .iter()
            .find(|option| option.kind == OptionKind::AllowOnce);
        match allow_once {
            Some(option) if only_looks && inside => {
                PermissionDecision::select(option.option_id.clone(), "looking inside the workspace")
            }
            _ => PermissionDecision::ask_clients("asking the clients"),
        }
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        AccessDecision::allow("sessions are open")
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
            AccessDecision::deny(format!("outside the workspace {}", ctx.workspace))
        }
    }
}

qserve_policy::export!(StarterPolicy);

/// Plain Rust tests: `cargo test` runs them natively, no Wasm needed.
#[cfg(test)]
mod tests {
    use super::*;
    use qserve_policy::Verdict;

    fn policy(config: &str) -> StarterPolicy {
        let mut policy = StarterPolicy::default();
        policy.init(config).unwrap();
        policy
    }

    fn options() -> Vec<PermissionOption> {
        vec![PermissionOption {
            option_id: "once".into(),
            name: "Allow once".into(),
            kind: OptionKind::AllowOnce,
        }]
    }

    fn inside(path: &str) -> ResolvedPath {
        ResolvedPath {
            requested: path.into(),
            resolved: format!("/w/{path}"),
            inside_workspace: true,
            exists: true,
        }
    }

    #[test]
    fn reads_inside_the_workspace_are_allowed_once() {
        let call = ToolCall {
            locations: vec![inside("src/lib.rs")],
            ..ToolCall::of_kind(ToolKind::Read)
        };
        let decision = policy("").on_permission_request(&Context::default(), &call, &options());
        assert_eq!(decision.verdict, Verdict::Select("once".into()));
    }

    #[test]
    fn denied_programs_are_rejected_and_others_asked() {
        let policy = policy("deny = rm, sudo");
        let command = |line: &str| ToolCall {
            command: Some(line.into()),
            ..ToolCall::of_kind(ToolKind::Execute)
        };
        let rm =
            policy.on_permission_request(&Context::default(), &command("rm -rf /"), &options());
        assert_eq!(rm.verdict, Verdict::Reject);
        let ls = policy.on_permission_request(&Context::default(), &command("ls"), &options());
        assert_eq!(ls.verdict, Verdict::AskClients(None));
    }

    #[test]
    fn unknown_settings_are_refused() {
        let error = StarterPolicy::default().init("dney = rm").unwrap_err();
        assert!(error.contains("dney"), "{error}");
    }
}
