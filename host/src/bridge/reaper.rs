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
                        (id, watched)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        let now = Instant::now();
        for (session_id, watched) in watched {
            let live = self.sessions.lock().unwrap().get(&session_id).cloned();
            let Some(live) = live else { continue };
            if watched || live.turn.pending() > 0 {
                live.turn.touch();
                continue;
            }
            if now.duration_since(live.turn.idle_since()) < timeout {
                continue;
            }
            tracing::info!(session = %session_id, timeout_ms = timeout.as_millis() as u64, "reaping an idle session");
            let _ = self
                .clone()
                .close_because(
                    &session_id,
                    json!({ "reason": "reaped", "idleTimeoutMs": timeout.as_millis() as u64 }),
                )
                .await;
        }
    }
}
