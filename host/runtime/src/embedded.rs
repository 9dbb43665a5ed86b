//! The default core and default policy, compiled into the binary so that the
//! daemon runs on a machine with no Wasm toolchain. `guest/build.sh --embed`
//! refreshes them and records a hash of their sources in
//! `embedded/SOURCES.sha256`; CI fails when that hash no longer matches
//! `guest/` and `wit/` (`guest/build.sh --check-embedded`).

/// The default core component (session registry, event ring, permissions).
pub static EMBEDDED_CORE: &[u8] = include_bytes!("../embedded/core.wasm");

/// The default policy component: asks the clients for every permission.
pub static EMBEDDED_DEFAULT_POLICY: &[u8] = include_bytes!("../embedded/policy-default.wasm");
