//! The default core's logic, in plain Rust: the session registry, the
//! per-session event ring and pending-permission bookkeeping.
//!
//! The `core` Wasm component (guest/components/core) is a thin mapping of
//! [`Core`] onto the WIT interfaces of `qserve:core` (`wit/core/core.wit`); keeping the logic
//! here lets it be unit-tested natively and benchmarked against the
//! component. Randomness comes from outside ([`IdSource`]): in Wasm it is the
//! host's `random-id` import.

mod core_state;
mod events;
mod fast_map;
mod ids;
mod permissions;
mod sessions;
mod size_class_alloc;

pub use crate::core_state::{Core, Limits, PublishError, Stats};
pub use crate::events::{Event, EventRing};
pub use crate::ids::IdSource;
pub use crate::permissions::{Outcome, PendingPermissions, RegisterError, Resolution, VoteError};
pub use crate::sessions::{
    FinishCreateError, OpenError, OpenOutcome, Scope, Session, SessionRegistry,
};
pub use crate::size_class_alloc::SizeClassAlloc;
