//! Compiled components kept on disk, so a restart does not recompile.
//!
//! Compiling a Python policy takes seconds; deserializing its compiled form
//! takes milliseconds. Entries are keyed by the SHA-256 of the component's
//! bytes and by the engine's compatibility hash (wasmtime version, target,
//! settings), so a different wasmtime or configuration never loads a stale
//! artifact. Files are written to a temporary name and renamed into place:
//! a crash mid-write leaves no half-written entry.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// `$QSERVE_CACHE_DIR`, else `$XDG_CACHE_HOME/qserve`, else `~/.cache/qserve`.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QSERVE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("qserve"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("qserve"))
}

pub(crate) struct CompiledCache {
    dir: PathBuf,
    /// Hex of the engine's compatibility hash: part of every file name.
    engine_key: String,
}

impl CompiledCache {
    pub(crate) fn open(engine: &Engine, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let digest = hex(&Sha256::digest(bytes));
        let path = self.dir.join(format!("{digest}-{}.cwasm", self.engine_key));
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // into a cache directory owned by the user running the daemon.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "loaded compiled component from cache");
                    return Ok(component);
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {err:#}")
                }
            }
        }
        let started = std::time::Instant::now();
        let compiled = engine.precompile_component(bytes)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component ({} bytes)",
            bytes.len()
        );
        if let Err(err) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), "could not cache compiled component: {err}");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn store(&self, path: &std::path::Path, compiled: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
