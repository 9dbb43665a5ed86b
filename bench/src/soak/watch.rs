//! A session's subscriber for the whole life of the session: it checks that event ids run
//! 1, 2, 3, … with no gap and no repeat across every reconnect (each one resumes with
//! `Last-Event-ID`), votes on permission requests, and tallies each turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::frames::{FrameReader, Open};
use super::stats::Stats;
use super::Rng;
use crate::http;

/// How the subscriber behaves.
#[derive(Clone, Copy)]
pub struct Behaviour {
    /// Drop the connection after a random number of frames in this range, then resume.
    pub reconnect_after: Option<(u64, u64)>,
    /// Vote `proceed_once` on every `permission_request`.
    pub vote: bool,
}

/// One turn as the stream showed it (closed by its `turn_complete`).
#[derive(Debug, Default, Clone)]
pub struct Turn {
    /// `agent_message_chunk`s whose text starts `chunk `.
    pub chunks: u64,
    /// Texts starting `outcome:` (the fake agent's report of a permission's answer).
    pub outcomes: Vec<String>,
    pub stop_reason: String,
}

/// What the subscriber saw over the session's life.
#[derive(Debug, Default)]
pub struct Watched {
    pub turns: Vec<Turn>,
    /// The `session_died` reason, when the stream ended with one.
    pub died: Option<String>,
    pub last_id: u64,
}

/// Subscribes from id 0 and follows the session until `session_died` (or until the daemon
/// says the session is gone). Id errors are counted in `stats` as they are seen; `progress`
/// carries the number of turns seen so far, so the session's owner can wait for a turn's
/// `turn_complete` on the stream before it closes the session.
pub async fn follow(
    addr: SocketAddr,
    session: String,
    behaviour: Behaviour,
    stats: Arc<Stats>,
    seed: u64,
    progress: tokio::sync::watch::Sender<usize>,
) -> Watched {
    let mut rng = Rng::new(seed);
    let mut watched = Watched::default();
    let mut current = Turn::default();
    let mut first = true;
    loop {
        let cursor = Some(watched.last_id);
        let mut reader = match FrameReader::open(addr, &session, cursor).await {
            Ok(Open::Stream(reader)) => reader,
            Ok(Open::Refused(404, body)) => {
                // Ended between two connections: the tombstone says why. Every event it
                // published before had to be seen already; the 404 cannot tell, so the
                // session's owner checks the turns.
                if watched.died.is_none() {
                    watched.died = Some(format!("404 {body}"));
                }
                return watched;
            }
            Ok(Open::Refused(status, body)) => {
                stats.error(format!("subscribe {session}: HTTP {status} {body}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(error) => {
                stats.error(format!("subscribe {session}: {error:#}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if !first {
            stats.add(&stats.reconnects, 1);
        }
        first = false;
        let budget = behaviour
            .reconnect_after
            .map(|(low, high)| low + rng.below(high - low + 1));
        let mut frames = 0u64;
        loop {
            if budget.is_some_and(|budget| frames >= budget) {
                break; // a forced reconnect: drop the connection mid-stream
            }
            let frame = match reader.next().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    stats.error(format!("stream {session}: {error:#}"));
                    break;
                }
            };
            if let Some(id) = frame.id {
                frames += 1;
                if id == watched.last_id + 1 {
                    stats.add(&stats.events_checked, 1);
                } else if id <= watched.last_id {
                    stats.add(&stats.duplicated, 1);
                    stats.error(format!(
                        "session {session}: id {id} after {} (repeated)",
                        watched.last_id
                    ));
                    continue;
                } else {
                    stats.add(&stats.lost, id - watched.last_id - 1);
                    stats.error(format!(
                        "session {session}: id {id} after {} (lost {})",
                        watched.last_id,
                        id - watched.last_id - 1
                    ));
                }
                watched.last_id = id;
            }
            match frame.event.as_str() {
                "session_update" if frame.field("sessionUpdate") == Some("agent_message_chunk") => {
                    let text = frame.field("text").unwrap_or_default();
                    if text.starts_with("chunk ") {
                        current.chunks += 1;
                    } else if text.starts_with("outcome:") {
                        current.outcomes.push(text.to_owned());
                    }
                }
                "permission_request" if behaviour.vote => {
                    if let Some(request) = frame.field("requestId") {
                        vote(addr, request, &stats).await;
                    }
                }
                "policy_decision" => match frame.field("verdict") {
                    Some("select") | Some("reject") => stats.add(&stats.decided_by_policy, 1),
                    Some("fault") => stats.add(&stats.policy_faults, 1),
                    _ => {}
                },
                "turn_complete" => {
                    current.stop_reason = frame.field("stopReason").unwrap_or_default().into();
                    watched.turns.push(std::mem::take(&mut current));
                    progress.send_replace(watched.turns.len());
                }
                "session_died" => {
                    watched.died = Some(frame.field("reason").unwrap_or_default().to_owned());
                    return watched;
                }
                "client_evicted" => {
                    stats.add(&stats.evictions, 1);
                    break;
                }
                "stream_error" => {
                    stats.error(format!("stream {session}: stream_error"));
                    break;
                }
                _ => {}
            }
        }
    }
}

async fn vote(addr: SocketAddr, request: &str, stats: &Stats) {
    let body = r#"{"outcome":{"outcome":"selected","optionId":"proceed_once"}}"#;
    match http::request(addr, "POST", &format!("/permission/{request}"), Some(body)).await {
        Ok(response) if response.status == 200 => stats.add(&stats.votes_won, 1),
        // Resolved meanwhile (a cancel, the session's end): not an error.
        Ok(response) if response.status == 404 => stats.add(&stats.votes_late, 1),
        Ok(response) => stats.error(format!(
            "vote {request}: HTTP {} {}",
            response.status,
            response.text()
        )),
        Err(error) => stats.error(format!("vote {request}: {error:#}")),
    }
}
