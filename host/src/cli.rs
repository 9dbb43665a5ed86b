//! The command line: every flag, its `QSERVE_*` environment twin, its default.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "qserve-host",
    version,
    about = "Share ACP coding agents over HTTP + SSE, with the permission policy as a swappable Wasm component",
    after_help = "Run on the embedded default policy:  qserve-host\n\
                  Run a policy component:            qserve-host --component policy.wasm\n\
                  Check a component before deploying: qserve-host policy check policy.wasm"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with policy components without starting the daemon.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a component's imports and exports and whether it fits the `policy` world.
    Inspect { file: PathBuf },
    /// Exit non-zero (with the reason) unless the component fits the `policy` world.
    Check { file: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionScopeArg {
    /// A second create for the same workspace attaches to its live session.
    Single,
    /// Every create makes a new session on the workspace's shared agent.
    Thread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind. Anything but loopback requires a token.
    #[arg(long, env = "QSERVE_HOSTNAME", default_value = "127.0.0.1")]
    pub hostname: String,
    /// Port to bind; 0 picks a free one (the real URL is printed).
    #[arg(long, env = "QSERVE_PORT", default_value_t = 4170)]
    pub port: u16,
    /// Bearer token clients must send (prefer the QSERVE_TOKEN environment variable:
    /// argv is visible to other users of the machine).
    #[arg(long, env = "QSERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Live sessions plus in-flight creates; 0 = unlimited.
    #[arg(long, env = "QSERVE_MAX_SESSIONS", default_value_t = 20)]
    pub max_sessions: u32,
    /// Open client connections; 0 = unlimited.
    #[arg(long, env = "QSERVE_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
    /// Events retained per session for `Last-Event-ID` replay.
    #[arg(long, env = "QSERVE_EVENT_RING_SIZE", default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_ring_size: u32,
    /// Default session scope (a request's `sessionScope` overrides it).
    #[arg(long, env = "QSERVE_SESSION_SCOPE", value_enum, default_value_t = SessionScopeArg::Single)]
    pub session_scope: SessionScopeArg,
    /// The ACP agent command, split as a shell would.
    #[arg(long, env = "QSERVE_AGENT", default_value = "qwen --acp")]
    pub agent: String,
    /// A policy component (.wasm) to use instead of the embedded default.
    #[arg(long, env = "QSERVE_COMPONENT")]
    pub component: Option<PathBuf>,
    /// For tests: a core component instead of the embedded one.
    #[arg(long, env = "QSERVE_CORE_COMPONENT", hide = true)]
    pub core_component: Option<PathBuf>,
    /// A configuration document handed to the policy as is.
    #[arg(long, env = "QSERVE_POLICY_CONFIG")]
    pub policy_config: Option<PathBuf>,
    /// How long a permission request waits for the clients' votes (seconds) before
    /// it resolves `cancelled`, unless the policy sets its own timeout.
    #[arg(long, env = "QSERVE_PERMISSION_TIMEOUT", default_value_t = 300)]
    pub permission_timeout: u64,
    /// Pending permission requests per session; more resolve `cancelled` at once.
    #[arg(long, env = "QSERVE_MAX_PENDING_PERMISSIONS", default_value_t = 64)]
    pub max_pending_permissions: u32,
    /// Longest a single policy decision may run (milliseconds).
    #[arg(long, env = "QSERVE_POLICY_DEADLINE_MS", default_value_t = 50)]
    pub policy_deadline_ms: u64,
    /// Most memory the policy may hold (MiB).
    #[arg(long, env = "QSERVE_POLICY_MEMORY_MIB", default_value_t = 64)]
    pub policy_memory_mib: usize,
    /// How long an agent may take to answer `initialize` (seconds).
    #[arg(long, env = "QSERVE_INIT_TIMEOUT", default_value_t = 10)]
    pub init_timeout: u64,
    /// Longest line accepted from an agent's stdout (bytes).
    #[arg(long, env = "QSERVE_MAX_LINE_BYTES", default_value_t = 16 << 20)]
    pub max_line_bytes: usize,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/qserve).
    #[arg(long, env = "QSERVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, env = "QSERVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl ServeArgs {
    pub fn permission_timeout(&self) -> Duration {
        Duration::from_secs(self.permission_timeout)
    }

    /// Whether `--token` itself was on the command line (not from the environment).
    pub fn token_on_argv() -> bool {
        std::env::args().any(|a| a == "--token" || a.starts_with("--token="))
    }
}
