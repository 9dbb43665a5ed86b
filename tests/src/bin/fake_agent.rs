//! A fake ACP agent: speaks ACP JSON-RPC over stdio like `qwen --acp`, with
//! no model behind it. Each prompt is a command (the first text block), so
//! tests and benchmarks script exactly what the agent does.
//!
//! # Methods
//! - `initialize` → protocol 1, `agentCapabilities {loadSession:false,
//!   sessionCapabilities:{close:{}}}`; with
//!   `QWEN_CODE_PRIVATE_EXTERNAL_TOOL_GUARD=required-v1` in the environment
//!   also `_meta: {"qwen-code/external-tool-guard-ready": "required-v1"}`
//!   (what `qwen serve` insists on).
//! - `session/new` → `sessionId: "fake-session-N"` (N counts from 1 in each
//!   process, so two workspaces get the same id on purpose) and `models`.
//! - `session/prompt` → runs the command below.
//! - `session/set_model` → `{}`; `session/close` → `{}`;
//!   `session/cancel` (notification) cancels the running command.
//! - anything else → `-32601`.
//!
//! # Prompt commands (one per prompt)
//! - `chunks N [BYTES]`: N `agent_message_chunk` updates of about BYTES bytes
//!   of text each (default 64), each text starting `chunk I ` (I from 0).
//! - `permission [KIND]`: `session/request_permission` for a tool call of
//!   that kind (default `edit`) with options `proceed_once` (allow_once),
//!   `proceed_always` (allow_always), `cancel` (reject_once); then a chunk
//!   `outcome: selected OPTION` or `outcome: cancelled`.
//! - `permissions-until-cancel [KIND]`: permission requests one after the
//!   other until the turn is cancelled; then a chunk `permissions: sent N
//!   answered N selected S cancelled C ids FIRST..LAST` (hot-swap load).
//! - `edit NAME CONTENT`: a `plan`, a pending `tool_call`, a permission
//!   request (`proceed_once` "Allow" / `cancel` "Reject"); allowed, it
//!   writes CONTENT to NAME in the workspace (`fs/write_text_file`); the
//!   tool call ends `completed` or `failed`, then a chunk `edit: STATUS`.
//! - `write PATH CONTENT`: `fs/write_text_file` (in CONTENT, `\n` becomes a
//!   newline); a chunk reports `write: ok` or `write: error CODE MESSAGE`.
//! - `read PATH [LINE [LIMIT]]`: `fs/read_text_file`; a chunk reports
//!   `read: ok CONTENT` or `read: error CODE MESSAGE`.
//! - `sleep MS`: waits; ends early with `cancelled` on `session/cancel`.
//! - `nap MS`: a chunk `napping`, then as `sleep MS`.
//! - `crash`: a chunk, then the process exits with code 3 mid-turn.
//! - `hang`: never answers the prompt, ignores cancel.
//! - `fail DETAILS`: the prompt fails with `-32603 Internal error` and
//!   `data.details: DETAILS` (what qwen answers when its model is unreachable).
//! - `stuck TEXT`: a chunk TEXT, then like `hang`.
//! - `garbage`: non-JSON lines on stdout, then a chunk `after garbage`.
//! - `bigline BYTES`: one `session/update` line with BYTES of text.
//! - `ext`: sends `craft/drainMidTurnQueue` to the client; a chunk reports
//!   `ext: error CODE` or `ext: ok RESULT`.
//! - `unknown-update`: a `session/update` with `sessionUpdate:
//!   "future_variant_xyz"` and extra fields.
//! - `echo TEXT`: a chunk with TEXT.
//! - `deaf-reads PATH N`: stops reading stdin, sends N
//!   `fs/read_text_file` requests for PATH without waiting, a chunk
//!   `deaf-reads: sent N`, and never ends the turn.
//! - `foreign-updates N`: N `session/update`s for session ids never
//!   created (`foreign-0`…), then a chunk `foreign-updates: sent N`.
//! - `stderr TEXT`: TEXT on stderr (`\n` → newline, `\e` → ESC), then a
//!   chunk `stderr: written`.
//! - `env NAME…`: a chunk `env: NAME=set|unset …` (whether the agent was
//!   given each variable; never the value).
//!
//! Every command ends the turn with `end_turn`, or `cancelled` if
//! `session/cancel` arrived during it. Prompts of different sessions run
//! concurrently.
//!
//! # Environment knobs
//! - `FAKE_AGENT_INIT_DELAY_MS`: delay before answering `initialize`.
//! - `FAKE_AGENT_FAIL_NEW_SESSION=1`: `session/new` fails (`-32000`).
//! - `FAKE_AGENT_NO_SET_MODEL=1`: `session/set_model` answers `-32601`.
//! - `FAKE_AGENT_EXIT_ON_SET_MODEL=1`: `session/set_model` is never answered:
//!   the process exits with code 5 (a model switch racing the agent's death).
//! - `FAKE_AGENT_MODEL_CONFIG_OPTION=1`: `session/new` advertises a config
//!   option `fake-model-option` (category `model`) and
//!   `session/set_config_option` on it switches the model.
//! - `FAKE_AGENT_GRANDCHILD=1`: starts `sleep 300` in the agent's process
//!   group (to test that the daemon kills whole groups).
//! - `FAKE_AGENT_DETACHED_GRANDCHILD=1`: starts `sleep 300` in a session
//!   (and so a process group) of its own: no group kill reaches it.
//! - `FAKE_AGENT_PID_FILE=PATH`: writes the agent's pid on the first line,
//!   then the grandchild's and the detached grandchild's (if any), one a line.
//! - `FAKE_AGENT_IGNORE_STDIN_EOF=1`: keeps running after its stdin closes.
//! - `FAKE_AGENT_IGNORE_TERM=1`: SIGTERM is ignored (the daemon must SIGKILL).

// A crate root's modules resolve beside it, not in a folder of its name.
#[path = "fake_agent/commands.rs"]
mod commands;
#[path = "fake_agent/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use wire::{Incoming, Wire};

/// One ACP session of this agent.
struct Session {
    /// `true` while a `session/cancel` for the running prompt is in effect.
    cancelled: watch::Sender<bool>,
    model: Mutex<String>,
    cwd: String,
}

/// The agent's state, shared by the prompt tasks.
pub(crate) struct Agent {
    wire: Wire,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next_session: AtomicU64,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    eprintln!(
        "fake-agent: pid {} started in {}",
        std::process::id(),
        cwd_display()
    );
    let grandchild = env_flag("FAKE_AGENT_GRANDCHILD").then(|| spawn_grandchild(false));
    let detached = env_flag("FAKE_AGENT_DETACHED_GRANDCHILD").then(|| spawn_grandchild(true));
    if let Ok(path) = std::env::var("FAKE_AGENT_PID_FILE") {
        let mut text = format!("{}\n", std::process::id());
        for pid in grandchild.into_iter().chain(detached) {
            text.push_str(&format!("{pid}\n"));
        }
        // Written whole and renamed: a reader never sees half the pids.
        let partial = format!("{path}.partial");
        std::fs::write(&partial, text).expect("FAKE_AGENT_PID_FILE is writable");
        std::fs::rename(&partial, &path).expect("FAKE_AGENT_PID_FILE is writable");
    }
    if env_flag("FAKE_AGENT_IGNORE_TERM") {
        ignore_sigterm();
    }

    let (wire, mut incoming) = wire::start();
    let agent = Arc::new(Agent {
        wire,
        sessions: Mutex::new(HashMap::new()),
        next_session: AtomicU64::new(1),
    });
    while let Some(message) = incoming.recv().await {
        match message {
            Incoming::Request { id, method, params } => {
                let agent = agent.clone();
                // Each request on its own task: a slow prompt blocks nothing else.
                tokio::spawn(async move { agent.handle_request(id, &method, params).await });
            }
            Incoming::Notification { method, params } => {
                agent.handle_notification(&method, &params)
            }
        }
    }
    if env_flag("FAKE_AGENT_IGNORE_STDIN_EOF") {
        eprintln!("fake-agent: stdin closed, running on (FAKE_AGENT_IGNORE_STDIN_EOF=1)");
        std::future::pending::<()>().await;
    }
    // The client closed our stdin: exit, as ACP agents do.
    eprintln!("fake-agent: stdin closed, exiting");
    agent.wire.exit(0).await;
}

impl Agent {
    async fn handle_request(self: Arc<Self>, id: Value, method: &str, params: Value) {
        let result = match method {
            "initialize" => Ok(self.initialize().await),
            "session/new" => self.new_session(&params),
            "session/prompt" => match self.session(&params) {
                Ok(session) => match commands::run(&self, &params, &session).await {
                    Some(result) => result,
                    None => return, // `hang`
                },
                Err(e) => Err(e),
            },
            "session/set_model" if env_flag("FAKE_AGENT_EXIT_ON_SET_MODEL") => {
                eprintln!("fake-agent: exiting instead of switching the model");
                self.wire.exit(5).await
            }
            "session/set_model" if env_flag("FAKE_AGENT_NO_SET_MODEL") => {
                Err(method_not_found(method))
            }
            "session/set_model" => self.session(&params).map(|session| {
                let model = params["modelId"].as_str().unwrap_or_default().to_owned();
                *session.model.lock().unwrap() = model;
                json!({})
            }),
            "session/set_config_option" if env_flag("FAKE_AGENT_MODEL_CONFIG_OPTION") => {
                self.session(&params).and_then(|session| {
                    if params["configId"] != "fake-model-option" {
                        return Err(json!({"code": -32602, "message": "unknown configId"}));
                    }
                    let model = params["value"].as_str().unwrap_or_default().to_owned();
                    *session.model.lock().unwrap() = model;
                    Ok(json!({}))
                })
            }
            "session/close" => {
                let sid = params["sessionId"].as_str().unwrap_or_default();
                match self.sessions.lock().unwrap().remove(sid) {
                    Some(_) => Ok(json!({})),
                    None => Err(session_not_found(sid)),
                }
            }
            _ => Err(method_not_found(method)),
        };
        self.wire.respond(id, result).await;
    }

    fn handle_notification(&self, method: &str, params: &Value) {
        if method == "session/cancel" {
            if let Ok(session) = self.session(params) {
                session.cancelled.send_replace(true);
            }
        }
    }

    async fn initialize(&self) -> Value {
        if let Some(ms) = std::env::var("FAKE_AGENT_INIT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut result = json!({
            "protocolVersion": 1,
            "agentCapabilities": {"loadSession": false, "sessionCapabilities": {"close": {}}},
            "agentInfo": {"name": "fake-agent", "version": env!("CARGO_PKG_VERSION")},
            "authMethods": []
        });
        if std::env::var("QWEN_CODE_PRIVATE_EXTERNAL_TOOL_GUARD").is_ok_and(|v| v == "required-v1")
        {
            result["_meta"] = json!({"qwen-code/external-tool-guard-ready": "required-v1"});
        }
        result
    }

    fn new_session(&self, params: &Value) -> Result<Value, Value> {
        if env_flag("FAKE_AGENT_FAIL_NEW_SESSION") {
            return Err(
                json!({"code": -32000, "message": "fake agent: session/new fails (FAKE_AGENT_FAIL_NEW_SESSION=1)"}),
            );
        }
        let Some(cwd) = params["cwd"].as_str().filter(|cwd| cwd.starts_with('/')) else {
            return Err(json!({"code": -32602, "message": "session/new needs an absolute cwd"}));
        };
        let sid = format!(
            "fake-session-{}",
            self.next_session.fetch_add(1, Ordering::Relaxed)
        );
        let session = Session {
            cancelled: watch::channel(false).0,
            model: Mutex::new("fake-model-a".into()),
            cwd: cwd.to_owned(),
        };
        self.sessions
            .lock()
            .unwrap()
            .insert(sid.clone(), Arc::new(session));
        let mut result = json!({
            "sessionId": sid,
            "models": {
                "currentModelId": "fake-model-a",
                "availableModels": [
                    {"modelId": "fake-model-a", "name": "Fake model A"},
                    {"modelId": "fake-model-b", "name": "Fake model B"}
                ]
            }
        });
        if env_flag("FAKE_AGENT_MODEL_CONFIG_OPTION") {
            result["configOptions"] = json!([{
                "id": "fake-model-option",
                "name": "Model",
                "category": "model",
                "type": "select",
                "currentValue": "fake-model-a",
                "options": [{"value": "fake-model-a", "name": "A"}, {"value": "fake-model-b", "name": "B"}]
            }]);
        }
        Ok(result)
    }

    fn session(&self, params: &Value) -> Result<Arc<Session>, Value> {
        let sid = params["sessionId"].as_str().unwrap_or_default();
        self.sessions
            .lock()
            .unwrap()
            .get(sid)
            .cloned()
            .ok_or_else(|| session_not_found(sid))
    }
}

fn method_not_found(method: &str) -> Value {
    json!({"code": -32601, "message": format!("Method not found: {method}")})
}

fn session_not_found(sid: &str) -> Value {
    json!({"code": -32002, "message": format!("Session not found: {sid}")})
}

fn cwd_display() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// `sleep 300` in our process group (or, `detached`, in a session of its
/// own); it holds none of our pipes, so only a kill ends it early.
// Never waited for on purpose: it must outlive us unless it is killed.
#[allow(clippy::zombie_processes)]
fn spawn_grandchild(detached: bool) -> u32 {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut command = Command::new("sleep");
    command
        .arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if detached {
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
        }
    }
    command.spawn().expect("sleep starts").id()
}

fn ignore_sigterm() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::spawn(async move {
        while term.recv().await.is_some() {
            eprintln!("fake-agent: ignoring SIGTERM (FAKE_AGENT_IGNORE_TERM=1)");
        }
    });
}
