//! qserve's guest runtime: the only place that touches wasmtime.
//!
//! Lifecycle of a guest, in order:
//! 1. **Load** ([`GuestEngine::load_component`], [`GuestEngine::load_bytes`]):
//!    bytes → a compiled [`Component`], from the on-disk cache when the same
//!    bytes were compiled before by a compatible engine (and the cache is
//!    private to this user); its SHA-256 identifies it.
//! 2. **Link**: imports are bound (the world's `host` interface, a
//!    locked-down WASI for policies that want one, failing stubs for anything
//!    else) and kept as an `InstancePre`, so a fresh instance costs
//!    microseconds. A policy is first checked for its contract version.
//! 3. **Run**:
//!    - the core ([`CoreGuest`]) synchronously on its owner thread
//!      ([`GuestActor`]), each call, its instantiation and `configure` under
//!      an epoch deadline;
//!    - the policy ([`Policy`]) with async calls on the caller's task, on a
//!      pool of instances, each call under a deadline that also covers host
//!      calls that block (see `policy.rs`), with memory and table limits.
//! 4. **Fault**: a trap poisons a `Store`. A policy fault fails closed and
//!    drops that instance; a core fault rebuilds the core from the
//!    `InstancePre`, re-registers the live sessions and continues their id
//!    sequences.
//!
//! [`Component`]: wasmtime::component::Component

mod actor;
mod bindings;
mod cache;
mod contract;
mod core_guest;
mod embedded;
mod engine;
mod error;
mod fault;
mod guest_log;
mod host_state;
pub mod inspect;
mod limits;
mod policy;

pub use actor::{ActorGone, GuestActor};
pub use contract::{DECIDE_INTERFACE, POLICY_CONTRACT};
pub use core_guest::{
    CoreFault, CoreGuest, CoreLimits, CoreStats, Event, OpenError, OpenOutcome, Recovery,
    RegisterError, Resolution, Scope, Session, VoteError, VoteOutcome,
};
pub use embedded::{builtin, EMBEDDED_CORE};
pub use engine::{EngineOptions, GuestEngine, LoadedComponent};
pub use error::LoadError;
pub use fault::fault_class;
pub use policy::{
    AccessDecision, AgentInfo, Context, DecisionSource, FileAccess, OptionKind, PermissionAnswer,
    PermissionDecision, PermissionOption, Phase, Policy, PolicyHealth, PolicyIdentity, PolicyInfo,
    PolicyOptions, ResolvedPath, SessionScope, ToolCall, ToolKind, Verdict,
};

/// The limits every policy instance runs under, besides its memory cap and
/// deadline (`PolicyOptions`): store limits, and what it may write to the log.
pub mod guest_limits {
    pub use crate::guest_log::{BURST, MAX_LINE_BYTES, PER_SECOND};
    pub use crate::limits::{
        POLICY_INSTANCES, POLICY_MEMORIES, POLICY_TABLES, POLICY_TABLE_ELEMENTS,
    };
}
