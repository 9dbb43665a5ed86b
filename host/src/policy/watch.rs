//! `--watch-policy`: reload the policy when its files change.
//!
//! Why polling by content, not inotify: a Kubernetes ConfigMap volume is
//! updated by writing a new hidden directory and swapping the `..data`
//! symlink it is reached through; the file the daemon was given is a
//! symlink whose own inode never changes. Reading the path every couple of
//! seconds and comparing a hash of what it reads sees that update, an
//! editor's rename-over and an in-place write alike, on any filesystem.
//!
//! A change reloads exactly as SIGHUP does (`--component` and
//! `--policy-config` as given at start-up, pin check, `init`, one swap,
//! `policy_changed`); a file that does not load leaves the old policy
//! active and says why in the log. A file that is missing or unreadable for
//! a moment (mid-swap) is waited out, not reloaded.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ServeArgs;

/// How often the files are read.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// What a file held when last read: a hash of its bytes, or why it could
/// not be read.
type Fingerprint = Result<u64, String>;

/// The policy's files and what they held when the active policy was loaded.
#[derive(Debug)]
pub struct PolicyFiles {
    paths: Vec<PathBuf>,
    loaded: Vec<Fingerprint>,
    /// The unreadable state last warned about (warned once, not every poll).
    warned: Option<Vec<Fingerprint>>,
}

impl PolicyFiles {
    /// The files `--component` (unless `builtin:`) and `--policy-config`
    /// name, read now: call it before the start-up policy is loaded, so a
    /// change in between is reloaded at the first poll.
    pub fn baseline(args: &ServeArgs) -> Self {
        let mut paths = Vec::new();
        if !args.component.starts_with("builtin:") {
            paths.push(PathBuf::from(&args.component));
        }
        paths.extend(args.policy_config.iter().cloned());
        Self::of(paths)
    }

    fn of(paths: Vec<PathBuf>) -> Self {
        let loaded = paths.iter().map(|p| fingerprint(p)).collect();
        PolicyFiles {
            paths,
            loaded,
            warned: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Read the files again: `true` when every one is readable and at least
    /// one differs from what the last reload (or the start) saw.
    pub fn poll(&mut self) -> bool {
        let now: Vec<Fingerprint> = self.paths.iter().map(|p| fingerprint(p)).collect();
        if now.iter().any(Result::is_err) {
            if self.warned.as_ref() != Some(&now) {
                for (path, why) in self.paths.iter().zip(&now) {
                    if let Err(why) = why {
                        tracing::warn!(
                            "--watch-policy: cannot read {}: {why}; the active policy stays",
                            path.display()
                        );
                    }
                }
                self.warned = Some(now);
            }
            return false;
        }
        self.warned = None;
        if now == self.loaded {
            return false;
        }
        self.loaded = now;
        true
    }
}

fn fingerprint(path: &Path) -> Fingerprint {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    hasher.write_usize(bytes.len());
    Ok(hasher.finish())
}

/// Poll on a thread of its own (reads may block; a component can be
/// megabytes) and reload through the bridge on the runtime.
pub fn spawn(mut files: PolicyFiles, bridge: crate::bridge::Bridge) {
    if files.is_empty() {
        tracing::warn!(
            "--watch-policy: nothing to watch (the policy is builtin and has no --policy-config)"
        );
        return;
    }
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let watching: Vec<String> = files
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(files = ?watching, "--watch-policy: reloading the policy when these change");
    let started = std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || loop {
            std::thread::sleep(INTERVAL);
            if files.poll() && changed.blocking_send(()).is_err() {
                return; // the daemon is stopping
            }
        });
    if let Err(err) = started {
        tracing::error!("--watch-policy: cannot start its thread: {err}");
        return;
    }
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            tracing::info!("a policy file changed: reloading the policy");
            bridge.on_policy_files_changed().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConfigMap volume: `NAME -> ..data/NAME`, `..data -> ..VERSION`.
    fn configmap(dir: &Path, version: &str, content: &str) {
        let data = dir.join(format!("..{version}"));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("policy.toml"), content).unwrap();
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        let file = dir.join("policy.toml");
        if std::fs::symlink_metadata(&file).is_err() {
            std::os::unix::fs::symlink("..data/policy.toml", &file).unwrap();
        }
    }

    #[test]
    fn a_configmap_symlink_swap_is_one_change_and_a_missing_file_is_waited_out() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path(), "v1", "a = 1\n");
        let path = dir.path().join("policy.toml");
        let mut files = PolicyFiles::of(vec![path.clone()]);
        assert!(!files.poll(), "nothing changed yet");

        configmap(dir.path(), "v2", "a = 2\n");
        assert!(files.poll(), "the swapped ..data is a change");
        assert!(!files.poll(), "and only one");

        // Mid-swap the link may point nowhere: no reload, then the new file is one.
        std::fs::remove_file(dir.path().join("..data")).unwrap();
        assert!(!files.poll());
        configmap(dir.path(), "v3", "a = 3\n");
        assert!(files.poll());

        // Back to the bytes already loaded: nothing to do.
        configmap(dir.path(), "v4", "a = 3\n");
        assert!(!files.poll());
    }

    #[test]
    fn builtin_components_are_not_files() {
        let files = PolicyFiles::of(Vec::new());
        assert!(files.is_empty());
    }
}
