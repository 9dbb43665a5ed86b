//! Shared by the daemon end-to-end tests: a daemon running the fake agent,
//! and small helpers that read like the protocol.

#![allow(dead_code)]

use std::time::Duration;

use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
pub use qserve_e2e::sse::chunk_text;
use qserve_e2e::sse::SseStream;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(20);

/// A daemon on the fake agent, with extra flags and agent environment.
pub async fn daemon(args: &[&str], envs: &[(&str, &str)]) -> Daemon {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(args.iter().map(|a| a.to_string()));
    options
        .envs
        .extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Daemon::start(options).await
}

pub async fn create(daemon: &Daemon, cwd: &std::path::Path) -> (String, bool) {
    let (status, body) = daemon
        .post_json("/session", &json!({ "cwd": cwd.display().to_string() }))
        .await;
    assert_eq!(status, StatusCode::OK, "create: {body}\n{}", daemon.log());
    (
        body["sessionId"].as_str().expect("sessionId").to_owned(),
        body["attached"].as_bool().expect("attached"),
    )
}

pub async fn prompt(daemon: &Daemon, session: &str, text: &str) -> (StatusCode, Value) {
    daemon
        .post_json(
            &format!("/session/{session}/prompt"),
            &json!({ "prompt": [{ "type": "text", "text": text }] }),
        )
        .await
}

/// Prompt and insist on a 200; returns the agent's `PromptResponse`.
pub async fn prompt_ok(daemon: &Daemon, session: &str, text: &str) -> Value {
    let (status, body) = prompt(daemon, session, text).await;
    assert_eq!(status, StatusCode::OK, "prompt {text:?}: {body}");
    body
}

/// `POST /session/:id/model`.
pub async fn set_model(daemon: &Daemon, session: &str, model_id: &str) -> (StatusCode, Value) {
    daemon
        .post_json(
            &format!("/session/{session}/model"),
            &json!({ "modelId": model_id }),
        )
        .await
}

/// Wait for an `agent_message_chunk` whose text is exactly `text`.
pub async fn wait_chunk(stream: &mut SseStream, text: &str) -> Value {
    wait_event(stream, "session_update", |e| chunk_text(e) == Some(text)).await
}

/// Read frames until one of `kind` whose envelope satisfies `pred`.
pub async fn wait_event(
    stream: &mut SseStream,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    stream.wait_event_within(WAIT, kind, pred).await
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A component built by `guest/build.sh` into target/guests.
pub fn guest_component(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests")
        .join(format!("{name}.wasm"));
    path.canonicalize()
        .unwrap_or_else(|_| panic!("{} missing: run `bash guest/build.sh`", path.display()))
}
