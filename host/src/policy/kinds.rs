//! ACP's tool and option kinds as the contract's enums, in one place: the
//! bridge maps what agents send (`switch_mode`, `allow_once`), and the
//! policy tools map what people write in case tables (`switch-mode`,
//! `allow-once`, `other:teleport`). Both spellings are accepted by both.

use qserve_runtime::{OptionKind, ToolKind};

/// `edit`, `switch_mode`/`switch-mode`; anything else (with or without an
/// `other:` prefix) is `other`.
pub fn tool_kind(text: &str) -> ToolKind {
    match text.replace('-', "_").as_str() {
        "read" => ToolKind::Read,
        "edit" => ToolKind::Edit,
        "delete" => ToolKind::Delete,
        "move" => ToolKind::Move,
        "search" => ToolKind::Search,
        "execute" => ToolKind::Execute,
        "think" => ToolKind::Think,
        "fetch" => ToolKind::Fetch,
        "switch_mode" => ToolKind::SwitchMode,
        _ => ToolKind::Other(text.strip_prefix("other:").unwrap_or(text).to_owned()),
    }
}

/// `allow_once`/`allow-once`, …; anything else is `other`.
pub fn option_kind(text: &str) -> OptionKind {
    match text.replace('-', "_").as_str() {
        "allow_once" => OptionKind::AllowOnce,
        "allow_always" => OptionKind::AllowAlways,
        "reject_once" => OptionKind::RejectOnce,
        "reject_always" => OptionKind::RejectAlways,
        _ => OptionKind::Other(text.strip_prefix("other:").unwrap_or(text).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_map_and_new_kinds_are_other() {
        assert_eq!(tool_kind("execute"), ToolKind::Execute);
        assert_eq!(tool_kind("switch_mode"), ToolKind::SwitchMode);
        assert_eq!(tool_kind("switch-mode"), ToolKind::SwitchMode);
        assert_eq!(tool_kind("teleport"), ToolKind::Other("teleport".into()));
        assert_eq!(
            tool_kind("other:teleport"),
            ToolKind::Other("teleport".into())
        );
        assert_eq!(option_kind("reject_always"), OptionKind::RejectAlways);
        assert_eq!(option_kind("allow-once"), OptionKind::AllowOnce);
        assert_eq!(
            option_kind("proceed_x"),
            OptionKind::Other("proceed_x".into())
        );
    }

    /// Each real agent's write options (qwen 0.24.4, gemini-cli 0.61.0, claude-code-acp
    /// 0.16.2): the ids differ, the kinds are ACP's, so a policy's `reject` or a
    /// `select` of an allow kind finds each agent's own option.
    #[test]
    fn every_real_agents_options_have_known_kinds() {
        let agents: [(&str, [(&str, &str); 3]); 3] = [
            (
                "qwen",
                [
                    ("proceed_always", "allow_always"),
                    ("proceed_once", "allow_once"),
                    ("cancel", "reject_once"),
                ],
            ),
            (
                "gemini",
                [
                    ("proceed_always", "allow_always"),
                    ("proceed_once", "allow_once"),
                    ("cancel", "reject_once"),
                ],
            ),
            (
                "claude-code-acp",
                [
                    ("allow_always", "allow_always"),
                    ("allow", "allow_once"),
                    ("reject", "reject_once"),
                ],
            ),
        ];
        for (agent, options) in agents {
            let kinds: Vec<OptionKind> =
                options.iter().map(|(_, kind)| option_kind(kind)).collect();
            assert_eq!(
                kinds,
                [
                    OptionKind::AllowAlways,
                    OptionKind::AllowOnce,
                    OptionKind::RejectOnce
                ],
                "{agent}"
            );
        }
    }
}
