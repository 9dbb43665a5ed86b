//! Compiled components kept on disk, so a restart does not recompile.
//!
//! Compiling a Python policy takes seconds; deserializing its compiled form
//! takes milliseconds. Entries are keyed by the SHA-256 of the component's
//! bytes and by the engine's compatibility hash (wasmtime version, target,
//! settings), so a different wasmtime or configuration never loads a stale
//! artifact. Files are written to a temporary name and renamed into place:
//! a crash mid-write leaves no half-written entry.
//!
//! An entry is native code that runs in the daemon unchecked, so it is only
//! ever read from a directory that the daemon's user owns and nobody else can
//! write (else the cache is disabled with a warning), and only from files
//! that user owns and nobody else can write (else the entry is recompiled
//! and replaced).

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

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

/// Why a cache directory or entry is not trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Untrusted {
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is owned by uid {owner}, not by this user (uid {me})", path.display())]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("{} is writable by its group or by others (mode {mode:o})", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Only the current user may have written `path` (follows symlinks: what
/// matters is the directory or file actually read).
#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        return Err(Untrusted::Owner {
            path: path.to_owned(),
            owner: metadata.uid(),
            me,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata) -> Result<(), Untrusted> {
    Ok(())
}

pub(crate) struct CompiledCache {
    dir: PathBuf,
    /// Hex of the engine's compatibility hash: part of every file name.
    engine_key: String,
}

impl CompiledCache {
    /// Create the directory (private to this user) if needed, and refuse one
    /// that someone else could have put code in.
    pub(crate) fn open(engine: &Engine, dir: PathBuf) -> Result<Self, Untrusted> {
        create_private_dir(&dir)?;
        let metadata = std::fs::metadata(&dir)?;
        if !metadata.is_dir() {
            return Err(Untrusted::NotADirectory(dir));
        }
        check_private(&dir, &metadata)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    /// The compiled form of `bytes` (whose SHA-256 is `digest`).
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{digest}-{}.cwasm", self.engine_key));
        if let Ok(metadata) = std::fs::metadata(&path) {
            match check_private(&path, &metadata) {
                Err(untrusted) => {
                    tracing::warn!(
                        "not loading compiled code from the cache: {untrusted}; recompiling"
                    )
                }
                // SAFETY: the file was written by `precompile_component` of
                // an engine with the same compatibility hash (it is in the
                // name), into a directory only this user can write, and the
                // file itself is this user's and writable by no one else.
                Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
                    Ok(component) => {
                        tracing::debug!(path = %path.display(), "loaded compiled component from cache");
                        return Ok(component);
                    }
                    Err(err) => {
                        tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {err:#}")
                    }
                },
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

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(&tmp)
            .and_then(|mut file| file.write_all(compiled))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn a_private_directory_is_used_and_created_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        CompiledCache::open(&engine(), dir.clone()).expect("a fresh directory is ours");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "created private: {mode:o}");
    }

    #[test]
    fn a_group_or_world_writable_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o770, 0o702] {
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let refused = CompiledCache::open(&engine(), root.path().to_owned())
                .err()
                .unwrap_or_else(|| panic!("mode {mode:o} accepted"));
            assert!(matches!(refused, Untrusted::Writable { .. }), "{refused}");
            assert!(refused
                .to_string()
                .contains("writable by its group or by others"));
        }
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(CompiledCache::open(&engine(), root.path().to_owned()).is_ok());
    }

    #[test]
    fn a_directory_owned_by_someone_else_is_refused() {
        let root = tempfile::tempdir().unwrap();
        // SAFETY: no preconditions.
        let dir = if unsafe { libc::geteuid() } == 0 {
            // Root can give a directory away; anyone else tries root's `/`.
            std::os::unix::fs::chown(root.path(), Some(65534), Some(65534)).unwrap();
            root.path().to_owned()
        } else {
            PathBuf::from("/")
        };
        let refused = CompiledCache::open(&engine(), dir)
            .err()
            .expect("someone else's directory is refused");
        assert!(matches!(refused, Untrusted::Owner { .. }), "{refused}");
        assert!(
            refused.to_string().contains("not by this user"),
            "{refused}"
        );
    }

    /// The smallest component: header only.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn an_entry_others_could_write_is_recompiled_and_replaced() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(&engine, root.path().join("c")).unwrap();
        cache.load(&engine, EMPTY_COMPONENT, "e0").unwrap();
        let entry = std::fs::read_dir(root.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .expect("an entry was written");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&entry), 0o600);
        // Someone could have replaced the code in it: not loaded, rewritten.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::write(&entry, b"not compiled code").unwrap();
        cache
            .load(&engine, EMPTY_COMPONENT, "e0")
            .expect("recompiled");
        assert_eq!(mode(&entry), 0o600, "replaced by a private entry");
        assert_ne!(std::fs::read(&entry).unwrap(), b"not compiled code");
    }
}
