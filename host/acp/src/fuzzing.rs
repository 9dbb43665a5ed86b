//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, never enabled by
//! the daemon): thin wrappers over the parsers that take an agent's bytes, so that fuzzing
//! needs no wider public API.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::lines::{read_line_capped, skip_rest_of_line, LineEnd};
use crate::rpc::frame::{decode, encode_response, parse_own_id, Decoded};

/// One line as the JSON-RPC reader framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedLine {
    /// The line without its `\n`; at most the cap.
    pub bytes: Vec<u8>,
    /// `true` when the line was longer than the cap (the rest was skipped).
    pub capped: bool,
    /// Bytes skipped after the cap, newline excluded.
    pub skipped: u64,
    /// `true` for the last piece of input (no newline ended it).
    pub eof: bool,
}

/// Splits `input` as the agent's stdout reader does, with a `reader_capacity`-byte buffer.
pub fn split_lines_capped(input: &[u8], cap: usize, reader_capacity: usize) -> Vec<CappedLine> {
    let mut reader = tokio::io::BufReader::with_capacity(reader_capacity.max(1), input);
    let mut lines = Vec::new();
    loop {
        let mut buf = Vec::new();
        let end = ready(read_line_capped(&mut reader, &mut buf, cap)).expect("reading memory");
        let mut line = CappedLine {
            bytes: buf,
            capped: false,
            skipped: 0,
            eof: end == LineEnd::Eof,
        };
        if end == LineEnd::CapReached {
            line.capped = true;
            line.skipped = ready(skip_rest_of_line(&mut reader)).expect("reading memory");
        }
        let eof = line.eof;
        lines.push(line);
        if eof {
            return lines;
        }
    }
}

/// What one line decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcLine {
    Request { method: String },
    Notification { method: String },
    Response { own_id: Option<u64>, error: bool },
    NotJsonRpc,
}

/// Decodes one line as the connection does; for a request, also encodes an answer to its
/// id and decodes that back.
pub fn decode_line(line: &[u8]) -> RpcLine {
    match decode(line) {
        Ok(Decoded::Request { id, method, .. }) => {
            // The answer carries the request's id byte for byte (JSON has no number range:
            // `9e750` goes back as sent).
            let answer = encode_response(id, &Ok(serde_json::Value::Null));
            match decode(&answer[..answer.len() - 1]) {
                Ok(Decoded::Response { id: answered, .. }) => assert_eq!(answered.get(), id.get()),
                _ => panic!("the answer to id {} does not decode", id.get()),
            }
            RpcLine::Request {
                method: method.into_owned(),
            }
        }
        Ok(Decoded::Notification { method, .. }) => RpcLine::Notification {
            method: method.into_owned(),
        },
        Ok(Decoded::Response { id, result }) => RpcLine::Response {
            own_id: parse_own_id(id),
            error: result.is_err(),
        },
        Err(_) => RpcLine::NotJsonRpc,
    }
}

/// `fs/read_text_file`'s slicing: lines `line..line + limit` of `text`.
pub fn read_text_lines(text: &[u8], line: u32, limit: Option<u32>) -> Vec<u8> {
    crate::fs::read_lines(text, line, limit).expect("reading memory")
}

/// Polls a future over in-memory input once: it never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory reader does not wait"),
    }
}
