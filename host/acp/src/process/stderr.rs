//! Forwards an agent's stderr (its log) into `tracing`, one event per line.

use std::path::Path;

use tokio::io::{AsyncRead, BufReader};

use crate::lines::{escape_for_log, read_line_capped, skip_rest_of_line, LineEnd};

/// Longest stderr line logged in full; the rest of a longer line is dropped
/// and its length noted, so one runaway line cannot flood the daemon's log.
pub const STDERR_LINE_CAP: usize = 8 * 1024;

/// The `tracing` target of forwarded lines, for filtering
/// (`RUST_LOG=qserve_acp::agent_stderr=warn` silences chatty agents).
pub const STDERR_TARGET: &str = "qserve_acp::agent_stderr";

/// Reads `stderr` to its end, logging each line as `pid=… cwd=… <line>`.
pub(crate) async fn forward_stderr<R: AsyncRead + Unpin>(stderr: R, pid: u32, cwd: &Path) {
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
