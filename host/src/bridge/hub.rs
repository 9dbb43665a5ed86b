//! The hub: the core guest and the subscribers of every session, owned by one
//! thread.
//!
//! Publishing is "ring it in the core, encode the SSE frame once, hand the
//! same bytes to each subscriber's bounded queue". Subscribing is "replay
//! from the core, then register for live frames". Because both happen on the
//! hub's thread, one after the other, a subscriber sees every event exactly
//! once and in order — no lock, no gap, no duplicate.
//!
//! A subscriber whose queue is full is evicted (its queue closes and the SSE
//! writer ends with `client_evicted`); nobody else waits for it, and a slow
//! socket never grows the daemon's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qserve_http::{encode_event, BackendError, EventFrame, Subscription};
use qserve_runtime::{CoreFault, CoreGuest};
use tokio::sync::mpsc;

/// Frames a subscriber may have queued before it counts as fallen behind.
pub const SUBSCRIBER_QUEUE: usize = 256;
/// Subscribers per session; one more is refused with 429.
pub const MAX_SUBSCRIBERS: usize = 64;
/// A subscriber with fewer free slots than this slows its agent down.
pub const CONGESTED_BELOW: usize = 64;
/// How long an agent is held back for a congested subscriber; a subscriber
/// that has not drained by then is evicted when its queue overflows.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Backpressure without a round trip per event: the agent's reader holds a
/// permit per publish in flight; a publish that left a subscriber nearly full
/// keeps its permit until that subscriber has drained (or the grace ran out).
/// With every permit held, the reader stops reading the agent's stdout, and
/// the agent waits on its pipe. So a subscriber that keeps up is never
/// evicted by a burst; one that stops reading is, after the grace.
pub async fn hold_until_drained(
    congested: Vec<mpsc::Sender<EventFrame>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
    for queue in congested {
        while queue.capacity() < CONGESTED_BELOW
            && !queue.is_closed()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    drop(permit);
}

struct Subscriber {
    queue: mpsc::Sender<EventFrame>,
    evicted: Arc<AtomicBool>,
}

/// State owned by the hub thread.
pub struct Hub {
    pub core: CoreGuest,
    subscribers: HashMap<String, Vec<Subscriber>>,
}

impl Hub {
    pub fn new(core: CoreGuest) -> Self {
        Hub {
            core,
            subscribers: HashMap::new(),
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
            let frame = encode_event(Some(id), kind, data, originator);
            // Request-path events (permissions, models, lifecycle) are rare:
            // nobody waits on their congestion.
            fan_out(subscribers, frame, session_id, &mut Vec::new());
        }
        Ok(Some(id))
    }

    /// Ring a burst of one session's events of one kind with one core call,
    /// then fan each out in order, noting congested queues.
    pub fn publish_batch_noting_congestion(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[String],
        congested: &mut Vec<mpsc::Sender<EventFrame>>,
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
                let frame = encode_event(Some(id), kind, data, None);
                fan_out(subscribers, frame, session_id, congested);
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
        let subscribers = self.subscribers.entry(session_id.to_owned()).or_default();
        subscribers.retain(|s| !s.queue.is_closed());
        if subscribers.len() >= MAX_SUBSCRIBERS {
            return Err(BackendError::TooManySubscribers {
                max: MAX_SUBSCRIBERS as u32,
            });
        }
        let (queue, live) = mpsc::channel(SUBSCRIBER_QUEUE);
        let evicted = Arc::new(AtomicBool::new(false));
        subscribers.push(Subscriber {
            queue,
            evicted: evicted.clone(),
        });
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
            .map_or(0, |subscribers| {
                subscribers.retain(|s| !s.queue.is_closed());
                subscribers.len()
            })
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

/// Hand one frame to every subscriber of a session: evict those whose queue
/// is full, forget those that left, note those nearly full.
fn fan_out(
    subscribers: &mut Vec<Subscriber>,
    frame: EventFrame,
    session_id: &str,
    congested: &mut Vec<mpsc::Sender<EventFrame>>,
) {
    subscribers.retain(
        |subscriber| match subscriber.queue.try_send(frame.clone()) {
            Ok(()) => {
                if subscriber.queue.capacity() < CONGESTED_BELOW
                    && !congested.iter().any(|c| c.same_channel(&subscriber.queue))
                {
                    congested.push(subscriber.queue.clone());
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                subscriber.evicted.store(true, Ordering::Release);
                qserve_metrics::get().subscriber_evicted();
                tracing::warn!(session = session_id, "subscriber fell behind; evicted");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        },
    );
}

pub fn core_unavailable(fault: CoreFault) -> BackendError {
    BackendError::Unavailable(fault.to_string())
}
