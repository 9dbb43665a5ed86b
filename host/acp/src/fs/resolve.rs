//! What object a path the agent named really is, decided once, before the
//! policy is asked, in user space (lstat + readlink), the way the kernel
//! would walk it.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use super::FsError;

/// Symlinks followed in one resolution before giving up, as the kernel's
/// own limit (`ELOOP`).
const MAX_SYMLINK_HOPS: usize = 40;

/// A path the agent named, resolved before the policy is asked; the I/O is
/// later done on exactly this object (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// The path as the agent sent it, for messages and logs.
    pub requested: String,
    /// Canonical and absolute: no `.`, no `..`, no symlink anywhere in it.
    /// For a missing file, the canonical deepest existing ancestor followed
    /// by the names that did not exist.
    pub resolved: PathBuf,
    /// `resolved` is the workspace or beneath it (compared component by
    /// component: `/ws2` is not inside `/ws`).
    pub inside_workspace: bool,
    /// Whether `resolved` existed at resolution (as any kind of object).
    pub exists: bool,
    /// The canonical workspace it was resolved against.
    pub(super) workspace: PathBuf,
    /// How many trailing components of `resolved` did not exist at
    /// resolution: 0 when `exists`; otherwise the last is the file itself
    /// and the others are the directories a write may create.
    pub(super) missing: usize,
    /// Tests: do the I/O with the component-by-component walk even where
    /// `openat2` exists.
    pub(super) walk_only: bool,
}

impl ResolvedPath {
    /// For tests: perform the I/O with the fallback used on kernels without
    /// `openat2` (a walk one component at a time with `O_NOFOLLOW`), so that
    /// path is exercised on kernels that have `openat2` too.
    #[doc(hidden)]
    pub fn with_walk_fallback(mut self) -> Self {
        self.walk_only = true;
        self
    }

    /// The directories between the deepest existing ancestor and the file
    /// that did not exist at resolution, outermost first: what a write
    /// creates, and nothing else.
    pub fn missing_directories(&self) -> Vec<PathBuf> {
        let total = self.resolved.components().count();
        let mut dirs = Vec::new();
        let mut path = PathBuf::new();
        for (i, component) in self.resolved.components().enumerate() {
            path.push(component);
            if i + self.missing >= total && i + 1 < total {
                dirs.push(path.clone());
            }
        }
        dirs
    }
}

/// Resolves `requested` against the canonical absolute `workspace`: a
/// relative path is taken relative to the workspace (ACP sends absolute
/// paths; a relative one is accepted, not trusted). Every symlink is
/// followed, `..` is applied to the directory it is reached from (as the
/// kernel does), and the names left after the deepest existing directory
/// are kept as they are (`..` after a missing name cancels that name).
///
/// Errors: an empty path or one with a NUL byte ([`FsError::InvalidParam`]),
/// a component under a non-directory ([`FsError::NotADirectory`]), more than
/// 40 symlinks ([`FsError::SymlinkLoop`]), an unreadable directory
/// ([`FsError::PermissionDenied`]). A missing file is not an error: see
/// [`ResolvedPath::exists`].
///
/// Blocking (a few `lstat`/`readlink` calls per component).
pub fn resolve(workspace: &Path, requested: &Path) -> Result<ResolvedPath, FsError> {
    if !workspace.is_absolute() {
        return Err(FsError::NotAbsolute(workspace.to_owned()));
    }
    let raw = requested.as_os_str().as_bytes();
    if raw.is_empty() {
        return Err(FsError::InvalidParam {
            param: "path",
            reason: "must not be empty".into(),
        });
    }
    if raw.contains(&0) {
        return Err(FsError::InvalidParam {
            param: "path",
            reason: format!("{} contains a NUL byte", requested.display()),
        });
    }

    // What is left to walk, last part on top.
    let mut pending: Vec<Part> = Vec::new();
    push_parts(&mut pending, requested.as_os_str());
    let mut current = if requested.is_absolute() {
        PathBuf::from("/")
    } else {
        workspace.to_owned()
    };
    // Whether `current` (which exists) is a directory; anything but the end
    // of the path after a non-directory is ENOTDIR, as for the kernel.
    let mut current_is_dir = true;
    // Names under `current` that do not exist, outermost first.
    let mut missing: Vec<OsString> = Vec::new();
    let mut hops = 0;

    while let Some(part) = pending.pop() {
        if !current_is_dir {
            return Err(FsError::NotADirectory(current));
        }
        match part {
            Part::Root => {
                current = PathBuf::from("/");
                missing.clear();
            }
            Part::Current => {}
            Part::Parent => {
                // Past a missing name, `..` cancels it (no link can be
                // involved: the name is not there); otherwise the parent of
                // a canonical directory, `/` staying `/`.
                if missing.pop().is_none() {
                    current.pop();
                }
            }
            Part::Name(name) if !missing.is_empty() => missing.push(name),
            Part::Name(name) => {
                let candidate = current.join(&name);
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(FsError::SymlinkLoop(requested.to_owned()));
                        }
                        let target = std::fs::read_link(&candidate)
                            .map_err(|e| FsError::from_io("read the link", &candidate, e))?;
                        // Relative targets resolve against the link's
                        // directory, which is `current`.
                        push_parts(&mut pending, target.as_os_str());
                    }
                    Ok(meta) => {
                        current = candidate;
                        current_is_dir = meta.is_dir();
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(name),
                    Err(e) => return Err(FsError::from_io("resolve", &candidate, e)),
                }
            }
        }
    }

    let exists = missing.is_empty();
    let missing_count = missing.len();
    let mut resolved = current;
    resolved.extend(missing);
    Ok(ResolvedPath {
        requested: requested.display().to_string(),
        inside_workspace: resolved.starts_with(workspace),
        resolved,
        exists,
        workspace: workspace.to_owned(),
        missing: missing_count,
        walk_only: false,
    })
}

/// One `/`-separated piece of a path.
#[derive(Debug, PartialEq)]
enum Part {
    Root,
    /// `.` or an empty piece (`a//b`, `a/`): nothing to walk, but what comes
    /// before must be a directory.
    Current,
    Parent,
    Name(OsString),
}

/// Pushes the parts of `path` onto `pending` so that its first part is on
/// top. Split by hand rather than with `Path::components`, which drops a
/// trailing `.`: `file/.` must be refused as the kernel refuses it.
fn push_parts(pending: &mut Vec<Part>, path: &OsStr) {
    let bytes = path.as_bytes();
    let mut parts = Vec::new();
    let rest = match bytes.strip_prefix(b"/") {
        Some(rest) => {
            parts.push(Part::Root);
            rest
        }
        None => bytes,
    };
    if !rest.is_empty() {
        for piece in rest.split(|&b| b == b'/') {
            parts.push(match piece {
                b"" | b"." => Part::Current,
                b".." => Part::Parent,
                name => Part::Name(OsString::from_vec(name.to_vec())),
            });
        }
    }
    pending.extend(parts.into_iter().rev());
}

/// The components of `path` below `base` (which `path` starts with), as
/// plain names: resolved paths have no `.`/`..`.
pub(super) fn names_below<'a>(path: &'a Path, base: &Path) -> Vec<&'a OsStr> {
    path.strip_prefix(base)
        .map(|rest| {
            rest.components()
                .filter_map(|c| match c {
                    Component::Normal(name) => Some(name),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Vec<Part> {
        let mut pending = Vec::new();
        push_parts(&mut pending, OsStr::new(path));
        pending.reverse();
        pending
    }

    fn name(n: &str) -> Part {
        Part::Name(n.into())
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(parts("/a/b"), [Part::Root, name("a"), name("b")]);
        assert_eq!(
            parts("a/./b/"),
            [name("a"), Part::Current, name("b"), Part::Current]
        );
        assert_eq!(parts("../x"), [Part::Parent, name("x")]);
        assert_eq!(parts("/"), [Part::Root]);
        assert_eq!(parts("a//b"), [name("a"), Part::Current, name("b")]);
        assert_eq!(parts("f/."), [name("f"), Part::Current]);
    }

    #[test]
    fn missing_directories_are_the_missing_names_but_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        let r = resolve(&ws, Path::new("x/y/z.txt")).unwrap();
        assert_eq!(r.missing, 3);
        assert_eq!(r.missing_directories(), [ws.join("x"), ws.join("x/y")]);
        let r = resolve(&ws, Path::new("z.txt")).unwrap();
        assert!(r.missing_directories().is_empty());
        let r = resolve(&ws, Path::new(".")).unwrap();
        assert!(r.exists && r.missing_directories().is_empty());
    }

    #[test]
    fn dot_dot_after_a_missing_name_cancels_it_and_walks_on() {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(ws.join("real")).unwrap();
        std::os::unix::fs::symlink("real", ws.join("link")).unwrap();
        let r = resolve(&ws, Path::new("nope/../link/f")).unwrap();
        assert_eq!(r.resolved, ws.join("real/f"));
        assert_eq!(r.missing, 1);
    }

    #[test]
    fn a_name_under_a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(ws.join("f"), "x").unwrap();
        for path in ["f/x", "f/.", "f/..", "f/"] {
            let err = resolve(&ws, Path::new(path)).unwrap_err();
            assert!(matches!(err, FsError::NotADirectory(_)), "{path}: {err}");
        }
    }

    #[test]
    fn empty_and_nul_paths_are_invalid() {
        for path in ["", "a\0b"] {
            let err = resolve(Path::new("/"), Path::new(path)).unwrap_err();
            assert!(
                matches!(err, FsError::InvalidParam { param: "path", .. }),
                "{err}"
            );
        }
    }
}
