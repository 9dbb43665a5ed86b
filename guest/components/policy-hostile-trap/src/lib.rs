//! Test-only hostile policy: traps in every decision.
//!
//! `init` succeeds; every decision executes `unreachable`. A trap leaves the
//! instance unusable; the host must fail closed and answer the next call
//! from a fresh instance.

wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};

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
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-trap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        _options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        trap()
    }

    fn on_session_create(_ctx: Context) -> AccessDecision {
        trap()
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, _path: ResolvedPath) -> AccessDecision {
        trap()
    }
}

export!(HostileTrap);
