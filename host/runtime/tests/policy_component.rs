//! Policies through the real components: swapping changes verdicts, and
//! every hostile policy is survived — failing closed, within its deadline,
//! on a fresh instance next time, with its instances freed.

mod support;

use std::time::{Duration, Instant};

use qserve_runtime::inspect::inspect_policy;
use qserve_runtime::{
    builtin, DecisionSource, FileAccess, LoadError, OptionKind, PermissionAnswer, PermissionOption,
    Policy, PolicyOptions, ToolKind,
};
use sha2::{Digest, Sha256};
use support::{call, ctx, offered, path};

const DEADLINE: Duration = Duration::from_millis(50);
/// How long a fault may take to be noticed: deadline plus a margin a loaded
/// machine (2 shared cores, other builds running) always meets.
const FAULT_BOUND: Duration = Duration::from_secs(2);

fn options() -> PolicyOptions {
    PolicyOptions {
        call_deadline: DEADLINE,
        memory_cap: 64 << 20,
        ..PolicyOptions::default()
    }
}

async fn policy(name: &str) -> Policy {
    support::policy_with(name, options()).await
}

#[tokio::test]
async fn default_and_readonly_decide_differently_on_the_same_requests() {
    let default = policy("policy-default").await;
    let readonly = policy("policy-readonly").await;
    assert_eq!(default.identity().name, "default");
    assert_eq!(readonly.identity().name, "readonly");
    let w = ctx("/w");

    for kind in [ToolKind::Read, ToolKind::Edit, ToolKind::Execute] {
        let decision = default
            .decide_permission(&w, &call(kind.clone()), &offered())
            .await;
        assert_eq!(
            decision.answer,
            PermissionAnswer::AskClients(None),
            "default asks the clients about {kind:?}"
        );
        assert_eq!(decision.verdict, "ask");
        assert_eq!(decision.source(), DecisionSource::Policy);
    }
    let read = readonly
        .decide_permission(&w, &call(ToolKind::Read), &offered())
        .await;
    assert_eq!(
        read.answer,
        PermissionAnswer::Selected("proceed_once".into())
    );
    assert_eq!(read.verdict, "select");
    assert_eq!(read.reason, "a read tool only looks");
    assert_eq!(read.fault, None);

    let edit = readonly
        .decide_permission(&w, &call(ToolKind::Edit), &offered())
        .await;
    assert_eq!(
        edit.answer,
        PermissionAnswer::Selected("cancel".into()),
        "reject maps to the offered reject-once option"
    );
    assert_eq!(edit.verdict, "reject");
    assert_eq!(edit.reason, "the readonly policy rejects edit tools");

    let only_reject_always: Vec<PermissionOption> = offered()
        .into_iter()
        .filter(|o| o.kind != OptionKind::RejectOnce)
        .chain([PermissionOption {
            option_id: "never".into(),
            name: "Never".into(),
            kind: OptionKind::RejectAlways,
        }])
        .collect();
    assert_eq!(
        readonly
            .decide_permission(&w, &call(ToolKind::Execute), &only_reject_always)
            .await
            .answer,
        PermissionAnswer::Selected("never".into()),
        "without reject-once, reject-always"
    );
    let no_reject: Vec<PermissionOption> = offered()
        .into_iter()
        .filter(|o| o.kind != OptionKind::RejectOnce)
        .collect();
    assert_eq!(
        readonly
            .decide_permission(&w, &call(ToolKind::Execute), &no_reject)
            .await
            .answer,
        PermissionAnswer::Cancelled,
        "reject with no reject option offered is cancelled"
    );

    let write_in = path("/w/out.txt");
    assert!(
        default
            .decide_file(&w, FileAccess::Write, &write_in)
            .await
            .allow
    );
    let refused = readonly.decide_file(&w, FileAccess::Write, &write_in).await;
    assert!(!refused.allow);
    assert_eq!(refused.reason, "the readonly policy refuses file writes");
    assert_eq!(refused.source(), DecisionSource::Policy);
    assert!(
        readonly
            .decide_file(&w, FileAccess::Read, &path("/w/in.txt"))
            .await
            .allow
    );
    assert!(
        !default
            .decide_file(&w, FileAccess::Read, &path("/etc/passwd"))
            .await
            .allow
    );
    assert!(readonly.decide_session(&w).await.allow);
    assert_eq!(default.health().faults, 0);
    assert_eq!(readonly.health().faults, 0);
}

/// Run a hostile decision several times: each fails closed within the bound,
/// with a cause, and each fault costs exactly one instance.
async fn survives(name: &str, cause_contains: &str) -> Policy {
    survives_with(name, cause_contains, options()).await
}

async fn survives_with(name: &str, cause_contains: &str, options: PolicyOptions) -> Policy {
    let policy = support::policy_with(name, options).await;
    for round in 1..=3 {
        let started = Instant::now();
        let decision = policy
            .decide_permission(&ctx("/w"), &call(ToolKind::Edit), &offered())
            .await;
        let took = started.elapsed();
        assert_eq!(
            decision.answer,
            PermissionAnswer::Cancelled,
            "{name}: round {round}"
        );
        assert_eq!(decision.verdict, "fault");
        assert_eq!(decision.source(), DecisionSource::Fault);
        let cause = decision.fault.clone().expect("a fault names its cause");
        assert!(cause.contains(cause_contains), "{name}: {cause}");
        assert!(!cause.contains('\n'), "one line: {cause}");
        assert_eq!(decision.reason, format!("policy fault: {cause}"));
        assert!(took < FAULT_BOUND, "{name}: round {round} took {took:?}");
        let health = policy.health();
        assert_eq!(health.faults, round);
        assert_eq!(health.recent_faults, round);
        assert_eq!(health.last_fault.as_deref(), Some(cause.as_str()));
        assert_eq!(health.in_flight, 0);
        assert_eq!(
            policy.instances(),
            0,
            "{name}: the faulted instance was dropped"
        );
    }
    policy
}

#[tokio::test]
async fn a_looping_policy_is_stopped_at_its_deadline() {
    let policy = survives("policy-hostile-loop", "exceeded its 50 ms deadline").await;
    let started = Instant::now();
    let session = policy.decide_session(&ctx("/w")).await;
    assert!(!session.allow, "a looping create check refuses");
    assert!(
        session.reason.starts_with("policy fault: "),
        "{}",
        session.reason
    );
    assert!(
        !policy
            .decide_file(&ctx("/w"), FileAccess::Read, &path("/w/p"))
            .await
            .allow
    );
    assert!(started.elapsed() < 2 * FAULT_BOUND);
    assert_eq!(policy.health().faults, 5);
}

#[tokio::test]
async fn compute_past_the_deadline_is_interrupted_and_within_it_answers() {
    // policy-slow busy-waits `delay_ms` in Wasm before answering.
    let slow = |delay: u64| PolicyOptions {
        config_document: format!("delay_ms = {delay}\n").into(),
        call_deadline: Duration::from_millis(300),
        ..options()
    };
    let quick_enough = support::policy_with("policy-slow", slow(20)).await;
    let decision = quick_enough
        .decide_permission(&ctx("/w"), &call(ToolKind::Edit), &offered())
        .await;
    assert_eq!(
        decision.answer,
        PermissionAnswer::Selected("proceed_once".into())
    );
    assert_eq!(decision.reason, "slow policy");
    // Whole milliseconds of the guest's clock: at least 19 of them passed.
    assert!(
        decision.latency >= Duration::from_millis(19),
        "{:?}",
        decision.latency
    );

    let too_slow = support::policy_with("policy-slow", slow(5_000)).await;
    let started = Instant::now();
    let decision = too_slow.decide_session(&ctx("/w")).await;
    assert!(!decision.allow);
    let cause = decision.fault.expect("a fault");
    assert_eq!(
        cause, "exceeded its 300 ms deadline",
        "compute is trapped, not waited on"
    );
    assert!(started.elapsed() < FAULT_BOUND, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_trapping_policy_fails_closed_and_the_next_call_gets_a_fresh_instance() {
    // A trapped Store cannot be entered again ("cannot enter component
    // instance"): every round trapping afresh in the guest's own code proves
    // each call ran on a new instance.
    survives("policy-hostile-trap", "unreachable").await;
}

#[tokio::test]
async fn a_policy_naming_an_unoffered_option_fails_closed() {
    let policy = survives("policy-hostile-bad-option", "which the agent did not offer").await;
    assert!(
        policy.decide_session(&ctx("/w")).await.allow,
        "other calls still work, on a fresh instance"
    );
    assert_eq!(policy.instances(), 1);
}

#[tokio::test]
async fn a_policy_that_grows_memory_hits_its_cap_and_its_instances_are_freed() {
    // A deadline the 64 one-MiB allocations always meet on a busy machine:
    // this is about the cap.
    let generous = PolicyOptions {
        call_deadline: Duration::from_secs(1),
        ..options()
    };
    let policy = survives_with("policy-hostile-memory", "64 MiB memory limit", generous).await;
    for _ in 0..7 {
        let decision = policy
            .decide_permission(&ctx("/w"), &call(ToolKind::Edit), &offered())
            .await;
        assert_eq!(decision.answer, PermissionAnswer::Cancelled);
    }
    assert_eq!(policy.health().faults, 10);
    assert_eq!(
        policy.instances(),
        0,
        "no faulted instance (and its memory) is kept"
    );
}

#[tokio::test]
async fn a_table_bomb_hits_the_table_limit_and_fails_closed() {
    let policy = survives("policy-hostile-table", "limit").await;
    let cause = policy.health().last_fault.unwrap();
    assert!(cause.contains("element table limit"), "{cause}");
    let started = Instant::now();
    let file = policy
        .decide_file(&ctx("/w"), FileAccess::Read, &path("/w/x"))
        .await;
    assert!(!file.allow && file.fault.is_some_and(|c| c.contains("limit")));
    assert!(started.elapsed() < FAULT_BOUND);
}

#[tokio::test]
async fn wrong_inputs_fail_to_load_with_one_clear_message() {
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
    let err = Policy::load(support::engine(), &core_as_policy, PolicyOptions::default())
        .await
        .err()
        .expect("the core is not a policy");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("core.wasm"), "{err}");
}

#[tokio::test]
async fn a_policy_built_for_the_old_contract_is_refused_naming_both_versions() {
    let legacy = support::component("policy-legacy-v0-1");
    let err = Policy::load(support::engine(), &legacy, PolicyOptions::default())
        .await
        .err()
        .expect("a qserve:bridge@0.1.0 policy is refused");
    match &err {
        LoadError::ContractVersion {
            found, expected, ..
        } => {
            assert_eq!(found, "qserve:bridge@0.1.0");
            assert_eq!(expected, "qserve:policy@0.2.0");
        }
        other => panic!("expected a contract-version refusal, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("policy-legacy-v0-1.wasm was built for qserve:bridge@0.1.0, this host speaks qserve:policy@0.2.0"),
        "{message}"
    );
}

#[tokio::test]
async fn init_refusing_its_configuration_refuses_the_load() {
    let err = Policy::load(
        support::engine(),
        &support::component("policy-readonly"),
        PolicyOptions {
            config_document: "allow = edit\n".into(),
            ..options()
        },
    )
    .await
    .err()
    .expect("the readonly policy takes no configuration");
    match &err {
        LoadError::ConfigRefused { origin, reason } => {
            assert!(origin.ends_with("policy-readonly.wasm"), "{origin}");
            assert!(
                reason.contains("readonly policy takes no configuration"),
                "{reason}"
            );
        }
        other => panic!("expected a config refusal, got {other}"),
    }
    assert!(
        err.to_string().contains("refused its configuration: "),
        "{err}"
    );

    // The same component with a configuration it accepts: `init` gave its
    // name and version, and every later instance gets the same configuration.
    let policy = support::policy_with(
        "policy-select-first",
        PolicyOptions {
            config_document: "version = 7.7.7\n".into(),
            max_instances: 2,
            ..options()
        },
    )
    .await;
    assert_eq!(policy.identity().name, "select-first");
    assert_eq!(policy.identity().version, "7.7.7");
    let w = ctx("/w");
    let (a, b) = tokio::join!(policy.decide_session(&w), policy.decide_session(&w));
    assert!(a.allow && b.allow, "{a:?} {b:?}");
    assert_eq!(policy.health().faults, 0);
}

#[tokio::test]
async fn builtins_are_found_by_name_and_load() {
    let names: Vec<&str> = builtin::all().iter().map(|b| b.name).collect();
    assert_eq!(
        names,
        [
            "builtin:default",
            "builtin:readonly",
            "builtin:rules",
            "builtin:cedar"
        ]
    );
    assert!(builtin::find("builtin:readonly").is_some());
    assert!(
        builtin::find("readonly").is_none(),
        "the prefix is part of the name"
    );

    let engine = support::engine();
    for (spec, name) in [
        ("builtin:default", "default"),
        ("builtin:readonly", "readonly"),
    ] {
        let loaded = engine.load_component(spec).unwrap();
        assert_eq!(loaded.origin, spec);
        let policy = Policy::load(engine, &loaded, options()).await.unwrap();
        assert_eq!(policy.identity().name, name);
        assert_eq!(policy.identity().origin, spec);
        assert!(policy.identity().loaded_at_ms > 1_600_000_000_000);
    }
    let err = engine.load_component("builtin:permissive").err().unwrap();
    assert!(matches!(err, LoadError::UnknownBuiltin { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "there is no built-in policy `builtin:permissive`; the built-in policies are: \
         builtin:default, builtin:readonly, builtin:rules, builtin:cedar"
    );
    // A path works the same way.
    let by_path = engine
        .load_component(&support::guest_path("policy-readonly"))
        .unwrap();
    assert!(by_path.origin.ends_with("policy-readonly.wasm"));
}

#[tokio::test]
async fn sha256_identifies_the_component_bytes() {
    let engine = support::engine();
    let hex = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let default = engine.load_component("builtin:default").unwrap();
    assert_eq!(
        default.sha256,
        hex(builtin::find("builtin:default").unwrap().bytes)
    );
    assert_eq!(default.sha256.len(), 64);
    assert_eq!(
        engine.load_component("builtin:default").unwrap().sha256,
        default.sha256,
        "stable across loads"
    );
    assert_ne!(
        engine.load_component("builtin:readonly").unwrap().sha256,
        default.sha256
    );

    let file = support::guest_path("policy-readonly");
    let loaded = engine.load_component(&file).unwrap();
    assert_eq!(loaded.sha256, hex(&std::fs::read(&file).unwrap()));
    let policy = Policy::load(engine, &loaded, options()).await.unwrap();
    assert_eq!(policy.identity().sha256, loaded.sha256);
}

#[tokio::test]
async fn inspect_says_whether_a_component_fits_the_policy_world() {
    let engine = support::engine();
    let good = inspect_policy(
        engine,
        &support::guest_path("policy-readonly"),
        &options(),
        None,
    )
    .await
    .unwrap();
    let report = good.render();
    assert!(good.fits(), "{report}");
    assert!(
        report.contains("qserve:policy/decide@0.2.0: init, on-permission-request"),
        "{report}"
    );
    assert!(
        report.contains("fits the `policy` world: yes (readonly"),
        "{report}"
    );
    assert!(
        report.contains(&format!("sha256: {}", good.sha256)),
        "{report}"
    );
    assert!(report.contains("under a 64 MiB memory cap"), "{report}");

    let refusing = inspect_policy(engine, "builtin:readonly", &options(), Some("allow = edit"))
        .await
        .unwrap();
    assert!(!refusing.fits());
    assert!(
        refusing.render().contains("refused its configuration"),
        "{}",
        refusing.render()
    );

    let core = inspect_policy(engine, &support::guest_path("core"), &options(), None)
        .await
        .unwrap();
    assert!(!core.fits());
    let report = core.render();
    assert!(
        report.contains("does not export `qserve:policy/decide@0.2.0`"),
        "{report}"
    );

    let legacy = inspect_policy(
        engine,
        &support::guest_path("policy-legacy-v0-1"),
        &options(),
        None,
    )
    .await
    .unwrap();
    assert!(!legacy.fits());
    let report = legacy.render();
    assert!(
        report.contains("was built for qserve:bridge@0.1.0, this host speaks qserve:policy@0.2.0"),
        "{report}"
    );
}
