//! Counters every worker adds to, and the first errors kept for the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Stats {
    pub events_checked: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub reconnects: AtomicU64,
    pub evictions: AtomicU64,
    pub sessions_created: AtomicU64,
    pub sessions_closed: AtomicU64,
    pub prompts: AtomicU64,
    pub turns_checked: AtomicU64,
    pub votes_won: AtomicU64,
    pub votes_late: AtomicU64,
    pub decided_by_policy: AtomicU64,
    pub agent_crashes: AtomicU64,
    pub agents_died_under_sessions: AtomicU64,
    pub policy_faults: AtomicU64,
    pub hung_turns_cut: AtomicU64,
    pub policy_swaps: AtomicU64,
    pub errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

const KEPT_ERRORS: usize = 30;

impl Stats {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts an unexpected outcome; the first few are kept (and printed as they happen).
    pub fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.first_errors.lock().unwrap();
        if kept.len() < KEPT_ERRORS {
            eprintln!("soak: error: {message}");
            kept.push(message);
        }
    }

    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors.lock().unwrap().clone()
    }
}
