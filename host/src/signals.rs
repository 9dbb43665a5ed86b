//! SIGINT/SIGTERM: the first starts a graceful drain, a second forces it.
//! SIGHUP: reload the policy and reopen the decision log (see `hangups`).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Counts shutdown signals received so far.
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Signals { count: rx })
    }

    /// A stream of SIGHUPs. Each one is delivered once; HUPs that arrive
    /// while the previous one is handled are coalesced into one more.
    pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
        signal(SignalKind::hangup())
    }

    async fn wait_for(&self, n: u32) {
        let mut rx = self.count.clone();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    pub async fn wait_first(&self) {
        self.wait_for(1).await
    }

    pub async fn wait_second(&self) {
        self.wait_for(2).await
    }
}
