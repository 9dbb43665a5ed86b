//! One JSON-RPC 2.0 connection over a child's stdin/stdout.
//!
//! Three parts: a reader task (stdout → [`Incoming`] messages and answers
//! to our requests), a writer task (the only one writing stdin, so frames
//! never interleave), and [`Connection`] handles that send requests and
//! notifications. Requests flow both ways at once.
//!
//! Order is kept across the two kinds of input: the answer to a request is
//! handed over only when the [`IncomingReceiver`] has reached it, after
//! every message the agent sent before it. So when `session/prompt`
//! returns, every `session/update` of that turn has already been received
//! (ACP agents send the updates first).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, Notify};

use super::error::RpcError;
use super::frame::{self, DecodeError, Decoded, MethodName};
use crate::lines::{read_line_capped, LineEnd};

/// Settings of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Longest line accepted from the agent. A longer one closes the
    /// connection with [`CloseReason::LineTooLong`] (the real `qwen --acp`
    /// sends single lines of about 560 kB).
    pub max_line_bytes: usize,
    /// Capacity of the [`Incoming`] queue. When it is full the reader stops
    /// reading the agent's stdout (backpressure).
    pub incoming_capacity: usize,
    /// Names the agent in log lines, e.g. `pid=123 cwd=/repo`.
    pub label: String,
    /// Most bytes queued for the agent's stdin (answers, requests). An agent
    /// that stops reading its stdin would otherwise make the daemon buffer
    /// without bound; past this the connection closes with
    /// [`CloseReason::NotReading`] (and the agent is stopped by its owner).
    /// One frame alone is always accepted.
    pub max_queued_write_bytes: usize,
    /// Most requests from the agent delivered and not yet answered (each
    /// costs the owner a task). Past it a request is answered at once with
    /// an error, never delivered.
    pub max_agent_requests: usize,
}

impl ConnectionConfig {
    pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
    pub const DEFAULT_MAX_QUEUED_WRITE_BYTES: usize = 64 * 1024 * 1024;
    pub const DEFAULT_MAX_AGENT_REQUESTS: usize = 256;
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            incoming_capacity: 1024,
            label: "agent".into(),
            max_queued_write_bytes: Self::DEFAULT_MAX_QUEUED_WRITE_BYTES,
            max_agent_requests: Self::DEFAULT_MAX_AGENT_REQUESTS,
        }
    }
}

/// Why a connection closed; carried by [`Incoming::Closed`] and by the
/// [`RpcError::connection_closed`] errors of requests cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The agent closed its stdout (usually: it exited).
    Eof,
    /// The agent sent a line longer than the cap; the connection is unusable
    /// from there on because the rest of that line cannot be framed.
    LineTooLong { max_line_bytes: usize },
    /// Reading the agent's stdout failed.
    ReadFailed(String),
    /// Writing the agent's stdin failed (usually: it exited).
    WriteFailed(String),
    /// [`Connection::shutdown`] closed the agent's stdin.
    Shutdown,
    /// The agent stopped reading its stdin: more than `max` bytes of
    /// frames for it were waiting.
    NotReading { max: usize },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("the agent closed its stdout"),
            CloseReason::LineTooLong { max_line_bytes } => write!(
                f,
                "the agent sent a line longer than the {max_line_bytes}-byte limit; the connection was closed"
            ),
            CloseReason::ReadFailed(e) => write!(f, "reading the agent's stdout failed: {e}"),
            CloseReason::WriteFailed(e) => write!(f, "writing the agent's stdin failed: {e}"),
            CloseReason::Shutdown => f.write_str("the daemon closed the agent's stdin"),
            CloseReason::NotReading { max } => write!(
                f,
                "the agent stopped reading its stdin (more than {max} bytes waiting for it); the connection was closed"
            ),
        }
    }
}

/// A message from the agent that is not a response to one of our requests.
#[derive(Debug)]
pub enum Incoming {
    /// Forwarded raw (never re-serialized): `session/update` variants the
    /// daemon does not know must still reach clients unchanged.
    Notification {
        method: MethodName,
        params: Box<RawValue>,
    },
    /// Must be answered through `responder` (exactly once; dropping it
    /// answers with an internal error so the agent never waits forever).
    Request {
        method: MethodName,
        params: Box<RawValue>,
        responder: Responder,
    },
    /// Always the last message; pending requests have failed by then.
    Closed { reason: CloseReason },
}

/// Answers one request from the agent. The request's id, whatever its type
/// (`0`, `"abc"`, `17`), is echoed verbatim.
#[derive(Debug)]
pub struct Responder {
    id: Box<RawValue>,
    method: MethodName,
    writer: Option<mpsc::UnboundedSender<WriterMsg>>,
    /// Counts this request among the agent's in flight until answered.
    shared: Arc<Shared>,
}

impl Responder {
    /// The request's id as the agent sent it.
    pub fn id(&self) -> &RawValue {
        &self.id
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// Sends the answer. If the connection has closed meanwhile, the answer
    /// is dropped (there is no one to tell).
    pub fn respond(mut self, result: Result<Value, RpcError>) {
        self.send(&result);
    }

    fn send(&mut self, result: &Result<Value, RpcError>) {
        if let Some(writer) = self.writer.take() {
            let bytes = frame::encode_response(&self.id, result);
            if self.shared.queue(&writer, bytes).is_err() {
                tracing::debug!(method = %self.method, "answer to the agent dropped: connection closed");
            }
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.writer.is_some() {
            tracing::warn!(method = %self.method, "a request from the agent was dropped unanswered; answering with an error");
            self.send(&Err(RpcError::internal(format!(
                "the client dropped the `{}` request without answering",
                self.method
            ))));
        }
        self.shared.agent_requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The agent's messages, in the order it sent them; ends with
/// [`Incoming::Closed`].
///
/// **Drain it in a task of its own that never waits for this connection's
/// requests**: answers to requests are delivered from inside
/// [`recv`](Self::recv), so a loop that awaits `Connection::request` between
/// two `recv` calls waits forever. Handle agent requests that take time
/// (permission votes) on spawned tasks.
///
/// Dropping the receiver is allowed: answers are then delivered directly,
/// and requests from the agent are answered with an error.
#[derive(Debug)]
pub struct IncomingReceiver {
    rx: mpsc::Receiver<Item>,
    /// An answer [`try_recv_message`](Self::try_recv_message) met and left
    /// for the next [`recv`](Self::recv) to deliver.
    held_answer: Option<(Reply, Result<Value, RpcError>)>,
}

impl IncomingReceiver {
    /// The next message; `None` after [`Incoming::Closed`] was returned.
    pub async fn recv(&mut self) -> Option<Incoming> {
        if let Some((reply, result)) = self.held_answer.take() {
            let _ = reply.send(result);
        }
        loop {
            match self.rx.recv().await? {
                Item::Message(message) => return Some(message),
                Item::Answer(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// A message already queued, without waiting — and without delivering
    /// an answer queued before it: an answer stops the lookahead (`None`)
    /// and is delivered by the next [`recv`](Self::recv). So a caller that
    /// gathers queued messages into a batch still handles every message the
    /// agent sent before an answer before that answer is delivered.
    pub fn try_recv_message(&mut self) -> Option<Incoming> {
        if self.held_answer.is_some() {
            return None;
        }
        match self.rx.try_recv().ok()? {
            Item::Message(message) => Some(message),
            Item::Answer(reply, result) => {
                self.held_answer = Some((reply, result));
                None
            }
        }
    }
}

impl Drop for IncomingReceiver {
    fn drop(&mut self) {
        if let Some((reply, result)) = self.held_answer.take() {
            let _ = reply.send(result);
        }
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            if let Item::Answer(reply, result) = item {
                let _ = reply.send(result);
            }
        }
    }
}

/// What the reader queues: a message for the caller, or the answer to one
/// of our requests, in the order read.
#[derive(Debug)]
enum Item {
    Message(Incoming),
    Answer(Reply, Result<Value, RpcError>),
}

/// A handle for sending to the agent. Cheap to clone; every clone drives
/// the same connection.
#[derive(Debug, Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<WriterMsg>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
    label: String,
    /// Bytes queued for the writer and not yet written.
    queued_bytes: AtomicUsize,
    max_queued_write_bytes: usize,
    /// Requests from the agent delivered and not yet answered.
    agent_requests: AtomicUsize,
    max_agent_requests: usize,
    /// Wakes the reader when the connection is closed from this side (an
    /// agent that does not read its stdin), so it stops reading too.
    abort: Notify,
}

type Reply = oneshot::Sender<Result<Value, RpcError>>;

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, Reply>,
    /// Set once: no more requests can be answered.
    closed: Option<CloseReason>,
    /// Set by `shutdown`: nothing more may be written.
    stdin_closed: bool,
}

#[derive(Debug)]
enum WriterMsg {
    Frame(Vec<u8>),
    Close,
}

impl Connection {
    /// Starts the reader and writer tasks (needs a tokio runtime). The
    /// receiver yields every [`Incoming`] message, ending with
    /// [`Incoming::Closed`]; see [`IncomingReceiver`] for how to drain it.
    ///
    /// The agent's stdin is closed when [`shutdown`](Self::shutdown) is
    /// called, or when every `Connection` clone and every [`Responder`] is
    /// dropped.
    pub fn start<W, R>(
        stdin: W,
        stdout: R,
        config: ConnectionConfig,
    ) -> (Connection, IncomingReceiver)
    where
        W: AsyncWrite + Send + Unpin + 'static,
        R: AsyncRead + Send + Unpin + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            label: config.label.clone(),
            queued_bytes: AtomicUsize::new(0),
            max_queued_write_bytes: config.max_queued_write_bytes,
            agent_requests: AtomicUsize::new(0),
            max_agent_requests: config.max_agent_requests.max(1),
            abort: Notify::new(),
        });
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
        tokio::spawn(write_loop(writer_rx, stdin, shared.clone()));
        tokio::spawn(read_loop(
            stdout,
            shared.clone(),
            writer_tx.downgrade(),
            incoming_tx,
            config.max_line_bytes,
        ));
        (
            Connection {
                shared,
                writer: writer_tx,
            },
            IncomingReceiver {
                rx: incoming_rx,
                held_answer: None,
            },
        )
    }

    /// Sends a request and waits for its answer. Fails at once with
    /// [`RpcError::connection_closed`] when the connection is closed, or as
    /// soon as it closes while waiting. Dropping the future forgets the
    /// request (a late answer is ignored).
    pub async fn request(&self, method: &str, params: impl Serialize) -> Result<Value, RpcError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode_request(id, method, params).map_err(|e| {
            RpcError::invalid_params(format!("cannot encode the `{method}` params: {e}"))
        })?;
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(reason) = state.unusable() {
                return Err(RpcError::connection_closed(reason));
            }
            state.pending.insert(id, reply_tx);
        }
        let _forget_on_drop = PendingGuard {
            shared: &self.shared,
            id,
        };
        if self.shared.queue(&self.writer, bytes).is_err() {
            return Err(self.closed_error());
        }
        match reply_rx.await {
            Ok(result) => result,
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Sends a notification (no answer expected).
    pub fn notify(&self, method: &str, params: impl Serialize) -> Result<(), RpcError> {
        let bytes = frame::encode_notification(method, params).map_err(|e| {
            RpcError::invalid_params(format!("cannot encode the `{method}` params: {e}"))
        })?;
        if let Some(reason) = self.shared.lock().unusable() {
            return Err(RpcError::connection_closed(reason));
        }
        self.shared
            .queue(&self.writer, bytes)
            .map_err(|_| self.closed_error())
    }

    /// Closes the agent's stdin once the frames already queued are written:
    /// the polite way to ask an ACP agent to exit. Requests already sent may
    /// still be answered; new ones fail at once.
    pub fn shutdown(&self) {
        self.shared.lock().stdin_closed = true;
        let _ = self.writer.send(WriterMsg::Close);
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.lock().closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    fn closed_error(&self) -> RpcError {
        let reason = self.shared.lock().unusable().unwrap_or(CloseReason::Eof);
        RpcError::connection_closed(reason)
    }
}

impl Shared {
    /// Queues a frame for the agent's stdin within the byte budget. Past
    /// it, the connection closes ([`CloseReason::NotReading`]) and the
    /// reader stops: buffering for an agent that does not read is refused.
    fn queue(&self, writer: &mpsc::UnboundedSender<WriterMsg>, bytes: Vec<u8>) -> Result<(), ()> {
        let len = bytes.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_queued_write_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            let reason = CloseReason::NotReading {
                max: self.max_queued_write_bytes,
            };
            tracing::error!(agent = %self.label, "{reason}");
            self.close(reason);
            self.abort.notify_one();
            return Err(());
        }
        writer.send(WriterMsg::Frame(bytes)).map_err(|_| {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent data (inserts and
        // removes only), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection closed (first reason wins) and fails every
    /// pending request.
    fn close(&self, reason: CloseReason) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(reason);
            }
            std::mem::take(&mut state.pending)
        };
        let reason = self.lock().closed.clone().expect("just set");
        for (_, reply) in pending {
            let _ = reply.send(Err(RpcError::connection_closed(&reason)));
        }
    }
}

impl State {
    fn unusable(&self) -> Option<CloseReason> {
        match (&self.closed, self.stdin_closed) {
            (Some(reason), _) => Some(reason.clone()),
            (None, true) => Some(CloseReason::Shutdown),
            (None, false) => None,
        }
    }
}

/// Removes a request from the pending table when its caller stops waiting.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.id);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
    stdin: W,
    shared: Arc<Shared>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, stdin);
    'outer: while let Some(msg) = rx.recv().await {
        let mut next = Some(msg);
        // Write everything already queued, then flush once.
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Frame(bytes) => {
                    let written = out.write_all(&bytes).await;
                    shared.queued_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
                    if let Err(e) = written {
                        return write_failed(&shared, e);
                    }
                }
                WriterMsg::Close => break 'outer,
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            return write_failed(&shared, e);
        }
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
    tracing::debug!(agent = %shared.label, "agent stdin closed");
}

fn write_failed(shared: &Shared, e: std::io::Error) {
    tracing::warn!(agent = %shared.label, "writing to the agent failed: {e}");
    shared.close(CloseReason::WriteFailed(e.to_string()));
}

async fn read_loop<R: AsyncRead + Unpin>(
    stdout: R,
    shared: Arc<Shared>,
    writer: mpsc::WeakUnboundedSender<WriterMsg>,
    incoming: mpsc::Sender<Item>,
    max_line_bytes: usize,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    // Reused for every line: the only per-line allocation left is the
    // `Box<RawValue>` handed to the caller.
    let mut line = Vec::with_capacity(64 * 1024);
    let reason = loop {
        line.clear();
        let read = tokio::select! {
            read = read_line_capped(&mut reader, &mut line, max_line_bytes) => read,
            _ = shared.abort.notified() => {
                break shared.lock().closed.clone().unwrap_or(CloseReason::Eof);
            }
        };
        // Dispatching may wait for room in the incoming queue: an abort
        // ends that wait too.
        let dispatched = match read {
            Ok(LineEnd::Newline) | Ok(LineEnd::Eof) => {
                tokio::select! {
                    _ = dispatch(&line, &shared, &writer, &incoming) => true,
                    _ = shared.abort.notified() => false,
                }
            }
            _ => true,
        };
        if !dispatched {
            break shared.lock().closed.clone().unwrap_or(CloseReason::Eof);
        }
        match read {
            Ok(LineEnd::Newline) => {}
            Ok(LineEnd::Eof) => break CloseReason::Eof,
            Ok(LineEnd::CapReached) => {
                let reason = CloseReason::LineTooLong { max_line_bytes };
                tracing::error!(agent = %shared.label, "{reason}");
                break reason;
            }
            Err(e) => break CloseReason::ReadFailed(e.to_string()),
        }
        if line.capacity() > 1024 * 1024 {
            // Do not keep a huge buffer around after one huge line.
            line = Vec::with_capacity(64 * 1024);
        }
    };
    shared.close(reason.clone());
    let _ = incoming
        .send(Item::Message(Incoming::Closed { reason }))
        .await;
}

async fn dispatch(
    line: &[u8],
    shared: &Arc<Shared>,
    writer: &mpsc::WeakUnboundedSender<WriterMsg>,
    incoming: &mpsc::Sender<Item>,
) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    let decoded = match frame::decode(line) {
        Ok(decoded) => decoded,
        Err(e) => return skip_line(shared, line, e),
    };
    match decoded {
        Decoded::Response { id, result } => {
            let Some(own_id) = frame::parse_own_id(id) else {
                tracing::warn!(agent = %shared.label, id = id.get(), "response with an id this side never used; ignored");
                return;
            };
            let reply = shared.lock().pending.remove(&own_id);
            let result = result.map(|raw| {
                raw.map_or(Value::Null, |r| {
                    serde_json::from_str(r.get()).unwrap_or(Value::Null)
                })
            });
            match reply {
                // Queued behind the messages read before it; delivered
                // directly if nobody drains the queue any more.
                Some(reply) => {
                    if let Err(mpsc::error::SendError(Item::Answer(reply, result))) =
                        incoming.send(Item::Answer(reply, result)).await
                    {
                        let _ = reply.send(result);
                    }
                }
                None => {
                    tracing::debug!(agent = %shared.label, id = own_id, "late response to a request nobody waits for")
                }
            }
        }
        Decoded::Notification { method, params } => {
            let message = Incoming::Notification {
                method: frame::method_name(method),
                params: raw_params(params),
            };
            // A dropped receiver only means nobody listens any more; keep
            // reading so responses still arrive.
            let _ = incoming.send(Item::Message(message)).await;
        }
        Decoded::Request { id, method, params } => {
            let method = frame::method_name(method);
            let in_flight = shared.agent_requests.fetch_add(1, Ordering::AcqRel);
            let responder = Responder {
                id: id.to_owned(),
                method: method.clone(),
                writer: writer.upgrade(),
                shared: shared.clone(),
            };
            if in_flight >= shared.max_agent_requests {
                tracing::warn!(agent = %shared.label, %method, "the agent has {in_flight} requests in flight; refusing one more");
                responder.respond(Err(RpcError::internal(format!(
                    "too many requests in flight from this agent (at most {}); answer some first",
                    shared.max_agent_requests
                ))));
                return;
            }
            let message = Incoming::Request {
                method,
                params: raw_params(params),
                responder,
            };
            // If nobody listens, dropping the message answers it with an error.
            let _ = incoming.send(Item::Message(message)).await;
        }
    }
}

fn raw_params(params: Option<&RawValue>) -> Box<RawValue> {
    match params {
        Some(raw) => raw.to_owned(),
        None => RawValue::from_string("null".to_owned()).expect("null is JSON"),
    }
}

fn skip_line(shared: &Shared, line: &[u8], error: DecodeError) {
    const PREVIEW: usize = 200;
    let shown = String::from_utf8_lossy(&line[..line.len().min(PREVIEW)]);
    let shown = crate::lines::escape_for_log(&shown);
    let more = if line.len() > PREVIEW { "…" } else { "" };
    let why = match error {
        DecodeError::NotJson(e) => format!("not JSON ({e})"),
        DecodeError::NotJsonRpc => "JSON but not a JSON-RPC message".to_owned(),
    };
    tracing::warn!(agent = %shared.label, "skipping a line on the agent's stdout: {why}: {shown}{more}");
}

#[cfg(test)]
mod tests;
