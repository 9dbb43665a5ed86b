//! TEST ONLY: the default core plus fault injection. An event whose data
//! contains `qserve-test-core-trap` makes it trap; `qserve-test-core-hang`
//! makes it spin until the host's deadline. Used by the runtime's and the
//! daemon's core-fault tests; never embedded.

include!("../../core/src/component.rs");
