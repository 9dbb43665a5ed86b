//! One session's subscribers: every frame into each one's bounded queue, and
//! **backpressure per subscriber, bounded per session** (finding 7).
//!
//! A subscriber whose queue is full is *lagging*: the frames it has not taken
//! yet wait in its session's backlog, and a task of its own moves them into
//! its queue as its socket drains. Nobody else waits for it: not the agent
//! (whose stdout carries every session of its workspace), not the session's
//! other subscribers, not the other sessions. A paused reader (a GC pause, a
//! busy UI thread) catches up on the same connection and loses nothing.
//!
//! The backlog is the session's, not the subscriber's: a frame is held once
//! however many subscribers lag (frames are shared `Bytes`), so a session
//! holds at most [`Limits`] (frames and bytes) for its lagging subscribers.
//! A frame that would take the backlog past its bound evicts the subscribers
//! furthest behind (their queue closes after what it holds, the SSE writer
//! ends with `client_evicted`, and they can resume from the ring with
//! `Last-Event-ID`); the others keep their place.
//!
//! Order: the hub thread and the drain tasks hand frames to a queue only
//! under the backlog's lock, so a subscriber gets its frames in publish
//! order, each once, whether it lagged or not.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use qserve_http::{BackendError, EventFrame};
use tokio::sync::mpsc;

/// Frames a subscriber may have queued before it counts as lagging.
pub const SUBSCRIBER_QUEUE: usize = 256;
/// Subscribers per session; one more is refused with 429.
pub const MAX_SUBSCRIBERS: usize = 64;

/// What one session may hold for its lagging subscribers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub frames: usize,
    pub bytes: usize,
}

impl Limits {
    /// A paused reader of a whole burst (20 000 events of 1 KiB, produced
    /// faster than it reads) is not evicted; a stalled one is, at 32 MiB.
    pub const DEFAULT: Limits = Limits {
        frames: 65_536,
        bytes: 32 << 20,
    };
}

/// What a held frame costs beyond its bytes (its slot in the backlog).
const FRAME_OVERHEAD: usize = std::mem::size_of::<EventFrame>();

struct Subscriber {
    key: u64,
    queue: mpsc::Sender<EventFrame>,
    evicted: Arc<AtomicBool>,
}

/// Frames some lagging subscriber of the session has not taken yet.
struct Backlog {
    frames: VecDeque<EventFrame>,
    /// Sequence number of `frames[0]`.
    base: u64,
    /// Bytes held in `frames` (with their overhead).
    bytes: usize,
    /// Lagging subscriber → sequence number of the next frame it needs.
    lagging: HashMap<u64, u64>,
}

impl Backlog {
    fn next_seq(&self) -> u64 {
        self.base + self.frames.len() as u64
    }

    fn push(&mut self, frame: EventFrame) {
        self.bytes += frame.bytes.len() + FRAME_OVERHEAD;
        self.frames.push_back(frame);
    }

    fn over(&self, limits: Limits) -> bool {
        !self.frames.is_empty() && (self.frames.len() > limits.frames || self.bytes > limits.bytes)
    }

    /// Drop the frames every lagging subscriber has taken.
    fn trim(&mut self) {
        let keep_from = self
            .lagging
            .values()
            .copied()
            .min()
            .unwrap_or_else(|| self.next_seq());
        while self.base < keep_from {
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= frame.bytes.len() + FRAME_OVERHEAD;
            self.base += 1;
        }
    }
}

/// One session's subscribers and the backlog of its lagging ones.
pub struct Fanout {
    session_id: String,
    subscribers: Vec<Subscriber>,
    backlog: Arc<Mutex<Backlog>>,
    limits: Limits,
    next_key: u64,
    /// Where the drain tasks of lagging subscribers run (the hub's thread is
    /// not a runtime thread).
    runtime: tokio::runtime::Handle,
}

/// A new subscriber's end: its live queue and its eviction flag.
pub type Registration = (mpsc::Receiver<EventFrame>, Arc<AtomicBool>);

impl Fanout {
    pub fn new(session_id: &str, limits: Limits, runtime: tokio::runtime::Handle) -> Self {
        Fanout {
            session_id: session_id.to_owned(),
            subscribers: Vec::new(),
            backlog: Arc::new(Mutex::new(Backlog {
                frames: VecDeque::new(),
                base: 0,
                bytes: 0,
                lagging: HashMap::new(),
            })),
            limits,
            next_key: 0,
            runtime,
        }
    }

    /// Register a subscriber for live frames; 429 past [`MAX_SUBSCRIBERS`].
    pub fn subscribe(&mut self) -> Result<Registration, BackendError> {
        if self.count() >= MAX_SUBSCRIBERS {
            return Err(BackendError::TooManySubscribers {
                max: MAX_SUBSCRIBERS as u32,
            });
        }
        let (queue, live) = mpsc::channel(SUBSCRIBER_QUEUE);
        let evicted = Arc::new(AtomicBool::new(false));
        self.next_key += 1;
        self.subscribers.push(Subscriber {
            key: self.next_key,
            queue,
            evicted: evicted.clone(),
        });
        Ok((live, evicted))
    }

    /// How many subscribers the session has now (those that left are forgotten).
    pub fn count(&mut self) -> usize {
        self.subscribers.retain(|s| !s.queue.is_closed());
        self.subscribers.len()
    }

    /// Hand one frame to every subscriber: into its queue when it is not
    /// lagging and has room, else into the backlog. Never waits.
    pub fn send(&mut self, frame: EventFrame) {
        let mut backlog = self.backlog.lock().unwrap();
        let seq = backlog.next_seq();
        let mut held = false;
        let backlog_arc = &self.backlog;
        let runtime = &self.runtime;
        self.subscribers.retain(|subscriber| {
            if subscriber.queue.is_closed() {
                backlog.lagging.remove(&subscriber.key);
                return false;
            }
            if let Entry::Vacant(lag) = backlog.lagging.entry(subscriber.key) {
                match subscriber.queue.try_send(frame.clone()) {
                    Ok(()) => return true,
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        lag.insert(seq);
                        runtime.spawn(drain(
                            subscriber.key,
                            subscriber.queue.clone(),
                            backlog_arc.clone(),
                        ));
                    }
                }
            }
            if !held {
                backlog.push(frame.clone());
                held = true;
            }
            true
        });
        // Past the bound: the subscribers furthest behind go.
        while backlog.over(self.limits) {
            let Some(slowest) = backlog.lagging.values().copied().min() else {
                break;
            };
            let session_id = &self.session_id;
            self.subscribers.retain(|subscriber| {
                if backlog.lagging.get(&subscriber.key) != Some(&slowest) {
                    return true;
                }
                backlog.lagging.remove(&subscriber.key);
                subscriber.evicted.store(true, Ordering::Release);
                qserve_metrics::get().subscriber_evicted();
                tracing::warn!(session = %session_id, "subscriber fell behind; evicted");
                false
            });
            backlog.trim();
        }
        backlog.trim();
    }
}

/// Moves a lagging subscriber's frames from the backlog into its queue as
/// the queue drains; ends when it caught up (the hub then sends directly),
/// when the subscriber left, or when it was evicted.
async fn drain(key: u64, queue: mpsc::Sender<EventFrame>, backlog: Arc<Mutex<Backlog>>) {
    loop {
        let Ok(permit) = queue.reserve().await else {
            let mut backlog = backlog.lock().unwrap();
            backlog.lagging.remove(&key);
            backlog.trim();
            return;
        };
        let mut backlog = backlog.lock().unwrap();
        let Some(mut cursor) = backlog.lagging.get(&key).copied() else {
            // Evicted: its queue closes once this task lets go of it.
            return;
        };
        let mut permit = Some(permit);
        let caught_up = loop {
            let index = (cursor - backlog.base) as usize;
            let Some(frame) = backlog.frames.get(index) else {
                break true;
            };
            let Some(slot) = permit.take() else {
                break false;
            };
            slot.send(frame.clone());
            cursor += 1;
            permit = queue.try_reserve().ok();
        };
        if caught_up {
            backlog.lagging.remove(&key);
        } else {
            backlog.lagging.insert(key, cursor);
        }
        backlog.trim();
        if caught_up {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::testing::settle;

    fn frame(id: u64, len: usize) -> EventFrame {
        EventFrame {
            id: Some(id),
            bytes: vec![b'x'; len].into(),
        }
    }

    fn fanout(limits: Limits) -> Fanout {
        Fanout::new("s", limits, tokio::runtime::Handle::current())
    }

    /// Everything queued now, without waiting.
    fn queued(live: &mut mpsc::Receiver<EventFrame>) -> Vec<u64> {
        std::iter::from_fn(|| live.try_recv().ok())
            .map(|f| f.id.unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_subscriber_holds_back_nobody_and_catches_up_in_order() {
        let mut fanout = fanout(Limits::DEFAULT);
        let (mut paused, paused_evicted) = fanout.subscribe().unwrap();
        let (mut reader, _) = fanout.subscribe().unwrap();
        let total = SUBSCRIBER_QUEUE as u64 * 4;
        let mut read = Vec::new();
        for id in 1..=total {
            // Never waits: the hub thread calls this.
            fanout.send(frame(id, 100));
            read.extend(queued(&mut reader));
        }
        assert_eq!(
            read,
            (1..=total).collect::<Vec<_>>(),
            "the reader is not held back"
        );
        // The paused one has a full queue and the rest in the backlog.
        assert_eq!(
            fanout.backlog.lock().unwrap().frames.len(),
            3 * SUBSCRIBER_QUEUE
        );
        // It reads again: every frame once, in order, while new ones keep coming.
        let mut got = Vec::new();
        let mut next = total + 1;
        while got.len() < (total + 10) as usize {
            got.extend(queued(&mut paused));
            if next <= total + 10 {
                fanout.send(frame(next, 100));
                next += 1;
            }
            settle().await;
        }
        assert_eq!(got, (1..=total + 10).collect::<Vec<_>>());
        assert!(!paused_evicted.load(Ordering::Acquire));
        let backlog = fanout.backlog.lock().unwrap();
        assert!(backlog.lagging.is_empty(), "caught up");
        assert_eq!(
            (backlog.frames.len(), backlog.bytes),
            (0, 0),
            "nothing held"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_bytes_bound_the_stalled_subscriber_is_evicted_and_the_backlog_freed() {
        let limits = Limits {
            frames: 1 << 20,
            bytes: 64 * 1024,
        };
        let mut fanout = fanout(limits);
        let (mut stalled, stalled_evicted) = fanout.subscribe().unwrap();
        let (mut reader, reader_evicted) = fanout.subscribe().unwrap();
        let mut id = 0;
        while !stalled_evicted.load(Ordering::Acquire) {
            id += 1;
            assert!(id < 10_000, "never evicted");
            fanout.send(frame(id, 1000));
            queued(&mut reader);
            let backlog = fanout.backlog.lock().unwrap();
            assert!(backlog.bytes <= limits.bytes, "bounded in bytes");
        }
        assert!(!reader_evicted.load(Ordering::Acquire));
        assert_eq!(fanout.count(), 1, "only the stalled subscriber went");
        // What its queue holds, then the end of the stream.
        settle().await;
        assert_eq!(queued(&mut stalled).len(), SUBSCRIBER_QUEUE);
        assert!(stalled.recv().await.is_none(), "its queue closed");
        let backlog = fanout.backlog.lock().unwrap();
        assert_eq!((backlog.frames.len(), backlog.bytes), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_count_bound_only_the_furthest_behind_is_evicted() {
        let limits = Limits {
            frames: 100,
            bytes: usize::MAX,
        };
        let mut fanout = fanout(limits);
        let (_stalled, stalled_evicted) = fanout.subscribe().unwrap();
        let (mut slow, slow_evicted) = fanout.subscribe().unwrap();
        let mut id = 0;
        // Both lag; the slow one takes a few now and then.
        while !stalled_evicted.load(Ordering::Acquire) {
            id += 1;
            fanout.send(frame(id, 10));
            if id % 4 == 0 {
                for _ in 0..3 {
                    slow.try_recv().unwrap();
                }
                settle().await;
            }
        }
        assert!(!slow_evicted.load(Ordering::Acquire));
        assert!(fanout.backlog.lock().unwrap().frames.len() <= limits.frames);
    }
}
