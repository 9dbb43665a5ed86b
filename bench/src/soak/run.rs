//! The run: start the daemon, warm it up, measure it idle, load it until the deadline while
//! sampling, let it go idle again, compare.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::api::Api;
use crate::daemon::{self, Daemon};
use crate::options::Options;
use crate::procfs;
use crate::report::{self, Idle, Sample};
use crate::stats::Stats;
use crate::workers::{self, Ctx};

/// Runs the soak; SIGINT/SIGTERM/SIGHUP end it (and stop the daemon). `Ok(false)` when a
/// check failed.
pub fn run_until_signal(options: Options) -> Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::select! {
            result = run(options) => result,
            _ = interrupt.recv() => bail!("interrupted"),
            _ = terminate.recv() => bail!("terminated"),
            _ = hangup.recv() => bail!("hung up"),
        }
    })
}

async fn run(options: Options) -> Result<bool> {
    let temp;
    let scratch: PathBuf = match &options.scratch {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("qserve-soak-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let workspace = |name: &str| -> Result<PathBuf> {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.canonicalize()?)
    };
    let workspaces = vec![workspace("ws-a")?, workspace("ws-b")?, workspace("ws-c")?];
    let storm = workspace("ws-storm")?;
    let hostile = workspace("ws-hostile")?;

    let mut daemon = Daemon::start(&options.qserve_host, &options.fake_agent, &scratch).await?;
    let pid = daemon.pid();
    let api = Api {
        addr: daemon.addr,
        admin_token: daemon::ADMIN_TOKEN.to_owned(),
    };
    println!(
        "soak: qserve-host pid {pid} on {} for {:.1} min{} (log {})",
        daemon.addr,
        options.duration.as_secs_f64() / 60.0,
        if options.keep_agents {
            ", --keep-agents"
        } else {
            ""
        },
        daemon.log_path.display()
    );

    // Warm-up: every kind of work once, so that whatever the daemon keeps for good (thread
    // pools, compiled policies, caches) exists before the idle baseline is taken.
    warm_up(&api, &workspaces, &storm, &hostile).await?;
    let before = idle(&api, pid, None).await;
    println!(
        "soak: idle after warm-up: RSS {:.1} MiB, {} fds, {} agents",
        before.rss_kib as f64 / 1024.0,
        before.fds,
        before.agents
    );

    // Anchors: sessions that keep the well-behaved workspaces' agents alive for the run.
    let mut anchors = Vec::new();
    if options.keep_agents {
        for cwd in workspaces.iter().chain([&storm]) {
            anchors.push(api.create(cwd).await?);
        }
    }
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let ctx = Ctx {
        api: api.clone(),
        stats: stats.clone(),
        workspaces,
        storm,
        hostile,
        until: started + options.duration,
    };
    let mut tasks = Vec::new();
    // Short sessions, churned: 2 turns of 20 small chunks, reconnects every 3–30 frames.
    for seed in [11, 12] {
        tasks.push(tokio::spawn(workers::chunk_sessions(
            ctx.clone(),
            seed,
            2,
            20,
            64,
            (3, 30),
        )));
    }
    // Longer streams: 8 turns of 300 chunks of 200 bytes, reconnects every 20–200 frames.
    for seed in [21, 22] {
        tasks.push(tokio::spawn(workers::chunk_sessions(
            ctx.clone(),
            seed,
            8,
            300,
            200,
            (20, 200),
        )));
    }
    tasks.push(tokio::spawn(workers::permission_storm(
        ctx.clone(),
        31,
        6,
        6,
    )));
    tasks.push(tokio::spawn(workers::hostile_agents(ctx.clone(), 41)));
    tasks.push(tokio::spawn(workers::policy_swaps(
        ctx.clone(),
        Duration::from_secs(15),
    )));

    report::print_header();
    let mut samples = Vec::new();
    let mut next_sample = started;
    let mut died = false;
    while Instant::now() < ctx.until {
        next_sample += options.sample_every;
        tokio::time::sleep_until(next_sample.min(ctx.until).into()).await;
        if !daemon.alive() {
            stats.error(format!("qserve-host died:\n{}", daemon.log_tail()));
            died = true;
            break;
        }
        let sample = Sample {
            at: started.elapsed(),
            rss_kib: procfs::rss_kib(pid),
            fds: daemon::open_fds(pid),
            agents: daemon::agents(pid),
            sessions: api.live_sessions().await.unwrap_or(u64::MAX),
            events: Stats::get(&stats.events_checked),
        };
        report::print_row(&sample);
        samples.push(sample);
    }
    if died {
        for task in &tasks {
            task.abort();
        }
    }
    for task in tasks {
        if tokio::time::timeout(Duration::from_secs(180), task)
            .await
            .is_err()
        {
            stats.error("a worker did not finish within 180 s of the deadline".into());
        }
    }
    for anchor in &anchors {
        if let Err(error) = api.close(anchor).await {
            stats.error(format!("closing an anchor session: {error:#}"));
        }
    }
    let after = if died {
        None
    } else {
        Some(idle(&api, pid, Some(before.fds)).await)
    };
    let passed = report::summary(&samples, &stats, &before, after.as_ref(), started.elapsed());
    daemon.stop();
    Ok(passed && !died)
}

async fn warm_up(api: &Api, workspaces: &[PathBuf], storm: &Path, hostile: &Path) -> Result<()> {
    for cwd in workspaces
        .iter()
        .map(PathBuf::as_path)
        .chain([storm, hostile])
    {
        let session = api.create(cwd).await?;
        api.prompt_expecting(&session, "chunks 3", "end_turn")
            .await?;
        if api.close(&session).await? != 204 {
            bail!("warm-up: DELETE refused");
        }
    }
    api.swap_policy("builtin:readonly").await?;
    api.swap_policy("builtin:default").await?;
    Ok(())
}

/// Waits until no session is live and no agent runs (60 s at most), then until the fd count
/// is at most `target` (15 s at most); measures.
async fn idle(api: &Api, pid: u32, target: Option<u64>) -> Idle {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let sessions = api.live_sessions().await.unwrap_or(u64::MAX);
        if sessions == 0 && daemon::agents(pid) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    // Connections the daemon has not reaped yet settle within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while target.is_some_and(|target| daemon::open_fds(pid) > target) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Idle {
        rss_kib: procfs::rss_kib(pid),
        fds: daemon::open_fds(pid),
        agents: daemon::agents(pid),
        sessions: api.live_sessions().await.unwrap_or(u64::MAX),
    }
}
