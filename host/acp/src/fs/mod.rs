//! The agent's file-system requests (`fs/read_text_file`, `fs/write_text_file`).
//!
//! Rules (PROTOCOL.md, "Agent file-system requests"):
//! - absolute paths only;
//! - reads: `line` is 1-based (`0` is read as `1`, as `qwen serve` does, so an
//!   agent counting from 0 for "the start" still gets the start); `limit`
//!   must be at least 1; only regular files (a FIFO, device, socket or
//!   directory is refused *without opening it*, since opening a FIFO for
//!   reading blocks); files over [`MAX_READ_BYTES`] are refused; a partial
//!   read streams through the file and keeps only the lines asked for;
//! - writes are atomic (a temp file with a random name created exclusively
//!   in the target's directory, written, fsynced, renamed over the target),
//!   keep the target's mode bits, and go *through* symlinks — dangling ones
//!   too — so the link stays a link. Missing parent directories are created.
//!
//! The blocking work runs on tokio's blocking pool.

mod read;
mod write;

use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::rpc::RpcError;

/// Files larger than this are refused for reading, even partially.
pub const MAX_READ_BYTES: u64 = 100 * 1024 * 1024;

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
    #[error("{} is {size} bytes, over the {max}-byte limit for reading", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("permission denied: {}", .0.display())]
    PermissionDenied(PathBuf),
    #[error("too many levels of symbolic links: {}", .0.display())]
    SymlinkLoop(PathBuf),
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
    /// (ACP "resource not found") for a missing file, -32603 otherwise.
    pub fn to_rpc_error(&self) -> RpcError {
        let message = self.to_string();
        match self {
            FsError::NotAbsolute(_)
            | FsError::InvalidParam { .. }
            | FsError::NotRegularFile { .. }
            | FsError::TooLarge { .. } => RpcError::invalid_params(message),
            FsError::NotFound(path) => {
                RpcError::resource_not_found(message).with_data(json!({ "path": path }))
            }
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
            _ => FsError::Io { op, path, source },
        }
    }
}

impl From<FsError> for RpcError {
    fn from(e: FsError) -> Self {
        e.to_rpc_error()
    }
}

/// Reads a text file, whole or from `line` (1-based) for `limit` lines.
/// Invalid UTF-8 is replaced with U+FFFD.
///
/// A partial read returns the selected lines joined by `\n` (the newline
/// after the last selected line is not included, except when the selection
/// runs to the end of a file that ends with a newline): exactly what
/// `content.split('\n').slice(line - 1, line - 1 + limit).join('\n')` gives,
/// the contract of `qwen serve`.
pub async fn read_text_file(
    path: &Path,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, FsError> {
    let path = path.to_owned();
    run_blocking(move || read::read_text_file(&path, line, limit)).await
}

/// Replaces the file's content atomically; see the module docs for the rules.
pub async fn write_text_file(path: &Path, content: String) -> Result<(), FsError> {
    let path = path.to_owned();
    run_blocking(move || write::write_text_file(&path, content.as_bytes())).await
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

fn require_absolute(path: &Path) -> Result<(), FsError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(FsError::NotAbsolute(path.to_owned()))
    }
}

/// What a non-regular file is, for error messages.
fn describe_kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "named pipe (FIFO)"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

fn require_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), FsError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(FsError::NotRegularFile {
            path: path.to_owned(),
            kind: describe_kind(meta.file_type()),
        })
    }
}

#[cfg(test)]
mod tests;
