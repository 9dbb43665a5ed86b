//! Property tests of `fs::resolve` over a small tree with symlinks, against
//! a reference that lets the kernel (`std::fs::canonicalize`) resolve the
//! longest existing prefix and applies the missing rest lexically.

use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use qserve_acp::fs::{self, resolve, FsError};

/// The tree, built once (tests only read it):
///
/// ```text
/// root/
///   wsx/              "outside": a/ (dir, holds `link -> link`: a loop), b
///                     (file); its name starts with the workspace's, so a
///                     string-prefix test would call it inside
///   ws/               the workspace
///     a/              dir
///       b             file "ws/a/b"
///       link -> ../../wsx             (out, relative)
///       a/            dir
///         link -> ../b                (a file inside)
///     b/              dir
///       link -> <root>/wsx/a          (out, absolute)
///       a -> ..                       (back up to ws)
///     link -> a                       (a dir inside)
/// ```
struct Tree {
    _dir: tempfile::TempDir,
    ws: PathBuf,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        let outside = root.join("wsx");
        for d in [
            &outside,
            &outside.join("a"),
            &ws,
            &ws.join("a/a"),
            &ws.join("b"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(outside.join("b"), "wsx/b").unwrap();
        symlink("link", outside.join("a/link")).unwrap();
        std::fs::write(ws.join("a/b"), "ws/a/b").unwrap();
        symlink("../../wsx", ws.join("a/link")).unwrap();
        symlink("../b", ws.join("a/a/link")).unwrap();
        symlink(outside.join("a"), ws.join("b/link")).unwrap();
        symlink("..", ws.join("b/a")).unwrap();
        symlink("a", ws.join("link")).unwrap();
        Tree { _dir: dir, ws }
    })
}

/// What the resolution must give, or `None` where it must fail (a name
/// under a file, a symlink loop). The tree has no dangling link, so the
/// first prefix that does not exist ends in a missing plain name.
fn reference(base: &Path, parts: &[&str]) -> Option<PathBuf> {
    let prefix = |k: usize| {
        let mut s = base.as_os_str().to_owned();
        for part in &parts[..k] {
            s.push("/");
            s.push(part);
        }
        PathBuf::from(s)
    };
    let mut k = 0;
    let mut known = std::fs::canonicalize(base).ok()?;
    while k < parts.len() {
        match std::fs::canonicalize(prefix(k + 1)) {
            Ok(canonical) => {
                known = canonical;
                k += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) => return None,
        }
    }
    if k == parts.len() {
        return Some(known);
    }
    // parts[k] does not exist under `known`: the rest is lexical until a
    // `..` cancels the last missing name, then the walk goes on for real.
    let mut missing: Vec<&str> = Vec::new();
    for (i, part) in parts[k..].iter().enumerate() {
        match *part {
            "." => {}
            ".." => {
                missing.pop();
                if missing.is_empty() {
                    return reference(&known, &parts[k + i + 1..]);
                }
            }
            name => missing.push(name),
        }
    }
    let mut path = known;
    path.extend(missing);
    Some(path)
}

fn part() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "..", ".", "link"])
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn resolve_agrees_with_the_kernel(
        parts in prop::collection::vec(part(), 1..9),
        absolute in any::<bool>(),
    ) {
        let t = tree();
        let joined = parts.join("/");
        let requested = if absolute {
            t.ws.join(&joined)
        } else {
            PathBuf::from(&joined)
        };
        let got = resolve(&t.ws, &requested);
        let want = reference(&t.ws, &parts);
        match (got, want) {
            (Ok(r), Some(want)) => {
                prop_assert!(r.resolved.is_absolute());
                prop_assert!(
                    r.resolved.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                    "not canonical: {}", r.resolved.display()
                );
                prop_assert_eq!(&r.resolved, &want, "{}", joined);
                prop_assert_eq!(r.inside_workspace, want.starts_with(&t.ws), "{}", joined);
                prop_assert_eq!(r.exists, std::fs::symlink_metadata(&want).is_ok(), "{}", joined);
                // The I/O agrees too: a regular file reads as std reads it,
                // through openat2 and through the walk alike.
                if want.is_file() {
                    let expected = std::fs::read_to_string(&want).unwrap();
                    for resolved in [r.clone(), r.clone().with_walk_fallback()] {
                        let content = runtime()
                            .block_on(fs::read_text_file_at(&resolved, None, None))
                            .unwrap();
                        prop_assert_eq!(&content, &expected, "{}", joined);
                    }
                }
            }
            (Err(e), None) => prop_assert!(
                matches!(e, FsError::NotADirectory(_) | FsError::SymlinkLoop(_)),
                "{}: {}", joined, e
            ),
            (got, want) => prop_assert!(false, "{}: resolve gave {:?}, the reference {:?}", joined, got, want),
        }
    }

    /// Any bytes at all: an answer, never a panic; a success is canonical.
    #[test]
    fn resolve_never_panics_on_arbitrary_paths(
        bytes in prop::collection::vec(prop::sample::select(b"/.ab\0l".to_vec()), 0..24),
    ) {
        use std::os::unix::ffi::OsStrExt;
        let t = tree();
        let requested = Path::new(std::ffi::OsStr::from_bytes(&bytes));
        if let Ok(r) = resolve(&t.ws, requested) {
            prop_assert!(r.resolved.is_absolute());
            prop_assert!(r.resolved.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
        }
    }
}
