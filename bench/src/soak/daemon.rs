//! The daemon under soak: started in a process group of its own on 127.0.0.1 and a port the
//! kernel picks, with a clean environment; stopped (and its group killed) on every path.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::procfs;

pub const ADMIN_TOKEN: &str = "soak-admin-token-0123456789";

pub struct Daemon {
    pub addr: SocketAddr,
    child: Child,
    pub log_path: PathBuf,
    stopped: bool,
}

impl Daemon {
    pub async fn start(qserve_host: &Path, fake_agent: &Path, scratch: &Path) -> Result<Daemon> {
        let home = scratch.join("home");
        std::fs::create_dir_all(&home)?;
        let log_path = scratch.join("qserve-host.log");
        let log = File::create(&log_path)?;
        let mut command = Command::new(qserve_host);
        command
            .args(["--hostname", "127.0.0.1", "--port", "0"])
            .args(["--session-scope", "thread", "--max-sessions", "0"])
            // A hung turn is cut off 2 s after its cancel instead of 10.
            .args(["--cancel-grace", "2s"])
            .arg("--agent")
            .arg(fake_agent)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("QSERVE_ADMIN_TOKEN", ADMIN_TOKEN)
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("starting qserve-host")?;
        let mut daemon = Daemon {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log_path,
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&daemon.log_path).unwrap_or_default();
            if let Some(addr) = listening_addr(&log) {
                daemon.addr = addr;
                return Ok(daemon);
            }
            if let Some(status) = daemon.child.try_wait()? {
                bail!("qserve-host exited with {status}:\n{}", daemon.log_tail());
            }
            if Instant::now() >= deadline {
                bail!(
                    "qserve-host did not listen within 60 s:\n{}",
                    daemon.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the daemon is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, SIGKILL to the group after 10 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id();
        procfs::signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
        procfs::signal_group(pid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listening_addr(log: &str) -> Option<SocketAddr> {
    let start = log.find("listening on http://")? + "listening on http://".len();
    let rest = &log[start..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))?;
    rest[..end].parse().ok()
}

/// The daemon's open file descriptors.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as u64)
        .unwrap_or(0)
}

/// Running fake agents below the daemon (by `comm`: the guard that runs each one is the
/// daemon's own binary, and its command line names the agent too).
pub fn agents(pid: u32) -> u64 {
    procfs::family(pid)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                .is_ok_and(|comm| comm.trim() == "fake-agent")
        })
        .count() as u64
}
