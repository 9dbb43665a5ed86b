//! What the policy approves is what the daemon opens, and the daemon's
//! secrets stay out of the agent's reach — through the real binary and the
//! fake agent's `fs/*` requests.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

use common::*;
use qserve_e2e::binaries::{fake_agent_path, qserve_host_path};
use qserve_e2e::daemon::{Daemon, DaemonOptions};
use reqwest::StatusCode;

const TOKEN: &str = "tok-3f9a-never-leak-me";

/// The fake agent's report of one prompt (`read: …` / `write: …`).
async fn report(daemon: &Daemon, session: &str, command: &str, expect_prefix: &str) -> String {
    let mut events = daemon.subscribe(session, None).await;
    prompt_ok(daemon, session, command).await;
    let event = wait_event(&mut events, "session_update", |e| {
        chunk_text(e).is_some_and(|text| text.starts_with(expect_prefix))
    })
    .await;
    chunk_text(&event).unwrap().to_owned()
}

async fn daemon_with(policy: &str, token: Option<&str>) -> Daemon {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options
        .args
        .extend(["--component".to_owned(), policy.to_owned()]);
    options.token = token.map(str::to_owned);
    Daemon::start(options).await
}

#[tokio::test]
async fn the_token_never_leaks_through_the_fs_proxy_whatever_the_policy_says() {
    // select-first allows every file access: the refusal must be the host's.
    let permissive = guest_component("policy-select-first");
    let daemon = daemon_with(permissive.to_str().unwrap(), Some(TOKEN)).await;
    let ws = tempdir();
    std::fs::write(ws.path().join("ok.txt"), "fine\n").unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", ws.path().join("env-link")).unwrap();
    let (session, _) = create(&daemon, ws.path()).await;

    // The proxy works (so the refusals below are not a broken proxy).
    let ok = report(
        &daemon,
        &session,
        &format!("read {}/ok.txt", ws.path().display()),
        "read:",
    )
    .await;
    assert_eq!(ok, "read: ok fine\n");

    let daemon_pid = daemon.pid();
    for path in [
        "/proc/self/environ".to_owned(),
        "/proc/self/cmdline".to_owned(),
        format!("/proc/{daemon_pid}/environ"),
        "/proc/thread-self/environ".to_owned(),
        "/sys/kernel/mm/transparent_hugepage/enabled".to_owned(),
        format!("{}/env-link", ws.path().display()),
    ] {
        let text = report(&daemon, &session, &format!("read {path}"), "read:").await;
        assert!(text.starts_with("read: error"), "{path}: {text}");
        assert!(!text.contains(TOKEN), "{path} leaked the token: {text}");
        assert!(
            text.contains("procfs") || text.contains("sysfs") || text.contains("pseudo"),
            "{path}: the refusal names the reason: {text}"
        );
    }
    assert!(!daemon.log().contains(TOKEN), "the token is not in the log");
}

#[tokio::test]
async fn escapes_from_the_workspace_are_refused_by_the_default_policy() {
    let daemon = daemon_with("builtin:default", None).await;
    let root = tempdir();
    let ws = root.path().join("ws");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), ws.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("linkdir")).unwrap();
    std::fs::write(ws.join("mine.txt"), "mine\n").unwrap();
    let (session, _) = create(&daemon, &ws).await;

    let ws_s = ws.display().to_string();
    let inside = report(&daemon, &session, &format!("read {ws_s}/mine.txt"), "read:").await;
    assert_eq!(inside, "read: ok mine\n");

    for path in [
        format!("{ws_s}/../outside/secret.txt"),
        format!("{}", outside.join("secret.txt").display()),
        format!("{ws_s}/link.txt"),
        format!("{ws_s}/linkdir/secret.txt"),
    ] {
        let text = report(&daemon, &session, &format!("read {path}"), "read:").await;
        assert!(text.starts_with("read: error -32001"), "{path}: {text}");
        assert!(text.contains("outside the workspace"), "{path}: {text}");
        assert!(!text.contains("secret\n"), "{path}: {text}");
    }
    for path in [
        format!("{ws_s}/../outside/new.txt"),
        format!("{ws_s}/linkdir/new.txt"),
        format!("{ws_s}/linkdir/deeper/new.txt"),
    ] {
        let text = report(&daemon, &session, &format!("write {path} pwned"), "write:").await;
        assert!(text.starts_with("write: error -32001"), "{path}: {text}");
    }
    let left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("secret.txt")],
        "nothing was created outside"
    );

    // A write inside the workspace, into a new directory, still works.
    let text = report(
        &daemon,
        &session,
        &format!("write {ws_s}/new/dir/f.txt hello"),
        "write:",
    )
    .await;
    assert_eq!(text, "write: ok");
    assert_eq!(
        std::fs::read_to_string(ws.join("new/dir/f.txt")).unwrap(),
        "hello"
    );
}

#[test]
fn the_daemon_is_not_dumpable_so_same_user_agents_cannot_read_its_environ() {
    // Run the daemon as an unprivileged user: a dumpable process's /proc
    // files belong to its own user (readable by anything running as it),
    // a non-dumpable one's to root.
    const NOBODY: u32 = 65534;
    let cache = tempdir();
    std::os::unix::fs::chown(cache.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    // nobody must reach the binary: a checkout may sit in a private
    // directory (`mktemp -d` makes it 0700), so run a copy from one it can.
    let bin_dir = tempdir();
    std::fs::set_permissions(
        bin_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = bin_dir.path().join("qserve-host");
    std::fs::copy(qserve_host_path(), &bin).expect("copy qserve-host");
    let mut command = Command::new(&bin);
    command
        .args(["--port", "0", "--agent", "/bin/true"])
        .env("QSERVE_CACHE_DIR", cache.path())
        .env("QSERVE_TOKEN", TOKEN)
        .env("HOME", cache.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .uid(NOBODY)
        .gid(NOBODY);
    // A file just written can be "text file busy" while another test
    // thread's fork still holds its descriptor (until that child execs).
    let mut attempts = 0;
    let mut child = loop {
        attempts += 1;
        match command.spawn() {
            Err(error) if error.raw_os_error() == Some(26) && attempts < 100 => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => break other.expect("start qserve-host as nobody"),
        }
    };
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("listening on"));
    let pid = child.id();
    let owner = std::fs::metadata(format!("/proc/{pid}/environ")).map(|m| m.uid());
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.is_some(), "the daemon started as nobody");
    assert_eq!(
        owner.unwrap(),
        0,
        "/proc/<daemon>/environ is not readable by its own user"
    );
}

#[tokio::test]
async fn a_token_file_keeps_the_token_off_argv_and_out_of_the_environment() {
    let dir = tempdir();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options
        .args
        .extend(["--token-file".to_owned(), file.display().to_string()]);
    let daemon = Daemon::start(options).await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", daemon.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN));
    let environ = std::fs::read(format!("/proc/{}/environ", daemon.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains(TOKEN));
    let status = daemon
        .http()
        .get(daemon.url("/capabilities"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the file's token is enforced"
    );
    let status = daemon
        .http()
        .get(daemon.url("/capabilities"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let out = Command::new(qserve_host_path())
        .args(["--port", "0", "--token-file"])
        .arg(&empty)
        .env_remove("QSERVE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}

#[tokio::test]
async fn no_token_variable_reaches_the_agent() {
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.token = Some(TOKEN.to_owned());
    options.envs.extend([
        ("QSERVE_ADMIN_TOKEN".to_owned(), "admin-tok-xyz".to_owned()),
        ("QWEN_SERVER_TOKEN".to_owned(), "qwen-tok-xyz".to_owned()),
        ("UNRELATED_VARIABLE".to_owned(), "1".to_owned()),
    ]);
    let daemon = Daemon::start(options).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let text = report(
        &daemon,
        &session,
        "env QSERVE_TOKEN QSERVE_ADMIN_TOKEN QWEN_SERVER_TOKEN UNRELATED_VARIABLE",
        "env:",
    )
    .await;
    assert_eq!(
        text,
        "env: QSERVE_TOKEN=unset QSERVE_ADMIN_TOKEN=unset QWEN_SERVER_TOKEN=unset UNRELATED_VARIABLE=set"
    );
}
