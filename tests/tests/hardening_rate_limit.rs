//! `--rate-limit` through the real daemon: per-client budgets in the
//! prompt, mutation and read tiers, answered 429 JSON past them.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn past_its_prompt_budget_a_client_gets_429_json_and_other_tiers_still_work() {
    // Two prompts a minute; mutations unlimited; plenty of reads.
    let daemon = daemon(&["--rate-limit", "2,0,1000"], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    prompt_ok(&daemon, &session, "echo one").await;
    prompt_ok(&daemon, &session, "echo two").await;
    let response = daemon
        .request(reqwest::Method::POST, &format!("/session/{session}/prompt"))
        .json(&serde_json::json!({ "prompt": [{ "type": "text", "text": "echo three" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("2 prompts per minute"));
    // Reads and mutations have budgets of their own.
    let (status, _) = daemon.get_json("/health").await;
    assert_eq!(status, StatusCode::OK);
    create(&daemon, tempdir().path()).await;
}

#[tokio::test]
async fn a_malformed_rate_limit_is_refused_at_start_up() {
    let mut command = tokio::process::Command::new(qserve_e2e::binaries::qserve_host_path());
    command
        .args(["--port", "0", "--rate-limit", "30,120"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    qserve_e2e::process_group::own_group(&mut command);
    let output = tokio::time::timeout(WAIT, command.spawn().unwrap().wait_with_output())
        .await
        .expect("refused at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("PROMPT,MUTATION,READ"), "{stderr}");
}
