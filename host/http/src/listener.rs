//! The accept loop's connection cap (`--max-connections`).
//!
//! A permit is taken *before* `accept`, so at the cap the next connection
//! waits in the kernel's backlog (it is not refused) and is served as soon
//! as an open one closes. The permit lives inside the stream, so it is
//! returned exactly when hyper drops the connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A TCP listener that keeps at most `max` connections open (`None` = no cap).
pub struct CappedListener {
    inner: TcpListener,
    slots: Option<Arc<Semaphore>>,
}

impl CappedListener {
    /// `max_connections == 0` means unlimited.
    pub fn new(inner: TcpListener, max_connections: usize) -> Self {
        let slots = (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections)));
        Self { inner, slots }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = match &self.slots {
            Some(slots) => Some(
                Arc::clone(slots)
                    .acquire_owned()
                    .await
                    .expect("the connection semaphore is never closed"),
            ),
            None => None,
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    // SSE frames are small and latency matters more than packing.
                    let _ = stream.set_nodelay(true);
                    return (
                        CappedStream {
                            stream,
                            _slot: slot,
                        },
                        address,
                    );
                }
                Err(error) if is_per_connection_error(&error) => continue,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::error!(%error, "accept failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn is_per_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// An accepted connection holding its slot until dropped.
pub struct CappedStream {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
