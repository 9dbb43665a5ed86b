//! What an agent's failure tells the client: a failed prompt's JSON-RPC code and data in the
//! HTTP error body (and its details in the message), an agent that dies before `initialize`
//! named with its exit status, every 5xx logged with its route and cause, and a missing agent
//! program reported at start-up.

mod common;

use common::{create, prompt, tempdir, WAIT};
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn agent_failures_reach_the_client_with_their_code_data_and_exit_status() {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend([
        "--agent-def".to_string(),
        "dies=sh -c 'echo dying on purpose >&2; exit 7'".to_string(),
        "--agent-def".to_string(),
        "ghost=/nonexistent/qserve-agent --acp".to_string(),
    ]);
    let daemon = Daemon::start(options).await;
    assert!(
        daemon.wait_for_log("agent command not found", WAIT).await,
        "a missing program is reported at start-up:\n{}",
        daemon.log()
    );
    assert!(daemon.log().contains("/nonexistent/qserve-agent"));

    // A prompt the agent fails: its JSON-RPC error is the body's `data`.
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let (status, body) = prompt(&daemon, &session, "fail Connection error.").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], "agent_error");
    assert_eq!(
        body["data"],
        json!({"code": -32603, "message": "Internal error", "data": {"details": "Connection error."}})
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Connection error."),
        "{body}"
    );
    assert!(
        daemon
            .wait_for_log(&format!("/session/{session}/prompt"), WAIT)
            .await,
        "the 5xx is logged with its route:\n{}",
        daemon.log()
    );
    let logged = daemon.log();
    let line = logged
        .lines()
        .find(|l| l.contains("request failed") && l.contains("/prompt"))
        .unwrap_or_else(|| panic!("no 5xx line:\n{logged}"));
    assert!(
        line.contains("POST") && line.contains("502") && line.contains("Connection error."),
        "{line}"
    );

    // An agent that exits before `initialize`: its exit status is in the body.
    let (status, body) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": ws.path().display().to_string(), "agent": "dies" }),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "agent_spawn_failed");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("exit code 7") && message.contains("initialize"),
        "{message}"
    );
    assert!(
        message.contains("dying on purpose"),
        "its stderr: {message}"
    );
}

/// Seed edge case: the model switch of a create can race the agent's death. A
/// session whose agent died while its model was being switched is not handed
/// out as live (`qwen serve` once answered 200 with an id that 404ed ever after).
#[tokio::test]
async fn a_create_whose_model_switch_races_the_agents_death_is_not_returned_as_live() {
    let daemon = common::daemon(&[], &[("FAKE_AGENT_EXIT_ON_SET_MODEL", "1")]).await;
    let ws = tempdir();
    let cwd = ws.path().display().to_string();
    let (status, body) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": cwd, "modelServiceId": "fake-model-2" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a session whose agent died is not live: {body}\n{}",
        daemon.log()
    );
    assert_eq!(body["code"], "agent_died", "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("model"),
        "the message says the agent died during the model switch: {body}"
    );
    let encoded = cwd.replace('/', "%2F");
    let (status, listed) = daemon
        .get_json(&format!("/workspace/{encoded}/sessions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["sessions"], json!([]), "no ghost session is listed");
}
