//! qserve-soak: a long run of mixed load against a release qserve-host and the fake agent —
//! sessions created and closed, streams cut off and resumed with `Last-Event-ID`,
//! permission storms answered by votes and by the policy, agents that misbehave and crash,
//! policy hot swaps — while the daemon's RSS, open fds and agents are sampled. It checks
//! every event id it is sent (no gap, no repeat) and exits non-zero when one was lost or
//! repeated, a request failed unexpectedly, or the daemon held more fds once idle again
//! than before the load. Not part of CI: `scripts/soak.sh` builds and runs it.

// The benchmark's hand-written HTTP client and /proc readers, shared with `qserve-bench`.
#[path = "../chunked.rs"]
mod chunked;
#[path = "../http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../procfs.rs"]
#[allow(dead_code)]
mod procfs;
#[path = "../sse_frames.rs"]
mod sse_frames;

mod api;
mod daemon;
mod frames;
mod options;
mod report;
mod run;
mod stats;
mod watch;
mod workers;

use std::process::ExitCode;

/// xorshift64*: enough randomness to vary reconnect points, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn main() -> ExitCode {
    let options = match options::Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("qserve-soak: {error:#}");
            return ExitCode::from(2);
        }
    };
    procfs::become_subreaper();
    let outcome = std::panic::catch_unwind(|| run::run_until_signal(options));
    let leftovers = procfs::kill_orphans();
    if leftovers > 0 {
        eprintln!("qserve-soak: killed {leftovers} leftover process(es)");
    }
    match outcome {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(error)) => {
            eprintln!("qserve-soak: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}
