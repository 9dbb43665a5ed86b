//! [`export_policy!`]: the WIT glue shared by the policy components written
//! on `qserve-policy-logic` (the built-ins and some test policies), so each
//! of them is one line naming its policy type.
//!
//! The macro maps the types generated from `qserve:policy@0.2.0` onto
//! `qserve_policy_logic::types` and back, one to one. It lives in a macro
//! because wit-bindgen generates the types in the calling crate: there is no
//! shared crate to write `From` impls against.

/// Generates the `policy` world bindings (`wit/policy`, package
/// `qserve:policy@0.2.0`) in the calling crate and exports `$policy`, a type
/// implementing `qserve_policy_logic::Policy + Default`.
///
/// Each component instance holds one `$policy` value, made by `init` (the
/// host calls it once per instance, before any decision). A decision before
/// `init` traps, which the host treats as a fault (fail closed).
///
/// The calling crate must depend on `wit-bindgen` and `qserve-policy-logic`
/// and live in `guest/components/<crate>/`: the WIT path is resolved
/// relative to the calling crate's manifest. The generated `qserve::policy::host`
/// module (log, clocks, random ids) is available to the crate.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

        /// Named here, where the caller's path to it resolves.
        type ExportedPolicy = $policy;

        mod policy_glue {
            use super::ExportedPolicy;
            use super::exports::qserve::policy::decide;
            use super::qserve::policy::types as wit;
            use qserve_policy_logic as logic;
            use qserve_policy_logic::Policy as _;
            use std::cell::RefCell;

            thread_local! {
                // A component instance is single-threaded; the host serializes calls.
                static POLICY: RefCell<Option<ExportedPolicy>> = const { RefCell::new(None) };
            }

            fn with_policy<R>(decision: impl FnOnce(&ExportedPolicy) -> R) -> R {
                POLICY.with(|policy| {
                    let policy = policy.borrow();
                    let policy = policy
                        .as_ref()
                        .expect("the host calls init before any decision");
                    decision(policy)
                })
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

            fn option_kind(kind: wit::OptionKind) -> logic::OptionKind {
                match kind {
                    wit::OptionKind::AllowOnce => logic::OptionKind::AllowOnce,
                    wit::OptionKind::AllowAlways => logic::OptionKind::AllowAlways,
                    wit::OptionKind::RejectOnce => logic::OptionKind::RejectOnce,
                    wit::OptionKind::RejectAlways => logic::OptionKind::RejectAlways,
                    wit::OptionKind::Other(name) => logic::OptionKind::Other(name),
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

            pub struct Glue;

            impl decide::Guest for Glue {
                fn init(config: String) -> Result<wit::PolicyInfo, String> {
                    let mut policy = <ExportedPolicy as Default>::default();
                    let info = policy.init(&config)?;
                    POLICY.with(|slot| *slot.borrow_mut() = Some(policy));
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
                    let options: Vec<logic::PermissionOption> = options
                        .into_iter()
                        .map(|option| logic::PermissionOption {
                            option_id: option.option_id,
                            name: option.name,
                            kind: option_kind(option.kind),
                        })
                        .collect();
                    let (ctx, call) = (context(ctx), tool_call(call));
                    let decision =
                        with_policy(|policy| policy.on_permission_request(&ctx, &call, &options));
                    wit::PermissionDecision {
                        verdict: match decision.verdict {
                            logic::Verdict::Select(option_id) => wit::Verdict::Select(option_id),
                            logic::Verdict::Reject => wit::Verdict::Reject,
                            logic::Verdict::AskClients(timeout_ms) => {
                                wit::Verdict::AskClients(timeout_ms)
                            }
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
        }

        use policy_glue::Glue;
        export!(Glue);
    };
}
