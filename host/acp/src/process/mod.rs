//! Spawning and stopping one agent child: its own process group, a scrubbed
//! environment, stderr into the log, and no survivor of its group.
//!
//! `qwen --acp` is a chain of three node processes; signalling only the
//! direct child leaves the other two running. So every child leads its own
//! process group and every signal goes to the whole group. When the direct
//! child exits, whatever is left of its group is killed too: an agent's
//! helpers are useless without it.

mod stderr;

pub use stderr::{StderrTail, STDERR_LINE_CAP, STDERR_TARGET};

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use crate::command::AgentCommand;

/// How the agent's direct child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

impl ExitInfo {
    fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(name) => write!(f, "killed by signal {sig} ({name})"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            (None, None) => f.write_str("exit status unknown"),
        }
    }
}

/// Why an agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program does not exist; the message says how to install or pick an agent.
    #[error("{message}")]
    NotFound { program: String, message: String },
    #[error("the agent program `{program}` is not executable (permission denied)")]
    NotExecutable { program: String },
    #[error("cannot start the agent in workspace {}: {reason}", cwd.display())]
    BadWorkspace { cwd: PathBuf, reason: String },
    #[error("cannot start the agent `{program}`: {source}")]
    Io {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// A running agent child (leader of its own process group).
///
/// Dropping it kills the whole group with SIGKILL unless it has already
/// exited; call [`terminate`](Self::terminate) for a graceful stop first.
#[derive(Debug)]
pub struct AgentProcess {
    pid: u32,
    cwd: PathBuf,
    exit: ExitWatch,
    /// The last lines of its stderr, for error messages.
    stderr_tail: std::sync::Arc<StderrTail>,
}

/// A cloneable handle that learns when the agent's direct child exits, for
/// tasks that do not own the [`AgentProcess`].
#[derive(Debug, Clone)]
pub struct ExitWatch {
    rx: watch::Receiver<Option<ExitInfo>>,
}

impl ExitWatch {
    /// Waits until the direct child has exited (at once if it already has).
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.rx.clone();
        let result = rx.wait_for(Option::is_some).await.map(|v| *v);
        match result {
            Ok(Some(info)) => info,
            // The watcher task is gone without a verdict: only when the
            // runtime shuts down, and then the child is killed on drop.
            _ => ExitInfo::default(),
        }
    }

    /// The exit, if it has happened.
    pub fn get(&self) -> Option<ExitInfo> {
        *self.rx.borrow()
    }
}

impl AgentProcess {
    /// Starts `command` in `cwd` with stdin/stdout piped for JSON-RPC and
    /// stderr forwarded to `tracing` (target [`STDERR_TARGET`]).
    ///
    /// Environment variables named in `scrub_env` are removed (the daemon's
    /// token must never reach the agent); the rest is inherited. Must be
    /// called inside a tokio runtime.
    pub fn spawn(
        command: &AgentCommand,
        cwd: &Path,
        scrub_env: &[&str],
    ) -> Result<(AgentProcess, ChildStdin, ChildStdout), SpawnError> {
        // Checked first: a missing cwd also fails with ENOENT, which would
        // otherwise be reported as a missing program.
        match std::fs::metadata(cwd) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(SpawnError::BadWorkspace {
                    cwd: cwd.to_owned(),
                    reason: "not a directory".into(),
                })
            }
            Err(e) => {
                return Err(SpawnError::BadWorkspace {
                    cwd: cwd.to_owned(),
                    reason: e.to_string(),
                })
            }
        }

        let mut cmd = Command::new(command.program());
        cmd.args(command.args())
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in scrub_env {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().map_err(|e| spawn_error(command, e))?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tracing::info!(pid, cwd = %cwd.display(), command = %command, "agent started");

        let log_cwd = cwd.to_owned();
        let stderr_tail = std::sync::Arc::new(StderrTail::default());
        let tail = stderr_tail.clone();
        tokio::spawn(async move { stderr::forward_stderr(stderr, pid, &log_cwd, &tail).await });

        let (tx, rx) = watch::channel(None);
        let log_cwd = cwd.to_owned();
        tokio::spawn(async move {
            let info = match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(e) => {
                    tracing::warn!(pid, "waiting for the agent failed: {e}");
                    ExitInfo::default()
                }
            };
            // The group outlives its leader only as orphans: stop them now.
            signal_group(pid, Signal::SIGKILL);
            tracing::info!(pid, cwd = %log_cwd.display(), "agent exited: {info}");
            tx.send_replace(Some(info));
        });

        let process = AgentProcess {
            pid,
            cwd: cwd.to_owned(),
            exit: ExitWatch { rx },
            stderr_tail,
        };
        Ok((process, stdin, stdout))
    }

    /// The last (at most 10) lines the agent wrote on stderr, once its stderr
    /// closed or `wait` passed.
    pub async fn stderr_tail(&self, wait: Duration) -> Vec<String> {
        self.stderr_tail.lines(wait).await
    }

    /// The direct child's pid (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The workspace the agent runs in.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Waits for the direct child to exit. Many tasks may wait at once.
    pub async fn wait(&self) -> ExitInfo {
        self.exit.wait().await
    }

    /// The exit, if it has happened.
    pub fn try_wait(&self) -> Option<ExitInfo> {
        self.exit.get()
    }

    /// A handle to wait for the exit without holding the process.
    pub fn exit_watch(&self) -> ExitWatch {
        self.exit.clone()
    }

    /// Graceful stop: SIGTERM to the whole group, then SIGKILL to the whole
    /// group once the leader exits or `grace` passes, whichever is first.
    /// Returns how the leader ended. (Closing the agent's stdin first gives
    /// it a chance to exit by itself.)
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        if let Some(info) = self.try_wait() {
            return info;
        }
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.wait()).await.is_err() {
            tracing::warn!(
                pid = self.pid,
                "agent ignored SIGTERM for {grace:?}; killing its process group"
            );
            self.signal(Signal::SIGKILL);
        }
        self.wait().await
    }

    /// SIGKILL to the whole group now. Does not wait; see [`wait`](Self::wait).
    pub fn kill_group(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn signal(&self, signal: Signal) {
        // Once the leader is reaped its group has been killed already, and
        // its pid may be reused: never signal it again.
        if self.try_wait().is_none() {
            signal_group(self.pid, signal);
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(
            pgid,
            "cannot send {signal} to the agent's process group: {e}"
        ),
    }
}

fn spawn_error(command: &AgentCommand, e: io::Error) -> SpawnError {
    let program = command.program().to_owned();
    match e.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound {
            message: not_found_message(command),
            program,
        },
        io::ErrorKind::PermissionDenied => SpawnError::NotExecutable { program },
        _ => SpawnError::Io { program, source: e },
    }
}

fn not_found_message(command: &AgentCommand) -> String {
    let program = command.program();
    let where_ = if program.contains('/') {
        "does not exist".to_owned()
    } else {
        "was not found on PATH".to_owned()
    };
    format!(
        "the agent program `{program}` {where_} (agent command: `{command}`). \
         Install an ACP agent, e.g. `npm i -g @qwen-code/qwen-code` (then `qwen --acp`), \
         `npm i -g @google/gemini-cli` (`gemini --experimental-acp`), \
         `npm i -g @zed-industries/claude-code-acp` (`claude-code-acp`) or \
         `npm i -g @zed-industries/codex-acp` (`codex-acp`), \
         and choose it with `--agent \"COMMAND ARGS\"` or the QSERVE_AGENT environment variable."
    )
}

#[cfg(test)]
mod tests;
