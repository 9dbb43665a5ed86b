//! Test support for the bridge's unit tests: an [`Inner`] over fakes behind
//! the seams (`seams.rs`), with no Wasm and no agent process.
//!
//! The core is its real logic (`qserve-core-logic`) run natively, so the
//! tests exercise the bridge's handling of the core's real answers; the
//! policy slot refuses to be asked (these tests drive the paths after the
//! policy decided).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qserve_acp::AgentCommand;
use qserve_http::{PolicyInfo, PolicyReload};
use qserve_runtime::{
    CoreFault, CoreStats, Event, GuestActor, OpenError, OpenOutcome, RegisterError, Resolution,
    Scope, Session, VoteError, VoteOutcome,
};

use qserve_core_logic as logic;

use super::seams::{CoreApi, PolicySource};
use super::{AgentDefs, BridgeConfig, Hub, Inner};
use crate::policy::decision_log::DecisionLog;
use crate::policy::slot::{Active, ReloadError};

type Ids = Box<dyn FnMut() -> String + Send>;

/// The core's logic behind [`CoreApi`], without Wasm.
pub struct NativeCore(logic::Core<Ids>);

impl NativeCore {
    pub fn new() -> Self {
        let mut next = 0u64;
        NativeCore(logic::Core::new(Box::new(move || {
            next += 1;
            format!("id-{next}")
        })))
    }
}

fn session(s: logic::Session) -> Session {
    Session {
        id: s.id,
        workspace: s.workspace,
        agent_session_id: s.agent_session_id,
        attach_count: s.attach_count,
    }
}

fn outcome(o: logic::Outcome) -> VoteOutcome {
    match o {
        logic::Outcome::Selected(id) => VoteOutcome::Selected(id),
        logic::Outcome::Cancelled => VoteOutcome::Cancelled,
    }
}

fn resolution(r: logic::Resolution) -> Resolution {
    Resolution {
        request_id: r.request_id,
        session_id: r.session_id,
        outcome: outcome(r.outcome),
    }
}

impl CoreApi for NativeCore {
    fn stats(&mut self) -> Result<CoreStats, CoreFault> {
        let s = self.0.stats();
        Ok(CoreStats {
            sessions: s.sessions,
            creates_in_flight: s.creates_in_flight,
            pending_permissions: s.pending_permissions,
        })
    }
    fn open(
        &mut self,
        workspace: &str,
        scope: Scope,
    ) -> Result<Result<OpenOutcome, OpenError>, CoreFault> {
        let scope = match scope {
            Scope::Single => logic::Scope::Single,
            Scope::Thread => logic::Scope::Thread,
        };
        Ok(match self.0.open(workspace, scope) {
            Ok(logic::OpenOutcome::Attached(s)) => Ok(OpenOutcome::Attached(session(s))),
            Ok(logic::OpenOutcome::Create(r)) => Ok(OpenOutcome::Create(r)),
            Ok(logic::OpenOutcome::Wait(r)) => Ok(OpenOutcome::Wait(r)),
            Err(logic::OpenError::LimitExceeded(n)) => Err(OpenError::LimitExceeded(n)),
        })
    }
    fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: &str,
    ) -> Result<Result<Session, String>, CoreFault> {
        Ok(self
            .0
            .finish_create(reservation, agent_session_id.to_owned())
            .map(session)
            .map_err(|e| e.to_string()))
    }
    fn abort_create(&mut self, reservation: u64) -> Result<(), CoreFault> {
        self.0.abort_create(reservation);
        Ok(())
    }
    fn attach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        Ok(self.0.attach(session_id).map(session))
    }
    fn detach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        Ok(self.0.detach(session_id).map(session))
    }
    fn get(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        Ok(self.0.get(session_id).cloned().map(session))
    }
    fn list_workspace(&mut self, workspace: &str) -> Result<Vec<Session>, CoreFault> {
        Ok(self
            .0
            .list_workspace(workspace)
            .into_iter()
            .map(session)
            .collect())
    }
    fn remove(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        Ok(self.0.remove(session_id).map(session))
    }
    fn publish(
        &mut self,
        session_id: &str,
        kind: &str,
        data: &str,
        originator: Option<&str>,
    ) -> Result<Option<u64>, CoreFault> {
        Ok(self
            .0
            .publish(
                session_id,
                kind.to_owned(),
                data.to_owned(),
                originator.map(str::to_owned),
            )
            .ok())
    }
    fn publish_batch(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[String],
    ) -> Result<Option<u64>, CoreFault> {
        let mut last = None;
        for data in datas {
            last = self.publish(session_id, kind, data, None)?;
        }
        Ok(last)
    }
    fn replay(&mut self, session_id: &str, after: u64) -> Result<Option<Vec<Event>>, CoreFault> {
        Ok(self.0.replay(session_id, after).ok().map(|events| {
            events
                .into_iter()
                .map(|e| Event {
                    id: e.id,
                    kind: e.kind,
                    data: e.data,
                    originator: e.originator,
                })
                .collect()
        }))
    }
    fn register_permission(
        &mut self,
        session_id: &str,
        option_ids: &[String],
    ) -> Result<Result<String, RegisterError>, CoreFault> {
        Ok(self
            .0
            .register(session_id, option_ids.to_vec())
            .map_err(|e| match e {
                logic::RegisterError::UnknownSession => RegisterError::UnknownSession,
                logic::RegisterError::TooManyPending(n) => RegisterError::TooManyPending(n),
                error @ logic::RegisterError::IdsExhausted => panic!("{error}"),
            }))
    }
    fn vote(
        &mut self,
        request_id: &str,
        vote: &VoteOutcome,
    ) -> Result<Result<Resolution, VoteError>, CoreFault> {
        let vote = match vote {
            VoteOutcome::Selected(id) => logic::Outcome::Selected(id.clone()),
            VoteOutcome::Cancelled => logic::Outcome::Cancelled,
        };
        Ok(self
            .0
            .vote(request_id, vote)
            .map(resolution)
            .map_err(|e| match e {
                logic::VoteError::NotFound => VoteError::NotFound,
                logic::VoteError::InvalidOption => VoteError::InvalidOption,
            }))
    }
    fn expire_permission(&mut self, request_id: &str) -> Result<Option<Resolution>, CoreFault> {
        Ok(self.0.expire(request_id).map(resolution))
    }
    fn cancel_permissions(&mut self, session_id: &str) -> Result<Vec<Resolution>, CoreFault> {
        Ok(self
            .0
            .cancel_session(session_id)
            .into_iter()
            .map(resolution)
            .collect())
    }
}

/// A policy slot for tests that never reach a decision.
struct NoPolicy;

impl PolicySource for NoPolicy {
    fn current(&self) -> Active {
        unreachable!("these tests drive the bridge after the policy decided")
    }
    fn info(&self) -> PolicyInfo {
        unreachable!("not asked in these tests")
    }
    fn reload_startup(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(async { Err(ReloadError::Gone) })
    }
    fn reload_admin(
        &self,
        _: PolicyReload,
    ) -> futures::future::BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(async { Err(ReloadError::Gone) })
    }
}

/// A bridge over the native core; its hub thread is real (as in the daemon).
pub fn inner(permission_timeout: Duration) -> Arc<Inner> {
    let agents = AgentDefs::single(AgentCommand::parse("fake-agent").unwrap());
    let agent_info = agents.default_agent().info();
    let runtime = tokio::runtime::Handle::current();
    Arc::new(Inner {
        config: BridgeConfig {
            agents,
            default_scope: Scope::Single,
            permission_timeout,
            init_timeout: Duration::from_secs(10),
            max_line_bytes: 1 << 20,
            scrub_env: Vec::new(),
            model_switch_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(3),
            memory_budget: None,
            agent_mode: None,
            cancel_grace: Duration::from_secs(10),
            prompt_deadline: None,
            session_idle_timeout: None,
            max_pending_prompts: 0,
        },
        hub: GuestActor::spawn("core", move || {
            Hub::new(Box::new(NativeCore::new()), runtime)
        }),
        policy: Arc::new(NoPolicy),
        shadow: None,
        decisions: DecisionLog::disabled(),
        agent_info,
        waiters: Arc::default(),
        agents: Mutex::default(),
        sessions: Mutex::default(),
        in_flight: Mutex::default(),
        shutting_down: AtomicBool::new(false),
        tombstones: Mutex::default(),
    })
}

/// A live session in the core (the bridge's `LiveSession` needs an agent;
/// these tests need only the core's).
pub async fn core_session(inner: &Inner, workspace: &str) -> String {
    let workspace = workspace.to_owned();
    inner
        .hub
        .call(move |hub| {
            let Ok(Ok(OpenOutcome::Create(reservation))) = hub.core.open(&workspace, Scope::Thread)
            else {
                panic!("a fresh workspace creates");
            };
            hub.core
                .finish_create(reservation, "agent-session")
                .unwrap()
                .unwrap()
                .id
        })
        .await
        .unwrap()
}

/// The kinds and data of a session's events, from its ring.
pub async fn events(inner: &Inner, session_id: &str) -> Vec<(String, serde_json::Value)> {
    let sid = session_id.to_owned();
    inner
        .hub
        .call(move |hub| hub.core.replay(&sid, 0).unwrap().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, serde_json::from_str(&e.data).unwrap()))
        .collect()
}

/// Holds the hub's thread until the returned sender is dropped or sent to:
/// jobs queued meanwhile run afterwards, in the order they were queued.
pub async fn hold_hub(inner: &Inner) -> std::sync::mpsc::Sender<()> {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    inner
        .hub
        .submit(move |_| {
            let _ = gate.recv();
        })
        .await
        .unwrap();
    open
}
