//! Cuts an event stream's body into raw SSE frames (without their terminating blank line),
//! decoding HTTP chunking when the daemon uses it. Shared by the benchmark's classifying
//! reader (`sse.rs`) and the soak's parsing one (`soak/frames.rs`).

use anyhow::{Context, Result};
use memchr::memmem;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::chunked::ChunkedDecoder;

pub struct RawFrames {
    stream: TcpStream,
    decoder: Option<ChunkedDecoder>,
    /// Decoded payload; frames are cut from `payload[consumed..]`.
    payload: Vec<u8>,
    consumed: usize,
    read_buf: Box<[u8]>,
    frame_end: memmem::Finder<'static>,
}

impl RawFrames {
    /// `rest` is what was read past the response head; `chunked` whether the body is.
    pub fn new(stream: TcpStream, chunked: bool, rest: &[u8]) -> Result<RawFrames> {
        let mut frames = RawFrames {
            stream,
            decoder: chunked.then(ChunkedDecoder::default),
            payload: Vec::with_capacity(256 * 1024),
            consumed: 0,
            read_buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            frame_end: memmem::Finder::new(b"\n\n"),
        };
        frames.absorb(rest)?;
        Ok(frames)
    }

    /// The next frame's bytes; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if let Some(end) = self.frame_end.find(&self.payload[self.consumed..]) {
                let start = self.consumed;
                self.consumed += end + 2;
                return Ok(Some(&self.payload[start..start + end]));
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
            let (read_buf, payload) = (&self.read_buf[..n], &mut self.payload);
            match &mut self.decoder {
                Some(decoder) => decoder.decode(read_buf, payload)?,
                None => payload.extend_from_slice(read_buf),
            }
        }
    }

    fn absorb(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.decoder {
            Some(decoder) => decoder.decode(bytes, &mut self.payload),
            None => {
                self.payload.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}
