//! The agent guard as a binary of its own, for qserve-acp's tests and for
//! embedders of the crate. qserve-host does not need it: it runs itself
//! as the guard (`/proc/self/exe --qserve-agent-guard …`).

fn main() {
    qserve_acp::guard::run_if_requested();
    eprintln!(
        "qserve-agent-guard: an internal helper; run as `{} DAEMON_PID PROGRAM [ARGS…]`",
        qserve_acp::guard::GUARD_ARG
    );
    std::process::exit(2);
}
