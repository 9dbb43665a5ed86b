//! SSE frames from bytes: no IO, so it is unit-tested on its own.
//!
//! The daemon writes LF-terminated lines and ends each frame with an empty
//! line; a frame's `data:` lines hold one JSON envelope. Comments (`: ping`)
//! and `retry:`/`id:`/`event:` lines are read but the envelope is what counts
//! (it carries the id and type itself). CRLF is accepted too.

use crate::types::Event;

/// What one complete frame said.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Event(Event),
    /// `retry: N` — the daemon's advice on the reconnect delay, in ms.
    Retry(u64),
    /// A frame whose data is not an envelope; kept for the error message.
    Malformed(String),
}

/// Accumulates bytes and hands out complete frames.
#[derive(Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
}

/// A frame bigger than this is a broken stream, not an event to wait for
/// (the daemon caps agent lines at 16 MiB; an envelope adds little).
pub const MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a complete frame.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Drops what is buffered: after a reconnect a partial frame is garbage.
    pub fn reset(&mut self) {
        self.buffer.clear();
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let end = find_frame_end(&self.buffer)?;
            let raw: Vec<u8> = self.buffer.drain(..end.frame_len).collect();
            let text = String::from_utf8_lossy(&raw[..end.body_len]);
            if let Some(frame) = parse_frame(&text) {
                return Some(frame);
            }
            // A comment-only frame (`: ping`): read on.
        }
    }
}

struct FrameEnd {
    body_len: usize,
    frame_len: usize,
}

fn find_frame_end(buffer: &[u8]) -> Option<FrameEnd> {
    let mut i = 0;
    while i < buffer.len() {
        if buffer[i] == b'\n' {
            let next = i + 1;
            if buffer.get(next) == Some(&b'\n') {
                return Some(FrameEnd {
                    body_len: i,
                    frame_len: next + 1,
                });
            }
            if buffer.get(next) == Some(&b'\r') && buffer.get(next + 1) == Some(&b'\n') {
                return Some(FrameEnd {
                    body_len: i,
                    frame_len: next + 2,
                });
            }
        }
        i += 1;
    }
    None
}

fn parse_frame(text: &str) -> Option<Frame> {
    let mut data = String::new();
    let mut retry = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            "retry" => retry = value.trim().parse().ok(),
            _ => {}
        }
    }
    if !data.is_empty() {
        return Some(match serde_json::from_str::<Event>(&data) {
            Ok(event) => Frame::Event(event),
            Err(_) => Frame::Malformed(data),
        });
    }
    retry.map(Frame::Retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[&[u8]]) -> Vec<Frame> {
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        for chunk in input {
            reader.push(chunk);
            while let Some(frame) = reader.next_frame() {
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn frames_split_anywhere_are_put_back_together() {
        let stream = b"retry: 3000\n\nid: 1\nevent: session_update\ndata: {\"id\":1,\"v\":1,\"type\":\"session_update\",\"data\":{}}\n\n: ping\n\nevent: stream_error\ndata: {\"v\":1,\"type\":\"stream_error\",\"data\":{\"error\":\"bye\"}}\n\n";
        for cut in 0..stream.len() {
            let got = frames(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(got.len(), 3, "cut at {cut}: {got:?}");
            assert_eq!(got[0], Frame::Retry(3000));
            match &got[1] {
                Frame::Event(e) => assert_eq!((e.id, e.kind.as_str()), (Some(1), "session_update")),
                other => panic!("{other:?}"),
            }
            match &got[2] {
                Frame::Event(e) => {
                    assert_eq!(e.id, None);
                    assert_eq!(e.data["error"], "bye");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn crlf_lines_and_a_missing_space_after_the_colon_are_accepted() {
        let got = frames(&[b"data:{\"id\":7,\"v\":1,\"type\":\"x\"}\r\n\r\n"]);
        match &got[..] {
            [Frame::Event(e)] => assert_eq!((e.id, e.kind.as_str()), (Some(7), "x")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_that_is_not_an_envelope_is_reported_not_dropped() {
        let got = frames(&[b"data: not json\n\n"]);
        assert_eq!(got, vec![Frame::Malformed("not json".into())]);
    }

    #[test]
    fn an_incomplete_frame_waits_for_its_end() {
        let mut reader = FrameReader::default();
        reader.push(b"data: {\"id\":1,\"v\":1,\"type\":\"x\"}\n");
        assert!(reader.next_frame().is_none());
        assert!(reader.pending() > 0);
        reader.push(b"\n");
        assert!(matches!(reader.next_frame(), Some(Frame::Event(_))));
        assert_eq!(reader.pending(), 0);
    }
}
