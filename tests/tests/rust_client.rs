//! The Rust client crate (`qserve-client`) against the real daemon and the
//! fake agent: typed answers and errors for the routes, and an event stream
//! that survives real disconnects without losing or repeating an event.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use qserve_client::{Client, ClientError, CreateSession, ReconnectPolicy, SessionScope, Vote};
use qserve_e2e::cutting_proxy::CuttingProxy;

fn client_for(daemon: &qserve_e2e::Daemon) -> Client {
    Client::new(daemon.base_url()).expect("the daemon's URL")
}

fn daemon_addr(daemon: &qserve_e2e::Daemon) -> SocketAddr {
    daemon
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an ip:port base URL")
}

#[tokio::test]
async fn every_route_answers_typed_values_and_typed_errors() {
    let daemon = daemon(&[], &[]).await;
    let client = client_for(&daemon);
    let ws = tempdir();
    let cwd = ws.path().display().to_string();

    assert_eq!(client.health().await.unwrap().status, "ok");
    let deep = client.deep_health().await.unwrap();
    assert!(deep.extra.contains_key("policy"), "{deep:?}");
    let caps = client.capabilities().await.unwrap();
    assert_eq!(caps.v, 1);
    assert_eq!(caps.policy.expect("the active policy").name, "default");
    assert!(client.openapi().await.unwrap()["paths"]["/session"].is_object());

    let created = client
        .create_session(&CreateSession::new(&cwd))
        .await
        .unwrap();
    assert!(!created.attached);
    let again = client
        .create_session(&CreateSession::new(&cwd))
        .await
        .unwrap();
    assert_eq!(
        (again.attached, &again.session_id),
        (true, &created.session_id)
    );
    let mut thread = CreateSession::new(&cwd);
    thread.session_scope = Some(SessionScope::Thread);
    let other = client.create_session(&thread).await.unwrap();
    assert_ne!(other.session_id, created.session_id);

    let listed = client.workspace_sessions(&cwd).await.unwrap();
    let ids: Vec<_> = listed
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [created.session_id.as_str(), other.session_id.as_str()]
    );

    let answer = client
        .prompt_text(&created.session_id, "echo hi")
        .await
        .unwrap();
    assert_eq!(answer.stop_reason.as_deref(), Some("end_turn"));
    client.cancel(&created.session_id).await.unwrap();

    // Errors carry the status and the daemon's code.
    let missing = client
        .create_session(&CreateSession::new(format!("{cwd}/no-such-dir")))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(400), Some("workspace_not_found"))
    );
    let vote = client
        .vote("00000000-0000-0000-0000-000000000000", &Vote::Cancelled)
        .await
        .unwrap_err();
    assert_eq!(vote.status(), Some(404), "{vote}");

    client.delete_session(&other.session_id).await.unwrap();
    let gone = client.delete_session(&other.session_id).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    let unreachable = Client::new("http://127.0.0.1:9").unwrap().health().await;
    assert!(matches!(unreachable, Err(ClientError::Transport(_))));
}

#[tokio::test]
async fn a_vote_through_the_client_answers_the_agent() {
    let daemon = daemon(&[], &[]).await;
    let client = client_for(&daemon);
    let ws = tempdir();
    let session = client
        .create_session(&CreateSession::new(ws.path().display().to_string()))
        .await
        .unwrap()
        .session_id;
    let mut events = client.events(&session, Some(0));
    let prompt = tokio::spawn({
        let client = client.clone();
        let session = session.clone();
        async move { client.prompt_text(&session, "permission").await }
    });
    let request = loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("a permission request in time")
            .expect("the stream is open")
            .unwrap();
        if let Some(request) = event.permission_request() {
            break request;
        }
    };
    let allow = request
        .options
        .iter()
        .find(|o| o.kind == "allow_once")
        .expect("an allow_once option");
    client
        .vote(
            &request.request_id,
            &Vote::Selected(allow.option_id.clone()),
        )
        .await
        .unwrap();
    let late = client
        .vote(&request.request_id, &Vote::Cancelled)
        .await
        .unwrap_err();
    assert_eq!(late.status(), Some(404), "the first vote won");
    let outcome = loop {
        let event = events.next().await.unwrap().unwrap();
        if let Some(text) = event.agent_text() {
            if text.starts_with("outcome:") {
                break text.to_owned();
            }
        }
    };
    assert_eq!(outcome, format!("outcome: selected {}", allow.option_id));
    prompt.await.unwrap().unwrap();
}

/// Ten turns of 40 chunks; in each, the proxy resets the connection after
/// the first 20 chunks arrived (the rest are published while the client is
/// cut off or reconnecting). The client must reconnect with `Last-Event-ID`
/// and deliver every event exactly once, in order.
#[tokio::test]
async fn the_event_stream_survives_forced_disconnects_without_loss_or_duplicates() {
    let daemon = daemon(&[], &[]).await;
    let proxy = CuttingProxy::start(daemon_addr(&daemon)).await;
    let direct = client_for(&daemon);
    let through_proxy = Client::new(&proxy.url()).unwrap();
    let ws = tempdir();
    let session = direct
        .create_session(&CreateSession::new(ws.path().display().to_string()))
        .await
        .unwrap()
        .session_id;

    let mut events = through_proxy.events_with(
        &session,
        Some(0),
        ReconnectPolicy {
            delay: Some(Duration::from_millis(20)),
            max_failures: 50,
        },
    );
    const TURNS: usize = 10;
    const CHUNKS: usize = 40;
    let mut ids = Vec::new();
    for turn in 0..TURNS {
        let prompt = tokio::spawn({
            let direct = direct.clone();
            let session = session.clone();
            async move {
                direct
                    .prompt_text(&session, &format!("chunks {CHUNKS}"))
                    .await
            }
        });
        let mut chunks = Vec::new();
        while chunks.len() < CHUNKS {
            let event = tokio::time::timeout(WAIT, events.next())
                .await
                .expect("the stream goes on after each cut")
                .expect("the stream is open")
                .expect("no stream error");
            ids.extend(event.id);
            if let Some(text) = event.agent_text() {
                chunks.push(text.split(' ').nth(1).unwrap().parse::<usize>().unwrap());
                if chunks.len() == CHUNKS / 2 {
                    proxy.cut_all();
                }
            }
        }
        assert_eq!(
            chunks,
            (0..CHUNKS).collect::<Vec<_>>(),
            "turn {turn}: every chunk once, in order"
        );
        prompt.await.unwrap().unwrap();
    }

    assert!(
        events.reconnects() >= (TURNS - 1) as u64,
        "reconnected {} times",
        events.reconnects()
    );
    assert!(
        proxy.accepted() >= TURNS as u64,
        "{} connections",
        proxy.accepted()
    );
    let expected_ids: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected_ids, "every id once, in order");

    // The session's end ends the stream, even across a cut.
    proxy.cut_all();
    direct.delete_session(&session).await.unwrap();
    // The last turn's turn_complete may still come first.
    let last = loop {
        let next = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("the end in time");
        match &next {
            Some(Ok(event)) if event.kind != "session_died" => continue,
            _ => break next,
        }
    };
    match last {
        Some(Ok(event)) => {
            assert_eq!(event.kind, "session_died", "{event:?}");
            assert!(events.next().await.is_none(), "nothing after session_died");
        }
        // The cut came before session_died reached us and the session was
        // already gone when the stream came back: a 404, not a hang.
        Some(Err(err)) => assert_eq!(err.status(), Some(404), "{err}"),
        None => panic!("the stream ended without saying why"),
    }
}

/// `GET /session/:id` names the session's agent (two named agents in one
/// workspace), and an ended session says why (`session_ended`).
#[tokio::test]
async fn a_session_describes_its_agent_and_an_ended_one_says_why() {
    let fake = qserve_e2e::fake_agent_path().display().to_string();
    let daemon = daemon(&["--agent-def", &format!("second={fake}")], &[]).await;
    let client = client_for(&daemon);
    let ws = tempdir();
    let cwd = ws.path().display().to_string();
    let first = client
        .create_session(&CreateSession::new(&cwd))
        .await
        .unwrap();
    let mut on_second = CreateSession::new(&cwd);
    on_second.agent = Some("second".into());
    let second = client.create_session(&on_second).await.unwrap();
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(second.agent.as_deref(), Some("second"));

    let info = client.session(&second.session_id).await.unwrap();
    assert_eq!(info.agent, "second");
    assert_eq!(info.agent_command, "fake-agent");
    assert_eq!(info.workspace_cwd, first.workspace_cwd);
    assert_eq!(info.scope, SessionScope::Single);
    assert_eq!(
        client.session(&first.session_id).await.unwrap().agent,
        "default"
    );

    client.delete_session(&second.session_id).await.unwrap();
    let ended = client.session(&second.session_id).await.unwrap_err();
    assert_eq!(
        (ended.status(), ended.code()),
        (Some(404), Some("session_ended")),
        "{ended}"
    );
    let unknown = client.session("no-such-session").await.unwrap_err();
    assert_eq!(
        (unknown.status(), unknown.code()),
        (Some(404), None),
        "{unknown}"
    );
}
