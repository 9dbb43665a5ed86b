//! Decision latency of the built-in policies through their components vs.
//! the same logic native (qserve-policy-logic).
//!
//!     cargo bench -p qserve-runtime --bench policy_decide
//!
//! Each case runs `DECISIONS` decisions one after another (after a warm-up)
//! and prints the median (p50), p99 and max of each decision's latency. The
//! component side is what the daemon pays per decision: take an instance
//! from the pool, copy the request into the guest, run it under the
//! deadline (async call, epoch checks), copy the answer out, check it. The
//! native side calls the policy's Rust logic on the same, already built,
//! request: the floor.

use std::time::{Duration, Instant};

use qserve_policy_logic as native;
use qserve_policy_logic::Policy as _;
use qserve_runtime::{
    AgentInfo, Context, EngineOptions, FileAccess, GuestEngine, OptionKind, PermissionOption,
    Phase, Policy, PolicyOptions, ResolvedPath, SessionScope, ToolCall, ToolKind,
};

const DECISIONS: usize = 20_000;
const WARM_UP: usize = 1_000;

fn ctx() -> Context {
    Context {
        session_id: "0b1c5a5e-2f4e-4a53-9c1e-6f1d2d0e8b11".into(),
        workspace: "/home/me/project".into(),
        agent: AgentInfo {
            name: "default".into(),
            command: "qwen".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
    }
}

fn path(relative: &str) -> ResolvedPath {
    ResolvedPath {
        requested: relative.into(),
        resolved: format!("/home/me/project/{relative}"),
        inside_workspace: true,
        exists: true,
    }
}

/// A read of two files, as qwen asks for it.
fn read_call() -> ToolCall {
    ToolCall {
        tool_call_id: "read_many_files-1730000000000".into(),
        kind: ToolKind::Read,
        tool_name: Some("read_many_files".into()),
        title: "src/main.rs, src/lib.rs".into(),
        command: None,
        url: None,
        locations: vec![path("src/main.rs"), path("src/lib.rs")],
        raw_input: r#"{"paths":["src/main.rs","src/lib.rs"]}"#.into(),
    }
}

fn options() -> Vec<PermissionOption> {
    [
        ("proceed_always", "Allow always", OptionKind::AllowAlways),
        ("proceed_once", "Allow once", OptionKind::AllowOnce),
        ("cancel", "Reject", OptionKind::RejectOnce),
    ]
    .into_iter()
    .map(|(id, name, kind)| PermissionOption {
        option_id: id.into(),
        name: name.into(),
        kind,
    })
    .collect()
}

// The same request in the native logic's types.

fn native_ctx() -> native::Context {
    native::Context {
        session_id: "0b1c5a5e-2f4e-4a53-9c1e-6f1d2d0e8b11".into(),
        workspace: "/home/me/project".into(),
        agent: native::AgentInfo {
            name: "default".into(),
            command: "qwen".into(),
            mode: None,
        },
        scope: native::SessionScope::Single,
        phase: native::Phase::Running,
    }
}

fn native_path(relative: &str) -> native::ResolvedPath {
    native::ResolvedPath {
        requested: relative.into(),
        resolved: format!("/home/me/project/{relative}"),
        inside_workspace: true,
        exists: true,
    }
}

fn native_read_call() -> native::ToolCall {
    native::ToolCall {
        tool_call_id: "read_many_files-1730000000000".into(),
        kind: native::ToolKind::Read,
        tool_name: Some("read_many_files".into()),
        title: "src/main.rs, src/lib.rs".into(),
        command: None,
        url: None,
        locations: vec![native_path("src/main.rs"), native_path("src/lib.rs")],
        raw_input: r#"{"paths":["src/main.rs","src/lib.rs"]}"#.into(),
    }
}

fn native_options() -> Vec<native::PermissionOption> {
    [
        (
            "proceed_always",
            "Allow always",
            native::OptionKind::AllowAlways,
        ),
        ("proceed_once", "Allow once", native::OptionKind::AllowOnce),
        ("cancel", "Reject", native::OptionKind::RejectOnce),
    ]
    .into_iter()
    .map(|(id, name, kind)| native::PermissionOption {
        option_id: id.into(),
        name: name.into(),
        kind,
    })
    .collect()
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: *samples.last().unwrap(),
    }
}

/// Time `DECISIONS` runs of `decide` (after `WARM_UP` untimed ones).
async fn time_async<F: std::future::Future<Output = ()>>(mut decide: impl FnMut() -> F) -> Stats {
    for _ in 0..WARM_UP {
        decide().await;
    }
    let mut samples = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let started = Instant::now();
        decide().await;
        samples.push(started.elapsed());
    }
    stats(samples)
}

fn time_native(mut decide: impl FnMut()) -> Stats {
    for _ in 0..WARM_UP {
        decide();
    }
    let mut samples = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let started = Instant::now();
        decide();
        samples.push(started.elapsed());
    }
    stats(samples)
}

fn row(label: &str, s: &Stats) {
    println!(
        "{label:<44}{:>12.2}{:>12.2}{:>12.2}",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.max.as_secs_f64() * 1e6
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = GuestEngine::new(EngineOptions::default()).unwrap();
    let load = |spec: &str| {
        let loaded = engine.load_component(spec).unwrap();
        runtime
            .block_on(Policy::load(&engine, &loaded, PolicyOptions::default()))
            .unwrap()
    };
    let default = load("builtin:default");
    let readonly = load("builtin:readonly");
    let (ctx, call, offered, file) = (ctx(), read_call(), options(), path("src/main.rs"));
    let (n_ctx, n_call, n_offered, n_file) = (
        native_ctx(),
        native_read_call(),
        native_options(),
        native_path("src/main.rs"),
    );
    let mut native_default = native::DefaultPolicy;
    native_default.init("").unwrap();
    let mut native_readonly = native::ReadonlyPolicy;
    native_readonly.init("").unwrap();

    println!(
        "policy decision latency: {DECISIONS} decisions per case, one at a time (after {WARM_UP} warm-up)"
    );
    println!("{:<44}{:>12}{:>12}{:>12}", "", "p50 µs", "p99 µs", "max µs");
    runtime.block_on(async {
        row(
            "builtin:default  permission, component",
            &time_async(|| async {
                std::hint::black_box(default.decide_permission(&ctx, &call, &offered).await);
            })
            .await,
        );
        row(
            "builtin:default  permission, native",
            &time_native(|| {
                std::hint::black_box(
                    native_default.on_permission_request(&n_ctx, &n_call, &n_offered),
                );
            }),
        );
        row(
            "builtin:readonly permission, component",
            &time_async(|| async {
                std::hint::black_box(readonly.decide_permission(&ctx, &call, &offered).await);
            })
            .await,
        );
        row(
            "builtin:readonly permission, native",
            &time_native(|| {
                std::hint::black_box(
                    native_readonly.on_permission_request(&n_ctx, &n_call, &n_offered),
                );
            }),
        );
        row(
            "builtin:readonly file read, component",
            &time_async(|| async {
                std::hint::black_box(readonly.decide_file(&ctx, FileAccess::Read, &file).await);
            })
            .await,
        );
        row(
            "builtin:readonly file read, native",
            &time_native(|| {
                std::hint::black_box(native_readonly.on_file_access(
                    &n_ctx,
                    native::FileAccess::Read,
                    &n_file,
                ));
            }),
        );
    });
    for policy in [&default, &readonly] {
        let health = policy.health();
        assert_eq!(
            health.faults,
            0,
            "{}: {:?}",
            policy.identity().name,
            health.last_fault
        );
    }
}
