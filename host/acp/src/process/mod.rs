//! Spawning and stopping one agent child: its own process group, a scrubbed
//! environment, stderr into the log, and no survivor of its group.
//!
//! `qwen --acp` is a chain of three node processes; signalling only the
//! direct child leaves the other two running. So every child leads its own
//! process group and every signal goes to the whole group. When the direct
//! child exits, whatever is left of its group is killed too: an agent's
//! helpers are useless without it.
//!
//! Nothing survives the daemon either, however it dies: each agent runs
//! under a [`guard`] (a subreaper that kills the agent's whole tree when the
//! daemon or the agent goes), and without one the agent itself gets
//! `PR_SET_PDEATHSIG(SIGKILL)`.

pub mod guard;
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
    /// The child is a [`guard`]: a kill is asked of it, not sent to the group.
    guarded: bool,
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

        let program = resolve_program(command)?;
        let guard = guard::guard_program();
        let mut cmd = match guard {
            Some(guard) => guard::guard_command(guard, &program, command.args()),
            None => {
                let mut cmd = Command::new(&program);
                cmd.args(command.args());
                cmd
            }
        };
        // With a guard, its parent-death signal is a wake-up it acts on;
        // without, the agent itself dies with the daemon.
        let death_signal = if guard.is_some() {
            guard::PARENT_DIED
        } else {
            Signal::SIGKILL
        };
        let daemon = nix::unistd::getpid();
        // SAFETY: only async-signal-safe calls (prctl, getppid) and no
        // allocation in the forked child. The re-check closes the race of
        // a daemon that died before the prctl.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(death_signal)?;
                if nix::unistd::getppid() != daemon {
                    return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd.current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Not for a guard: SIGKILL would stop it before it kills the
            // agent's tree. Our Drop asks it instead.
            .kill_on_drop(guard.is_none());
        for name in scrub_env {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().map_err(|e| spawn_error(command, e))?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tracing::info!(pid, cwd = %cwd.display(), command = %command, guarded = guard.is_some(), "agent started");

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
            guarded: guard.is_some(),
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

    /// Resident memory of the agent's whole tree (its guard, the agent and
    /// every descendant), from /proc, in bytes. Processes that end while
    /// it is read count as nothing.
    pub fn tree_rss_bytes(&self) -> u64 {
        if self.try_wait().is_some() {
            return 0;
        }
        let Ok(root) = i32::try_from(self.pid) else {
            return 0;
        };
        let table = proc_table();
        let mut tree = vec![root];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                table
                    .iter()
                    .filter(|(_, ppid)| *ppid == parent)
                    .map(|(pid, _)| *pid),
            );
            i += 1;
        }
        // SAFETY: sysconf has no preconditions.
        let page =
            u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) }).unwrap_or(4096);
        tree.iter()
            .filter_map(|pid| {
                let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
                statm.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map(|pages| pages * page)
            .sum()
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
            self.kill_group();
            if tokio::time::timeout(GUARD_KILL_BOUND, self.wait())
                .await
                .is_err()
            {
                self.signal(Signal::SIGKILL);
            }
        }
        self.wait().await
    }

    /// Kill the agent and everything it started, now: its guard kills the
    /// whole tree (whatever group a process moved to), or SIGKILL goes to
    /// the whole group. Does not wait; see [`wait`](Self::wait).
    pub fn kill_group(&self) {
        if self.guarded {
            if self.try_wait().is_none() {
                if let Ok(raw) = i32::try_from(self.pid) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(raw), guard::KILL_ALL);
                }
            }
        } else {
            self.signal(Signal::SIGKILL);
        }
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
        self.kill_group();
    }
}

/// How long a guard gets to kill its agent's tree before its group is SIGKILLed.
const GUARD_KILL_BOUND: Duration = Duration::from_secs(5);

/// The program as an absolute path: a bare name looked up on the daemon's
/// `PATH` now (an agent must not be looked up relative to the client's
/// workspace), a path with a `/` taken as it is (made absolute at start-up,
/// see [`AgentCommand::anchored_at`]). Missing or non-executable programs
/// are refused here, with the message the user needs.
fn resolve_program(command: &AgentCommand) -> Result<PathBuf, SpawnError> {
    use nix::unistd::{access, AccessFlags};
    let program = command.program();
    let executable = |path: &Path| path.is_file() && access(path, AccessFlags::X_OK).is_ok();
    let not_found = || SpawnError::NotFound {
        program: program.to_owned(),
        message: not_found_message(command),
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        if !path.exists() {
            return Err(not_found());
        }
        if !executable(&path) {
            return Err(SpawnError::NotExecutable {
                program: program.to_owned(),
            });
        }
        return Ok(path);
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    let mut found_unexecutable = false;
    for dir in std::env::split_paths(&search) {
        // An empty PATH entry means the current directory: never the workspace.
        if dir.as_os_str().is_empty() || !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join(program);
        if executable(&candidate) {
            return Ok(candidate);
        }
        found_unexecutable |= candidate.is_file();
    }
    if found_unexecutable {
        Err(SpawnError::NotExecutable {
            program: program.to_owned(),
        })
    } else {
        Err(not_found())
    }
}

/// `(pid, ppid)` of every process, from /proc.
fn proc_table() -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) S ppid …": comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect()
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
