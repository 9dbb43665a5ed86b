//! Test-only hostile policy: never returns from a decision.
//!
//! Every decision spins forever, so the host's per-call deadline (epoch
//! interruption) is the only thing that ends it. The host must fail closed
//! (cancel the request, refuse the create or the file access) and carry on
//! with a fresh instance.

wit_bindgen::generate!({ path: "../../../wit", world: "policy" });

use exports::qserve::bridge::decide::{Guest, PermissionOption, PolicyInfo, ToolCall, Verdict};

struct HostileLoop;

/// Busy work the optimizer cannot remove or prove endless.
fn spin_forever() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

impl Guest for HostileLoop {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-loop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn on_permission_request(_call: ToolCall, _options: Vec<PermissionOption>) -> Verdict {
        spin_forever()
    }

    fn on_session_create(_workspace: String) -> Result<(), String> {
        spin_forever()
    }

    fn on_file_access(_session_id: String, _path: String, _write: bool) -> Result<(), String> {
        spin_forever()
    }
}

export!(HostileLoop);
