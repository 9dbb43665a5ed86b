//! A scripted stand-in for the daemon's bridge. Answers depend on the input
//! (session id, cwd, request id), so each test picks a behaviour by name:
//!
//! - session id `missing` → 404; `agentfail` → 502 with data; `nomodel` → 501;
//!   `wedged` → 503; `boom` → 500; `busy` → 429 on subscribe;
//!   `hang` → prompt never answers (drop is recorded).
//! - cwd `/full` → session limit; `/refused` → policy refusal; `/fail` → 500.
//! - request id `lost` → 404; `bad-option` → 400 `invalid_option_id`.
//! - policy reload: component `builtin:broken` → 422; anything else becomes
//!   the active policy (its name is the component's name, or `uploaded`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use qserve_http::{
    Backend, BackendError, ComponentSource, ConfigSource, CreateSession, DeepHealth, EventFrame,
    PolicyHealth, PolicyInfo, PolicyReload, SessionCreated, SessionScope, SessionSummary,
    Subscription, VoteOutcome,
};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};

/// The test's handle on one open SSE subscription.
pub struct LiveHandle {
    pub sender: mpsc::Sender<EventFrame>,
    pub evicted: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct FakeBackend {
    /// Every call, as `method:argument`.
    calls: Mutex<Vec<String>>,
    /// Frames handed out as `replay` by the next subscribe.
    pub replay: Mutex<Vec<EventFrame>>,
    /// `last_event_id` of each subscribe, in order.
    pub subscribe_cursors: Mutex<Vec<Option<u64>>>,
    live: Mutex<Vec<LiveHandle>>,
    subscribed: Notify,
    /// Makes `/health?deep=1` fail.
    pub degraded: AtomicBool,
    /// Set when a `hang` prompt future was dropped (client went away).
    pub prompt_dropped: Arc<AtomicBool>,
    /// The body the last prompt received.
    pub last_prompt_body: Mutex<Option<Map<String, Value>>>,
    pub last_create: Mutex<Option<CreateSession>>,
    /// Makes `/health?deep=1` report a stuck policy.
    pub policy_stuck: AtomicBool,
    /// The active policy's name (changed by reloads).
    pub policy_name: Mutex<Option<String>>,
}

impl FakeBackend {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// Waits for the next subscription and returns its live handle.
    pub async fn next_live(&self) -> LiveHandle {
        loop {
            let notified = self.subscribed.notified();
            if let Some(handle) = self.live.lock().unwrap().pop() {
                return handle;
            }
            tokio::time::timeout(std::time::Duration::from_secs(5), notified)
                .await
                .expect("no subscription within 5 s");
        }
    }
}

fn session_error(session_id: &str) -> Option<BackendError> {
    Some(match session_id {
        "missing" => BackendError::NotFound(format!("session not found: {session_id}")),
        "agentfail" => BackendError::Agent {
            message: "agent error: Internal error".into(),
            data: Some(json!({ "code": -32603, "message": "Internal error" })),
        },
        "nomodel" => BackendError::NotSupported("agent does not support model switching".into()),
        "wedged" => BackendError::Unavailable("core guest did not answer".into()),
        "boom" => BackendError::Internal {
            message: "agent process died".into(),
            code: Some("agent_died"),
        },
        _ => return None,
    })
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Backend for FakeBackend {
    async fn create_or_attach(&self, req: CreateSession) -> Result<SessionCreated, BackendError> {
        self.record(format!("create:{}", req.cwd.display()));
        *self.last_create.lock().unwrap() = Some(req.clone());
        match req.cwd.to_str() {
            Some("/full") => Err(BackendError::SessionLimit { max: 20 }),
            Some("/refused") => Err(BackendError::Forbidden("policy says no".into())),
            Some("/fail") => Err(BackendError::Internal {
                message: "spawn failed: qwen not found".into(),
                code: None,
            }),
            _ => Ok(SessionCreated {
                session_id: "s-1".into(),
                workspace_cwd: req.cwd.display().to_string(),
                attached: req.scope == Some(SessionScope::Single),
                agent: req.agent.unwrap_or_else(|| "default".into()),
            }),
        }
    }

    async fn prompt(
        &self,
        session_id: &str,
        body: Map<String, Value>,
    ) -> Result<Value, BackendError> {
        self.record(format!("prompt:{session_id}"));
        *self.last_prompt_body.lock().unwrap() = Some(body);
        if session_id == "hang" {
            let _flag = DropFlag(Arc::clone(&self.prompt_dropped));
            std::future::pending::<()>().await;
        }
        match session_error(session_id) {
            Some(error) => Err(error),
            None => Ok(json!({ "stopReason": "end_turn" })),
        }
    }

    async fn cancel(&self, session_id: &str) -> Result<(), BackendError> {
        self.record(format!("cancel:{session_id}"));
        session_error(session_id).map_or(Ok(()), Err)
    }

    async fn subscribe(
        &self,
        session_id: &str,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, BackendError> {
        self.record(format!("subscribe:{session_id}"));
        self.subscribe_cursors.lock().unwrap().push(last_event_id);
        if session_id == "busy" {
            return Err(BackendError::TooManySubscribers { max: 64 });
        }
        if let Some(error) = session_error(session_id) {
            return Err(error);
        }
        let (sender, live) = mpsc::channel(256);
        let evicted = Arc::new(AtomicBool::new(false));
        self.live.lock().unwrap().push(LiveHandle {
            sender,
            evicted: Arc::clone(&evicted),
        });
        self.subscribed.notify_waiters();
        Ok(Subscription {
            replay: std::mem::take(&mut *self.replay.lock().unwrap()),
            live,
            evicted,
        })
    }

    async fn vote(&self, request_id: &str, outcome: VoteOutcome) -> Result<(), BackendError> {
        self.record(format!("vote:{request_id}:{outcome:?}"));
        match request_id {
            "lost" => Err(BackendError::NotFound("no pending permission lost".into())),
            "bad-option" => Err(BackendError::BadRequest {
                message: "option was not offered".into(),
                code: Some("invalid_option_id"),
            }),
            _ => Ok(()),
        }
    }

    async fn list_workspace(&self, cwd: PathBuf) -> Result<Vec<SessionSummary>, BackendError> {
        self.record(format!("list:{}", cwd.display()));
        if cwd.to_str() == Some("/idle") {
            return Ok(Vec::new());
        }
        Ok(vec![SessionSummary {
            session_id: "s-1".into(),
            workspace_cwd: cwd.display().to_string(),
            agent: "default".into(),
        }])
    }

    async fn set_model(&self, session_id: &str, model_id: String) -> Result<Value, BackendError> {
        self.record(format!("set_model:{session_id}:{model_id}"));
        if session_id == "nullreply" {
            return Ok(Value::Null);
        }
        match session_error(session_id) {
            Some(error) => Err(error),
            None => Ok(json!({ "modelId": model_id })),
        }
    }

    async fn close(&self, session_id: &str) -> Result<(), BackendError> {
        self.record(format!("close:{session_id}"));
        session_error(session_id).map_or(Ok(()), Err)
    }

    async fn deep_health(&self) -> Result<DeepHealth, BackendError> {
        self.record("deep_health".into());
        if self.degraded.load(Ordering::SeqCst) {
            return Err(BackendError::Unavailable("core guest is wedged".into()));
        }
        Ok(DeepHealth {
            sessions: 2,
            pending_permissions: 1,
            policy: PolicyHealth {
                stuck: usize::from(self.policy_stuck.load(Ordering::SeqCst)),
                ..PolicyHealth::default()
            },
        })
    }

    fn policy_info(&self) -> PolicyInfo {
        PolicyInfo {
            name: self
                .policy_name
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "ask-everyone".into()),
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
            origin: "builtin:default".into(),
            loaded_at_ms: 1,
        }
    }

    async fn reload_policy(&self, req: PolicyReload) -> Result<PolicyInfo, BackendError> {
        let component = match &req.component {
            Some(ComponentSource::Named(name)) => name.clone(),
            Some(ComponentSource::Uploaded(bytes)) => format!("uploaded:{}", bytes.len()),
            None => "same".into(),
        };
        let config = match &req.config {
            Some(ConfigSource::Inline(text)) => format!("inline:{text}"),
            Some(ConfigSource::Path(path)) => format!("path:{}", path.display()),
            None => "same".into(),
        };
        self.record(format!("reload_policy:{component}:{config}"));
        if component == "builtin:broken" {
            return Err(BackendError::PolicyRejected(
                "builtin:broken: init refused the config: nope".into(),
            ));
        }
        *self.policy_name.lock().unwrap() = Some(component);
        Ok(self.policy_info())
    }
}
