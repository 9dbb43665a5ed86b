//! Test-only policy built for the OLD contract `qserve:bridge@0.1.0`
//! (guest/legacy-wit/qserve-bridge-0.1.0.wit, world `policy`): the 0.1.0
//! `default` policy (ask the clients; allow every session and file access).
//!
//! A host speaking `qserve:policy@0.2.0` must refuse to load it, with a
//! message naming both versions, instead of failing at instantiation with a
//! linker error about missing imports. It only needs to build.

wit_bindgen::generate!({ path: "../../legacy-wit", world: "policy" });

use exports::qserve::bridge::decide::{Guest, PermissionOption, PolicyInfo, ToolCall, Verdict};
use qserve::bridge::{host, policy_config};

struct LegacyDefault;

impl Guest for LegacyDefault {
    /// Uses both 0.1.0 imports, so the component imports the whole old world
    /// (a host may notice the mismatch on either side).
    fn info() -> PolicyInfo {
        let config = policy_config::get();
        host::log(
            host::LogLevel::Debug,
            &format!("legacy default policy, {} bytes of config", config.len()),
        );
        PolicyInfo {
            name: "default".into(),
            version: "0.1.0".into(),
        }
    }

    fn on_permission_request(_call: ToolCall, _options: Vec<PermissionOption>) -> Verdict {
        Verdict::AskClients(None)
    }

    fn on_session_create(_workspace: String) -> Result<(), String> {
        Ok(())
    }

    fn on_file_access(_session_id: String, _path: String, _write: bool) -> Result<(), String> {
        Ok(())
    }
}

export!(LegacyDefault);
