//! What the vendor mocks ([`crate::mock_gemini`], [`crate::mock_anthropic`]) share: a loopback
//! HTTP server on its own thread and runtime (so it keeps answering whatever the test is blocked
//! on), a request log, and the scripted scenarios chosen from a trigger line of the last user
//! message. Each mock only translates a [`Script`] into its vendor's wire format.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use tokio::sync::oneshot;

/// The plain-text answer of the `say hello` scenario.
pub const HELLO_TEXT: &str = crate::mock_openai::HELLO_TEXT;
/// The plain-text answer once a tool result has come back.
pub const DONE_TEXT: &str = crate::mock_openai::DONE_TEXT;
/// What the `hang` scenario streams before it stalls.
pub const HANG_TEXT: &str = "Thinking about it";
/// The answer to anything no trigger matches (the agents' own side requests, for instance).
pub const UNSCRIPTED_TEXT: &str = crate::mock_openai::UNSCRIPTED_TEXT;

/// What a mock answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// A line starting `say hello` → [`HELLO_TEXT`].
    SayHello,
    /// A line `write /ABS/PATH CONTENT…` → a call of the request's write tool.
    Write { path: String, content: String },
    /// A line starting `hang` → [`HANG_TEXT`], then the stream stays open and silent (for
    /// cancelling a turn in the middle).
    Hang,
    /// The conversation ends with a tool result → [`DONE_TEXT`].
    ToolResultAck,
    /// Nothing matched → [`UNSCRIPTED_TEXT`].
    Unscripted,
}

/// The first line of `text` that starts with a trigger decides. Lines, not substrings: agents
/// wrap context in reminder blocks full of ordinary words.
pub fn script_for_text(text: &str) -> Script {
    text.lines()
        .find_map(|line| {
            let line = line.trim();
            if line.starts_with("say hello") {
                return Some(Script::SayHello);
            }
            if line.starts_with("hang") {
                return Some(Script::Hang);
            }
            let rest = line.strip_prefix("write ")?.trim_start();
            let (path, content) = rest.split_once(' ').unwrap_or((rest, ""));
            path.starts_with('/').then(|| Script::Write {
                path: path.to_string(),
                content: content.to_string(),
            })
        })
        .unwrap_or(Script::Unscripted)
}

/// One HTTP request a mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The JSON body (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The script chosen for a model call; `None` for other routes.
    pub script: Option<Script>,
}

/// A mock's answer to one request: the script it chose (model calls only) and the response.
pub type Handler = dyn Fn(&Method, &Uri, &Value) -> (Option<Script>, Response) + Send + Sync;

/// A running server. Dropping it stops the server and closes its connections (a hanging
/// stream included).
pub struct MockServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds 127.0.0.1:0 and serves `handler` on a dedicated thread named `name`.
    pub fn start(name: &str, handler: Arc<Handler>) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = {
            let log = Arc::clone(&log);
            Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
                let log = Arc::clone(&log);
                let handler = Arc::clone(&handler);
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (script, response) = handler(&method, &uri, &body);
                    lock(&log).push(Recorded {
                        method: method.to_string(),
                        path: uri.to_string(),
                        body,
                        script,
                    });
                    response
                }
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the mock's listener with tokio");
                    // Not a graceful shutdown: agents keep connections alive (and a hanging
                    // stream never ends); dropping the runtime closes them.
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(error) = result {
                                eprintln!("{label}: server error: {error}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(MockServer {
            addr,
            log,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    /// Whether some model call chose `script`.
    pub fn saw(&self, script: &Script) -> bool {
        lock(&self.log)
            .iter()
            .any(|r| r.script.as_ref() == Some(script))
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(log: &Mutex<Vec<Recorded>>) -> MutexGuard<'_, Vec<Recorded>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An SSE response of `frames` (each already `event:`/`data:` lines plus a blank line); with
/// `hang`, the stream then stays open without another byte until the server stops.
pub fn sse(frames: Vec<String>, hang: bool) -> Response {
    use futures::StreamExt as _;
    let sent = futures::stream::iter(
        frames
            .into_iter()
            .map(|frame| Ok::<_, std::convert::Infallible>(Bytes::from(frame))),
    );
    let body = if hang {
        Body::from_stream(sent.chain(futures::stream::pending()))
    } else {
        Body::from_stream(sent)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("a static response is valid")
}

pub fn json_response(status: StatusCode, value: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .expect("a static response is valid")
}

/// The property of a tool's JSON schema that takes the file path: the agents name it
/// `file_path`, `absolute_path` or `path` depending on agent and version.
pub fn path_property(schema: &Value) -> &'static str {
    let properties = schema.get("properties");
    ["file_path", "absolute_path", "path"]
        .into_iter()
        .find(|name| properties.and_then(|p| p.get(name)).is_some())
        .unwrap_or("file_path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_start_a_line() {
        assert_eq!(
            script_for_text("<r>you may say hello</r>\nsay hello"),
            Script::SayHello
        );
        assert_eq!(
            script_for_text("<r>you may say hello</r>"),
            Script::Unscripted
        );
        assert_eq!(script_for_text("hang on"), Script::Hang);
        assert_eq!(
            script_for_text("write /w/a.txt hi there"),
            Script::Write {
                path: "/w/a.txt".into(),
                content: "hi there".into()
            }
        );
        assert_eq!(script_for_text("write a.txt hi"), Script::Unscripted);
    }
}
