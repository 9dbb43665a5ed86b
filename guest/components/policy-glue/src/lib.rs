//! [`export_builtin_policy!`]: the WIT glue shared by the built-in policy
//! components, so each of them is one line naming its policy.

/// Generates the `policy` world bindings in the calling crate and exports
/// `$policy` (a `qserve_policy_logic::Policy` value) under `$name`, with the
/// calling crate's version.
///
/// The calling crate must depend on `wit-bindgen` and `qserve-policy-logic`
/// and live in `guest/components/<crate>/`: the WIT path below is resolved
/// relative to the calling crate's manifest.
#[macro_export]
macro_rules! export_builtin_policy {
    ($policy:expr, $name:literal) => {
        wit_bindgen::generate!({ path: "../../../wit", world: "policy" });

        use exports::qserve::bridge::decide;
        use qserve_policy_logic::Policy as _;

        struct BuiltinPolicy;

        impl decide::Guest for BuiltinPolicy {
            fn info() -> decide::PolicyInfo {
                decide::PolicyInfo { name: $name.into(), version: env!("CARGO_PKG_VERSION").into() }
            }

            fn on_permission_request(
                call: decide::ToolCall,
                options: Vec<decide::PermissionOption>,
            ) -> decide::Verdict {
                let call = qserve_policy_logic::ToolCall {
                    session_id: call.session_id,
                    workspace: call.workspace,
                    kind: call.kind,
                    title: call.title,
                    locations: call.locations,
                    raw_input: call.raw_input,
                };
                let options: Vec<qserve_policy_logic::PermissionOption> = options
                    .into_iter()
                    .map(|option| qserve_policy_logic::PermissionOption {
                        option_id: option.option_id,
                        name: option.name,
                        kind: option.kind,
                    })
                    .collect();
                match $policy.on_permission_request(&call, &options) {
                    qserve_policy_logic::Verdict::Select(option_id) => decide::Verdict::Select(option_id),
                    qserve_policy_logic::Verdict::Reject => decide::Verdict::Reject,
                    qserve_policy_logic::Verdict::AskClients(timeout_ms) => {
                        decide::Verdict::AskClients(timeout_ms)
                    }
                }
            }

            fn on_session_create(workspace: String) -> Result<(), String> {
                $policy.on_session_create(&workspace)
            }

            fn on_file_access(session_id: String, path: String, write: bool) -> Result<(), String> {
                $policy.on_file_access(&session_id, &path, write)
            }
        }

        export!(BuiltinPolicy);
    };
}
