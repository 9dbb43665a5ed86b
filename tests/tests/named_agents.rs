//! Named agents (`--agent-def NAME="COMMAND ARGS"`), chosen per session with `POST /session`
//! `agent`: the fake agent under two names, two sessions in one workspace on two agents, each
//! with its own child and its own stream; `/capabilities` and the session list name the agents;
//! an unknown name is a 400 that lists the known ones; the policy's context names the agent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{chunk_text, prompt_ok, wait_event, WAIT};
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::process_group::is_running;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The fake agent, writing its pid to `pid_file` (so each name's child can be told apart).
fn fake_agent_writing_pid(pid_file: &Path) -> String {
    shell_words::join([
        "env".to_string(),
        format!("FAKE_AGENT_PID_FILE={}", pid_file.display()),
        fake_agent_path().display().to_string(),
    ])
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

async fn create_on(daemon: &Daemon, cwd: &Path, agent: Option<&str>) -> Value {
    let mut body = json!({ "cwd": cwd.display().to_string() });
    if let Some(agent) = agent {
        body["agent"] = json!(agent);
    }
    let (status, created) = daemon.post_json("/session", &body).await;
    assert_eq!(status, StatusCode::OK, "{created}\n{}", daemon.log());
    created
}

#[tokio::test]
async fn two_sessions_in_one_workspace_on_two_named_agents_have_their_own_children_and_streams() {
    let dir = common::tempdir();
    let workspace = dir.path().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    let workspace = workspace.canonicalize().unwrap();
    let default_pid = dir.path().join("default.pid");
    let second_pid = dir.path().join("second.pid");
    let decision_log = dir.path().join("decisions.jsonl");
    let mut options = DaemonOptions::with_agent(fake_agent_writing_pid(&default_pid));
    options.args.extend([
        "--agent-def".to_string(),
        format!("second={}", fake_agent_writing_pid(&second_pid)),
        "--decision-log".to_string(),
        decision_log.display().to_string(),
    ]);
    let daemon = Daemon::start(options).await;

    let (status, capabilities) = daemon.get_json("/capabilities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(capabilities["agents"], json!(["default", "second"]));

    let (status, refused) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": workspace.display().to_string(), "agent": "codex" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["code"], "unknown_agent");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("default, second"),
        "{refused}"
    );

    // Single scope (the default) attaches per (workspace, agent), not per workspace.
    let first = create_on(&daemon, &workspace, None).await;
    assert_eq!(first["agent"], "default");
    let second = create_on(&daemon, &workspace, Some("second")).await;
    assert_eq!(second["agent"], "second");
    assert_eq!(second["attached"], false, "{second}");
    assert_ne!(first["sessionId"], second["sessionId"]);
    let again = create_on(&daemon, &workspace, Some("second")).await;
    assert_eq!(again["attached"], true);
    assert_eq!(again["sessionId"], second["sessionId"]);

    wait_for("both agents wrote their pid", || {
        pid_in(&default_pid).is_some() && pid_in(&second_pid).is_some()
    })
    .await;
    let (default_child, second_child) =
        (pid_in(&default_pid).unwrap(), pid_in(&second_pid).unwrap());
    assert_ne!(
        default_child, second_child,
        "one child per (workspace, agent)"
    );

    // Each session's stream carries its own agent's output.
    let first_id = first["sessionId"].as_str().unwrap();
    let second_id = second["sessionId"].as_str().unwrap();
    let mut first_events = daemon.subscribe(first_id, Some("0")).await;
    let mut second_events = daemon.subscribe(second_id, Some("0")).await;
    prompt_ok(&daemon, first_id, "echo from-default").await;
    prompt_ok(&daemon, second_id, "echo from-second").await;
    let chunk = wait_event(&mut first_events, "session_update", |e| {
        chunk_text(e).is_some()
    })
    .await;
    assert_eq!(chunk_text(&chunk), Some("from-default"));
    let chunk = wait_event(&mut second_events, "session_update", |e| {
        chunk_text(e).is_some()
    })
    .await;
    assert_eq!(chunk_text(&chunk), Some("from-second"));

    let encoded = workspace.display().to_string().replace('/', "%2F");
    let (status, listed) = daemon
        .get_json(&format!("/workspace/{encoded}/sessions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mut agents: Vec<(String, String)> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["workspaceCwd"], workspace.display().to_string());
            (
                s["sessionId"].as_str().unwrap().to_owned(),
                s["agent"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    agents.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        agents,
        [
            (first_id.to_owned(), "default".to_owned()),
            (second_id.to_owned(), "second".to_owned())
        ]
    );

    // The policy's context names the agent: every create was decided knowing which.
    let creates = || -> Vec<String> {
        std::fs::read_to_string(&decision_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|r| r["kind"] == "session_create")
            .filter_map(|r| r["agent"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    wait_for("the creates are logged", || creates().len() >= 3).await;
    let named = creates();
    assert!(
        named.contains(&"default".to_owned()) && named.contains(&"second".to_owned()),
        "{named:?}"
    );

    // Closing the second agent's last session stops its child only.
    let status = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{second_id}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for("the second agent's child exits", || {
        !is_running(second_child)
    })
    .await;
    assert!(is_running(default_child), "the default agent keeps running");
    assert!(
        daemon.wait_for_log("agent stopped", WAIT).await,
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.lines()
            .all(|line| !(line.contains("WARN") && line.contains("agent ended"))),
        "a deliberate stop is not a warning:\n{log}"
    );
}
