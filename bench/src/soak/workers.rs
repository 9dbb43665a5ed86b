//! The kinds of load, each a loop that runs until the deadline and checks what it did.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::api::Api;
use super::stats::Stats;
use super::watch::{follow, Behaviour, Watched};
use super::Rng;

/// What every worker shares.
#[derive(Clone)]
pub struct Ctx {
    pub api: Api,
    pub stats: Arc<Stats>,
    /// Workspaces the well-behaved sessions spread over (one agent each).
    pub workspaces: Vec<PathBuf>,
    /// The permission storm's workspace.
    pub storm: PathBuf,
    /// The crashing agents' workspace (nothing else runs there).
    pub hostile: PathBuf,
    pub until: Instant,
}

/// A session with its subscriber running.
struct Watching {
    id: String,
    turns: watch::Receiver<usize>,
    watcher: JoinHandle<Watched>,
}

impl Ctx {
    fn running(&self) -> bool {
        Instant::now() < self.until
    }

    async fn open(&self, cwd: &Path, behaviour: Behaviour, rng: &mut Rng) -> Result<Watching> {
        let id = self.api.create(cwd).await?;
        self.stats.add(&self.stats.sessions_created, 1);
        let (progress, turns) = watch::channel(0);
        let watcher = tokio::spawn(follow(
            self.api.addr,
            id.clone(),
            behaviour,
            self.stats.clone(),
            rng.next_u64(),
            progress,
        ));
        Ok(Watching { id, turns, watcher })
    }

    /// Counts a failed round. A policy fault (a decision over its deadline on a starved
    /// machine) fails closed by design: counted apart, not an error. A well-behaved agent
    /// that died under a live session is an error, also counted apart, as it points at the
    /// daemon's agent lifecycle.
    fn failed(&self, what: &str, error: anyhow::Error) {
        let text = format!("{error:#}");
        if text.contains("policy fault") {
            self.stats.add(&self.stats.policy_faults, 1);
            return;
        }
        if what != "hostile agent"
            && (text.contains("agent_died") || text.contains("session_ended"))
        {
            self.stats.add(&self.stats.agents_died_under_sessions, 1);
        }
        self.stats.error(format!("{what}: {text}"));
    }

    /// After a failure: closes the session and stops its subscriber; the error, for the
    /// caller to return.
    async fn abandon(&self, session: Watching, error: anyhow::Error) -> anyhow::Error {
        let _ = self.api.close(&session.id).await;
        session.watcher.abort();
        error
    }

    async fn prompt(&self, session: &str, command: &str, stop: &str) -> Result<()> {
        self.stats.add(&self.stats.prompts, 1);
        self.api.prompt_expecting(session, command, stop).await
    }

    /// Waits until the stream showed `turns` turns, closes the session and returns what its
    /// subscriber saw.
    async fn close(&self, mut session: Watching, turns: usize) -> Result<Watched> {
        // The guard `wait_for` returns is dropped at the end of this statement.
        let seen = matches!(
            tokio::time::timeout(
                Duration::from_secs(60),
                session.turns.wait_for(|seen| *seen >= turns),
            )
            .await,
            Ok(Ok(_))
        );
        if !seen {
            self.stats.error(format!(
                "session {}: the stream showed {} of {turns} turns within 60 s",
                session.id,
                *session.turns.borrow()
            ));
        }
        let status = self.api.close(&session.id).await?;
        if status != 204 {
            bail!("DELETE /session/{}: HTTP {status}", session.id);
        }
        self.stats.add(&self.stats.sessions_closed, 1);
        let watched = tokio::time::timeout(Duration::from_secs(60), &mut session.watcher)
            .await
            .with_context(|| format!("session {}: the stream did not end", session.id))??;
        match watched.died.as_deref() {
            Some("closed") => {}
            Some(other) if other.contains("session_ended") => {}
            other => bail!("session {}: stream ended with {other:?}", session.id),
        }
        Ok(watched)
    }
}

/// Sessions that stream chunks to a subscriber that is cut off every few frames and resumes
/// with `Last-Event-ID`; each turn must show exactly its chunks.
pub async fn chunk_sessions(
    ctx: Ctx,
    seed: u64,
    turns: usize,
    chunks: u64,
    bytes: u64,
    reconnect_after: (u64, u64),
) {
    let mut rng = Rng::new(seed);
    while ctx.running() {
        if let Err(error) =
            chunk_session(&ctx, &mut rng, turns, chunks, bytes, reconnect_after).await
        {
            ctx.failed("chunk session", error);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn chunk_session(
    ctx: &Ctx,
    rng: &mut Rng,
    turns: usize,
    chunks: u64,
    bytes: u64,
    reconnect_after: (u64, u64),
) -> Result<()> {
    let cwd = ctx.workspaces[rng.below(ctx.workspaces.len() as u64) as usize].clone();
    let behaviour = Behaviour {
        reconnect_after: Some(reconnect_after),
        vote: false,
    };
    let session = ctx.open(&cwd, behaviour, rng).await?;
    let command = format!("chunks {chunks} {bytes}");
    for _ in 0..turns {
        if let Err(error) = ctx.prompt(&session.id, &command, "end_turn").await {
            return Err(ctx.abandon(session, error).await);
        }
    }
    let watched = ctx.close(session, turns).await?;
    for (i, turn) in watched.turns.iter().enumerate() {
        if turn.chunks != chunks || turn.stop_reason != "end_turn" {
            ctx.stats.error(format!(
                "turn {i}: {} chunks (expected {chunks}), stop {:?}",
                turn.chunks, turn.stop_reason
            ));
        }
    }
    ctx.stats
        .add(&ctx.stats.turns_checked, watched.turns.len() as u64);
    Ok(())
}

/// Many sessions of one agent asking for permissions at once; the subscribers vote, and when
/// the policy is `readonly` it answers edits (reject) and reads (select) itself.
pub async fn permission_storm(ctx: Ctx, seed: u64, sessions: usize, rounds: usize) {
    let mut rng = Rng::new(seed);
    while ctx.running() {
        let mut tasks = Vec::new();
        for _ in 0..sessions {
            let ctx = ctx.clone();
            let mut rng = Rng::new(rng.next_u64());
            tasks.push(tokio::spawn(async move {
                if let Err(error) = storm_session(&ctx, &mut rng, rounds).await {
                    ctx.failed("storm session", error);
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

async fn storm_session(ctx: &Ctx, rng: &mut Rng, rounds: usize) -> Result<()> {
    let behaviour = Behaviour {
        reconnect_after: Some((10, 60)),
        vote: true,
    };
    let session = ctx.open(&ctx.storm, behaviour, rng).await?;
    for round in 0..rounds {
        let kind = if round % 2 == 0 { "edit" } else { "read" };
        let command = format!("permission {kind}");
        if let Err(error) = ctx.prompt(&session.id, &command, "end_turn").await {
            return Err(ctx.abandon(session, error).await);
        }
    }
    let watched = ctx.close(session, rounds).await?;
    for turn in &watched.turns {
        // `cancelled` when the policy faulted (fails closed): counted by the subscriber.
        let answered = turn.outcomes.len() == 1
            && (turn.outcomes[0].starts_with("outcome: selected")
                || turn.outcomes[0] == "outcome: cancelled");
        if !answered {
            ctx.stats
                .error(format!("permission turn with outcomes {:?}", turn.outcomes));
        }
    }
    ctx.stats
        .add(&ctx.stats.turns_checked, watched.turns.len() as u64);
    Ok(())
}

/// An agent that writes garbage, updates for sessions it never made, unknown update kinds,
/// hangs through a cancel, and then crashes mid-turn; the next session starts a new one.
pub async fn hostile_agents(ctx: Ctx, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut round = 0u64;
    while ctx.running() {
        if let Err(error) = hostile_round(&ctx, &mut rng, round).await {
            ctx.failed("hostile agent", error);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        round += 1;
    }
}

async fn hostile_round(ctx: &Ctx, rng: &mut Rng, round: u64) -> Result<()> {
    let behaviour = Behaviour {
        reconnect_after: Some((1, 8)),
        vote: false,
    };
    let session = ctx.open(&ctx.hostile, behaviour, rng).await?;
    match misbehave(ctx, &session, round).await {
        Ok(()) => {}
        Err(error) => return Err(ctx.abandon(session, error).await),
    }
    let watched = tokio::time::timeout(Duration::from_secs(60), session.watcher)
        .await
        .context("the crashed session's stream did not end")??;
    // The reason is whichever the daemon noticed first: the exit, or stdout closing.
    if watched.died.is_none() {
        bail!("the crashed session's stream ended without session_died");
    }
    ctx.stats.add(&ctx.stats.agent_crashes, 1);
    Ok(())
}

/// Everything but the end: garbage, foreign and unknown updates, a hang through a cancel
/// (every third round), then a crash mid-turn.
async fn misbehave(ctx: &Ctx, session: &Watching, round: u64) -> Result<()> {
    ctx.prompt(&session.id, "garbage", "end_turn").await?;
    ctx.prompt(&session.id, "foreign-updates 20", "end_turn")
        .await?;
    ctx.prompt(&session.id, "unknown-update", "end_turn")
        .await?;
    if round.is_multiple_of(3) {
        // Ignores the cancel: the daemon cuts the turn off after --cancel-grace.
        let api = ctx.api.clone();
        let id = session.id.clone();
        ctx.stats.add(&ctx.stats.prompts, 1);
        let mut hung =
            tokio::spawn(async move { api.prompt_expecting(&id, "hang", "cancelled").await });
        // Cancel until the turn ends: a cancel that arrives before the prompt reached the
        // agent finds nothing running.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            ctx.api.cancel(&session.id).await?;
            match tokio::time::timeout(Duration::from_millis(500), &mut hung).await {
                Ok(result) => {
                    result??;
                    break;
                }
                Err(_) if Instant::now() > deadline => {
                    bail!("a hung turn was not cut off within 60 s of its cancel")
                }
                Err(_) => {}
            }
        }
        ctx.stats.add(&ctx.stats.hung_turns_cut, 1);
    }
    ctx.stats.add(&ctx.stats.prompts, 1);
    let response = ctx.api.prompt(&session.id, "crash").await?;
    if response.status != 500 || !response.text().contains("agent_died") {
        bail!("crash: HTTP {} {}", response.status, response.text());
    }
    Ok(())
}

/// Swaps the policy between builtins every `every`.
pub async fn policy_swaps(ctx: Ctx, every: Duration) {
    let builtins = ["builtin:readonly", "builtin:default"];
    let mut i = 0;
    while ctx.running() {
        tokio::time::sleep(every).await;
        match ctx.api.swap_policy(builtins[i % 2]).await {
            Ok(()) => ctx.stats.add(&ctx.stats.policy_swaps, 1),
            Err(error) => ctx.stats.error(format!("{error:#}")),
        }
        i += 1;
    }
    // Leave the daemon on the default policy.
    if i % 2 == 1 {
        if let Err(error) = ctx.api.swap_policy("builtin:default").await {
            ctx.stats.error(format!("{error:#}"));
        }
    }
}
