//! Guest faults in words an operator recognises.

use std::time::Duration;

use crate::limits::LimitHit;

/// One line, no wasm backtrace (that goes to the debug log): these causes
/// reach clients in refusal messages and `core_restarted` events.
pub(crate) fn describe(err: &wasmtime::Error, deadline: Duration) -> String {
    tracing::debug!("guest fault detail: {err:?}");
    if let Some(hit) = err.chain().find_map(|e| e.downcast_ref::<LimitHit>()) {
        return hit.to_string();
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => exceeded(deadline),
            other => format!("trapped: {other}"),
        };
    }
    let root = err.root_cause().to_string();
    let line = root.lines().next().unwrap_or("unknown fault");
    crate::guest_log::sanitize_line(line, 512)
}

/// The cause of a call cut off at its deadline.
pub(crate) fn exceeded(deadline: Duration) -> String {
    format!("exceeded its {} ms deadline", deadline.as_millis())
}
