//! The policy as the daemon holds it: the active component and how it is
//! swapped ([`slot`]), and where its decisions are written down
//! ([`decision_log`]), and `--watch-policy`
//! ([`watch`]). What a decision is asked and recorded with lives in
//! the bridge (`bridge/decisions.rs`).

pub mod decision_log;
pub mod kinds;
pub mod slot;
pub mod watch;
