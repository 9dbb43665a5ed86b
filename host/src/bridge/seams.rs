//! The seams between the bridge and what it orchestrates, so that its races
//! get fast, deterministic unit tests (`bridge/race_tests.rs`): the core and
//! the policy slot are traits here, implemented by today's types
//! ([`CoreGuest`], [`PolicySlot`]); tests put the core's plain-Rust logic
//! (`qserve-core-logic`) behind [`CoreApi`] and run with time paused.
//!
//! Still concrete (see docs/architecture.md): the agent connection and
//! process (`AgentHost`), and a decision's `Policy` handle inside
//! [`Active`].

use futures::future::BoxFuture;
use qserve_http::{PolicyInfo, PolicyReload};
use qserve_runtime::{
    CoreFault, CoreGuest, CoreStats, Event, OpenError, OpenOutcome, RegisterError, Resolution,
    Scope, Session, VoteError, VoteOutcome,
};

use crate::policy::slot::{Active, PolicySlot, ReloadError};

/// What the bridge asks of the core (the session registry, the event ring,
/// pending permissions). Called only on the hub's thread.
pub trait CoreApi: Send {
    fn stats(&mut self) -> Result<CoreStats, CoreFault>;
    fn open(
        &mut self,
        workspace: &str,
        scope: Scope,
    ) -> Result<Result<OpenOutcome, OpenError>, CoreFault>;
    fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: &str,
    ) -> Result<Result<Session, String>, CoreFault>;
    fn abort_create(&mut self, reservation: u64) -> Result<(), CoreFault>;
    fn attach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault>;
    fn detach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault>;
    fn get(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault>;
    fn list_workspace(&mut self, workspace: &str) -> Result<Vec<Session>, CoreFault>;
    fn remove(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault>;
    /// `Ok(None)`: the session is gone.
    fn publish(
        &mut self,
        session_id: &str,
        kind: &str,
        data: &str,
        originator: Option<&str>,
    ) -> Result<Option<u64>, CoreFault>;
    /// The last id of the run; `Ok(None)`: the session is gone.
    fn publish_batch(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[String],
    ) -> Result<Option<u64>, CoreFault>;
    fn replay(&mut self, session_id: &str, after: u64) -> Result<Option<Vec<Event>>, CoreFault>;
    fn register_permission(
        &mut self,
        session_id: &str,
        option_ids: &[String],
    ) -> Result<Result<String, RegisterError>, CoreFault>;
    fn vote(
        &mut self,
        request_id: &str,
        outcome: &VoteOutcome,
    ) -> Result<Result<Resolution, VoteError>, CoreFault>;
    fn expire_permission(&mut self, request_id: &str) -> Result<Option<Resolution>, CoreFault>;
    fn cancel_permissions(&mut self, session_id: &str) -> Result<Vec<Resolution>, CoreFault>;
}

impl CoreApi for CoreGuest {
    fn stats(&mut self) -> Result<CoreStats, CoreFault> {
        CoreGuest::stats(self)
    }
    fn open(
        &mut self,
        workspace: &str,
        scope: Scope,
    ) -> Result<Result<OpenOutcome, OpenError>, CoreFault> {
        CoreGuest::open(self, workspace, scope)
    }
    fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: &str,
    ) -> Result<Result<Session, String>, CoreFault> {
        CoreGuest::finish_create(self, reservation, agent_session_id)
    }
    fn abort_create(&mut self, reservation: u64) -> Result<(), CoreFault> {
        CoreGuest::abort_create(self, reservation)
    }
    fn attach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        CoreGuest::attach(self, session_id)
    }
    fn detach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        CoreGuest::detach(self, session_id)
    }
    fn get(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        CoreGuest::get(self, session_id)
    }
    fn list_workspace(&mut self, workspace: &str) -> Result<Vec<Session>, CoreFault> {
        CoreGuest::list_workspace(self, workspace)
    }
    fn remove(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        CoreGuest::remove(self, session_id)
    }
    fn publish(
        &mut self,
        session_id: &str,
        kind: &str,
        data: &str,
        originator: Option<&str>,
    ) -> Result<Option<u64>, CoreFault> {
        CoreGuest::publish(self, session_id, kind, data, originator)
    }
    fn publish_batch(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[String],
    ) -> Result<Option<u64>, CoreFault> {
        CoreGuest::publish_batch(self, session_id, kind, datas)
    }
    fn replay(&mut self, session_id: &str, after: u64) -> Result<Option<Vec<Event>>, CoreFault> {
        CoreGuest::replay(self, session_id, after)
    }
    fn register_permission(
        &mut self,
        session_id: &str,
        option_ids: &[String],
    ) -> Result<Result<String, RegisterError>, CoreFault> {
        CoreGuest::register_permission(self, session_id, option_ids)
    }
    fn vote(
        &mut self,
        request_id: &str,
        outcome: &VoteOutcome,
    ) -> Result<Result<Resolution, VoteError>, CoreFault> {
        CoreGuest::vote(self, request_id, outcome)
    }
    fn expire_permission(&mut self, request_id: &str) -> Result<Option<Resolution>, CoreFault> {
        CoreGuest::expire_permission(self, request_id)
    }
    fn cancel_permissions(&mut self, session_id: &str) -> Result<Vec<Resolution>, CoreFault> {
        CoreGuest::cancel_permissions(self, session_id)
    }
}

/// Where the active policy lives and how it is swapped ([`PolicySlot`]).
pub trait PolicySource: Send + Sync {
    /// The policy a decision starting now runs on.
    fn current(&self) -> Active;
    fn info(&self) -> PolicyInfo;
    fn reload_startup(&self) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>>;
    fn reload_admin(
        &self,
        req: PolicyReload,
    ) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>>;
}

impl PolicySource for PolicySlot {
    fn current(&self) -> Active {
        PolicySlot::current(self)
    }
    fn info(&self) -> PolicyInfo {
        PolicySlot::info(self)
    }
    fn reload_startup(&self) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(PolicySlot::reload_startup(self))
    }
    fn reload_admin(
        &self,
        req: PolicyReload,
    ) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(PolicySlot::reload_admin(self, req))
    }
}
