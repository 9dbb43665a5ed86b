//! Host-side bindings for the two packages: the internal `qserve:core` world
//! (`wit/core`) and the public `qserve:policy` world (`wit/policy`).
//!
//! They share nothing: each has its own `host` interface (the policy's adds
//! `wall-clock-ms`), both implemented by [`GuestState`](crate::host_state::GuestState).

/// The `core` world: session registry, event ring, permission bookkeeping.
/// Called synchronously from its owner thread (see `core_guest`).
pub mod core_world {
    wasmtime::component::bindgen!({
        path: "../../wit/core",
        world: "qserve:core/core",
        additional_derives: [PartialEq, Eq],
    });
}

/// The `policy` world: decisions. Its exports are called with `call_async`
/// so that a policy blocked in a host call can be cut off by a timeout; its
/// `host` imports are plain functions (none of them can block).
pub mod policy_world {
    wasmtime::component::bindgen!({
        path: "../../wit/policy",
        world: "qserve:policy/policy",
        additional_derives: [PartialEq, Eq],
        exports: { default: async },
    });
}

pub use core_world::qserve::core::host as core_host;
pub use policy_world::qserve::policy::host as policy_host;
pub use policy_world::qserve::policy::types as policy_types;
