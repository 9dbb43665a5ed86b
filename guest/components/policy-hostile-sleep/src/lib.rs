//! Test-only hostile policy: blocks inside a host call.
//!
//! It asks WASI's monotonic clock for a pollable that is ready in 10 s
//! (`subscribe-duration`) and waits on it with `pollable.block()`: the time
//! passes in the host, not in Wasm code, so epoch interruption alone cannot
//! end it. The host's per-call deadline must cut the wait anyway (async
//! wasmtime with a timeout) and fail closed.
//!
//! Triggers, so each decision can be tested on its own:
//! - `on-permission-request`: always blocks;
//! - `on-session-create`: blocks when the workspace path contains `block`,
//!   else allows;
//! - `on-file-access`: blocks when the path (requested or resolved) contains
//!   `block`, else allows.
//!
//! Should a wait ever end (the host did not cut it), the decision is a
//! visible non-fault answer whose reason says so.

// `generate_all`: the WASI interfaces come from wit/deps, not from a `wasi` crate.
wit_bindgen::generate!({ path: "wit", world: "hostile-sleep", generate_all });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};
use qserve::policy::types::Verdict;
use wasi::clocks::monotonic_clock;

/// Far beyond any deadline the host sets (50 ms by default).
const WAIT_NS: u64 = 10_000_000_000;

const WOKE: &str = "hostile-sleep woke up after 10 s: the host did not cut the wait";

fn block_10_s() {
    monotonic_clock::subscribe_duration(WAIT_NS).block();
}

fn access(block: bool) -> AccessDecision {
    if block {
        block_10_s();
        return AccessDecision {
            allow: false,
            reason: WOKE.into(),
        };
    }
    AccessDecision {
        allow: true,
        reason: "hostile-sleep: nothing to block on".into(),
    }
}

struct HostileSleep;

impl Guest for HostileSleep {
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-sleep".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        _options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        block_10_s();
        PermissionDecision {
            verdict: Verdict::AskClients(None),
            reason: WOKE.into(),
        }
    }

    fn on_session_create(ctx: Context) -> AccessDecision {
        access(ctx.workspace.contains("block"))
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, path: ResolvedPath) -> AccessDecision {
        access(path.requested.contains("block") || path.resolved.contains("block"))
    }
}

export!(HostileSleep);
