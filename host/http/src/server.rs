//! `serve`: runs the router on a listener until shutdown.

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::HttpConfig;
use crate::listener::CappedListener;
use crate::router::build_router;

/// Serves PROTOCOL.md's routes on `listener` until `shutdown` completes.
///
/// On shutdown: stop accepting; idle keep-alive connections close; open SSE
/// streams flush what is queued and end (with `stream_error` if their
/// session had not ended on its own); in-flight requests get
/// `config.drain_timeout` to finish, after which this returns anyway.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let port = match config.port {
        0 => listener.local_addr()?.port(),
        port => port,
    };
    let stop = CancellationToken::new();
    let app = build_router(backend, &config, port, stop.clone());
    let listener = CappedListener::new(listener, config.max_connections);

    let signal = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            tracing::info!("HTTP server shutting down: no new connections, closing streams");
            stop.cancel();
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(config.drain_timeout).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        () = drain_deadline => {
            tracing::warn!(
                timeout = ?config.drain_timeout,
                "HTTP requests still open after the drain timeout; returning without them"
            );
            Ok(())
        }
    }
}
