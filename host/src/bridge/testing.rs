//! Test support for the bridge's unit tests: an [`Inner`] over fakes behind
//! the seams (`seams.rs`), with no Wasm and no agent process.
//!
//! The core is its real logic (`qserve-core-logic`) run natively, so the
//! tests exercise the bridge's handling of the core's real answers; the
//! policy allows every session and hands every permission to the clients;
//! agents are in-process ACP agents on a pipe ([`PipeSpawner`]), spoken to
//! by the daemon's real JSON-RPC connection.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use qserve_acp::{AgentCommand, ExitInfo, SpawnError};
use qserve_http::{PolicyInfo, PolicyReload};
use qserve_runtime::{
    AccessDecision, Context, CoreFault, CoreStats, Event, FileAccess, GuestActor, OpenError,
    OpenOutcome, PermissionAnswer, PermissionDecision, PermissionOption, PolicyHealth,
    PolicyIdentity, RegisterError, Resolution, ResolvedPath, Scope, Session, ToolCall, VoteError,
    VoteOutcome,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use qserve_core_logic as logic;

use super::seams::{AgentPipes, AgentProc, CoreApi, Decider, PolicySource, Spawner};
use super::{AgentDefs, BridgeConfig, Hub, Inner};
use crate::policy::decision_log::DecisionLog;
use crate::policy::slot::{Active, ComponentSpec, ConfigSpec, PolicySources, ReloadError};

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

/// A policy that allows every session and file access and hands every
/// permission to the clients.
struct AskEverything {
    identity: PolicyIdentity,
}

fn allow() -> AccessDecision {
    AccessDecision {
        allow: true,
        reason: "test policy".into(),
        fault: None,
        latency: Duration::ZERO,
    }
}

impl Decider for AskEverything {
    fn identity(&self) -> &PolicyIdentity {
        &self.identity
    }
    fn health(&self) -> PolicyHealth {
        PolicyHealth {
            in_flight: 0,
            stuck: 0,
            faults: 0,
            recent_faults: 0,
            last_fault: None,
        }
    }
    fn decide_permission<'a>(
        &'a self,
        _: &'a Context,
        _: &'a ToolCall,
        _: &'a [PermissionOption],
    ) -> BoxFuture<'a, PermissionDecision> {
        Box::pin(async {
            PermissionDecision {
                answer: PermissionAnswer::AskClients(None),
                verdict: "ask",
                reason: "test policy".into(),
                fault: None,
                latency: Duration::ZERO,
            }
        })
    }
    fn decide_session<'a>(&'a self, _: &'a Context) -> BoxFuture<'a, AccessDecision> {
        Box::pin(async { allow() })
    }
    fn decide_file<'a>(
        &'a self,
        _: &'a Context,
        _: FileAccess,
        _: &'a ResolvedPath,
    ) -> BoxFuture<'a, AccessDecision> {
        Box::pin(async { allow() })
    }
}

/// The slot holding [`AskEverything`].
struct TestPolicy(Active);

impl TestPolicy {
    fn new() -> Self {
        let identity = PolicyIdentity {
            name: "test".into(),
            version: "0".into(),
            sha256: "0".repeat(64),
            origin: "test".into(),
            loaded_at_ms: 0,
        };
        let info = PolicyInfo {
            name: identity.name.clone(),
            version: identity.version.clone(),
            sha256: identity.sha256.clone(),
            origin: identity.origin.clone(),
            loaded_at_ms: 0,
        };
        TestPolicy(Active {
            policy: Arc::new(AskEverything { identity }),
            info,
            sources: PolicySources {
                component: ComponentSpec::Named("test".into()),
                config: ConfigSpec::None,
            },
        })
    }
}

impl PolicySource for TestPolicy {
    fn current(&self) -> Active {
        self.0.clone()
    }
    fn info(&self) -> PolicyInfo {
        self.0.info.clone()
    }
    fn reload_startup(&self) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(async { Err(ReloadError::Gone) })
    }
    fn reload_admin(
        &self,
        _: PolicyReload,
    ) -> BoxFuture<'_, Result<(PolicyInfo, PolicyInfo), ReloadError>> {
        Box::pin(async { Err(ReloadError::Gone) })
    }
}

/// Starts in-process ACP agents on a pipe, and counts them. Each answers
/// `initialize` once the test lets it (`release_initialize`), so a test can
/// hold a spawn in flight.
#[derive(Clone)]
pub struct PipeSpawner {
    pub spawned: Arc<AtomicUsize>,
    initialize: Arc<tokio::sync::Semaphore>,
}

impl PipeSpawner {
    pub fn new() -> Self {
        PipeSpawner {
            spawned: Arc::default(),
            initialize: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// Let `n` held `initialize` requests be answered.
    pub fn release_initialize(&self, n: usize) {
        self.initialize.add_permits(n);
    }
}

impl Spawner for PipeSpawner {
    fn spawn(&self, _: &AgentCommand, _: &Path, _: &[&str]) -> Result<AgentPipes, SpawnError> {
        self.spawned.fetch_add(1, Ordering::AcqRel);
        let (daemon_end, agent_end) = tokio::io::duplex(1 << 16);
        let (stdout, stdin) = tokio::io::split(daemon_end);
        tokio::spawn(pipe_agent(agent_end, self.initialize.clone()));
        Ok((Box::new(PipeProcess), Box::new(stdin), Box::new(stdout)))
    }
}

/// An in-process agent: `initialize` (when released), `session/new`
/// (`pipe-session-N`); anything else is `-32601`.
async fn pipe_agent(pipe: tokio::io::DuplexStream, initialize: Arc<tokio::sync::Semaphore>) {
    let (from_daemon, mut to_daemon) = tokio::io::split(pipe);
    let mut lines = BufReader::new(from_daemon).lines();
    let mut sessions = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (message.get("id"), message["method"].as_str()) else {
            continue;
        };
        let answer = match method {
            "initialize" => {
                initialize.acquire().await.unwrap().forget();
                json!({ "jsonrpc": "2.0", "id": id, "result": { "protocolVersion": 1, "agentCapabilities": {} } })
            }
            "session/new" => {
                sessions += 1;
                json!({ "jsonrpc": "2.0", "id": id, "result": { "sessionId": format!("pipe-session-{sessions}") } })
            }
            _ => {
                json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "Method not found" } })
            }
        };
        let mut bytes = answer.to_string().into_bytes();
        bytes.push(b'\n');
        if to_daemon.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// A pipe agent's "process": it never exits on its own.
struct PipeProcess;

impl AgentProc for PipeProcess {
    fn pid(&self) -> u32 {
        0
    }
    fn kill_group(&self) {}
    fn tree_rss_bytes(&self) -> u64 {
        0
    }
    fn wait(&self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(futures::future::pending())
    }
    fn stderr_tail(&self, _: Duration) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
    fn terminate(&self, _: Duration) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async {
            ExitInfo {
                code: Some(0),
                signal: None,
            }
        })
    }
}

/// A bridge over the native core; its hub thread is real (as in the daemon).
pub fn inner(permission_timeout: Duration) -> Arc<Inner> {
    inner_with(permission_timeout, PipeSpawner::new())
}

/// As [`inner`], with the agents started by `spawner`.
pub fn inner_with(permission_timeout: Duration, spawner: PipeSpawner) -> Arc<Inner> {
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
        policy: Arc::new(TestPolicy::new()),
        shadow: None,
        decisions: DecisionLog::disabled(),
        agent_info,
        waiters: Arc::default(),
        spawner: Arc::new(spawner),
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

/// Awaits `future` without ever leaving the runtime idle: with time paused,
/// an idle runtime would jump the clock (and fire `--init-timeout` or a
/// permission deadline) while a test holds a spawn or the hub.
pub async fn busy<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    // Bounded, so a bug that never finishes fails instead of hanging.
    for _ in 0..1_000_000 {
        if let std::task::Poll::Ready(value) = futures::poll!(&mut future) {
            return value;
        }
        tokio::task::yield_now().await;
    }
    panic!("not done after a million polls");
}

/// Lets every ready task run (each queues its hub job, or drains its
/// subscriber, in turn).
pub async fn settle() {
    for _ in 0..256 {
        tokio::task::yield_now().await;
    }
}
