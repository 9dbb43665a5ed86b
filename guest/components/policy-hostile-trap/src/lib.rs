//! Test-only hostile policy: traps in every decision.
//!
//! A trap leaves the policy's `Store` unusable; the host must fail closed and
//! answer the next call from a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "policy" });

use exports::qserve::bridge::decide::{Guest, PermissionOption, PolicyInfo, ToolCall, Verdict};

struct HostileTrap;

/// Executes the Wasm `unreachable` instruction: an immediate trap.
#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

/// Natively (only `cargo clippy` builds it so) the closest thing: abort.
#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

impl Guest for HostileTrap {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-trap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn on_permission_request(_call: ToolCall, _options: Vec<PermissionOption>) -> Verdict {
        trap()
    }

    fn on_session_create(_workspace: String) -> Result<(), String> {
        trap()
    }

    fn on_file_access(_session_id: String, _path: String, _write: bool) -> Result<(), String> {
        trap()
    }
}

export!(HostileTrap);
