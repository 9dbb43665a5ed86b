//! `--session-idle-timeout-ms` (as `qwen serve`, 30 min by default): a
//! session that nobody watches and nobody uses is closed, so sessions whose
//! clients vanished do not hold an agent and a slot of `--max-sessions`
//! forever. Idle means: no subscriber, no prompt running or queued, and no
//! client call on it for the whole timeout. Its tombstone says `reaped`.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Inner;

/// How often idle sessions are looked for: often enough that a session is
/// reaped within a small fraction past its timeout, never busier than this.
const MIN_SWEEP: Duration = Duration::from_millis(50);
const MAX_SWEEP: Duration = Duration::from_secs(30);

pub(super) async fn reap_idle_sessions(inner: Weak<Inner>, timeout: Duration) {
    let sweep = (timeout / 4).clamp(MIN_SWEEP, MAX_SWEEP);
    let mut ticker = tokio::time::interval(sweep);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.is_shutting_down() {
            return;
        }
        inner.sweep_idle(timeout).await;
    }
}

impl Inner {
    async fn sweep_idle(self: &Arc<Self>, timeout: Duration) {
        let candidates: Vec<String> = self
            .sessions
            .lock()
            .unwrap()
            .values()
            .filter(|live| live.turn.pending() == 0)
            .map(|live| live.id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        // Sessions somebody watches are in use: their idle clock restarts.
        let watched = self
            .hub
            .call(move |hub| {
                candidates
                    .into_iter()
                    .map(|id| {
                        let watched = hub.subscriber_count(&id) > 0;
                        let attaches = attach_count(hub, &id);
                        (id, watched, attaches)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        let now = Instant::now();
        for (session_id, watched, attaches) in watched {
            let live = self.sessions.lock().unwrap().get(&session_id).cloned();
            let Some(live) = live else { continue };
            if watched || live.turn.pending() > 0 {
                live.turn.touch();
                continue;
            }
            if now.duration_since(live.turn.idle_since()) < timeout {
                continue;
            }
            // Re-checked in the job that removes it: a client that attached
            // or subscribed since the snapshot keeps the session.
            let sid = session_id.clone();
            let still_idle = move |hub: &mut super::Hub| {
                hub.subscriber_count(&sid) == 0 && attach_count(hub, &sid) == attaches
            };
            let reaped = self
                .clone()
                .close_if(
                    &session_id,
                    json!({ "reason": "reaped", "idleTimeoutMs": timeout.as_millis() as u64 }),
                    still_idle,
                )
                .await;
            if reaped {
                // Logged once the session is gone: its routes already answer
                // `session_ended`.
                tracing::info!(session = %session_id, timeout_ms = timeout.as_millis() as u64, "reaped an idle session");
            } else {
                live.turn.touch();
                tracing::debug!(session = %session_id, "idle session kept: a client came back");
            }
        }
    }
}

/// The core's attach count of a session (`None` once it is gone).
fn attach_count(hub: &mut super::Hub, session_id: &str) -> Option<u32> {
    hub.core
        .get(session_id)
        .ok()
        .flatten()
        .map(|session| session.attach_count)
}
