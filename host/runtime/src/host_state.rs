//! What a guest's `Store` holds, and the host functions guests may import.
//!
//! Everything a guest can reach goes through here: a log line, a monotonic
//! clock, a random id, the policy's configuration document — and, for guests
//! from languages whose toolchains import WASI, a WASI context with no
//! preopened directories, no environment, no network and stdout/stderr
//! captured into our log.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::host_iface::{self, LogLevel};
use crate::bindings::policy_world::qserve::bridge::policy_config;

/// Captured WASI stdout/stderr per instance. Bounded: once full, the guest's
/// writes fail instead of growing the daemon.
const CAPTURED_OUTPUT_BYTES: usize = 256 * 1024;

pub(crate) struct GuestState {
    /// Names the guest in log lines (`core`, `policy:readonly`, …).
    label: Arc<str>,
    limits: StoreLimits,
    /// Contents of `--policy-config` (empty for the core or when not given).
    config_document: Arc<str>,
    epoch_origin: Instant,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// How much of `stdout`/`stderr` has already been logged.
    logged_out: usize,
    logged_err: usize,
}

impl GuestState {
    pub(crate) fn new(label: Arc<str>, memory_cap: usize, config_document: Arc<str>) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        // Deliberately nothing inherited: no env, no args, no preopens, no sockets.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestState {
            label,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_cap)
                .trap_on_grow_failure(true)
                .instances(16)
                .build(),
            config_document,
            epoch_origin: Instant::now(),
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
            logged_out: 0,
            logged_err: 0,
        }
    }

    pub(crate) fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }

    /// Forward whatever the guest wrote to WASI stdout/stderr since the last call.
    pub(crate) fn flush_captured_output(&mut self) {
        for (pipe, logged, stream) in [
            (&self.stdout, &mut self.logged_out, "stdout"),
            (&self.stderr, &mut self.logged_err, "stderr"),
        ] {
            let contents = pipe.contents();
            if contents.len() > *logged {
                let fresh = String::from_utf8_lossy(&contents[*logged..]);
                for line in fresh.lines() {
                    tracing::info!(guest = %self.label, stream, "{line}");
                }
                *logged = contents.len();
            }
        }
    }
}

impl host_iface::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        let guest = &*self.label;
        match level {
            LogLevel::Trace => tracing::trace!(guest, "{message}"),
            LogLevel::Debug => tracing::debug!(guest, "{message}"),
            LogLevel::Info => tracing::info!(guest, "{message}"),
            LogLevel::Warn => tracing::warn!(guest, "{message}"),
            LogLevel::Error => tracing::error!(guest, "{message}"),
        }
    }

    fn monotonic_now_ms(&mut self) -> u64 {
        self.epoch_origin.elapsed().as_millis() as u64
    }

    fn random_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

impl policy_config::Host for GuestState {
    fn get(&mut self) -> String {
        self.config_document.to_string()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
