//! What a guest's `Store` holds, and the host functions guests may import.
//!
//! Everything a guest can reach goes through here: a log line (escaped,
//! truncated, rate-limited: `guest_log`), a monotonic clock, the wall clock
//! (policies only), a random id — and, for guests from languages whose
//! toolchains import WASI, a WASI context with no preopened directories, no
//! environment, no arguments, no network, an empty stdin and stdout/stderr
//! written line by line through the same log gate.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::Level;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{core_host, policy_host, policy_types};
use crate::guest_log::{LogGate, OutputSink};
use crate::limits::{Caps, GuestLimiter};

pub(crate) struct GuestState {
    limiter: GuestLimiter,
    epoch_origin: Instant,
    gate: Arc<Mutex<LogGate>>,
    stdout: OutputSink,
    stderr: OutputSink,
    wasi: WasiCtx,
    table: ResourceTable,
    /// When the running call must end (policies: read by the epoch callback).
    pub(crate) call_due: Option<Instant>,
    /// The same for the core, on the engine's coarse clock (`GuestClock`).
    pub(crate) due_ms: u64,
    /// `--node-id`: put before every id the core mints (`NAME.` + UUID), so
    /// that a proxy in front of several daemons can tell from a session or
    /// request id which daemon owns it. Policies' ids are never prefixed.
    pub(crate) id_prefix: Option<Arc<str>>,
}

impl GuestState {
    pub(crate) fn new(label: Arc<str>, caps: Caps) -> Self {
        let gate = Arc::new(Mutex::new(LogGate::new(label)));
        let stdout = OutputSink::new(gate.clone(), "stdout", Level::INFO);
        let stderr = OutputSink::new(gate.clone(), "stderr", Level::WARN);
        // Deliberately nothing inherited: no env, no args, no preopens, no
        // sockets; stdin is the builder's default, an empty stream.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestState {
            limiter: GuestLimiter::new(caps),
            epoch_origin: Instant::now(),
            gate,
            stdout,
            stderr,
            wasi,
            table: ResourceTable::new(),
            call_due: None,
            due_ms: 0,
            id_prefix: None,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut GuestLimiter {
        &mut self.limiter
    }

    /// Name the guest in its log lines from now on (`policy:NAME` once `init` told us).
    pub(crate) fn set_label(&mut self, label: Arc<str>) {
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_label(label);
    }

    /// Log what the guest printed without a final newline (after each call).
    pub(crate) fn flush_output(&mut self) {
        self.stdout.flush_partial();
        self.stderr.flush_partial();
    }

    fn log(&mut self, level: Level, message: &str) {
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .line(level, None, message);
    }
}

impl Drop for GuestState {
    fn drop(&mut self) {
        self.flush_output();
        let (memory, table_elements) = self.limiter.totals();
        tracing::trace!(memory, table_elements, "guest instance dropped");
    }
}

impl core_host::Host for GuestState {
    fn log(&mut self, level: core_host::LogLevel, message: String) {
        use core_host::LogLevel as L;
        let level = match level {
            L::Trace => Level::TRACE,
            L::Debug => Level::DEBUG,
            L::Info => Level::INFO,
            L::Warn => Level::WARN,
            L::Error => Level::ERROR,
        };
        GuestState::log(self, level, &message);
    }

    fn monotonic_now_ms(&mut self) -> u64 {
        self.epoch_origin.elapsed().as_millis() as u64
    }

    fn random_id(&mut self) -> String {
        core_id(self.id_prefix.as_deref())
    }
}

/// A fresh id for the core: a UUID v4, after `NODE.` when the daemon has a
/// node id. `.` never occurs in a UUID or a node id, so the first `.` ends
/// the node's name.
pub(crate) fn core_id(prefix: Option<&str>) -> String {
    let uuid = uuid::Uuid::new_v4();
    match prefix {
        Some(node) => format!("{node}.{uuid}"),
        None => uuid.to_string(),
    }
}

impl policy_host::Host for GuestState {
    fn log(&mut self, level: policy_host::LogLevel, message: String) {
        use policy_host::LogLevel as L;
        let level = match level {
            L::Trace => Level::TRACE,
            L::Debug => Level::DEBUG,
            L::Info => Level::INFO,
            L::Warn => Level::WARN,
            L::Error => Level::ERROR,
        };
        GuestState::log(self, level, &message);
    }

    fn monotonic_now_ms(&mut self) -> u64 {
        self.epoch_origin.elapsed().as_millis() as u64
    }

    fn wall_clock_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn random_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

impl policy_types::Host for GuestState {}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::core_id;

    #[test]
    fn core_ids_carry_the_node_name_before_the_first_dot() {
        let plain = core_id(None);
        assert!(uuid::Uuid::parse_str(&plain).is_ok(), "{plain}");
        let owned = core_id(Some("node-a"));
        let (node, rest) = owned.split_once('.').expect("a dot");
        assert_eq!(node, "node-a");
        assert!(uuid::Uuid::parse_str(rest).is_ok(), "{owned}");
        assert_ne!(core_id(Some("node-a")), owned);
    }
}
