//! Bearer auth, the Host allowlist and the Origin denial, including that a
//! rejected request's body is never read.

mod common;

use std::time::Duration;

use common::client::read_response;
use common::{Req, TestServer};
use proptest::prelude::*;
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

#[tokio::test]
async fn require_auth_demands_the_token_on_loopback_even_for_health() {
    let server = TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        require_auth: true,
        ..HttpConfig::default()
    })
    .await;
    for path in [
        "/health",
        "/health?deep=1",
        "/capabilities",
        "/openapi.json",
    ] {
        server.send(Req::get(path)).await.expect_error(401);
        let resp = server
            .send(Req::get(path).header("Authorization", &format!("Bearer {TOKEN}")))
            .await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    }
}

#[tokio::test]
async fn serve_refuses_require_auth_without_a_token() {
    for token in [None, Some("  ".to_owned())] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = std::sync::Arc::new(common::FakeBackend::default());
        let config = HttpConfig {
            token,
            require_auth: true,
            ..HttpConfig::default()
        };
        let served = tokio::time::timeout(
            Duration::from_secs(5),
            qserve_http::serve(listener, backend, config, std::future::pending()),
        )
        .await
        .expect("serve() refused at once instead of serving without auth");
        let error = served.expect_err("require_auth without a token is an error");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("token"), "{error}");
    }
}

/// One server for every property case (proptest cases are synchronous).
fn shared_server() -> &'static (tokio::runtime::Runtime, std::net::SocketAddr) {
    static SERVER: std::sync::OnceLock<(tokio::runtime::Runtime, std::net::SocketAddr)> =
        std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let addr = runtime.block_on(async {
            let server = TestServer::with_token(TOKEN).await;
            let addr = server.addr;
            // Keep it serving for the whole test binary.
            std::mem::forget(server);
            addr
        });
        (runtime, addr)
    })
}

fn host_header(port: u16) -> impl Strategy<Value = String> {
    // Mostly allowed hosts, so the token check behind them is reached.
    let name = prop_oneof![
        3 => proptest::sample::select(vec!["localhost", "127.0.0.1", "[::1]", "host.docker.internal"])
            .prop_map(str::to_owned),
        1 => "[a-z0-9.-]{1,12}",
    ];
    let port = prop_oneof![
        1 => Just(String::new()),
        2 => Just(format!(":{port}")),
        1 => any::<u16>().prop_map(|p| format!(":{p}")),
    ];
    (name, port, any::<bool>()).prop_map(|(name, port, upper)| {
        let host = format!("{name}{port}");
        if upper {
            host.to_ascii_uppercase()
        } else {
            host
        }
    })
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    let scheme = prop_oneof![
        3 => proptest::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]),
        1 => proptest::sample::select(vec!["Basic", "Bearer:", "Token", ""]),
    ];
    let credentials = prop_oneof![
        2 => Just(TOKEN.to_owned()),
        1 => Just(TOKEN.to_ascii_uppercase()),
        1 => Just(format!("{TOKEN}x")),
        1 => Just(TOKEN[..TOKEN.len() - 1].to_owned()),
        1 => Just(format!("x{TOKEN}")),
        1 => Just(format!("{TOKEN} {TOKEN}")),
        1 => "[!-~]{0,20}",
    ];
    proptest::option::weighted(
        0.9,
        (scheme, "[ \t]{1,2}", credentials).prop_map(|(s, gap, c)| format!("{s}{gap}{c}")),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Through the real middleware stack: a request passes only with an
    /// allowed Host, no Origin and exactly the token; every refusal is the
    /// JSON 403/401, never a 5xx or a dropped connection.
    #[test]
    fn only_allowed_host_no_origin_and_the_exact_token_pass(
        host in host_header(shared_server().1.port()),
        origin in proptest::option::weighted(0.2, "[ -~]{0,24}"),
        authorization in authorization(),
    ) {
        let (runtime, addr) = shared_server();
        let mut req = Req::get("/capabilities").host(&host);
        if let Some(origin) = &origin {
            req = req.header("Origin", origin);
        }
        if let Some(authorization) = &authorization {
            req = req.header("Authorization", authorization);
        }
        let resp = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), req.send(*addr)).await })
            .expect("answered within 5 s");
        let allowed_host = {
            let lowered = host.to_ascii_lowercase();
            ["localhost", "127.0.0.1", "[::1]", "host.docker.internal"].iter().any(|name| {
                lowered == *name || lowered == format!("{name}:{}", addr.port())
            })
        };
        let token_ok = authorization.as_deref().is_some_and(|value| {
            let value = value.trim_matches([' ', '\t']);
            value.split_once(' ').is_some_and(|(scheme, rest)| {
                scheme.eq_ignore_ascii_case("bearer") && rest.trim_matches([' ', '\t']) == TOKEN
            })
        });
        let expected = if !allowed_host || origin.is_some() {
            403
        } else if !token_ok {
            401
        } else {
            200
        };
        prop_assert_eq!(resp.status, expected, "host {:?} origin {:?} auth {:?}: {}", host, origin, authorization, resp.text());
        if expected != 200 {
            resp.expect_error(expected);
        }
    }
}
