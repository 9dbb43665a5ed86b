//! `fs/write_text_file`, blocking part: an atomic replace that keeps mode
//! bits, done entirely through a handle on the target's directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::open::{describe, file_type, open_error, open_in, refuse_pseudo, Base};
use super::{FsError, ResolvedPath};

/// Tries with fresh random names before an exclusive create is declared failed.
const TEMP_NAME_ATTEMPTS: usize = 8;

pub(super) fn write_text_file(at: &ResolvedPath, content: &[u8]) -> Result<(), FsError> {
    let path = at.resolved.as_path();
    let base = Base::of(at)?;
    let Some((&name, _)) = base.names.split_last() else {
        // The workspace itself, or `/`.
        return Err(FsError::NotRegularFile {
            path: path.to_owned(),
            kind: "directory",
        });
    };
    let all = base.names.len();
    // The names that were directories at resolution, then the ones a write
    // may create (recorded at resolution: nothing else is ever created).
    let existing_dirs = all - at.missing.clamp(1, all);
    let mut dir = base
        .open(existing_dirs, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| open_error("open", &ancestor(path, all, existing_dirs), e))?;
    for (i, &missing) in base.names[existing_dirs..all - 1].iter().enumerate() {
        let dir_path = ancestor(path, all, existing_dirs + i + 1);
        dir = make_dir(&dir, missing, &dir_path)?;
    }
    refuse_pseudo(dir.as_fd(), at)?;

    let existing = match open_in(dir.as_fd(), name, OFlags::PATH) {
        Ok(target) => {
            refuse_pseudo(target.as_fd(), at)?;
            let stat = rustix::fs::fstat(&target)
                .map_err(|e| FsError::from_io("inspect", path, e.into()))?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Some(stat),
                // Resolution ended on a file: a link now means a swap. (The
                // rename below would replace the link, not follow it, but
                // the request is about an object that is no longer there.)
                FileType::Symlink => return Err(FsError::Changed(path.to_owned())),
                other => {
                    return Err(FsError::NotRegularFile {
                        path: path.to_owned(),
                        kind: describe(other),
                    })
                }
            }
        }
        Err(Errno::NOENT) => None,
        Err(e) => return Err(open_error("inspect", path, e)),
    };

    let (temp_name, file) = create_temp(&dir, existing.as_ref(), path)?;
    let written = fill_temp(file, content, existing.as_ref()).and_then(|()| {
        rustix::fs::renameat(&dir, &temp_name, &dir, name).map_err(|e| ("replace", e.into()))
    });
    if let Err((op, e)) = written {
        let _ = rustix::fs::unlinkat(&dir, &temp_name, AtFlags::empty());
        return Err(FsError::from_io(op, path, e));
    }
    // Make the rename itself durable; a failure here loses nothing already visible.
    if let Ok(d) = open_in(
        dir.as_fd(),
        OsStr::new("."),
        OFlags::RDONLY | OFlags::DIRECTORY,
    ) {
        let _ = rustix::fs::fsync(d);
    }
    Ok(())
}

/// `path` with only its first `keep` names below the base: `path` has
/// `all` names below it.
fn ancestor(path: &Path, all: usize, keep: usize) -> PathBuf {
    path.ancestors().nth(all - keep).unwrap_or(path).to_owned()
}

/// Creates the directory `name` in `dir` (or finds it, made by a concurrent
/// write) and opens it, refusing a link that took its place.
fn make_dir(dir: &OwnedFd, name: &OsStr, dir_path: &Path) -> Result<OwnedFd, FsError> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(FsError::from_io("create the directory", dir_path, e.into())),
    }
    let next =
        open_in(dir.as_fd(), name, OFlags::PATH).map_err(|e| open_error("open", dir_path, e))?;
    match file_type(next.as_fd()).map_err(|e| FsError::from_io("inspect", dir_path, e.into()))? {
        FileType::Directory => Ok(next),
        FileType::Symlink => Err(FsError::Changed(dir_path.to_owned())),
        _ => Err(FsError::NotADirectory(dir_path.to_owned())),
    }
}

/// Creates a new, exclusively owned temp file in `dir`, born with the
/// target's mode so its content is never readable more widely than the
/// target's.
fn create_temp(
    dir: &OwnedFd,
    existing: Option<&Stat>,
    path: &Path,
) -> Result<(OsString, File), FsError> {
    let mode = existing.map_or(0o666, |stat| stat.st_mode & 0o7777);
    let mut last_error = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp_name = OsString::from(format!(".qserve-write-{:016x}.tmp", rand::random::<u64>()));
        match rustix::fs::openat(
            dir,
            &temp_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => return Ok((temp_name, File::from(fd))),
            Err(Errno::EXIST) => last_error = Some(Errno::EXIST),
            Err(e) => return Err(temp_error(path, e)),
        }
    }
    Err(temp_error(path, last_error.unwrap_or(Errno::EXIST)))
}

fn temp_error(path: &Path, e: Errno) -> FsError {
    let dir = path.parent().unwrap_or(path);
    FsError::from_io("create a temporary file in", dir, e.into())
}

fn fill_temp(
    mut file: File,
    content: &[u8],
    existing: Option<&Stat>,
) -> Result<(), (&'static str, io::Error)> {
    file.write_all(content).map_err(|e| ("write", e))?;
    if let Some(stat) = existing {
        // Keep the owner when we may (as root); otherwise the file is ours.
        // Before the chmod: a chown may clear the set-id bits.
        let _ = std::os::unix::fs::fchown(&file, Some(stat.st_uid), Some(stat.st_gid));
        // The umask may have cleared bits at creation; set them exactly.
        file.set_permissions(std::fs::Permissions::from_mode(stat.st_mode & 0o7777))
            .map_err(|e| ("set the mode of", e))?;
    }
    file.sync_all().map_err(|e| ("sync", e))
}
