//! `fs/write_text_file`, blocking part: an atomic replace that keeps mode
//! bits and symlinks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{describe_kind, require_absolute, FsError};

/// Links followed before giving up, as the kernel's own limit (`ELOOP`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Tries with fresh random names before an exclusive create is declared failed.
const TEMP_NAME_ATTEMPTS: usize = 8;

pub(super) fn write_text_file(path: &Path, content: &[u8]) -> Result<(), FsError> {
    require_absolute(path)?;
    let target = resolve_symlinks(path)?;
    let existing = match fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_file() => Some(meta),
        Ok(meta) => {
            return Err(FsError::NotRegularFile {
                path: target,
                kind: describe_kind(meta.file_type()),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(FsError::from_io("inspect", &target, e)),
    };
    let (Some(dir), Some(_)) = (target.parent(), target.file_name()) else {
        return Err(FsError::InvalidParam {
            param: "path",
            reason: format!("{} does not name a file", target.display()),
        });
    };
    if existing.is_none() {
        fs::create_dir_all(dir).map_err(|e| FsError::from_io("create the directory", dir, e))?;
    }

    let (temp_path, file) = create_temp(dir, existing.as_ref())?;
    let written = fill_temp(file, content, existing.as_ref())
        .and_then(|()| fs::rename(&temp_path, &target).map_err(|e| ("replace", e)));
    if let Err((op, e)) = written {
        let _ = fs::remove_file(&temp_path);
        return Err(FsError::from_io(op, &target, e));
    }
    // Make the rename itself durable; a failure here loses nothing already visible.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Follows `path` through symlinks (relative ones resolve against the
/// link's directory) to the file a write must replace, which may not exist.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, FsError> {
    let mut current = path.to_owned();
    for _ in 0..MAX_SYMLINK_HOPS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)
                    .map_err(|e| FsError::from_io("read the link", &current, e))?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(FsError::from_io("inspect", &current, e)),
        }
    }
    Err(FsError::SymlinkLoop(path.to_owned()))
}

/// Creates a new, exclusively owned temp file in `dir`, born with the
/// target's mode so its content is never readable more widely than the
/// target's.
fn create_temp(dir: &Path, existing: Option<&fs::Metadata>) -> Result<(PathBuf, File), FsError> {
    let mode = existing.map_or(0o666, |meta| meta.permissions().mode() & 0o7777);
    let mut last_error = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp_path = dir.join(format!(".qserve-write-{:016x}.tmp", rand::random::<u64>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp_path)
        {
            Ok(file) => return Ok((temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(FsError::from_io("create a temporary file in", dir, e)),
        }
    }
    let e = last_error.expect("at least one attempt");
    Err(FsError::from_io("create a temporary file in", dir, e))
}

fn fill_temp(
    mut file: File,
    content: &[u8],
    existing: Option<&fs::Metadata>,
) -> Result<(), (&'static str, io::Error)> {
    file.write_all(content).map_err(|e| ("write", e))?;
    if let Some(meta) = existing {
        // Keep the owner when we may (as root); otherwise the file is ours.
        // Before the chmod: a chown may clear the set-id bits.
        let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        // The umask may have cleared bits at creation; set them exactly.
        file.set_permissions(fs::Permissions::from_mode(
            meta.permissions().mode() & 0o7777,
        ))
        .map_err(|e| ("set the mode of", e))?;
    }
    file.sync_all().map_err(|e| ("sync", e))
}
