//! Forwards an agent's stderr (its log) into `tracing`, one event per line.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::sync::watch;

use crate::lines::{escape_for_log, read_line_capped, skip_rest_of_line, LineEnd};

/// Longest stderr line logged in full; the rest of a longer line is dropped
/// and its length noted, so one runaway line cannot flood the daemon's log.
pub const STDERR_LINE_CAP: usize = 8 * 1024;

/// The `tracing` target of forwarded lines, for filtering
/// (`RUST_LOG=qserve_acp::agent_stderr=warn` silences chatty agents).
pub const STDERR_TARGET: &str = "qserve_acp::agent_stderr";

/// Lines kept for an error message about an agent that died.
const TAIL_LINES: usize = 10;
/// Characters kept of each of those lines.
const TAIL_LINE_CHARS: usize = 300;

/// The last few lines an agent wrote on stderr (bounded), so that a client
/// can be told why an agent died, not only that it did.
#[derive(Debug)]
pub struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    closed: watch::Sender<bool>,
}

impl Default for StderrTail {
    fn default() -> Self {
        Self {
            lines: Mutex::default(),
            closed: watch::Sender::new(false),
        }
    }
}

impl StderrTail {
    fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.chars().take(TAIL_LINE_CHARS).collect());
    }

    /// The last lines, once stderr has closed (or `wait` has passed).
    pub async fn lines(&self, wait: Duration) -> Vec<String> {
        let mut closed = self.closed.subscribe();
        let _ = tokio::time::timeout(wait, closed.wait_for(|closed| *closed)).await;
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

/// Reads `stderr` to its end, logging each line as `pid=… cwd=… <line>` and
/// keeping the last few in `tail`.
pub(crate) async fn forward_stderr<R: AsyncRead + Unpin>(
    stderr: R,
    pid: u32,
    cwd: &Path,
    tail: &StderrTail,
) {
    read_stderr(stderr, pid, cwd, tail).await;
    tail.closed.send_replace(true);
}

async fn read_stderr<R: AsyncRead + Unpin>(stderr: R, pid: u32, cwd: &Path, tail: &StderrTail) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let end = match read_line_capped(&mut reader, &mut line, STDERR_LINE_CAP).await {
            Ok(end) => end,
            Err(e) => {
                tracing::debug!(target: STDERR_TARGET, "pid={pid} cwd={} stderr read failed: {e}", cwd.display());
                return;
            }
        };
        let dropped = if end == LineEnd::CapReached {
            skip_rest_of_line(&mut reader).await.unwrap_or(0)
        } else {
            0
        };
        if !(end == LineEnd::Eof && line.is_empty()) {
            log_line(pid, cwd, &line, dropped);
            tail.push(String::from_utf8_lossy(&line).trim_end_matches('\r'));
        }
        if end == LineEnd::Eof {
            return;
        }
    }
}

fn log_line(pid: u32, cwd: &Path, line: &[u8], dropped: u64) {
    let text = String::from_utf8_lossy(line);
    let text = escape_for_log(text.trim_end_matches('\r'));
    if dropped > 0 {
        tracing::info!(target: STDERR_TARGET, "pid={pid} cwd={} {text}… [{dropped} more bytes truncated]", cwd.display());
    } else {
        tracing::info!(target: STDERR_TARGET, "pid={pid} cwd={} {text}", cwd.display());
    }
}
