//! Which tool a rule is about: tool names as the coding agents spell them,
//! mapped onto ACP tool kinds so one rule covers every agent.
//!
//! `Bash(git push)` must stop `git push` whether the agent is Claude Code
//! (tool `Bash`), Gemini CLI or Qwen Code (`run_shell_command`) or anything
//! else that sends an ACP `execute` call. So a known name selects its kind
//! *and* the literal name; an unknown name selects only the literal name.

use qserve_policy_logic::ToolKind;

/// What the argument in `Tool(argument)` means for a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// A shell command, matched by word prefix.
    Command,
    /// File paths, matched by glob on the resolved locations.
    Path,
    /// A URL, matched by `domain:HOST`.
    Domain,
    /// Takes no argument.
    Plain,
}

/// Bit for a tool kind; `Other` kinds are never selected by kind.
pub(crate) fn kind_bit(kind: &ToolKind) -> u16 {
    match kind {
        ToolKind::Read => 1 << 0,
        ToolKind::Edit => 1 << 1,
        ToolKind::Delete => 1 << 2,
        ToolKind::Move => 1 << 3,
        ToolKind::Search => 1 << 4,
        ToolKind::Execute => 1 << 5,
        ToolKind::Think => 1 << 6,
        ToolKind::Fetch => 1 << 7,
        ToolKind::SwitchMode => 1 << 8,
        ToolKind::Other(_) => 1 << 9,
    }
}

pub(crate) const READ: u16 = 1 << 0;
pub(crate) const EDIT: u16 = 1 << 1;
pub(crate) const DELETE: u16 = 1 << 2;
pub(crate) const MOVE: u16 = 1 << 3;
pub(crate) const SEARCH: u16 = 1 << 4;
pub(crate) const EXECUTE: u16 = 1 << 5;
pub(crate) const THINK: u16 = 1 << 6;
pub(crate) const FETCH: u16 = 1 << 7;
pub(crate) const SWITCH_MODE: u16 = 1 << 8;
/// Every kind bit (`Other` included), for the per-kind index.
pub(crate) const KIND_COUNT: usize = 10;

/// The kinds a tool name stands for, and what its argument means.
///
/// Claude Code: `Read` also covers Grep/Glob (`search`), as Claude Code's own
/// Read rules do; the editing tools cover `delete` and `move` too, so
/// `deny = ["Edit(.git/**)"]` also stops a deletion there. Gemini CLI / Qwen
/// Code and Codex names map the same way. The ACP kind names themselves
/// (lower case) select their kind.
pub(crate) fn alias(name: &str) -> Option<(u16, Family)> {
    let entry = match name {
        // Claude Code
        "Bash" => (EXECUTE, Family::Command),
        "Read" => (READ | SEARCH, Family::Path),
        "Edit" | "Write" | "MultiEdit" | "NotebookEdit" => (EDIT | DELETE | MOVE, Family::Path),
        "Grep" | "Glob" | "LS" => (SEARCH, Family::Path),
        "WebFetch" | "WebSearch" => (FETCH, Family::Domain),
        // Gemini CLI, Qwen Code
        "run_shell_command" => (EXECUTE, Family::Command),
        "read_file" | "read_many_files" => (READ, Family::Path),
        "write_file" | "replace" | "edit" => (EDIT, Family::Path),
        "glob" | "grep" | "search_file_content" | "grep_search" | "list_directory" => {
            (SEARCH, Family::Path)
        }
        "web_fetch" | "google_web_search" => (FETCH, Family::Domain),
        // Codex
        "shell" => (EXECUTE, Family::Command),
        "apply_patch" => (EDIT | DELETE | MOVE, Family::Path),
        // ACP kinds
        "read" => (READ, Family::Path),
        "delete" => (DELETE, Family::Path),
        "move" => (MOVE, Family::Path),
        "search" => (SEARCH, Family::Path),
        "execute" => (EXECUTE, Family::Command),
        "think" => (THINK, Family::Plain),
        "fetch" => (FETCH, Family::Domain),
        "switch_mode" => (SWITCH_MODE, Family::Plain),
        _ => return None,
    };
    Some(entry)
}

/// The kinds and family for an example's `tool = "..."`/`kind = "..."`.
pub(crate) fn kind_from_name(name: &str) -> Option<ToolKind> {
    Some(match name {
        "read" => ToolKind::Read,
        "edit" => ToolKind::Edit,
        "delete" => ToolKind::Delete,
        "move" => ToolKind::Move,
        "search" => ToolKind::Search,
        "execute" => ToolKind::Execute,
        "think" => ToolKind::Think,
        "fetch" => ToolKind::Fetch,
        "switch_mode" => ToolKind::SwitchMode,
        _ => return None,
    })
}

/// The first kind of a bit set (an example's `tool = "Read"` is a `read`).
pub(crate) fn first_kind(bits: u16) -> ToolKind {
    for (bit, kind) in [
        (READ, ToolKind::Read),
        (EDIT, ToolKind::Edit),
        (DELETE, ToolKind::Delete),
        (MOVE, ToolKind::Move),
        (SEARCH, ToolKind::Search),
        (EXECUTE, ToolKind::Execute),
        (THINK, ToolKind::Think),
        (FETCH, ToolKind::Fetch),
        (SWITCH_MODE, ToolKind::SwitchMode),
    ] {
        if bits & bit != 0 {
            return kind;
        }
    }
    ToolKind::Other(String::new())
}

/// An MCP tool name `mcp__SERVER__TOOL` (Claude Code's spelling, also what
/// claude-code-acp sends), split; `mcp__SERVER` alone has no tool.
pub(crate) fn split_mcp(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix("mcp__")?;
    match rest.split_once("__") {
        Some((server, tool)) if !server.is_empty() => {
            Some((server, if tool.is_empty() { None } else { Some(tool) }))
        }
        Some(_) => None,
        None if !rest.is_empty() => Some((rest, None)),
        None => None,
    }
}

/// Which calls a rule is about. Several conditions are alternatives: `Bash`
/// selects the `execute` kind or the literal tool name `Bash`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    /// Any tool at all (`*`, or a Gemini rule without `toolName`).
    pub any: bool,
    pub kinds: u16,
    pub names: Vec<String>,
    /// MCP servers (`*` = any), each optionally with one of its tools.
    pub mcp: Vec<(String, Option<String>)>,
}

/// The parts of a call a selector looks at, worked out once per call.
pub(crate) struct CallTool<'a> {
    pub kind_bit: u16,
    pub name: Option<&'a str>,
    pub mcp: Option<(&'a str, Option<&'a str>)>,
}

impl<'a> CallTool<'a> {
    pub fn new(kind: &ToolKind, name: Option<&'a str>) -> Self {
        Self {
            kind_bit: kind_bit(kind),
            name,
            mcp: name.and_then(split_mcp),
        }
    }
}

impl Selector {
    /// The selector for a tool name as written in a rule (`Bash`,
    /// `run_shell_command`, `mcp__github`, `mcp__github__*`, `*`), and the
    /// family of its argument.
    pub fn for_name(name: &str) -> Result<(Self, Family), String> {
        if name == "*" {
            return Ok((
                Self {
                    any: true,
                    ..Self::default()
                },
                Family::Plain,
            ));
        }
        if name.starts_with("mcp__") {
            let (server, tool) = split_mcp(name).ok_or_else(|| {
                format!("{name:?} is not an MCP tool name (mcp__SERVER or mcp__SERVER__TOOL)")
            })?;
            if server.contains('*') {
                return Err(format!(
                    "{name:?}: a wildcard is allowed only as the whole tool (mcp__SERVER__*)"
                ));
            }
            let tool = match tool {
                None | Some("*") => None,
                Some(tool) if tool.contains('*') => {
                    return Err(format!(
                        "{name:?}: a wildcard is allowed only as the whole tool (mcp__SERVER__*)"
                    ))
                }
                Some(tool) => Some(tool.to_owned()),
            };
            return Ok((
                Self {
                    mcp: vec![(server.to_owned(), tool)],
                    ..Self::default()
                },
                Family::Plain,
            ));
        }
        if name.is_empty() {
            return Err("the tool name is empty".into());
        }
        if let Some(bad) = name
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, '*' | '?' | '(' | ')' | '[' | ']'))
        {
            return Err(format!(
                "{name:?}: {bad:?} is not allowed in a tool name (`*` alone means every tool; mcp__SERVER__* every tool of a server)"
            ));
        }
        let (kinds, family) = alias(name).unwrap_or((0, Family::Plain));
        Ok((
            Self {
                kinds,
                names: vec![name.to_owned()],
                ..Self::default()
            },
            family,
        ))
    }

    pub fn matches(&self, call: &CallTool<'_>) -> bool {
        if self.any || self.kinds & call.kind_bit != 0 {
            return true;
        }
        if let Some(name) = call.name {
            if self.names.iter().any(|known| known == name) {
                return true;
            }
        }
        match call.mcp {
            Some((call_server, call_tool)) => self.mcp.iter().any(|(server, tool)| {
                (server == "*" || server == call_server)
                    && match tool {
                        None => true,
                        Some(tool) => tool == "*" || Some(tool.as_str()) == call_tool,
                    }
            }),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(kind: ToolKind, name: Option<&'a str>) -> CallTool<'a> {
        CallTool::new(&kind, name)
    }

    #[test]
    fn known_names_select_their_kind_and_their_literal_name() {
        let (bash, family) = Selector::for_name("Bash").unwrap();
        assert_eq!(family, Family::Command);
        assert!(bash.matches(&call(ToolKind::Execute, Some("run_shell_command"))));
        assert!(bash.matches(&call(ToolKind::Other("x".into()), Some("Bash"))));
        assert!(!bash.matches(&call(ToolKind::Read, Some("Read"))));
        let (read, _) = Selector::for_name("Read").unwrap();
        assert!(
            read.matches(&call(ToolKind::Search, None)),
            "Read covers Grep/Glob"
        );
        let (edit, _) = Selector::for_name("Edit").unwrap();
        assert!(edit.matches(&call(ToolKind::Delete, None)));
        assert!(edit.matches(&call(ToolKind::Move, None)));
    }

    #[test]
    fn unknown_names_select_only_themselves() {
        let (task, family) = Selector::for_name("Task").unwrap();
        assert_eq!(family, Family::Plain);
        assert!(task.matches(&call(ToolKind::Other("task".into()), Some("Task"))));
        assert!(!task.matches(&call(ToolKind::Other("task".into()), Some("task"))));
        assert!(!task.matches(&call(ToolKind::Think, None)));
    }

    #[test]
    fn mcp_selectors_match_server_and_tool() {
        let github = call(
            ToolKind::Other("x".into()),
            Some("mcp__github__create_issue"),
        );
        for spec in ["mcp__github", "mcp__github__*", "mcp__github__create_issue"] {
            assert!(
                Selector::for_name(spec).unwrap().0.matches(&github),
                "{spec}"
            );
        }
        for spec in ["mcp__gitlab", "mcp__github__list_issues"] {
            assert!(
                !Selector::for_name(spec).unwrap().0.matches(&github),
                "{spec}"
            );
        }
        assert!(Selector::for_name("mcp__git*").is_err());
        assert!(Selector::for_name("mcp__github__create*").is_err());
        assert!(Selector::for_name("mcp__").is_err());
        assert_eq!(split_mcp("mcp__a__b__c"), Some(("a", Some("b__c"))));
    }

    #[test]
    fn odd_tool_names_are_refused() {
        for bad in ["", "Ba sh", "Bash*", "read_*"] {
            assert!(Selector::for_name(bad).is_err(), "{bad:?}");
        }
        assert!(Selector::for_name("*")
            .unwrap()
            .0
            .matches(&call(ToolKind::Think, None)));
    }
}
