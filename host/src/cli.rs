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
    /// Follow a session's stream in the terminal and vote on its permission
    /// requests with one key (a client of a running daemon).
    Attach(AttachArgs),
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session to follow (its `sessionId`).
    pub session: String,
    /// The daemon's base URL.
    #[arg(long, env = "QSERVE_URL", default_value = "http://127.0.0.1:4170")]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a component's imports and exports and whether it fits the `policy` world.
    /// POLICY is a file or `builtin:NAME`.
    Inspect { policy: String },
    /// Exit non-zero (with the reason) unless the component fits the `policy` world.
    /// POLICY is a file or `builtin:NAME`.
    Check { policy: String },
    /// List the policies compiled into this binary (name, version, sha256).
    List,
    /// Run a case table against a policy (like `opa test`); exits 1 on a failure.
    Test {
        /// A component file or `builtin:NAME`.
        policy: String,
        /// The case table (TOML; format at the top of examples/policies/cases.toml).
        cases: PathBuf,
        /// A config for every case that sets none (overrides the table's `config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// For `builtin:rules`: list the rules no case exercised.
        #[arg(long)]
        coverage: bool,
    },
    /// Print one decision with its reason and latency (like `opa eval`).
    Eval {
        policy: String,
        /// One decision input (JSON, the shape of a case).
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a candidate policy over a decision log and report what it would
    /// have decided differently.
    Replay {
        policy: String,
        /// A `--decision-log` file (JSON lines).
        decisions: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many differences to print in full.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
    /// Write a new Rust policy crate NAME that builds on its own: the starter
    /// policy, a case table, and a copy of the SDK and the WIT it builds on.
    New {
        /// The crate's (package's) name, e.g. my-policy.
        name: String,
        /// The directory to write it into (default: ./NAME); must be absent or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
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
    /// Bearer token clients must send (prefer --token-file or the QSERVE_TOKEN
    /// environment variable: argv is visible to other users of the machine).
    #[arg(
        long,
        env = "QSERVE_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// Read the client token from this file (first line; keeps it off argv
    /// and out of the environment).
    #[arg(long, env = "QSERVE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Operator token for `PUT /admin/policy` (hot swap). Without it the admin
    /// routes do not exist. Must differ from the client token.
    #[arg(long, env = "QSERVE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Live sessions plus in-flight creates, daemon-wide; 0 = unlimited.
    /// (`--max-total-sessions`, `qwen serve`'s name for a daemon-wide cap, is the same flag.)
    #[arg(
        long,
        env = "QSERVE_MAX_SESSIONS",
        default_value_t = 20,
        alias = "max-total-sessions"
    )]
    pub max_sessions: u32,
    /// Open client connections; 0 = unlimited. Past it a connection gets an
    /// immediate 503 and is closed.
    #[arg(long, env = "QSERVE_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
    /// Require the token even on a loopback bind (for /health too).
    #[arg(long, env = "QSERVE_REQUIRE_AUTH")]
    pub require_auth: bool,
    /// A connection must send a whole request head within this long (ms; 0 = no limit).
    #[arg(long, env = "QSERVE_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed (ms; 0 = never).
    #[arg(long, env = "QSERVE_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// A response (an SSE stream) whose client accepts no bytes for this long is
    /// closed (ms; 0 = never).
    #[arg(long, env = "QSERVE_WRITER_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub writer_idle_timeout_ms: u64,
    /// Events retained per session for `Last-Event-ID` replay.
    #[arg(long, env = "QSERVE_EVENT_RING_SIZE", default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_ring_size: u32,
    /// Bytes of events retained per session for replay; the oldest go first
    /// (the newest event is always kept). 0 = bounded by count only.
    #[arg(long, env = "QSERVE_EVENT_RING_BYTES", default_value_t = 8 << 20)]
    pub event_ring_bytes: u64,
    /// Default session scope (a request's `sessionScope` overrides it).
    #[arg(long, env = "QSERVE_SESSION_SCOPE", value_enum, default_value_t = SessionScopeArg::Single)]
    pub session_scope: SessionScopeArg,
    /// The ACP agent command, split as a shell would.
    #[arg(long, env = "QSERVE_AGENT", default_value = "qwen --acp")]
    pub agent: String,
    /// The ACP session mode every new session is put in (`session/set_mode`).
    /// Default: the agent's own asking mode (e.g. `default` for qwen and
    /// claude-code-acp), so that its auto-approval cannot bypass the policy.
    /// Ignored for agents that advertise no modes (their settings decide).
    #[arg(long, env = "QSERVE_AGENT_MODE")]
    pub agent_mode: Option<String>,
    /// Another agent sessions can choose by name (`POST /session` `agent`):
    /// NAME="COMMAND ARGS". Repeatable. Without it, QSERVE_AGENTS holds
    /// several, separated by `;`. `--agent` is the one named `default`.
    #[arg(long = "agent-def", value_name = "NAME=COMMAND")]
    pub agent_defs: Vec<String>,
    /// The policy: a component file (.wasm) or a policy compiled into this
    /// binary (`builtin:default`, `builtin:readonly`; see `policy list`).
    /// SIGHUP reads it again.
    #[arg(long, env = "QSERVE_COMPONENT", default_value = "builtin:default")]
    pub component: String,
    /// Refuse any policy component whose bytes do not have this sha256 (hex),
    /// at start-up and on every reload.
    #[arg(long, env = "QSERVE_COMPONENT_SHA256", value_parser = parse_sha256)]
    pub component_sha256: Option<String>,
    /// A candidate policy that decides on live traffic too; only its verdicts
    /// are recorded (in the decision log, next to the real one), never acted on.
    #[arg(long, env = "QSERVE_SHADOW_COMPONENT")]
    pub shadow_component: Option<String>,
    /// The shadow policy's configuration.
    #[arg(long, env = "QSERVE_SHADOW_CONFIG", requires = "shadow_component")]
    pub shadow_config: Option<PathBuf>,
    /// Append every policy decision to this file as one JSON line
    /// (reopened on SIGHUP, for logrotate).
    #[arg(long, env = "QSERVE_DECISION_LOG")]
    pub decision_log: Option<PathBuf>,
    /// For tests: a core component instead of the embedded one.
    #[arg(long, env = "QSERVE_CORE_COMPONENT", hide = true)]
    pub core_component: Option<PathBuf>,
    /// The policy's configuration document, handed to its `init` as is (a
    /// policy that refuses it stops the start, or a reload). SIGHUP re-reads it.
    #[arg(long, global = true, env = "QSERVE_POLICY_CONFIG")]
    pub policy_config: Option<PathBuf>,
    /// How long a permission request waits for the clients' votes (seconds) before
    /// it resolves `cancelled`, unless the policy sets its own timeout.
    #[arg(long, env = "QSERVE_PERMISSION_TIMEOUT", default_value_t = 300)]
    pub permission_timeout: u64,
    /// Pending permission requests per session; more resolve `cancelled` at once.
    #[arg(long, env = "QSERVE_MAX_PENDING_PERMISSIONS", default_value_t = 64)]
    pub max_pending_permissions: u32,
    /// Longest a single policy decision may run (milliseconds).
    #[arg(
        long,
        global = true,
        env = "QSERVE_POLICY_DEADLINE_MS",
        default_value_t = 50
    )]
    pub policy_deadline_ms: u64,
    /// Most memory the policy may hold (MiB).
    #[arg(
        long,
        global = true,
        env = "QSERVE_POLICY_MEMORY_MIB",
        default_value_t = 64
    )]
    pub policy_memory_mib: usize,
    /// How long an agent may take to answer `initialize` (seconds).
    #[arg(long, env = "QSERVE_INIT_TIMEOUT", default_value_t = 10)]
    pub init_timeout: u64,
    /// Per-client request budgets: PROMPT,MUTATION,READ requests per minute
    /// from one client address (e.g. 30,120,600; 0 = that tier unlimited).
    /// Past a budget: 429 `rate_limited` with Retry-After. Off by default.
    #[arg(long, env = "QSERVE_RATE_LIMIT", value_name = "PROMPT,MUTATION,READ")]
    pub rate_limit: Option<qserve_http::RateLimits>,
    /// A web page allowed to call the daemon from a browser, by origin
    /// (`https://console.example.com`, `http://localhost:5173`, or
    /// `https://*.example.com`); repeatable. Its requests get CORS headers;
    /// any other `Origin` is refused (403). The token is still required.
    #[arg(
        long,
        env = "QSERVE_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allow_origin: Vec<qserve_http::origin::AllowedOrigin>,
    /// Do not serve the web console (`/`, `/console/*`, `POST /login`,
    /// `POST /logout`); then every `Origin` but `--allow-origin` ones is refused.
    #[arg(long, env = "QSERVE_NO_WEB")]
    pub no_web: bool,
    /// Serve HTTPS: the certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(
        long,
        env = "QSERVE_TLS_CERT",
        requires = "tls_key",
        value_name = "PEM"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "QSERVE_TLS_KEY",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub tls_key: Option<PathBuf>,
    /// Admission of new agents against the agents' real memory: a create
    /// that needs a new agent is refused (503) while the agents' process
    /// trees use this many MiB of RSS or more (read from /proc). 0 = off.
    #[arg(long, env = "QSERVE_MEMORY_BUDGET_MB", default_value_t = 0)]
    pub memory_budget_mb: u64,
    /// Longest line accepted from an agent's stdout (bytes).
    #[arg(long, env = "QSERVE_MAX_LINE_BYTES", default_value_t = 16 << 20)]
    pub max_line_bytes: usize,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/qserve).
    #[arg(long, global = true, env = "QSERVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, env = "QSERVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export traces (one span per HTTP request, agent JSON-RPC request and
    /// policy decision, each with `qserve.session_id`) as OTLP over
    /// HTTP/JSON to this collector URL (`/v1/traces` is appended). Off by
    /// default; OTEL_EXPORTER_OTLP_ENDPOINT is honoured too.
    #[arg(long, value_name = "URL", env = "QSERVE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// How long an agent has to end a prompt after `POST …/cancel` (or the
    /// prompt deadline) before the prompt ends `cancelled` without it:
    /// `500ms`, `10s`, or a number of seconds.
    #[arg(long, env = "QSERVE_CANCEL_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub cancel_grace: Duration,
    /// Wall-clock cap on one prompt (ms; 0 = none): then it is cancelled,
    /// and ends `cancelled` at the latest after `--cancel-grace`.
    #[arg(long, env = "QSERVE_PROMPT_DEADLINE_MS", default_value_t = 0)]
    pub prompt_deadline_ms: u64,
    /// A session with no subscriber and no activity for this long is closed
    /// (ms; 0 = never).
    #[arg(long, env = "QSERVE_SESSION_IDLE_TIMEOUT_MS", default_value_t = 30 * 60 * 1000)]
    pub session_idle_timeout_ms: u64,
    /// This daemon's name among several behind a proxy (a-z, 0-9, `-`; e.g.
    /// the pod name). Every session id it hands out then starts with `NAME.`,
    /// so the proxy can route a session's requests to it (docs/deploy.md).
    #[arg(long, env = "QSERVE_NODE_ID", value_parser = crate::node_id::parse)]
    pub node_id: Option<String>,
    /// Reload the policy when the `--component` file or the `--policy-config`
    /// file changes (checked every 2 s, by content; follows symlinks, so a
    /// Kubernetes ConfigMap update is seen), as SIGHUP does.
    #[arg(long, env = "QSERVE_WATCH_POLICY")]
    pub watch_policy: bool,
    /// Prompts running or queued per session; one more gets 503
    /// `prompt_queue_full` (0 = unlimited).
    #[arg(
        long,
        env = "QSERVE_MAX_PENDING_PROMPTS_PER_SESSION",
        default_value_t = 5
    )]
    pub max_pending_prompts_per_session: u32,
}

impl ServeArgs {
    /// `--agent-def`s, or else `QSERVE_AGENTS` split on `;` (only the
    /// environment is split: a command on the command line may contain `;`).
    pub fn agent_defs(&self) -> Vec<String> {
        if !self.agent_defs.is_empty() {
            return self.agent_defs.clone();
        }
        std::env::var("QSERVE_AGENTS")
            .map(|list| list.split(';').map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub fn permission_timeout(&self) -> Duration {
        Duration::from_secs(self.permission_timeout)
    }

    /// Whether `--token` itself was on the command line (not from the environment).
    pub fn token_on_argv() -> bool {
        std::env::args().any(|a| a == "--token" || a.starts_with("--token="))
    }

    /// The client token from `--token`, `QSERVE_TOKEN` or `--token-file`.
    pub fn client_token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context as _;
        let Some(path) = &self.token_file else {
            return Ok(self.token.clone());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --token-file {}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        anyhow::ensure!(
            !token.is_empty(),
            "--token-file {} is empty: put the token on its first line",
            path.display()
        );
        Ok(Some(token))
    }
}

/// `500ms`, `10s` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000)
    } else {
        (text, 1000)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("expected e.g. `500ms`, `10s` or `10`, got {text:?}"))
}

fn parse_sha256(text: &str) -> Result<String, String> {
    let hex = text.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err("expected 64 hex digits (a sha256, as `policy list` or `sha256sum` prints it)".into())
    }
}
