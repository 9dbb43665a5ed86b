//! Body limits and malformed requests (always JSON errors), the connection
//! cap, client disconnects, and shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::client::{read_response, IO_TIMEOUT};
use common::{Req, TestServer};
use qserve_http::HttpConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ELEVEN_MB: usize = 11 * 1024 * 1024;

#[tokio::test]
async fn declared_oversized_body_is_413_json_without_reading_it() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /session HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {ELEVEN_MB}\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let resp = read_response(&mut stream).await;
    assert_eq!(resp.expect_error(413)["code"], "payload_too_large");
    assert!(server.backend.calls().is_empty());
}

/// What curl does with `-d @big.json`: the whole body goes out with its
/// Content-Length, and only then is the answer read. The 413 must arrive
/// intact, not as a reset that discards it.
#[tokio::test]
async fn declared_oversized_body_written_whole_still_gets_413_json() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {ELEVEN_MB}\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let body = vec![b' '; ELEVEN_MB];
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(&body))
        .await
        .expect("the server takes the body within 5 s")
        .expect("the body was written whole (no EPIPE / reset)");
    let resp = read_response(&mut stream).await;
    assert_eq!(resp.expect_error(413)["code"], "payload_too_large");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn oversized_admin_upload_written_whole_still_gets_413_json() {
    let server = TestServer::with_config(HttpConfig {
        admin_token: Some("admin-t".into()),
        max_admin_body_bytes: 1024 * 1024,
        ..HttpConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let size = 11 * 1024 * 1024;
    let head = format!(
        "PUT /admin/policy HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer admin-t\r\nContent-Type: application/wasm\r\nContent-Length: {size}\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(&vec![0u8; size]))
        .await
        .expect("the server takes the body within 5 s")
        .expect("the body was written whole (no EPIPE / reset)");
    let resp = read_response(&mut stream).await;
    assert_eq!(resp.expect_error(413)["code"], "payload_too_large");
}

#[tokio::test]
async fn streamed_oversized_body_is_413_json() {
    let server = TestServer::start().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /session/s-1/prompt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    // Write the 11 MB body in chunks while reading the answer concurrently:
    // the server may answer (and stop reading) before the upload finishes.
    let upload = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..(ELEVEN_MB / chunk.len()) {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(IO_TIMEOUT, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("no answer within 5 s"),
        }
        if common::client::parse_response(&raw).is_some_and(|resp| resp.json_complete()) {
            break;
        }
    }
    upload.abort();
    let resp = common::client::parse_response(&raw).expect("a response");
    resp.expect_error(413);
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn bodies_well_above_axums_default_limit_are_accepted() {
    let server = TestServer::start().await;
    let text = "x".repeat(3 * 1024 * 1024);
    let body = json!({ "prompt": [{ "type": "text", "text": text }] });
    let resp = server
        .send(Req::post("/session/s-1/prompt").json(&body))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_get_json_errors() {
    let server = TestServer::start().await;
    let resp = server
        .send(Req::post("/session").raw_body("application/json", b"{\"cwd\": ".to_vec()))
        .await;
    let body = resp.expect_error(400);
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"));

    for not_an_object in ["[1,2]", "\"cwd\"", "null"] {
        server
            .send(Req::post("/session").raw_body("application/json", not_an_object.into()))
            .await
            .expect_error(400);
    }
    // `curl -d` without -H sends a form content type.
    server
        .send(Req::post("/session").raw_body(
            "application/x-www-form-urlencoded",
            br#"{"cwd":"/w"}"#.to_vec(),
        ))
        .await
        .expect_error(415);
    // No content type at all is tried as JSON.
    let resp = server
        .send(Req::post("/session").raw_body("", br#"{"cwd":"/w"}"#.to_vec()))
        .await;
    assert_eq!(resp.status, 200);
    assert!(server.backend.calls() == ["create:/w"]);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let server = TestServer::start().await;
    server.send(Req::get("/nope")).await.expect_error(404);
    server
        .send(Req::get("/session/s-1/unknown"))
        .await
        .expect_error(404);
    server.send(Req::get("/session")).await.expect_error(405);
    server
        .send(Req::new("PUT", "/health"))
        .await
        .expect_error(405);
    server
        .send(Req::get("/session/s-1/prompt"))
        .await
        .expect_error(405);
}

#[tokio::test]
async fn undecodable_path_parameters_get_json_errors() {
    let server = TestServer::start().await;
    let resp = server.send(Req::post("/session/%FF%FE/cancel")).await;
    assert!(resp.status >= 400 && resp.status < 500, "{}", resp.status);
    resp.expect_error(resp.status);
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn zero_max_connections_means_unlimited() {
    let server = TestServer::with_config(HttpConfig {
        max_connections: 0,
        ..HttpConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    assert_eq!(server.send(Req::get("/health")).await.status, 200);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_prompt_cancels_it() {
    let server = TestServer::start().await;
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
    wait_until(|| !server.backend.calls().is_empty()).await;
    assert_eq!(server.backend.calls(), ["prompt:hang"]);
    assert!(!server.backend.prompt_dropped.load(Ordering::SeqCst));
    drop(stream);
    assert!(
        wait_until(|| server.backend.prompt_dropped.load(Ordering::SeqCst)).await,
        "the prompt future was not dropped after the client left"
    );
}

/// Polls `done` until it holds or a generous deadline (a loaded machine)
/// passes; returns whether it held. Waits on the event, never orders by sleeping.
async fn wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[tokio::test]
async fn shutdown_with_an_idle_keep_alive_connection_is_prompt() {
    // A drain timeout far above the bound below: shutdown must not wait
    // for an idle connection at all.
    let server = TestServer::with_config(HttpConfig {
        drain_timeout: Duration::from_secs(60),
        ..HttpConfig::default()
    })
    .await;
    // One request answered on it, then silence: an idle keep-alive connection.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
        server.addr
    );
    idle.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("\"ok\"") {
        let n = tokio::time::timeout(Duration::from_secs(20), idle.read(&mut buf))
            .await
            .expect("the health answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        seen.extend_from_slice(&buf[..n]);
    }
    let took = server.shutdown().await;
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test]
async fn shutdown_gives_up_on_stuck_requests_after_the_drain_timeout() {
    let server = TestServer::with_config(HttpConfig {
        drain_timeout: Duration::from_millis(300),
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
    assert!(wait_until(|| !server.backend.calls().is_empty()).await);
    let took = server.shutdown().await;
    // It waited out the drain timeout, and then gave up (far from forever).
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(30),
        "took {took:?}"
    );
}

#[tokio::test]
async fn new_connections_are_refused_after_shutdown() {
    let server = TestServer::start().await;
    let addr = server.addr;
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
