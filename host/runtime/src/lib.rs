//! qserve's guest runtime: the only place that touches wasmtime.
//!
//! Lifecycle of a guest, in order:
//! 1. **Load** ([`GuestEngine::load`]): bytes → a compiled [`Component`], from the
//!    on-disk cache when the same bytes were compiled before by a compatible engine.
//! 2. **Link** ([`CoreGuest::new`], [`PolicyGuest::new`]): imports are bound (the
//!    `host` interface, the policy's configuration, a locked-down WASI for guests
//!    that want one, traps for anything else) and the result is kept as an
//!    `InstancePre`, so a fresh instance costs microseconds.
//! 3. **Run**: every call gets an epoch deadline; the policy also a memory cap.
//!    Each guest `Store` is owned by exactly one thread ([`GuestActor`]).
//! 4. **Fault**: a trap poisons a `Store`, so the guest is re-instantiated from the
//!    `InstancePre`. A policy fault fails closed; a core fault re-registers the
//!    live sessions in the fresh instance and continues their id sequences.
//!
//! [`Component`]: wasmtime::component::Component

mod actor;
mod bindings;
mod cache;
mod core_guest;
mod embedded;
mod engine;
mod error;
mod fault;
mod host_state;
pub mod inspect;
mod policy_guest;

pub use actor::{ActorGone, GuestActor};
pub use core_guest::{
    CoreFault, CoreGuest, CoreLimits, CoreStats, Event, OpenError, OpenOutcome, PermissionOption,
    Recovery, RegisterError, Resolution, Scope, Session, VoteError, VoteOutcome,
};
pub use embedded::{EMBEDDED_CORE, EMBEDDED_DEFAULT_POLICY};
pub use engine::{EngineOptions, GuestEngine, LoadedComponent};
pub use error::LoadError;
pub use policy_guest::{
    FileAccess, OfferedOption, PermissionAnswer, PolicyGuest, PolicyInfo, PolicyOptions, ToolCall,
};
