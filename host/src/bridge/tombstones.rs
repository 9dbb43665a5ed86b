//! Tombstones: why a session that is gone ended.
//!
//! A client that was not subscribed when its session ended (the agent
//! crashed, another client closed it, the idle reaper took it) would
//! otherwise only see a bare 404. For a while after the end every route of
//! the session still answers 404 — `DaemonClient` expects exactly that, e.g.
//! `closeSession` accepts only 204 or 404 — but the body says
//! `code: "session_ended"` with the reason. Bounded in count and in time, so
//! a churn of sessions cannot grow the daemon's memory.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use qserve_http::BackendError;
use serde_json::Value;

/// Most tombstones kept; the oldest goes first.
pub const MAX_TOMBSTONES: usize = 1024;
/// How long a tombstone is kept.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(10 * 60);

struct Tombstone {
    reason: String,
    data: Value,
}

#[derive(Default)]
pub struct Tombstones {
    by_id: HashMap<String, Tombstone>,
    /// Insertion order, for expiry and the count bound.
    order: VecDeque<(String, Instant)>,
}

impl Tombstones {
    /// Remember why `session_id` ended (`data` is its `session_died` data).
    pub fn insert(&mut self, session_id: &str, data: &Value) {
        self.prune(Instant::now());
        if self.by_id.contains_key(session_id) {
            return;
        }
        while self.order.len() >= MAX_TOMBSTONES {
            if let Some((oldest, _)) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
        let reason = data["reason"]
            .as_str()
            .map_or_else(|| "ended".to_owned(), str::to_owned);
        self.by_id.insert(
            session_id.to_owned(),
            Tombstone {
                reason,
                data: data.clone(),
            },
        );
        self.order
            .push_back((session_id.to_owned(), Instant::now()));
    }

    /// The 404 a route of an ended session answers, if it ended recently.
    pub fn ended(&mut self, session_id: &str) -> Option<BackendError> {
        self.prune(Instant::now());
        self.by_id
            .get(session_id)
            .map(|tombstone| BackendError::SessionEnded {
                session_id: session_id.to_owned(),
                reason: tombstone.reason.clone(),
                data: tombstone.data.clone(),
            })
    }

    fn prune(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            self.by_id.remove(id);
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ended_session_answers_with_its_reason() {
        let mut tombstones = Tombstones::default();
        tombstones.insert("s1", &json!({"reason": "closed"}));
        match tombstones.ended("s1") {
            Some(BackendError::SessionEnded { reason, .. }) => assert_eq!(reason, "closed"),
            _ => panic!("no tombstone"),
        }
        assert!(tombstones.ended("s2").is_none());
    }

    #[test]
    fn the_count_is_bounded_and_the_oldest_goes_first() {
        let mut tombstones = Tombstones::default();
        for n in 0..MAX_TOMBSTONES + 10 {
            tombstones.insert(&format!("s{n}"), &json!({"reason": "reaped"}));
        }
        assert_eq!(tombstones.len(), MAX_TOMBSTONES);
        assert!(tombstones.ended("s0").is_none());
        assert!(tombstones
            .ended(&format!("s{}", MAX_TOMBSTONES + 9))
            .is_some());
    }

    #[test]
    fn tombstones_expire() {
        let mut tombstones = Tombstones::default();
        tombstones.insert("s1", &json!({"reason": "closed"}));
        let later = Instant::now() + TOMBSTONE_TTL + Duration::from_secs(1);
        tombstones.prune(later);
        assert!(tombstones.ended("s1").is_none());
    }
}
