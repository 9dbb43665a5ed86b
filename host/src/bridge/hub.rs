//! The hub: the core guest and the subscribers of every session, owned by one
//! thread.
//!
//! Publishing is "ring it in the core, encode the SSE frame once, hand the
//! same bytes to each subscriber's bounded queue". Subscribing is "replay
//! from the core, then register for live frames". Because both happen on the
//! hub's thread, one after the other, a subscriber sees every event exactly
//! once and in order — no lock, no gap, no duplicate.
//!
//! Fan-out and backpressure are per session, in [`super::fanout`]: a
//! subscriber that falls behind holds back only itself, within its session's
//! bounded backlog; past it, it is evicted. Publishing never waits.

use std::collections::HashMap;

use qserve_http::{encode_event, BackendError, Subscription};
use qserve_runtime::CoreFault;

use super::fanout::{Fanout, Limits};
use super::seams::CoreApi;

/// State owned by the hub thread.
pub struct Hub {
    pub core: Box<dyn CoreApi>,
    subscribers: HashMap<String, Fanout>,
    /// Where lagging subscribers' drain tasks run.
    runtime: tokio::runtime::Handle,
}

impl Hub {
    pub fn new(core: Box<dyn CoreApi>, runtime: tokio::runtime::Handle) -> Self {
        Hub {
            core,
            subscribers: HashMap::new(),
            runtime,
        }
    }

    /// Ring an event and fan it out. `Ok(None)`: the session is gone.
    pub fn publish(
        &mut self,
        session_id: &str,
        kind: &str,
        data: &str,
        originator: Option<&str>,
    ) -> Result<Option<u64>, CoreFault> {
        let Some(id) = self.core.publish(session_id, kind, data, originator)? else {
            return Ok(None);
        };
        qserve_metrics::get().events_published(kind, 1);
        if let Some(subscribers) = self.subscribers.get_mut(session_id) {
            subscribers.send(encode_event(Some(id), kind, data, originator));
        }
        Ok(Some(id))
    }

    /// Ring a burst of one session's events of one kind with one core call,
    /// then fan each out in order.
    pub fn publish_batch(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[String],
    ) -> Result<Option<u64>, CoreFault> {
        if datas.is_empty() {
            return Ok(None);
        }
        let Some(last) = self.core.publish_batch(session_id, kind, datas)? else {
            return Ok(None);
        };
        qserve_metrics::get().events_published(kind, datas.len());
        if let Some(subscribers) = self.subscribers.get_mut(session_id) {
            let first = last + 1 - datas.len() as u64;
            for (id, data) in (first..).zip(datas) {
                subscribers.send(encode_event(Some(id), kind, data, None));
            }
        }
        Ok(Some(last))
    }

    /// Replay what is retained after `last_event_id` (nothing when `None`),
    /// then register for live frames.
    pub fn subscribe(
        &mut self,
        session_id: &str,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, BackendError> {
        let unknown = || BackendError::NotFound(format!("session {session_id} not found"));
        let replay = match last_event_id {
            Some(after) => self
                .core
                .replay(session_id, after)
                .map_err(core_unavailable)?
                .ok_or_else(unknown)?,
            None => {
                self.core
                    .get(session_id)
                    .map_err(core_unavailable)?
                    .ok_or_else(unknown)?;
                Vec::new()
            }
        };
        let (live, evicted) = self
            .subscribers
            .entry(session_id.to_owned())
            .or_insert_with(|| Fanout::new(session_id, Limits::DEFAULT, self.runtime.clone()))
            .subscribe()?;
        let replay = replay
            .iter()
            .map(|e| encode_event(Some(e.id), &e.kind, &e.data, e.originator.as_deref()))
            .collect();
        Ok(Subscription {
            replay,
            live,
            evicted,
        })
    }

    /// How many subscribers a session has now (those that left are forgotten).
    pub fn subscriber_count(&mut self, session_id: &str) -> usize {
        self.subscribers
            .get_mut(session_id)
            .map_or(0, Fanout::count)
    }

    /// Forget a session: its subscribers' queues close after what they hold
    /// (the terminal event published just before included).
    pub fn remove_session(&mut self, session_id: &str) {
        self.subscribers.remove(session_id);
        if let Err(fault) = self.core.remove(session_id) {
            tracing::error!("{fault}");
        }
    }
}

pub fn core_unavailable(fault: CoreFault) -> BackendError {
    BackendError::Unavailable(fault.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::bridge::testing::{core_session, inner};

    /// Finding 7 through the hub and the core's logic: a subscriber of
    /// session A that does not read holds back neither the publisher (the
    /// agent's reader) nor session B; then it reads every event, in order.
    #[tokio::test]
    async fn a_paused_subscriber_holds_back_neither_the_agent_nor_another_session() {
        const BURST: u64 = 2_000;
        let inner = inner(Duration::from_secs(60));
        let a = core_session(&inner, "/ws").await;
        let b = core_session(&inner, "/ws").await;
        let (sa, sb) = (a.clone(), b.clone());
        let (mut paused, mut reader) = inner
            .hub
            .call(move |hub| {
                (
                    hub.subscribe(&sa, None).unwrap(),
                    hub.subscribe(&sb, None).unwrap(),
                )
            })
            .await
            .unwrap();
        // Far more than A's queue holds: every publish returns at once.
        for run in 0..BURST / 40 {
            let sa = a.clone();
            let datas: Vec<String> = (0..40)
                .map(|i| format!("{{\"n\":{}}}", run * 40 + i))
                .collect();
            let last = inner
                .hub
                .call(move |hub| hub.publish_batch(&sa, "session_update", &datas).unwrap())
                .await
                .unwrap();
            assert_eq!(last, Some((run + 1) * 40));
        }
        // B, meanwhile, is served at once.
        let sb = b.clone();
        inner
            .hub
            .call(move |hub| hub.publish(&sb, "session_update", "{\"to\":\"b\"}", None))
            .await
            .unwrap()
            .unwrap();
        let frame = reader.live.recv().await.expect("B's event");
        assert_eq!(frame.id, Some(1));
        assert!(!paused.evicted.load(std::sync::atomic::Ordering::Acquire));
        // A reads: every event once, in order, none lost.
        for id in 1..=BURST {
            let frame = paused.live.recv().await.expect("A's next event");
            assert_eq!(frame.id, Some(id));
        }
        assert!(paused.live.try_recv().is_err(), "nothing more");
    }
}
