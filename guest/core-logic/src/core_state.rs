//! [`Core`]: the registry, the rings and the pending permissions behind the
//! `core` world's four interfaces, one method per WIT function, so the Wasm
//! component is a plain type mapping.
//!
//! Keeping the three in step is this type's job: a finished or restored
//! session gets a ring and may hold permission requests; removing it frees
//! both.

use crate::events::{Event, EventRing};
use crate::fast_map::FastMap;
use crate::ids::IdSource;
use crate::permissions::Outcome;
use crate::permissions::{PendingPermissions, RegisterError, Resolution, VoteError};
use crate::sessions::{FinishCreateError, OpenError, OpenOutcome, Scope, Session, SessionRegistry};

/// Bytes of events a session's ring keeps by default.
pub const DEFAULT_RING_BYTES: u64 = 8 << 20;

/// The limits the core enforces (WIT `lifecycle.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live sessions plus in-flight creates; 0 = unlimited.
    pub max_sessions: u32,
    /// Events retained per session for replay (0 = none).
    pub ring_size: u32,
    /// Bytes of events retained per session (0 = no byte bound).
    pub ring_bytes: u64,
    /// Pending permission requests per session; more are refused.
    pub max_pending_permissions: u32,
}

impl Default for Limits {
    /// The daemon's documented defaults: 20 sessions, 4000 events within
    /// 8 MiB, 64 pending.
    fn default() -> Self {
        Self {
            max_sessions: 20,
            ring_size: 4000,
            ring_bytes: DEFAULT_RING_BYTES,
            max_pending_permissions: 64,
        }
    }
}

/// Counters for health checks (WIT `lifecycle.stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub sessions: u32,
    pub creates_in_flight: u32,
    pub pending_permissions: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("unknown session")]
    UnknownSession,
}

/// The whole core state. `I` mints session and request ids.
pub struct Core<I: IdSource> {
    ids: I,
    limits: Limits,
    registry: SessionRegistry,
    rings: FastMap<String, EventRing>,
    permissions: PendingPermissions,
}

impl<I: IdSource> Core<I> {
    /// An empty core with [`Limits::default`].
    pub fn new(ids: I) -> Self {
        let limits = Limits::default();
        Self {
            ids,
            limits,
            registry: SessionRegistry::new(limits.max_sessions),
            rings: FastMap::default(),
            permissions: PendingPermissions::new(limits.max_pending_permissions),
        }
    }

    // --- lifecycle ---

    /// Applies new limits, to live sessions too (rings shrink at once).
    pub fn configure(&mut self, limits: Limits) {
        self.limits = limits;
        self.registry.set_max_sessions(limits.max_sessions);
        self.permissions
            .set_max_per_session(limits.max_pending_permissions);
        for ring in self.rings.values_mut() {
            ring.set_limits(limits.ring_size, limits.ring_bytes);
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn stats(&self) -> Stats {
        Stats {
            sessions: saturating_u32(self.registry.live_count()),
            creates_in_flight: saturating_u32(self.registry.creates_in_flight()),
            pending_permissions: saturating_u32(self.permissions.pending_count()),
        }
    }

    // --- sessions ---

    pub fn open(&mut self, workspace: &str, scope: Scope) -> Result<OpenOutcome, OpenError> {
        self.registry.open(workspace, scope)
    }

    pub fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: String,
    ) -> Result<Session, FinishCreateError> {
        let session = self
            .registry
            .finish_create(reservation, agent_session_id, &mut self.ids)?;
        self.rings.insert(
            session.id.clone(),
            EventRing::new(self.limits.ring_size, self.limits.ring_bytes),
        );
        self.permissions.track_session(&session.id);
        Ok(session)
    }

    pub fn abort_create(&mut self, reservation: u64) {
        self.registry.abort_create(reservation);
    }

    pub fn attach(&mut self, session_id: &str) -> Option<Session> {
        self.registry.attach(session_id)
    }

    pub fn detach(&mut self, session_id: &str) -> Option<Session> {
        self.registry.detach(session_id)
    }

    pub fn get(&self, session_id: &str) -> Option<&Session> {
        self.registry.get(session_id)
    }

    pub fn list_workspace(&self, workspace: &str) -> Vec<Session> {
        self.registry.list_workspace(workspace)
    }

    pub fn list_all(&self) -> Vec<Session> {
        self.registry.list_all()
    }

    /// Removes a session with its ring and its pending requests (unresolved:
    /// the caller cancels them first to answer the agent).
    pub fn remove(&mut self, session_id: &str) -> Option<Session> {
        let session = self.registry.remove(session_id)?;
        self.rings.remove(session_id);
        self.permissions.forget_session(session_id);
        Some(session)
    }

    /// Re-registers a session after a core fault: same id, empty ring whose
    /// next event id is `last_event_id + 1`. Restoring an id that is live
    /// replaces that session (its ring and pending requests are dropped).
    pub fn restore(&mut self, session: Session, last_event_id: u64) {
        self.remove(&session.id);
        self.rings.insert(
            session.id.clone(),
            EventRing::continuing_after(
                last_event_id,
                self.limits.ring_size,
                self.limits.ring_bytes,
            ),
        );
        self.permissions.track_session(&session.id);
        self.registry.restore(session);
    }

    // --- events ---

    /// Rings an event for a session; returns its id. The hot path: one map
    /// lookup, the strings moved into the ring.
    pub fn publish(
        &mut self,
        session_id: &str,
        kind: String,
        data: String,
        originator: Option<String>,
    ) -> Result<u64, PublishError> {
        let ring = self
            .rings
            .get_mut(session_id)
            .ok_or(PublishError::UnknownSession)?;
        Ok(ring.publish(kind, data, originator))
    }

    pub fn replay(&self, session_id: &str, after: u64) -> Result<Vec<Event>, PublishError> {
        Ok(self.ring(session_id)?.replay(after))
    }

    pub fn last_id(&self, session_id: &str) -> Result<u64, PublishError> {
        Ok(self.ring(session_id)?.last_id())
    }

    // --- permissions ---

    pub fn register(
        &mut self,
        session_id: &str,
        option_ids: Vec<String>,
    ) -> Result<String, RegisterError> {
        self.permissions
            .register(session_id, option_ids, &mut self.ids)
    }

    pub fn vote(&mut self, request_id: &str, outcome: Outcome) -> Result<Resolution, VoteError> {
        self.permissions.vote(request_id, outcome)
    }

    pub fn expire(&mut self, request_id: &str) -> Option<Resolution> {
        self.permissions.expire(request_id)
    }

    pub fn cancel_session(&mut self, session_id: &str) -> Vec<Resolution> {
        self.permissions.cancel_session(session_id)
    }

    fn ring(&self, session_id: &str) -> Result<&EventRing, PublishError> {
        self.rings
            .get(session_id)
            .ok_or(PublishError::UnknownSession)
    }
}

fn saturating_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_with(limits: Limits) -> Core<impl FnMut() -> String> {
        let mut next = 0;
        let mut core = Core::new(move || {
            next += 1;
            format!("id-{next}")
        });
        core.configure(limits);
        core
    }

    fn new_session(core: &mut Core<impl IdSource>, workspace: &str) -> Session {
        let Ok(OpenOutcome::Create(reservation)) = core.open(workspace, Scope::Thread) else {
            panic!("expected a create");
        };
        core.finish_create(reservation, "agent".into()).unwrap()
    }

    fn publish_n(core: &mut Core<impl IdSource>, session_id: &str, n: u64) {
        for i in 0..n {
            core.publish(
                session_id,
                "session_update".into(),
                format!("{{\"i\":{i}}}"),
                None,
            )
            .unwrap();
        }
    }

    fn offered() -> Vec<String> {
        vec!["allow".into()]
    }

    const LIMITS: Limits = Limits {
        max_sessions: 0,
        ring_size: 5,
        ring_bytes: 0,
        max_pending_permissions: 4,
    };

    #[test]
    fn a_new_session_has_a_ring_and_can_hold_permission_requests() {
        let mut core = core_with(LIMITS);
        let session = new_session(&mut core, "/ws");
        assert_eq!(core.last_id(&session.id), Ok(0));
        assert_eq!(
            core.publish(&session.id, "k".into(), "{}".into(), None),
            Ok(1)
        );
        assert!(core.register(&session.id, offered()).is_ok());
    }

    #[test]
    fn each_session_has_its_own_id_sequence() {
        let mut core = core_with(LIMITS);
        let a = new_session(&mut core, "/ws");
        let b = new_session(&mut core, "/ws");
        publish_n(&mut core, &a.id, 3);
        assert_eq!(core.publish(&b.id, "k".into(), "{}".into(), None), Ok(1));
        assert_eq!(core.last_id(&a.id), Ok(3));
    }

    #[test]
    fn unknown_sessions_are_refused_everywhere() {
        let mut core = core_with(LIMITS);
        assert_eq!(
            core.publish("nope", "k".into(), "{}".into(), None),
            Err(PublishError::UnknownSession)
        );
        assert_eq!(core.replay("nope", 0), Err(PublishError::UnknownSession));
        assert_eq!(core.last_id("nope"), Err(PublishError::UnknownSession));
        assert_eq!(
            core.register("nope", offered()),
            Err(RegisterError::UnknownSession)
        );
        assert!(core.cancel_session("nope").is_empty());
    }

    #[test]
    fn removing_a_session_frees_its_ring_and_its_requests() {
        let mut core = core_with(LIMITS);
        let session = new_session(&mut core, "/ws");
        publish_n(&mut core, &session.id, 3);
        let request = core.register(&session.id, offered()).unwrap();

        assert_eq!(
            core.remove(&session.id).map(|s| s.id),
            Some(session.id.clone())
        );
        assert_eq!(
            core.replay(&session.id, 0),
            Err(PublishError::UnknownSession)
        );
        assert_eq!(
            core.vote(&request, Outcome::Cancelled),
            Err(VoteError::NotFound)
        );
        assert_eq!(
            core.stats(),
            Stats {
                sessions: 0,
                creates_in_flight: 0,
                pending_permissions: 0
            }
        );
        assert!(core.rings.is_empty(), "the ring's memory is released");
    }

    #[test]
    fn restore_continues_the_event_ids_after_the_last_one() {
        let mut core = core_with(LIMITS);
        let session = Session {
            id: "restored".into(),
            workspace: "/ws".into(),
            agent_session_id: "agent".into(),
            attach_count: 2,
        };
        core.restore(session.clone(), 17);
        assert_eq!(core.get("restored"), Some(&session));
        assert_eq!(core.last_id("restored"), Ok(17));
        assert_eq!(core.replay("restored", 0), Ok(vec![]));
        assert_eq!(
            core.publish("restored", "k".into(), "{}".into(), None),
            Ok(18)
        );
        assert!(core.register("restored", offered()).is_ok());
    }

    #[test]
    fn configure_applies_retention_to_live_rings() {
        let mut core = core_with(Limits {
            ring_size: 10,
            ..LIMITS
        });
        let session = new_session(&mut core, "/ws");
        publish_n(&mut core, &session.id, 10);
        core.configure(Limits {
            ring_size: 2,
            ..LIMITS
        });
        let ids: Vec<u64> = core
            .replay(&session.id, 0)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![9, 10]);
    }

    #[test]
    fn configure_applies_the_permission_cap() {
        let mut core = core_with(Limits {
            max_pending_permissions: 1,
            ..LIMITS
        });
        let session = new_session(&mut core, "/ws");
        core.register(&session.id, offered()).unwrap();
        assert_eq!(
            core.register(&session.id, offered()),
            Err(RegisterError::TooManyPending(1))
        );
    }

    #[test]
    fn stats_count_sessions_creates_and_pending_requests() {
        let mut core = core_with(Limits {
            max_sessions: 3,
            ..LIMITS
        });
        let a = new_session(&mut core, "/a");
        let b = new_session(&mut core, "/b");
        let Ok(OpenOutcome::Create(_)) = core.open("/c", Scope::Single) else {
            panic!()
        };
        core.register(&a.id, offered()).unwrap();
        core.register(&b.id, offered()).unwrap();
        core.register(&b.id, offered()).unwrap();
        assert_eq!(
            core.stats(),
            Stats {
                sessions: 2,
                creates_in_flight: 1,
                pending_permissions: 3
            }
        );
        assert_eq!(
            core.open("/d", Scope::Thread),
            Err(OpenError::LimitExceeded(3))
        );
    }

    #[test]
    fn session_and_request_ids_are_drawn_from_the_injected_source() {
        let mut core = core_with(LIMITS);
        let session = new_session(&mut core, "/ws");
        let request = core.register(&session.id, offered()).unwrap();
        assert_eq!((session.id.as_str(), request.as_str()), ("id-1", "id-2"));
    }

    #[test]
    fn default_limits_are_the_daemons_defaults() {
        let core = Core::new(|| String::from("x"));
        assert_eq!(
            core.limits(),
            Limits {
                max_sessions: 20,
                ring_size: 4000,
                ring_bytes: 8 << 20,
                max_pending_permissions: 64
            }
        );
    }
}
