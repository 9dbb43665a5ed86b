//! An SSE reader that hands back whole frames with their `id:` and `event:` lines: the soak
//! checks every id, so unlike the benchmark's reader it cannot skip the envelope.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use tokio::io::AsyncReadExt;

use crate::http;
use crate::sse_frames::RawFrames;

/// One SSE frame.
#[derive(Debug, Default)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: String,
    /// The `data:` line's value (the JSON envelope), empty for comments and `retry:`.
    pub data: Vec<u8>,
}

impl Frame {
    /// The string value of `"field":"…"` in the envelope (first occurrence).
    pub fn field(&self, name: &str) -> Option<&str> {
        http::json_string_field(&self.data, name)
    }
}

pub struct FrameReader {
    frames: RawFrames,
}

/// How a subscribe attempt ended when it did not give a stream.
pub enum Open {
    Stream(Box<FrameReader>),
    /// The daemon answered with this status (404 once the session ended).
    Refused(u16, String),
}

impl FrameReader {
    /// Subscribes to a session's events, resuming after `last_event_id` when given.
    pub async fn open(addr: SocketAddr, session: &str, last_event_id: Option<u64>) -> Result<Open> {
        let path = format!("/session/{session}/events");
        let cursor = last_event_id.map(|id| id.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(cursor) = &cursor {
            headers.push(("Last-Event-ID", cursor.as_str()));
        }
        let (mut stream, head, rest) = http::open_streaming(addr, &path, &headers).await?;
        if head.status != 200 {
            let mut body = rest;
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read_to_end(&mut body),
            )
            .await;
            return Ok(Open::Refused(
                head.status,
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        if !head.content_type.starts_with("text/event-stream") {
            bail!("GET {path}: 200 with {:?}", head.content_type);
        }
        Ok(Open::Stream(Box::new(FrameReader {
            frames: RawFrames::new(stream, head.chunked, &rest)?,
        })))
    }

    /// The next frame; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Frame>> {
        Ok(self.frames.next().await?.map(parse))
    }
}

fn parse(raw: &[u8]) -> Frame {
    let mut frame = Frame::default();
    for line in raw.split(|b| *b == b'\n') {
        if let Some(value) = line.strip_prefix(b"id:") {
            frame.id = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if let Some(value) = line.strip_prefix(b"event:") {
            frame.event = String::from_utf8_lossy(value.trim_ascii()).into_owned();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            frame.data = value.trim_ascii_start().to_vec();
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_event_and_data() {
        let frame =
            parse(b"id: 7\nevent: permission_request\ndata: {\"data\":{\"requestId\":\"r-1\"}}");
        assert_eq!(frame.id, Some(7));
        assert_eq!(frame.event, "permission_request");
        assert_eq!(frame.field("requestId"), Some("r-1"));
        let ping = parse(b": ping");
        assert_eq!(ping.id, None);
        assert!(ping.event.is_empty());
    }
}
