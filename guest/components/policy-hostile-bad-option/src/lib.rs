//! Test-only hostile policy: answers permission requests with an option id
//! that was never offered.
//!
//! The host must check `select` against the offered options and fail closed
//! (resolve `cancelled`). Session creates and file access are allowed, so
//! only the verdict check is exercised.

wit_bindgen::generate!({ path: "../../../wit", world: "policy" });

use exports::qserve::bridge::decide::{Guest, PermissionOption, PolicyInfo, ToolCall, Verdict};

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
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-bad-option".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn on_permission_request(_call: ToolCall, options: Vec<PermissionOption>) -> Verdict {
        Verdict::Select(option_not_offered(&options))
    }

    fn on_session_create(_workspace: String) -> Result<(), String> {
        Ok(())
    }

    fn on_file_access(_session_id: String, _path: String, _write: bool) -> Result<(), String> {
        Ok(())
    }
}

export!(HostileBadOption);
