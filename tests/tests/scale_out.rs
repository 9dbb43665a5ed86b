//! Two daemons behind nginx, the way docs/deploy.md runs them: the checked-in
//! `deploy/nginx/qserve.conf.template`, daemons with `--node-id a` and `b`
//! (the fake agent), everything on loopback. A workspace always lands on the
//! same daemon (consistent hash of its path, from the URL or from the
//! `POST /session` body), a session's and a permission request's routes reach
//! the daemon named by the id's `NODE.` prefix, SSE streams through, and the
//! real `DaemonClient` and the Rust client work with the proxy's URL alone.
//!
//! nginx must be installed (`scripts/system-deps.sh`, run by `scripts/test.sh`, installs it): without it these tests fail.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use qserve_client::{Client, CreateSession, Vote};
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::nginx::{Backend, Nginx};
use qserve_e2e::process_group::own_group;
use qserve_e2e::sse::SseStream;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-scale-out-token";

struct Cluster {
    a: Daemon,
    b: Daemon,
    nginx: Nginx,
    http: reqwest::Client,
}

async fn node(name: &str) -> Daemon {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(["--node-id".into(), name.into()]);
    options.token = Some(TOKEN.into());
    Daemon::start(options).await
}

fn addr(daemon: &Daemon) -> String {
    daemon.base_url().trim_start_matches("http://").to_owned()
}

async fn cluster() -> Cluster {
    let (a, b) = tokio::join!(node("a"), node("b"));
    let backends = [
        Backend {
            node_id: "a".into(),
            addr: addr(&a),
        },
        Backend {
            node_id: "b".into(),
            addr: addr(&b),
        },
    ];
    let nginx = tokio::task::spawn_blocking(move || Nginx::start(&backends))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Cluster { a, b, nginx, http }
}

impl Cluster {
    fn owner(&self, node: &str) -> &Daemon {
        match node {
            "a" => &self.a,
            "b" => &self.b,
            other => panic!("no daemon is node {other:?}"),
        }
    }

    fn other(&self, node: &str) -> &Daemon {
        self.owner(if node == "a" { "b" } else { "a" })
    }

    fn through_proxy(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.nginx.base_url()))
            .bearer_auth(TOKEN)
    }

    async fn proxy_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.through_proxy(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("a request through nginx");
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Everything worth seeing when a routing assertion fails.
    fn logs(&self) -> String {
        format!(
            "--- nginx error.log ---\n{}\n--- daemon a ---\n{}\n--- daemon b ---\n{}",
            self.nginx.error_log(),
            self.a.log(),
            self.b.log()
        )
    }
}

/// The node a session or request id names (`NODE.` + UUID).
fn node_of(id: &str) -> &str {
    id.split_once('.')
        .unwrap_or_else(|| panic!("{id} has no node prefix"))
        .0
}

/// `encodeURIComponent`, as the DaemonClient and the Rust client send a workspace path.
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A fresh workspace, by its canonical path (what clients should route with).
fn workspace() -> (tempfile::TempDir, String) {
    let dir = tempdir();
    let cwd = dir.path().canonicalize().unwrap().display().to_string();
    (dir, cwd)
}

fn session_ids(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("not a session list: {list}"))
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn workspaces_and_sessions_land_on_their_owner_through_nginx() {
    let c = cluster().await;
    for name in ["a", "b"] {
        let (status, caps) = c.owner(name).get_json("/capabilities").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(caps["nodeId"], name, "{caps}");
    }

    // Create through the proxy until both daemons own workspaces.
    let mut created: Vec<(tempfile::TempDir, String, String)> = Vec::new();
    let mut nodes = BTreeSet::new();
    while nodes.len() < 2 || created.len() < 4 {
        assert!(
            created.len() < 40,
            "40 workspaces all went to {nodes:?}: the hash does not spread\n{}",
            c.logs()
        );
        let (dir, cwd) = workspace();
        let (status, body) = c
            .proxy_json(Method::POST, "/session", Some(&json!({ "cwd": cwd })))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}\n{}", c.logs());
        assert_eq!(body["attached"], false, "{body}");
        let sid = body["sessionId"].as_str().unwrap().to_owned();
        nodes.insert(node_of(&sid).to_owned());
        created.push((dir, cwd, sid));
    }

    for (_, cwd, sid) in &created {
        let node = node_of(sid);
        let (owner, other) = (c.owner(node), c.other(node));
        // The id's prefix names the daemon that has it, and only that one.
        assert_eq!(
            owner.get_json(&format!("/session/{sid}")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            other.get_json(&format!("/session/{sid}")).await.0,
            StatusCode::NOT_FOUND
        );
        let listed = owner
            .get_json(&format!("/workspace/{}/sessions", encode(cwd)))
            .await
            .1;
        assert_eq!(session_ids(&listed), vec![sid.clone()]);
        let elsewhere = other
            .get_json(&format!("/workspace/{}/sessions", encode(cwd)))
            .await
            .1;
        assert!(session_ids(&elsewhere).is_empty(), "{elsewhere}");

        // Through the proxy: listing (encoded as the clients send it),
        // attaching, and a session route all reach the owner.
        let path = format!("/workspace/{}/sessions", encode(cwd));
        let (status, listed) = c.proxy_json(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {listed}");
        assert_eq!(
            session_ids(&listed),
            vec![sid.clone()],
            "{path}\n{}",
            c.logs()
        );
        let (_, again) = c
            .proxy_json(Method::POST, "/session", Some(&json!({ "cwd": cwd })))
            .await;
        assert_eq!(
            (&again["attached"], &again["sessionId"]),
            (&json!(true), &json!(sid))
        );
        let (status, info) = c
            .proxy_json(Method::GET, &format!("/session/{sid}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["workspaceCwd"], json!(cwd));
    }

    // One session per daemon: the stream through the proxy shows the
    // permission request while the prompt is still waiting on it, and the
    // vote through the proxy reaches the owner.
    for node in ["a", "b"] {
        let (_, _, sid) = created
            .iter()
            .find(|(_, _, sid)| node_of(sid) == node)
            .unwrap();
        let response = c
            .through_proxy(Method::GET, &format!("/session/{sid}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = SseStream::new(response);
        let turn = {
            let request = c
                .through_proxy(Method::POST, &format!("/session/{sid}/prompt"))
                .json(&json!({ "prompt": [{ "type": "text", "text": "permission edit" }] }));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        };
        let asked = wait_event(&mut events, "permission_request", |_| true).await;
        let request_id = asked["data"]["requestId"].as_str().unwrap();
        assert_eq!(node_of(request_id), node, "request ids carry the node too");
        assert!(!turn.is_finished(), "the prompt waits for the vote");
        let (status, body) = c
            .proxy_json(
                Method::POST,
                &format!("/permission/{request_id}"),
                Some(&json!({ "outcome": { "outcome": "selected", "optionId": "proceed_once" } })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}\n{}", c.logs());
        wait_chunk(&mut events, "outcome: selected proceed_once").await;
        let status = tokio::time::timeout(WAIT, turn)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_rust_client_works_through_nginx() {
    let c = cluster().await;
    let client = Client::new(&c.nginx.base_url()).unwrap().with_token(TOKEN);
    assert_eq!(client.health().await.unwrap().status, "ok");
    let caps = client.capabilities().await.unwrap();
    assert!(
        matches!(caps.extra["nodeId"].as_str(), Some("a" | "b")),
        "{caps:?}"
    );

    let mut owned = BTreeSet::new();
    let mut dirs = Vec::new();
    while owned.len() < 2 {
        assert!(dirs.len() < 40, "40 workspaces all went to {owned:?}");
        let (dir, cwd) = workspace();
        dirs.push(dir);
        let created = client
            .create_session(&CreateSession::new(&cwd))
            .await
            .unwrap();
        let node = node_of(&created.session_id).to_owned();
        let listed = client.workspace_sessions(&cwd).await.unwrap();
        assert_eq!(
            listed
                .sessions
                .iter()
                .map(|s| &s.session_id)
                .collect::<Vec<_>>(),
            [&created.session_id],
            "{}",
            c.logs()
        );
        if !owned.insert(node) {
            continue;
        }
        // A turn with a vote, and its events, all through the proxy.
        let mut events = client.events(&created.session_id, Some(0));
        let turn = {
            let client = client.clone();
            let sid = created.session_id.clone();
            tokio::spawn(async move { client.prompt_text(&sid, "permission edit").await })
        };
        let request = loop {
            let event = tokio::time::timeout(WAIT, events.next())
                .await
                .expect("an event within the wait")
                .expect("the stream goes on")
                .unwrap();
            if let Some(request) = event.permission_request() {
                break request;
            }
        };
        client
            .vote(&request.request_id, &Vote::Selected("proceed_once".into()))
            .await
            .unwrap();
        loop {
            let event = tokio::time::timeout(WAIT, events.next())
                .await
                .expect("an event within the wait")
                .expect("the stream goes on")
                .unwrap();
            if event.agent_text() == Some("outcome: selected proceed_once") {
                break;
            }
        }
        let answer = tokio::time::timeout(WAIT, turn)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answer.stop_reason.as_deref(), Some("end_turn"));
    }
}

fn tests_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn node_binary() -> std::ffi::OsString {
    std::env::var_os("QSERVE_E2E_NODE").unwrap_or_else(|| "node".into())
}

/// Whether node and the SDK are here; as tests/tests/daemon_client.rs: a loud
/// skip on a developer's machine, a failure under `CI=true`.
fn daemon_client_available_or_skip() -> bool {
    let sdk = tests_dir().join("npm/node_modules/@qwen-code/sdk/package.json");
    let node_ok = std::process::Command::new(node_binary())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node_ok {
        format!("cannot run {:?}", node_binary())
    } else if !sdk.exists() {
        format!("{} does not exist", sdk.display())
    } else {
        return true;
    };
    let message = format!("{missing} — run scripts/npm-deps.sh");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("the DaemonClient through nginx: {message} (CI=true: a failure, not a skip)");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED the_daemon_client_works_through_nginx: {message}\n"
    );
    false
}

#[tokio::test]
async fn the_daemon_client_works_through_nginx() {
    if !daemon_client_available_or_skip() {
        return;
    }
    let c = cluster().await;
    // 16 workspaces: all on one daemon has a chance of 2^-15.
    let dirs: Vec<(tempfile::TempDir, String)> = (0..16).map(|_| workspace()).collect();
    let cwds: Vec<&String> = dirs.iter().map(|(_, cwd)| cwd).collect();
    let script: PathBuf = tests_dir().join("node/scale-out.mjs");
    let mut command = tokio::process::Command::new(node_binary());
    command
        .arg(&script)
        .env("QSERVE_E2E_BASE_URL", c.nginx.base_url())
        .env("QSERVE_E2E_TOKEN", TOKEN)
        .env(
            "QSERVE_E2E_WORKSPACES",
            serde_json::to_string(&cwds).unwrap(),
        )
        .env("QSERVE_E2E_NPM_DIR", tests_dir().join("npm"))
        .env_remove("QWEN_SERVER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    own_group(&mut command);
    let child = command.spawn().expect("spawning node");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the script ends within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let context = || {
        format!(
            "exit {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr),
            c.logs()
        )
    };
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON report\n{}", context()));
    assert_eq!(report["ok"], true, "{}", context());

    // Each session is where its prefix says, and both daemons own some.
    let mut nodes = BTreeSet::new();
    for session in report["sessions"].as_array().unwrap() {
        let sid = session["sessionId"].as_str().unwrap();
        let node = node_of(sid);
        nodes.insert(node.to_owned());
        assert_eq!(
            c.owner(node).get_json(&format!("/session/{sid}")).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(nodes.len(), 2, "{report}");
    assert_eq!(report["voted"].as_array().unwrap().len(), 2, "{report}");
}

/// A node id that would not survive a URL, an nginx regex or the `.` that
/// ends it stops the start-up with the rule, from the flag or the variable.
#[test]
fn a_node_id_a_proxy_could_not_match_is_refused_at_start_up() {
    for (args, env) in [
        (vec!["--node-id", "node.a"], None),
        (vec![], Some("Node_A")),
    ] {
        let mut command = std::process::Command::new(qserve_e2e::qserve_host_path());
        command
            .args(["--port", "0"])
            .args(&args)
            .env_remove("QSERVE_NODE_ID");
        if let Some(value) = env {
            command.env("QSERVE_NODE_ID", value);
        }
        let output = command.output().expect("running qserve-host");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("is not a node id") && stderr.contains("a-z, 0-9 and `-`"),
            "{stderr}"
        );
    }
}
