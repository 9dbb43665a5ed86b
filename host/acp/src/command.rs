//! The agent command line (`--agent "qwen --acp"`), split the way a shell would.

use std::fmt;
use std::path::Path;

/// A program and its arguments, as given by `--agent` / `QSERVE_AGENT`.
///
/// Parsed with shell quoting rules (`'…'`, `"…"`, `\ `) so that
/// `node "/opt/my agent/cli.js" --acp` works; no shell is ever run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    program: String,
    args: Vec<String>,
}

/// Why an agent command line could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error(
        "the agent command is empty: give one such as `qwen --acp` with --agent or QSERVE_AGENT"
    )]
    Empty,
    #[error("cannot parse the agent command `{command}`: {reason} (check its quotes)")]
    Unparseable { command: String, reason: String },
}

impl AgentCommand {
    /// Splits `command` like a POSIX shell (quotes and backslashes; no
    /// expansion of variables or globs).
    pub fn parse(command: &str) -> Result<Self, CommandError> {
        let mut words = shell_words::split(command).map_err(|e| CommandError::Unparseable {
            command: command.to_owned(),
            reason: e.to_string(),
        })?;
        if words.is_empty() || words[0].is_empty() {
            return Err(CommandError::Empty);
        }
        let program = words.remove(0);
        Ok(Self {
            program,
            args: words,
        })
    }

    /// Builds a command from already separated parts (no parsing).
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The same command with a relative program path (`./agent`,
    /// `bin/agent`) made absolute against `dir` — the daemon's working
    /// directory at start-up. Agents start in the client's workspace, so a
    /// relative path left as it is would name a file the client chose. A
    /// bare name (`qwen`) stays a `PATH` lookup.
    pub fn anchored_at(mut self, dir: &Path) -> Self {
        let program = Path::new(&self.program);
        if self.program.contains('/') && program.is_relative() {
            self.program = dir.join(program).to_string_lossy().into_owned();
        }
        self
    }

    /// The program as given (a bare name is looked up on `PATH`).
    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The program's file name without directories (`/usr/bin/qwen` → `qwen`):
    /// the key for per-agent quirks.
    pub fn program_name(&self) -> &str {
        Path::new(&self.program)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.program)
    }
}

impl fmt::Display for AgentCommand {
    /// Quoted so that the output parses back into the same command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = std::iter::once(&self.program).chain(self.args.iter());
        f.write_str(&shell_words::join(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_program_and_arguments() {
        let cmd = AgentCommand::parse("qwen --acp").unwrap();
        assert_eq!(cmd.program(), "qwen");
        assert_eq!(cmd.args(), ["--acp"]);
    }

    #[test]
    fn honours_quotes_and_escapes() {
        let cmd = AgentCommand::parse(r#"node "/opt/my agent/cli.js" --name 'a b' c\ d"#).unwrap();
        assert_eq!(cmd.program(), "node");
        assert_eq!(cmd.args(), ["/opt/my agent/cli.js", "--name", "a b", "c d"]);
    }

    #[test]
    fn empty_or_blank_is_an_error() {
        assert_eq!(AgentCommand::parse(""), Err(CommandError::Empty));
        assert_eq!(AgentCommand::parse("   \t "), Err(CommandError::Empty));
        assert_eq!(AgentCommand::parse("''"), Err(CommandError::Empty));
    }

    #[test]
    fn unbalanced_quote_is_an_error_naming_the_command() {
        let err = AgentCommand::parse("qwen \"--acp").unwrap_err();
        assert!(matches!(err, CommandError::Unparseable { .. }));
        assert!(err.to_string().contains("qwen \"--acp"), "{err}");
    }

    #[test]
    fn program_name_drops_directories() {
        let cmd = AgentCommand::parse("/usr/local/bin/claude-code-acp").unwrap();
        assert_eq!(cmd.program_name(), "claude-code-acp");
    }

    #[test]
    fn a_relative_program_is_anchored_and_a_bare_name_is_left_for_path() {
        let dir = Path::new("/srv/daemon");
        let relative = AgentCommand::parse("./bin/agent --acp").unwrap();
        let anchored = relative.anchored_at(dir);
        assert_eq!(anchored.program(), "/srv/daemon/./bin/agent");
        assert_eq!(anchored.args(), ["--acp"]);
        let bare = AgentCommand::parse("qwen --acp").unwrap().anchored_at(dir);
        assert_eq!(bare.program(), "qwen");
        let absolute = AgentCommand::parse("/usr/bin/qwen")
            .unwrap()
            .anchored_at(dir);
        assert_eq!(absolute.program(), "/usr/bin/qwen");
    }

    #[test]
    fn display_round_trips() {
        let cmd = AgentCommand::parse(r#"node "/opt/my agent/cli.js" --acp"#).unwrap();
        assert_eq!(AgentCommand::parse(&cmd.to_string()).unwrap(), cmd);
    }
}
