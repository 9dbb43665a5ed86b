//! The agent guard: a small supervisor process between the daemon and each
//! agent, so that nothing an agent started outlives the daemon, however the
//! daemon dies (SIGKILL and the OOM killer included).
//!
//! Why a process of its own: a SIGKILLed daemon runs no code, and the
//! kernel's parent-death signal (`PR_SET_PDEATHSIG`) reaches only a direct
//! child. An agent's own children (`qwen --acp` is three node processes; an
//! agent may `setsid` a helper away from its process group) would be
//! reparented to init and run on. The guard is the agent's parent and a
//! *child subreaper*: every orphan of the agent's tree is reparented to it,
//! so it can always find and kill the whole tree.
//!
//! What is guaranteed:
//! - the daemon dies (any way): the guard gets its parent-death signal (or
//!   sees its parent pid change within [`POLL`]), SIGKILLs every descendant,
//!   reaps them and exits;
//! - the agent exits: the guard SIGKILLs whatever the agent left behind and
//!   exits with the agent's own status (exit code, or the same signal);
//! - the daemon stops an agent ([`KILL_ALL`]): the same, at once;
//! - the guard itself is SIGKILLed (by hand): the agent dies too (its
//!   parent-death signal is SIGKILL), and so does its process group when the
//!   daemon kills the group; only a descendant that left both the group and
//!   the guard's care could survive that, which needs someone to SIGKILL our
//!   own helper first.
//!
//! The daemon runs the guard by re-executing its own binary
//! (`/proc/self/exe --qserve-agent-guard …`), so there is no second file to
//! install and the guard does not share (or pin) the daemon's memory.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::libc;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{getpid, getppid, Pid};

/// The first argument that turns the daemon binary into a guard.
pub const GUARD_ARG: &str = "--qserve-agent-guard";

/// Sent by the daemon to a guard: kill the agent and everything it started, now.
pub(crate) const KILL_ALL: Signal = Signal::SIGUSR2;

/// The guard's parent-death signal. Only a wake-up: the kernel sends it when
/// the daemon's *thread* that spawned the guard ends, so the guard acts only
/// once its parent pid has changed.
pub(crate) const PARENT_DIED: Signal = Signal::SIGUSR1;

/// How often the guard looks at its parent pid even without a signal.
const POLL: Duration = Duration::from_millis(250);

static GUARD_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Run every agent spawned from now on under a guard, started as `program
/// --qserve-agent-guard …` (the daemon passes `/proc/self/exe`, whose `main`
/// calls [`run_if_requested`] first). Without it agents are direct children
/// with `PR_SET_PDEATHSIG(SIGKILL)`: the agent dies with the daemon, its own
/// children may not. Only the first call counts.
pub fn use_guard(program: impl Into<PathBuf>) {
    let _ = GUARD_PROGRAM.set(program.into());
}

pub(crate) fn guard_program() -> Option<&'static Path> {
    GUARD_PROGRAM.get().map(PathBuf::as_path)
}

/// If this process was started as a guard (`argv[1] == GUARD_ARG`), runs
/// the guard and exits; otherwise returns at once. Call it first in `main`.
pub fn run_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(GUARD_ARG)) {
        return;
    }
    run(args.collect())
}

/// `DAEMON_PID PROGRAM ARGS…`
fn run(args: Vec<OsString>) -> ! {
    let mut args = args.into_iter();
    let daemon: Option<i32> = args.next().and_then(|p| p.to_str()?.parse().ok());
    let (Some(daemon), Some(program)) = (daemon, args.next()) else {
        eprintln!("qserve agent guard: usage: {GUARD_ARG} DAEMON_PID PROGRAM [ARGS…]");
        std::process::exit(2);
    };
    // Orphans of the agent's tree are reparented to us, wherever they moved.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("qserve agent guard: cannot become a child subreaper: {e}");
    }
    // Every signal is taken with sigtimedwait: a SIGTERM for the agent's
    // group (a graceful stop) must not end the guard before the agent.
    let all = SigSet::all();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None);
    if getppid().as_raw() != daemon {
        std::process::exit(1); // the daemon died before we got here
    }

    let guard = getpid().as_raw();
    let mut command = std::process::Command::new(&program);
    command.args(args);
    // SAFETY: only async-signal-safe calls (prctl, getppid, sigprocmask),
    // and no allocation: the error is a raw OS error.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid().as_raw() != guard {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let agent = match command.spawn() {
        Ok(child) => child.id() as i32,
        Err(e) => {
            eprintln!(
                "qserve agent guard: cannot start `{}`: {e}",
                Path::new(&program).display()
            );
            std::process::exit(match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
    };
    // Our copies of the agent's stdin/stdout must not keep its pipes open
    // (EOF and EPIPE must reach the daemon when the agent dies) nor carry a
    // stray byte of ours into the JSON-RPC stream. stderr stays: a line of
    // ours lands in the daemon's log beside the agent's.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto our own standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }

    let mut status = None;
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as libc::c_long,
    };
    loop {
        reap(agent, &mut status);
        if let Some(status) = status {
            kill_descendants(agent, &mut Some(status));
            exit_like(status);
        }
        if getppid().as_raw() != daemon {
            kill_descendants(agent, &mut status);
            std::process::exit(1);
        }
        // SAFETY: a valid signal set and timespec; no siginfo wanted.
        let signal = unsafe { libc::sigtimedwait(all.as_ref(), std::ptr::null_mut(), &timeout) };
        if signal == KILL_ALL as i32 {
            kill_descendants(agent, &mut status);
            exit_like(status.unwrap_or(Signal::SIGKILL as i32));
        }
        // Anything else (SIGCHLD, PARENT_DIED, a TERM meant for the agent,
        // the timeout) is a reason to look again.
    }
}

/// Reaps every child that has ended, keeping the agent's wait status.
/// Returns whether any child is left.
fn reap(agent: i32, status: &mut Option<i32>) -> bool {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid on any child of ours, with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid == agent && status.is_none() {
            *status = Some(raw);
        }
        match pid {
            0 => return true,
            p if p > 0 => continue,
            _ => return std::io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD),
        }
    }
}

/// SIGKILLs every descendant, top down: a killed process's children are
/// reparented to us (the subreaper) and killed on the next round. Ends
/// when we have no child left.
fn kill_descendants(agent: i32, status: &mut Option<i32>) {
    loop {
        for pid in children() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if !reap(agent, status) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Our direct children: `/proc/thread-self/children` (we are one thread),
/// or a scan of `/proc` where the kernel lacks that file.
fn children() -> Vec<i32> {
    if let Ok(text) = std::fs::read_to_string("/proc/thread-self/children") {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let me = getpid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(me)
        })
        .collect()
}

/// Ends the guard the way the agent ended, so the daemon sees the agent's
/// own exit code or signal.
fn exit_like(status: i32) -> ! {
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: plain syscalls on our own process; no core file of ours.
        unsafe {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(1)
}

/// The guard's command line for `program ARGS…`, for the daemon's spawn.
pub(crate) fn guard_command(
    guard: &Path,
    program: &Path,
    args: &[String],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(guard);
    command
        .arg0("qserve-agent-guard")
        .arg(GUARD_ARG)
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args);
    command
}
