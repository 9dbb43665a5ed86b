//! Connection-level defences: the cap answers 503 instead of queueing,
//! silent and idle sockets are closed, and a client that stops reading its
//! stream is dropped.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::client::{parse_response, IO_TIMEOUT};
use common::{Req, Resp, TestServer};
use qserve_http::{encode_event, HttpConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

/// Reads until the server closes the connection (EOF or reset) and returns
/// what arrived; `None` if it is still open after `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(raw),
            Ok(Ok(n)) => raw.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one response with a Content-Length body, leaving the connection open.
async fn read_one_response(stream: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(resp) = parse_response(&raw) {
            if resp.json_complete() {
                return resp;
            }
        }
        let n = timeout(IO_TIMEOUT, stream.read(&mut buffer))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "EOF mid-response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buffer[..n]);
    }
}

fn keep_alive_health(server: &TestServer) -> String {
    format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr)
}

fn expect_too_many_connections(resp: &Resp) {
    let body = resp.expect_error(503);
    assert_eq!(body["code"], "too_many_connections", "{body}");
    assert_eq!(body["error"], "too many connections");
    assert!(
        resp.header("retry-after")
            .is_some_and(|value| value.parse::<u32>().is_ok()),
        "Retry-After: {:?}",
        resp.header("retry-after")
    );
}

/// The reproduced lockout: 1 000 sockets that never send a byte, with the
/// default cap of 256. The server must still answer a fresh connection
/// promptly (with a 503 while the cap is full), and every idle socket past
/// the cap must have been told so rather than left waiting in the backlog.
#[tokio::test]
async fn a_thousand_idle_sockets_do_not_lock_out_a_fresh_request() {
    let server = TestServer::start().await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }

    let started = Instant::now();
    let resp = timeout(IO_TIMEOUT, server.send(Req::get("/health")))
        .await
        .expect("GET /health answered within 5 s despite 1 000 idle sockets");
    println!("fresh GET /health answered in {:?}", started.elapsed());
    match resp.status {
        200 => assert_eq!(resp.json(), json!({ "status": "ok" })),
        _ => expect_too_many_connections(&resp),
    }

    // Each idle socket either holds one of the 256 slots (and hears nothing
    // yet) or got the 503 and was closed.
    let readers: Vec<_> = idle
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(
                async move { read_until_closed(&mut stream, Duration::from_secs(3)).await },
            )
        })
        .collect();
    let mut refused = 0;
    for reader in readers {
        if let Some(raw) = reader.await.unwrap() {
            if raw.is_empty() {
                continue; // dropped at the header-read timeout (slow machine)
            }
            let resp = parse_response(&raw).expect("a complete 503");
            expect_too_many_connections(&resp);
            refused += 1;
        }
    }
    assert_eq!(refused, 1000 - 256, "idle sockets past the cap got a 503");
}

/// The same burst with the cap raised above it: every socket is served
/// (and waits on its header-read deadline), and a fresh request still gets
/// its 200.
#[tokio::test]
async fn with_the_cap_raised_a_thousand_idle_sockets_leave_health_answering() {
    let server = TestServer::with_config(HttpConfig {
        max_connections: 2000,
        ..HttpConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let started = Instant::now();
    let resp = timeout(IO_TIMEOUT, server.send(Req::get("/health")))
        .await
        .expect("GET /health answered within 5 s despite 1 000 idle sockets");
    println!("fresh GET /health answered in {:?}", started.elapsed());
    assert_eq!(resp.status, 200, "{}", resp.text());
    drop(idle);
}

#[tokio::test]
async fn silent_sockets_free_their_slots_at_the_header_read_timeout() {
    let server = TestServer::with_config(HttpConfig {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Every slot is taken: a request is refused at once, not queued.
    let resp = timeout(IO_TIMEOUT, server.send(Req::get("/health")))
        .await
        .expect("refused promptly, not left in the backlog");
    expect_too_many_connections(&resp);

    // The silent sockets are closed by the server…
    for stream in &mut silent {
        let raw = read_until_closed(stream, IO_TIMEOUT)
            .await
            .expect("a silent socket is closed at the header-read timeout");
        assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    }
    // …so the daemon is reachable again.
    let resp = server.send(Req::get("/health")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn a_silent_socket_is_closed_by_the_server() {
    let server = TestServer::with_config(HttpConfig {
        header_read_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    let raw = read_until_closed(&mut stream, IO_TIMEOUT)
        .await
        .expect("the server closed a socket that never sent a byte");
    assert!(raw.is_empty());
    assert!(opened.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let server = TestServer::with_config(HttpConfig {
        header_read_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n", server.addr).as_bytes())
        .await
        .unwrap();
    // The head never ends: the blank line is not sent.
    let raw = read_until_closed(&mut stream, IO_TIMEOUT)
        .await
        .expect("an unfinished head is cut off");
    assert!(
        !String::from_utf8_lossy(&raw).contains("200 OK"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::with_config(HttpConfig {
        idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(keep_alive_health(&server).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut stream).await.status, 200);
    let raw = read_until_closed(&mut stream, IO_TIMEOUT)
        .await
        .expect("the idle keep-alive connection was closed well before the 30 s header timeout");
    assert!(raw.is_empty());
}

#[tokio::test]
async fn keep_alive_gaps_are_governed_by_the_idle_timeout_not_the_header_one() {
    let server = TestServer::with_config(HttpConfig {
        idle_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(keep_alive_health(&server).as_bytes())
            .await
            .unwrap();
        assert_eq!(read_one_response(&mut stream).await.status, 200);
        // Well past the header-read timeout, well inside the idle timeout.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

#[tokio::test]
async fn a_long_request_is_not_idle() {
    let server = TestServer::with_config(HttpConfig {
        idle_timeout: Duration::from_millis(100),
        header_read_timeout: Duration::from_millis(100),
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = json!({ "prompt": [{ "type": "text", "text": "hi" }] });
    stream
        .write_all(
            &Req::post("/session/hang/prompt")
                .json(&body)
                .to_bytes(server.addr),
        )
        .await
        .unwrap();
    // A prompt can run for minutes with no byte moving either way.
    let mut byte = [0u8; 1];
    let read = timeout(Duration::from_millis(800), stream.read(&mut byte)).await;
    assert!(read.is_err(), "connection ended mid-request: {read:?}");
    assert!(!server.backend.prompt_dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn sse_streams_are_not_idle() {
    let server = TestServer::with_config(HttpConfig {
        idle_timeout: Duration::from_millis(100),
        header_read_timeout: Duration::from_millis(100),
        heartbeat: Duration::from_millis(100),
        ..HttpConfig::default()
    })
    .await;
    let mut conn =
        common::client::SseConn::open(server.addr, Req::get("/session/s-1/events")).await;
    let live = server.backend.next_live().await;
    conn.read_until(": ping\n\n: ping\n\n: ping\n\n: ping\n\n: ping\n\n")
        .await;
    live.sender
        .send(encode_event(Some(1), "session_update", "{}", None))
        .await
        .unwrap();
    conn.read_until("id: 1\n").await;
}

/// A subscriber whose client stopped reading: once the socket has not taken
/// a byte for the writer idle timeout, the stream is closed and its
/// subscription released (the bridge can forget it).
#[tokio::test]
async fn a_client_that_stops_reading_its_stream_is_dropped() {
    let server = TestServer::with_config(HttpConfig {
        writer_idle_timeout: Duration::from_millis(300),
        heartbeat: Duration::from_millis(50),
        ..HttpConfig::default()
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    stream
        .write_all(&Req::get("/session/s-1/events").to_bytes(server.addr))
        .await
        .unwrap();
    let live = server.backend.next_live().await;
    let released = live.sender.clone();
    let payload = format!(r#"{{"text":"{}"}}"#, "x".repeat(64 * 1024));
    let feeder = tokio::spawn(async move {
        for id in 1.. {
            let frame = encode_event(Some(id), "session_update", &payload, None);
            if live.sender.send(frame).await.is_err() {
                break;
            }
        }
    });
    // The client never reads: buffers fill, the writer stalls, the server
    // gives up on it.
    timeout(Duration::from_secs(15), released.closed())
        .await
        .expect("the stalled stream was closed and its subscription released");
    feeder.abort();
    drop(stream);
}

#[tokio::test]
async fn a_slow_but_reading_client_keeps_its_stream() {
    let server = TestServer::with_config(HttpConfig {
        writer_idle_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    let mut conn =
        common::client::SseConn::open(server.addr, Req::get("/session/s-1/events")).await;
    let live = server.backend.next_live().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    live.sender
        .send(encode_event(Some(1), "session_update", "{}", None))
        .await
        .unwrap();
    conn.read_until("id: 1\n").await;
    assert!(!live.sender.is_closed());
}

#[tokio::test]
async fn a_freed_slot_serves_the_next_connection() {
    let server = TestServer::with_config(HttpConfig {
        max_connections: 2,
        ..HttpConfig::default()
    })
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    // Wait until both are accepted (a request on a third is refused).
    let resp = server.send(Req::get("/health")).await;
    expect_too_many_connections(&resp);
    drop(first);
    // The slot is returned when the server notices the close.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let resp = server.send(Req::get("/health")).await;
        if resp.status == 200 {
            break;
        }
        expect_too_many_connections(&resp);
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
