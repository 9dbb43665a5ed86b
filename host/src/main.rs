//! qserve-host: the daemon's entry point. Parses flags, loads the guests,
//! binds, serves, and shuts down cleanly on SIGINT/SIGTERM.

mod attach;
mod bridge;
mod cli;
mod guests;
mod node_id;
mod policy;
mod policy_cmd;
mod signals;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use qserve_acp::AgentCommand;
use qserve_runtime::Scope;

use crate::bridge::{Bridge, BridgeConfig};
use crate::cli::{Cli, Command, ServeArgs, SessionScopeArg};

fn main() -> ExitCode {
    // The daemon re-executes itself as the guard of each agent
    // (`qserve_acp::guard`): that process runs only the guard, then exits.
    qserve_acp::guard::run_if_requested();
    // First, before any secret is read: an agent (or anything else) running
    // as our user must not read /proc/<our pid>/environ, cmdline or memory.
    // Agents are exec'd, which makes them dumpable again for themselves.
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("qserve-host: cannot mark the process non-dumpable: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // Subcommands print their answer, not the daemon's INFO chatter (and
    // export no traces).
    let telemetry = match telemetry::init(
        cli.serve.log_format,
        if cli.command.is_some() {
            "warn"
        } else {
            "info"
        },
        cli.command
            .is_none()
            .then(|| cli.serve.otlp_endpoint.clone())
            .flatten(),
    ) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("qserve-host: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("qserve-host: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Some(Command::Policy(command)) => runtime.block_on(policy_cmd::run(command, &cli.serve)),
        // The token comes from the same place as the daemon's: QSERVE_TOKEN,
        // or --token-file before the subcommand.
        Some(Command::Attach(args)) => match cli.serve.client_token() {
            Ok(token) => runtime.block_on(attach::run(args, token)),
            Err(err) => Err(err),
        },
        None => runtime.block_on(serve(cli.serve)),
    };
    // Guest owner threads and stray blocking tasks must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The spans of the drain included: exported before the process exits.
    telemetry.shutdown();
    match outcome {
        Ok(code) => code,
        Err(err) => {
            // One clear message, never a backtrace.
            eprintln!("qserve-host: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.token.is_some() && ServeArgs::token_on_argv() {
        tracing::warn!(
            "the token was given on the command line, where other users of this machine can see it; \
             prefer --token-file or the QSERVE_TOKEN environment variable"
        );
    }
    let token = args.client_token()?;
    let admin_token = args
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if admin_token.is_some() && admin_token.as_deref() == token.as_deref().map(str::trim) {
        anyhow::bail!(
            "--admin-token must differ from the client token: clients must not swap the policy"
        );
    }
    let bind =
        qserve_http::validate_bind_with(&args.hostname, token.as_deref(), args.require_auth)?;
    if args.init_timeout == 0 {
        anyhow::bail!(
            "--init-timeout 0 would refuse every agent before it could answer `initialize`: \
             give the seconds an agent may take to start (at least 1; the default is 10)"
        );
    }
    // A relative program path names a file next to the daemon, never one in
    // the workspace a client chose (agents start there).
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let agent = AgentCommand::parse(&args.agent)
        .context("invalid --agent")?
        .anchored_at(&cwd);
    // Every agent runs under a guard (this binary again), so no agent
    // process outlives the daemon, however it dies.
    qserve_acp::guard::use_guard("/proc/self/exe");
    let agents = bridge::AgentDefs::new(agent, &args.agent_defs(), &cwd)?;
    // Said now, not at the first `POST /session`; not fatal: the program may
    // be installed before the first session.
    for (name, why) in agents.missing_programs() {
        tracing::warn!(agent = %name, "agent command not found: {why}; creating a session on it will fail");
    }
    let engine = guests::engine(&args)?;
    let core = guests::core_loader(&engine, &args)?;
    // Read before the policy is loaded: a change in between is reloaded.
    let watched = args
        .watch_policy
        .then(|| policy::watch::PolicyFiles::baseline(&args));
    let policy = guests::load_policy(&engine, &args).await?;
    let shadow = guests::load_shadow(&engine, &args).await?;
    let decisions = match &args.decision_log {
        Some(path) => policy::decision_log::DecisionLog::open(path)
            .with_context(|| format!("cannot open --decision-log {}", path.display()))?,
        None => policy::decision_log::DecisionLog::disabled(),
    };

    let config = BridgeConfig {
        agents,
        default_scope: match args.session_scope {
            SessionScopeArg::Single => Scope::Single,
            SessionScopeArg::Thread => Scope::Thread,
        },
        permission_timeout: args.permission_timeout(),
        init_timeout: Duration::from_secs(args.init_timeout),
        max_line_bytes: args.max_line_bytes,
        // Secrets never reach an agent, whatever name they come under.
        scrub_env: [
            "QSERVE_TOKEN",
            "QSERVE_TOKEN_FILE",
            "QSERVE_ADMIN_TOKEN",
            "QWEN_SERVER_TOKEN",
        ]
        .map(String::from)
        .to_vec(),
        model_switch_timeout: Duration::from_secs(30),
        stop_grace: Duration::from_secs(3),
        memory_budget: (args.memory_budget_mb > 0).then_some(args.memory_budget_mb << 20),
        agent_mode: args.agent_mode.clone(),
        cancel_grace: args.cancel_grace,
        prompt_deadline: (args.prompt_deadline_ms > 0)
            .then(|| Duration::from_millis(args.prompt_deadline_ms)),
        session_idle_timeout: (args.session_idle_timeout_ms > 0)
            .then(|| Duration::from_millis(args.session_idle_timeout_ms)),
        max_pending_prompts: args.max_pending_prompts_per_session,
    };
    let policy_info = policy.info();
    let bridge = Bridge::new(config, core, policy, shadow, decisions);
    if let Some(files) = watched {
        policy::watch::spawn(files, bridge.clone());
    }

    // Read before binding: a wrong certificate file stops the start-up with
    // its path and the reason.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(qserve_http::tls::TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind((bind.listen_host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.hostname, args.port))?;
    let local = listener.local_addr()?;
    let http_config = qserve_http::HttpConfig {
        token: bind.token.clone(),
        admin_token,
        loopback: bind.loopback,
        port: local.port(),
        max_connections: args.max_connections,
        require_auth: args.require_auth,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        writer_idle_timeout: Duration::from_millis(args.writer_idle_timeout_ms),
        rate_limit: args.rate_limit,
        allowed_origins: qserve_http::origin::OriginPolicy::new(args.allow_origin.clone()),
        tls: tls.clone(),
        web: !args.no_web,
        node_id: args.node_id.clone(),
        ..qserve_http::HttpConfig::default()
    };
    let shown_host = if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    // Handlers are in place before anyone is told we listen.
    let signals = signals::Signals::install()?;
    let mut hangups = signals::Signals::hangups()?;
    let on_hangup = bridge.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy and reopening the decision log");
            on_hangup.on_hangup().await;
        }
    });
    // Tests and scripts wait for this exact phrase.
    eprintln!(
        "qserve-host listening on {}://{shown_host}:{} (policy {} {})",
        if tls.is_some() { "https" } else { "http" },
        local.port(),
        policy_info.name,
        policy_info.version
    );

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(qserve_http::serve(
        listener,
        Arc::new(bridge.clone()),
        http_config,
        async move {
            let _ = http_stopped.await;
        },
    ));
    signals.wait_first().await;
    tracing::info!("shutting down: ending sessions and stopping agents");
    // Sessions end first, so every open stream gets its `session_died` frame
    // and closes; then the listener stops and lingering sockets are closed.
    let drain = async {
        bridge.shutdown().await;
        let _ = stop_http.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    };
    tokio::select! {
        _ = drain => {
            bridge.flush_decision_log();
            tracing::info!("shutdown complete");
            Ok(ExitCode::SUCCESS)
        }
        _ = signals.wait_second() => {
            tracing::warn!("second signal: killing every agent now");
            bridge.kill_all_agents();
            Ok(ExitCode::from(1))
        }
    }
}
