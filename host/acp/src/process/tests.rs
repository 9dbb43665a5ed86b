use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::*;

fn sh(script: &str) -> AgentCommand {
    AgentCommand::new("sh", ["-c", script])
}

fn spawn_sh(script: &str) -> (AgentProcess, ChildStdin, ChildStdout) {
    AgentProcess::spawn(&sh(script), &std::env::temp_dir(), &[]).expect("sh spawns")
}

/// Reads `n` pids, one per line, that the script printed on stdout.
async fn read_pids(stdout: ChildStdout, n: usize) -> Vec<i32> {
    let mut lines = BufReader::new(stdout).lines();
    let mut pids = Vec::new();
    while pids.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("script prints its pids")
            .unwrap()
            .expect("stdout open");
        pids.push(line.trim().parse().expect("a pid"));
    }
    pids
}

/// True once `pid` no longer runs (gone, or a zombie waiting to be reaped).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

async fn assert_all_gone(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<_> = pids.iter().filter(|&&p| !is_gone(p)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes survived: {alive:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_group_kills_every_process_of_the_group() {
    let (process, _stdin, stdout) = spawn_sh("sleep 300 & echo $!; sleep 300 & echo $!; wait");
    let pids = read_pids(stdout, 2).await;
    assert!(
        pids.iter().all(|&p| !is_gone(p)),
        "both sleeps run before the kill"
    );
    process.kill_group();
    let info = process.wait().await;
    assert_eq!(info.signal, Some(9), "{info}");
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn terminate_stops_a_cooperative_group_with_sigterm() {
    let (process, _stdin, stdout) = spawn_sh("sleep 300 & echo $!; wait");
    let pids = read_pids(stdout, 1).await;
    let started = Instant::now();
    let info = process.terminate(Duration::from_secs(10)).await;
    assert_eq!(info.signal, Some(15), "{info}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait out the grace"
    );
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn terminate_kills_a_group_that_ignores_sigterm_after_the_grace() {
    // `trap '' TERM` is inherited by the background sleep: nobody in the group dies of TERM.
    let (process, _stdin, stdout) =
        spawn_sh("trap '' TERM; sleep 300 & echo $!; while :; do sleep 0.05; done");
    let pids = read_pids(stdout, 1).await;
    let started = Instant::now();
    let info = process.terminate(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(info.signal, Some(9), "{info}");
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn dropping_the_process_kills_its_group() {
    let (process, _stdin, stdout) = spawn_sh("sleep 300 & echo $!; sleep 300 & echo $!; wait");
    let mut pids = read_pids(stdout, 2).await;
    pids.push(process.pid() as i32);
    drop(process);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn orphans_die_with_the_leader() {
    let (process, _stdin, stdout) = spawn_sh("sleep 300 & echo $!");
    let pids = read_pids(stdout, 1).await;
    let info = process.wait().await;
    assert_eq!(info.code, Some(0));
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn exit_code_is_seen_by_every_waiter() {
    let (process, _stdin, _stdout) = spawn_sh("sleep 0.1; exit 7");
    let watch = process.exit_watch();
    let other = tokio::spawn(async move { watch.wait().await });
    let info = process.wait().await;
    assert_eq!(
        info,
        ExitInfo {
            code: Some(7),
            signal: None
        }
    );
    assert_eq!(other.await.unwrap(), info);
    assert_eq!(process.try_wait(), Some(info));
    assert_eq!(info.to_string(), "exit code 7");
}

#[tokio::test]
async fn runs_in_the_workspace_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (process, _stdin, mut stdout) = AgentProcess::spawn(&sh("pwd"), dir.path(), &[]).unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(
        std::fs::canonicalize(out.trim()).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
    assert_eq!(process.cwd(), dir.path());
    process.wait().await;
}

#[tokio::test]
async fn scrubbed_variables_do_not_reach_the_agent() {
    assert!(
        std::env::var_os("HOME").is_some(),
        "test needs HOME set in its environment"
    );
    let (process, _stdin, mut stdout) = AgentProcess::spawn(
        &sh(r#"echo "HOME=${HOME-unset} PATH=${PATH:+kept}""#),
        &std::env::temp_dir(),
        &["HOME", "QSERVE_TOKEN"],
    )
    .unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out.trim(), "HOME=unset PATH=kept");
    process.wait().await;
}

#[tokio::test]
async fn a_missing_program_says_how_to_install_an_agent() {
    let command = AgentCommand::parse("qserve-no-such-agent-xyz --acp").unwrap();
    let err = AgentProcess::spawn(&command, &std::env::temp_dir(), &[]).unwrap_err();
    let SpawnError::NotFound { program, message } = &err else {
        panic!("expected NotFound, got {err:?}");
    };
    assert_eq!(program, "qserve-no-such-agent-xyz");
    for needle in [
        "`qserve-no-such-agent-xyz`",
        "npm i -g @qwen-code/qwen-code",
        "gemini --experimental-acp",
        "claude-code-acp",
        "codex-acp",
        "--agent",
        "QSERVE_AGENT",
    ] {
        assert!(
            message.contains(needle),
            "message lacks {needle:?}: {message}"
        );
    }
}

#[tokio::test]
async fn a_missing_workspace_is_not_reported_as_a_missing_program() {
    let err =
        AgentProcess::spawn(&sh("true"), Path::new("/no/such/workspace/dir"), &[]).unwrap_err();
    assert!(matches!(err, SpawnError::BadWorkspace { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/workspace/dir"));
}

/// A `tracing` writer into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// current_thread: the stderr task runs on this thread, under the test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn stderr_lines_are_logged_with_pid_and_cwd_and_long_lines_truncated() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let script = "echo hello-from-agent >&2; head -c 20000 /dev/zero | tr '\\0' x >&2; echo >&2; echo after-long >&2";
    let (process, _stdin, _stdout) = spawn_sh(script);
    let pid = process.pid();
    process.wait().await;

    let deadline = Instant::now() + Duration::from_secs(5);
    while !captured.text().contains("after-long") {
        assert!(
            Instant::now() < deadline,
            "stderr not forwarded: {}",
            captured.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = captured.text();
    let prefix = format!("pid={pid} cwd={}", std::env::temp_dir().display());
    let hello = log
        .lines()
        .find(|l| l.contains("hello-from-agent"))
        .unwrap();
    assert!(hello.contains(&prefix), "{hello}");
    let long = log.lines().find(|l| l.contains("xxxx")).unwrap();
    assert!(
        long.len() < STDERR_LINE_CAP + 500,
        "long line not truncated ({} bytes)",
        long.len()
    );
    let dropped = 20000 - STDERR_LINE_CAP;
    assert!(
        long.contains(&format!("[{dropped} more bytes truncated]")),
        "{long}"
    );
}
