//! Coalesced creates, deterministic: the agent is an in-process ACP agent
//! on a pipe whose `initialize` the test holds (`testing::PipeSpawner`), so
//! both creates are provably in flight while the first spawn is; the core's
//! logic runs natively; time is paused and never left idle while a spawn is
//! held (its `--init-timeout` would fire).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use qserve_http::{CreateSession, SessionScope};

use crate::bridge::testing::{busy, hold_hub, inner_with, settle, PipeSpawner};
use crate::bridge::Inner;

async fn creates_in_flight(inner: &Inner) -> u32 {
    busy(inner.hub.call(|hub| hub.core.stats().unwrap()))
        .await
        .unwrap()
        .creates_in_flight
}

fn create(
    inner: &Arc<Inner>,
    scope: SessionScope,
) -> tokio::task::JoinHandle<Result<qserve_http::SessionCreated, qserve_http::BackendError>> {
    let inner = inner.clone();
    tokio::spawn(async move {
        inner
            .create_or_attach(CreateSession {
                cwd: std::env::temp_dir(),
                model_service_id: None,
                scope: Some(scope),
                agent: None,
            })
            .await
    })
}

/// Both creates asked the core, and the first spawn is held at `initialize`.
async fn both_in_flight_one_spawn_held(inner: &Inner, spawner: &PipeSpawner, in_flight: u32) {
    while creates_in_flight(inner).await < in_flight || spawner.spawned.load(Ordering::Acquire) == 0
    {
        tokio::task::yield_now().await;
    }
    // Whatever the second create does next, it does now.
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn two_thread_scope_creates_in_one_workspace_start_one_agent() {
    let spawner = PipeSpawner::new();
    let inner = inner_with(Duration::from_secs(60), spawner.clone());
    let first = create(&inner, SessionScope::Thread);
    let second = create(&inner, SessionScope::Thread);
    both_in_flight_one_spawn_held(&inner, &spawner, 2).await;
    assert_eq!(spawner.spawned.load(Ordering::Acquire), 1, "one spawn");
    // One answer only: a second agent would wait for ever.
    spawner.release_initialize(1);
    let first = busy(first).await.unwrap().expect("the first create");
    let second = busy(second).await.unwrap().expect("the second create");
    assert!(!first.attached && !second.attached);
    assert_ne!(first.session_id, second.session_id, "two sessions");
    assert_eq!(spawner.spawned.load(Ordering::Acquire), 1, "on one agent");
    let sessions = inner.sessions.lock().unwrap();
    assert!(Arc::ptr_eq(
        &sessions[&first.session_id].agent,
        &sessions[&second.session_id].agent
    ));
}

#[tokio::test(start_paused = true)]
async fn a_single_scope_create_during_a_create_attaches_to_its_session() {
    let spawner = PipeSpawner::new();
    let inner = inner_with(Duration::from_secs(60), spawner.clone());
    let first = create(&inner, SessionScope::Single);
    let second = create(&inner, SessionScope::Single);
    // The core holds one create; the second waits on it.
    both_in_flight_one_spawn_held(&inner, &spawner, 1).await;
    while !inner
        .in_flight
        .lock()
        .unwrap()
        .values()
        .any(|create| create.outcome.receiver_count() > 0)
    {
        busy(creates_in_flight(&inner)).await;
    }
    spawner.release_initialize(1);
    let first = busy(first).await.unwrap().expect("the first create");
    let second = busy(second).await.unwrap().expect("the second create");
    assert!(!first.attached);
    assert!(second.attached, "the second attached");
    assert_eq!(first.session_id, second.session_id);
    assert_eq!(spawner.spawned.load(Ordering::Acquire), 1);
}

/// Seed edge case: the last holder leaves while another client attaches.
/// The detach and the decision to close are one hub job
/// (`Inner::end_session_if`), so an attach queued behind it gets a fresh
/// session, never the one being closed (`qwen serve` once reaped a session
/// a client was just being handed).
#[tokio::test(start_paused = true)]
async fn an_attach_queued_behind_the_last_detach_never_gets_the_closing_session() {
    let spawner = PipeSpawner::new();
    let inner = inner_with(Duration::from_secs(60), spawner.clone());
    // The first agent, and one more should the attach need to start its own.
    spawner.release_initialize(2);
    let first = busy(create(&inner, SessionScope::Single))
        .await
        .unwrap()
        .expect("the first create");
    let gate = busy(hold_hub(&inner)).await;
    // The last holder leaves: its detach is queued first...
    let releasing = {
        let (inner, session_id) = (inner.clone(), first.session_id.clone());
        tokio::spawn(async move { inner.release(&session_id).await })
    };
    settle().await;
    // ...then a client asks for the workspace's session.
    let attaching = create(&inner, SessionScope::Single);
    settle().await;
    drop(gate);
    busy(releasing).await.unwrap();
    let second = busy(attaching).await.unwrap().expect("the second create");
    assert_ne!(
        second.session_id, first.session_id,
        "the session being closed was handed out"
    );
    assert!(!second.attached, "a fresh session");
    let sessions = inner.sessions.lock().unwrap();
    assert!(
        !sessions.contains_key(&first.session_id),
        "the first is closed"
    );
    assert!(
        sessions.contains_key(&second.session_id),
        "what the client got is live"
    );
}

/// Found by the soak run: a create could take an agent whose last session
/// was being closed, and see its new session die with the agent's stop. A
/// create now holds its agent from the moment it takes it: the close of the
/// last session does not stop an agent a create holds, and a create never
/// takes an agent whose stop has begun.
#[tokio::test(start_paused = true)]
async fn a_create_holding_the_agent_keeps_it_past_the_last_close_and_a_stopped_one_is_never_taken()
{
    let spawner = PipeSpawner::new();
    let inner = inner_with(Duration::from_secs(60), spawner.clone());
    spawner.release_initialize(2);
    let workspace = super::canonical_workspace(&std::env::temp_dir());
    let def = inner.config.agents.default_agent().clone();
    let first = busy(create(&inner, SessionScope::Thread))
        .await
        .unwrap()
        .expect("the first create");
    let agent = inner.sessions.lock().unwrap()[&first.session_id]
        .agent
        .clone();

    // A create has taken the agent when the last session closes: it stays.
    let claim = busy(inner.agent_for(&workspace, &def))
        .await
        .expect("taken");
    assert!(Arc::ptr_eq(&claim, &agent));
    busy(inner.clone().close(&first.session_id))
        .await
        .expect("closed");
    assert!(
        !agent.stopping.load(Ordering::Acquire),
        "an agent a create holds was stopped"
    );
    drop(claim);

    // Nobody holds it: the next close of its last session stops it, and
    // a later create starts a fresh agent instead of taking the stopped one.
    let second = busy(create(&inner, SessionScope::Thread))
        .await
        .unwrap()
        .expect("the second create");
    busy(inner.clone().close(&second.session_id))
        .await
        .expect("closed");
    assert!(agent.stopping.load(Ordering::Acquire), "unused, so stopped");
    let fresh = busy(inner.agent_for(&workspace, &def))
        .await
        .expect("taken");
    assert!(
        !Arc::ptr_eq(&fresh, &agent),
        "a stopped agent was handed out"
    );
    assert_eq!(spawner.spawned.load(Ordering::Acquire), 2);
}
