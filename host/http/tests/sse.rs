//! The SSE stream as bytes on the wire: preamble, replay, live, dedup,
//! eviction, heartbeats, resume-cursor parsing and shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::client::SseConn;
use common::{Req, TestServer};
use qserve_http::{encode_event, EventFrame, HttpConfig};

fn frame(id: u64) -> EventFrame {
    encode_event(
        Some(id),
        "session_update",
        &format!(r#"{{"n":{id}}}"#),
        None,
    )
}

fn text(frame: &EventFrame) -> String {
    String::from_utf8(frame.bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn retry_then_replay_then_live_with_duplicates_skipped() {
    let server = TestServer::start().await;
    *server.backend.replay.lock().unwrap() = vec![frame(1), frame(2), frame(3)];
    let mut conn = SseConn::open(
        server.addr,
        Req::get("/session/s-1/events").header("Last-Event-ID", "0"),
    )
    .await;
    assert_eq!(conn.status, 200);
    assert_eq!(conn.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.header("cache-control"), Some("no-cache"));

    let live = server.backend.next_live().await;
    // 3 was published while the subscription was set up: it is in both.
    for id in [3, 4] {
        live.sender.send(frame(id)).await.unwrap();
    }
    let originated = encode_event(Some(5), "permission_resolved", "{}", Some("client-a"));
    live.sender.send(originated.clone()).await.unwrap();
    drop(live); // the session ended: live closes without eviction

    let body = conn.read_to_end().await;
    let expected = format!(
        "retry: 3000\n\n{}{}{}{}{}",
        text(&frame(1)),
        text(&frame(2)),
        text(&frame(3)),
        text(&frame(4)),
        text(&originated)
    );
    assert_eq!(body, expected);
    assert!(body.contains(
        "id: 5\nevent: permission_resolved\ndata: {\"id\":5,\"v\":1,\"type\":\"permission_resolved\",\"data\":{},\"originatorClientId\":\"client-a\"}\n\n"
    ));
    assert_eq!(*server.backend.subscribe_cursors.lock().unwrap(), [Some(0)]);
}

#[tokio::test]
async fn live_frames_at_or_below_the_resume_cursor_are_skipped() {
    let server = TestServer::start().await;
    let mut conn = SseConn::open(
        server.addr,
        Req::get("/session/s-1/events").header("Last-Event-ID", "5"),
    )
    .await;
    let live = server.backend.next_live().await;
    let synthetic = encode_event(None, "model_switched", r#"{"modelId":"m"}"#, None);
    for f in [frame(4), frame(5), synthetic.clone(), frame(6)] {
        live.sender.send(f).await.unwrap();
    }
    drop(live);
    let body = conn.read_to_end().await;
    assert_eq!(
        body,
        format!("retry: 3000\n\n{}{}", text(&synthetic), text(&frame(6)))
    );
}

#[tokio::test]
async fn an_evicted_subscriber_gets_client_evicted_then_the_end() {
    let server = TestServer::start().await;
    let mut conn = SseConn::open(server.addr, Req::get("/session/s-1/events")).await;
    let live = server.backend.next_live().await;
    live.sender.send(frame(1)).await.unwrap();
    live.evicted.store(true, Ordering::Release);
    drop(live);
    let body = conn.read_to_end().await;
    assert_eq!(
        body,
        format!(
            "retry: 3000\n\n{}{}",
            text(&frame(1)),
            "event: client_evicted\ndata: {\"v\":1,\"type\":\"client_evicted\",\"data\":{\"reason\":\"subscriber fell behind the live event queue\"}}\n\n"
        )
    );
}

#[tokio::test]
async fn idle_streams_get_heartbeat_comments() {
    let server = TestServer::with_config(HttpConfig {
        heartbeat: Duration::from_millis(150),
        ..HttpConfig::default()
    })
    .await;
    let opened = tokio::time::Instant::now();
    let mut conn = SseConn::open(server.addr, Req::get("/session/s-1/events")).await;
    let live = server.backend.next_live().await;
    let body = conn.read_until(": ping\n\n").await;
    assert!(opened.elapsed() >= Duration::from_millis(140));
    assert_eq!(body, "retry: 3000\n\n: ping\n\n");
    let body = conn.read_until(": ping\n\n: ping\n\n").await;
    assert_eq!(body, "retry: 3000\n\n: ping\n\n: ping\n\n");
    live.sender.send(frame(1)).await.unwrap();
    conn.read_until("id: 1\n").await;
}

#[tokio::test]
async fn only_pure_decimal_cursors_up_to_2_pow_53_minus_1_count() {
    let server = TestServer::start().await;
    let cases: [(&str, Option<u64>); 7] = [
        ("12abc", None),
        ("-1", None),
        ("1.5e10z", None),
        ("9007199254740992", None),
        ("9007199254740991", Some(9_007_199_254_740_991)),
        ("0", Some(0)),
        ("42", Some(42)),
    ];
    for (value, _) in cases {
        let conn = SseConn::open(
            server.addr,
            Req::get("/session/s-1/events").header("Last-Event-ID", value),
        )
        .await;
        assert_eq!(conn.status, 200, "{value}");
    }
    let query = SseConn::open(server.addr, Req::get("/session/s-1/events?lastEventId=7")).await;
    assert_eq!(query.status, 200);
    let expected: Vec<Option<u64>> = cases
        .iter()
        .map(|(_, parsed)| *parsed)
        .chain([Some(7)])
        .collect();
    assert_eq!(*server.backend.subscribe_cursors.lock().unwrap(), expected);
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_serve_returns_promptly() {
    let server = TestServer::start().await;
    let mut conn = SseConn::open(server.addr, Req::get("/session/s-1/events")).await;
    let live = server.backend.next_live().await;
    live.sender.send(frame(1)).await.unwrap();
    conn.read_until("id: 1\n").await;

    let took = server.shutdown().await;
    assert!(took < Duration::from_secs(2), "serve() took {took:?}");
    let body = conn.read_to_end().await;
    assert!(
        body.ends_with(
            "event: stream_error\ndata: {\"v\":1,\"type\":\"stream_error\",\"data\":{\"error\":\"the daemon is shutting down\"}}\n\n"
        ),
        "{body:?}"
    );
    // The subscription was released, so the bridge can forget the subscriber.
    assert!(live.sender.is_closed());
}
