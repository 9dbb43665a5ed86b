//! `GET /metrics` at the HTTP layer: behind the token like any route, and
//! requests counted by their matched route template, never the raw path.
//! (The bridge's metrics, through the real daemon: tests/tests/metrics.rs.)

mod common;

use common::{Req, TestServer};
use qserve_metrics::exposition::Scrape;

const TOKEN: &str = "metrics-t";

fn authed(req: Req) -> Req {
    req.header("Authorization", &format!("Bearer {TOKEN}"))
}

async fn scrape(server: &TestServer) -> Scrape {
    let resp = server.send(authed(Req::get("/metrics"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some(qserve_metrics::CONTENT_TYPE)
    );
    Scrape::parse(&resp.text()).expect("the exposition text parses")
}

#[tokio::test]
async fn metrics_need_the_token_and_count_requests_by_route_template() {
    let server = TestServer::with_token(TOKEN).await;
    let body = server.send(Req::get("/metrics")).await.expect_error(401);
    assert!(body["error"].is_string(), "{body}");

    let requests = |scrape: &Scrape, route: &str, status: &str| {
        scrape.sum(
            "qserve_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    let before = scrape(&server).await;
    let id = "a-session-id-that-must-not-become-a-label";
    server
        .send(authed(Req::get(&format!("/session/{id}"))))
        .await
        .expect_error(404);
    server
        .send(authed(Req::get("/no/such/route")))
        .await
        .expect_error(404);
    let after = scrape(&server).await;

    assert_eq!(
        requests(&after, "/session/{id}", "404") - requests(&before, "/session/{id}", "404"),
        1.0
    );
    assert!(requests(&after, "unmatched", "404") - requests(&before, "unmatched", "404") >= 1.0);
    // The 401 above and the first scrape were counted too.
    assert!(requests(&after, "/metrics", "401") >= 1.0);
    assert!(requests(&after, "/metrics", "200") >= 1.0);
    let raw_paths: Vec<_> = after
        .matching("qserve_http_requests_total", &[])
        .filter(|s| s.labels["route"].contains(id) || s.labels["route"].contains("/no/such"))
        .collect();
    assert!(
        raw_paths.is_empty(),
        "raw paths became labels: {raw_paths:?}"
    );
}
