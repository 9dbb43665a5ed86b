//! The session registry: which sessions are live, on which workspace, how
//! many clients hold each, and which creates are in flight.
//!
//! Creating a session takes an agent round trip, so it is split in two:
//! `open` hands out a reservation (counted against the cap like a live
//! session), the caller talks to the agent, then `finish_create` or
//! `abort_create`. Concurrent single-scope opens for one workspace coalesce
//! onto the first reservation (`Wait`) instead of spawning twice.

use crate::fast_map::FastMap;
use crate::ids::{mint_unique, IdSource};

/// How a create for a workspace relates to that workspace's live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A create for a workspace that has a live session attaches to it.
    Single,
    /// Every create makes a new session.
    Thread,
}

/// A live session as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Daemon-unique id minted by the core (agents may reuse ACP ids).
    pub id: String,
    /// Canonical absolute workspace path.
    pub workspace: String,
    /// The id the agent gave the session in `session/new`.
    pub agent_session_id: String,
    /// Clients holding this session (creator included).
    pub attach_count: u32,
}

/// What the caller of [`SessionRegistry::open`] must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// A live session exists (single scope); its attach count was raised.
    Attached(Session),
    /// Create the agent session under this reservation, then finish or abort it.
    Create(u64),
    /// Another caller's create for this workspace is in flight under this
    /// reservation: wait for it, then attach to its result.
    Wait(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Live sessions plus in-flight creates reached the cap (carried).
    #[error("session limit reached ({0} live or being created)")]
    LimitExceeded(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishCreateError {
    #[error("unknown reservation {0} (aborted or already finished)")]
    UnknownReservation(u64),
    #[error("the id source kept returning ids already in use")]
    IdsExhausted,
}

#[derive(Debug)]
struct LiveSession {
    session: Session,
    /// Creation order, for "oldest first" listings.
    order: u64,
}

#[derive(Debug)]
struct Reservation {
    workspace: String,
    scope: Scope,
}

/// Live sessions and in-flight creates, with the session cap.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    live: FastMap<String, LiveSession>,
    reservations: FastMap<u64, Reservation>,
    /// The single-scope create in flight per workspace, for coalescing.
    single_creates: FastMap<String, u64>,
    last_reservation: u64,
    last_order: u64,
    /// Live plus in flight; 0 = unlimited.
    max_sessions: u32,
}

impl SessionRegistry {
    /// An empty registry; `max_sessions` 0 means unlimited.
    pub fn new(max_sessions: u32) -> Self {
        Self {
            max_sessions,
            ..Self::default()
        }
    }

    /// Changes the cap. Sessions already live stay, even above a lower cap.
    pub fn set_max_sessions(&mut self, max_sessions: u32) {
        self.max_sessions = max_sessions;
    }

    /// Attaches (single scope, live session), coalesces (single scope, create
    /// in flight) or reserves a create slot within the cap.
    pub fn open(&mut self, workspace: &str, scope: Scope) -> Result<OpenOutcome, OpenError> {
        if scope == Scope::Single {
            if let Some(id) = self.oldest_in_workspace(workspace) {
                let session = self.attach(&id).expect("the session was just found live");
                return Ok(OpenOutcome::Attached(session));
            }
            if let Some(&reservation) = self.single_creates.get(workspace) {
                return Ok(OpenOutcome::Wait(reservation));
            }
        }
        if self.max_sessions != 0 && self.occupied() >= self.max_sessions as usize {
            return Err(OpenError::LimitExceeded(self.max_sessions));
        }
        self.last_reservation += 1;
        let reservation = self.last_reservation;
        self.reservations.insert(
            reservation,
            Reservation {
                workspace: workspace.to_owned(),
                scope,
            },
        );
        if scope == Scope::Single {
            self.single_creates
                .insert(workspace.to_owned(), reservation);
        }
        Ok(OpenOutcome::Create(reservation))
    }

    /// Turns a reservation into a live session with attach count 1, under a
    /// fresh id from `ids` (redrawn while it collides with a live id).
    pub fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: String,
        ids: &mut dyn IdSource,
    ) -> Result<Session, FinishCreateError> {
        if !self.reservations.contains_key(&reservation) {
            return Err(FinishCreateError::UnknownReservation(reservation));
        }
        let id = mint_unique(ids, |id| self.live.contains_key(id))
            .ok_or(FinishCreateError::IdsExhausted)?;
        let Reservation { workspace, .. } = self.release(reservation).expect("checked above");
        let session = Session {
            id,
            workspace,
            agent_session_id,
            attach_count: 1,
        };
        self.insert_live(session.clone());
        Ok(session)
    }

    /// Gives a reservation's slot back; unknown reservations are ignored.
    pub fn abort_create(&mut self, reservation: u64) {
        self.release(reservation);
    }

    pub fn attach(&mut self, session_id: &str) -> Option<Session> {
        let live = self.live.get_mut(session_id)?;
        live.session.attach_count = live.session.attach_count.saturating_add(1);
        Some(live.session.clone())
    }

    /// Lowers the attach count, never below zero.
    pub fn detach(&mut self, session_id: &str) -> Option<Session> {
        let live = self.live.get_mut(session_id)?;
        live.session.attach_count = live.session.attach_count.saturating_sub(1);
        Some(live.session.clone())
    }

    pub fn get(&self, session_id: &str) -> Option<&Session> {
        self.live.get(session_id).map(|live| &live.session)
    }

    pub fn contains(&self, session_id: &str) -> bool {
        self.live.contains_key(session_id)
    }

    /// Live sessions of one workspace, oldest first.
    pub fn list_workspace(&self, workspace: &str) -> Vec<Session> {
        self.sorted(|session| session.workspace == workspace)
    }

    /// Every live session, oldest first.
    pub fn list_all(&self) -> Vec<Session> {
        self.sorted(|_| true)
    }

    pub fn remove(&mut self, session_id: &str) -> Option<Session> {
        self.live.remove(session_id).map(|live| live.session)
    }

    /// Re-registers a session after a core fault, as the newest session. A
    /// live session with the same id is replaced.
    pub fn restore(&mut self, session: Session) {
        self.insert_live(session);
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn creates_in_flight(&self) -> usize {
        self.reservations.len()
    }

    /// What the cap counts: live sessions plus in-flight creates.
    fn occupied(&self) -> usize {
        self.live.len() + self.reservations.len()
    }

    fn release(&mut self, reservation: u64) -> Option<Reservation> {
        let released = self.reservations.remove(&reservation)?;
        if released.scope == Scope::Single
            && self.single_creates.get(&released.workspace) == Some(&reservation)
        {
            self.single_creates.remove(&released.workspace);
        }
        Some(released)
    }

    fn insert_live(&mut self, session: Session) {
        self.last_order += 1;
        let order = self.last_order;
        self.live
            .insert(session.id.clone(), LiveSession { session, order });
    }

    fn oldest_in_workspace(&self, workspace: &str) -> Option<String> {
        self.live
            .values()
            .filter(|live| live.session.workspace == workspace)
            .min_by_key(|live| live.order)
            .map(|live| live.session.id.clone())
    }

    fn sorted(&self, keep: impl Fn(&Session) -> bool) -> Vec<Session> {
        let mut kept: Vec<&LiveSession> = self
            .live
            .values()
            .filter(|live| keep(&live.session))
            .collect();
        kept.sort_by_key(|live| live.order);
        kept.into_iter().map(|live| live.session.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids "s1", "s2", … so tests can name the sessions they expect.
    fn counting_ids() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("s{next}")
        }
    }

    fn created(
        registry: &mut SessionRegistry,
        ids: &mut dyn IdSource,
        workspace: &str,
        scope: Scope,
    ) -> Session {
        let Ok(OpenOutcome::Create(reservation)) = registry.open(workspace, scope) else {
            panic!("expected a create for {workspace}");
        };
        registry
            .finish_create(reservation, format!("agent-{reservation}"), ids)
            .unwrap()
    }

    #[test]
    fn single_scope_attaches_to_the_live_session() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let first = created(&mut registry, &mut ids, "/ws", Scope::Single);
        assert_eq!(first.attach_count, 1);

        let Ok(OpenOutcome::Attached(attached)) = registry.open("/ws", Scope::Single) else {
            panic!("a second single-scope open must attach");
        };
        assert_eq!(attached.id, first.id);
        assert_eq!(attached.attach_count, 2);
        assert_eq!(registry.live_count(), 1);
    }

    #[test]
    fn thread_scope_always_creates() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let first = created(&mut registry, &mut ids, "/ws", Scope::Thread);
        let second = created(&mut registry, &mut ids, "/ws", Scope::Thread);
        assert_ne!(first.id, second.id);
        assert_eq!(registry.list_workspace("/ws"), vec![first, second]);
    }

    #[test]
    fn session_ids_come_from_the_id_source_not_the_agent() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let Ok(OpenOutcome::Create(a)) = registry.open("/a", Scope::Single) else {
            panic!()
        };
        let Ok(OpenOutcome::Create(b)) = registry.open("/b", Scope::Single) else {
            panic!()
        };
        // Two agents returning the same ACP id still give two sessions.
        let first = registry
            .finish_create(a, "same-acp-id".into(), &mut ids)
            .unwrap();
        let second = registry
            .finish_create(b, "same-acp-id".into(), &mut ids)
            .unwrap();
        assert_eq!((first.id.as_str(), second.id.as_str()), ("s1", "s2"));
        assert_eq!(second.agent_session_id, "same-acp-id");
    }

    #[test]
    fn a_colliding_id_is_redrawn() {
        let mut registry = SessionRegistry::new(0);
        let mut draws = ["dup", "dup", "fresh"].into_iter().map(String::from);
        let mut ids = move || draws.next().unwrap();
        let first = created(&mut registry, &mut ids, "/a", Scope::Thread);
        let second = created(&mut registry, &mut ids, "/a", Scope::Thread);
        assert_eq!((first.id.as_str(), second.id.as_str()), ("dup", "fresh"));
    }

    #[test]
    fn cap_counts_live_sessions_and_creates_in_flight() {
        let mut registry = SessionRegistry::new(2);
        let mut ids = counting_ids();
        created(&mut registry, &mut ids, "/a", Scope::Single);
        let Ok(OpenOutcome::Create(_in_flight)) = registry.open("/b", Scope::Single) else {
            panic!()
        };
        assert_eq!(
            registry.open("/c", Scope::Single),
            Err(OpenError::LimitExceeded(2))
        );
        assert_eq!(
            registry.open("/c", Scope::Thread),
            Err(OpenError::LimitExceeded(2))
        );
    }

    #[test]
    fn attaching_bypasses_the_cap() {
        let mut registry = SessionRegistry::new(1);
        let mut ids = counting_ids();
        let live = created(&mut registry, &mut ids, "/a", Scope::Single);
        assert_eq!(
            registry.open("/b", Scope::Single),
            Err(OpenError::LimitExceeded(1))
        );
        let Ok(OpenOutcome::Attached(attached)) = registry.open("/a", Scope::Single) else {
            panic!("attach must not count against the cap");
        };
        assert_eq!(attached.id, live.id);
        assert_eq!(registry.attach(&live.id).unwrap().attach_count, 3);
    }

    #[test]
    fn concurrent_single_scope_opens_wait_for_the_create_in_flight() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let Ok(OpenOutcome::Create(reservation)) = registry.open("/ws", Scope::Single) else {
            panic!()
        };
        assert_eq!(
            registry.open("/ws", Scope::Single),
            Ok(OpenOutcome::Wait(reservation))
        );
        assert_eq!(
            registry.open("/ws", Scope::Single),
            Ok(OpenOutcome::Wait(reservation))
        );
        assert_eq!(registry.creates_in_flight(), 1, "waiters take no slot");
        // Thread scope does not coalesce.
        assert!(
            matches!(registry.open("/ws", Scope::Thread), Ok(OpenOutcome::Create(r)) if r != reservation)
        );

        let session = registry
            .finish_create(reservation, "agent".into(), &mut ids)
            .unwrap();
        let Ok(OpenOutcome::Attached(attached)) = registry.open("/ws", Scope::Single) else {
            panic!()
        };
        assert_eq!(attached.id, session.id);
    }

    #[test]
    fn aborting_a_create_frees_its_slot_and_lets_a_retry_create() {
        let mut registry = SessionRegistry::new(1);
        let Ok(OpenOutcome::Create(reservation)) = registry.open("/ws", Scope::Single) else {
            panic!()
        };
        assert_eq!(
            registry.open("/other", Scope::Single),
            Err(OpenError::LimitExceeded(1))
        );
        registry.abort_create(reservation);
        assert_eq!(registry.creates_in_flight(), 0);
        let Ok(OpenOutcome::Create(retry)) = registry.open("/ws", Scope::Single) else {
            panic!("after an abort a retry must create afresh, not wait");
        };
        assert_ne!(retry, reservation);
    }

    #[test]
    fn a_finished_or_aborted_reservation_cannot_be_finished() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let Ok(OpenOutcome::Create(done)) = registry.open("/a", Scope::Single) else {
            panic!()
        };
        registry.finish_create(done, "x".into(), &mut ids).unwrap();
        let Ok(OpenOutcome::Create(aborted)) = registry.open("/b", Scope::Single) else {
            panic!()
        };
        registry.abort_create(aborted);
        for reservation in [done, aborted, 999] {
            assert_eq!(
                registry.finish_create(reservation, "x".into(), &mut ids),
                Err(FinishCreateError::UnknownReservation(reservation))
            );
        }
        assert_eq!(registry.live_count(), 1);
    }

    #[test]
    fn detach_never_goes_below_zero() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let session = created(&mut registry, &mut ids, "/ws", Scope::Single);
        assert_eq!(registry.detach(&session.id).unwrap().attach_count, 0);
        assert_eq!(registry.detach(&session.id).unwrap().attach_count, 0);
        assert_eq!(registry.detach("missing"), None);
        assert_eq!(registry.attach("missing"), None);
    }

    #[test]
    fn listings_are_oldest_first_and_removal_frees_the_slot() {
        let mut registry = SessionRegistry::new(3);
        let mut ids = counting_ids();
        let a = created(&mut registry, &mut ids, "/a", Scope::Thread);
        let b = created(&mut registry, &mut ids, "/b", Scope::Thread);
        let a2 = created(&mut registry, &mut ids, "/a", Scope::Thread);
        assert_eq!(registry.list_all(), vec![a.clone(), b.clone(), a2.clone()]);
        assert_eq!(registry.list_workspace("/a"), vec![a.clone(), a2.clone()]);
        assert!(registry.list_workspace("/none").is_empty());

        assert_eq!(
            registry.open("/c", Scope::Thread),
            Err(OpenError::LimitExceeded(3))
        );
        assert_eq!(registry.remove(&b.id), Some(b.clone()));
        assert_eq!(registry.remove(&b.id), None);
        assert_eq!(registry.get(&b.id), None);
        assert!(matches!(
            registry.open("/c", Scope::Thread),
            Ok(OpenOutcome::Create(_))
        ));
    }

    #[test]
    fn single_scope_attaches_to_the_oldest_session_of_the_workspace() {
        let mut registry = SessionRegistry::new(0);
        let mut ids = counting_ids();
        let oldest = created(&mut registry, &mut ids, "/ws", Scope::Thread);
        created(&mut registry, &mut ids, "/ws", Scope::Thread);
        let Ok(OpenOutcome::Attached(attached)) = registry.open("/ws", Scope::Single) else {
            panic!()
        };
        assert_eq!(attached.id, oldest.id);
    }

    #[test]
    fn restore_keeps_the_id_and_attach_count() {
        let mut registry = SessionRegistry::new(0);
        let session = Session {
            id: "kept-id".into(),
            workspace: "/ws".into(),
            agent_session_id: "agent".into(),
            attach_count: 3,
        };
        registry.restore(session.clone());
        assert_eq!(registry.get("kept-id"), Some(&session));
        let Ok(OpenOutcome::Attached(attached)) = registry.open("/ws", Scope::Single) else {
            panic!()
        };
        assert_eq!(
            (attached.id.as_str(), attached.attach_count),
            ("kept-id", 4)
        );
    }
}
