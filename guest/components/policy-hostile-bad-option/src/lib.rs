//! Test-only hostile policy: answers permission requests with an option id
//! that was never offered.
//!
//! The host must check `select` against the offered options and fail closed
//! (resolve `cancelled`, record a fault). Session creates and file access
//! are allowed, so only the verdict check is exercised.

wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};
use qserve::policy::types::Verdict;

struct HostileBadOption;

/// An id that no agent offers: built from every offered id, so it cannot
/// collide with one of them.
fn option_not_offered(options: &[PermissionOption]) -> String {
    let mut id = String::from("not-offered");
    for option in options {
        id.push('-');
        id.push_str(&option.option_id);
    }
    id
}

impl Guest for HostileBadOption {
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-bad-option".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        PermissionDecision {
            verdict: Verdict::Select(option_not_offered(&options)),
            reason: "hostile-bad-option picks an option nobody offered".into(),
        }
    }

    fn on_session_create(_ctx: Context) -> AccessDecision {
        AccessDecision {
            allow: true,
            reason: "hostile-bad-option admits every session".into(),
        }
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, _path: ResolvedPath) -> AccessDecision {
        AccessDecision {
            allow: true,
            reason: "hostile-bad-option allows every file access".into(),
        }
    }
}

export!(HostileBadOption);
