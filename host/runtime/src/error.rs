use std::path::PathBuf;

/// Why a guest could not be loaded. Each message names the file (or
/// `builtin:…`, `embedded core`) and the mismatch, so an operator can act on
/// it without a backtrace.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("there is no built-in policy `{name}`; the built-in policies are: {known}")]
    UnknownBuiltin { name: String, known: String },
    #[error("{origin} is not a WebAssembly file (no \\0asm header)")]
    NotWasm { origin: String },
    #[error(
        "{origin} is a core WebAssembly module, not a component; turn it into one with \
         `wasm-tools component new` (or wit-component) against the `{world}` world \
         (wit/{world}/{world}.wit)"
    )]
    CoreModule { origin: String, world: &'static str },
    #[error("{origin} could not be compiled: {reason}")]
    Compile { origin: String, reason: String },
    #[error(
        "{origin} was built for {found}, this host speaks {expected}: rebuild it against \
         wit/policy/policy.wit ({expected})"
    )]
    ContractVersion {
        origin: String,
        found: String,
        expected: String,
    },
    #[error("{origin} does not fit the `{world}` world: {reason}")]
    WrongWorld {
        origin: String,
        world: &'static str,
        reason: String,
    },
    #[error("{origin} could not be instantiated: {reason}")]
    Instantiate { origin: String, reason: String },
    #[error("{origin} refused its configuration: {reason}")]
    ConfigRefused { origin: String, reason: String },
}
