//! Starting, measuring and stopping the two daemons. Each start gets a fresh HOME (unless a
//! warm restart reuses one), a clean environment, 127.0.0.1 and a port the kernel picks; a
//! daemon and every process below it are gone when its handle is stopped or dropped, on the
//! error and panic paths too.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http;
use crate::procfs;

/// Which daemon, and the few places where their wire behaviour differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    Qserve,
    QwenServe,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Qserve => "qserve-host",
            Flavor::QwenServe => "qwen serve",
        }
    }

    /// The events URL. qwen serve's default per-subscriber queue (256) drops a subscriber
    /// that reads as fast as loopback allows within a few hundred events of a burst, so its
    /// throughput can only be measured with a deeper queue; ours runs at its defaults.
    pub fn events_path(self, session_id: &str) -> String {
        match self {
            Flavor::Qserve => format!("/session/{session_id}/events"),
            Flavor::QwenServe => format!("/session/{session_id}/events?maxQueued=2048"),
        }
    }

    /// qwen serve answers a prompt 202 at once and ends the turn with a `turn_complete`
    /// event; ours answers 200 `{stopReason}` when the turn ends.
    pub fn turn_ends_on_stream(self) -> bool {
        self == Flavor::QwenServe
    }

    pub fn prompt_status(self) -> u16 {
        match self {
            Flavor::Qserve => 200,
            Flavor::QwenServe => 202,
        }
    }
}

/// What both daemons share: the binaries, the one workspace, the agent launcher.
pub struct Setup {
    pub qserve_host: PathBuf,
    pub qwen: PathBuf,
    pub fake_agent: PathBuf,
    /// Both daemons serve this directory: qwen serve accepts no other cwd.
    pub workspace: PathBuf,
    /// The `QWEN_CLI_ENTRY` script: qwen serve runs `node [flags] ENTRY --acp`.
    pub launcher: PathBuf,
    /// `--max-sessions` for both: the run keeps every session it opens (see
    /// `workload::sessions`), so the cap must fit them; qwen serve's default is 32.
    pub max_sessions: usize,
}

impl Setup {
    /// Creates the workspace and writes the launcher under `scratch`.
    pub fn create(
        scratch: &Path,
        qserve_host: PathBuf,
        qwen: PathBuf,
        fake_agent: PathBuf,
        sessions_per_daemon: usize,
    ) -> Result<Setup> {
        let workspace = scratch.join("workspace");
        std::fs::create_dir_all(&workspace)?;
        let launcher = scratch.join("fake-agent-launcher.cjs");
        std::fs::write(&launcher, launcher_script(&fake_agent))?;
        Ok(Setup {
            qserve_host,
            qwen,
            fake_agent,
            workspace,
            launcher,
            max_sessions: sessions_per_daemon.max(32),
        })
    }

    /// Command-line fragments that mark an agent process (the launcher and the agent), so
    /// that a daemon's memory and CPU figures leave its agents out.
    fn agent_markers(&self) -> Vec<String> {
        vec![
            self.fake_agent.display().to_string(),
            self.launcher.display().to_string(),
        ]
    }
}

/// A Node script that runs the fake agent with stdio inherited (no relaying: the daemon
/// talks to the very same Rust agent as ours does) and passes signals and the exit on.
fn launcher_script(fake_agent: &Path) -> String {
    let agent = format!("{:?}", fake_agent.display().to_string());
    format!(
        r#"// Written by qserve-bench: qwen serve's QWEN_CLI_ENTRY, standing in for `qwen --acp`.
const {{ spawn }} = require("child_process");
const child = spawn({agent}, process.argv.slice(2), {{ stdio: "inherit" }});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
for (const name of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(name, () => child.kill(name));
"#
    )
}

/// How long a start took, measured from spawn.
#[derive(Clone, Copy, Debug)]
pub struct Startup {
    /// Until the `listening on http://…` line.
    pub to_listening: Duration,
    /// Until the first 200 from `GET /health`.
    pub to_health: Duration,
}

/// A running daemon.
pub struct Daemon {
    pub flavor: Flavor,
    pub addr: SocketAddr,
    pub startup: Startup,
    child: Child,
    log_path: PathBuf,
    agent_markers: Vec<String>,
    stopped: bool,
}

impl Daemon {
    /// Starts `flavor` with `home` as HOME and waits until `/health` answers 200.
    pub async fn start(setup: &Setup, flavor: Flavor, home: &Path) -> Result<Daemon> {
        std::fs::create_dir_all(home)?;
        let log_path = home.join(format!("{}.log", flavor.name().replace(' ', "-")));
        let log = File::create(&log_path)?;
        let max_sessions = setup.max_sessions.to_string();
        let (program, args): (&Path, Vec<&std::ffi::OsStr>) = match flavor {
            Flavor::Qserve => (
                &setup.qserve_host,
                vec![
                    "--hostname".as_ref(),
                    "127.0.0.1".as_ref(),
                    "--port".as_ref(),
                    "0".as_ref(),
                    "--session-scope".as_ref(),
                    "thread".as_ref(),
                    "--max-sessions".as_ref(),
                    max_sessions.as_ref(),
                    "--agent".as_ref(),
                    setup.fake_agent.as_os_str(),
                ],
            ),
            Flavor::QwenServe => (
                &setup.qwen,
                vec![
                    "serve".as_ref(),
                    "--hostname".as_ref(),
                    "127.0.0.1".as_ref(),
                    "--port".as_ref(),
                    "0".as_ref(),
                    "--no-web".as_ref(),
                    "--workspace".as_ref(),
                    setup.workspace.as_os_str(),
                    "--max-sessions".as_ref(),
                    max_sessions.as_ref(),
                ],
            ),
        };
        let mut command = Command::new(program);
        // A clean environment: no developer's QSERVE_*/QWEN_* settings, no XDG cache that
        // would make a "fresh HOME" start warm.
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .current_dir(&setup.workspace)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if flavor == Flavor::QwenServe {
            command.env("QWEN_CLI_ENTRY", &setup.launcher);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);

        let spawned = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", flavor.name()))?;
        let mut daemon = Daemon {
            flavor,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            startup: Startup {
                to_listening: Duration::ZERO,
                to_health: Duration::ZERO,
            },
            child,
            log_path,
            agent_markers: setup.agent_markers(),
            stopped: false,
        };
        daemon.addr = daemon
            .wait_for_listening_line(Duration::from_secs(60))
            .await?;
        daemon.startup.to_listening = spawned.elapsed();
        daemon.wait_for_health(Duration::from_secs(30)).await?;
        daemon.startup.to_health = spawned.elapsed();
        Ok(daemon)
    }

    async fn wait_for_listening_line(&mut self, timeout: Duration) -> Result<SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if let Some(addr) = listening_addr(&log) {
                return Ok(addr);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before listening:\n{}",
                    self.flavor.name(),
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} printed no `listening on http://…` within {timeout:?}:\n{}",
                    self.flavor.name(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn wait_for_health(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = http::request(self.addr, "GET", "/health", None).await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} /health gave no 200 within {timeout:?}:\n{}",
                    self.flavor.name(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The daemon's processes: its own tree without the agents (and their launcher).
    fn daemon_processes(&self) -> Vec<procfs::Process> {
        procfs::daemon_part(self.child.id(), &self.agent_markers)
    }

    /// Resident memory of the daemon's processes, MiB.
    pub fn rss_mib(&self) -> f64 {
        let kib: u64 = self
            .daemon_processes()
            .iter()
            .map(|p| procfs::rss_kib(p.pid))
            .sum();
        kib as f64 / 1024.0
    }

    /// CPU time the daemon's processes have used so far.
    pub fn cpu_time(&self) -> Duration {
        procfs::ticks_to_duration(self.daemon_processes().iter().map(|p| p.cpu_ticks).sum())
    }

    /// The last lines the daemon printed, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the daemon (SIGTERM to its group, SIGKILL after 5 s) and then SIGKILLs every
    /// process that was below it, whatever group it moved to.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id();
        let family = procfs::family(pid);
        procfs::signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        procfs::signal_group(pid, libc::SIGKILL);
        let _ = self.child.wait();
        // Members that survived the daemon were re-parented to this process (subreaper);
        // a pid whose parent is neither is no longer one of ours.
        let me = std::process::id();
        for member in family.iter().filter(|p| p.pid != pid) {
            let current = procfs::family(member.pid);
            if let Some(alive) = current.iter().find(|p| p.pid == member.pid) {
                if alive.ppid == member.ppid || alive.ppid == me {
                    procfs::kill_hard(alive);
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `127.0.0.1:PORT` from a `… listening on http://127.0.0.1:PORT …` line.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    let start = log.find("listening on http://")? + "listening on http://".len();
    let rest = &log[start..];
    // The line may still be half written: only an address followed by more text counts.
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_both_daemons_listening_lines() {
        let ours = "INFO policy loaded\nqserve-host listening on http://127.0.0.1:44161 (policy default 0.1.0)\n";
        let theirs =
            "qwen serve listening on http://127.0.0.1:38631 (mode=http-bridge, workspace=/w)\n";
        assert_eq!(listening_addr(ours), "127.0.0.1:44161".parse().ok());
        assert_eq!(listening_addr(theirs), "127.0.0.1:38631".parse().ok());
        assert_eq!(
            listening_addr("qserve-host listening on http://127.0.0.1:4"),
            None
        );
        assert_eq!(listening_addr("starting…"), None);
    }

    #[test]
    fn the_launcher_names_the_agent_as_a_js_string() {
        let script = launcher_script(Path::new("/opt/my \"agent\"/fake-agent"));
        assert!(
            script.contains(r#"spawn("/opt/my \"agent\"/fake-agent""#),
            "{script}"
        );
    }
}
