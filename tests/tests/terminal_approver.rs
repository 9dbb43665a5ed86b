//! `qserve-host attach SESSION`, the terminal approver, driven through a real
//! pseudo-terminal (raw mode, one key per vote) against the real daemon and
//! the fake agent.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use qserve_client::{Client, CreateSession, Vote};
use qserve_e2e::binaries::qserve_host_path;

/// The approver's terminal: what it printed so far, and its keyboard.
struct Terminal {
    keyboard: std::fs::File,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn press(&mut self, key: &str) {
        self.keyboard.write_all(key.as_bytes()).unwrap();
        self.keyboard.flush().unwrap();
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits until the screen shows `needle` `times` times.
    async fn wait_for_n(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        while self.text().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {needle:?} ×{times}; it shows:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for(&self, needle: &str) {
        self.wait_for_n(needle, 1).await
    }
}

fn attach(daemon: &qserve_e2e::Daemon, session: &str) -> (tokio::process::Child, Terminal) {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave: OwnedFd = pty.slave;
    let child = tokio::process::Command::new(qserve_host_path())
        .args(["attach", session, "--url", daemon.base_url()])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true)
        .spawn()
        .expect("start qserve-host attach");
    let master = std::fs::File::from(pty.master);
    let screen = Arc::new(Mutex::new(String::new()));
    {
        let mut reader = master.try_clone().unwrap();
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the approver exits and the slave side is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    (
        child,
        Terminal {
            keyboard: master,
            screen,
        },
    )
}

#[tokio::test]
async fn one_key_votes_other_clients_votes_resolve_the_card_and_the_end_exits() {
    let daemon = daemon(&[], &[]).await;
    let client = Client::new(daemon.base_url()).unwrap();
    let ws = tempdir();
    let session = client
        .create_session(&CreateSession::new(ws.path().display().to_string()))
        .await
        .unwrap()
        .session_id;
    let (mut approver, mut terminal) = attach(&daemon, &session);
    terminal.wait_for("attached to session").await;

    // A permission request becomes a card; key 2 picks the second option.
    let first = tokio::spawn({
        let client = client.clone();
        let session = session.clone();
        async move { client.prompt_text(&session, "permission").await }
    });
    terminal.wait_for("[2] Allow always (allow_always)").await;
    terminal.press("2");
    terminal
        .wait_for("voted: Allow always (proceed_always)")
        .await;
    terminal
        .wait_for("agent: outcome: selected proceed_always")
        .await;
    first.await.unwrap().unwrap();

    // Another client votes first: the card resolves, a late key does nothing.
    let mut events = client.events(&session, Some(0));
    let second = tokio::spawn({
        let client = client.clone();
        let session = session.clone();
        async move { client.prompt_text(&session, "permission").await }
    });
    // The stream replays from the start: the first request is the one
    // already voted on, the second is new.
    let mut seen = 0;
    let request = loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(request) = event.permission_request() {
            seen += 1;
            if seen == 2 {
                break request;
            }
        }
    };
    terminal.wait_for_n("== permission request", 2).await;
    client
        .vote(&request.request_id, &Vote::Cancelled)
        .await
        .unwrap();
    terminal
        .wait_for(&format!("resolved {}: cancelled", &request.request_id[..8]))
        .await;
    terminal.press("1");
    terminal.wait_for("(no pending permission request)").await;
    second.await.unwrap().unwrap();

    // Agent text cannot drive the reviewer's terminal.
    client
        .prompt_text(&session, "echo evil \u{1b}[2J done")
        .await
        .unwrap();
    terminal.wait_for("agent: evil ^[[2J done").await;
    assert!(
        !terminal.text().contains("\u{1b}[2J"),
        "ESC reached the terminal"
    );

    // The session's end ends the approver, with success.
    client.delete_session(&session).await.unwrap();
    terminal.wait_for("session ended: closed").await;
    let status = tokio::time::timeout(WAIT, approver.wait())
        .await
        .expect("the approver exits when the session ends")
        .unwrap();
    assert!(status.success(), "{status}");
}
