//! `--allow-origin`: a named web page may call the daemon from a browser
//! (CORS headers, preflights answered), every other Origin is still refused,
//! and the token and the Host allowlist still apply to the allowed page.

mod common;

use common::{Req, TestServer};
use qserve_http::origin::OriginPolicy;
use qserve_http::HttpConfig;

const CONSOLE: &str = "https://console.example.com";
const TOKEN: &str = "s3cret-token";

async fn server() -> TestServer {
    TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        allowed_origins: OriginPolicy::new(vec![
            CONSOLE.parse().unwrap(),
            "http://*.dev.example.com:5173".parse().unwrap(),
        ]),
        ..HttpConfig::default()
    })
    .await
}

#[tokio::test]
async fn an_allowed_page_gets_cors_headers_and_its_preflight_answered() {
    let server = server().await;
    let preflight = server
        .send(
            Req::new("OPTIONS", "/session")
                .header("Origin", CONSOLE)
                .header("Access-Control-Request-Method", "POST")
                .header(
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
        )
        .await;
    assert!(preflight.status < 300, "preflight: {}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(CONSOLE)
    );
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("last-event-id"),
        "{headers}"
    );

    let resp = server
        .send(
            Req::get("/capabilities")
                .header("Origin", CONSOLE)
                .header("Authorization", &format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), Some(CONSOLE));
    assert!(resp.json()["v"].is_number());

    let sub = server
        .send(
            Req::get("/capabilities")
                .header("Origin", "http://app.dev.example.com:5173")
                .header("Authorization", &format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(sub.status, 200);
}

#[tokio::test]
async fn the_allowed_page_still_needs_the_token_and_an_allowed_host() {
    let server = server().await;
    let no_token = server
        .send(Req::get("/capabilities").header("Origin", CONSOLE))
        .await;
    no_token.expect_error(401);
    // The CORS header is there so the page can read why it was refused.
    assert_eq!(
        no_token.header("access-control-allow-origin"),
        Some(CONSOLE)
    );

    let rebound = server
        .send(
            Req::get("/capabilities")
                .host("console.example.com")
                .header("Origin", CONSOLE)
                .header("Authorization", &format!("Bearer {TOKEN}")),
        )
        .await;
    rebound.expect_error(403);
}

#[tokio::test]
async fn any_other_origin_is_refused_and_gets_no_cors_headers() {
    let server = server().await;
    for origin in [
        "https://evil.example",
        "http://console.example.com",
        "https://console.example.com.evil.net",
        "https://dev.example.com:5173",
        "null",
    ] {
        let resp = server
            .send(
                Req::get("/capabilities")
                    .header("Origin", origin)
                    .header("Authorization", &format!("Bearer {TOKEN}")),
            )
            .await;
        let body = resp.expect_error(403);
        assert_eq!(body["error"], "Request denied by CORS policy", "{origin}");
        assert_eq!(resp.header("access-control-allow-origin"), None, "{origin}");

        let preflight = server
            .send(
                Req::new("OPTIONS", "/session")
                    .header("Origin", origin)
                    .header("Access-Control-Request-Method", "POST"),
            )
            .await;
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            None,
            "preflight from {origin}"
        );
    }
}
