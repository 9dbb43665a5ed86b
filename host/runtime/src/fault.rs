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

/// A fault's cause as one of a few fixed words (`qserve_policy_faults_total`
/// and `qserve_core_faults_total` labels): the cause lines above carry
/// numbers and guest text, which must never become a metric label.
pub fn fault_class(cause: &str) -> &'static str {
    if cause.contains("stayed busy") {
        "busy"
    } else if cause.contains("init refused") {
        "init_refused"
    } else if cause.starts_with("a new instance failed") {
        "instance_start"
    } else if cause.contains("deadline") {
        "deadline"
    } else if cause.contains("memory limit") {
        "memory_limit"
    } else if cause.contains("table limit") || cause.contains("-element table") {
        "table_limit"
    } else if cause.starts_with("trapped") {
        "trap"
    } else if cause.contains("did not offer") {
        "bad_answer"
    } else if cause.starts_with("core unavailable") {
        "unavailable"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_fixed_classes() {
        let deadline = Duration::from_millis(250);
        assert_eq!(fault_class(&exceeded(deadline)), "deadline");
        let waiting = format!("{} while waiting in a host call", exceeded(deadline));
        assert_eq!(fault_class(&waiting), "deadline");
        let memory = LimitHit::Memory {
            cap: 64 << 20,
            desired: 65 << 20,
        };
        assert_eq!(fault_class(&memory.to_string()), "memory_limit");
        let table = LimitHit::Table {
            cap: 10_000,
            desired: 20_000,
        };
        assert_eq!(fault_class(&table.to_string()), "table_limit");
        assert_eq!(
            fault_class("trapped: wasm `unreachable` instruction executed"),
            "trap"
        );
        assert_eq!(
            fault_class("all 4 instances stayed busy past the 250 ms deadline"),
            "busy"
        );
        assert_eq!(
            fault_class("a new instance failed: exceeded its 250 ms deadline"),
            "instance_start"
        );
        assert_eq!(
            fault_class("selected option `x`, which the agent did not offer"),
            "bad_answer"
        );
        assert_eq!(fault_class("something else entirely"), "other");
    }
}
