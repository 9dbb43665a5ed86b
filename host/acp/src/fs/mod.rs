//! The agent's file-system requests (`fs/read_text_file`, `fs/write_text_file`).
//!
//! Two steps, so that the policy decides about the object the I/O touches:
//!
//! 1. [`resolve`] turns the path the agent sent into a [`ResolvedPath`]: the
//!    canonical absolute path with `..` and every symlink resolved (for a
//!    missing file, the deepest existing ancestor plus the remaining names),
//!    whether it is inside the workspace, whether it exists. The policy is
//!    asked about *that* path, never the raw string (a raw-string policy
//!    allows `ws/link` when `link -> /etc`).
//! 2. [`ReadTextFileParams::execute_at`] / [`WriteTextFileParams::execute_at`]
//!    do the I/O on exactly the resolved object: the path is opened with
//!    `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (plus
//!    `RESOLVE_BENEATH` from a handle on the workspace when it is inside),
//!    or, on kernels without `openat2`, walked one component at a time with
//!    `O_NOFOLLOW` (see `open.rs`). A symlink that appeared since the
//!    resolution makes the request fail ([`FsError::Changed`]) instead of
//!    being followed to where the policy never looked.
//!
//! Whatever the policy says, the daemon never reads or writes a file on a
//! pseudo-filesystem (procfs, sysfs, …: [`FsError::PseudoFilesystem`]), where
//! `/proc/self/environ` would hand the agent the daemon's own environment,
//! its auth token included; nor anything but a regular file.
//!
//! Rules (PROTOCOL.md, "Agent file-system requests"):
//! - ACP paths are absolute; a relative one is taken relative to the workspace;
//! - reads: `line` is 1-based (`0` is read as `1`, as `qwen serve` does, so an
//!   agent counting from 0 for "the start" still gets the start); `limit`
//!   must be at least 1; only regular files (a FIFO, device, socket or
//!   directory is refused *before it is opened for reading*: opening a FIFO
//!   blocks, opening a device may act); files over [`MAX_READ_BYTES`] are
//!   refused; a partial read streams through the file and keeps only the
//!   lines asked for;
//! - writes are atomic (a temp file with a random name created exclusively
//!   in the target's directory, written, fsynced, renamed over the target),
//!   keep the target's mode bits, and go *through* symlinks — dangling ones
//!   too — so the link stays a link (the resolved path is the link's target).
//!   The missing parent directories recorded at resolution are created, and
//!   only those.
//!
//! The blocking work runs on tokio's blocking pool.

mod open;
mod read;
mod resolve;
mod write;

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::methods::{ReadTextFileParams, WriteTextFileParams};
use crate::rpc::RpcError;

pub use open::openat2_available;
#[cfg(feature = "fuzzing")]
pub(crate) use read::read_lines;
pub use resolve::{resolve, ResolvedPath};

/// Files larger than this are refused for reading, even partially.
pub const MAX_READ_BYTES: u64 = 100 * 1024 * 1024;

/// JSON-RPC code for "the daemon refuses this access": the same code the
/// bridge answers a policy refusal with. A pseudo-filesystem or a path that
/// changed under the request is refused whatever the policy says; the agent
/// sees a refusal either way, the message and `data.reason` tell which.
/// Distinct from [`RpcError::RESOURCE_NOT_FOUND`] (-32002, a missing file).
pub const ACCESS_REFUSED: i64 = -32001;

/// Why a file request failed. Converts into the JSON-RPC error the agent
/// gets with [`FsError::to_rpc_error`] / `RpcError::from`.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("the path must be absolute: {}", .0.display())]
    NotAbsolute(PathBuf),
    #[error("invalid `{param}`: {reason}")]
    InvalidParam { param: &'static str, reason: String },
    #[error("file not found: {}", .0.display())]
    NotFound(PathBuf),
    #[error("{} is a {kind}, not a regular file", path.display())]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error("not a directory: {}", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is {size} bytes, over the {max}-byte limit for reading", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("permission denied: {}", .0.display())]
    PermissionDenied(PathBuf),
    #[error("too many levels of symbolic links: {}", .0.display())]
    SymlinkLoop(PathBuf),
    /// The object is on a kernel pseudo-filesystem (procfs, sysfs, …). Its
    /// "files" are views of the daemon's own process and of the machine,
    /// never part of a project; refused before any byte is read or written.
    #[error("refused: {requested} is on {filesystem}, which the daemon never opens for an agent")]
    PseudoFilesystem {
        /// As the agent sent it.
        requested: String,
        /// What it resolved to (e.g. `/proc/1234/environ`).
        resolved: PathBuf,
        filesystem: &'static str,
    },
    /// Something on the resolved path is no longer what resolution saw: a
    /// symlink (or another object) took the place of a component. Following
    /// it would reach an object the policy was never asked about.
    #[error(
        "refused: {} changed after it was resolved (a symbolic link or another object took the place of part of it); the daemon does not follow it",
        .0.display()
    )]
    Changed(PathBuf),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// -32602 for requests that can never succeed as asked, -32002
    /// (ACP "resource not found") for a missing file, [`ACCESS_REFUSED`]
    /// (-32001) for what the daemon refuses whatever the policy says,
    /// -32603 otherwise.
    pub fn to_rpc_error(&self) -> RpcError {
        let message = self.to_string();
        match self {
            FsError::NotAbsolute(_)
            | FsError::InvalidParam { .. }
            | FsError::NotRegularFile { .. }
            | FsError::NotADirectory(_)
            | FsError::TooLarge { .. } => RpcError::invalid_params(message),
            FsError::NotFound(path) => {
                RpcError::resource_not_found(message).with_data(json!({ "path": path }))
            }
            FsError::PseudoFilesystem {
                requested,
                resolved,
                filesystem,
            } => RpcError::new(ACCESS_REFUSED, message).with_data(json!({
                "reason": "pseudo-filesystem",
                "path": requested,
                "resolved": resolved,
                "filesystem": filesystem,
            })),
            FsError::Changed(path) => RpcError::new(ACCESS_REFUSED, message)
                .with_data(json!({ "reason": "changed", "path": path })),
            FsError::PermissionDenied(_) | FsError::SymlinkLoop(_) | FsError::Io { .. } => {
                RpcError::internal(message)
            }
        }
    }

    /// Maps an I/O error on `path` to the most telling variant.
    fn from_io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound => FsError::NotFound(path),
            io::ErrorKind::PermissionDenied => FsError::PermissionDenied(path),
            _ if source.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
                FsError::SymlinkLoop(path)
            }
            _ if source.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32) => {
                FsError::NotADirectory(path)
            }
            _ => FsError::Io { op, path, source },
        }
    }
}

impl From<FsError> for RpcError {
    fn from(e: FsError) -> Self {
        e.to_rpc_error()
    }
}

impl ReadTextFileParams {
    /// Reads the file `path` resolved to (see [`resolve`]); the result is
    /// `{"content": …}`. Call only after the policy allowed the access to
    /// `path.resolved`. `self.path` is not looked at again: the I/O is done
    /// on the resolved object, or fails if it changed.
    pub async fn execute_at(&self, path: &ResolvedPath) -> Result<Value, RpcError> {
        let content = read_text_file_at(path, self.line, self.limit).await?;
        Ok(json!({ "content": content }))
    }
}

impl WriteTextFileParams {
    /// Writes the file `path` resolved to (see [`resolve`]); the result is
    /// `{}`. Call only after the policy allowed the access to
    /// `path.resolved`. (The content is copied once to hand it to the
    /// blocking pool.)
    pub async fn execute_at(&self, path: &ResolvedPath) -> Result<Value, RpcError> {
        write_text_file_at(path, self.content.clone()).await?;
        Ok(json!({}))
    }
}

/// Reads the text file `path` resolved to, whole or from `line` (1-based)
/// for `limit` lines. Invalid UTF-8 is replaced with U+FFFD.
///
/// A partial read returns the selected lines joined by `\n` (the newline
/// after the last selected line is not included, except when the selection
/// runs to the end of a file that ends with a newline): exactly what
/// `content.split('\n').slice(line - 1, line - 1 + limit).join('\n')` gives,
/// the contract of `qwen serve`.
pub async fn read_text_file_at(
    path: &ResolvedPath,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, FsError> {
    let path = path.clone();
    run_blocking(move || read::read_text_file(&path, line, limit)).await
}

/// Replaces the content of the file `path` resolved to, atomically; see
/// the module docs for the rules.
pub async fn write_text_file_at(path: &ResolvedPath, content: String) -> Result<(), FsError> {
    let path = path.clone();
    run_blocking(move || write::write_text_file(&path, content.as_bytes())).await
}

/// [`read_text_file_at`] for an absolute path without a workspace: resolved
/// from `/`, then read with the same guarantees (no symlink swapped in
/// after the resolution is followed, no pseudo-filesystem). For callers
/// that have no policy to ask in between.
pub async fn read_text_file(
    path: &Path,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, FsError> {
    let path = path.to_owned();
    run_blocking(move || {
        let resolved = resolve_absolute(&path)?;
        read::read_text_file(&resolved, line, limit)
    })
    .await
}

/// [`write_text_file_at`] for an absolute path without a workspace; see
/// [`read_text_file`].
pub async fn write_text_file(path: &Path, content: String) -> Result<(), FsError> {
    let path = path.to_owned();
    run_blocking(move || {
        let resolved = resolve_absolute(&path)?;
        write::write_text_file(&resolved, content.as_bytes())
    })
    .await
}

fn resolve_absolute(path: &Path) -> Result<ResolvedPath, FsError> {
    if !path.is_absolute() {
        return Err(FsError::NotAbsolute(path.to_owned()));
    }
    resolve(Path::new("/"), path)
}

async fn run_blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    match tokio::task::spawn_blocking(job).await {
        Ok(result) => result,
        Err(e) => Err(FsError::Io {
            op: "run the file operation for",
            path: PathBuf::new(),
            source: io::Error::other(e.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests;
