//! Agents under the guard (`qserve_acp::guard`): the guard's own binary is
//! the one the tests run; qserve-host runs itself the same way.

use std::time::{Duration, Instant};

use qserve_acp::{guard, AgentCommand, AgentProcess};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;

fn spawn_guarded(script: &str) -> (AgentProcess, tokio::process::ChildStdin, ChildStdout) {
    guard::use_guard(env!("CARGO_BIN_EXE_qserve-agent-guard"));
    let command = AgentCommand::new("sh", ["-c", script]);
    AgentProcess::spawn(&command, &std::env::temp_dir(), &[]).expect("sh spawns")
}

async fn read_pids(stdout: ChildStdout, n: usize) -> Vec<i32> {
    let mut lines = BufReader::new(stdout).lines();
    let mut pids = Vec::new();
    while pids.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the script prints its pids")
            .unwrap()
            .expect("stdout open");
        pids.push(line.trim().parse().expect("a pid"));
    }
    pids
}

fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with(['Z', 'X']))
}

async fn assert_all_gone(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive: Vec<_> = pids.iter().filter(|&&p| is_running(p)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes survived: {alive:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// A child in the agent's group, and one in a session of its own, which no
// group kill reaches.
const FAMILY: &str = "sleep 300 & echo $!; setsid sleep 300 & echo $!; echo $$; wait";

#[tokio::test]
async fn kill_group_takes_children_that_left_the_group() {
    let (process, _stdin, stdout) = spawn_guarded(FAMILY);
    let pids = read_pids(stdout, 3).await;
    assert!(pids.iter().all(|&p| is_running(p)));
    process.kill_group();
    let info = process.wait().await;
    assert_eq!(
        info.signal,
        Some(9),
        "the agent's own end is reported: {info}"
    );
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn when_the_agent_exits_what_it_left_behind_is_killed_and_its_code_reported() {
    let (process, stdin, stdout) =
        spawn_guarded("sleep 300 & echo $!; setsid sleep 300 & echo $!; read line; exit 7");
    let pids = read_pids(stdout, 2).await;
    drop(stdin); // `read` ends: the agent exits 7
    let info = process.wait().await;
    assert_eq!((info.code, info.signal), (Some(7), None), "{info}");
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn terminate_is_seen_by_the_agent_not_swallowed_by_the_guard() {
    let (process, _stdin, stdout) =
        spawn_guarded("trap 'exit 5' TERM; echo $$; while :; do sleep 0.05; done");
    let pids = read_pids(stdout, 1).await;
    let info = process.terminate(Duration::from_secs(20)).await;
    assert_eq!(info.code, Some(5), "the agent's TERM handler ran: {info}");
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn a_missing_program_is_still_named_before_any_process_starts() {
    guard::use_guard(env!("CARGO_BIN_EXE_qserve-agent-guard"));
    let command = AgentCommand::parse("qserve-no-such-agent-xyz --acp").unwrap();
    let err = AgentProcess::spawn(&command, &std::env::temp_dir(), &[]).unwrap_err();
    assert!(
        matches!(err, qserve_acp::SpawnError::NotFound { .. }),
        "{err:?}"
    );
}
