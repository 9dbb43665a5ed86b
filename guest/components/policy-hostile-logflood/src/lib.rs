//! Test-only hostile policy: floods the daemon's log.
//!
//! `on-permission-request` calls `host.log` 100 000 times with a 64 KiB
//! message (6.4 GB in all), then asks the clients. The host must truncate
//! and rate-limit the lines so the log stays small, and its deadline must
//! still end the call if the copying takes too long; either way the daemon
//! stays responsive. Session creates and file accesses are allowed without
//! logging, so only the flood is exercised.

wit_bindgen::generate!({ path: "../../../wit/policy", world: "policy" });

use exports::qserve::policy::decide::{
    AccessDecision, Context, FileAccess, Guest, PermissionDecision, PermissionOption, PolicyInfo,
    ResolvedPath, ToolCall,
};
use qserve::policy::host::{self, LogLevel};
use qserve::policy::types::Verdict;

const LINES: usize = 100_000;
const LINE_BYTES: usize = 64 * 1024;

struct HostileLogflood;

impl Guest for HostileLogflood {
    fn init(_config: String) -> Result<PolicyInfo, String> {
        Ok(PolicyInfo {
            name: "hostile-logflood".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        _ctx: Context,
        _call: ToolCall,
        _options: Vec<PermissionOption>,
    ) -> PermissionDecision {
        // One recognizable prefix, then filler up to 64 KiB.
        let mut message = String::with_capacity(LINE_BYTES);
        message.push_str("hostile-logflood ");
        message.extend(std::iter::repeat_n('x', LINE_BYTES - message.len()));
        for _ in 0..LINES {
            host::log(LogLevel::Warn, &message);
        }
        PermissionDecision {
            verdict: Verdict::AskClients(None),
            reason: format!("hostile-logflood logged {LINES} lines of 64 KiB"),
        }
    }

    fn on_session_create(_ctx: Context) -> AccessDecision {
        AccessDecision {
            allow: true,
            reason: "hostile-logflood admits every session".into(),
        }
    }

    fn on_file_access(_ctx: Context, _access: FileAccess, _path: ResolvedPath) -> AccessDecision {
        AccessDecision {
            allow: true,
            reason: "hostile-logflood allows every file access".into(),
        }
    }
}

export!(HostileLogflood);
