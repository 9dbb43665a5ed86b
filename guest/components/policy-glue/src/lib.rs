//! [`export_policy!`]: the older spelling of `qserve_policy::export!`, kept
//! so that policy components written before the SDK (guest/sdk, package
//! `qserve-policy`) build unchanged. New code uses the SDK directly.

/// The SDK, for the macro's expansion.
#[doc(hidden)]
pub use qserve_policy as sdk;

/// Exports `$policy` (a `qserve_policy_logic::Policy + Default`) as the
/// component's `decide` interface: `qserve_policy::export!($policy)`.
///
/// Like the macro it replaces, it also gives the calling crate a module
/// `qserve::policy::host` (log, clocks, random ids): the SDK's
/// `qserve_policy::host`.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        $crate::sdk::export!($policy);

        /// `qserve::policy::host`, as the WIT bindings used to name it.
        #[allow(dead_code)]
        mod qserve {
            pub mod policy {
                pub use $crate::sdk::host;
            }
        }
    };
}
