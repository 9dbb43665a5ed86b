//! A scripted OpenAI-compatible model server for running the *real* agent with no LLM account.
//!
//! `qwen --acp` talks to whatever `OPENAI_BASE_URL` names; pointed at this server it becomes a
//! deterministic agent: the reply depends only on a trigger line in the last user message
//! (see [`Scenario`]). The server runs on its own thread and runtime so that it keeps answering
//! whatever the test itself is blocked on, binds 127.0.0.1 on an ephemeral port, records every
//! request for assertions, and stops when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The plain-text answer of the `say hello` scenario.
pub const HELLO_TEXT: &str = "Hello from the mock model";
/// The plain-text answer once a tool result has come back.
pub const DONE_TEXT: &str = "done";
/// The plain-text answer to anything no trigger matches (qwen's side requests, for instance).
pub const UNSCRIPTED_TEXT: &str = "The mock model has no script for this prompt.";
/// The model id the mock reports; the agent is configured with it.
pub const MOCK_MODEL: &str = "mock-model";

/// What the mock answers, chosen by [`choose_scenario`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A line starting `say hello` → [`HELLO_TEXT`].
    SayHello,
    /// A line `write /ABS/PATH CONTENT…` → a `write_file` tool call with `file_path` and
    /// `content` (the rest of the line, possibly empty).
    WriteFile { file_path: String, content: String },
    /// A line `run COMMAND…` → a `run_shell_command` tool call (ACP kind `execute`).
    RunShell { command: String },
    /// The last message after the user's is a tool result → [`DONE_TEXT`].
    ToolResultAck,
    /// Nothing matched → [`UNSCRIPTED_TEXT`].
    Unscripted,
}

/// One HTTP request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The JSON body (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The scenario chosen for a chat completion; `None` for other routes.
    pub scenario: Option<Scenario>,
}

impl RecordedRequest {
    /// Whether the client asked for a streamed (SSE) answer.
    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

/// A running mock server. Dropping it stops the server and closes its connections.
pub struct MockOpenAi {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockOpenAi {
    /// Binds 127.0.0.1:0 and starts serving on a dedicated thread.
    pub fn start() -> std::io::Result<MockOpenAi> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&log));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("mock-openai".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the mock's listener with tokio");
                    // Not a graceful shutdown: the agent keeps connections alive, and dropping
                    // the runtime at the end of this thread is what closes them.
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(error) = result {
                                eprintln!("mock-openai: server error: {error}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(MockOpenAi {
            addr,
            log,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    /// Only the chat-completion requests, in arrival order.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log)
            .iter()
            .filter(|request| request.scenario.is_some())
            .cloned()
            .collect()
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A panic in one handler must not hide the log from the test's later assertions.
fn lock(log: &Mutex<Vec<RecordedRequest>>) -> MutexGuard<'_, Vec<RecordedRequest>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(log: Arc<Mutex<Vec<RecordedRequest>>>) -> Router {
    Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let log = Arc::clone(&log);
        async move { handle(&log, method, uri, body) }
    })
}

fn handle(log: &Mutex<Vec<RecordedRequest>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_chat = method == Method::POST && path.ends_with("/chat/completions");
    let scenario = is_chat.then(|| choose_scenario(messages_of(&body)));
    lock(log).push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
        scenario: scenario.clone(),
    });

    if let Some(scenario) = scenario {
        let reply = Reply::for_scenario(&scenario);
        let completion_id = format!("chatcmpl-mock-{}", lock(log).len());
        let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
        return if streaming {
            sse_response(&reply, &completion_id)
        } else {
            json_response(StatusCode::OK, reply.completion(&completion_id))
        };
    }
    if method == Method::GET && path.ends_with("/models") {
        return json_response(
            StatusCode::OK,
            json!({"object": "list", "data": [{"id": MOCK_MODEL, "object": "model", "created": 0, "owned_by": "mock"}]}),
        );
    }
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"message": format!("mock-openai: no route for {method} {path}"), "type": "invalid_request_error"}}),
    )
}

fn messages_of(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Picks the scenario from the conversation: a tool result after the last user message means
/// "the tool ran, finish up"; otherwise the first line of the last user message that *starts
/// with* a trigger decides. Lines, not substrings: qwen wraps context in `<system-reminder>`
/// blocks full of ordinary words.
pub fn choose_scenario(messages: &[Value]) -> Scenario {
    fn role(message: &Value) -> &str {
        message.get("role").and_then(Value::as_str).unwrap_or("")
    }
    let Some(last_user) = messages.iter().rposition(|m| role(m) == "user") else {
        return Scenario::Unscripted;
    };
    if messages[last_user + 1..].iter().any(|m| role(m) == "tool") {
        return Scenario::ToolResultAck;
    }
    let text = message_text(&messages[last_user]);
    text.lines()
        .find_map(|line| scenario_for_line(line.trim()))
        .unwrap_or(Scenario::Unscripted)
}

fn scenario_for_line(line: &str) -> Option<Scenario> {
    if line.starts_with("say hello") {
        return Some(Scenario::SayHello);
    }
    if let Some(rest) = line.strip_prefix("write ") {
        let rest = rest.trim_start();
        let (file_path, content) = rest.split_once(' ').unwrap_or((rest, ""));
        // The agent's write_file insists on an absolute path; anything else is not our trigger.
        if file_path.starts_with('/') {
            return Some(Scenario::WriteFile {
                file_path: file_path.to_string(),
                content: content.to_string(),
            });
        }
    }
    if let Some(command) = line.strip_prefix("run ") {
        let command = command.trim();
        if !command.is_empty() {
            return Some(Scenario::RunShell {
                command: command.to_string(),
            });
        }
    }
    None
}

/// A message's text: `content` as a string, or the `text` of each part of an array.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The assistant turn a scenario produces.
enum Reply {
    Text(String),
    ToolCall {
        name: &'static str,
        arguments: Value,
    },
}

impl Reply {
    fn for_scenario(scenario: &Scenario) -> Reply {
        match scenario {
            Scenario::SayHello => Reply::Text(HELLO_TEXT.into()),
            Scenario::ToolResultAck => Reply::Text(DONE_TEXT.into()),
            Scenario::Unscripted => Reply::Text(UNSCRIPTED_TEXT.into()),
            Scenario::WriteFile { file_path, content } => Reply::ToolCall {
                name: "write_file",
                arguments: json!({"file_path": file_path, "content": content}),
            },
            Scenario::RunShell { command } => Reply::ToolCall {
                name: "run_shell_command",
                arguments: json!({"command": command, "description": "scripted by the mock model"}),
            },
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self {
            Reply::Text(_) => "stop",
            Reply::ToolCall { .. } => "tool_calls",
        }
    }

    /// The call id is derived from the completion id, so every tool call of a session is
    /// distinct (the agent tracks calls by id).
    fn tool_call(completion_id: &str, name: &str, arguments: &Value) -> Value {
        json!({
            "id": format!("call_{completion_id}"),
            "type": "function",
            "function": {"name": name, "arguments": arguments.to_string()},
        })
    }

    /// The non-streaming `chat.completion` object.
    fn completion(&self, id: &str) -> Value {
        let message = match self {
            Reply::Text(text) => json!({"role": "assistant", "content": text}),
            Reply::ToolCall { name, arguments } => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [Reply::tool_call(id, name, arguments)],
            }),
        };
        json!({
            "id": id,
            "object": "chat.completion",
            "created": 0,
            "model": MOCK_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason()}],
            "usage": usage(),
        })
    }

    /// The `chat.completion.chunk` deltas of a streamed answer (text in two pieces, so the
    /// agent really has to reassemble a stream).
    fn chunks(&self, id: &str) -> Vec<Value> {
        let chunk = |delta: Value, finish_reason: Value| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MOCK_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            })
        };
        let mut chunks = Vec::new();
        match self {
            Reply::Text(text) => {
                let middle = text.find(' ').map(|i| i + 1).unwrap_or(text.len());
                let (first, second) = text.split_at(middle);
                chunks.push(chunk(
                    json!({"role": "assistant", "content": first}),
                    Value::Null,
                ));
                if !second.is_empty() {
                    chunks.push(chunk(json!({"content": second}), Value::Null));
                }
            }
            Reply::ToolCall { name, arguments } => {
                let mut call = Reply::tool_call(id, name, arguments);
                call["index"] = json!(0);
                chunks.push(chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                    Value::Null,
                ));
            }
        }
        let mut last = chunk(json!({}), json!(self.finish_reason()));
        last["usage"] = usage();
        chunks.push(last);
        chunks
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
}

fn sse_response(reply: &Reply, completion_id: &str) -> Response {
    let mut body = String::new();
    for chunk in reply.chunks(completion_id) {
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(body))
        .expect("a static response is valid")
}

fn json_response(status: StatusCode, value: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .expect("a static response is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn trigger_must_start_a_line_not_just_appear_in_it() {
        let wrapped = "<system-reminder>\nyou may say hello or write files\n</system-reminder>\nsay hello please";
        assert_eq!(choose_scenario(&[user(wrapped)]), Scenario::SayHello);
        let mention_only = "<system-reminder>you may say hello</system-reminder>";
        assert_eq!(choose_scenario(&[user(mention_only)]), Scenario::Unscripted);
    }

    #[test]
    fn write_trigger_takes_an_absolute_path_and_the_rest_of_the_line() {
        let parts = json!({"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>write things well</system-reminder>"},
            {"type": "text", "text": "write /tmp/ws/out.txt hello  world"},
        ]});
        assert_eq!(
            choose_scenario(&[parts]),
            Scenario::WriteFile {
                file_path: "/tmp/ws/out.txt".into(),
                content: "hello  world".into()
            }
        );
        assert_eq!(
            choose_scenario(&[user("write out.txt hi")]),
            Scenario::Unscripted
        );
    }

    #[test]
    fn a_tool_result_after_the_last_user_message_finishes_the_turn() {
        let conversation = [
            user("write /tmp/a.txt x"),
            json!({"role": "assistant", "tool_calls": []}),
            json!({"role": "tool", "tool_call_id": "call_mock_0", "content": "ok"}),
        ];
        assert_eq!(choose_scenario(&conversation), Scenario::ToolResultAck);
        // A new user message starts a new turn: the old tool result no longer counts.
        let next_turn = [conversation.to_vec(), vec![user("say hello")]].concat();
        assert_eq!(choose_scenario(&next_turn), Scenario::SayHello);
    }

    #[tokio::test]
    async fn serves_streamed_and_plain_completions_and_records_them() {
        let mock = MockOpenAi::start().unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", mock.base_url());

        let streamed = client
            .post(&url)
            .json(&json!({"model": MOCK_MODEL, "stream": true, "messages": [user("say hello")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            streamed.headers()[header::CONTENT_TYPE.as_str()],
            "text/event-stream"
        );
        let text = streamed.text().await.unwrap();
        let payloads: Vec<&str> = text
            .split("\n\n")
            .filter_map(|frame| frame.strip_prefix("data: "))
            .collect();
        assert_eq!(payloads.last(), Some(&"[DONE]"));
        let said: String = payloads[..payloads.len() - 1]
            .iter()
            .map(|p| serde_json::from_str::<Value>(p).unwrap())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(said, HELLO_TEXT);

        let plain: Value = client
            .post(&url)
            .json(&json!({"model": MOCK_MODEL, "messages": [user("write /tmp/x.txt hi")]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let call = &plain["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "write_file");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"file_path": "/tmp/x.txt", "content": "hi"})
        );
        assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");

        let chats = mock.chat_requests();
        assert_eq!(chats.len(), 2);
        assert!(chats[0].is_streaming() && !chats[1].is_streaming());
        assert_eq!(chats[0].scenario, Some(Scenario::SayHello));
    }

    #[test]
    fn stops_listening_when_dropped() {
        let mock = MockOpenAi::start().unwrap();
        let addr = mock.addr();
        drop(mock);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
