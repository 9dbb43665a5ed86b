//! Policies through the real components: swapping changes verdicts, and
//! every hostile policy is survived — failing closed, within its deadline,
//! on a fresh instance next time, with memory bounded.

mod support;

use std::time::{Duration, Instant};

use qserve_runtime::inspect::inspect_policy;
use qserve_runtime::{
    FileAccess, LoadError, OfferedOption, PermissionAnswer, PolicyGuest, PolicyOptions, ToolCall,
};

const DEADLINE: Duration = Duration::from_millis(50);

fn policy(name: &str) -> PolicyGuest {
    PolicyGuest::new(
        support::engine(),
        &support::component(name),
        PolicyOptions {
            call_deadline: DEADLINE,
            memory_cap: 64 << 20,
            ..PolicyOptions::default()
        },
    )
    .expect("policy loads")
}

fn call(kind: &str) -> ToolCall {
    ToolCall {
        session_id: "s1".into(),
        workspace: "/w".into(),
        kind: kind.into(),
        title: format!("a {kind} call"),
        locations: vec!["/w/file.txt".into()],
        raw_input: r#"{"file_path":"/w/file.txt"}"#.into(),
    }
}

/// What qwen offers for a write.
fn offered() -> Vec<OfferedOption> {
    [
        ("proceed_always", "allow_always"),
        ("proceed_once", "allow_once"),
        ("cancel", "reject_once"),
    ]
    .iter()
    .map(|(id, kind)| OfferedOption {
        option_id: id.to_string(),
        name: id.to_string(),
        kind: kind.to_string(),
    })
    .collect()
}

#[test]
fn default_and_readonly_decide_differently_on_the_same_requests() {
    let mut default = policy("policy-default");
    let mut readonly = policy("policy-readonly");
    assert_eq!(default.info().name, "default");
    assert_eq!(readonly.info().name, "readonly");

    for kind in ["read", "edit", "execute"] {
        assert_eq!(
            default.decide_permission(&call(kind), &offered()),
            PermissionAnswer::AskClients(None),
            "default asks the clients about {kind}"
        );
    }
    assert_eq!(
        readonly.decide_permission(&call("read"), &offered()),
        PermissionAnswer::Selected("proceed_once".into())
    );
    assert_eq!(
        readonly.decide_permission(&call("edit"), &offered()),
        PermissionAnswer::Selected("cancel".into()),
        "reject maps to the offered reject option"
    );
    let no_reject: Vec<OfferedOption> = offered()
        .into_iter()
        .filter(|o| o.kind != "reject_once")
        .collect();
    assert_eq!(
        readonly.decide_permission(&call("execute"), &no_reject),
        PermissionAnswer::Cancelled,
        "reject with no reject option offered is cancelled"
    );
    assert!(default
        .check_file_access("s1", "/w/out.txt", FileAccess::Write)
        .is_ok());
    assert!(readonly
        .check_file_access("s1", "/w/out.txt", FileAccess::Write)
        .is_err());
    assert!(readonly
        .check_file_access("s1", "/w/in.txt", FileAccess::Read)
        .is_ok());
    assert!(readonly.admit_session("/w").is_ok());
}

/// Run a hostile call several times: each fails closed within the deadline
/// plus 100 ms, and each fault costs exactly one instance.
fn survives(name: &str, mut hostile_call: impl FnMut(&mut PolicyGuest) -> bool) -> PolicyGuest {
    let mut guest = policy(name);
    for round in 1..=3 {
        let started = Instant::now();
        let failed_closed = hostile_call(&mut guest);
        let took = started.elapsed();
        assert!(failed_closed, "{name}: round {round} did not fail closed");
        assert!(
            took < DEADLINE + Duration::from_millis(100),
            "{name}: round {round} took {took:?}"
        );
    }
    guest
}

#[test]
fn a_looping_policy_is_stopped_at_its_deadline() {
    let guest = survives("policy-hostile-loop", |g| {
        g.decide_permission(&call("edit"), &offered()) == PermissionAnswer::Cancelled
            && g.last_fault()
                .is_some_and(|cause| cause.contains("deadline"))
    });
    assert_eq!(guest.faults(), 3);
    let mut guest = guest;
    let started = Instant::now();
    assert!(
        guest.admit_session("/w").is_err(),
        "a looping create check refuses"
    );
    assert!(guest
        .check_file_access("s", "/p", FileAccess::Read)
        .is_err());
    assert!(started.elapsed() < 2 * (DEADLINE + Duration::from_millis(100)));
}

#[test]
fn a_trapping_policy_fails_closed_and_the_next_call_gets_a_fresh_instance() {
    // A trapped Store cannot be entered again ("cannot enter component
    // instance"): every round trapping afresh in the guest's own code proves
    // each call ran on a new instance.
    let guest = survives("policy-hostile-trap", |g| {
        g.decide_permission(&call("read"), &offered()) == PermissionAnswer::Cancelled
            && g.last_fault()
                .is_some_and(|cause| cause.contains("unreachable"))
    });
    assert_eq!(guest.faults(), 3);
}

#[test]
fn a_policy_naming_an_unoffered_option_fails_closed() {
    let mut guest = survives("policy-hostile-bad-option", |g| {
        g.decide_permission(&call("edit"), &offered()) == PermissionAnswer::Cancelled
    });
    assert_eq!(guest.faults(), 3);
    assert!(guest.admit_session("/w").is_ok(), "other calls still work");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_policy_that_grows_memory_hits_its_cap_and_memory_stays_bounded() {
    let mut guest = policy("policy-hostile-memory");
    let _ = guest.decide_permission(&call("edit"), &offered());
    let baseline = rss_bytes();
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(
            guest.decide_permission(&call("edit"), &offered()),
            PermissionAnswer::Cancelled
        );
        assert!(
            started.elapsed() < DEADLINE + Duration::from_millis(100) + Duration::from_millis(400)
        );
    }
    assert_eq!(guest.faults(), 11);
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(
        grown < 128 << 20,
        "10 faults at a 64 MiB cap grew RSS by {} MiB: instances are not freed",
        grown >> 20
    );
}

#[test]
fn wrong_inputs_fail_to_load_with_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("notes.wasm");
    std::fs::write(&garbage, b"hello").unwrap();
    let err = support::engine().load_file(&garbage).err().unwrap();
    assert!(matches!(err, LoadError::NotWasm { .. }));
    assert!(err.to_string().contains("notes.wasm"));

    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let err = support::engine().load_file(&module).err().unwrap();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("not a component"));

    let core_as_policy = support::component("core");
    let err = PolicyGuest::new(support::engine(), &core_as_policy, PolicyOptions::default())
        .err()
        .expect("the core is not a policy");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("core.wasm"), "{err}");
}

#[test]
fn inspect_says_whether_a_component_fits_the_policy_world() {
    let good = inspect_policy(
        support::engine(),
        &support::guest_dir().join("policy-readonly.wasm"),
    )
    .unwrap();
    assert!(good.fits(), "{}", good.render());
    assert!(good.render().contains("qserve:bridge/decide@0.1.0"));
    assert!(good
        .render()
        .contains("fits the `policy` world: yes (readonly"));

    let core = inspect_policy(support::engine(), &support::guest_dir().join("core.wasm")).unwrap();
    assert!(!core.fits());
    let report = core.render();
    assert!(
        report.contains("does not export `qserve:bridge/decide@0.1.0`"),
        "{report}"
    );
}
