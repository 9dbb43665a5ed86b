//! The WIT `decide` interface implemented on top of a [`Policy`]: the
//! generated types are mapped onto `qserve_policy_logic::types` and back,
//! one to one.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::qserve::policy::decide;
use crate::bindings::qserve::policy::types as wit;
use qserve_policy_logic::types as logic;
use qserve_policy_logic::Policy;

thread_local! {
    // A component instance is single-threaded and the host serializes its
    // calls; one instance holds one policy value. `dyn` because a static
    // cannot be generic over the exported type.
    static POLICY: RefCell<Option<Box<dyn Policy>>> = const { RefCell::new(None) };
}

fn with_policy<R>(decision: impl FnOnce(&dyn Policy) -> R) -> R {
    POLICY.with(|policy| {
        let policy = policy.borrow();
        let policy = policy
            .as_deref()
            .expect("the host calls init before any decision");
        decision(policy)
    })
}

/// The exported implementation of `decide` for the policy `P` (named by
/// [`export!`](crate::export)).
pub struct Exported<P>(PhantomData<P>);

impl<P: Policy + Default + 'static> decide::Guest for Exported<P> {
    fn init(config: String) -> Result<wit::PolicyInfo, String> {
        let mut policy = P::default();
        let info = policy.init(&config)?;
        POLICY.with(|slot| *slot.borrow_mut() = Some(Box::new(policy)));
        Ok(wit::PolicyInfo {
            name: info.name,
            version: info.version,
        })
    }

    fn on_permission_request(
        ctx: wit::Context,
        call: wit::ToolCall,
        options: Vec<wit::PermissionOption>,
    ) -> wit::PermissionDecision {
        let options: Vec<logic::PermissionOption> =
            options.into_iter().map(permission_option).collect();
        let (ctx, call) = (context(ctx), tool_call(call));
        let decision = with_policy(|policy| policy.on_permission_request(&ctx, &call, &options));
        wit::PermissionDecision {
            verdict: match decision.verdict {
                logic::Verdict::Select(option_id) => wit::Verdict::Select(option_id),
                logic::Verdict::Reject => wit::Verdict::Reject,
                logic::Verdict::AskClients(timeout_ms) => wit::Verdict::AskClients(timeout_ms),
            },
            reason: decision.reason,
        }
    }

    fn on_session_create(ctx: wit::Context) -> wit::AccessDecision {
        let ctx = context(ctx);
        access_decision(with_policy(|policy| policy.on_session_create(&ctx)))
    }

    fn on_file_access(
        ctx: wit::Context,
        access: wit::FileAccess,
        path: wit::ResolvedPath,
    ) -> wit::AccessDecision {
        let (ctx, path) = (context(ctx), resolved_path(path));
        let access = match access {
            wit::FileAccess::Read => logic::FileAccess::Read,
            wit::FileAccess::Write => logic::FileAccess::Write,
        };
        access_decision(with_policy(|policy| {
            policy.on_file_access(&ctx, access, &path)
        }))
    }
}

fn tool_kind(kind: wit::ToolKind) -> logic::ToolKind {
    match kind {
        wit::ToolKind::Read => logic::ToolKind::Read,
        wit::ToolKind::Edit => logic::ToolKind::Edit,
        wit::ToolKind::Delete => logic::ToolKind::Delete,
        wit::ToolKind::Move => logic::ToolKind::Move,
        wit::ToolKind::Search => logic::ToolKind::Search,
        wit::ToolKind::Execute => logic::ToolKind::Execute,
        wit::ToolKind::Think => logic::ToolKind::Think,
        wit::ToolKind::Fetch => logic::ToolKind::Fetch,
        wit::ToolKind::SwitchMode => logic::ToolKind::SwitchMode,
        wit::ToolKind::Other(name) => logic::ToolKind::Other(name),
    }
}

fn permission_option(option: wit::PermissionOption) -> logic::PermissionOption {
    logic::PermissionOption {
        option_id: option.option_id,
        name: option.name,
        kind: match option.kind {
            wit::OptionKind::AllowOnce => logic::OptionKind::AllowOnce,
            wit::OptionKind::AllowAlways => logic::OptionKind::AllowAlways,
            wit::OptionKind::RejectOnce => logic::OptionKind::RejectOnce,
            wit::OptionKind::RejectAlways => logic::OptionKind::RejectAlways,
            wit::OptionKind::Other(name) => logic::OptionKind::Other(name),
        },
    }
}

fn context(ctx: wit::Context) -> logic::Context {
    logic::Context {
        session_id: ctx.session_id,
        workspace: ctx.workspace,
        agent: logic::AgentInfo {
            name: ctx.agent.name,
            command: ctx.agent.command,
            mode: ctx.agent.mode,
        },
        scope: match ctx.scope {
            wit::SessionScope::Single => logic::SessionScope::Single,
            wit::SessionScope::Thread => logic::SessionScope::Thread,
        },
        phase: match ctx.phase {
            wit::Phase::Create => logic::Phase::Create,
            wit::Phase::Attach => logic::Phase::Attach,
            wit::Phase::Running => logic::Phase::Running,
        },
    }
}

fn resolved_path(path: wit::ResolvedPath) -> logic::ResolvedPath {
    logic::ResolvedPath {
        requested: path.requested,
        resolved: path.resolved,
        inside_workspace: path.inside_workspace,
        exists: path.exists,
    }
}

fn tool_call(call: wit::ToolCall) -> logic::ToolCall {
    logic::ToolCall {
        tool_call_id: call.tool_call_id,
        kind: tool_kind(call.kind),
        tool_name: call.tool_name,
        title: call.title,
        command: call.command,
        url: call.url,
        locations: call.locations.into_iter().map(resolved_path).collect(),
        raw_input: call.raw_input,
    }
}

fn access_decision(decision: logic::AccessDecision) -> wit::AccessDecision {
    wit::AccessDecision {
        allow: decision.allow,
        reason: decision.reason,
    }
}

#[cfg(test)]
mod tests {
    //! The export path as the host drives it (init, then decisions), called
    //! natively on the generated `Guest` trait.

    use super::*;
    use decide::Guest as _;

    /// Echoes what it was given into its reasons, so the mapping shows.
    #[derive(Default)]
    struct Echo {
        config: String,
    }

    impl Policy for Echo {
        fn init(&mut self, config: &str) -> Result<logic::PolicyInfo, String> {
            if config == "refuse" {
                return Err("echo: refused".into());
            }
            self.config = config.into();
            Ok(logic::PolicyInfo {
                name: "echo".into(),
                version: "1.2.3".into(),
            })
        }

        fn on_permission_request(
            &self,
            ctx: &logic::Context,
            call: &logic::ToolCall,
            options: &[logic::PermissionOption],
        ) -> logic::PermissionDecision {
            let reason = format!(
                "{} {} {} {:?} {}",
                self.config,
                ctx.agent.name,
                call.kind.name(),
                call.locations.first().map(|path| path.resolved.as_str()),
                options.len()
            );
            match call.kind {
                logic::ToolKind::Read => {
                    logic::PermissionDecision::select(options[0].option_id.clone(), reason)
                }
                logic::ToolKind::Edit => logic::PermissionDecision {
                    verdict: logic::Verdict::AskClients(Some(5)),
                    reason,
                },
                _ => logic::PermissionDecision::reject(reason),
            }
        }

        fn on_session_create(&self, ctx: &logic::Context) -> logic::AccessDecision {
            logic::AccessDecision::allow(format!("{:?}", ctx.phase))
        }

        fn on_file_access(
            &self,
            _ctx: &logic::Context,
            access: logic::FileAccess,
            path: &logic::ResolvedPath,
        ) -> logic::AccessDecision {
            logic::AccessDecision {
                allow: access == logic::FileAccess::Read,
                reason: path.resolved.clone(),
            }
        }
    }

    fn ctx(phase: wit::Phase) -> wit::Context {
        wit::Context {
            session_id: "s-1".into(),
            workspace: "/w".into(),
            agent: wit::AgentInfo {
                name: "qwen-agent".into(),
                command: "qwen".into(),
                mode: None,
            },
            scope: wit::SessionScope::Single,
            phase,
        }
    }

    fn path(resolved: &str) -> wit::ResolvedPath {
        wit::ResolvedPath {
            requested: resolved.into(),
            resolved: resolved.into(),
            inside_workspace: true,
            exists: true,
        }
    }

    fn call(kind: wit::ToolKind) -> wit::ToolCall {
        wit::ToolCall {
            tool_call_id: "t-1".into(),
            kind,
            tool_name: None,
            title: String::new(),
            command: None,
            url: None,
            locations: vec![path("/w/a.rs")],
            raw_input: "null".into(),
        }
    }

    fn options() -> Vec<wit::PermissionOption> {
        vec![wit::PermissionOption {
            option_id: "once".into(),
            name: "Allow once".into(),
            kind: wit::OptionKind::AllowOnce,
        }]
    }

    #[test]
    fn init_configures_the_policy_and_reports_its_identity() {
        let info = Exported::<Echo>::init("cfg".into()).unwrap();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("echo", "1.2.3")
        );
        let decision = Exported::<Echo>::on_permission_request(
            ctx(wit::Phase::Running),
            call(wit::ToolKind::Read),
            options(),
        );
        assert!(matches!(&decision.verdict, wit::Verdict::Select(id) if id == "once"));
        assert_eq!(decision.reason, "cfg qwen-agent read Some(\"/w/a.rs\") 1");
    }

    #[test]
    fn init_errors_reach_the_host_as_its_message() {
        assert_eq!(
            Exported::<Echo>::init("refuse".into()).unwrap_err(),
            "echo: refused"
        );
    }

    #[test]
    fn verdicts_and_access_decisions_map_one_to_one() {
        Exported::<Echo>::init(String::new()).unwrap();
        let ask = Exported::<Echo>::on_permission_request(
            ctx(wit::Phase::Running),
            call(wit::ToolKind::Edit),
            options(),
        );
        assert!(matches!(ask.verdict, wit::Verdict::AskClients(Some(5))));
        let reject = Exported::<Echo>::on_permission_request(
            ctx(wit::Phase::Running),
            call(wit::ToolKind::Other("teleport".into())),
            options(),
        );
        assert!(matches!(reject.verdict, wit::Verdict::Reject));
        assert!(reject.reason.contains(" teleport "), "{}", reject.reason);

        let session = Exported::<Echo>::on_session_create(ctx(wit::Phase::Attach));
        assert!(session.allow);
        assert_eq!(session.reason, "Attach");
        let write = Exported::<Echo>::on_file_access(
            ctx(wit::Phase::Running),
            wit::FileAccess::Write,
            path("/w/x"),
        );
        assert!(!write.allow);
        assert_eq!(write.reason, "/w/x");
    }

    #[test]
    #[should_panic(expected = "the host calls init before any decision")]
    fn a_decision_before_init_traps() {
        Exported::<Echo>::on_session_create(ctx(wit::Phase::Create));
    }
}
