//! `serve`: the accept loop, running the router on each connection (see
//! `conn`) until shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::HttpConfig;
use crate::conn::{serve_connection, Timeouts};
use crate::listener::ConnectionSlots;
use crate::net::BindError;
use crate::router::build_router;

/// Serves PROTOCOL.md's routes on `listener` until `shutdown` completes.
///
/// On shutdown: stop accepting (the listener is closed); idle keep-alive
/// connections close; open SSE streams flush what is queued and end (with
/// `stream_error` if their session had not ended on its own); in-flight
/// requests get `config.drain_timeout` to finish, after which this returns
/// anyway.
///
/// Fails at once (`InvalidInput`) when `config.require_auth` is set without
/// a token: serving without authentication is what the flag forbids.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if config.require_auth && config.effective_token().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            BindError::AuthRequiredWithoutToken.to_string(),
        ));
    }
    let port = match config.port {
        0 => listener.local_addr()?.port(),
        port => port,
    };
    let stop = CancellationToken::new();
    let app = build_router(backend, &config, port, stop.clone());
    let timeouts = Timeouts::from_config(&config);
    let slots = ConnectionSlots::new(config.max_connections);
    // Every connection task holds a receiver; all dropped = all closed.
    let (open_tx, open_rx) = watch::channel(());

    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _address)) => stream,
                Err(error) if is_per_connection_error(&error) => continue,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::error!(%error, "accept failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // SSE frames are small and latency matters more than packing.
        let _ = stream.set_nodelay(true);
        match slots.try_take() {
            Ok(slot) => {
                tokio::spawn(serve_connection(
                    stream,
                    slot,
                    app.clone(),
                    timeouts,
                    config.tls.clone(),
                    stop.clone(),
                    open_rx.clone(),
                ));
            }
            // Over TLS a plain-text 503 would only be a handshake error to
            // the client: close at once instead.
            Err(()) if config.tls.is_some() => drop(stream),
            Err(()) => slots.refuse(stream),
        }
    }

    tracing::info!("HTTP server shutting down: no new connections, closing streams");
    drop(listener);
    stop.cancel();
    drop(open_rx);
    tokio::select! {
        () = open_tx.closed() => {}
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(
                timeout = ?config.drain_timeout,
                "HTTP requests still open after the drain timeout; returning without them"
            );
        }
    }
    Ok(())
}

fn is_per_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
