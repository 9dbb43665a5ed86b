//! The built-in permission policies, in plain Rust.
//!
//! The `policy-default` and `policy-readonly` Wasm components
//! (guest/components) map these onto the WIT `decide` interface; keeping the
//! decisions here lets them be unit-tested natively.

mod default_policy;
mod readonly_policy;
mod types;

pub use default_policy::DefaultPolicy;
pub use readonly_policy::ReadonlyPolicy;
pub use types::{PermissionOption, Policy, ToolCall, Verdict};
