//! One benchmark run: rounds of qserve-host then qwen serve (A B A B …), every measurement
//! on each, then the table.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::daemon::{Daemon, Flavor, Setup};
use crate::machine::cpu_loop_time;
use crate::options::{Only, Options};
use crate::procfs;
use crate::report::{Layout, Metric, Results};
use crate::stats::{median, millis, min_max, percentile};
use crate::workload::{agent_alone, burst, permission, sessions};

pub async fn run(options: Options) -> Result<()> {
    let wall = Instant::now();
    let scratch = tempfile::Builder::new().prefix("qserve-bench-").tempdir()?;
    let setup = Setup::create(
        scratch.path(),
        options.qserve_host.clone(),
        options.qwen.clone(),
        options.fake_agent.clone(),
        // The sessions of the memory figure, plus one per burst/paced run and one for
        // the permission round trips.
        options.sessions + 5,
    )?;
    let flavors: Vec<Flavor> = match options.only {
        Only::Both => vec![Flavor::Qserve, Flavor::QwenServe],
        Only::Qserve => vec![Flavor::Qserve],
        Only::Qwen => vec![Flavor::QwenServe],
    };

    println!("{}", describe(&options));
    println!("load at start: {}", procfs::load_average());
    let loop_before = cpu_loop_time();
    println!(
        "CPU loop before: {:.0} ms",
        loop_before.as_secs_f64() * 1000.0
    );

    let mut results = Results::default();
    let mut agent_alone_rates = Vec::new();
    let mut loads = Vec::new();
    let mut client_cpu_shares = Vec::new();
    for round in 1..=options.rounds {
        let agent_time = agent_alone::burst_time(
            &setup.fake_agent,
            &setup.workspace,
            options.chunks,
            options.chunk_bytes,
        )?;
        agent_alone_rates.push(options.chunks as f64 / agent_time.as_secs_f64());
        for &flavor in &flavors {
            let load = procfs::load_average();
            println!(
                "round {round}/{}: {} (load {load}) …",
                options.rounds,
                flavor.name()
            );
            loads.push(format!("r{round} {}: {load}", short_name(flavor)));
            let home = scratch
                .path()
                .join(format!("home-{}-{round}", short_name(flavor)));
            // A failed run is reported, not fatal: the other runs' figures still count.
            let outcome = measure(
                &options,
                &setup,
                flavor,
                &home,
                &mut results,
                &mut client_cpu_shares,
            )
            .await;
            if let Err(error) = outcome {
                let message = format!("round {round}, {} failed: {error:#}", flavor.name());
                eprintln!("{message}");
                results.notes.push(message);
            }
        }
    }

    let loop_after = cpu_loop_time();
    let layout = Layout {
        subscribers: options.subscribers,
        sessions: options.sessions,
    };
    println!();
    print!("{}", results.table(&layout));
    println!();
    let (lo, hi) = min_max(&agent_alone_rates);
    println!(
        "fake agent alone (no daemon, pipes): {:.0} events/s [{lo:.0}–{hi:.0}] — the ceiling for 1 subscriber",
        median(&agent_alone_rates)
    );
    println!(
        "CPU loop: before {:.0} ms, after {:.0} ms ({:+.1}%)",
        loop_before.as_secs_f64() * 1000.0,
        loop_after.as_secs_f64() * 1000.0,
        (loop_after.as_secs_f64() / loop_before.as_secs_f64() - 1.0) * 100.0
    );
    let (lo, hi) = min_max(&client_cpu_shares);
    println!(
        "measuring client CPU: {:.1} s in {:.1} s wall; during event runs {:.0}% of one core (median, [{lo:.0}–{hi:.0}%])",
        procfs::own_cpu_time().as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        median(&client_cpu_shares)
    );
    println!("load per run: {}", loads.join("; "));
    println!("load at end: {}", procfs::load_average());
    for note in &results.notes {
        println!("! {note}");
    }
    Ok(())
}

/// Everything measured on one daemon in one round.
async fn measure(
    options: &Options,
    setup: &Setup,
    flavor: Flavor,
    home: &Path,
    results: &mut Results,
    client_cpu_shares: &mut Vec<f64>,
) -> Result<()> {
    let settle = Duration::from_millis(options.settle_ms);
    let daemon = Daemon::start(setup, flavor, home).await?;
    results.record(flavor, Metric::StartupCold, ms(daemon.startup.to_health));
    println!(
        "  start-up: listening after {:.0} ms, /health 200 after {:.0} ms",
        ms(daemon.startup.to_listening),
        ms(daemon.startup.to_health)
    );

    tokio::time::sleep(settle).await;
    let idle = daemon.rss_mib();
    results.record(flavor, Metric::RssIdle, idle);
    println!("  RSS idle {idle:.1} MiB");

    let with_sessions =
        sessions::rss_with_sessions(&daemon, &setup.workspace, options.sessions, settle).await?;
    results.record(flavor, Metric::RssSessions, with_sessions);
    println!(
        "  RSS with {} sessions {with_sessions:.1} MiB",
        options.sessions
    );

    let many = options.subscribers;
    for (paced, subscribers, rate_metric, cpu_metric) in [
        (false, 1, Metric::EventsOne, Metric::DaemonCpuOne),
        (false, many, Metric::EventsMany, Metric::DaemonCpuMany),
        (true, 1, Metric::PacedOne, Metric::PacedCpuOne),
        (true, many, Metric::PacedMany, Metric::PacedCpuMany),
    ] {
        let (what, outcome) = if paced {
            let run = burst::paced(
                &daemon,
                &setup.workspace,
                subscribers,
                options.chunks,
                options.chunk_bytes,
            );
            ("paced", run.await?)
        } else {
            let run = burst::burst(
                &daemon,
                &setup.workspace,
                subscribers,
                options.chunks,
                options.chunk_bytes,
            );
            ("burst", run.await?)
        };
        println!(
            "  {what} to {subscribers}: {}/{} events in {:.0} ms = {:.0} events/s; daemon CPU {:.0} ms, client CPU {:.0} ms",
            outcome.delivered,
            outcome.expected,
            ms(outcome.elapsed),
            outcome.events_per_second(),
            ms(outcome.daemon_cpu),
            ms(outcome.client_cpu)
        );
        results.record(flavor, rate_metric, outcome.events_per_second());
        results.record(flavor, cpu_metric, outcome.daemon_cpu_us_per_update());
        client_cpu_shares.push(
            outcome.client_cpu.as_secs_f64() / outcome.elapsed.as_secs_f64().max(1e-9) * 100.0,
        );
        if let Some(problem) = &outcome.problem {
            results.flag(
                flavor,
                &[rate_metric, cpu_metric],
                format!(
                    "{} {what} to {subscribers} subscriber(s): {}/{} events delivered; {problem} \
                     (the rate counts what was delivered until then)",
                    flavor.name(),
                    outcome.delivered,
                    outcome.expected
                ),
            );
        }
    }

    let samples = permission::round_trips(
        &daemon,
        &setup.workspace,
        options.warmup_round_trips,
        options.round_trips,
    )
    .await?;
    let samples = millis(&samples);
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    results.record(flavor, Metric::PermissionP50, p50);
    results.record(flavor, Metric::PermissionP99, p99);
    println!(
        "  permission round trips: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
        min_max(&samples).1
    );

    let after = daemon.rss_mib();
    results.record(flavor, Metric::RssAfter, after);
    println!("  RSS after the runs {after:.1} MiB");
    daemon.stop();

    // The same HOME again: what a restart costs once caches exist.
    let again = Daemon::start(setup, flavor, home).await?;
    results.record(flavor, Metric::StartupWarm, ms(again.startup.to_health));
    println!(
        "  second start (same HOME): /health 200 after {:.0} ms",
        ms(again.startup.to_health)
    );
    again.stop();
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn short_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Qserve => "qserve",
        Flavor::QwenServe => "qwen",
    }
}

/// The header: what runs against what, and with which settings.
fn describe(options: &Options) -> String {
    let qwen_version = std::fs::canonicalize(&options.qwen)
        .ok()
        .and_then(|cli| std::fs::read_to_string(cli.parent()?.join("package.json")).ok())
        .and_then(|manifest| {
            crate::http::json_string_field(manifest.as_bytes(), "version").map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into());
    let node_version = std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "qserve-bench: qserve-host vs qwen serve {qwen_version} (node {node_version}), same fake agent, {cores} cores\n\
         agent: {}\n\
         {} round(s), each daemon in turn; burst {} chunks × {} B to 1 and {} subscribers; \
         {} permission round trips (+{} warm-up); {} sessions; settle {} ms",
        options.fake_agent.display(),
        options.rounds,
        options.chunks,
        options.chunk_bytes,
        options.subscribers,
        options.round_trips,
        options.warmup_round_trips,
        options.sessions,
        options.settle_ms
    )
}
