//! qserve-host: the daemon's entry point. Parses flags, loads the guests,
//! binds, serves, and shuts down cleanly on SIGINT/SIGTERM.

mod bridge;
mod cli;
mod guests;
mod policy;
mod policy_cmd;
mod signals;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use qserve_acp::AgentCommand;
use qserve_runtime::Scope;

use crate::bridge::{Bridge, BridgeConfig};
use crate::cli::{Cli, Command, LogFormat, ServeArgs, SessionScopeArg};

fn main() -> ExitCode {
    // First, before any secret is read: an agent (or anything else) running
    // as our user must not read /proc/<our pid>/environ, cmdline or memory.
    // Agents are exec'd, which makes them dumpable again for themselves.
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("qserve-host: cannot mark the process non-dumpable: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // Subcommands print their answer, not the daemon's INFO chatter.
    init_logging(
        cli.serve.log_format,
        if cli.command.is_some() {
            "warn"
        } else {
            "info"
        },
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("qserve-host: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Some(Command::Policy(command)) => runtime.block_on(policy_cmd::run(command, &cli.serve)),
        None => runtime.block_on(serve(cli.serve)),
    };
    // Guest owner threads and stray blocking tasks must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(err) => {
            // One clear message, never a backtrace.
            eprintln!("qserve-host: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only for a person at a terminal, never into log files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
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
    let agent = AgentCommand::parse(&args.agent).context("invalid --agent")?;
    let engine = guests::engine(&args)?;
    let core = guests::core_loader(&engine, &args)?;
    let policy = guests::load_policy(&engine, &args).await?;
    let shadow = guests::load_shadow(&engine, &args).await?;
    let decisions = match &args.decision_log {
        Some(path) => policy::decision_log::DecisionLog::open(path)
            .with_context(|| format!("cannot open --decision-log {}", path.display()))?,
        None => policy::decision_log::DecisionLog::disabled(),
    };

    let config = BridgeConfig {
        agent,
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
        cancel_grace: args.cancel_grace,
        prompt_deadline: (args.prompt_deadline_ms > 0)
            .then(|| Duration::from_millis(args.prompt_deadline_ms)),
        session_idle_timeout: (args.session_idle_timeout_ms > 0)
            .then(|| Duration::from_millis(args.session_idle_timeout_ms)),
        max_pending_prompts: args.max_pending_prompts_per_session,
    };
    let policy_info = policy.info();
    let bridge = Bridge::new(config, core, policy, shadow, decisions);

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
        "qserve-host listening on http://{shown_host}:{} (policy {} {})",
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
