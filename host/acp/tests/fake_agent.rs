//! qserve-acp against the fake ACP agent (`tests/src/bin/fake_agent.rs`):
//! a real child process, real pipes, the typed messages and the fs handlers.
//!
//! The binary belongs to another crate, so it is looked up in the target
//! directory and built there (`cargo build -p qserve-e2e --bin fake-agent`)
//! when it is missing: a test never passes by skipping.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qserve_acp::methods::{
    self, method, InitializeInfo, NewSessionInfo, PermissionOutcome, PermissionRequest,
    PromptResult, ReadTextFileParams, WriteTextFileParams,
};
use qserve_acp::{AgentCommand, AgentProcess, Connection, ConnectionConfig, Incoming, RpcError};
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn fake_agent_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // This test runs from target/<profile>/deps/.
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
            let binary = profile_dir.join("fake-agent");
            if !binary.exists() {
                let profile = profile_dir
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut build = std::process::Command::new(cargo);
                build
                    .args(["build", "-p", "qserve-e2e", "--bin", "fake-agent"])
                    .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
                match profile.as_str() {
                    "debug" => {}
                    "release" => {
                        build.arg("--release");
                    }
                    other => {
                        build.args(["--profile", other]);
                    }
                }
                let status = build.status().expect("running cargo");
                assert!(status.success(), "building the fake agent failed");
            }
            assert!(
                binary.exists(),
                "{} missing after building it",
                binary.display()
            );
            binary
        })
        .clone()
}

/// A running fake agent with its messages drained into `incoming`.
struct Harness {
    process: AgentProcess,
    conn: Connection,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    workspace: tempfile::TempDir,
}

/// Starts the fake agent with `env` settings (through `env VAR=… fake-agent`,
/// as an operator's `--agent` could).
async fn start(env: &[&str]) -> Harness {
    let binary = fake_agent_binary();
    let mut args: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    args.push(binary.display().to_string());
    let command = AgentCommand::new("env", args);
    let workspace = tempfile::tempdir().unwrap();
    let (process, stdin, stdout) = AgentProcess::spawn(&command, workspace.path(), &[]).unwrap();
    let config = ConnectionConfig {
        label: format!("pid={}", process.pid()),
        ..Default::default()
    };
    let (conn, mut receiver) = Connection::start(stdin, stdout, config);
    let (tx, incoming) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            let _ = tx.send(message);
        }
    });
    Harness {
        process,
        conn,
        incoming,
        workspace,
    }
}

impl Harness {
    async fn initialize(&self) -> InitializeInfo {
        let result = self
            .conn
            .request(method::INITIALIZE, methods::initialize_params())
            .await
            .unwrap();
        InitializeInfo::parse(&result).unwrap()
    }

    async fn new_session(&self) -> NewSessionInfo {
        let params = methods::new_session_params(self.workspace.path());
        NewSessionInfo::parse(
            &self
                .conn
                .request(method::SESSION_NEW, params)
                .await
                .unwrap(),
        )
        .unwrap()
    }

    /// Sends a prompt on a task of its own; the test handles what comes meanwhile.
    fn prompt(
        &self,
        session_id: &str,
        text: &str,
    ) -> tokio::task::JoinHandle<Result<Value, RpcError>> {
        let conn = self.conn.clone();
        let mut body = serde_json::Map::new();
        body.insert("prompt".into(), json!([{"type": "text", "text": text}]));
        let params = methods::prompt_params(session_id, body);
        tokio::spawn(async move { conn.request(method::SESSION_PROMPT, params).await })
    }

    async fn next(&mut self) -> Incoming {
        tokio::time::timeout(Duration::from_secs(10), self.incoming.recv())
            .await
            .expect("the agent sends something")
            .expect("messages until closed")
    }

    /// The text of the next `agent_message_chunk`.
    async fn next_chunk(&mut self) -> String {
        match self.next().await {
            Incoming::Notification { method, params } => {
                assert_eq!(method, method::SESSION_UPDATE);
                let params: Value = serde_json::from_str(params.get()).unwrap();
                params["update"]["content"]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
}

async fn finish(prompt: tokio::task::JoinHandle<Result<Value, RpcError>>) -> PromptResult {
    let result = tokio::time::timeout(Duration::from_secs(10), prompt)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    PromptResult::parse(&result).unwrap()
}

#[tokio::test]
async fn handshake_sessions_and_streamed_chunks() {
    let mut agent = start(&["QWEN_CODE_PRIVATE_EXTERNAL_TOOL_GUARD=required-v1"]).await;
    let init = agent.initialize().await;
    assert_eq!(init.protocol_version, 1);
    assert!(init.supports_close() && !init.supports_load_session());
    assert_eq!(
        init.meta("qwen-code/external-tool-guard-ready"),
        Some(&json!("required-v1"))
    );

    let first = agent.new_session().await;
    let second = agent.new_session().await;
    assert_eq!(
        (first.session_id.as_str(), second.session_id.as_str()),
        ("fake-session-1", "fake-session-2")
    );
    assert_eq!(
        first.models.unwrap().current_model_id.as_deref(),
        Some("fake-model-a")
    );

    let result = finish(agent.prompt("fake-session-1", "chunks 50 100")).await;
    assert_eq!(result.stop_reason, "end_turn");
    assert_eq!(
        agent.incoming.len(),
        50,
        "every chunk arrived before the prompt's answer"
    );
    for i in 0..50 {
        let text = agent.next_chunk().await;
        assert!(
            text.starts_with(&format!("chunk {i} ")) && text.len() == 100,
            "{text}"
        );
    }
}

#[tokio::test]
async fn permission_request_and_answer() {
    let mut agent = start(&[]).await;
    agent.initialize().await;
    let sid = agent.new_session().await.session_id;
    let prompt = agent.prompt(&sid, "permission execute");
    let Incoming::Request {
        method,
        params,
        responder,
    } = agent.next().await
    else {
        panic!("a permission request")
    };
    assert_eq!(method, method::SESSION_REQUEST_PERMISSION);
    assert_eq!(
        responder.id().get(),
        "0",
        "the agent's first request id is 0"
    );
    let request = PermissionRequest::parse(&params).unwrap();
    assert_eq!(request.session_id, sid);
    assert_eq!(request.tool_call.kind, "execute");
    assert_eq!(request.tool_call.locations.len(), 1);
    let ids: Vec<_> = request
        .options
        .iter()
        .map(|o| o.option_id.as_str())
        .collect();
    assert_eq!(ids, ["proceed_once", "proceed_always", "cancel"]);
    responder.respond(Ok(
        PermissionOutcome::Selected("proceed_once".into()).to_response()
    ));
    assert_eq!(agent.next_chunk().await, "outcome: selected proceed_once");
    assert_eq!(finish(prompt).await.stop_reason, "end_turn");
}

#[tokio::test]
async fn file_requests_through_the_fs_handlers() {
    let mut agent = start(&[]).await;
    agent.initialize().await;
    let sid = agent.new_session().await.session_id;
    let path = agent.workspace.path().join("notes/f.txt");

    let prompt = agent.prompt(&sid, &format!("write {} a\\nb\\nc", path.display()));
    let Incoming::Request {
        params, responder, ..
    } = agent.next().await
    else {
        panic!("fs/write_text_file")
    };
    responder.respond(WriteTextFileParams::parse(&params).unwrap().execute().await);
    assert_eq!(agent.next_chunk().await, "write: ok");
    finish(prompt).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\nc");

    for (args, expected) in [
        ("2 1", "read: ok b".to_owned()),
        (
            "1 0",
            format!("read: error {} invalid `limit` 0", RpcError::INVALID_PARAMS),
        ),
    ] {
        let prompt = agent.prompt(&sid, &format!("read {} {args}", path.display()));
        let Incoming::Request {
            params, responder, ..
        } = agent.next().await
        else {
            panic!("fs/read_text_file")
        };
        let answer = match ReadTextFileParams::parse(&params) {
            Ok(read) => read.execute().await,
            Err(e) => Err(e),
        };
        responder.respond(answer);
        let chunk = agent.next_chunk().await;
        assert!(
            chunk.starts_with(&expected),
            "{chunk:?} should start with {expected:?}"
        );
        finish(prompt).await;
    }
}

#[tokio::test]
async fn cancel_ends_a_sleeping_turn_and_a_hanging_session_blocks_no_other() {
    let mut agent = start(&[]).await;
    agent.initialize().await;
    let hanging = agent.new_session().await.session_id;
    let sleeping = agent.new_session().await.session_id;
    let _never = agent.prompt(&hanging, "hang");
    let started = Instant::now();
    let prompt = agent.prompt(&sleeping, "nap 20000");
    // Cancel the turn once it runs (a cancel before it would be forgotten).
    assert_eq!(agent.next_chunk().await, "napping");
    agent
        .conn
        .notify(
            method::SESSION_CANCEL,
            methods::session_id_params(&sleeping),
        )
        .unwrap();
    assert_eq!(finish(prompt).await.stop_reason, "cancelled");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn garbage_big_lines_extensions_and_unknown_updates() {
    let mut agent = start(&[]).await;
    agent.initialize().await;
    let sid = agent.new_session().await.session_id;

    let prompt = agent.prompt(&sid, "garbage");
    assert_eq!(agent.next_chunk().await, "after garbage");
    finish(prompt).await;

    let prompt = agent.prompt(&sid, "bigline 600000");
    assert_eq!(agent.next_chunk().await.len(), 600_000);
    finish(prompt).await;

    let prompt = agent.prompt(&sid, "ext");
    let Incoming::Request {
        method, responder, ..
    } = agent.next().await
    else {
        panic!("the extension request")
    };
    assert_eq!(method, "craft/drainMidTurnQueue");
    responder.respond(Err(RpcError::method_not_found(&method)));
    assert_eq!(agent.next_chunk().await, "ext: error -32601");
    finish(prompt).await;

    let prompt = agent.prompt(&sid, "unknown-update");
    let Incoming::Notification { params, .. } = agent.next().await else {
        panic!("the update")
    };
    assert!(
        params
            .get()
            .contains(r#""sessionUpdate":"future_variant_xyz""#),
        "{}",
        params.get()
    );
    assert!(
        params.get().contains(r#""nested":[1,2.5,"three"]"#),
        "{}",
        params.get()
    );
    finish(prompt).await;
}

#[tokio::test]
async fn a_crash_mid_turn_fails_the_prompt_at_once() {
    let mut agent = start(&[]).await;
    agent.initialize().await;
    let sid = agent.new_session().await.session_id;
    let prompt = agent.prompt(&sid, "crash");
    assert_eq!(agent.next_chunk().await, "crashing now");
    let err = tokio::time::timeout(Duration::from_secs(5), prompt)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    assert_eq!(agent.process.wait().await.code, Some(3));
    assert!(matches!(agent.next().await, Incoming::Closed { .. }));
}

#[tokio::test]
async fn a_term_ignoring_agent_and_its_grandchild_are_killed() {
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    let pid_env = format!("FAKE_AGENT_PID_FILE={}", pid_file.path().display());
    let agent = start(&[
        "FAKE_AGENT_GRANDCHILD=1",
        "FAKE_AGENT_IGNORE_TERM=1",
        &pid_env,
    ])
    .await;
    agent.initialize().await; // the pid file is written before the agent reads stdin
    let pids: Vec<i32> = std::fs::read_to_string(pid_file.path())
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "agent and grandchild");
    let info = agent.process.terminate(Duration::from_millis(300)).await;
    assert_eq!(info.signal, Some(9), "{info}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&pid| gone(pid)) {
        assert!(
            Instant::now() < deadline,
            "a process of the group survived: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn closing_stdin_makes_the_agent_exit() {
    let agent = start(&[]).await;
    agent.initialize().await;
    agent.conn.shutdown();
    let info = tokio::time::timeout(Duration::from_secs(5), agent.process.wait())
        .await
        .unwrap();
    assert_eq!(info.code, Some(0));
}

#[tokio::test]
async fn failing_session_creation_and_missing_set_model() {
    let agent = start(&["FAKE_AGENT_FAIL_NEW_SESSION=1", "FAKE_AGENT_NO_SET_MODEL=1"]).await;
    agent.initialize().await;
    let params = methods::new_session_params(agent.workspace.path());
    let err = agent
        .conn
        .request(method::SESSION_NEW, params)
        .await
        .unwrap_err();
    assert_eq!(err.code, -32000);
    let err = agent
        .conn
        .request(
            method::SESSION_SET_MODEL,
            methods::set_model_params("fake-session-1", "m"),
        )
        .await
        .unwrap_err();
    assert!(err.is_method_not_found(), "{err}");
}

/// Gone, or a zombie waiting to be reaped.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with(['Z', 'X'])),
    }
}
