//! Shared test harness: the real `serve()` on 127.0.0.1:0 with a fake backend.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod client;
pub mod fake_backend;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use qserve_http::HttpConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{Req, Resp};
pub use fake_backend::FakeBackend;

/// A running server; shut down explicitly with [`TestServer::shutdown`] or
/// implicitly on drop (the task is aborted with the test's runtime).
pub struct TestServer {
    pub addr: SocketAddr,
    pub backend: Arc<FakeBackend>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(HttpConfig::default()).await
    }

    pub async fn with_token(token: &str) -> Self {
        Self::with_config(HttpConfig {
            token: Some(token.into()),
            ..HttpConfig::default()
        })
        .await
    }

    pub async fn with_config(config: HttpConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(FakeBackend::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(qserve_http::serve(
            listener,
            Arc::clone(&backend),
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            backend,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signals shutdown and returns how long `serve()` took to return.
    pub async fn shutdown(mut self) -> Duration {
        let started = tokio::time::Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve() returned within 10 s")
            .expect("serve task did not panic")
            .expect("serve() returned Ok");
        started.elapsed()
    }

    pub async fn send(&self, req: Req) -> Resp {
        req.send(self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
