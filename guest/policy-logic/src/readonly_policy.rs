//! The readonly policy: the agent may look but not touch.
//!
//! Tools that only read (read, search, think, fetch) are allowed at once with
//! the offered allow option; tools that change things (edit, delete, move,
//! execute) are rejected without bothering the clients; anything else is
//! left to the clients. Agent file writes are refused, reads allowed.

use crate::types::{PermissionOption, Policy, ToolCall, Verdict};

#[derive(Debug, Clone, Copy, Default)]
pub struct ReadonlyPolicy;

const LOOKING_KINDS: [&str; 4] = ["read", "search", "think", "fetch"];
const CHANGING_KINDS: [&str; 4] = ["edit", "delete", "move", "execute"];

/// The offered option to allow with: `allow_once` rather than granting more
/// than this one call, else `allow_always`.
fn allow_option(options: &[PermissionOption]) -> Option<&PermissionOption> {
    ["allow_once", "allow_always"]
        .iter()
        .find_map(|kind| options.iter().find(|option| option.kind == *kind))
}

impl Policy for ReadonlyPolicy {
    fn on_permission_request(&self, call: &ToolCall, options: &[PermissionOption]) -> Verdict {
        let kind = call.kind.as_str();
        if LOOKING_KINDS.contains(&kind) {
            match allow_option(options) {
                Some(option) => Verdict::Select(option.option_id.clone()),
                None => Verdict::AskClients(None),
            }
        } else if CHANGING_KINDS.contains(&kind) {
            Verdict::Reject
        } else {
            Verdict::AskClients(None)
        }
    }

    fn on_session_create(&self, _workspace: &str) -> Result<(), String> {
        Ok(())
    }

    fn on_file_access(&self, _session_id: &str, path: &str, write: bool) -> Result<(), String> {
        if write {
            Err(format!(
                "the readonly policy refuses agent file writes ({path})"
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DefaultPolicy;

    fn option(id: &str, kind: &str) -> PermissionOption {
        PermissionOption {
            option_id: id.into(),
            name: id.into(),
            kind: kind.into(),
        }
    }

    fn all_options() -> Vec<PermissionOption> {
        vec![
            option("always", "allow_always"),
            option("once", "allow_once"),
            option("no", "reject_once"),
            option("never", "reject_always"),
        ]
    }

    fn call(kind: &str) -> ToolCall {
        ToolCall {
            kind: kind.into(),
            title: format!("a {kind} tool"),
            ..ToolCall::default()
        }
    }

    #[test]
    fn looking_tools_are_allowed_once_when_offered() {
        for kind in LOOKING_KINDS {
            assert_eq!(
                ReadonlyPolicy.on_permission_request(&call(kind), &all_options()),
                Verdict::Select("once".into()),
                "{kind}"
            );
        }
    }

    #[test]
    fn allow_always_is_the_fallback_allow_option() {
        let options = [
            option("always", "allow_always"),
            option("no", "reject_once"),
        ];
        assert_eq!(
            ReadonlyPolicy.on_permission_request(&call("read"), &options),
            Verdict::Select("always".into())
        );
    }

    #[test]
    fn looking_tools_without_an_allow_option_go_to_the_clients() {
        let options = [option("no", "reject_once")];
        assert_eq!(
            ReadonlyPolicy.on_permission_request(&call("search"), &options),
            Verdict::AskClients(None)
        );
    }

    #[test]
    fn changing_tools_are_rejected_without_asking() {
        for kind in CHANGING_KINDS {
            assert_eq!(
                ReadonlyPolicy.on_permission_request(&call(kind), &all_options()),
                Verdict::Reject,
                "{kind}"
            );
        }
    }

    #[test]
    fn other_kinds_go_to_the_clients() {
        for kind in ["other", "switch_mode", ""] {
            assert_eq!(
                ReadonlyPolicy.on_permission_request(&call(kind), &all_options()),
                Verdict::AskClients(None),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn file_writes_are_refused_with_a_reason_and_reads_allowed() {
        let refused = ReadonlyPolicy
            .on_file_access("s", "/ws/src/main.rs", true)
            .unwrap_err();
        assert!(
            refused.contains("/ws/src/main.rs") && refused.contains("readonly"),
            "{refused}"
        );
        assert_eq!(
            ReadonlyPolicy.on_file_access("s", "/ws/src/main.rs", false),
            Ok(())
        );
        assert_eq!(ReadonlyPolicy.on_session_create("/ws"), Ok(()));
    }

    #[test]
    fn differs_from_the_default_policy_on_the_same_requests() {
        for kind in ["read", "execute"] {
            let (default, readonly) = (
                DefaultPolicy.on_permission_request(&call(kind), &all_options()),
                ReadonlyPolicy.on_permission_request(&call(kind), &all_options()),
            );
            assert_ne!(default, readonly, "{kind}");
        }
        assert_ne!(
            DefaultPolicy.on_file_access("s", "/ws/a", true),
            ReadonlyPolicy.on_file_access("s", "/ws/a", true)
        );
    }
}
