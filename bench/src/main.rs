//! qserve-bench: runs qserve-host (release) and the real `qwen serve` against the same fake
//! ACP agent, side by side (A B A B …), and prints medians, spread and the targets.
//!
//! The measuring client runs on a single-threaded tokio runtime with a hand-written HTTP/SSE
//! reader that counts frames by substring search: on a 2-core machine it competes with the
//! daemons for CPU, so it reports its own CPU time too. Every process it starts runs in a
//! process group of its own and is killed at the end — on errors, panics and Ctrl-C as well
//! (this process is the subreaper of anything a daemon leaves behind).
//!
//! `scripts/bench.sh` builds everything and runs it; `--help` lists the flags.

mod chunked;
mod client;
mod daemon;
mod http;
mod machine;
mod options;
mod procfs;
mod report;
mod run;
mod sse;
mod sse_frames;
mod stats;
mod workload;

use std::process::ExitCode;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let options = match options::Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("qserve-bench: {error:#}");
            return ExitCode::from(2);
        }
    };
    procfs::become_subreaper();
    let outcome = std::panic::catch_unwind(|| run_until_signal(options));
    // Every daemon handle is dropped by now (its Drop stops it); this catches the rest.
    let leftovers = procfs::kill_orphans();
    if leftovers > 0 {
        eprintln!("qserve-bench: killed {leftovers} leftover process(es)");
    }
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("qserve-bench: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}

/// Runs the benchmark; SIGINT/SIGTERM/SIGHUP drop the run (and so stop its daemons).
fn run_until_signal(options: options::Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::select! {
            result = run::run(options) => result,
            _ = interrupt.recv() => anyhow::bail!("interrupted"),
            _ = terminate.recv() => anyhow::bail!("terminated"),
            _ = hangup.recv() => anyhow::bail!("hung up"),
        }
    })
}
