//! What the HTTP surface is told at start-up.

use std::time::Duration;

/// Settings for [`crate::serve`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bearer token every request must carry (`/health` is exempt on loopback
    /// binds). `None` (or blank after trimming) = no authentication, which
    /// [`crate::validate_bind`] only allows on loopback binds.
    pub token: Option<String>,
    /// The daemon listens on a loopback address: the Host allowlist applies
    /// (defence against DNS rebinding) and `/health` needs no token.
    pub loopback: bool,
    /// Port accepted in `Host: name:port`. `0` = take it from the listener,
    /// which is what callers binding an ephemeral port want.
    pub port: u16,
    /// Most sockets open at once; `0` = unlimited. A connection past the cap
    /// is answered `503 too_many_connections` (with `Retry-After`) and
    /// closed, instead of waiting unanswered in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a complete request head: from
    /// accept for the first request, from its first byte for later ones on
    /// a keep-alive connection (10 s). A socket that sends nothing is closed
    /// at this deadline, so silent sockets cannot hold the connection cap.
    /// Zero disables it.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit between requests before the
    /// server closes it (60 s). A connection with a request in flight (a
    /// long prompt, an open SSE stream) is never idle. Zero disables it.
    pub idle_timeout: Duration,
    /// How long a response may go without the socket taking any of its
    /// bytes (60 s). Past it the connection is closed: an SSE client that
    /// stopped reading no longer holds its subscription (qwen serve's
    /// `--writer-idle-timeout-ms`). Zero disables it.
    pub writer_idle_timeout: Duration,
    /// Demand the bearer token even on loopback binds, `/health` included
    /// (`--require-auth`). [`crate::serve`] refuses to start with this set
    /// and no token; [`crate::validate_bind_with`] says so at start-up.
    pub require_auth: bool,
    /// Idle time after which an SSE stream sends a `: ping` comment (15 s).
    /// Zero disables heartbeats.
    pub heartbeat: Duration,
    /// The operator's token for `/admin/*` (`PUT /admin/policy`). `None` =
    /// the admin routes do not exist (404). Never the client token: a client
    /// (or an agent that learned the client token) cannot swap the policy.
    pub admin_token: Option<String>,
    /// Largest accepted upload on `PUT /admin/policy` (a component), bytes.
    pub max_admin_body_bytes: usize,
    /// Largest accepted request body in bytes (10 MB); more → 413.
    pub max_body_bytes: usize,
    /// Extra `/capabilities.features` tags after the base ones
    /// (e.g. `policy_component`).
    pub features: Vec<String>,
    /// `/capabilities.mode`. Informational: clients gate on `features`.
    pub mode: String,
    /// After shutdown is signalled, how long [`crate::serve`] waits for open
    /// requests (e.g. a prompt still running) before returning anyway. SSE
    /// streams end at once on shutdown and do not count against this.
    pub drain_timeout: Duration,
    /// `--rate-limit`: requests per minute per client IP in the prompt,
    /// mutation and read tiers; past it `429 rate_limited`. `None` = off.
    pub rate_limit: Option<crate::RateLimits>,
    /// `--allow-origin`: web pages (by origin) that may call the daemon from
    /// a browser, with CORS headers. Empty = every `Origin` is refused.
    pub allowed_origins: crate::origin::OriginPolicy,
    /// `--tls-cert`/`--tls-key`: serve HTTPS directly. `None` = plain HTTP.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Serve the web console (`/`, `/console/*`, `POST /login`, `/logout`)
    /// and let its own origin through the Origin check. `--no-web` = false.
    pub web: bool,
    /// `--node-id`: this daemon's name among several behind a proxy, shown
    /// by `/capabilities` as `nodeId`. `None` = not shown.
    pub node_id: Option<String>,
}

/// 10 MB, the body limit of `qwen serve`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            token: None,
            loopback: true,
            port: 0,
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            writer_idle_timeout: Duration::from_secs(60),
            require_auth: false,
            heartbeat: Duration::from_secs(15),
            admin_token: None,
            max_admin_body_bytes: 64 << 20,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            features: Vec::new(),
            mode: "http-bridge".to_owned(),
            drain_timeout: Duration::from_secs(10),
            rate_limit: None,
            allowed_origins: crate::origin::OriginPolicy::default(),
            tls: None,
            web: true,
            node_id: None,
        }
    }
}

impl HttpConfig {
    /// The token actually enforced: trimmed, and `None` when blank.
    pub(crate) fn effective_token(&self) -> Option<String> {
        self.token
            .as_deref()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
    }

    /// The admin token actually enforced: trimmed, `None` when blank.
    pub(crate) fn effective_admin_token(&self) -> Option<String> {
        self.admin_token
            .as_deref()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
    }
}
