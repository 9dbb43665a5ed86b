//! An SSE reader that hands back whole frames with their `id:` and `event:` lines: the soak
//! checks every id, so unlike the benchmark's reader it cannot skip the envelope.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use memchr::memmem;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::chunked::ChunkedDecoder;
use crate::http;

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
    stream: TcpStream,
    decoder: Option<ChunkedDecoder>,
    payload: Vec<u8>,
    consumed: usize,
    read_buf: Box<[u8]>,
}

/// How a subscribe attempt ended when it did not give a stream.
pub enum Open {
    Stream(FrameReader),
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
        let mut reader = FrameReader {
            stream,
            decoder: head.chunked.then(ChunkedDecoder::default),
            payload: Vec::with_capacity(64 * 1024),
            consumed: 0,
            read_buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        };
        reader.absorb_owned(rest)?;
        Ok(Open::Stream(reader))
    }

    fn absorb_owned(&mut self, bytes: Vec<u8>) -> Result<()> {
        match &mut self.decoder {
            Some(decoder) => decoder.decode(&bytes, &mut self.payload),
            None => {
                self.payload.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }

    /// The next frame; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Frame>> {
        loop {
            let pending = &self.payload[self.consumed..];
            if let Some(end) = memmem::find(pending, b"\n\n") {
                let frame = parse(&pending[..end]);
                self.consumed += end + 2;
                return Ok(Some(frame));
            }
            if self.decoder.as_ref().is_some_and(ChunkedDecoder::is_done) {
                return Ok(None);
            }
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
            match &mut self.decoder {
                Some(decoder) => decoder.decode(&self.read_buf[..n], &mut self.payload)?,
                None => self.payload.extend_from_slice(&self.read_buf[..n]),
            }
        }
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
