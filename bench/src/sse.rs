//! An SSE subscriber that classifies frames by substring search instead of parsing their
//! JSON: at tens of thousands of frames per second the client must stay cheap, or it would
//! measure itself rather than the daemon.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use memchr::memmem;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::chunked::ChunkedDecoder;
use crate::http::{self, json_string_field};

/// What a frame means to the benchmark.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A `session_update` carrying an `agent_message_chunk`.
    AgentChunk,
    /// qwen serve's end-of-turn event (its prompt POST answers 202 at once).
    TurnComplete,
    /// A `permission_request`, with its `requestId`.
    PermissionRequest(String),
    /// The daemon dropped this subscriber (`client_evicted` / `stream_error`).
    Evicted,
    /// Anything else: other updates, `retry:`, comments, `replay_complete`, ….
    Other,
}

pub struct EventStream {
    stream: TcpStream,
    decoder: Option<ChunkedDecoder>,
    /// Decoded payload; frames are cut from `payload[consumed..]`.
    payload: Vec<u8>,
    consumed: usize,
    read_buf: Box<[u8]>,
    chunk_marker: memmem::Finder<'static>,
    frame_end: memmem::Finder<'static>,
}

impl EventStream {
    /// Subscribes to `path`; fails unless the daemon answers 200 `text/event-stream`.
    pub async fn open(addr: SocketAddr, path: &str) -> Result<EventStream> {
        let (stream, head, rest) =
            http::open_streaming(addr, path, &[("Accept", "text/event-stream")]).await?;
        if head.status != 200 || !head.content_type.starts_with("text/event-stream") {
            bail!(
                "GET {path}: HTTP {} {:?}, not an event stream",
                head.status,
                head.content_type
            );
        }
        let mut events = EventStream {
            stream,
            decoder: head.chunked.then(ChunkedDecoder::default),
            payload: Vec::with_capacity(256 * 1024),
            consumed: 0,
            read_buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            chunk_marker: memmem::Finder::new(b"\"sessionUpdate\":\"agent_message_chunk\""),
            frame_end: memmem::Finder::new(b"\n\n"),
        };
        absorb(&mut events.decoder, &mut events.payload, &rest)?;
        Ok(events)
    }

    /// The next frame's meaning; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            let pending = &self.payload[self.consumed..];
            if let Some(end) = self.frame_end.find(pending) {
                let event = classify(&pending[..end], &self.chunk_marker);
                self.consumed += end + 2;
                return Ok(Some(event));
            }
            if self.decoder.as_ref().is_some_and(ChunkedDecoder::is_done) {
                return Ok(None);
            }
            // Compact before reading so the buffer does not grow with the stream.
            self.payload.drain(..self.consumed);
            self.consumed = 0;
            let n = self
                .stream
                .read(&mut self.read_buf)
                .await
                .context("reading the event stream")?;
            if n == 0 {
                return Ok(None);
            }
            absorb(&mut self.decoder, &mut self.payload, &self.read_buf[..n])?;
        }
    }

    /// Reads until `wanted` says yes; fails if the stream ends first.
    pub async fn until(&mut self, mut wanted: impl FnMut(&Event) -> bool) -> Result<Event> {
        loop {
            match self.next().await? {
                Some(event) if wanted(&event) => return Ok(event),
                Some(Event::Evicted) => bail!("the daemon evicted this subscriber"),
                Some(_) => {}
                None => bail!("the event stream ended"),
            }
        }
    }
}

/// Appends body bytes to the payload, taking the chunk framing off when there is one.
fn absorb(decoder: &mut Option<ChunkedDecoder>, payload: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    match decoder {
        Some(decoder) => decoder.decode(bytes, payload),
        None => {
            payload.extend_from_slice(bytes);
            Ok(())
        }
    }
}

/// Classifies one frame (without its terminating blank line) by its `event:` line, looking
/// inside the data only where the type alone does not say enough.
fn classify(frame: &[u8], chunk_marker: &memmem::Finder<'_>) -> Event {
    let event_type = frame
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"event:"))
        .map(|value| value.trim_ascii());
    match event_type {
        Some(b"session_update") if chunk_marker.find(frame).is_some() => Event::AgentChunk,
        Some(b"turn_complete") => Event::TurnComplete,
        Some(b"permission_request") => match json_string_field(frame, "requestId") {
            Some(id) => Event::PermissionRequest(id.to_owned()),
            None => Event::Other,
        },
        Some(b"client_evicted") | Some(b"stream_error") => Event::Evicted,
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_text(frame: &str) -> Event {
        let marker = memmem::Finder::new(b"\"sessionUpdate\":\"agent_message_chunk\"");
        classify(frame.as_bytes(), &marker)
    }

    #[test]
    fn classifies_the_frames_of_both_daemons() {
        assert_eq!(
            classify_text(
                "id: 2\nevent: session_update\ndata: {\"update\":{\"sessionUpdate\":\"agent_message_chunk\"}}"
            ),
            Event::AgentChunk
        );
        // qwen serve echoes the prompt as a user_message_chunk: not an agent chunk.
        assert_eq!(
            classify_text("id: 1\nevent: session_update\ndata: {\"update\":{\"sessionUpdate\":\"user_message_chunk\"}}"),
            Event::Other
        );
        assert_eq!(
            classify_text("id: 5\nevent: turn_complete\ndata: {}"),
            Event::TurnComplete
        );
        assert_eq!(
            classify_text(
                "id: 7\nevent: permission_request\ndata: {\"data\":{\"requestId\":\"r-1\",\"x\":1}}"
            ),
            Event::PermissionRequest("r-1".into())
        );
        assert_eq!(
            classify_text("event: client_evicted\ndata: {}"),
            Event::Evicted
        );
        assert_eq!(classify_text("retry: 3000"), Event::Other);
        assert_eq!(classify_text(": ping"), Event::Other);
    }
}
