//! What a policy may ask of the host (the WIT `host` interface): a line in
//! the daemon's log, two clocks, random ids.
//!
//! In the component these call the host. Built natively (a policy's unit
//! tests), there is no host: they fall back to local stand-ins — the log
//! goes to stderr, the clocks are the process's, and [`random_id`] is
//! unique per process but not random. Policy logic can therefore call them
//! and still be tested with plain `cargo test`.

pub use crate::bindings::qserve::policy::host::LogLevel;

#[cfg(target_arch = "wasm32")]
use crate::bindings::qserve::policy::host as imports;

/// Writes a line to the daemon's log, attributed to the policy. The host
/// truncates long messages and rate-limits floods.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imports::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[policy {level:?}] {message}");
}

/// [`log`] at [`LogLevel::Info`].
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// [`log`] at [`LogLevel::Warn`].
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// Milliseconds on a monotonic clock (only differences mean anything).
pub fn monotonic_now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return imports::monotonic_now_ms();
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let elapsed = START.get_or_init(Instant::now).elapsed();
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Milliseconds since the Unix epoch (UTC), for time-based rules.
pub fn wall_clock_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return imports::wall_clock_ms();
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// A fresh random UUID v4 in its canonical 36-character form.
pub fn random_id() -> String {
    #[cfg(target_arch = "wasm32")]
    return imports::random_id();
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Natively: unique per process and shaped like a v4 UUID, which is
        // all a unit test can rely on.
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let t = wall_clock_ms();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 16) as u32,
            (t & 0xffff) as u16,
            (n >> 48) & 0xfff,
            (n >> 36) & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn native_stand_ins_answer_without_a_host() {
        log(LogLevel::Debug, "a policy may log in its unit tests");
        let first = monotonic_now_ms();
        assert!(monotonic_now_ms() >= first, "monotonic");
        assert!(wall_clock_ms() > 1_600_000_000_000, "after 2020");
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36, "{a}");
        assert_eq!(&a[14..15], "4", "version nibble of {a}");
    }
}
