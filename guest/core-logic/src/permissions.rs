//! Pending permission requests: which option ids were offered, and which
//! vote resolves each request (the first valid one; later votes lose).
//!
//! Only the ids are kept: a vote is checked against them, and the options'
//! labels and kinds are the host's business (it shows them to clients and
//! hands them to the policy), so they need not cross into the core.
//!
//! The host owns the clock: it arms a timer per request and calls `expire`
//! when it fires. This module only decides the outcome.

use crate::fast_map::FastMap;
use crate::ids::{mint_unique, IdSource};

/// How a request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Selected(String),
    Cancelled,
}

/// A resolved request, to be answered to the agent and announced to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub request_id: String,
    pub session_id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("unknown session")]
    UnknownSession,
    #[error("the session already has {0} pending permission requests")]
    TooManyPending(u32),
    #[error("the id source kept returning ids already in use")]
    IdsExhausted,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// Unknown, or already resolved (the first vote won).
    #[error("no such pending permission request")]
    NotFound,
    /// The option was not offered; the request stays pending.
    #[error("the option was not offered")]
    InvalidOption,
}

#[derive(Debug)]
struct PendingRequest {
    session_id: String,
    option_ids: Vec<String>,
}

/// Pending requests of every known session.
#[derive(Debug)]
pub struct PendingPermissions {
    requests: FastMap<String, PendingRequest>,
    /// Known sessions → their pending request ids, oldest first (at most
    /// `max_per_session`, so removing from the list is cheap).
    by_session: FastMap<String, Vec<String>>,
    max_per_session: u32,
}

impl PendingPermissions {
    pub fn new(max_per_session: u32) -> Self {
        Self {
            requests: FastMap::default(),
            by_session: FastMap::default(),
            max_per_session,
        }
    }

    /// Changes the per-session cap; requests already pending stay.
    pub fn set_max_per_session(&mut self, max_per_session: u32) {
        self.max_per_session = max_per_session;
    }

    /// Makes a session known, so requests can be registered for it.
    pub fn track_session(&mut self, session_id: &str) {
        self.by_session.entry(session_id.to_owned()).or_default();
    }

    /// Forgets a session and drops its pending requests unresolved (callers
    /// that must answer them use `cancel_session` first).
    pub fn forget_session(&mut self, session_id: &str) {
        for request_id in self.by_session.remove(session_id).unwrap_or_default() {
            self.requests.remove(&request_id);
        }
    }

    /// Registers a request awaiting votes; returns its fresh id from `ids`.
    /// `option_ids` are the offered options: a vote must name one of them.
    pub fn register(
        &mut self,
        session_id: &str,
        option_ids: Vec<String>,
        ids: &mut dyn IdSource,
    ) -> Result<String, RegisterError> {
        let pending = self
            .by_session
            .get(session_id)
            .ok_or(RegisterError::UnknownSession)?;
        if pending.len() >= self.max_per_session as usize {
            return Err(RegisterError::TooManyPending(self.max_per_session));
        }
        let request_id = mint_unique(ids, |id| self.requests.contains_key(id))
            .ok_or(RegisterError::IdsExhausted)?;
        self.by_session
            .get_mut(session_id)
            .expect("checked above")
            .push(request_id.clone());
        self.requests.insert(
            request_id.clone(),
            PendingRequest {
                session_id: session_id.to_owned(),
                option_ids,
            },
        );
        Ok(request_id)
    }

    /// A client's vote; the first valid one resolves the request. A vote for
    /// an option not offered is refused and leaves the request pending.
    pub fn vote(&mut self, request_id: &str, outcome: Outcome) -> Result<Resolution, VoteError> {
        let request = self.requests.get(request_id).ok_or(VoteError::NotFound)?;
        if let Outcome::Selected(option_id) = &outcome {
            if !request.option_ids.contains(option_id) {
                return Err(VoteError::InvalidOption);
            }
        }
        Ok(self.resolve(request_id, outcome).expect("checked above"))
    }

    /// The request's deadline passed: resolves it cancelled if still pending.
    pub fn expire(&mut self, request_id: &str) -> Option<Resolution> {
        self.resolve(request_id, Outcome::Cancelled)
    }

    /// Resolves every pending request of a session cancelled, oldest first.
    pub fn cancel_session(&mut self, session_id: &str) -> Vec<Resolution> {
        let Some(pending) = self.by_session.get_mut(session_id) else {
            return Vec::new();
        };
        std::mem::take(pending)
            .into_iter()
            .filter_map(|request_id| {
                let request = self.requests.remove(&request_id)?;
                Some(Resolution {
                    request_id,
                    session_id: request.session_id,
                    outcome: Outcome::Cancelled,
                })
            })
            .collect()
    }

    /// The option ids offered with a pending request.
    pub fn option_ids(&self, request_id: &str) -> Option<&[String]> {
        self.requests
            .get(request_id)
            .map(|request| request.option_ids.as_slice())
    }

    /// Pending requests over all sessions.
    pub fn pending_count(&self) -> usize {
        self.requests.len()
    }

    /// Pending requests of one session.
    pub fn pending_for(&self, session_id: &str) -> usize {
        self.by_session.get(session_id).map_or(0, Vec::len)
    }

    fn resolve(&mut self, request_id: &str, outcome: Outcome) -> Option<Resolution> {
        let (request_id, request) = self.requests.remove_entry(request_id)?;
        if let Some(pending) = self.by_session.get_mut(&request.session_id) {
            pending.retain(|id| *id != request_id);
        }
        Some(Resolution {
            request_id,
            session_id: request.session_id,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_ids() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("r{next}")
        }
    }

    fn offered() -> Vec<String> {
        vec!["allow".into(), "reject".into()]
    }

    fn with_session(cap: u32) -> PendingPermissions {
        let mut pending = PendingPermissions::new(cap);
        pending.track_session("s1");
        pending
    }

    fn selected(option: &str) -> Outcome {
        Outcome::Selected(option.into())
    }

    #[test]
    fn register_hands_out_fresh_ids_for_known_sessions_only() {
        let mut pending = with_session(64);
        let mut ids = counting_ids();
        assert_eq!(pending.register("s1", offered(), &mut ids), Ok("r1".into()));
        assert_eq!(pending.register("s1", offered(), &mut ids), Ok("r2".into()));
        assert_eq!(
            pending.register("nope", offered(), &mut ids),
            Err(RegisterError::UnknownSession)
        );
        assert_eq!(pending.option_ids("r1"), Some(offered().as_slice()));
    }

    #[test]
    fn the_first_vote_wins_and_a_later_vote_is_not_found() {
        let mut pending = with_session(64);
        let request = pending
            .register("s1", offered(), &mut counting_ids())
            .unwrap();
        assert_eq!(
            pending.vote(&request, selected("allow")),
            Ok(Resolution {
                request_id: request.clone(),
                session_id: "s1".into(),
                outcome: selected("allow")
            })
        );
        assert_eq!(
            pending.vote(&request, selected("reject")),
            Err(VoteError::NotFound)
        );
        assert_eq!(
            pending.vote(&request, Outcome::Cancelled),
            Err(VoteError::NotFound)
        );
        assert_eq!(pending.option_ids(&request), None);
        assert_eq!(pending.pending_count(), 0);
    }

    #[test]
    fn an_option_not_offered_is_refused_and_the_request_stays_pending() {
        let mut pending = with_session(64);
        let request = pending
            .register("s1", offered(), &mut counting_ids())
            .unwrap();
        assert_eq!(
            pending.vote(&request, selected("allow_always")),
            Err(VoteError::InvalidOption)
        );
        assert_eq!(pending.pending_count(), 1);
        assert_eq!(
            pending.vote(&request, selected("reject")).unwrap().outcome,
            selected("reject")
        );
    }

    #[test]
    fn a_cancelled_vote_is_valid() {
        let mut pending = with_session(64);
        let request = pending
            .register("s1", offered(), &mut counting_ids())
            .unwrap();
        assert_eq!(
            pending.vote(&request, Outcome::Cancelled).unwrap().outcome,
            Outcome::Cancelled
        );
        assert_eq!(
            pending.vote("unknown", Outcome::Cancelled),
            Err(VoteError::NotFound)
        );
    }

    #[test]
    fn expire_cancels_only_what_is_still_pending() {
        let mut pending = with_session(64);
        let mut ids = counting_ids();
        let open = pending.register("s1", offered(), &mut ids).unwrap();
        let voted = pending.register("s1", offered(), &mut ids).unwrap();
        pending.vote(&voted, selected("allow")).unwrap();
        assert_eq!(
            pending.expire(&open).map(|r| r.outcome),
            Some(Outcome::Cancelled)
        );
        assert_eq!(pending.expire(&open), None);
        assert_eq!(pending.expire(&voted), None);
    }

    #[test]
    fn cancel_session_resolves_all_of_that_session_only() {
        let mut pending = with_session(64);
        pending.track_session("s2");
        let mut ids = counting_ids();
        let first = pending.register("s1", offered(), &mut ids).unwrap();
        let other = pending.register("s2", offered(), &mut ids).unwrap();
        let second = pending.register("s1", offered(), &mut ids).unwrap();

        let resolutions = pending.cancel_session("s1");
        let cancelled: Vec<(&str, &Outcome)> = resolutions
            .iter()
            .map(|r| (r.request_id.as_str(), &r.outcome))
            .collect();
        assert_eq!(
            cancelled,
            vec![
                (first.as_str(), &Outcome::Cancelled),
                (second.as_str(), &Outcome::Cancelled)
            ]
        );
        assert!(pending.cancel_session("s1").is_empty());
        assert_eq!(
            pending.vote(&first, Outcome::Cancelled),
            Err(VoteError::NotFound)
        );
        assert_eq!(pending.pending_for("s2"), 1);
        assert!(pending.option_ids(&other).is_some());
        // The session stays known: it can register again.
        assert!(pending.register("s1", offered(), &mut ids).is_ok());
    }

    #[test]
    fn the_per_session_cap_refuses_more_and_frees_on_resolution() {
        let mut pending = with_session(2);
        pending.track_session("s2");
        let mut ids = counting_ids();
        let first = pending.register("s1", offered(), &mut ids).unwrap();
        pending.register("s1", offered(), &mut ids).unwrap();
        assert_eq!(
            pending.register("s1", offered(), &mut ids),
            Err(RegisterError::TooManyPending(2))
        );
        assert!(
            pending.register("s2", offered(), &mut ids).is_ok(),
            "the cap is per session"
        );
        pending.vote(&first, Outcome::Cancelled).unwrap();
        assert!(pending.register("s1", offered(), &mut ids).is_ok());
    }

    #[test]
    fn forgetting_a_session_drops_its_requests() {
        let mut pending = with_session(64);
        let request = pending
            .register("s1", offered(), &mut counting_ids())
            .unwrap();
        pending.forget_session("s1");
        assert_eq!(pending.pending_count(), 0);
        assert_eq!(
            pending.vote(&request, Outcome::Cancelled),
            Err(VoteError::NotFound)
        );
        assert_eq!(
            pending.register("s1", offered(), &mut counting_ids()),
            Err(RegisterError::UnknownSession)
        );
    }
}
