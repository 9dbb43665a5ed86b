//! Bearer auth, the Host allowlist and the Origin denial, including that a
//! rejected request's body is never read.

mod common;

use std::time::Duration;

use common::client::read_response;
use common::{Req, TestServer};
use qserve_http::HttpConfig;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token";

/// Sends only the head of a POST announcing a body that never comes. A
/// server that tried to read the body would stall; one that rejects in
/// middleware answers at once.
async fn post_head_without_body(server: &TestServer, extra_headers: &str) -> common::Resp {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /session HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n{extra_headers}\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), read_response(&mut stream))
        .await
        .expect("rejected before the body was read")
}

#[tokio::test]
async fn every_auth_failure_gets_the_same_401() {
    let server = TestServer::with_token(TOKEN).await;
    let mut bodies = Vec::new();
    for authorization in [
        None,
        Some(format!("Bearer wrong-{TOKEN}")),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer\t{TOKEN}")),
        Some("Bearer".to_owned()),
        Some(TOKEN.to_owned()),
    ] {
        let mut req = Req::get("/capabilities");
        if let Some(value) = &authorization {
            req = req.header("Authorization", value);
        }
        let resp = server.send(req).await;
        let body = resp.expect_error(401);
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer"),
            "{authorization:?}"
        );
        bodies.push(resp.body.clone());
        assert_eq!(body, json!({ "error": "Unauthorized" }));
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::with_token(TOKEN).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp = server
            .send(Req::get("/capabilities").header("Authorization", &format!("{scheme} {TOKEN}")))
            .await;
        assert_eq!(resp.status, 200, "{scheme}");
    }
}

#[tokio::test]
async fn configured_token_is_trimmed() {
    let server = TestServer::with_config(HttpConfig {
        token: Some(format!("  {TOKEN}\n")),
        ..HttpConfig::default()
    })
    .await;
    let resp = server
        .send(Req::get("/capabilities").header("Authorization", &format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn unauthenticated_post_is_refused_before_its_body_is_read() {
    let server = TestServer::with_token(TOKEN).await;
    post_head_without_body(&server, "").await.expect_error(401);
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn unknown_routes_need_the_token_too() {
    let server = TestServer::with_token(TOKEN).await;
    server.send(Req::get("/nope")).await.expect_error(401);
}

#[tokio::test]
async fn health_needs_no_token_on_loopback_but_does_elsewhere() {
    let server = TestServer::with_token(TOKEN).await;
    assert_eq!(server.send(Req::get("/health")).await.status, 200);
    assert_eq!(server.send(Req::get("/health?deep=1")).await.status, 200);

    let exposed = TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        loopback: false,
        ..HttpConfig::default()
    })
    .await;
    exposed.send(Req::get("/health")).await.expect_error(401);
    let resp = exposed
        .send(Req::get("/health").header("Authorization", &format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn host_allowlist_on_loopback_binds() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        format!("host.docker.internal:{port}"),
        "localhost".to_owned(),
    ] {
        let resp = server.send(Req::get("/capabilities").host(&host)).await;
        assert_eq!(resp.status, 200, "{host}");
    }
    for host in [
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        String::new(), // no Host header at all
    ] {
        let resp = server.send(Req::get("/health").host(&host)).await;
        let body = resp.expect_error(403);
        assert!(
            body["error"].as_str().unwrap().contains("Host"),
            "{host}: {body}"
        );
    }
}

#[tokio::test]
async fn host_allowlist_is_off_on_non_loopback_binds() {
    let server = TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        loopback: false,
        ..HttpConfig::default()
    })
    .await;
    let resp = server
        .send(
            Req::get("/capabilities")
                .host("daemon.example.com:4170")
                .header("Authorization", &format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn bad_host_is_refused_before_auth_and_before_the_body() {
    let server = TestServer::with_token(TOKEN).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /session HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(2), read_response(&mut stream))
        .await
        .expect("answered without reading the body");
    resp.expect_error(403);
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn any_origin_header_is_refused_before_the_body() {
    let server = TestServer::start().await;
    let resp = server
        .send(Req::get("/health").header("Origin", "http://localhost:3000"))
        .await;
    assert_eq!(
        resp.expect_error(403),
        json!({ "error": "Request denied by CORS policy" })
    );

    let resp = post_head_without_body(&server, "Origin: https://evil.example\r\n").await;
    resp.expect_error(403);
    assert!(server.backend.calls().is_empty());
}
