//! The checks every real agent goes through behind the real daemon, in one daemon and one
//! workspace (a cold start of a node agent costs seconds): a prompt streams text; a write
//! raises a `permission_request` — allow lands the file, reject leaves none; a cancel in the
//! middle of a turn ends the prompt; `DELETE` of the last session and SIGTERM of the daemon
//! each leave none of the agent's processes behind.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::daemon::{Daemon, DaemonOptions};
use crate::mock_server::{HANG_TEXT, HELLO_TEXT};
use crate::process_group::processes_with_home;
use crate::real_agent::RealAgentEnv;
pub use crate::sse::chunk_text;
use crate::sse::SseStream;

/// Generous: a loaded 2-core machine runs several node agents at once.
pub const TURN: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);

/// The option ids an agent offers for a write, and the tool name the policy must see for it
/// (`None`: the agent names none).
pub struct Options {
    pub allow: &'static str,
    pub reject: &'static str,
    pub write_tool_name: Option<&'static str>,
}

/// Runs the whole suite. `saw_hang` tells whether the mock has received the `hang` turn.
pub async fn run(agent: &RealAgentEnv, options: Options, saw_hang: impl Fn() -> bool) {
    let mut daemon = Daemon::start(DaemonOptions::with_real_agent(agent)).await;
    let workspace = agent.workspace();
    let session = create(&daemon, &workspace).await;
    let mut events = daemon.subscribe(&session, Some("0")).await;

    // 1. A prompt streams text.
    let answer = prompt(&daemon, &session, "say hello").await;
    assert_eq!(answer["stopReason"], "end_turn", "{answer}");
    let mut text = String::new();
    while !text.contains(HELLO_TEXT) {
        let chunk = wait_event(&mut events, "session_update", |e| chunk_text(e).is_some()).await;
        text.push_str(chunk_text(&chunk).unwrap());
    }

    // 2. A write asks; allow lands the file.
    let allowed = workspace.join("allowed.txt");
    write_with_vote(
        &daemon,
        &mut events,
        &session,
        &allowed,
        &options,
        options.allow,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&allowed)
            .unwrap_or_else(|e| panic!("the allowed write landed: {e}\n{}", daemon.log()))
            .trim_end(),
        "hello from the real agent"
    );

    // 3. Reject leaves no file.
    let refused = workspace.join("refused.txt");
    write_with_vote(
        &daemon,
        &mut events,
        &session,
        &refused,
        &options,
        options.reject,
    )
    .await;
    assert!(!refused.exists(), "a rejected write leaves no file");

    // 4. Cancel in the middle of a turn ends the prompt.
    let hanging = spawn_prompt(&daemon, &session, "hang until cancelled");
    wait_until("the mock streams the hanging turn", &saw_hang)
        .await
        .unwrap_or_else(|what| panic!("{what}\n{}", daemon.log()));
    // The agent has the turn's first text in hand; give it the chance to show it (not every
    // agent streams partial text), then cancel.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        wait_event(&mut events, "session_update", |e| {
            chunk_text(e).is_some_and(|t| t.contains(HANG_TEXT))
        })
        .await
    })
    .await;
    let status = daemon
        .request(reqwest::Method::POST, &format!("/session/{session}/cancel"))
        .send()
        .await
        .expect("cancel")
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = tokio::time::timeout(TURN, hanging)
        .await
        .unwrap_or_else(|_| panic!("the cancelled turn never ended\n{}", daemon.log()))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", daemon.log());
    assert_eq!(answer["stopReason"], "cancelled", "{answer}");

    // 5. DELETE of the last session stops the agent, all of it. (The daemon shares the
    // agent's HOME: it hands its environment down.)
    let daemon_pid = daemon.pid();
    let agent_processes = || -> Vec<u32> {
        processes_with_home(&agent.home())
            .into_iter()
            .filter(|pid| *pid != daemon_pid)
            .collect()
    };
    assert!(!agent_processes().is_empty(), "the agent is running");
    let status = daemon
        .request(reqwest::Method::DELETE, &format!("/session/{session}"))
        .send()
        .await
        .expect("delete")
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_until("no agent process is left after DELETE", || {
        agent_processes().is_empty()
    })
    .await
    .unwrap_or_else(|what| panic!("{what}: {}\n{}", describe(&agent_processes()), daemon.log()));

    // 6. SIGTERM with a live agent leaves none of its processes.
    let session = create(&daemon, &workspace).await;
    let answer = prompt(&daemon, &session, "say hello").await;
    assert_eq!(answer["stopReason"], "end_turn", "{answer}");
    assert!(!agent_processes().is_empty(), "the agent runs again");
    daemon.signal(Signal::SIGTERM);
    let exit = daemon
        .wait_for_exit(Duration::from_secs(30))
        .await
        .expect("daemon exits");
    assert_eq!(exit.code(), Some(0), "{}", daemon.log());
    let left = processes_with_home(&agent.home());
    assert!(
        left.is_empty(),
        "agent processes outlived the daemon: {}",
        describe(&left)
    );
}

async fn create(daemon: &Daemon, workspace: &Path) -> String {
    let (status, created) = daemon
        .post_json(
            "/session",
            &json!({ "cwd": workspace.display().to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}\n{}", daemon.log());
    created["sessionId"].as_str().unwrap().to_owned()
}

fn spawn_prompt(
    daemon: &Daemon,
    session: &str,
    text: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let url = daemon.url(&format!("/session/{session}/prompt"));
    let http = daemon.http().clone();
    let text = text.to_owned();
    tokio::spawn(async move {
        let response = http
            .post(url)
            .json(&json!({ "prompt": [{ "type": "text", "text": text }] }))
            .send()
            .await
            .expect("prompt");
        let status = response.status();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    })
}

async fn prompt(daemon: &Daemon, session: &str, text: &str) -> Value {
    let (status, answer) = tokio::time::timeout(TURN, spawn_prompt(daemon, session, text))
        .await
        .unwrap_or_else(|_| panic!("the turn {text:?} never ended\n{}", daemon.log()))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", daemon.log());
    answer
}

/// Prompt a write, wait for its permission request, vote `option`, wait for the turn's end.
async fn write_with_vote(
    daemon: &Daemon,
    events: &mut SseStream,
    session: &str,
    path: &Path,
    options: &Options,
    option: &str,
) {
    let text = format!("write {} hello from the real agent", path.display());
    let turn = spawn_prompt(daemon, session, &text);
    // What the policy decided on comes first: the write as an `edit`, with the agent's tool name.
    let decision = wait_event(events, "policy_decision", |e| {
        e["data"]["kind"] == "permission"
    })
    .await;
    let call = &decision["data"]["toolCall"];
    assert_eq!(call["kind"], "edit", "{decision}");
    if let Some(tool_name) = options.write_tool_name {
        assert_eq!(call["toolName"], tool_name, "{decision}");
    }
    let request = wait_event(events, "permission_request", |_| true).await;
    let data = &request["data"];
    let offered: Vec<&str> = data["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["optionId"].as_str())
        .collect();
    assert!(
        offered.contains(&options.allow) && offered.contains(&options.reject),
        "{offered:?}"
    );
    let (status, body) = daemon
        .post_json(
            &format!("/permission/{}", data["requestId"].as_str().unwrap()),
            &json!({ "outcome": { "outcome": "selected", "optionId": option } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, answer) = tokio::time::timeout(TURN, turn)
        .await
        .unwrap_or_else(|_| panic!("the turn never ended after the vote\n{}", daemon.log()))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", daemon.log());
    assert_eq!(answer["stopReason"], "end_turn", "{answer}");
}

/// Waits for a condition about the outside world (a process gone, a request received), checked
/// every 100 ms, for up to a minute; `Err` says what timed out.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `pid pgid cmdline` of each process, for a failure message.
fn describe(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            format!(
                "[pid {pid} state {} ppid {} pgid {} {cmdline}]",
                fields.first().unwrap_or(&"?"),
                fields.get(1).unwrap_or(&"?"),
                fields.get(2).unwrap_or(&"?")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read frames until one of `kind` whose envelope satisfies `pred`.
pub async fn wait_event(
    stream: &mut SseStream,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    stream.wait_event_within(WAIT, kind, pred).await
}
