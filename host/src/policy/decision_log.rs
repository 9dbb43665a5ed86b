//! Where decisions are written down: `--decision-log FILE`, one JSON object
//! per line, appended.
//!
//! A decision must never wait for a disk. Records go through a bounded queue
//! to one writer thread; when the queue is full (the disk is stuck) the
//! record is dropped and counted, and the writer says how many it lost once
//! it can write again. A write error is logged loudly (once per kind of
//! failure, then counted) and never reaches the decision. `reopen` (SIGHUP)
//! closes and reopens the file by name, for logrotate.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Records waiting for the writer; beyond this they are dropped (and counted).
const QUEUE_DEPTH: usize = 16 * 1024;

enum Job {
    Record(Vec<u8>),
    Reopen,
    /// Answer once everything queued before it is written (tests, shutdown).
    Flush(std::sync::mpsc::Sender<()>),
}

/// Handle to the decision log. Cheap to clone; a no-op when no log is configured.
#[derive(Clone, Default)]
pub struct DecisionLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    jobs: SyncSender<Job>,
    dropped: AtomicU64,
}

impl DecisionLog {
    /// No decision log (`--decision-log` not given).
    pub fn disabled() -> Self {
        DecisionLog { inner: None }
    }

    /// Open (create, append) `path` and start the writer thread. An error
    /// here is an error at start-up: the operator asked for a log.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = open_append(path)?;
        let (jobs, queue) = sync_channel(QUEUE_DEPTH);
        let inner = Arc::new(Inner {
            jobs,
            dropped: AtomicU64::new(0),
        });
        let writer = Writer {
            path: path.to_owned(),
            file: Some(file),
            failing: false,
            lost: 0,
            shared: Arc::downgrade(&inner),
        };
        std::thread::Builder::new()
            .name("qserve-decision-log".into())
            .spawn(move || writer.run(queue))?;
        Ok(DecisionLog { inner: Some(inner) })
    }

    /// Queue one record (any serializable value, one line). Never blocks.
    pub fn append(&self, record: &serde_json::Value) {
        let Some(inner) = &self.inner else { return };
        let mut line = record.to_string().into_bytes();
        line.push(b'\n');
        match inner.jobs.try_send(Job::Record(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if inner.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(
                        "the decision log is not keeping up (queue of {QUEUE_DEPTH} full): \
                         records are being dropped; decisions go on"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Close and reopen the file by name (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(inner) = &self.inner {
            // Blocking send: a reopen must not be lost, and the queue drains.
            let _ = inner.jobs.send(Job::Reopen);
        }
    }

    /// Wait until every record queued so far is written (or failed).
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let (done, wait) = std::sync::mpsc::channel();
            if inner.jobs.send(Job::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    #[cfg(test)]
    fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }
}

struct Writer {
    path: PathBuf,
    file: Option<File>,
    /// Currently failing: the first failure was logged, later ones are counted.
    failing: bool,
    /// Records lost to write failures since the last success.
    lost: u64,
    shared: std::sync::Weak<Inner>,
}

impl Writer {
    fn run(mut self, queue: Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            match job {
                Job::Record(line) => self.write(&line),
                Job::Reopen => self.reopen(),
                Job::Flush(done) => {
                    if let Some(file) = &mut self.file {
                        let _ = file.flush();
                    }
                    let _ = done.send(());
                }
            }
        }
    }

    fn write(&mut self, line: &[u8]) {
        if self.file.is_none() {
            self.reopen();
        }
        let result = match &mut self.file {
            Some(file) => file.write_all(line),
            None => Err(std::io::Error::other("the file is not open")),
        };
        match result {
            Ok(()) => {
                let dropped = self
                    .shared
                    .upgrade()
                    .map_or(0, |inner| inner.dropped.swap(0, Ordering::Relaxed));
                if self.failing || dropped > 0 {
                    tracing::warn!(
                        path = %self.path.display(),
                        lost_to_errors = self.lost,
                        dropped_while_full = dropped,
                        "the decision log is writing again"
                    );
                    self.failing = false;
                    self.lost = 0;
                }
            }
            Err(err) => {
                self.lost += 1;
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        path = %self.path.display(),
                        "cannot write the decision log: {err}; records are lost until it recovers (decisions go on)"
                    );
                }
                // A broken handle (e.g. the file system went away) gets a
                // fresh open on the next record.
                self.file = None;
            }
        }
    }

    fn reopen(&mut self) {
        match open_append(&self.path) {
            Ok(file) => {
                self.file = Some(file);
                tracing::info!(path = %self.path.display(), "decision log reopened");
            }
            Err(err) => {
                self.file = None;
                tracing::error!(path = %self.path.display(), "cannot reopen the decision log: {err}");
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // 0600: decisions name workspaces, commands and paths.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn records_are_appended_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let log = DecisionLog::open(&path).unwrap();
        for n in 0..100 {
            log.append(&json!({"n": n, "text": "line\nbreak"}));
        }
        log.flush();
        let records = lines(&path);
        assert_eq!(records.len(), 101, "appended, nothing overwritten");
        assert_eq!(records[0]["earlier"], true);
        assert_eq!(records[100]["n"], 99);
        assert_eq!(records[1]["text"], "line\nbreak");
    }

    #[test]
    fn reopen_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let rotated = dir.path().join("decisions.jsonl.1");
        let log = DecisionLog::open(&path).unwrap();
        log.append(&json!({"before": 1}));
        log.flush();
        std::fs::rename(&path, &rotated).unwrap();
        log.append(&json!({"still-old-handle": 1}));
        log.reopen();
        log.append(&json!({"after": 1}));
        log.flush();
        assert_eq!(lines(&rotated).len(), 2);
        assert_eq!(lines(&path), vec![json!({"after": 1})]);
    }

    #[test]
    fn a_failing_disk_never_blocks_an_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = DecisionLog::open(&path).unwrap();
        // The file's directory disappears: every reopen fails from now on.
        std::fs::remove_file(&path).unwrap();
        drop(dir);
        log.reopen();
        for n in 0..(QUEUE_DEPTH * 2) {
            log.append(&json!({ "n": n }));
        }
        log.flush();
    }

    #[test]
    fn a_disabled_log_accepts_everything() {
        let log = DecisionLog::disabled();
        log.append(&json!({}));
        log.reopen();
        log.flush();
        assert!(!log.is_enabled());
    }
}
