//! The default core component (WIT world `core`).
//!
//! A thin mapping of `qserve_core_logic::Core` onto the exported interfaces:
//! every function converts its arguments, calls the one matching `Core`
//! method and converts the answer back. Strings arrive owned from the
//! canonical ABI and are moved into the core, never copied (`publish` is on
//! the hot path). Ids come from the host's `random-id` import.

include!("component.rs");
