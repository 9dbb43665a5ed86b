//! What a guest writes to the daemon's log, made safe to write there.
//!
//! A guest's log lines (`host.log`, and WASI stdout/stderr for guests whose
//! toolchain prints) are untrusted text. Each line is
//! - **escaped**: control characters (newlines included) and bidirectional
//!   overrides become visible escapes, so a guest cannot forge a log line or
//!   hide text from the operator's terminal;
//! - **truncated** to [`MAX_LINE_BYTES`] with a marker saying how much was cut;
//! - **rate-limited** per instance by a token bucket ([`BURST`] lines, then
//!   [`PER_SECOND`] a second); dropped lines are counted and reported in one
//!   summary line when logging resumes or the instance is dropped.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Level;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line kept, in bytes of escaped text (before the truncation marker).
pub const MAX_LINE_BYTES: usize = 2048;
/// Lines an instance may log at once before the rate applies.
pub const BURST: f64 = 50.0;
/// Lines per second an instance may log in the long run.
pub const PER_SECOND: f64 = 20.0;

/// Escape and truncate one line. Returns the text to log.
pub(crate) fn sanitize_line(input: &str, max_bytes: usize) -> String {
    sanitize_cut_line(input, max_bytes, 0)
}

/// [`sanitize_line`] for a line of which `already_cut` bytes were dropped
/// before it got here (WASI output keeps only a line's first bytes).
fn sanitize_cut_line(input: &str, max_bytes: usize, already_cut: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_bytes) + 32);
    let mut escaped = String::new();
    for (at, c) in input.char_indices() {
        escaped.clear();
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\\' => escaped.push_str("\\\\"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
            }
            c => escaped.push(c),
        }
        if out.len() + escaped.len() > max_bytes {
            let omitted = input.len() - at + already_cut;
            let _ = write!(out, "… [truncated, {omitted} more bytes]");
            return out;
        }
        out.push_str(&escaped);
    }
    if already_cut > 0 {
        let _ = write!(out, "… [truncated, {already_cut} more bytes]");
    }
    out
}

/// Characters that reorder the text around them on a terminal.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// One instance's gate to the log. Shared by `host.log` and the WASI output
/// streams of that instance, so all of them draw on one budget.
pub(crate) struct LogGate {
    label: Arc<str>,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl LogGate {
    pub(crate) fn new(label: Arc<str>) -> Self {
        LogGate {
            label,
            tokens: BURST,
            refilled: Instant::now(),
            dropped: 0,
        }
    }

    pub(crate) fn set_label(&mut self, label: Arc<str>) {
        self.label = label;
    }

    /// Log one line of the guest's (`stream`: `None` for `host.log`).
    pub(crate) fn line(&mut self, level: Level, stream: Option<&'static str>, text: &str) {
        self.cut_line(level, stream, text, 0)
    }

    fn cut_line(&mut self, level: Level, stream: Option<&'static str>, text: &str, cut: usize) {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + earned).min(BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        self.report_dropped();
        let text = sanitize_cut_line(text, MAX_LINE_BYTES, cut);
        let guest = &*self.label;
        let stream = stream.unwrap_or("log");
        match level {
            Level::TRACE => tracing::trace!(guest = %guest, stream, "{text}"),
            Level::DEBUG => tracing::debug!(guest = %guest, stream, "{text}"),
            Level::INFO => tracing::info!(guest = %guest, stream, "{text}"),
            Level::WARN => tracing::warn!(guest = %guest, stream, "{text}"),
            _ => tracing::error!(guest = %guest, stream, "{text}"),
        }
    }

    /// One summary line for the lines dropped since the last one.
    pub(crate) fn report_dropped(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                guest = %self.label,
                dropped = self.dropped,
                "guest log rate limit: {} lines dropped (at most {BURST} at once, then {PER_SECOND}/s)",
                self.dropped
            );
            self.dropped = 0;
        }
    }
}

impl Drop for LogGate {
    fn drop(&mut self) {
        self.report_dropped();
    }
}

/// A WASI stdout or stderr that writes whole lines through the instance's
/// [`LogGate`]. It accepts every write (a guest whose print fails would
/// trap), keeps at most one partial line of [`MAX_LINE_BYTES`], and drops the
/// rest of an over-long line.
#[derive(Clone)]
pub(crate) struct OutputSink {
    inner: Arc<Mutex<SinkState>>,
}

struct SinkState {
    gate: Arc<Mutex<LogGate>>,
    stream: &'static str,
    level: Level,
    partial: Vec<u8>,
    /// Bytes of the current line dropped for length.
    overflow: usize,
}

impl OutputSink {
    pub(crate) fn new(gate: Arc<Mutex<LogGate>>, stream: &'static str, level: Level) -> Self {
        OutputSink {
            inner: Arc::new(Mutex::new(SinkState {
                gate,
                stream,
                level,
                partial: Vec::new(),
                overflow: 0,
            })),
        }
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    state.push(&bytes[..end]);
                    state.emit();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    state.push(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// Log a trailing line without a newline (after each call).
    pub(crate) fn flush_partial(&self) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !state.partial.is_empty() || state.overflow > 0 {
            state.emit();
        }
    }
}

impl SinkState {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        let kept = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..kept]);
        self.overflow += bytes.len() - kept;
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.partial);
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cut_line(self.level, Some(self.stream), &text, self.overflow);
        self.partial.clear();
        self.overflow = 0;
    }
}

impl IsTerminal for OutputSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputSink {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputSink {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for OutputSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_cannot_forge_a_line() {
        let forged = "ok\n2025-01-01T00:00:00Z  INFO qserve: admin logged in\x1b[2J\u{202e}";
        let line = sanitize_line(forged, MAX_LINE_BYTES);
        assert!(!line.contains('\n') && !line.contains('\x1b') && !line.contains('\u{202e}'));
        assert_eq!(
            line,
            "ok\\n2025-01-01T00:00:00Z  INFO qserve: admin logged in\\u{1b}[2J\\u{202e}"
        );
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let long = "é".repeat(5000); // 10 000 bytes
        let line = sanitize_line(&long, MAX_LINE_BYTES);
        assert!(line.len() < MAX_LINE_BYTES + 64, "{}", line.len());
        assert!(
            line.ends_with("… [truncated, 7952 more bytes]"),
            "{}",
            &line[line.len() - 40..]
        );
        assert_eq!(sanitize_line("short", MAX_LINE_BYTES), "short");
    }
}
