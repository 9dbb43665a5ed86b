//! Per-agent differences, in one table instead of `if` chains in the bridge.
//!
//! Keyed by the agent command's program name (`qwen`, `gemini`,
//! `claude-code-acp`, `codex-acp`); a launcher such as `npx` or `node` is
//! looked through to its first non-flag argument (`npx @qwen-code/qwen-code`).
//! Unknown agents get [`Quirks::GENERIC`], which works with any ACP agent.

use crate::command::AgentCommand;

/// The agents the daemon knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownAgent {
    Qwen,
    Gemini,
    ClaudeCodeAcp,
    CodexAcp,
    Other,
}

/// How to switch a session's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSwitch {
    /// `session/set_config_option` on the option with category `model` when
    /// `session/new` advertised one; otherwise `session/set_model` (and map
    /// its `-32601` to "not supported by this agent").
    ConfigOptionElseSetModel,
    /// `session/set_model` first: the agent implements it and its config
    /// options (if any) are not the canonical path.
    SetModel,
}

/// What differs between agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    pub agent: KnownAgent,
    /// Agent→client methods this agent sends that the daemon does not
    /// implement. They are answered `-32601` like any unknown method, but
    /// logged at debug instead of warn: they are expected.
    pub quiet_unknown_methods: &'static [&'static str],
    pub model_switch: ModelSwitch,
    /// Answer `fs/read_text_file` of a missing file with empty content
    /// instead of `-32002`. gemini-cli reads a file before writing it and
    /// fails the write ("Error checking existing file") when that read is an
    /// error, so without this it can never create a file (upstream
    /// gemini-cli issue 9280). Only for agents that need it: for the others
    /// "no such file" is information (a read of a missing file must not look
    /// like an empty file to the model). docs/protocol.md says why.
    pub missing_file_reads_empty: bool,
    /// The agent's ACP session modes in which it asks permission before
    /// editing or running anything, in order of preference. After
    /// `session/new` the daemon sets the first one the agent advertises
    /// (`session/set_mode`) unless it is already current, so an agent's own
    /// auto-approval cannot bypass the policy. Agents that advertise no
    /// modes are put in their asking mode by their settings instead
    /// (docs/user-guide.md "Choosing an agent").
    pub asking_modes: &'static [&'static str],
}

impl Quirks {
    pub const GENERIC: Quirks = Quirks {
        agent: KnownAgent::Other,
        quiet_unknown_methods: &[],
        model_switch: ModelSwitch::ConfigOptionElseSetModel,
        missing_file_reads_empty: false,
        // ACP's own examples and Zed call the asking mode `default`.
        asking_modes: &["default"],
    };

    const TABLE: &'static [(&'static [&'static str], Quirks)] = &[
        (
            &["qwen", "qwen-code", "@qwen-code/qwen-code"],
            Quirks {
                agent: KnownAgent::Qwen,
                // A qwen extension asked mid-turn; `-32601` is the expected answer.
                quiet_unknown_methods: &["craft/drainMidTurnQueue"],
                // `qwen serve` itself switches with `session/set_model`.
                model_switch: ModelSwitch::SetModel,
                // Its package default is `auto`: it writes without asking.
                // Modes: plan, default, auto-edit, yolo.
                asking_modes: &["default"],
                ..Quirks::GENERIC
            },
        ),
        (
            &["gemini", "@google/gemini-cli"],
            Quirks {
                agent: KnownAgent::Gemini,
                missing_file_reads_empty: true,
                // Modes (0.61): default, autoEdit, yolo, plan.
                asking_modes: &["default"],
                ..Quirks::GENERIC
            },
        ),
        (
            &["claude-code-acp", "@zed-industries/claude-code-acp"],
            Quirks {
                agent: KnownAgent::ClaudeCodeAcp,
                // Modes: default, acceptEdits, plan, bypassPermissions.
                asking_modes: &["default"],
                ..Quirks::GENERIC
            },
        ),
        (
            &["codex-acp", "@zed-industries/codex-acp"],
            Quirks {
                agent: KnownAgent::CodexAcp,
                ..Quirks::GENERIC
            },
        ),
    ];

    /// The quirks of the agent `command` runs.
    pub fn for_command(command: &AgentCommand) -> &'static Quirks {
        let name = strip_version(agent_name(command));
        Self::TABLE
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map_or(&Self::GENERIC, |(_, quirks)| quirks)
    }

    /// The mode to set after `session/new`: `wanted` (`--agent-mode`) if
    /// given, else the first asking mode among the `advertised` ones. `None`
    /// when the agent is already in it or advertises no modes (then its
    /// settings decide). `Err` lists the advertised modes when `wanted` is
    /// not one of them.
    pub fn mode_to_set<'a>(
        &self,
        wanted: Option<&'a str>,
        current: Option<&str>,
        advertised: &'a [String],
    ) -> Result<Option<&'a str>, String> {
        if advertised.is_empty() {
            return Ok(None);
        }
        let chosen = match wanted {
            Some(mode) if advertised.iter().any(|m| m == mode) => Some(mode),
            Some(mode) => {
                return Err(format!(
                    "the agent has no mode {mode:?}; it offers {}",
                    advertised.join(", ")
                ))
            }
            None => self.asking_modes.iter().find_map(|asking| {
                advertised
                    .iter()
                    .find(|m| m.as_str() == *asking)
                    .map(String::as_str)
            }),
        };
        Ok(chosen.filter(|mode| Some(*mode) != current))
    }

    /// Whether an unknown agent→client method is expected from this agent
    /// (ACP extension methods, which start with `_`, always are).
    pub fn is_quiet_unknown_method(&self, method: &str) -> bool {
        method.starts_with('_') || self.quiet_unknown_methods.contains(&method)
    }
}

/// The name that identifies the agent: the program's file name, or for a
/// launcher the first argument that is not a flag.
fn agent_name(command: &AgentCommand) -> &str {
    const LAUNCHERS: &[&str] = &["npx", "node", "bunx", "bun", "pnpx", "pnpm", "yarn", "env"];
    let program = command.program_name();
    if !LAUNCHERS.contains(&program) {
        return program;
    }
    match command
        .args()
        .iter()
        .find(|a| !a.starts_with('-') && !a.contains('=') && *a != "dlx" && *a != "exec")
    {
        // A package (`@scope/name@1.2`) stays whole; a script path keeps its file name.
        Some(arg) if arg.starts_with('@') => arg,
        Some(arg) => arg.rsplit('/').next().unwrap_or(arg),
        None => program,
    }
}

/// `@qwen-code/qwen-code@0.24.4` → `@qwen-code/qwen-code`; `qwen@1` → `qwen`.
fn strip_version(name: &str) -> &str {
    let search_from = usize::from(name.starts_with('@'));
    match name[search_from..].find('@') {
        Some(at) => &name[..search_from + at],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quirks(command: &str) -> &'static Quirks {
        Quirks::for_command(&AgentCommand::parse(command).unwrap())
    }

    #[test]
    fn known_agents_by_program_name() {
        assert_eq!(quirks("qwen --acp").agent, KnownAgent::Qwen);
        assert_eq!(quirks("/usr/local/bin/qwen --acp").agent, KnownAgent::Qwen);
        assert_eq!(
            quirks("gemini --experimental-acp").agent,
            KnownAgent::Gemini
        );
        assert_eq!(quirks("claude-code-acp").agent, KnownAgent::ClaudeCodeAcp);
        assert_eq!(quirks("codex-acp").agent, KnownAgent::CodexAcp);
        assert_eq!(quirks("my-agent --stdio"), &Quirks::GENERIC);
    }

    #[test]
    fn launchers_are_looked_through() {
        assert_eq!(
            quirks("npx -y @qwen-code/qwen-code@0.24.4 --acp").agent,
            KnownAgent::Qwen
        );
        assert_eq!(
            quirks("npx @zed-industries/claude-code-acp").agent,
            KnownAgent::ClaudeCodeAcp
        );
        assert_eq!(
            quirks("node /opt/bin/gemini --experimental-acp").agent,
            KnownAgent::Gemini
        );
        assert_eq!(quirks("node").agent, KnownAgent::Other);
    }

    #[test]
    fn qwen_extension_methods_are_expected() {
        let qwen = quirks("qwen --acp");
        assert!(qwen.is_quiet_unknown_method("craft/drainMidTurnQueue"));
        assert!(!qwen.is_quiet_unknown_method("terminal/create"));
        assert!(Quirks::GENERIC.is_quiet_unknown_method("_zed/custom"));
        assert!(!Quirks::GENERIC.is_quiet_unknown_method("craft/drainMidTurnQueue"));
        assert_eq!(qwen.model_switch, ModelSwitch::SetModel);
        assert!(!qwen.missing_file_reads_empty);
        assert!(quirks("gemini --acp").missing_file_reads_empty);
        assert!(!quirks("my-agent").missing_file_reads_empty);
        assert_eq!(
            Quirks::GENERIC.model_switch,
            ModelSwitch::ConfigOptionElseSetModel
        );
    }

    #[test]
    fn the_asking_mode_is_set_unless_current_or_absent_and_an_override_must_exist() {
        let modes: Vec<String> = ["plan", "default", "auto-edit", "yolo"]
            .map(String::from)
            .to_vec();
        let qwen = quirks("qwen --acp");
        assert_eq!(
            qwen.mode_to_set(None, Some("auto-edit"), &modes),
            Ok(Some("default"))
        );
        assert_eq!(qwen.mode_to_set(None, Some("default"), &modes), Ok(None));
        assert_eq!(
            qwen.mode_to_set(Some("yolo"), Some("default"), &modes),
            Ok(Some("yolo"))
        );
        let err = qwen.mode_to_set(Some("auto"), None, &modes).unwrap_err();
        assert!(err.contains("plan, default, auto-edit, yolo"), "{err}");
        // No modes advertised: the agent's settings decide.
        assert_eq!(quirks("my-agent").mode_to_set(None, None, &[]), Ok(None));
        assert_eq!(
            quirks("my-agent").mode_to_set(Some("x"), None, &[]),
            Ok(None)
        );
        let gemini: Vec<String> = ["default", "autoEdit", "yolo", "plan"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            quirks("gemini --acp").mode_to_set(None, Some("yolo"), &gemini),
            Ok(Some("default"))
        );
    }
}
