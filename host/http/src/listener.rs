//! The connection cap (`--max-connections`).
//!
//! A connection past the cap is accepted and told so at once — `503
//! too_many_connections` with `Retry-After` — then closed. It is not left in
//! the kernel's backlog: there a client waits with no answer at all (a
//! health probe just times out), and a burst of silent sockets would keep
//! everyone else waiting for as long as they stay open. Slots held by
//! silent sockets come back at the header-read timeout (see `conn`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Seconds a client refused at the connection cap should wait.
pub const TOO_MANY_CONNECTIONS_RETRY_AFTER_SECS: u32 = 1;

/// Most refusals being written at once; past it a refused socket is just
/// closed (a flood must not turn into a flood of tasks).
const MAX_CONCURRENT_REFUSALS: usize = 1024;

/// How long a refusal waits for the client's request bytes before closing,
/// so they do not turn the close into a reset that destroys the 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The refusal is one small write; a client that cannot take it is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Open-connection slots and the refusals sent when none is left.
pub struct ConnectionSlots {
    /// `None` = unlimited.
    slots: Option<Arc<Semaphore>>,
    refusals: Arc<Semaphore>,
    /// The complete 503 response.
    refusal: Arc<[u8]>,
}

impl ConnectionSlots {
    /// `max_connections == 0` means unlimited.
    pub fn new(max_connections: usize) -> Self {
        Self {
            slots: (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections))),
            refusals: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
            refusal: refusal_response().into(),
        }
    }

    /// A slot for a just-accepted connection: `Ok(None)` when unlimited,
    /// `Err(())` at the cap. The slot is free again when the permit drops.
    pub fn try_take(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.slots {
            None => Ok(None),
            Some(slots) => Arc::clone(slots)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ()),
        }
    }

    /// Answers `stream` with the 503 and closes it, without blocking the
    /// accept loop.
    pub fn refuse(&self, stream: TcpStream) {
        let Ok(permit) = Arc::clone(&self.refusals).try_acquire_owned() else {
            tracing::warn!("connection cap reached and too many refusals in flight: closing");
            return;
        };
        tracing::debug!("connection cap reached: refusing a connection with 503");
        let refusal = Arc::clone(&self.refusal);
        tokio::spawn(async move {
            send_refusal(stream, &refusal).await;
            drop(permit);
        });
    }
}

async fn send_refusal(mut stream: TcpStream, refusal: &[u8]) {
    let written = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, stream.write_all(refusal)).await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = stream.shutdown().await;
    // Read (and drop) whatever request the client sent, until it closes.
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        let mut budget = 64 * 1024;
        while budget > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget -= n.min(budget),
            }
        }
    })
    .await;
}

/// `503 {"error":"too many connections","code":"too_many_connections"}`
/// with `Retry-After` and `Connection: close`, as raw HTTP/1.1 bytes: it is
/// written before hyper ever sees the socket.
fn refusal_response() -> Vec<u8> {
    let body = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too many connections")
        .with_code("too_many_connections")
        .body()
        .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: {TOO_MANY_CONNECTIONS_RETRY_AFTER_SECS}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_json_503() {
        let raw = String::from_utf8(refusal_response()).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("retry-after: 1"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap(),
            serde_json::json!({"error": "too many connections", "code": "too_many_connections"})
        );
    }

    #[tokio::test]
    async fn slots_run_out_and_come_back() {
        let slots = ConnectionSlots::new(1);
        let first = slots.try_take().unwrap();
        assert!(first.is_some());
        assert!(slots.try_take().is_err());
        drop(first);
        assert!(slots.try_take().is_ok());
        assert!(ConnectionSlots::new(0).try_take().unwrap().is_none());
    }
}
