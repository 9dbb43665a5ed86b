//! Path resolution, the step the policy's decision rests on, against a workspace with
//! symlinks in and out of it, a loop and a dangling link: a resolved path is absolute, has
//! no `.`/`..`, no symlink in its existing part, and is "inside" exactly when it is the
//! workspace or beneath it.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qserve_acp::fs::resolve;

struct Fixture {
    _dir: tempfile::TempDir,
    workspace: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let workspace = root.join("ws");
        std::fs::create_dir_all(workspace.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::create_dir_all(root.join("ws2")).unwrap();
        std::fs::write(workspace.join("sub/file.txt"), "x").unwrap();
        std::fs::write(root.join("outside/secret"), "x").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, workspace.join(name)).unwrap()
        };
        link("../outside", "out");
        link("sub", "in");
        link("loop", "loop");
        link("missing/dir/file", "dangling");
        link("/", "root");
        link("../ws2", "sibling");
        link("sub/../../outside/secret", "secret");
        Fixture {
            _dir: dir,
            workspace,
        }
    })
}

fn is_symlink_free(path: &Path) -> bool {
    let mut prefix = PathBuf::new();
    for component in path.components() {
        prefix.push(component);
        if let Ok(meta) = std::fs::symlink_metadata(&prefix) {
            if meta.file_type().is_symlink() {
                return false;
            }
        } else {
            return true; // the missing tail
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let requested = Path::new(OsStr::from_bytes(data));
    let Ok(resolved) = resolve(&fixture.workspace, requested) else {
        return;
    };
    let path = &resolved.resolved;
    assert!(path.is_absolute(), "{path:?}");
    assert!(
        path.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
        "{path:?} has . or .."
    );
    assert_eq!(
        resolved.inside_workspace,
        path.starts_with(&fixture.workspace),
        "{requested:?} -> {path:?}"
    );
    assert!(
        is_symlink_free(path),
        "{requested:?} -> {path:?} goes through a symlink"
    );
    if resolved.exists {
        assert!(
            std::fs::symlink_metadata(path).is_ok(),
            "{path:?} said to exist"
        );
    }
});
