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

impl RingedEvent {
    /// What the event costs the ring: its strings (the bookkeeping around
    /// them is small and fixed).
    fn bytes(&self) -> u64 {
        (self.kind.len() + self.data.len() + self.originator.as_ref().map_or(0, String::len)) as u64
    }
}

/// One session's events: ids and the newest events within two bounds — a
/// count (`capacity`) and a byte budget (`max_bytes`; 0 = none) — so a few
/// huge events cannot fill the core's memory where a count alone bounds
/// nothing. The newest event is always kept, whatever its size (a line the
/// agent may send is capped by the host), so a replay never has a hole.
#[derive(Debug)]
pub struct EventRing {
    retained: VecDeque<RingedEvent>,
    last_id: u64,
    capacity: usize,
    max_bytes: u64,
    /// Sum of [`RingedEvent::bytes`] over `retained`.
    bytes: u64,
}

impl EventRing {
    /// An empty ring whose first event gets id 1.
    pub fn new(capacity: u32, max_bytes: u64) -> Self {
        Self::continuing_after(0, capacity, max_bytes)
    }

    /// An empty ring whose first event gets id `last_id + 1`: a session
    /// restored after a core fault keeps its id sequence.
    pub fn continuing_after(last_id: u64, capacity: u32, max_bytes: u64) -> Self {
        Self {
            retained: VecDeque::new(),
            last_id,
            capacity: capacity as usize,
            max_bytes,
            bytes: 0,
        }
    }

    /// Rings an event, dropping the oldest beyond the count or the byte
    /// budget; returns its id. The strings are moved in, never copied.
    pub fn publish(&mut self, kind: String, data: String, originator: Option<String>) -> u64 {
        self.last_id += 1;
        if self.capacity > 0 {
            if self.retained.len() >= self.capacity {
                self.pop_oldest();
            }
            let event = RingedEvent {
                kind,
                data,
                originator,
            };
            self.bytes += event.bytes();
            self.retained.push_back(event);
            self.evict_over_budget();
        }
        self.last_id
    }

    /// Bytes the retained events hold.
    pub fn retained_bytes(&self) -> u64 {
        self.bytes
    }

    fn pop_oldest(&mut self) {
        if let Some(event) = self.retained.pop_front() {
            self.bytes -= event.bytes();
        }
    }

    /// Oldest first, never the newest.
    fn evict_over_budget(&mut self) {
        while self.max_bytes > 0 && self.bytes > self.max_bytes && self.retained.len() > 1 {
            self.pop_oldest();
        }
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
    pub fn set_limits(&mut self, capacity: u32, max_bytes: u64) {
        self.capacity = capacity as usize;
        self.max_bytes = max_bytes;
        while self.retained.len() > self.capacity {
            self.pop_oldest();
        }
        self.evict_over_budget();
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
        let mut ring = EventRing::new(capacity, 0);
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
        let mut ring = EventRing::new(3, 0);
        let assigned: Vec<u64> = (0..10)
            .map(|_| ring.publish("k".into(), "{}".into(), None))
            .collect();
        assert_eq!(assigned, (1..=10).collect::<Vec<_>>());
        assert_eq!(ring.last_id(), 10);
    }

    #[test]
    fn last_id_is_zero_before_the_first_event() {
        let ring = EventRing::new(4, 0);
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
        let mut ring = EventRing::new(10, 0);
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
        let mut ring = EventRing::continuing_after(41, 4, 0);
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

    fn publish_bytes(ring: &mut EventRing, size: usize) -> u64 {
        ring.publish("k".into(), "x".repeat(size - 1), None)
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_events() {
        let mut ring = EventRing::new(4000, 1000);
        for _ in 0..10 {
            publish_bytes(&mut ring, 300);
        }
        assert_eq!(ids(&ring.replay(0)), vec![8, 9, 10]);
        assert_eq!(ring.retained_bytes(), 900);
        assert_eq!(ring.last_id(), 10);
    }

    #[test]
    fn many_huge_events_stay_within_the_budget() {
        // The case scaled down: 4000 events far bigger than the budget.
        let mut ring = EventRing::new(4000, 8 << 10);
        for _ in 0..4000 {
            publish_bytes(&mut ring, 16 << 10);
            assert!(ring.retained_bytes() <= 16 << 10);
        }
        assert_eq!(ids(&ring.replay(0)), vec![4000]);
    }

    #[test]
    fn an_event_bigger_than_the_budget_is_kept_alone_and_goes_with_the_next() {
        let mut ring = EventRing::new(4000, 1000);
        publish_bytes(&mut ring, 100);
        publish_bytes(&mut ring, 5000);
        assert_eq!(ids(&ring.replay(0)), vec![2], "the newest event is kept");
        publish_bytes(&mut ring, 100);
        assert_eq!(ids(&ring.replay(0)), vec![3]);
        assert_eq!(ring.retained_bytes(), 100);
    }

    #[test]
    fn lowering_the_byte_budget_applies_at_once() {
        let mut ring = EventRing::new(4000, 0);
        for _ in 0..10 {
            publish_bytes(&mut ring, 100);
        }
        ring.set_limits(4000, 250);
        assert_eq!(ids(&ring.replay(0)), vec![9, 10]);
    }

    #[test]
    fn shrinking_the_capacity_drops_the_oldest_events() {
        let mut ring = ring_with(10, 10);
        ring.set_limits(3, 0);
        assert_eq!(ids(&ring.replay(0)), vec![8, 9, 10]);
        assert_eq!(ring.publish("k".into(), "{}".into(), None), 11);
        assert_eq!(ids(&ring.replay(0)), vec![9, 10, 11]);
    }
}
