//! The seams between the bridge and what it orchestrates, so that its races
//! get fast, deterministic unit tests (`race_tests.rs`, `testing.rs`): the
//! core ([`CoreApi`]), the policy slot ([`PolicySource`]) and a decision's
//! policy ([`Decider`]), the agent process and its spawn ([`AgentProc`],
//! [`Spawner`]) are traits here, implemented by today's types. Tests put
//! the core's plain-Rust logic behind [`CoreApi`], a scripted policy behind
//! [`Decider`], and an in-process ACP agent on a pipe behind [`Spawner`]
//! (the JSON-RPC connection itself is the real one), and run with time
//! paused.

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use qserve_acp::{AgentCommand, AgentProcess, ExitInfo, SpawnError};
use qserve_http::{PolicyInfo, PolicyReload};
use qserve_runtime::{
    AccessDecision, Context, CoreFault, CoreGuest, CoreStats, Event, FileAccess, OpenError,
    OpenOutcome, PermissionDecision, PermissionOption, Policy, PolicyHealth, PolicyIdentity,
    RegisterError, Resolution, ResolvedPath, Scope, Session, ToolCall, VoteError, VoteOutcome,
};
use tokio::io::{AsyncRead, AsyncWrite};

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

/// A policy as a decision uses it ([`Policy`], the sandboxed component).
pub trait Decider: Send + Sync {
    fn identity(&self) -> &PolicyIdentity;
    fn health(&self) -> PolicyHealth;
    fn decide_permission<'a>(
        &'a self,
        ctx: &'a Context,
        call: &'a ToolCall,
        options: &'a [PermissionOption],
    ) -> BoxFuture<'a, PermissionDecision>;
    fn decide_session<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, AccessDecision>;
    fn decide_file<'a>(
        &'a self,
        ctx: &'a Context,
        access: FileAccess,
        path: &'a ResolvedPath,
    ) -> BoxFuture<'a, AccessDecision>;
}

impl Decider for Policy {
    fn identity(&self) -> &PolicyIdentity {
        Policy::identity(self)
    }
    fn health(&self) -> PolicyHealth {
        Policy::health(self)
    }
    fn decide_permission<'a>(
        &'a self,
        ctx: &'a Context,
        call: &'a ToolCall,
        options: &'a [PermissionOption],
    ) -> BoxFuture<'a, PermissionDecision> {
        Box::pin(Policy::decide_permission(self, ctx, call, options))
    }
    fn decide_session<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, AccessDecision> {
        Box::pin(Policy::decide_session(self, ctx))
    }
    fn decide_file<'a>(
        &'a self,
        ctx: &'a Context,
        access: FileAccess,
        path: &'a ResolvedPath,
    ) -> BoxFuture<'a, AccessDecision> {
        Box::pin(Policy::decide_file(self, ctx, access, path))
    }
}

/// An agent's process as the bridge handles it ([`AgentProcess`]).
pub trait AgentProc: Send + Sync {
    fn pid(&self) -> u32;
    fn kill_group(&self);
    fn tree_rss_bytes(&self) -> u64;
    /// The exit; many may wait, and dropping the wait is harmless.
    fn wait(&self) -> BoxFuture<'_, ExitInfo>;
    fn stderr_tail(&self, wait: Duration) -> BoxFuture<'_, Vec<String>>;
    fn terminate(&self, grace: Duration) -> BoxFuture<'_, ExitInfo>;
}

impl AgentProc for AgentProcess {
    fn pid(&self) -> u32 {
        AgentProcess::pid(self)
    }
    fn kill_group(&self) {
        AgentProcess::kill_group(self)
    }
    fn tree_rss_bytes(&self) -> u64 {
        AgentProcess::tree_rss_bytes(self)
    }
    fn wait(&self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(AgentProcess::wait(self))
    }
    fn stderr_tail(&self, wait: Duration) -> BoxFuture<'_, Vec<String>> {
        Box::pin(AgentProcess::stderr_tail(self, wait))
    }
    fn terminate(&self, grace: Duration) -> BoxFuture<'_, ExitInfo> {
        Box::pin(AgentProcess::terminate(self, grace))
    }
}

/// A started agent: its process, its stdin, its stdout.
pub type AgentPipes = (
    Box<dyn AgentProc>,
    Box<dyn AsyncWrite + Send + Unpin>,
    Box<dyn AsyncRead + Send + Unpin>,
);

/// How an agent is started ([`AgentProcess::spawn`]: its own process group,
/// under the guard).
pub trait Spawner: Send + Sync {
    fn spawn(
        &self,
        command: &AgentCommand,
        cwd: &Path,
        scrub_env: &[&str],
    ) -> Result<AgentPipes, SpawnError>;
}

/// The daemon's spawner: real processes.
pub struct ProcessSpawner;

impl Spawner for ProcessSpawner {
    fn spawn(
        &self,
        command: &AgentCommand,
        cwd: &Path,
        scrub_env: &[&str],
    ) -> Result<AgentPipes, SpawnError> {
        let (process, stdin, stdout) = AgentProcess::spawn(command, cwd, scrub_env)?;
        Ok((Box::new(process), Box::new(stdin), Box::new(stdout)))
    }
}
