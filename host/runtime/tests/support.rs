//! Shared by the runtime's tests: one engine per test process (compiling a
//! component is the slow part), components from `guest/build.sh`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use qserve_runtime::{EngineOptions, GuestEngine, LoadedComponent};

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
