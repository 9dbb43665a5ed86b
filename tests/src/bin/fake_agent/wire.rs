//! JSON-RPC over stdio for the fake agent: a reader thread (stdin), a
//! writer thread (stdout, buffered, flushed when idle) and request/response
//! bookkeeping for requests the agent sends to the client.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// A message from the client that is not a response.
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
}

enum Out {
    /// One or more complete lines.
    Bytes(Vec<u8>),
    /// Flush, then exit the process with this code.
    Exit(i32),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Wire {
    out: mpsc::Sender<Out>,
    pending: Pending,
    /// Our request ids start at 0, like the real qwen's.
    next_id: AtomicU64,
}

/// Starts the reader and writer threads.
pub fn start() -> (Wire, mpsc::Receiver<Incoming>) {
    // Bounded: a producer of many chunks waits for stdout instead of piling up memory.
    let (out_tx, out_rx) = mpsc::channel(256);
    let (in_tx, in_rx) = mpsc::channel(256);
    let pending: Pending = Arc::default();
    std::thread::spawn(move || write_stdout(out_rx));
    let reader_pending = pending.clone();
    std::thread::spawn(move || read_stdin(in_tx, reader_pending));
    let wire = Wire {
        out: out_tx,
        pending,
        next_id: AtomicU64::new(0),
    };
    (wire, in_rx)
}

impl Wire {
    /// Queues complete lines (each ending in `\n`) for stdout.
    pub async fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Out::Bytes(bytes)).await;
    }

    pub async fn send(&self, message: &Value) {
        let mut bytes = serde_json::to_vec(message).expect("JSON serializes");
        bytes.push(b'\n');
        self.send_raw(bytes).await;
    }

    pub async fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Answers a client request; `Err` carries the JSON-RPC error object.
    pub async fn respond(&self, id: Value, result: Result<Value, Value>) {
        let message = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        self.send(&message).await;
    }

    /// Sends a request to the client and waits for the answer; `Err` is the
    /// error object (or a made-up one if the client went away).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let Ok(frame) = rx.await else {
            return Err(json!({"code": -32603, "message": "client went away"}));
        };
        match frame.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(frame.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Flushes what is queued, then exits the process with `code`.
    pub async fn exit(&self, code: i32) -> ! {
        let _ = self.out.send(Out::Exit(code)).await;
        std::future::pending().await
    }
}

fn write_stdout(mut rx: mpsc::Receiver<Out>) {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Write everything queued, then flush once.
        while let Some(message) = next.take() {
            match message {
                Out::Bytes(bytes) => {
                    if out.write_all(&bytes).is_err() {
                        // The client is gone.
                        std::process::exit(0);
                    }
                }
                Out::Exit(code) => {
                    let _ = out.flush();
                    std::process::exit(code);
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() {
            std::process::exit(0);
        }
    }
}

/// Set by the `deaf-reads` command: stdin is no longer read (the client's
/// writes back up), as a hung agent's would.
pub static STOP_READING: AtomicBool = AtomicBool::new(false);

fn read_stdin(tx: mpsc::Sender<Incoming>, pending: Pending) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut line = String::new();
    loop {
        while STOP_READING.load(Ordering::Acquire) {
            std::thread::park();
        }
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(0) | Err(_) => return, // EOF: dropping `tx` ends the main loop
            Ok(_) => {}
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let Ok(mut frame) = serde_json::from_str::<Value>(text) else {
            eprintln!("fake-agent: ignoring a line from the client that is not JSON: {text}");
            continue;
        };
        let method = frame
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let params = frame
            .get_mut("params")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let message = match (method, frame.get("id")) {
            (Some(method), Some(id)) => Incoming::Request {
                id: id.clone(),
                method,
                params,
            },
            (Some(method), None) => Incoming::Notification { method, params },
            (None, Some(id)) => {
                match id
                    .as_u64()
                    .and_then(|id| pending.lock().unwrap().remove(&id))
                {
                    Some(waiter) => {
                        let _ = waiter.send(frame);
                    }
                    None => eprintln!("fake-agent: response to an unknown request: {text}"),
                }
                continue;
            }
            (None, None) => {
                eprintln!("fake-agent: ignoring a frame that is not JSON-RPC: {text}");
                continue;
            }
        };
        if tx.blocking_send(message).is_err() {
            return;
        }
    }
}
