//! Host-side bindings for the two worlds of `wit/qserve.wit`.

/// The `core` world: session registry, event ring, permission bookkeeping.
pub mod core_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "qserve:bridge/core",
        additional_derives: [PartialEq, Eq],
    });
}

/// The `policy` world: decisions. Shares the `host` import with the core world.
pub mod policy_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "qserve:bridge/policy",
        additional_derives: [PartialEq, Eq],
        with: {
            "qserve:bridge/host": super::core_world::qserve::bridge::host,
        },
    });
}

pub use core_world::qserve::bridge::host as host_iface;
