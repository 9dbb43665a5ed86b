//! A loopback TCP proxy that can cut every connection through it on demand:
//! how a test makes a client live through real disconnects (a reset socket,
//! mid-frame) without touching the daemon.
//!
//! The daemon refuses a `Host` naming another port (its DNS-rebinding guard),
//! so the proxy rewrites the `Host` line of the first request on each
//! connection, as a reverse proxy would. Later requests on a kept-alive
//! connection pass unchanged: use it for streams (one request a connection).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{copy_bidirectional, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct CuttingProxy {
    addr: SocketAddr,
    /// Bumped by [`CuttingProxy::cut_all`]; each connection ends when it
    /// sees a value other than the one it started under.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CuttingProxy {
    /// Listens on 127.0.0.1, an ephemeral port, and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (generation, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = {
            let generation = generation.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut cut = generation.subscribe();
                    let started = *cut.borrow_and_update();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        if forward_first_head(&mut client, &mut server, upstream)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.wait_for(|now| *now != started) => {
                                // Dropping both sockets with data unread makes
                                // the kernel send a reset: an abrupt cut.
                                let _ = client.set_zero_linger();
                            }
                        }
                    });
                }
            })
        };
        CuttingProxy {
            addr,
            generation,
            accepted,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection open now; later ones go through.
    pub fn cut_all(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads the first request head (up to the empty line) and forwards it with
/// its `Host` set to the upstream's address.
async fn forward_first_head(
    client: &mut TcpStream,
    server: &mut TcpStream,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let rewritten: String = text
        .split_inclusive("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("host:") {
                format!("host: {upstream}\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect();
    server.write_all(rewritten.as_bytes()).await
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}
