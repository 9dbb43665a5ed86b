//! Event throughput: one prompt makes the agent emit a burst of `agent_message_chunk`
//! updates; K subscribers of the session count them. The figure is the events delivered to
//! all subscribers together divided by the time from the prompt to the last subscriber's
//! last chunk.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use crate::client::{within, Client};
use crate::daemon::Daemon;
use crate::procfs;
use crate::sse::{Event, EventStream};

#[derive(Debug)]
pub struct BurstResult {
    /// Chunks delivered, summed over subscribers.
    pub delivered: usize,
    pub expected: usize,
    /// Updates the agent sent (the burst's chunk count).
    pub updates: usize,
    /// Prompt sent → last chunk at the slowest subscriber.
    pub elapsed: Duration,
    /// The daemon's CPU time over the burst (agent excluded).
    pub daemon_cpu: Duration,
    /// This client's CPU time over the burst.
    pub client_cpu: Duration,
    /// Why a subscriber stopped early (eviction, closed stream), if one did.
    pub problem: Option<String>,
}

impl BurstResult {
    pub fn events_per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Daemon CPU per update the agent sent, µs: ingest, ring and delivery to every
    /// subscriber together. Unlike a per-delivered-event figure it stays comparable when a
    /// daemon drops subscribers (it then only saves their share of the delivery).
    pub fn daemon_cpu_us_per_update(&self) -> f64 {
        self.daemon_cpu.as_secs_f64() * 1e6 / self.updates.max(1) as f64
    }
}

/// What one subscriber saw.
struct Tally {
    chunks: usize,
    /// Since the prompt, at the last chunk counted.
    last_chunk_at: Duration,
    problem: Option<String>,
}

pub async fn burst(
    daemon: &Daemon,
    workspace: &Path,
    subscribers: usize,
    chunks: usize,
    chunk_bytes: usize,
) -> Result<BurstResult> {
    let client = Client::of(daemon);
    let (session, streams) = open_subscribers(client, workspace, subscribers).await?;

    let client_cpu_before = procfs::own_cpu_time();
    let daemon_cpu_before = daemon.cpu_time();
    let started = Instant::now();
    let prompt = client.send_prompt(&session, &format!("chunks {chunks} {chunk_bytes}"));
    let mut readers = JoinSet::new();
    for stream in streams {
        readers.spawn(count_chunks(stream, chunks, started));
    }
    let mut tallies = Vec::with_capacity(subscribers);
    let mut survivor = None;
    while let Some(joined) = readers.join_next().await {
        let (tally, stream) = joined.context("a subscriber task")?;
        if tally.problem.is_none() && survivor.is_none() {
            survivor = Some(stream);
        }
        tallies.push(tally);
    }
    let client_cpu = procfs::own_cpu_time() - client_cpu_before;
    if survivor.is_none() && client.flavor.turn_ends_on_stream() {
        // Every subscriber was dropped: the turn's end cannot be seen; wait for the agent
        // to finish the burst instead, so the next measurement starts on a quiet daemon.
        let _ = prompt.await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    } else {
        within(
            "the burst's turn end",
            client.finish_turn(prompt, survivor.as_mut()),
        )
        .await?;
    }
    let daemon_cpu = daemon.cpu_time().saturating_sub(daemon_cpu_before);

    Ok(BurstResult {
        delivered: tallies.iter().map(|t| t.chunks).sum(),
        expected: chunks * subscribers,
        updates: chunks,
        elapsed: tallies
            .iter()
            .map(|t| t.last_chunk_at)
            .max()
            .unwrap_or_default(),
        daemon_cpu,
        client_cpu,
        problem: tallies.into_iter().find_map(|t| t.problem),
    })
}

/// Chunks per prompt of a paced run: below ours' per-subscriber queue (256), so no daemon
/// can have a reason to drop a subscriber that drains each prompt before the next.
pub const PACED_STEP: usize = 200;

/// The same number of events as [`burst`], as a train of prompts of [`PACED_STEP`] chunks,
/// each read by every subscriber and its turn ended before the next prompt is sent. Each
/// step also pays a prompt's round trip, so this is a lower bound of a daemon's rate; it is
/// the rate a daemon that drops subscribers in a burst can still be measured at.
pub async fn paced(
    daemon: &Daemon,
    workspace: &Path,
    subscribers: usize,
    chunks: usize,
    chunk_bytes: usize,
) -> Result<BurstResult> {
    let client = Client::of(daemon);
    let (session, mut streams) = open_subscribers(client, workspace, subscribers).await?;
    let steps = chunks.div_ceil(PACED_STEP);

    let client_cpu_before = procfs::own_cpu_time();
    let daemon_cpu_before = daemon.cpu_time();
    let started = Instant::now();
    for _ in 0..steps {
        let prompt = client.send_prompt(&session, &format!("chunks {PACED_STEP} {chunk_bytes}"));
        within("a paced step", async {
            for stream in streams.iter_mut() {
                for _ in 0..PACED_STEP {
                    stream.until(|event| *event == Event::AgentChunk).await?;
                }
            }
            client.finish_turn(prompt, streams.first_mut()).await
        })
        .await?;
    }
    let elapsed = started.elapsed();
    let delivered = steps * PACED_STEP * subscribers;
    Ok(BurstResult {
        delivered,
        expected: delivered,
        updates: steps * PACED_STEP,
        elapsed,
        daemon_cpu: daemon.cpu_time().saturating_sub(daemon_cpu_before),
        client_cpu: procfs::own_cpu_time() - client_cpu_before,
        problem: None,
    })
}

/// A new session with `count` live subscribers.
async fn open_subscribers(
    client: Client,
    workspace: &Path,
    count: usize,
) -> Result<(String, Vec<EventStream>)> {
    let session = within("creating a session", client.create_session(workspace)).await?;
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(within("subscribing", client.subscribe(&session)).await?);
    }
    within("warm-up turn", warm_up(client, &session, &mut streams)).await?;
    Ok((session, streams))
}

/// One short turn first, seen by every subscriber: proves each subscription is live before
/// the clock starts (and lets a JIT see the code paths once).
async fn warm_up(client: Client, session: &str, streams: &mut [EventStream]) -> Result<()> {
    let prompt = client.send_prompt(session, "echo warm-up");
    for stream in streams.iter_mut() {
        stream.until(|event| *event == Event::AgentChunk).await?;
    }
    let (first, rest) = streams.split_first_mut().context("no subscriber")?;
    client.finish_turn(prompt, Some(first)).await?;
    if client.flavor.turn_ends_on_stream() {
        for stream in rest {
            stream.until(|event| *event == Event::TurnComplete).await?;
        }
    }
    Ok(())
}

/// Counts chunks until `expected` arrived or the stream stops; gives the stream back so the
/// turn's end can be read from it.
async fn count_chunks(
    mut stream: EventStream,
    expected: usize,
    started: Instant,
) -> (Tally, EventStream) {
    let mut tally = Tally {
        chunks: 0,
        last_chunk_at: Duration::ZERO,
        problem: None,
    };
    while tally.chunks < expected {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
        match next {
            Ok(Ok(Some(Event::AgentChunk))) => {
                tally.chunks += 1;
                tally.last_chunk_at = started.elapsed();
            }
            Ok(Ok(Some(Event::Evicted))) => {
                tally.problem = Some(format!("evicted after {} chunks", tally.chunks));
            }
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => {
                tally.problem = Some(format!("stream closed after {} chunks", tally.chunks));
            }
            Ok(Err(error)) => {
                tally.problem = Some(format!("after {} chunks: {error:#}", tally.chunks));
            }
            Err(_) => {
                tally.problem = Some(format!("stalled 30 s after {} chunks", tally.chunks));
            }
        }
        if tally.problem.is_some() {
            break;
        }
    }
    (tally, stream)
}
