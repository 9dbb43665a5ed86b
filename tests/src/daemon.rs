//! Runs the real `qserve-host` binary for a test: on 127.0.0.1 and a port the kernel picks,
//! with its output captured, and gone — with every process it started — when the value drops.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;

use crate::binaries::qserve_host_path;
use crate::process_group::{descendants, kill_group_and_wait, signal_group};
use crate::real_agent::RealAgentEnv;
use crate::sse::SseStream;

/// How to start a daemon. `--port 0 --hostname HOST` are always passed first; `args` follow.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    /// Variables to unset in the daemon (and so its agents). Inherited `QSERVE_*` variables
    /// are always unset unless `envs` sets them, so a developer's shell cannot change a test.
    pub env_remove: Vec<String>,
    pub hostname: String,
    /// Bearer token: passed as `QSERVE_TOKEN` (not on argv) and sent by the request helpers.
    pub token: Option<String>,
    pub startup_timeout: Duration,
    /// The binary; `None` = this checkout's fresh build ([`qserve_host_path`]).
    pub binary: Option<PathBuf>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            args: Vec::new(),
            envs: Vec::new(),
            env_remove: Vec::new(),
            hostname: "127.0.0.1".to_string(),
            token: None,
            startup_timeout: Duration::from_secs(30),
            binary: None,
        }
    }
}

impl DaemonOptions {
    /// A daemon whose agent is `agent_command_line` (split like a shell would).
    pub fn with_agent(agent_command_line: impl Into<String>) -> DaemonOptions {
        DaemonOptions {
            args: vec!["--agent".into(), agent_command_line.into()],
            ..DaemonOptions::default()
        }
    }

    /// A daemon that runs the real qwen agent with `agent`'s private environment. qwen's cold
    /// start to `initialize` takes 4–6 s on a busy 2-core machine, close to the daemon's 10 s
    /// default, so the init timeout is raised.
    pub fn with_real_agent(agent: &RealAgentEnv) -> DaemonOptions {
        let mut options = DaemonOptions::with_agent(agent.agent_command_line());
        options.args.extend(["--init-timeout".into(), "60".into()]);
        options.envs = agent.envs().to_vec();
        options.env_remove = agent.removed_envs().to_vec();
        options
    }
}

/// Everything the daemon printed (stdout and stderr interleaved by arrival).
#[derive(Default)]
struct CapturedLog {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl CapturedLog {
    fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        self.grew.notify_all();
    }

    /// Waits until a line satisfies `find` (returning what it found) or the timeout ends.
    fn wait_for<T>(&self, timeout: Duration, find: impl Fn(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(found) = lines.iter().find_map(|line| find(line)) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // Short waits so that a daemon that died is noticed by the caller's loop too.
            let wait = left.min(Duration::from_millis(100));
            lines = self
                .grew
                .wait_timeout(lines, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if Instant::now() >= deadline {
                return lines.iter().find_map(|line| find(line));
            }
        }
    }
}

/// A running qserve-host.
pub struct Daemon {
    child: Child,
    base_url: String,
    log: Arc<CapturedLog>,
    token: Option<String>,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts the daemon and waits for its `listening on http://HOST:PORT` line. Panics with
    /// the captured log when it exits or stays silent for `startup_timeout`.
    pub async fn start(options: DaemonOptions) -> Daemon {
        match tokio::task::spawn_blocking(move || Daemon::start_blocking(options)).await {
            Ok(daemon) => daemon,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("starting the daemon: {error}"),
        }
    }

    /// [`start`](Self::start) for tests without a runtime.
    pub fn start_blocking(options: DaemonOptions) -> Daemon {
        let binary = options.binary.clone().unwrap_or_else(qserve_host_path);
        let mut command = Command::new(&binary);
        command
            .args(["--port", "0", "--hostname", &options.hostname])
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        for (name, _) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("QSERVE_") && !options.envs.iter().any(|(set, _)| set == name) {
                command.env_remove(name);
            }
        }
        for name in &options.env_remove {
            command.env_remove(name);
        }
        // Compiling a component in a debug build takes seconds: every daemon
        // of a test run shares one cache of compiled components (unless the
        // test sets its own).
        command.env("QSERVE_CACHE_DIR", shared_component_cache());
        command.envs(options.envs.iter().map(|(name, value)| (name, value)));
        if let Some(token) = &options.token {
            command.env("QSERVE_TOKEN", token);
        }
        let mut child = spawn_retrying_busy(&mut command)
            .unwrap_or_else(|error| panic!("spawning {}: {error}", binary.display()));

        let log = Arc::new(CapturedLog::default());
        capture_lines(
            child.stdout.take().expect("stdout is piped"),
            Arc::clone(&log),
        );
        capture_lines(
            child.stderr.take().expect("stderr is piped"),
            Arc::clone(&log),
        );

        let deadline = Instant::now() + options.startup_timeout;
        let base_url = loop {
            if let Some(url) = log.wait_for(Duration::from_millis(200), listening_url) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the readers drain what it printed last.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "qserve-host exited with {status} before listening; its output:\n{}",
                    log.text()
                );
            }
            if Instant::now() >= deadline {
                let pid = child.id();
                signal_group(pid, Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "qserve-host printed no `listening on http://…` line within {:?}; its output:\n{}",
                    options.startup_timeout,
                    log.text()
                );
            }
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("building an HTTP client");
        Daemon {
            child,
            base_url,
            log,
            token: options.token,
            http,
        }
    }

    /// `http://127.0.0.1:PORT`, as the daemon announced it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits until a line of the daemon's output contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let log = Arc::clone(&self.log);
        let needle = needle.to_string();
        tokio::task::spawn_blocking(move || {
            log.wait_for(timeout, |line| line.contains(&needle).then_some(()))
                .is_some()
        })
        .await
        .expect("waiting for the log")
    }

    /// A client that ignores proxy variables (everything here is loopback).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request builder with the daemon's token, if any.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// GET `path` → status and JSON body (`Value::Null` when the body is not JSON).
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        send_for_json(self.request(reqwest::Method::GET, path)).await
    }

    /// POST `body` as JSON to `path` → status and JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        send_for_json(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// `POST /permission/:id` selecting `option_id` → status and JSON body.
    pub async fn vote(&self, request_id: &str, option_id: &str) -> (StatusCode, Value) {
        let outcome =
            serde_json::json!({"outcome": {"outcome": "selected", "optionId": option_id}});
        self.post_json(&format!("/permission/{request_id}"), &outcome)
            .await
    }

    /// Subscribes to a session's events; panics unless the answer is a 200 event stream.
    pub async fn subscribe(&self, session_id: &str, last_event_id: Option<&str>) -> SseStream {
        let mut request = self.request(
            reqwest::Method::GET,
            &format!("/session/{session_id}/events"),
        );
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("GET /session/:id/events");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            response.status() == StatusCode::OK && content_type.starts_with("text/event-stream"),
            "subscribing to {session_id}: {} {content_type}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        SseStream::new(response)
    }

    /// Sends `signal` to the daemon alone (not its group): how a user stops it.
    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// Waits for the daemon to exit by itself.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the daemon") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pids of every live process the daemon started (its agents and theirs).
    pub fn descendant_pids(&self) -> Vec<u32> {
        descendants(self.pid()).into_iter().map(|p| p.pid).collect()
    }
}

impl Drop for Daemon {
    /// Freezes the daemon's group so it cannot start anything new, kills every process group
    /// its descendants live in (agents may run in groups of their own), then the daemon's.
    fn drop(&mut self) {
        let pid = self.pid();
        if let Ok(None) = self.child.try_wait() {
            signal_group(pid, Signal::SIGSTOP);
        }
        let own_group = nix::unistd::getpgrp().as_raw() as u32;
        let mut groups: Vec<u32> = descendants(pid).into_iter().map(|p| p.pgid).collect();
        groups.push(pid);
        groups.sort_unstable();
        groups.dedup();
        for group in groups.iter().filter(|group| **group != own_group) {
            signal_group(*group, Signal::SIGKILL);
        }
        let _ = self.child.wait();
        for group in groups.iter().filter(|group| **group != own_group) {
            if !kill_group_and_wait(*group, Duration::from_secs(5)) {
                eprintln!(
                    "e2e: process group {group} of qserve-host {pid} survived SIGKILL for 5 s"
                );
            }
        }
    }
}

async fn send_for_json(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request
        .send()
        .await
        .expect("sending a request to the daemon");
    let status = response.status();
    let bytes = response.bytes().await.expect("reading the daemon's answer");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Collects a pipe's lines on a thread of its own (not the test's runtime: a blocked or
/// finished test must not stop the daemon's output from draining).
fn capture_lines(pipe: impl Read + Send + 'static, log: Arc<CapturedLog>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) => log.push(line),
                Err(_) => break,
            }
        }
    });
}

/// `http://HOST:PORT` from a line containing `listening on http://HOST:PORT…`.
fn listening_url(line: &str) -> Option<String> {
    let start = line.find("listening on http://")? + "listening on ".len();
    let url: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ":/.[]-_".contains(*c))
        .collect();
    let port = url.rsplit_once(':')?.1;
    (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit())).then_some(url)
}

/// The compiled-component cache shared by the daemons of a test run
/// (`target/test-component-cache`, beside the guests' own test cache).
/// Spawns, retrying while the program is "text file busy" (ETXTBSY): a
/// program a test has just written can still be open for writing in a child
/// another test thread forked meanwhile (until that child execs and its
/// close-on-exec descriptors go). A classic race of multi-threaded spawners.
fn spawn_retrying_busy(command: &mut Command) -> std::io::Result<std::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(error) if error.raw_os_error() == Some(ETXTBSY) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub fn shared_component_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-component-cache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_group::is_running;

    /// A stand-in "daemon": announces an address and starts two children, one of them in a
    /// session (and so a process group) of its own, as an agent may be.
    fn stand_in_daemon(dir: &std::path::Path) -> PathBuf {
        let script = dir.join("stand-in-daemon.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\nsetsid sleep 300 &\nsleep 300 &\necho \"stand-in listening on http://127.0.0.1:9 ($*)\"\nwait\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        script
    }

    #[test]
    fn start_reads_the_address_and_drop_kills_every_descendant_group() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start_blocking(DaemonOptions {
            binary: Some(stand_in_daemon(dir.path())),
            ..DaemonOptions::with_agent("some-agent --acp")
        });
        assert_eq!(daemon.base_url(), "http://127.0.0.1:9");
        assert!(
            daemon
                .log()
                .contains("(--port 0 --hostname 127.0.0.1 --agent some-agent --acp)"),
            "arguments as documented: {}",
            daemon.log()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemon.descendant_pids().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let children = daemon.descendant_pids();
        assert_eq!(children.len(), 2, "two sleeps: {children:?}");
        let pid = daemon.pid();

        drop(daemon);
        assert!(!is_running(pid));
        for child in children {
            assert!(
                !is_running(child),
                "child {child} outlived the daemon value"
            );
        }
    }

    #[test]
    fn start_panics_with_the_output_of_a_daemon_that_never_listens() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("silent.sh");
        std::fs::write(&script, "#!/bin/sh\necho warming up\nexec sleep 300\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let started = Instant::now();
        let failure = std::panic::catch_unwind(|| {
            Daemon::start_blocking(DaemonOptions {
                binary: Some(script),
                startup_timeout: Duration::from_millis(500),
                ..DaemonOptions::default()
            })
        })
        .err()
        .expect("a silent daemon fails the start");
        let message = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("warming up"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn finds_the_listening_url_in_text_and_json_logs() {
        assert_eq!(
            listening_url(
                "qserve-host listening on http://127.0.0.1:41234 (policy builtin default)"
            )
            .as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(
            listening_url(
                r#"{"level":"INFO","message":"qserve-host listening on http://[::1]:5000","x":1}"#
            )
            .as_deref(),
            Some("http://[::1]:5000")
        );
        assert_eq!(listening_url("listening on http://127.0.0.1:"), None);
        assert_eq!(listening_url("starting up"), None);
    }
}
