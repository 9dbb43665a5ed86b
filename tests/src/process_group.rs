//! Children of a test run in a process group of their own, so that one signal reaches every
//! process they started (`qwen --acp` is three node processes; qserve-host has agent children),
//! and a test can prove afterwards that nothing is left.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Makes the command the leader of a new process group and kills it if its handle is dropped.
pub fn own_group(command: &mut tokio::process::Command) -> &mut tokio::process::Command {
    command.process_group(0).kill_on_drop(true)
}

/// Sends `signal` to every process of the group led by `pgid`; a group that is already gone
/// is not an error.
pub fn signal_group(pgid: u32, signal: Signal) {
    match killpg(as_pid(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => eprintln!("signal {signal} to process group {pgid}: {error}"),
    }
}

/// Whether any process (zombies included) is still in the group.
pub fn group_is_alive(pgid: u32) -> bool {
    !matches!(killpg(as_pid(pgid), None), Err(Errno::ESRCH))
}

/// SIGKILLs the group, then waits up to `timeout` for its last member to disappear; returns
/// whether the group is gone. Grandchildren are reaped by init, so this can take a moment.
pub fn kill_group_and_wait(pgid: u32, timeout: Duration) -> bool {
    signal_group(pgid, Signal::SIGKILL);
    let deadline = Instant::now() + timeout;
    while group_is_alive(pgid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// One row of the process table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub zombie: bool,
}

/// The current process table, from /proc.
pub fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp …`; comm may contain spaces and parentheses.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgid = fields.next()?.parse().ok()?;
            Some(ProcessInfo {
                pid,
                ppid,
                pgid,
                zombie: state == "Z",
            })
        })
        .collect()
}

/// Every live descendant of `root` (children, grandchildren, …), whatever group they moved to.
pub fn descendants(root: u32) -> Vec<ProcessInfo> {
    let table = all_processes();
    let mut found: Vec<ProcessInfo> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for process in table.iter().filter(|p| p.ppid == parent && !p.zombie) {
            if !found.iter().any(|known| known.pid == process.pid) {
                found.push(*process);
                frontier.push(process.pid);
            }
        }
    }
    found
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// Live processes whose environment has `HOME=home` — a check that does not trust process
/// groups: every process a test spawned with its own throwaway home shows up here, even one
/// that moved itself to another group or session.
pub fn processes_with_home(home: &Path) -> Vec<u32> {
    let wanted = format!("HOME={}", home.display());
    all_processes()
        .into_iter()
        .filter(|process| !process.zombie)
        .map(|process| process.pid)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|environ| {
                    environ
                        .split(|byte| *byte == 0)
                        .any(|var| var == wanted.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

fn as_pid(pgid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pgid).expect("pids fit in i32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn killing_the_group_takes_the_grandchildren_too() {
        let home = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .env("HOME", home.path());
        let mut child = own_group(&mut command).spawn().unwrap();
        let pgid = child.id().unwrap();
        // Give sh a moment to start its two sleeps.
        let deadline = Instant::now() + Duration::from_secs(5);
        while processes_with_home(home.path()).len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(processes_with_home(home.path()).len(), 3);
        let family = descendants(pgid);
        assert_eq!(family.len(), 2, "two sleeps under sh: {family:?}");
        assert!(family.iter().all(|p| p.pgid == pgid && is_running(p.pid)));

        signal_group(pgid, Signal::SIGKILL);
        child.wait().await.unwrap();
        assert!(kill_group_and_wait(pgid, Duration::from_secs(5)));
        assert!(processes_with_home(home.path()).is_empty());
        assert!(family.iter().all(|p| !is_running(p.pid)));
    }
}
