//! Opening a resolved path so that nothing on the way is followed.
//!
//! The resolved path has no symlink, `.` or `..` in it. It is opened from a
//! directory handle — the workspace when the path is inside it, `/`
//! otherwise — with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
//! [| RESOLVE_BENEATH])`: if a symlink took the place of any component since
//! the resolution, the kernel refuses (`ELOOP`) instead of following it.
//!
//! Kernels older than 5.6 have no `openat2`, and some seccomp profiles
//! refuse it (`ENOSYS`, or `EPERM` for older Docker profiles). Then the same
//! names are walked one at a time: `openat(dir, name, O_PATH | O_NOFOLLOW)`,
//! checked to be a directory with `fstat`, and used as the `dir` of the next
//! step. Since the names are plain (no `..`), the walk cannot leave the
//! starting directory, and since no step follows a symlink, the result is
//! the same object `openat2` would give — or the same refusal.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{openat, openat2, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use super::resolve::{names_below, ResolvedPath};
use super::FsError;

/// Times an `openat2` that answered `EAGAIN` (a concurrent rename or mount
/// the kernel could not rule out) is tried again before giving up.
const OPENAT2_AGAIN_ATTEMPTS: usize = 8;

/// Whether this kernel (and seccomp profile) lets the daemon use `openat2`;
/// asked once. When false, every file request uses the component walk.
pub fn openat2_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        match openat2(
            CWD,
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS,
        ) {
            Ok(_) => true,
            Err(e) => {
                tracing::info!(
                    "openat2 is unavailable ({e}); file requests walk paths one component at a time"
                );
                false
            }
        }
    })
}

/// How a path is opened: both refuse every symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    Openat2,
    Components,
}

impl Walk {
    pub(super) fn for_path(path: &ResolvedPath) -> Walk {
        if !path.walk_only && openat2_available() {
            Walk::Openat2
        } else {
            Walk::Components
        }
    }
}

/// Where the opens of one request start: a handle on the workspace (the
/// path is inside it) or on `/`, and the names of the resolved path below it.
pub(super) struct Base<'a> {
    pub fd: OwnedFd,
    pub names: Vec<&'a OsStr>,
    pub beneath: bool,
    pub walk: Walk,
}

impl<'a> Base<'a> {
    pub(super) fn of(path: &'a ResolvedPath) -> Result<Base<'a>, FsError> {
        let walk = Walk::for_path(path);
        let root = openat(
            CWD,
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| open_error("open", Path::new("/"), e))?;
        if path.inside_workspace {
            // The workspace is canonical: opened without following a link
            // either, so a workspace path swapped for a link is refused too.
            let ws_names = names_below(&path.workspace, Path::new("/"));
            let fd = open_names(
                root.as_fd(),
                &ws_names,
                OFlags::PATH | OFlags::DIRECTORY,
                false,
                walk,
            )
            .map_err(|e| open_error("open the workspace", &path.workspace, e))?;
            Ok(Base {
                fd,
                names: names_below(&path.resolved, &path.workspace),
                beneath: true,
                walk,
            })
        } else {
            Ok(Base {
                fd: root,
                names: names_below(&path.resolved, Path::new("/")),
                beneath: false,
                walk,
            })
        }
    }

    /// Opens the first `count` names below the base (all of them: the
    /// object itself) with `flags`; `O_NOFOLLOW | O_CLOEXEC` are added.
    pub(super) fn open(&self, count: usize, flags: OFlags) -> Result<OwnedFd, Errno> {
        open_names(
            self.fd.as_fd(),
            &self.names[..count],
            flags,
            self.beneath,
            self.walk,
        )
    }
}

/// Opens `dir/names[0]/…/names[n-1]` (`dir` itself when `names` is empty)
/// following no symlink, with `flags | O_NOFOLLOW | O_CLOEXEC` for the last.
/// `names` are plain names (no `.`/`..`).
fn open_names(
    dir: BorrowedFd<'_>,
    names: &[&OsStr],
    flags: OFlags,
    beneath: bool,
    walk: Walk,
) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match walk {
        Walk::Openat2 => {
            let path: PathBuf = if names.is_empty() {
                PathBuf::from(".")
            } else {
                names.iter().collect()
            };
            let mut resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            if beneath {
                resolve |= ResolveFlags::BENEATH;
            }
            let mut attempts = 0;
            loop {
                match openat2(dir, &path, flags, Mode::empty(), resolve) {
                    Err(Errno::AGAIN) if attempts + 1 < OPENAT2_AGAIN_ATTEMPTS => attempts += 1,
                    other => return other,
                }
            }
        }
        Walk::Components => {
            let Some((last, dirs)) = names.split_last() else {
                return openat(dir, ".", flags, Mode::empty());
            };
            let mut held: Option<OwnedFd> = None;
            for name in dirs {
                let at = held.as_ref().map_or(dir, |fd| fd.as_fd());
                let next = openat(
                    at,
                    *name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                // With O_PATH|O_NOFOLLOW a symlink opens as itself: refuse it
                // with the errno openat2 gives for a link on the way.
                match file_type(next.as_fd())? {
                    FileType::Directory => held = Some(next),
                    FileType::Symlink => return Err(Errno::LOOP),
                    _ => return Err(Errno::NOTDIR),
                }
            }
            let at = held.as_ref().map_or(dir, |fd| fd.as_fd());
            openat(at, *last, flags, Mode::empty())
        }
    }
}

/// Opens `name` in the directory `dir` (a single component, not followed).
pub(super) fn open_in(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

pub(super) fn file_type(fd: BorrowedFd<'_>) -> Result<FileType, Errno> {
    Ok(FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode))
}

/// An error from opening `path` by handle. Resolution saw no symlink and
/// only directories on the way, so a link (`ELOOP`), an escape the kernel
/// stopped (`EXDEV`), a non-directory on the way (`ENOTDIR`) or an `EAGAIN`
/// that did not clear all mean the path changed since.
pub(super) fn open_error(op: &'static str, path: &Path, e: Errno) -> FsError {
    match e {
        Errno::LOOP | Errno::XDEV | Errno::NOTDIR | Errno::AGAIN => {
            FsError::Changed(path.to_owned())
        }
        _ => FsError::from_io(op, path, e.into()),
    }
}

/// What a non-regular object is, for error messages.
pub(super) fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "directory",
        FileType::Fifo => "named pipe (FIFO)",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        FileType::Symlink => "symbolic link",
        _ => "special file",
    }
}

/// Kernel pseudo-filesystems, by `statfs` magic number: their files are
/// views of processes (the daemon's own environment and memory among them)
/// and of the machine, writable ones being kernel knobs. Not one is ever a
/// project file. (devtmpfs reports tmpfs's number; its devices are refused
/// as non-regular files.)
const PSEUDO_FILESYSTEMS: &[(u32, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
    (0xcafe_4a11, "bpffs"),
    (0x6265_6570, "configfs"),
    (0x1cd1, "devpts"),
    (0xde5e_81e4, "efivarfs"),
    (0x6165_676c, "pstore"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x5a3c_69f0, "apparmorfs"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6e73_6673, "nsfs"),
    (0x6573_5543, "fusectl"),
    (0x1980_0202, "mqueue"),
    (0x0765_5821, "resctrl"),
    (0x6c6f_6f70, "binderfs"),
    (0x9fa1, "openpromfs"),
    (0x9fa2, "usbdevfs"),
    (0xabba_1974, "xenfs"),
    (0x5049_5045, "pipefs"),
    (0x534f_434b, "sockfs"),
    (0x0904_1934, "anon_inodefs"),
    (0x5049_4446, "pidfs"),
    (0x6264_6576, "bdevfs"),
    (0x444d_4142, "dmabuf"),
    (0x454d_444d, "devmem"),
    (0x5345_434d, "secretmem"),
];

/// The name of the pseudo-filesystem `fd` is on, if it is on one.
pub(super) fn pseudo_filesystem(fd: BorrowedFd<'_>) -> Result<Option<&'static str>, Errno> {
    // `f_type` is a signed word on most targets; its low 32 bits are the magic.
    #[allow(clippy::unnecessary_cast)]
    let magic = rustix::fs::fstatfs(fd)?.f_type as u32;
    Ok(pseudo_filesystem_named(magic))
}

fn pseudo_filesystem_named(magic: u32) -> Option<&'static str> {
    PSEUDO_FILESYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// Refuses `fd` when it is on a pseudo-filesystem.
pub(super) fn refuse_pseudo(fd: BorrowedFd<'_>, path: &ResolvedPath) -> Result<(), FsError> {
    match pseudo_filesystem(fd) {
        Ok(None) => Ok(()),
        Ok(Some(filesystem)) => {
            tracing::warn!(
                requested = %path.requested,
                resolved = %path.resolved.display(),
                filesystem,
                "refused an agent's file request on a pseudo-filesystem"
            );
            Err(FsError::PseudoFilesystem {
                requested: path.requested.clone(),
                resolved: path.resolved.clone(),
                filesystem,
            })
        }
        Err(e) => Err(FsError::from_io("inspect", &path.resolved, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_agrees_with_the_kernel_headers_rustix_ships() {
        #[allow(clippy::unnecessary_cast)]
        let proc = rustix::fs::PROC_SUPER_MAGIC as u32;
        assert_eq!(pseudo_filesystem_named(proc), Some("procfs"));
        #[allow(clippy::unnecessary_cast)]
        let nfs = rustix::fs::NFS_SUPER_MAGIC as u32;
        assert_eq!(pseudo_filesystem_named(nfs), None);
        // Regular disk and memory filesystems are not refused.
        for magic in [
            0xef53,      /* ext4 */
            0x0102_1994, /* tmpfs */
            0x794c_7630, /* overlay */
        ] {
            assert_eq!(pseudo_filesystem_named(magic), None, "{magic:#x}");
        }
    }

    #[test]
    fn procfs_is_recognised_on_a_real_handle() {
        let fd = openat(
            CWD,
            "/proc/self",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert_eq!(pseudo_filesystem(fd.as_fd()).unwrap(), Some("procfs"));
        let fd = openat(CWD, "/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        assert_eq!(pseudo_filesystem(fd.as_fd()).unwrap(), None);
    }

    /// Both ways of opening refuse a link on the way with ELOOP and a
    /// non-directory on the way with ENOTDIR, and open the same object.
    #[test]
    fn both_walks_refuse_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("d", root.join("l")).unwrap();
        let base = openat(CWD, &root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let name = |s: &'static str| OsStr::new(s);
        let mut walks = vec![Walk::Components];
        if openat2_available() {
            walks.push(Walk::Openat2);
        }
        for walk in walks {
            for beneath in [false, true] {
                let open =
                    |names: &[&OsStr], flags| open_names(base.as_fd(), names, flags, beneath, walk);
                let f = open(&[name("d"), name("f")], OFlags::RDONLY).unwrap();
                assert_eq!(file_type(f.as_fd()).unwrap(), FileType::RegularFile);
                assert_eq!(
                    open(&[name("l"), name("f")], OFlags::RDONLY).unwrap_err(),
                    Errno::LOOP,
                    "{walk:?}: a link on the way"
                );
                assert_eq!(
                    open(&[name("l")], OFlags::RDONLY).unwrap_err(),
                    Errno::LOOP,
                    "{walk:?}: a link at the end"
                );
                let link = open(&[name("l")], OFlags::PATH).unwrap();
                assert_eq!(
                    file_type(link.as_fd()).unwrap(),
                    FileType::Symlink,
                    "{walk:?}"
                );
                assert_eq!(
                    open(&[name("d"), name("f"), name("x")], OFlags::RDONLY).unwrap_err(),
                    Errno::NOTDIR,
                    "{walk:?}: a file on the way"
                );
                let itself = open(&[], OFlags::PATH | OFlags::DIRECTORY).unwrap();
                assert_eq!(file_type(itself.as_fd()).unwrap(), FileType::Directory);
            }
        }
    }
}
