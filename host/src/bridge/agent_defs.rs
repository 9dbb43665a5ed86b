//! The agents a daemon serves: `--agent` (named `default`) and any number of
//! `--agent-def NAME="COMMAND ARGS"`. A session picks one by name
//! (`POST /session` `agent`); one child runs per (workspace, agent).

use std::path::Path;

use qserve_acp::{AgentCommand, Quirks};
use qserve_http::BackendError;
use qserve_runtime::AgentInfo;

/// The name of `--agent`'s agent, the one sessions get when they name none.
pub const DEFAULT_AGENT: &str = "default";

/// One agent sessions can choose.
#[derive(Debug, Clone)]
pub struct AgentDef {
    pub name: String,
    pub command: AgentCommand,
    /// What differs about it (from its command's name).
    pub quirks: &'static Quirks,
}

impl AgentDef {
    fn new(name: &str, command: AgentCommand) -> Self {
        AgentDef {
            name: name.to_owned(),
            quirks: Quirks::for_command(&command),
            command,
        }
    }

    /// The agent as policy decisions name it, before a session has a mode.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            name: self.name.clone(),
            command: self.command.program_name().to_owned(),
            mode: None,
        }
    }
}

/// Why an `--agent-def` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentDefError {
    #[error("--agent-def {0:?}: expected NAME=\"COMMAND ARGS\"")]
    NoEquals(String),
    #[error("--agent-def name {0:?}: use letters, digits, `-`, `_` and `.` (at most 64)")]
    BadName(String),
    #[error("--agent-def name {0:?} is taken: `default` is --agent's, and names are unique")]
    Duplicate(String),
    #[error("--agent-def {name}: {error}")]
    Command {
        name: String,
        error: qserve_acp::CommandError,
    },
}

/// Every agent, `default` first.
#[derive(Debug, Clone)]
pub struct AgentDefs {
    defs: Vec<AgentDef>,
}

impl AgentDefs {
    /// Only `--agent`.
    pub fn single(default: AgentCommand) -> Self {
        AgentDefs {
            defs: vec![AgentDef::new(DEFAULT_AGENT, default)],
        }
    }

    /// `--agent` plus the `--agent-def`s (`NAME=COMMAND ARGS`, split like a shell would).
    /// A relative program path in a def is taken from `anchor` (the daemon's
    /// directory), never from the workspace a client chose.
    pub fn new(
        default: AgentCommand,
        defs: &[String],
        anchor: &std::path::Path,
    ) -> Result<Self, AgentDefError> {
        let mut agents = AgentDefs::single(default);
        for def in defs.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
            let (name, command) = def
                .split_once('=')
                .ok_or_else(|| AgentDefError::NoEquals(def.to_owned()))?;
            let name = name.trim();
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(AgentDefError::BadName(name.to_owned()));
            }
            if agents.defs.iter().any(|d| d.name == name) {
                return Err(AgentDefError::Duplicate(name.to_owned()));
            }
            let command = AgentCommand::parse(command)
                .map_err(|error| AgentDefError::Command {
                    name: name.to_owned(),
                    error,
                })?
                .anchored_at(anchor);
            agents.defs.push(AgentDef::new(name, command));
        }
        Ok(agents)
    }

    pub fn default_agent(&self) -> &AgentDef {
        &self.defs[0]
    }

    /// The agent a session asked for (`None`: the default); an unknown name
    /// is a 400 that lists the known ones.
    pub fn get(&self, name: Option<&str>) -> Result<&AgentDef, BackendError> {
        let Some(name) = name else {
            return Ok(self.default_agent());
        };
        self.defs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| BackendError::BadRequest {
                message: format!(
                    "unknown agent {name:?}; this daemon serves: {}",
                    self.names().join(", ")
                ),
                code: Some("unknown_agent"),
            })
    }

    pub fn names(&self) -> Vec<String> {
        self.defs.iter().map(|d| d.name.clone()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AgentDef> {
        self.defs.iter()
    }

    /// Agents whose program cannot be found (not on `PATH`, or a path that is
    /// not an executable file), each with why: said at start-up instead of at
    /// the first `POST /session`.
    pub fn missing_programs(&self) -> Vec<(String, String)> {
        self.defs
            .iter()
            .filter(|d| !program_exists(d.command.program()))
            .map(|d| {
                (
                    d.name.clone(),
                    format!(
                        "`{}` is not an executable file and not found on PATH",
                        d.command.program()
                    ),
                )
            })
            .collect()
    }
}

fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// The key the core keeps a session's workspace under: the workspace itself
/// for the default agent, so single-scope attach and listing work as before;
/// the workspace and the agent's name for the others, so that each
/// (workspace, agent) has its own single-scope session. NUL cannot occur in
/// a path, so no workspace collides with another agent's key.
pub fn core_key(workspace: &str, agent: &str) -> String {
    if agent == DEFAULT_AGENT {
        workspace.to_owned()
    } else {
        format!("{workspace}\0{agent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(list: &[&str]) -> Result<AgentDefs, AgentDefError> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        AgentDefs::new(
            AgentCommand::parse("qwen --acp").unwrap(),
            &list,
            std::path::Path::new("/"),
        )
    }

    #[test]
    fn named_agents_parse_and_unknown_names_list_the_known_ones() {
        let agents = defs(&["gemini=gemini --acp", " claude = claude-code-acp ", ""]).unwrap();
        assert_eq!(agents.names(), ["default", "gemini", "claude"]);
        assert_eq!(agents.get(None).unwrap().name, "default");
        let gemini = agents.get(Some("gemini")).unwrap();
        assert_eq!(gemini.command.args(), ["--acp"]);
        assert!(gemini.quirks.missing_file_reads_empty);
        assert_eq!(gemini.info().name, "gemini");
        let err = agents.get(Some("codex")).unwrap_err().to_string();
        assert!(err.contains("default, gemini, claude"), "{err}");
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(matches!(defs(&["gemini"]), Err(AgentDefError::NoEquals(_))));
        assert!(matches!(defs(&["a b=x"]), Err(AgentDefError::BadName(_))));
        assert!(matches!(
            defs(&["default=x"]),
            Err(AgentDefError::Duplicate(_))
        ));
        assert!(matches!(
            defs(&["a=x", "a=y"]),
            Err(AgentDefError::Duplicate(_))
        ));
        assert!(matches!(defs(&["a="]), Err(AgentDefError::Command { .. })));
    }

    #[test]
    fn the_default_agent_keeps_the_plain_workspace_as_its_key() {
        assert_eq!(core_key("/w", DEFAULT_AGENT), "/w");
        assert_eq!(core_key("/w", "gemini"), "/w\0gemini");
    }

    #[test]
    fn missing_programs_are_named() {
        let agents = defs(&["ok=sh -c true", "gone=/nonexistent/agent --acp"]).unwrap();
        let missing = agents.missing_programs();
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        // `qwen` may or may not be installed here; `sh` is.
        assert!(
            names.contains(&"gone") && !names.contains(&"ok"),
            "{missing:?}"
        );
    }
}
