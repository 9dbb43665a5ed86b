//! Incremental decoder for HTTP/1.1 `Transfer-Encoding: chunked`. Both daemons send SSE
//! bodies chunked; the chunk framing must come off before frames are counted, or a pattern
//! split by a chunk header would be missed.

use anyhow::{bail, Result};
use memchr::memmem;

#[derive(Debug)]
enum State {
    /// Expecting a `SIZE[;ext]\r\n` line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(usize),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// The zero-size chunk arrived: the body is over.
    Done,
}

/// Feeds raw body bytes in, appends decoded payload to a caller's buffer.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Raw bytes not yet decodable (a partial size line or a partial `\r\n`).
    carry: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            carry: Vec::new(),
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes `input`, appending the payload to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        // Only a few bytes of framing are ever carried over; the data itself is copied once.
        let owned;
        let mut bytes: &[u8] = if self.carry.is_empty() {
            input
        } else {
            self.carry.extend_from_slice(input);
            owned = std::mem::take(&mut self.carry);
            &owned
        };
        loop {
            match self.state {
                State::Done => return Ok(()),
                State::Data(left) => {
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(bytes.len());
                    out.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    self.state = if take == left {
                        State::DataEnd
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd => {
                    if bytes.len() < 2 {
                        self.carry.extend_from_slice(bytes);
                        return Ok(());
                    }
                    if &bytes[..2] != b"\r\n" {
                        bail!("chunked body: no CRLF after a chunk's data");
                    }
                    bytes = &bytes[2..];
                    self.state = State::Size;
                }
                State::Size => {
                    let Some(end) = memmem::find(bytes, b"\r\n") else {
                        if bytes.len() > 1024 {
                            bail!("chunked body: size line over 1 KiB");
                        }
                        self.carry.extend_from_slice(bytes);
                        return Ok(());
                    };
                    let line = &bytes[..end];
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|text| usize::from_str_radix(text.trim(), 16).ok());
                    let Some(size) = size else {
                        bail!(
                            "chunked body: bad size line {:?}",
                            String::from_utf8_lossy(line)
                        );
                    };
                    bytes = &bytes[end + 2..];
                    self.state = if size == 0 {
                        State::Done
                    } else {
                        State::Data(size)
                    };
                }
            }
        }
    }
}

/// Decodes a complete chunked body at once.
pub fn decode_all(body: &[u8]) -> Result<Vec<u8>> {
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::with_capacity(body.len());
    decoder.decode(body, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"D\r\nretry: 3000\n\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n";

    #[test]
    fn decodes_a_whole_body() {
        assert_eq!(decode_all(BODY).unwrap(), b"retry: 3000\n\nhello");
    }

    #[test]
    fn decodes_the_same_whatever_the_read_boundaries() {
        for split in 1..BODY.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            for piece in BODY.chunks(split) {
                decoder.decode(piece, &mut out).unwrap();
            }
            assert_eq!(out, b"retry: 3000\n\nhello", "pieces of {split} bytes");
            assert!(decoder.is_done());
        }
    }

    #[test]
    fn garbage_framing_is_an_error() {
        assert!(decode_all(b"zz\r\nabc").is_err());
        assert!(decode_all(b"3\r\nabcXY").is_err());
    }
}
