//! The default policy: the clients decide every permission request, as with
//! `qwen serve`; sessions and file access are not restricted.

use crate::types::{PermissionOption, Policy, ToolCall, Verdict};

#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn on_permission_request(&self, _call: &ToolCall, _options: &[PermissionOption]) -> Verdict {
        Verdict::AskClients(None)
    }

    fn on_session_create(&self, _workspace: &str) -> Result<(), String> {
        Ok(())
    }

    fn on_file_access(&self, _session_id: &str, _path: &str, _write: bool) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_the_clients_whatever_the_tool_does() {
        let options = [PermissionOption {
            option_id: "ok".into(),
            name: "Allow".into(),
            kind: "allow_once".into(),
        }];
        for kind in ["read", "edit", "delete", "execute", "other", "made-up"] {
            let call = ToolCall {
                kind: kind.into(),
                ..ToolCall::default()
            };
            assert_eq!(
                DefaultPolicy.on_permission_request(&call, &options),
                Verdict::AskClients(None)
            );
        }
    }

    #[test]
    fn allows_sessions_and_file_reads_and_writes() {
        assert_eq!(DefaultPolicy.on_session_create("/ws"), Ok(()));
        assert_eq!(
            DefaultPolicy.on_file_access("s", "/ws/a.txt", false),
            Ok(())
        );
        assert_eq!(DefaultPolicy.on_file_access("s", "/ws/a.txt", true), Ok(()));
    }
}
