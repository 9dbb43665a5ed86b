//! What `POST /session` does with the workspace a client names, through the
//! real daemon and the fake agent.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Found by schemathesis: a `cwd` that does not exist was a failed spawn
/// (500 `agent_spawn_failed`), blamed on the daemon. It is the client's
/// mistake: 400 with a code, and no agent is started for it.
#[tokio::test]
async fn a_workspace_that_does_not_exist_is_a_400_and_starts_no_agent() {
    let daemon = daemon(&[], &[]).await;
    let root = tempdir();
    let missing = root.path().join("no-such-dir");
    let (status, body) = daemon
        .post_json("/session", &json!({ "cwd": missing }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "workspace_not_found", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no-such-dir"),
        "names the path: {body}"
    );
    assert!(daemon.descendant_pids().is_empty(), "no agent was started");

    // A file is not a workspace either.
    let file = root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (status, body) = daemon.post_json("/session", &json!({ "cwd": file })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "workspace_not_found", "{body}");

    // The same request on a real directory works.
    let (_session, attached) = create(&daemon, root.path()).await;
    assert!(!attached);
}
