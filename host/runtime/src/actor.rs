//! One owner thread per guest `Store`, fed by a channel.
//!
//! A `Store` is used from one place at a time and its calls are synchronous,
//! so each guest lives on a dedicated thread; async callers send it closures
//! and await the reply. No lock is ever held across an await, and a slow guest
//! call never blocks a tokio worker.

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

/// The owner thread has stopped (the daemon is shutting down), or the job
/// panicked on the host side and its reply was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest actor is gone")]
pub struct ActorGone;

type Job<G> = Box<dyn FnOnce(&mut G) + Send>;

/// Handle to a guest's owner thread. Cheap to clone.
pub struct GuestActor<G> {
    jobs: mpsc::Sender<Job<G>>,
}

impl<G> Clone for GuestActor<G> {
    fn clone(&self) -> Self {
        GuestActor {
            jobs: self.jobs.clone(),
        }
    }
}

/// Jobs waiting for the owner thread; callers beyond this wait their turn.
const QUEUE_DEPTH: usize = 4096;

impl<G: 'static> GuestActor<G> {
    /// Start the owner thread; `init` builds the guest on it. The thread ends
    /// when every handle is dropped.
    pub fn spawn(name: &str, init: impl FnOnce() -> G + Send + 'static) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job<G>>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name(format!("qserve-{name}"))
            .spawn(move || {
                let mut guest = init();
                while let Some(job) = rx.blocking_recv() {
                    // A host-side panic in one job must not take the guest down
                    // for everyone: its caller sees `ActorGone`, others go on.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut guest))).is_err() {
                        tracing::error!("a job on the guest thread panicked; continuing");
                    }
                }
            })
            .expect("spawn a guest owner thread");
        GuestActor { jobs: tx }
    }

    /// Run `f` on the owner thread and await its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut G) -> R + Send + 'static,
    ) -> Result<R, ActorGone> {
        let (reply, answer) = oneshot::channel();
        let job: Job<G> = Box::new(move |guest| {
            let _ = reply.send(f(guest));
        });
        self.jobs.send(job).await.map_err(|_| ActorGone)?;
        answer.await.map_err(|_| ActorGone)
    }

    /// Queue `f` and return once it is queued, without waiting for it to run.
    /// Jobs run in the order they were queued; a full queue makes the caller
    /// wait (backpressure), it never drops a job.
    pub async fn submit(&self, f: impl FnOnce(&mut G) + Send + 'static) -> Result<(), ActorGone> {
        self.jobs.send(Box::new(f)).await.map_err(|_| ActorGone)
    }

    /// Queue `f` without waiting for it (used where the caller cannot await,
    /// e.g. in `Drop`). Fails only when the owner thread is gone or the queue is full.
    pub fn cast(&self, f: impl FnOnce(&mut G) + Send + 'static) -> Result<(), ActorGone> {
        self.jobs.try_send(Box::new(f)).map_err(|_| ActorGone)
    }
}
