//! The table printed while the soak runs and the summary at its end.

use std::time::Duration;

use crate::stats::Stats;

/// One sample of the daemon under load.
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: u64,
    pub agents: u64,
    /// Live sessions (`/health?deep=1`).
    pub sessions: u64,
    /// Event ids checked so far.
    pub events: u64,
}

/// The daemon with no session and no agent.
pub struct Idle {
    pub rss_kib: u64,
    pub fds: u64,
    pub agents: u64,
    pub sessions: u64,
}

pub fn print_header() {
    println!(
        "{:>7} {:>9} {:>5} {:>7} {:>9} {:>10}",
        "t (s)", "RSS MiB", "fds", "agents", "sessions", "events"
    );
}

pub fn print_row(sample: &Sample) {
    println!(
        "{:>7.0} {:>9.1} {:>5} {:>7} {:>9} {:>10}",
        sample.at.as_secs_f64(),
        mib(sample.rss_kib),
        sample.fds,
        sample.agents,
        sample.sessions,
        sample.events
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Least-squares slope of RSS over time, MiB per hour, over the samples after the first
/// fifth of the run (the allocator's start-up growth is not a leak).
fn rss_slope(samples: &[Sample]) -> Option<f64> {
    let tail = &samples[samples.len() / 5..];
    if tail.len() < 3 {
        return None;
    }
    let n = tail.len() as f64;
    let xs: Vec<f64> = tail.iter().map(|s| s.at.as_secs_f64() / 3600.0).collect();
    let ys: Vec<f64> = tail.iter().map(|s| mib(s.rss_kib)).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = ys.iter().sum::<f64>() / n;
    let covariance: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

/// Prints the summary; whether every check passed.
pub fn summary(
    samples: &[Sample],
    stats: &Stats,
    before: &Idle,
    after: Option<&Idle>,
    elapsed: Duration,
) -> bool {
    let get = Stats::get;
    println!(
        "\nsoak: summary after {:.1} min",
        elapsed.as_secs_f64() / 60.0
    );
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let fd_min = samples.iter().map(|s| s.fds).min().unwrap_or(0);
        let fd_max = samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let agents_max = samples.iter().map(|s| s.agents).max().unwrap_or(0);
        println!(
            "  RSS under load: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB, slope {} ({} samples)",
            mib(first.rss_kib),
            mib(last.rss_kib),
            mib(max),
            rss_slope(samples).map_or("n/a".into(), |s| format!("{s:+.1} MiB/h")),
            samples.len()
        );
        println!("  fds under load: min {fd_min}, max {fd_max}; agents max {agents_max}");
    }
    println!(
        "  idle before: RSS {:.1} MiB, {} fds, {} agents",
        mib(before.rss_kib),
        before.fds,
        before.agents
    );
    let mut passed = true;
    match after {
        Some(after) => {
            println!(
                "  idle after:  RSS {:.1} MiB, {} fds, {} agents, {} sessions",
                mib(after.rss_kib),
                after.fds,
                after.agents,
                after.sessions
            );
            if after.fds > before.fds {
                println!(
                    "  FAIL: the idle daemon holds {} more fds than before",
                    after.fds - before.fds
                );
                passed = false;
            }
            if after.agents > 0 || after.sessions > 0 {
                println!("  FAIL: agents or sessions left once every session was closed");
                passed = false;
            }
        }
        None => passed = false,
    }
    println!(
        "  events checked {}, lost {}, duplicated {}, reconnects {}, evictions {}",
        get(&stats.events_checked),
        get(&stats.lost),
        get(&stats.duplicated),
        get(&stats.reconnects),
        get(&stats.evictions)
    );
    println!(
        "  sessions created {}, closed {}; prompts {}, turns checked {}",
        get(&stats.sessions_created),
        get(&stats.sessions_closed),
        get(&stats.prompts),
        get(&stats.turns_checked)
    );
    println!(
        "  permissions: won votes {}, late votes {}, decided by the policy {}; policy swaps {}; policy faults (failed closed) {}",
        get(&stats.votes_won),
        get(&stats.votes_late),
        get(&stats.decided_by_policy),
        get(&stats.policy_swaps),
        get(&stats.policy_faults)
    );
    println!(
        "  hostile agents crashed and restarted {}, hung turns cut off {}",
        get(&stats.agent_crashes),
        get(&stats.hung_turns_cut)
    );
    println!(
        "  well-behaved sessions whose agent died under them (agent_died / session_ended) {}",
        get(&stats.agents_died_under_sessions)
    );
    println!("  errors {}", get(&stats.errors));
    for error in stats.first_errors() {
        println!("    {error}");
    }
    if get(&stats.lost) > 0 || get(&stats.duplicated) > 0 || get(&stats.errors) > 0 {
        passed = false;
    }
    if get(&stats.events_checked) == 0 {
        println!("  FAIL: no event was checked");
        passed = false;
    }
    println!("soak: {}", if passed { "PASS" } else { "FAIL" });
    passed
}
