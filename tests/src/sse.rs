//! Reads a `text/event-stream` response frame by frame, keeping everything a test may want to
//! assert on: the `id:` and `event:` lines, the joined `data:` lines, `retry:` and comments
//! (`: ping` heartbeats). Unlike a browser's EventSource it also hands over frames that carry
//! only a comment or a retry, because the daemon's contract says when those are sent.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

/// One frame: the lines up to a blank line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    pub id: Option<String>,
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`; `None` when the frame had none.
    pub data: Option<String>,
    pub retry: Option<u64>,
    /// Comment lines without the leading `:` (and without one following space).
    pub comments: Vec<String>,
}

impl SseFrame {
    /// The data parsed as JSON, if there is data and it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.data.as_deref()?).ok()
    }

    fn is_empty(&self) -> bool {
        *self == SseFrame::default()
    }
}

/// Incremental parser: feed bytes as they arrive, get whole frames back.
/// Lines end with `\n` or `\r\n` (the daemon writes `\n`).
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    frame: SseFrame,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(newline) = self.pending.iter().position(|byte| *byte == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let frame = std::mem::take(&mut self.frame);
                if !frame.is_empty() {
                    frames.push(frame);
                }
            } else {
                self.field(&line);
            }
        }
        frames
    }

    fn field(&mut self, line: &str) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "" => self.frame.comments.push(value.to_string()),
            "id" => self.frame.id = Some(value.to_string()),
            "event" => self.frame.event = Some(value.to_string()),
            "retry" => self.frame.retry = value.parse().ok(),
            "data" => match &mut self.frame.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.frame.data = Some(value.to_string()),
            },
            _ => {} // Unknown fields are ignored, as the SSE spec says.
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("no SSE frame within {0:?}")]
    Timeout(Duration),
    #[error("reading the event stream: {0}")]
    Transport(#[from] reqwest::Error),
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The frames of one streaming HTTP response.
pub struct SseStream {
    body: ByteStream,
    parser: SseParser,
    ready: VecDeque<SseFrame>,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> SseStream {
        SseStream {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next frame; `Ok(None)` once the server has closed the stream.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Option<SseFrame>, SseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(SseError::Timeout(timeout)),
                Ok(None) => return Ok(None),
                Ok(Some(chunk)) => self.ready.extend(self.parser.push(&chunk?)),
            }
        }
    }

    /// The next frame that carries data (skipping `retry:` and `: ping` frames), as JSON.
    pub async fn next_event(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(SseFrame, Value)>, SseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.next_frame(left).await? else {
                return Ok(None);
            };
            if let Some(json) = frame.json() {
                return Ok(Some((frame, json)));
            }
        }
    }

    /// Reads frames until one of `kind` whose envelope satisfies `pred`, for up to `within`;
    /// panics (naming `kind`) on a timeout or the end of the stream. The one wait loop of
    /// the e2e tests and the real-agent suite (each passes its own patience).
    pub async fn wait_event_within(
        &mut self,
        within: Duration,
        kind: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (frame, envelope) = self
                .next_event(left)
                .await
                .unwrap_or_else(|e| panic!("waiting for {kind}: {e}"))
                .unwrap_or_else(|| panic!("stream ended while waiting for {kind}"));
            if frame.event.as_deref() == Some(kind) && pred(&envelope) {
                return envelope;
            }
        }
    }
}

/// The text of an agent_message_chunk envelope, if it is one.
pub fn chunk_text(envelope: &Value) -> Option<&str> {
    let update = &envelope["data"]["update"];
    (update["sessionUpdate"] == "agent_message_chunk")
        .then(|| update["content"]["text"].as_str())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daemons_frames_split_anywhere() {
        let wire =
            "retry: 3000\n\n: ping\n\nid: 1\nevent: session_update\ndata: {\"id\":1,\"v\":1}\n\n";
        // Feed it one byte at a time: frames must not depend on how TCP chunks the stream.
        let mut parser = SseParser::default();
        let frames: Vec<SseFrame> = wire
            .as_bytes()
            .chunks(1)
            .flat_map(|byte| parser.push(byte))
            .collect();
        assert_eq!(
            frames,
            vec![
                SseFrame {
                    retry: Some(3000),
                    ..SseFrame::default()
                },
                SseFrame {
                    comments: vec!["ping".into()],
                    ..SseFrame::default()
                },
                SseFrame {
                    id: Some("1".into()),
                    event: Some("session_update".into()),
                    data: Some("{\"id\":1,\"v\":1}".into()),
                    ..SseFrame::default()
                },
            ]
        );
        assert_eq!(frames[2].json().unwrap()["v"], 1);
    }

    #[test]
    fn joins_data_lines_and_accepts_crlf() {
        let mut parser = SseParser::default();
        let frames = parser.push(b"data: first\r\ndata:second\r\nevent: x\r\n\r\n");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data.as_deref(), Some("first\nsecond"));
        assert_eq!(frames[0].event.as_deref(), Some("x"));
    }

    #[test]
    fn an_unfinished_frame_waits_for_its_blank_line() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"id: 7\ndata: {}\n").is_empty());
        assert!(
            parser.push(b"\n\n\n").len() == 1,
            "blank lines alone make no frames"
        );
    }
}
