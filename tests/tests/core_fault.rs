//! A core fault behind the running daemon (the test-only `core-faulty`
//! component, via the hidden `--core-component` flag): the daemon stays up,
//! nobody hangs, waiting agents are answered `cancelled`, subscribers are
//! told what was lost, and sessions carry on with their id sequences.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn a_core_trap_cancels_waiting_permissions_tells_subscribers_and_sessions_carry_on() {
    let faulty = guest_component("core-faulty");
    let daemon = daemon(
        &[
            "--core-component",
            faulty.to_str().unwrap(),
            "--session-scope",
            "thread",
        ],
        &[],
    )
    .await;
    let ws = tempdir();
    let (waiting, _) = create(&daemon, ws.path()).await;
    let (trigger, _) = create(&daemon, ws.path()).await;
    let mut waiting_events = daemon.subscribe(&waiting, Some("0")).await;

    // An agent waiting on the clients' votes…
    let turn = prompt(&daemon, &waiting, "permission edit");
    let fault = async {
        wait_event(&mut waiting_events, "permission_request", |_| true).await;
        // …when another session's event makes the core trap.
        prompt(&daemon, &trigger, "echo qserve-test-core-trap").await
    };
    let ((status, body), (trigger_status, _)) = tokio::join!(turn, fault);
    assert_eq!(
        trigger_status,
        StatusCode::OK,
        "the triggering prompt itself completes"
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    let restarted = wait_event(&mut waiting_events, "core_restarted", |_| true).await;
    assert!(restarted["data"]["lost"].is_array(), "{restarted}");
    wait_chunk(&mut waiting_events, "outcome: cancelled").await;

    let before = restarted["data"]["lastEventId"].as_u64().unwrap();
    prompt_ok(&daemon, &waiting, "echo still here").await;
    let after = wait_chunk(&mut waiting_events, "still here").await;
    assert!(
        after["id"].as_u64().unwrap() > before,
        "ids continue after the restart"
    );
    assert!(
        daemon.log().contains("core guest fault"),
        "the fault is logged"
    );
    assert_eq!(daemon.get_json("/health?deep=1").await.0, StatusCode::OK);
}
