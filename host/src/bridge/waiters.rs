//! Agents waiting on the clients' votes.
//!
//! The core decides *whether* a vote wins (first valid vote, timeout, cancel);
//! this table only remembers *who to tell*: for each pending request id, the
//! channel back to the task that will answer the agent. Whoever obtains the
//! core's resolution takes the waiter out and sends the outcome, so each
//! agent request is answered exactly once.

use std::collections::HashMap;
use std::sync::Mutex;

use qserve_runtime::VoteOutcome;

use super::decisions::Source;
use tokio::sync::oneshot;

#[derive(Default)]
pub struct Waiters {
    pending: Mutex<HashMap<String, oneshot::Sender<(VoteOutcome, Source)>>>,
}

impl Waiters {
    pub fn insert(&self, request_id: String) -> oneshot::Receiver<(VoteOutcome, Source)> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(request_id, tx);
        rx
    }

    /// Hand the outcome, and who decided it, to the waiting agent task
    /// (no-op when it is gone).
    pub fn resolve(&self, request_id: &str, outcome: VoteOutcome, source: Source) {
        if let Some(tx) = self.pending.lock().unwrap().remove(request_id) {
            let _ = tx.send((outcome, source));
        }
    }

    /// Permission requests waiting for a vote (`qserve_pending_permissions`).
    pub fn len(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Answer every waiting agent `cancelled` (the core lost its requests).
    pub fn cancel_all(&self) {
        for (_, tx) in self.pending.lock().unwrap().drain() {
            let _ = tx.send((VoteOutcome::Cancelled, Source::Cancel));
        }
    }
}
