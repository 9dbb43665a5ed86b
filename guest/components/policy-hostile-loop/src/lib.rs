//! Test-only hostile policy: never returns from a decision.
//!
//! `init` succeeds; every decision spins forever, so the host's per-call
//! deadline (epoch interruption) is the only thing that ends it. The host
//! must fail closed (cancel the request, refuse the create or the file
//! access) and carry on with a fresh instance.

wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};

struct HostileLoop;

/// Busy work the optimizer cannot remove or prove endless.
fn spin_forever() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

impl Guest for HostileLoop {
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-loop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        _options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        spin_forever()
    }

    fn on_session_create(_ctx: Context) -> AccessDecision {
        spin_forever()
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, _path: ResolvedPath) -> AccessDecision {
        spin_forever()
    }
}

export!(HostileLoop);
