//! Shared by the runtime's tests: one engine per test process (compiling a
//! component is the slow part), components from `guest/build.sh`, and the
//! inputs of a decision.
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use qserve_runtime::{
    AgentInfo, Context, EngineOptions, GuestEngine, LoadedComponent, OptionKind, PermissionOption,
    Phase, Policy, PolicyOptions, ResolvedPath, SessionScope, ToolCall, ToolKind,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

pub fn engine() -> &'static GuestEngine {
    static ENGINE: OnceLock<GuestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-component-cache");
        GuestEngine::new(EngineOptions {
            cache_dir: Some(cache),
            epoch_tick: Duration::from_millis(2),
        })
        .expect("engine")
    })
}

/// Where `guest/build.sh` puts every component (override: QSERVE_GUEST_DIR).
pub fn guest_dir() -> PathBuf {
    std::env::var_os("QSERVE_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"))
}

pub fn guest_path(name: &str) -> String {
    guest_dir()
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A component built by `guest/build.sh`. Missing ones fail the test loudly:
/// these tests are about the real components.
pub fn component(name: &str) -> LoadedComponent {
    let path = guest_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the guests first with `bash guest/build.sh`",
        path.display()
    );
    engine().load_file(&path).expect("load component")
}

/// Load a policy component under `options`.
pub async fn policy_with(name: &str, options: PolicyOptions) -> Policy {
    Policy::load(engine(), &component(name), options)
        .await
        .unwrap_or_else(|err| panic!("{name} loads: {err}"))
}

pub fn ctx(workspace: &str) -> Context {
    Context {
        session_id: "s1".into(),
        workspace: workspace.into(),
        agent: AgentInfo {
            name: "default".into(),
            command: "qwen".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
    }
}

pub fn path(resolved: &str) -> ResolvedPath {
    ResolvedPath {
        requested: resolved.into(),
        resolved: resolved.into(),
        inside_workspace: resolved.starts_with("/w/"),
        exists: true,
    }
}

pub fn call(kind: ToolKind) -> ToolCall {
    ToolCall {
        tool_call_id: "call-1".into(),
        title: format!("a {kind:?} call"),
        kind,
        tool_name: None,
        command: None,
        url: None,
        locations: vec![path("/w/file.txt")],
        raw_input: r#"{"file_path":"/w/file.txt"}"#.into(),
    }
}

/// What qwen offers for a write.
pub fn offered() -> Vec<PermissionOption> {
    [
        ("proceed_always", OptionKind::AllowAlways),
        ("proceed_once", OptionKind::AllowOnce),
        ("cancel", OptionKind::RejectOnce),
    ]
    .into_iter()
    .map(|(id, kind)| PermissionOption {
        option_id: id.into(),
        name: id.into(),
        kind,
    })
    .collect()
}

/// Every log event, as `LEVEL field=value …` text: the daemon's log as an
/// operator would read it. Install with `tracing::subscriber::with_default`
/// (this thread only).
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<String>>>);

impl CapturedLog {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct EventText(String);

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl Subscriber for CapturedLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = EventText(format!("{} ", event.metadata().level()));
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A single-threaded runtime, so everything a test runs is logged on the
/// thread that captures the log.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
