//! Decision latency of the example policy set, natively:
//!
//!     cargo run --release -p qserve-cedar-logic --example latency [ROUNDS]
//!
//! Prints p50 / p90 / p99 per decision kind and the time `init` takes
//! (parse + validate). A measurement, not a test: nothing is asserted.

use std::time::{Duration, Instant};

use qserve_cedar_logic::{CedarPolicy, EXAMPLE};
use qserve_policy_logic::types::{
    AgentInfo, Context, FileAccess, OptionKind, PermissionOption, Phase, Policy, ResolvedPath,
    SessionScope, ToolCall, ToolKind,
};

/// One kind of decision, made once per call.
type Decision<'a> = Box<dyn FnMut() + 'a>;

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    format!(
        "p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs",
        at(50).as_secs_f64() * 1e6,
        at(90).as_secs_f64() * 1e6,
        at(99).as_secs_f64() * 1e6
    )
}

fn measure(rounds: usize, mut decision: impl FnMut()) -> Vec<Duration> {
    for _ in 0..rounds / 10 {
        decision();
    }
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            decision();
            start.elapsed()
        })
        .collect()
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let inits = measure(rounds.min(200), || {
        CedarPolicy::default().init(EXAMPLE).unwrap();
    });
    println!(
        "init (parse + validate, 7 policies)  {}",
        percentiles(inits)
    );

    let mut policy = CedarPolicy::default();
    policy.init(EXAMPLE).unwrap();
    let ctx = Context {
        session_id: "0b7e2c4e-7d0c-4d55-a1f4-3f4c8a5e9b21".into(),
        workspace: "/home/me/project".into(),
        agent: AgentInfo {
            name: "default".into(),
            command: "qwen".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
    };
    let path = ResolvedPath {
        requested: "src/main.rs".into(),
        resolved: "/home/me/project/src/main.rs".into(),
        inside_workspace: true,
        exists: true,
    };
    let options: Vec<PermissionOption> = [
        ("proceed_once", OptionKind::AllowOnce),
        ("proceed_always", OptionKind::AllowAlways),
        ("cancel", OptionKind::RejectOnce),
    ]
    .into_iter()
    .map(|(id, kind)| PermissionOption {
        option_id: id.into(),
        name: id.into(),
        kind,
    })
    .collect();
    let read = ToolCall {
        tool_call_id: "call-1".into(),
        title: "ReadFile src/main.rs".into(),
        locations: vec![path.clone()],
        ..ToolCall::of_kind(ToolKind::Read)
    };
    let push = ToolCall {
        tool_call_id: "call-2".into(),
        title: "Shell".into(),
        command: Some("cd /home/me/project && git push --force origin main".into()),
        ..ToolCall::of_kind(ToolKind::Execute)
    };

    let cases: [(&str, Decision); 4] = [
        (
            "permission: read inside (allow)",
            Box::new(|| {
                policy.on_permission_request(&ctx, &read, &options);
            }),
        ),
        (
            "permission: git push (forbid)",
            Box::new(|| {
                policy.on_permission_request(&ctx, &push, &options);
            }),
        ),
        (
            "file write inside (allow)",
            Box::new(|| {
                policy.on_file_access(&ctx, FileAccess::Write, &path);
            }),
        ),
        (
            "session create (allow)",
            Box::new(|| {
                policy.on_session_create(&Context {
                    phase: Phase::Create,
                    ..ctx.clone()
                });
            }),
        ),
    ];
    for (name, decision) in cases {
        println!("{name:<37} {}", percentiles(measure(rounds, decision)));
    }
}
