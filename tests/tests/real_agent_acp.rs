//! Smoke test of the real agent, without the daemon: spawn `qwen --acp` against the mock
//! model and speak raw ACP JSON-RPC lines to it, the way qserve-host will. It pins down what
//! the daemon must cope with (request ids from 0, the permission request's shape, the agent's
//! fs/* requests, the three-process tree) before any daemon-level real-agent test relies on it.
//!
//! Run: `scripts/npm-deps.sh && cargo test -p qserve-e2e --test real_agent_acp -- --nocapture`
//! (the transcript of every message, with timings, goes to stderr).

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qserve_e2e::mock_openai::{MockOpenAi, Scenario, DONE_TEXT, HELLO_TEXT};
use qserve_e2e::process_group::{
    kill_group_and_wait, own_group, processes_with_home, signal_group,
};
use qserve_e2e::real_agent::{qwen_available_or_skip, RealAgentEnv};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// Cold start of the agent (three node processes) takes 3–8 s on an idle machine of this kind.
const COLD_START_TIMEOUT: Duration = Duration::from_secs(90);
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The client side of one ACP connection to a real agent process group.
struct AcpPeer {
    child: Child,
    pgid: u32,
    stdin: Option<ChildStdin>,
    incoming: mpsc::UnboundedReceiver<Value>,
    stderr_tail: Arc<Mutex<Vec<String>>>,
    next_id: u64,
    started: Instant,
    transcript: Vec<String>,
}

impl AcpPeer {
    fn spawn(agent: &RealAgentEnv) -> AcpPeer {
        let (program, args) = agent.command();
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(agent.workspace())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        agent.apply_to(&mut command);
        let mut child = own_group(&mut command)
            .spawn()
            .expect("spawning qwen --acp");
        let pgid = child.id().expect("a fresh child has a pid");

        let (sender, incoming) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            // No line cap: available_commands_update arrives as one ~560 kB line.
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(message) => {
                        if sender.send(message).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("agent stdout (not JSON): {line}"),
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr_tail);
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = tail.lock().unwrap();
                tail.push(line);
                if tail.len() > 50 {
                    tail.remove(0);
                }
            }
        });
        AcpPeer {
            stdin: child.stdin.take(),
            child,
            pgid,
            incoming,
            stderr_tail,
            next_id: 1,
            started: Instant::now(),
            transcript: Vec::new(),
        }
    }

    fn note(&mut self, direction: &str, message: &Value, bytes: usize) {
        let what = match (message.get("method"), message.get("id")) {
            (Some(method), Some(id)) => format!("request {method} id={id}"),
            (Some(method), None) => {
                let kind = message["params"]["update"]["sessionUpdate"]
                    .as_str()
                    .unwrap_or("");
                format!("notification {method} {kind}")
            }
            (None, Some(id)) if message.get("error").is_some() => {
                format!("error id={id} {}", message["error"])
            }
            (None, Some(id)) => format!("response id={id}"),
            (None, None) => "?".to_string(),
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut entry = format!("{elapsed:8.3}s {direction} {what} ({bytes} B)");
        if std::env::var_os("ACP_TRANSCRIPT_FULL").is_some() {
            let text = message.to_string();
            let shown: String = text.chars().take(1500).collect();
            entry.push_str(&format!("\n          {shown}"));
        }
        self.transcript.push(entry);
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        self.note("->", &message, line.len());
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(line.as_bytes())
            .await
            .expect("writing to the agent");
        stdin.flush().await.expect("flushing to the agent");
    }

    async fn request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    async fn respond(&mut self, id: &Value, result: Result<Value, (i64, String)>) {
        let message = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, text)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}})
            }
        };
        self.send(message).await;
    }

    async fn recv(&mut self, timeout: Duration) -> Value {
        match tokio::time::timeout(timeout, self.incoming.recv()).await {
            Ok(Some(message)) => {
                self.note("<-", &message, message.to_string().len());
                message
            }
            Ok(None) => self.fail("the agent closed its stdout"),
            Err(_) => self.fail(&format!("no message from the agent within {timeout:?}")),
        }
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\n--- transcript ---\n{}\n--- agent stderr (tail) ---\n{}",
            self.transcript.join("\n"),
            self.stderr_tail.lock().unwrap().join("\n")
        )
    }

    /// Waits for the response to `id`, handing every agent→client request to `on_request`
    /// and collecting every notification on the way.
    async fn until_response<F>(
        &mut self,
        id: u64,
        timeout: Duration,
        mut on_request: F,
    ) -> (Value, Vec<Value>)
    where
        F: FnMut(&str, &Value) -> Result<Value, (i64, String)>,
    {
        let mut notifications = Vec::new();
        loop {
            let message = self.recv(timeout).await;
            match (
                message.get("method").and_then(Value::as_str),
                message.get("id"),
            ) {
                (Some(method), Some(request_id)) => {
                    let answer = on_request(method, &message["params"]);
                    let request_id = request_id.clone();
                    self.respond(&request_id, answer).await;
                    notifications.push(message);
                }
                (Some(_), None) => notifications.push(message),
                (None, Some(response_id)) if response_id == &json!(id) => {
                    if let Some(error) = message.get("error") {
                        self.fail(&format!("request {id} failed: {error}"));
                    }
                    return (message["result"].clone(), notifications);
                }
                _ => self.fail(&format!("unexpected message {message}")),
            }
        }
    }

    /// Closes stdin, kills the whole process group and waits for every member to be gone.
    async fn shut_down(mut self) -> bool {
        drop(self.stdin.take());
        signal_group(self.pgid, nix::sys::signal::Signal::SIGTERM);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let pgid = self.pgid;
        tokio::task::spawn_blocking(move || kill_group_and_wait(pgid, Duration::from_secs(10)))
            .await
            .unwrap()
    }
}

impl Drop for AcpPeer {
    /// A failing test must not leave three node processes behind.
    fn drop(&mut self) {
        signal_group(self.pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The agent's text for one turn, from its `agent_message_chunk` updates.
fn agent_text(notifications: &[Value]) -> String {
    notifications
        .iter()
        .filter(|m| m["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
        .filter_map(|m| m["params"]["update"]["content"]["text"].as_str())
        .collect()
}

fn requests_named<'a>(notifications: &'a [Value], method: &str) -> Vec<&'a Value> {
    notifications
        .iter()
        .filter(|m| m["method"] == method && m.get("id").is_some())
        .collect()
}

/// Answers the agent's requests as qserve-host would, with a fixed permission choice.
fn client_handler(
    choose_option: &'static str,
) -> impl FnMut(&str, &Value) -> Result<Value, (i64, String)> {
    move |method, params| match method {
        "session/request_permission" => {
            Ok(json!({"outcome": {"outcome": "selected", "optionId": choose_option}}))
        }
        "fs/write_text_file" => {
            let path = params["path"]
                .as_str()
                .expect("fs/write_text_file has a path");
            let content = params["content"]
                .as_str()
                .expect("fs/write_text_file has content");
            std::fs::write(path, content).map_err(|e| (-32603, e.to_string()))?;
            Ok(json!({}))
        }
        "fs/read_text_file" => {
            let path = params["path"]
                .as_str()
                .expect("fs/read_text_file has a path");
            std::fs::read_to_string(path)
                .map(|content| json!({"content": content}))
                .map_err(|e| (-32002, format!("{path}: {e}")))
        }
        _ => Err((-32601, format!("method not found: {method}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qwen_speaks_acp_asks_permission_and_writes_through_the_client() {
    if !qwen_available_or_skip("real_qwen_speaks_acp_asks_permission_and_writes_through_the_client")
    {
        return;
    }
    let mock = MockOpenAi::start().expect("starting the mock model");
    let agent = RealAgentEnv::new(&mock.base_url());
    let workspace = agent.workspace();
    let mut peer = AcpPeer::spawn(&agent);

    // initialize: advertise fs so that the agent writes through us.
    let id = peer
        .request(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}}}),
        )
        .await;
    let (init, _) = peer
        .until_response(id, COLD_START_TIMEOUT, client_handler("cancel"))
        .await;
    assert_eq!(init["protocolVersion"], 1, "initialize result: {init}");
    let processes = processes_with_home(&agent.home());
    eprintln!(
        "agent processes after initialize: {} {processes:?}",
        processes.len()
    );

    let id = peer
        .request("session/new", json!({"cwd": workspace, "mcpServers": []}))
        .await;
    let (session, _) = peer
        .until_response(id, MESSAGE_TIMEOUT, client_handler("cancel"))
        .await;
    let session_id = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| peer.fail(&format!("session/new without sessionId: {session}")))
        .to_string();

    // say hello: plain text streamed back as agent_message_chunk, then end_turn.
    let id = peer
        .request(
            "session/prompt",
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": "say hello"}]}),
        )
        .await;
    let (result, updates) = peer
        .until_response(id, MESSAGE_TIMEOUT, client_handler("cancel"))
        .await;
    assert_eq!(result["stopReason"], "end_turn");
    assert_eq!(agent_text(&updates), HELLO_TEXT);

    // write, allowed once: the agent asks, then writes through fs/write_text_file.
    let allowed = workspace.join("out.txt");
    let prompt = format!("write {} hello from the real agent", allowed.display());
    let id = peer
        .request(
            "session/prompt",
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": prompt}]}),
        )
        .await;
    let (result, updates) = peer
        .until_response(id, MESSAGE_TIMEOUT, client_handler("proceed_once"))
        .await;
    assert_eq!(result["stopReason"], "end_turn");
    let permissions = requests_named(&updates, "session/request_permission");
    assert_eq!(permissions.len(), 1, "one permission request per write");
    let permission = &permissions[0]["params"];
    eprintln!(
        "permission request id={} params: {permission:#}",
        permissions[0]["id"]
    );
    assert_eq!(permission["sessionId"], session_id.as_str());
    assert_eq!(permission["toolCall"]["kind"], "edit");
    assert_eq!(
        permission["toolCall"]["rawInput"]["file_path"],
        allowed.to_str().unwrap()
    );
    let offered: HashSet<&str> = permission["options"]
        .as_array()
        .expect("options is an array")
        .iter()
        .filter_map(|option| option["optionId"].as_str())
        .collect();
    assert!(
        offered.contains("proceed_once") && offered.contains("cancel"),
        "options offered: {offered:?}"
    );
    let writes = requests_named(&updates, "fs/write_text_file");
    eprintln!("fs/write_text_file requests: {writes:?}");
    assert_eq!(
        std::fs::read_to_string(&allowed).expect("the allowed write landed"),
        "hello from the real agent"
    );
    assert_eq!(agent_text(&updates), DONE_TEXT);

    // overwrite, allowed: the agent may read the old text through fs/read_text_file first.
    let prompt = format!("write {} second version", allowed.display());
    let id = peer
        .request(
            "session/prompt",
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": prompt}]}),
        )
        .await;
    let (result, updates) = peer
        .until_response(id, MESSAGE_TIMEOUT, client_handler("proceed_once"))
        .await;
    assert_eq!(result["stopReason"], "end_turn");
    let permissions = requests_named(&updates, "session/request_permission");
    assert_eq!(
        permissions[0]["params"]["toolCall"]["content"][0]["oldText"], "hello from the real agent",
        "the permission request shows the diff against the current text"
    );
    eprintln!(
        "overwrite: fs/read_text_file requests: {:?}",
        requests_named(&updates, "fs/read_text_file")
    );
    assert_eq!(std::fs::read_to_string(&allowed).unwrap(), "second version");

    // write, refused: the tool call fails, nothing is written, the turn still ends normally.
    let refused = workspace.join("refused.txt");
    let prompt = format!("write {} must not be written", refused.display());
    let id = peer
        .request(
            "session/prompt",
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": prompt}]}),
        )
        .await;
    let (result, updates) = peer
        .until_response(id, MESSAGE_TIMEOUT, client_handler("cancel"))
        .await;
    assert_eq!(result["stopReason"], "end_turn");
    assert_eq!(
        requests_named(&updates, "session/request_permission").len(),
        1
    );
    assert!(requests_named(&updates, "fs/write_text_file").is_empty());
    assert!(!refused.exists(), "a refused write must not land");
    assert!(
        updates.iter().any(
            |m| m["params"]["update"]["sessionUpdate"] == "tool_call_update"
                && m["params"]["update"]["status"] == "failed"
        ),
        "the refused tool call ends failed"
    );

    // The mock saw the scripted conversation.
    let scenarios: Vec<Scenario> = mock
        .chat_requests()
        .into_iter()
        .filter_map(|request| request.scenario)
        .collect();
    eprintln!(
        "model requests: {scenarios:?} (streaming: {:?})",
        mock.chat_requests()
            .iter()
            .map(|r| r.is_streaming())
            .collect::<Vec<_>>()
    );
    assert!(scenarios.contains(&Scenario::SayHello));
    assert!(scenarios.contains(&Scenario::ToolResultAck));

    eprintln!("--- transcript ---\n{}", peer.transcript.join("\n"));
    let home = agent.home();
    assert!(
        peer.shut_down().await,
        "the agent's process group outlived the kill"
    );
    let left = processes_with_home(&home);
    assert!(left.is_empty(), "agent processes left behind: {left:?}");
}
