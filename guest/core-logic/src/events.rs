//! The per-session event ring: assigns event ids and keeps the newest events
//! for replay after a reconnect (`Last-Event-ID`).
//!
//! Ids run 1, 2, 3 … without gaps, so the position of any retained event is
//! arithmetic on the oldest retained id: neither publish nor replay scans.

use std::collections::VecDeque;

/// A published event as replay hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    /// The SSE `event:` type, e.g. `session_update`.
    pub kind: String,
    /// The envelope's `data` member, already JSON.
    pub data: String,
    pub originator: Option<String>,
}

/// What the ring keeps per event; the id follows from its position.
#[derive(Debug)]
struct RingedEvent {
    kind: String,
    data: String,
    originator: Option<String>,
}

/// One session's events: ids and the last `capacity` events.
#[derive(Debug)]
pub struct EventRing {
    retained: VecDeque<RingedEvent>,
    last_id: u64,
    capacity: usize,
}

impl EventRing {
    /// An empty ring whose first event gets id 1.
    pub fn new(capacity: u32) -> Self {
        Self::continuing_after(0, capacity)
    }

    /// An empty ring whose first event gets id `last_id + 1`: a session
    /// restored after a core fault keeps its id sequence.
    pub fn continuing_after(last_id: u64, capacity: u32) -> Self {
        Self {
            retained: VecDeque::new(),
            last_id,
            capacity: capacity as usize,
        }
    }

    /// Rings an event, dropping the oldest when full; returns its id.
    /// The strings are moved in, never copied.
    pub fn publish(&mut self, kind: String, data: String, originator: Option<String>) -> u64 {
        self.last_id += 1;
        if self.capacity > 0 {
            if self.retained.len() >= self.capacity {
                self.retained.pop_front();
            }
            self.retained.push_back(RingedEvent {
                kind,
                data,
                originator,
            });
        }
        self.last_id
    }

    /// Every retained event with id > `after`, oldest first.
    pub fn replay(&self, after: u64) -> Vec<Event> {
        let skip = after.saturating_sub(self.oldest_retained_id() - 1);
        let skip = usize::try_from(skip)
            .unwrap_or(usize::MAX)
            .min(self.retained.len());
        let first_id = self.oldest_retained_id() + skip as u64;
        self.retained
            .range(skip..)
            .zip(first_id..)
            .map(|(event, id)| Event {
                id,
                kind: event.kind.clone(),
                data: event.data.clone(),
                originator: event.originator.clone(),
            })
            .collect()
    }

    /// The newest event's id (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// How many events replay could return at most.
    pub fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// Changes the retention; drops the oldest events beyond it at once.
    pub fn set_capacity(&mut self, capacity: u32) {
        self.capacity = capacity as usize;
        let excess = self.retained.len().saturating_sub(self.capacity);
        self.retained.drain(..excess);
    }

    /// The id the oldest retained event has (`last_id + 1` when none is).
    fn oldest_retained_id(&self) -> u64 {
        self.last_id + 1 - self.retained.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with(capacity: u32, events: u64) -> EventRing {
        let mut ring = EventRing::new(capacity);
        for n in 1..=events {
            ring.publish("session_update".into(), format!("{{\"n\":{n}}}"), None);
        }
        ring
    }

    fn ids(events: &[Event]) -> Vec<u64> {
        events.iter().map(|event| event.id).collect()
    }

    #[test]
    fn ids_run_from_one_without_gaps() {
        let mut ring = EventRing::new(3);
        let assigned: Vec<u64> = (0..10)
            .map(|_| ring.publish("k".into(), "{}".into(), None))
            .collect();
        assert_eq!(assigned, (1..=10).collect::<Vec<_>>());
        assert_eq!(ring.last_id(), 10);
    }

    #[test]
    fn last_id_is_zero_before_the_first_event() {
        let ring = EventRing::new(4);
        assert_eq!(ring.last_id(), 0);
        assert!(ring.replay(0).is_empty());
    }

    #[test]
    fn retention_keeps_only_the_newest_events() {
        let ring = ring_with(4, 10);
        assert_eq!(ring.retained_len(), 4);
        assert_eq!(ids(&ring.replay(0)), vec![7, 8, 9, 10]);
    }

    #[test]
    fn replay_after_k_gives_exactly_the_retained_ids_above_k_in_order() {
        let ring = ring_with(4, 10);
        for after in 0..=10 {
            let expected: Vec<u64> = (after + 1..=10).filter(|id| *id >= 7).collect();
            assert_eq!(ids(&ring.replay(after)), expected, "replay after {after}");
        }
    }

    #[test]
    fn replay_returns_the_payloads_that_were_published() {
        let mut ring = EventRing::new(10);
        ring.publish(
            "session_update".into(),
            "{\"a\":1}".into(),
            Some("client-1".into()),
        );
        ring.publish("permission_request".into(), "{\"b\":2}".into(), None);
        let replayed = ring.replay(0);
        assert_eq!(
            replayed,
            vec![
                Event {
                    id: 1,
                    kind: "session_update".into(),
                    data: "{\"a\":1}".into(),
                    originator: Some("client-1".into()),
                },
                Event {
                    id: 2,
                    kind: "permission_request".into(),
                    data: "{\"b\":2}".into(),
                    originator: None
                },
            ]
        );
    }

    #[test]
    fn replay_after_the_head_or_beyond_is_empty() {
        let ring = ring_with(4, 10);
        assert!(ring.replay(10).is_empty());
        assert!(ring.replay(11).is_empty());
        assert!(ring.replay(u64::MAX).is_empty());
    }

    #[test]
    fn a_continued_ring_resumes_the_sequence() {
        let mut ring = EventRing::continuing_after(41, 4);
        assert_eq!(ring.last_id(), 41);
        assert!(
            ring.replay(0).is_empty(),
            "events before the restore are gone"
        );
        assert_eq!(ring.publish("k".into(), "{}".into(), None), 42);
        assert_eq!(ids(&ring.replay(0)), vec![42]);
        assert_eq!(ids(&ring.replay(41)), vec![42]);
    }

    #[test]
    fn zero_capacity_assigns_ids_but_retains_nothing() {
        let ring = ring_with(0, 5);
        assert_eq!(ring.last_id(), 5);
        assert!(ring.replay(0).is_empty());
    }

    #[test]
    fn shrinking_the_capacity_drops_the_oldest_events() {
        let mut ring = ring_with(10, 10);
        ring.set_capacity(3);
        assert_eq!(ids(&ring.replay(0)), vec![8, 9, 10]);
        assert_eq!(ring.publish("k".into(), "{}".into(), None), 11);
        assert_eq!(ids(&ring.replay(0)), vec![9, 10, 11]);
    }
}
