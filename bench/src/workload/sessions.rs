//! Memory with many sessions: N sessions on the one workspace, each with a subscriber and
//! one finished turn of 100 chunks in its history, all still open when the RSS is read.
//! The sessions stay open afterwards: qwen serve cannot close a session on an agent that
//! lacks its private `qwen/control/session/close` method (the fake agent), so neither
//! daemon gets its sessions closed, which keeps the "after the runs" figures comparable.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::client::{within, Client};
use crate::daemon::Daemon;
use crate::sse::{Event, EventStream};

const CHUNKS_PER_SESSION: usize = 100;

/// The daemon's RSS (MiB) with `count` sessions open, read `settle` after their turns ended.
pub async fn rss_with_sessions(
    daemon: &Daemon,
    workspace: &Path,
    count: usize,
    settle: Duration,
) -> Result<f64> {
    let client = Client::of(daemon);
    let mut sessions: Vec<(String, EventStream)> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = within("creating a session", client.create_session(workspace)).await?;
        let stream = within("subscribing", client.subscribe(&id)).await?;
        sessions.push((id, stream));
    }
    let prompts: Vec<_> = sessions
        .iter()
        .map(|(id, _)| client.send_prompt(id, &format!("chunks {CHUNKS_PER_SESSION} 200")))
        .collect();
    for ((_, stream), prompt) in sessions.iter_mut().zip(prompts) {
        within("a session's chunks", async {
            for _ in 0..CHUNKS_PER_SESSION {
                stream.until(|event| *event == Event::AgentChunk).await?;
            }
            client.finish_turn(prompt, Some(stream)).await
        })
        .await?;
    }
    tokio::time::sleep(settle).await;
    Ok(daemon.rss_mib())
}
