//! What the benchmark reads from /proc and the kernel: process trees, resident memory, CPU
//! time, load; and how it makes sure no process it started outlives it.

use std::time::{Duration, Instant};

/// One row of the process table.
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub zombie: bool,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

fn read_process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    // stime …`; comm may hold spaces and parentheses, so split after the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Process {
        pid,
        ppid: number(1)? as u32,
        pgid: number(2)? as u32,
        zombie: fields.first() == Some(&"Z"),
        cpu_ticks: number(11)? + number(12)?,
    })
}

pub fn all_processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_process)
        .collect()
}

/// `root` and every live descendant of it, whatever process group they moved to.
pub fn family(root: u32) -> Vec<Process> {
    let table = all_processes();
    let mut found: Vec<Process> = table
        .iter()
        .filter(|p| p.pid == root && !p.zombie)
        .cloned()
        .collect();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for process in table.iter().filter(|p| p.ppid == parent && !p.zombie) {
            if !found.iter().any(|known| known.pid == process.pid) {
                found.push(process.clone());
                frontier.push(process.pid);
            }
        }
    }
    found
}

/// Whether `pid`'s command line contains any of `markers`.
pub fn command_line_contains(pid: u32, markers: &[String]) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // Arguments are NUL-separated; join them with spaces so a marker may span two.
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    markers.iter().any(|marker| text.contains(marker.as_str()))
}

/// The daemon's part of a family: `root`'s tree minus every subtree whose top process runs
/// an agent (its command line holds one of `agent_markers`).
pub fn daemon_part(root: u32, agent_markers: &[String]) -> Vec<Process> {
    let all = family(root);
    let agent_tops: Vec<u32> = all
        .iter()
        .filter(|p| p.pid != root && command_line_contains(p.pid, agent_markers))
        .map(|p| p.pid)
        .collect();
    let in_agent_subtree = |process: &Process| {
        let mut pid = process.pid;
        loop {
            if agent_tops.contains(&pid) {
                return true;
            }
            if pid == root {
                return false;
            }
            match all.iter().find(|p| p.pid == pid) {
                Some(p) => pid = p.ppid,
                None => return false,
            }
        }
    };
    all.iter()
        .filter(|p| !in_agent_subtree(p))
        .cloned()
        .collect()
}

/// Resident set size of one process, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// CPU time (user + system) this process has used so far.
pub fn own_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we hand it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

/// Makes this process the reaper of its orphaned descendants, so that an agent whose daemon
/// died is re-parented here (and found by [`kill_orphans`]) instead of vanishing under init.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// SIGKILLs `process`: its whole group when it leads one (agents start their own), else
/// itself only — so a signal never reaches a group this benchmark did not create.
pub fn kill_hard(process: &Process) {
    // SAFETY: plain kill(2) on a pid/pgid that descends from this process.
    unsafe {
        if process.pgid == process.pid {
            libc::killpg(process.pid as i32, libc::SIGKILL);
        }
        libc::kill(process.pid as i32, libc::SIGKILL);
    }
}

/// Sends `signal` to the process group led by `pgid` (a daemon this benchmark started).
pub fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) on a group this benchmark created.
    unsafe {
        libc::killpg(pgid as i32, signal);
    }
}

/// Kills every remaining child of this process (re-parented orphans included) and reaps
/// them. Runs last, after every daemon handle is gone, so no `Child::wait` is robbed.
pub fn kill_orphans() -> usize {
    let me = std::process::id();
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children: Vec<Process> = all_processes()
            .into_iter()
            .filter(|p| p.ppid == me)
            .collect();
        for child in children.iter().filter(|p| !p.zombie) {
            for member in family(child.pid) {
                kill_hard(&member);
            }
            killed += 1;
        }
        // SAFETY: reaps whatever children have exited; WNOHANG never blocks.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if children.is_empty() || Instant::now() >= deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read_process(std::process::id()).expect("own /proc entry");
        assert!(!me.zombie);
        assert!(rss_kib(me.pid) > 0);
        assert!(family(me.pid).iter().any(|p| p.pid == me.pid));
        assert_eq!(load_average().split(' ').count(), 3);
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = own_cpu_time();
        let mut x = 1u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(own_cpu_time() > before);
    }

    #[test]
    fn the_daemon_part_leaves_out_agent_subtrees() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & exec sleep 31"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while family(pid).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let everything = family(pid);
        let without = daemon_part(pid, &["sleep 30".to_string()]);
        for process in &everything {
            kill_hard(process);
        }
        child.wait().unwrap();
        assert_eq!(everything.len(), 2, "{everything:?}");
        assert_eq!(without.len(), 1);
        assert_eq!(without[0].pid, pid);
    }
}
