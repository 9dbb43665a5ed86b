//! `PUT /admin/policy`: present only with an admin token, opened only by it
//! (never by the client token), and a failed load answers 422 with the reason.

mod common;

use common::{Req, TestServer};
use qserve_http::HttpConfig;
use serde_json::json;

const TOKEN: &str = "client-token";
const ADMIN: &str = "admin-token";

async fn server_with_admin() -> TestServer {
    TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        admin_token: Some(ADMIN.into()),
        ..HttpConfig::default()
    })
    .await
}

fn put_policy(token: &str, body: serde_json::Value) -> Req {
    Req::new("PUT", "/admin/policy")
        .header("Authorization", &format!("Bearer {token}"))
        .json(&body)
}

#[tokio::test]
async fn without_an_admin_token_the_route_does_not_exist() {
    let server = TestServer::with_token(TOKEN).await;
    let resp = server
        .send(put_policy(TOKEN, json!({"component": "builtin:readonly"})))
        .await;
    resp.expect_error(404);
    assert!(
        server.backend.calls().is_empty(),
        "{:?}",
        server.backend.calls()
    );
}

#[tokio::test]
async fn the_client_token_cannot_swap_the_policy() {
    let server = server_with_admin().await;
    let resp = server
        .send(put_policy(TOKEN, json!({"component": "builtin:readonly"})))
        .await;
    assert_eq!(resp.expect_error(401), json!({"error": "Unauthorized"}));
    let resp = server
        .send(Req::new("PUT", "/admin/policy").json(&json!({"component": "builtin:readonly"})))
        .await;
    resp.expect_error(401);
    assert!(
        server.backend.calls().is_empty(),
        "{:?}",
        server.backend.calls()
    );
    // And the admin token opens no client route.
    let resp = server
        .send(Req::get("/capabilities").header("Authorization", &format!("Bearer {ADMIN}")))
        .await;
    resp.expect_error(401);
}

#[tokio::test]
async fn the_admin_token_swaps_and_capabilities_show_the_new_policy() {
    let server = server_with_admin().await;
    let resp = server
        .send(put_policy(
            ADMIN,
            json!({"component": "builtin:readonly", "config": "x = 1"}),
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["policy"]["name"], "builtin:readonly");
    assert_eq!(
        server.backend.calls(),
        vec!["reload_policy:builtin:readonly:inline:x = 1".to_owned()]
    );
    let caps = server
        .send(Req::get("/capabilities").header("Authorization", &format!("Bearer {TOKEN}")))
        .await
        .json();
    assert_eq!(caps["policy"]["name"], "builtin:readonly");
    assert_eq!(caps["policy"]["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn an_uploaded_component_reaches_the_backend_whole() {
    let server = server_with_admin().await;
    let bytes = vec![7u8; 300_000];
    let resp = server
        .send(
            Req::new("PUT", "/admin/policy")
                .header("Authorization", &format!("Bearer {ADMIN}"))
                .raw_body("application/wasm", bytes),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        server.backend.calls(),
        vec!["reload_policy:uploaded:300000:same".to_owned()]
    );
}

#[tokio::test]
async fn a_refused_load_is_422_with_the_reason() {
    let server = server_with_admin().await;
    let resp = server
        .send(put_policy(ADMIN, json!({"component": "builtin:broken"})))
        .await;
    let body = resp.expect_error(422);
    assert_eq!(body["code"], "policy_load_failed");
    assert!(
        body["error"].as_str().unwrap().contains("init refused"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_bodies_are_400_and_reach_nothing() {
    let server = server_with_admin().await;
    for body in [
        json!({}),
        json!({"component": 3}),
        json!({"config": "a", "configPath": "/b"}),
        json!({"componnet": "builtin:readonly"}),
        json!([1]),
    ] {
        let resp = server.send(put_policy(ADMIN, body.clone())).await;
        resp.expect_error(400);
    }
    assert!(
        server.backend.calls().is_empty(),
        "{:?}",
        server.backend.calls()
    );
}

#[tokio::test]
async fn deep_health_reports_a_stuck_policy() {
    let server = TestServer::start().await;
    let resp = server.send(Req::get("/health?deep=1")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["policy"]["status"], "ok");
    server
        .backend
        .policy_stuck
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = server.send(Req::get("/health?deep=1")).await;
    let body = resp.expect_error(503);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["policy"]["stuck"], 1);
}
