//! Guest faults in words an operator recognises.

use std::time::Duration;

/// One line, no wasm backtrace (that goes to the debug log): these causes
/// reach clients in refusal messages and `core_restarted` events.
pub(crate) fn describe(err: &wasmtime::Error, deadline: Duration, memory_cap: usize) -> String {
    tracing::debug!("guest fault detail: {err:?}");
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => {
                format!("exceeded its {} ms deadline", deadline.as_millis())
            }
            other => format!("trapped: {other}"),
        };
    }
    let root = err.root_cause().to_string();
    if root.contains("growing memory") || root.contains("memory minimum size") {
        format!("hit its {} MiB memory cap", memory_cap >> 20)
    } else {
        root.lines().next().unwrap_or("unknown fault").to_owned()
    }
}
