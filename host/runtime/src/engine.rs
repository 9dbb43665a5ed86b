//! One wasmtime [`Engine`] per daemon, its epoch ticker, and component loading.
//!
//! One engine serves both guests. The core is called synchronously from its
//! owner thread, the policy with `call_async` from tokio tasks: since
//! wasmtime 45 whether a store is "async" is a property of the store (its
//! epoch callback yields, its linker has async functions), not of the
//! engine (`Config::async_support` is a no-op), so a second engine would only
//! add a second epoch ticker and a second set of cache keys.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use sha2::{Digest, Sha256};

use crate::cache::CompiledCache;
use crate::embedded::builtin;
use crate::error::LoadError;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled components are kept between runs (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Granularity of every guest deadline: the epoch advances (and a guest
    /// running past its deadline is checked) this often.
    pub epoch_tick: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: crate::cache::default_cache_dir(),
            epoch_tick: Duration::from_millis(2),
        }
    }
}

/// The shared engine. Cheap to clone.
#[derive(Clone)]
pub struct GuestEngine {
    engine: Engine,
    cache: Option<Arc<CompiledCache>>,
    clock: GuestClock,
}

/// Milliseconds since the engine started, as of the last epoch tick: what
/// the core's deadlines are checked against. Wall time, not a count of
/// ticks: on a loaded machine the ticker thread wakes late, and counting
/// ticks would stretch every deadline by as much.
#[derive(Clone)]
pub(crate) struct GuestClock(Arc<AtomicU64>);

impl GuestClock {
    pub(crate) fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A compiled component and where it came from (for messages).
#[derive(Clone)]
pub struct LoadedComponent {
    /// A path, `builtin:NAME`, or `embedded core`.
    pub origin: String,
    pub component: Component,
    /// Lowercase hex SHA-256 of the component's bytes: what `policy list`,
    /// `/capabilities` and the decision log show, so an operator can tell
    /// exactly which build decided.
    pub sha256: String,
}

impl GuestEngine {
    /// Build the engine and start its epoch ticker. The ticker thread holds
    /// only a weak reference and stops once every clone of the engine is gone.
    pub fn new(options: EngineOptions) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Deadlines: every call sets one; the ticker below moves time forward.
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let cache = match options.cache_dir {
            Some(dir) => match CompiledCache::open(&engine, dir.clone()) {
                Ok(cache) => Some(Arc::new(cache)),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), "compiled-component cache disabled: {err}");
                    None
                }
            },
            None => None,
        };
        let clock = GuestClock(Arc::new(AtomicU64::new(0)));
        spawn_epoch_ticker(&engine, options.epoch_tick, clock.clone());
        Ok(GuestEngine {
            engine,
            cache,
            clock,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn clock(&self) -> &GuestClock {
        &self.clock
    }

    /// Load `builtin:NAME` (compiled into the binary) or a component file.
    pub fn load_component(&self, spec: &str) -> Result<LoadedComponent, LoadError> {
        if spec.starts_with("builtin:") {
            let found = builtin::find(spec).ok_or_else(|| LoadError::UnknownBuiltin {
                name: spec.to_owned(),
                known: builtin::names(),
            })?;
            return self.load_bytes(found.name, found.bytes, "policy");
        }
        self.load_file(Path::new(spec))
    }

    /// Load a component file, naming the file in every error.
    pub fn load_file(&self, path: &Path) -> Result<LoadedComponent, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(&path.display().to_string(), &bytes, "policy")
    }

    /// Compile (or fetch from the cache) a component. `world` only shapes the
    /// message when the bytes are a core module rather than a component.
    pub fn load_bytes(
        &self,
        origin: &str,
        bytes: &[u8],
        world: &'static str,
    ) -> Result<LoadedComponent, LoadError> {
        check_is_component(origin, bytes, world)?;
        let sha256 = hex(&Sha256::digest(bytes));
        let component = match &self.cache {
            Some(cache) => cache.load(&self.engine, bytes, &sha256),
            None => Component::new(&self.engine, bytes),
        }
        .map_err(|err| LoadError::Compile {
            origin: origin.to_owned(),
            reason: format!("{err:#}"),
        })?;
        Ok(LoadedComponent {
            origin: origin.to_owned(),
            component,
            sha256,
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tell a component from a core module or garbage before wasmtime does, so the
/// operator gets a sentence instead of a parser error.
fn check_is_component(origin: &str, bytes: &[u8], world: &'static str) -> Result<(), LoadError> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Err(LoadError::CoreModule {
            origin: origin.to_owned(),
            world,
        })
    } else {
        Err(LoadError::NotWasm {
            origin: origin.to_owned(),
        })
    }
}

fn spawn_epoch_ticker(engine: &Engine, tick: Duration, clock: GuestClock) {
    let weak = engine.weak();
    let origin = Instant::now();
    std::thread::Builder::new()
        .name("qserve-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => {
                    clock
                        .0
                        .store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
                    engine.increment_epoch();
                }
                None => return,
            }
        })
        .expect("spawn the epoch ticker thread");
}
