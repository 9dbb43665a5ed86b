//! An SSE subscriber that classifies frames by substring search instead of parsing their
//! JSON: at tens of thousands of frames per second the client must stay cheap, or it would
//! measure itself rather than the daemon.

use std::net::SocketAddr;

use crate::http::{self, json_string_field};
use crate::sse_frames::RawFrames;
use anyhow::{bail, Result};
use memchr::memmem;

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
    frames: RawFrames,
    chunk_marker: memmem::Finder<'static>,
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
        Ok(EventStream {
            frames: RawFrames::new(stream, head.chunked, &rest)?,
            chunk_marker: memmem::Finder::new(b"\"sessionUpdate\":\"agent_message_chunk\""),
        })
    }

    /// The next frame's meaning; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        let chunk_marker = &self.chunk_marker;
        Ok(self
            .frames
            .next()
            .await?
            .map(|frame| classify(frame, chunk_marker)))
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
