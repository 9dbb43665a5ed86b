//! Test-only hostile policy: allocates without bound in every decision.
//!
//! `init` succeeds; every decision keeps 1 MiB blocks (written to, so they
//! are really committed) in a static until the host's memory cap stops it:
//! either `memory.grow` traps or the allocator fails and the guest aborts.
//! Both must fail closed.

use std::cell::RefCell;

wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};

const BLOCK_BYTES: usize = 1 << 20;

thread_local! {
    /// Kept across calls so nothing is ever freed.
    static HOARD: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

struct HostileMemory;

fn hoard_forever() -> ! {
    loop {
        let block = vec![0xA5_u8; BLOCK_BYTES];
        HOARD.with(|hoard| hoard.borrow_mut().push(std::hint::black_box(block)));
    }
}

impl Guest for HostileMemory {
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-memory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        _options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        hoard_forever()
    }

    fn on_session_create(_ctx: Context) -> AccessDecision {
        hoard_forever()
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, _path: ResolvedPath) -> AccessDecision {
        hoard_forever()
    }
}

export!(HostileMemory);
