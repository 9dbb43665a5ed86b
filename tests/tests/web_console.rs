//! The web console (`/`), driven in a real headless browser: Debian's
//! chromium through playwright-core (`tests/browser/console_e2e.mjs`),
//! against the real daemon with a token and the fake agent. A missing
//! chromium, node or playwright-core fails these tests; they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use qserve_e2e::fake_agent_path;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "console-e2e-token-3f9a";
const BROWSER_WAIT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn daemon_with_token(extra: &[&str]) -> Daemon {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(extra.iter().map(|a| a.to_string()));
    options.token = Some(TOKEN.into());
    Daemon::start(options).await
}

/// Runs the browser script with `input`; its JSON result, or a panic with
/// everything it printed.
async fn browser(input: Value) -> Value {
    let script = repo_root().join("tests/browser/console_e2e.mjs");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&script)
        .arg(input.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = command.spawn().unwrap_or_else(|error| {
        panic!("node is needed to drive the browser (apt-get install nodejs): {error}")
    });
    let pid = child.id().expect("node has a pid");
    let output = match tokio::time::timeout(BROWSER_WAIT, child.wait_with_output()).await {
        Ok(output) => output.expect("waiting for node"),
        Err(_) => {
            qserve_e2e::process_group::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the browser script did not finish within {BROWSER_WAIT:?}");
        }
    };
    // Chromium and its helpers are in node's group: none outlives the test.
    qserve_e2e::process_group::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the script's result is not JSON ({e}): {stdout}\n{stderr}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_console_logs_in_streams_a_session_and_an_allow_click_lands_the_file() {
    let daemon = daemon_with_token(&[]).await;
    let ws = tempdir();
    let workspace = std::fs::canonicalize(ws.path()).unwrap();
    let other = tempdir();
    let (other_session, _) = create(&daemon, other.path()).await;
    let screenshot = repo_root().join("target/console.png");
    let _ = std::fs::remove_file(&screenshot);
    let result = browser(json!({
        "mode": "console",
        "otherWorkspace": std::fs::canonicalize(other.path()).unwrap().display().to_string(),
        "otherSessionId": other_session,
        "base": daemon.base_url(),
        "token": TOKEN,
        "workspace": workspace.display().to_string(),
        "fileName": "from-the-console.txt",
        "fileContent": "written after a click on Allow",
        "screenshot": screenshot.display().to_string(),
    }))
    .await;

    // The file the agent asked to write is on disk, after the click.
    let written = wait_for_file(&workspace.join("from-the-console.txt")).await;
    assert_eq!(written, "written after a click on Allow");

    // The second tab saw the card resolve with the option chosen in the first.
    assert_eq!(result["secondOutcome"], "resolved: Allow", "{result}");
    assert_eq!(result["secondButtonsDisabled"], true, "{result}");

    // The active policy as /capabilities reports it.
    let (_, caps) = daemon.get_json("/capabilities").await;
    assert_eq!(result["policy"]["name"], caps["policy"]["name"]);
    assert_eq!(result["policy"]["version"], caps["policy"]["version"]);
    assert_eq!(result["policy"]["sha256"], caps["policy"]["sha256"]);

    // The cookie: HttpOnly (the page's script cannot see it), SameSite=Strict,
    // a random value that is not the token.
    let cookie = &result["cookie"];
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/", "{cookie}");
    let value = cookie["value"].as_str().unwrap();
    assert!(!value.contains(TOKEN) && value.len() == 64, "{cookie}");
    assert!(
        !result["visibleToScript"]
            .as_str()
            .unwrap()
            .contains("qserve_session"),
        "{result}"
    );

    // The token never went into a URL; the page fetched nothing from elsewhere.
    let requested = strings(&result["requested"]);
    assert!(requested.len() > 5, "{requested:?}");
    for url in &requested {
        assert!(!url.contains(TOKEN), "the token in a URL: {url}");
        assert!(
            url.starts_with(daemon.base_url()),
            "a request off the daemon: {url}"
        );
    }
    assert!(
        requested
            .iter()
            .any(|u| u.contains("/events?lastEventId=0")),
        "{requested:?}"
    );
    assert_eq!(result["pageErrors"], json!([]), "{result}");

    // After logout the page is refused and the old cookie opens nothing.
    assert_eq!(result["afterLogout"], 401, "{result}");
    let stale = daemon
        .http()
        .get(daemon.url("/capabilities"))
        .header("cookie", format!("qserve_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    assert!(
        screenshot.exists(),
        "the screenshot {} was not written",
        screenshot.display()
    );
}

#[tokio::test]
async fn a_page_from_another_origin_reads_nothing_and_drives_nothing_even_while_logged_in() {
    let daemon = daemon_with_token(&[]).await;
    let ws = tempdir();
    let other = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut stream = daemon.subscribe(&session, Some("0")).await;
    let prompt = tokio::spawn({
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        async move {
            http.post(url)
                .bearer_auth(TOKEN)
                .json(
                    &json!({"prompt": [{"type": "text", "text": "edit target.txt from-the-test"}]}),
                )
                .send()
                .await
        }
    });
    let request = wait_event(&mut stream, "permission_request", |_| true).await;
    let request_id = request["data"]["requestId"].as_str().unwrap().to_owned();

    let result = browser(json!({
        "mode": "cross-origin",
        "base": daemon.base_url(),
        "token": TOKEN,
        "workspace": std::fs::canonicalize(ws.path()).unwrap().display().to_string(),
        "otherWorkspace": std::fs::canonicalize(other.path()).unwrap().display().to_string(),
        "sessionId": session,
        "requestId": request_id,
    }))
    .await;
    let results = &result["results"];
    for name in ["capabilities", "sessions", "events", "vote"] {
        assert_eq!(results[name]["read"], false, "{name}: {results}");
    }
    assert_eq!(results["noCorsSent"], true, "{results}");
    assert_eq!(results["eventSource"]["messages"], 0, "{results}");
    assert_eq!(results["eventSource"]["readyState"], 2, "closed: {results}");
    // The daemon itself refused what the browser delivered without CORS
    // checks (the two no-cors writes, whose answers the page cannot see):
    // 403 before any body was read. Every answer the browser got was a 403.
    let answers = result["answers"].as_array().expect("answers");
    for path in [format!("/permission/{request_id}"), "/session".to_owned()] {
        assert!(
            answers
                .iter()
                .any(|a| a["url"] == daemon.url(&path) && a["status"] == 403),
            "{path} refused: {answers:?}"
        );
    }
    for answer in answers {
        assert_eq!(answer["status"], 403, "{answer}");
    }

    // The daemon refused: the permission is still pending (this vote wins),
    // and no session was created in the other workspace.
    let (status, body) = daemon.vote(&request_id, "cancel").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the page's vote got through: {body}"
    );
    prompt.await.unwrap().unwrap();
    assert!(!ws.path().join("target.txt").exists());
    let cwd = std::fs::canonicalize(other.path()).unwrap();
    let encoded = cwd.display().to_string().replace('/', "%2F");
    let (_, listed) = daemon
        .get_json(&format!("/workspace/{encoded}/sessions"))
        .await;
    assert_eq!(listed["sessions"], json!([]), "{listed}");

    // What the browser sent, seen from the daemon's side: the page's own
    // Origin is refused even with a live console cookie.
    let evil_origin = result["evilOrigin"].as_str().unwrap();
    let login = daemon
        .http()
        .post(daemon.url("/login"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let refused = daemon
        .http()
        .get(daemon.url("/capabilities"))
        .header("cookie", &cookie)
        .header("origin", evil_origin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn login_cookie_flags_and_the_same_origin_rule_over_plain_http() {
    let daemon = daemon_with_token(&[]).await;
    let own = daemon.base_url().to_owned();
    let host = own.trim_start_matches("http://").to_owned();

    // The page is public; the API is not.
    let page = daemon.http().get(daemon.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    let (status, _) = send(daemon.http().get(daemon.url("/capabilities"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A wrong token: 401 JSON, no cookie.
    let wrong = daemon
        .http()
        .post(daemon.url("/login"))
        .header("origin", &own)
        .json(&json!({"token": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "Unauthorized"
    );

    // The right one: the cookie, with its flags, holding no token.
    let login = daemon
        .http()
        .post(daemon.url("/login"))
        .header("origin", &own)
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no TLS, no Secure: {set_cookie}"
    );
    assert!(!set_cookie.contains(TOKEN));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Reads pass with the cookie alone; a mutation needs the console's own Origin.
    let (status, _) = send(
        daemon
            .http()
            .get(daemon.url("/capabilities"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ws = tempdir();
    let body = json!({"cwd": ws.path().display().to_string()});
    let (status, answer) = send(
        daemon
            .http()
            .post(daemon.url("/session"))
            .header("cookie", &cookie)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = send(
        daemon
            .http()
            .post(daemon.url("/session"))
            .header("cookie", &cookie)
            .header("origin", &own)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // A read the browser says another origin of the site sent (an `<img>` or
    // `<script>` of a page on another port): refused, though the cookie came along.
    let (status, _) = send(
        daemon
            .http()
            .get(daemon.url("/capabilities"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-site"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Another origin, or the own origin under a rebound Host: refused.
    for (origin, host_header) in [
        ("http://127.0.0.1:1".to_owned(), host.clone()),
        (
            format!(
                "http://localhost:{}",
                daemon.base_url().rsplit(':').next().unwrap()
            ),
            host.clone(),
        ),
        ("http://evil.example".to_owned(), "evil.example".to_owned()),
    ] {
        let (status, answer) = send(
            daemon
                .http()
                .get(daemon.url("/capabilities"))
                .header("cookie", &cookie)
                .header("origin", &origin)
                .header("host", &host_header),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{origin} / {host_header}: {answer}"
        );
    }

    // Logout clears it.
    let logout = daemon
        .http()
        .post(daemon.url("/logout"))
        .header("cookie", &cookie)
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(logout.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _) = send(
        daemon
            .http()
            .get(daemon.url("/capabilities"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_web_serves_no_page_and_refuses_the_own_origin() {
    let daemon = daemon_with_token(&["--no-web"]).await;
    let own = daemon.base_url().to_owned();
    let (status, _) = send(daemon.http().get(daemon.url("/"))).await;
    assert_ne!(status, StatusCode::OK);
    let (status, _) = send(daemon.request(reqwest::Method::GET, "/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        daemon
            .http()
            .post(daemon.url("/login"))
            .json(&json!({"token": TOKEN})),
    )
    .await;
    assert_ne!(status, StatusCode::OK);
    let (status, _) = send(
        daemon
            .request(reqwest::Method::GET, "/capabilities")
            .header("origin", &own),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the daemon answers");
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
