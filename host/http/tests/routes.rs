//! One test group per row of PROTOCOL.md's route table: status, body shape
//! and headers, against the real router and a fake backend.

mod common;

use common::{Req, TestServer};
use qserve_http::{HttpConfig, SessionScope, VoteOutcome};
use serde_json::json;

#[tokio::test]
async fn health_is_ok_without_touching_the_backend() {
    let server = TestServer::start().await;
    let resp = server.send(Req::get("/health")).await;
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(resp.json(), json!({ "status": "ok" }));
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn deep_health_reports_counts_or_degraded() {
    let server = TestServer::start().await;
    let resp = server.send(Req::get("/health?deep=1")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json(),
        json!({
            "status": "ok", "sessions": 2, "pendingPermissions": 1,
            "policy": {"status": "ok", "inFlight": 0, "stuck": 0, "faults": 0,
                       "recentFaults": 0, "lastFault": null}
        })
    );

    server
        .backend
        .degraded
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = server.send(Req::get("/health?deep=1")).await;
    let body = resp.expect_error(503);
    assert_eq!(body["status"], "degraded");
}

#[tokio::test]
async fn capabilities_lists_base_features_in_order_then_extras_and_policy() {
    let server = TestServer::with_config(HttpConfig {
        features: vec!["policy_component".into(), "health".into()],
        mode: "qserve".into(),
        ..HttpConfig::default()
    })
    .await;
    let resp = server.send(Req::get("/capabilities")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json(),
        json!({
            "v": 1,
            "mode": "qserve",
            "features": [
                "health", "capabilities", "session_create", "session_prompt",
                "session_cancel", "session_events", "permission_vote",
                "session_list", "session_set_model", "policy_component"
            ],
            "modelServices": [],
            "policy": {
                "name": "ask-everyone", "version": "0.1.0", "sha256": "ab".repeat(32),
                "origin": "builtin:default", "loadedAtMs": 1
            },
            "agents": ["default"]
        })
    );
}

#[tokio::test]
async fn create_session_passes_validated_fields_and_shapes_the_answer() {
    let server = TestServer::start().await;
    let resp = server
        .send(Req::post("/session").json(&json!({
            "cwd": "/work/repo",
            "modelServiceId": "qwen-max",
            "sessionScope": "single"
        })))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({ "sessionId": "s-1", "workspaceCwd": "/work/repo", "attached": true, "agent": "default" })
    );
    let create = server.backend.last_create.lock().unwrap().clone().unwrap();
    assert_eq!(create.cwd.to_str(), Some("/work/repo"));
    assert_eq!(create.model_service_id.as_deref(), Some("qwen-max"));
    assert_eq!(create.scope, Some(SessionScope::Single));

    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/w", "sessionScope": "thread" })))
        .await;
    assert_eq!(resp.status, 200);
    let create = server.backend.last_create.lock().unwrap().clone().unwrap();
    assert_eq!(create.scope, Some(SessionScope::Thread));
    assert_eq!(create.model_service_id, None);
    assert_eq!(create.agent, None);

    // A named agent is passed through and named in the answer; it must be a string.
    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/w", "agent": "gemini" })))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["agent"], "gemini");
    let create = server.backend.last_create.lock().unwrap().clone().unwrap();
    assert_eq!(create.agent.as_deref(), Some("gemini"));
    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/w", "agent": 7 })))
        .await;
    assert_eq!(resp.expect_error(400)["error"], "`agent` must be a string");
}

#[tokio::test]
async fn create_session_rejects_bad_input_without_calling_the_backend() {
    let server = TestServer::start().await;
    for body in [
        json!({}),
        json!({ "cwd": "" }),
        json!({ "cwd": "relative/path" }),
        json!({ "cwd": 42 }),
        json!({ "cwd": "/w", "sessionScope": "global" }),
        json!({ "cwd": "/w", "sessionScope": 1 }),
        json!({ "cwd": "/w", "modelServiceId": 7 }),
    ] {
        let resp = server.send(Req::post("/session").json(&body)).await;
        resp.expect_error(400);
    }
    assert!(
        server.backend.calls().is_empty(),
        "{:?}",
        server.backend.calls()
    );
}

#[tokio::test]
async fn create_session_maps_backend_failures() {
    let server = TestServer::start().await;
    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/full" })))
        .await;
    let body = resp.expect_error(503);
    assert_eq!(body["code"], "session_limit_exceeded");
    assert_eq!(resp.header("retry-after"), Some("5"));

    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/fail" })))
        .await;
    let body = resp.expect_error(500);
    assert!(body["error"].as_str().unwrap().contains("spawn failed"));

    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/refused" })))
        .await;
    let body = resp.expect_error(403);
    assert_eq!(body["code"], "policy_refused");
    assert_eq!(body["error"], "policy says no");
}

#[tokio::test]
async fn prompt_forwards_the_body_and_returns_the_agent_answer() {
    let server = TestServer::start().await;
    let body = json!({
        "prompt": [{ "type": "text", "text": "hi" }],
        "_meta": { "trace": 1 },
        "sessionId": "ignored-in-favour-of-the-url"
    });
    let resp = server
        .send(Req::post("/session/s-1/prompt").json(&body))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({ "stopReason": "end_turn" }));
    assert_eq!(server.backend.calls(), ["prompt:s-1"]);
    let forwarded = server
        .backend
        .last_prompt_body
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(forwarded["_meta"], json!({ "trace": 1 }));
}

#[tokio::test]
async fn prompt_validation_and_errors() {
    let server = TestServer::start().await;
    for body in [
        json!({}),
        json!({ "prompt": null }),
        json!({ "prompt": [] }),
        json!({ "prompt": "hi" }),
        json!({ "prompt": [{ "type": "text", "text": "ok" }, "not an object"] }),
    ] {
        server
            .send(Req::post("/session/s-1/prompt").json(&body))
            .await
            .expect_error(400);
    }
    assert!(server.backend.calls().is_empty());

    let prompt = json!({ "prompt": [{ "type": "text", "text": "hi" }] });
    server
        .send(Req::post("/session/missing/prompt").json(&prompt))
        .await
        .expect_error(404);
    let resp = server
        .send(Req::post("/session/boom/prompt").json(&prompt))
        .await;
    assert_eq!(resp.expect_error(500)["code"], "agent_died");
    let resp = server
        .send(Req::post("/session/agentfail/prompt").json(&prompt))
        .await;
    let body = resp.expect_error(502);
    assert_eq!(
        body["data"],
        json!({ "code": -32603, "message": "Internal error" })
    );
}

#[tokio::test]
async fn cancel_is_204_or_404() {
    let server = TestServer::start().await;
    let resp = server.send(Req::post("/session/s-1/cancel")).await;
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    // A body, if a client sends one, is ignored.
    let resp = server
        .send(Req::post("/session/s-1/cancel").json(&json!({})))
        .await;
    assert_eq!(resp.status, 204);
    server
        .send(Req::post("/session/missing/cancel"))
        .await
        .expect_error(404);
}

#[tokio::test]
async fn events_errors_are_real_statuses() {
    let server = TestServer::start().await;
    server
        .send(Req::get("/session/missing/events"))
        .await
        .expect_error(404);
    let resp = server.send(Req::get("/session/busy/events")).await;
    let body = resp.expect_error(429);
    assert_eq!(body["code"], "too_many_subscribers");
    assert_eq!(resp.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn permission_vote_outcomes() {
    let server = TestServer::start().await;
    let selected = json!({ "outcome": { "outcome": "selected", "optionId": "allow_once" } });
    let resp = server
        .send(Req::post("/permission/r-1").json(&selected))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "accepted": true }));

    let cancelled = json!({ "outcome": { "outcome": "cancelled" } });
    let resp = server
        .send(Req::post("/permission/r-2").json(&cancelled))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        server.backend.calls(),
        [
            format!(
                "vote:r-1:{:?}",
                VoteOutcome::Selected {
                    option_id: "allow_once".into()
                }
            ),
            format!("vote:r-2:{:?}", VoteOutcome::Cancelled),
        ]
    );

    server
        .send(Req::post("/permission/lost").json(&selected))
        .await
        .expect_error(404);
    let resp = server
        .send(Req::post("/permission/bad-option").json(&selected))
        .await;
    assert_eq!(resp.expect_error(400)["code"], "invalid_option_id");
}

#[tokio::test]
async fn permission_vote_rejects_malformed_bodies() {
    let server = TestServer::start().await;
    for body in [
        json!({}),
        json!({ "outcome": "selected" }),
        json!({ "outcome": { "outcome": "allow" } }),
        json!({ "outcome": { "outcome": "selected" } }),
        json!({ "outcome": { "outcome": "selected", "optionId": "" } }),
        json!({ "outcome": { "outcome": "selected", "optionId": 3 } }),
    ] {
        server
            .send(Req::post("/permission/r-1").json(&body))
            .await
            .expect_error(400);
    }
    assert!(server.backend.calls().is_empty());
}

#[tokio::test]
async fn workspace_sessions_decodes_the_path() {
    let server = TestServer::start().await;
    let resp = server
        .send(Req::get("/workspace/%2Fwork%2Fmy%20repo/sessions?size=20"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({ "sessions": [{ "sessionId": "s-1", "workspaceCwd": "/work/my repo", "agent": "default" }] })
    );
    let resp = server.send(Req::get("/workspace/%2Fidle/sessions")).await;
    assert_eq!(resp.json(), json!({ "sessions": [] }));
    server
        .send(Req::get("/workspace/relative%2Fpath/sessions"))
        .await
        .expect_error(400);
}

#[tokio::test]
async fn set_model_always_answers_with_json() {
    let server = TestServer::start().await;
    let body = json!({ "modelId": "qwen3-coder" });
    let resp = server
        .send(Req::post("/session/s-1/model").json(&body))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "modelId": "qwen3-coder" }));
    let resp = server
        .send(Req::post("/session/nullreply/model").json(&body))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({}));

    for bad in [json!({}), json!({ "modelId": "" }), json!({ "modelId": 5 })] {
        server
            .send(Req::post("/session/s-1/model").json(&bad))
            .await
            .expect_error(400);
    }
    server
        .send(Req::post("/session/missing/model").json(&body))
        .await
        .expect_error(404);
    server
        .send(Req::post("/session/nomodel/model").json(&body))
        .await
        .expect_error(501);
    server
        .send(Req::post("/session/agentfail/model").json(&body))
        .await
        .expect_error(502);
}

#[tokio::test]
async fn delete_session_is_204_or_404() {
    let server = TestServer::start().await;
    let resp = server.send(Req::delete("/session/s-1")).await;
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    server
        .send(Req::delete("/session/missing"))
        .await
        .expect_error(404);
    assert_eq!(server.backend.calls(), ["close:s-1", "close:missing"]);
}

#[tokio::test]
async fn unavailable_bridge_is_503() {
    let server = TestServer::start().await;
    server
        .send(Req::post("/session/wedged/cancel"))
        .await
        .expect_error(503);
}

#[tokio::test]
async fn control_characters_in_workspace_paths_are_refused() {
    let server = TestServer::start().await;
    for encoded in [
        "%2Ftmp%00x",
        "%2Ftmp%0Ax",
        "%2Ftmp%0D",
        "%2Ftmp%1Bx",
        "%2Ftmp%7Fx",
        "%2Ftmp%C2%85x",
    ] {
        let resp = server
            .send(Req::get(&format!("/workspace/{encoded}/sessions")))
            .await;
        let body = resp.expect_error(400);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{encoded}: {body}"
        );
    }
    for cwd in ["/tmp\u{0}x", "/tmp/a\nb", "/tmp/\u{7f}", "/tmp/\u{9b}x"] {
        let resp = server
            .send(Req::post("/session").json(&json!({ "cwd": cwd })))
            .await;
        let body = resp.expect_error(400);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{cwd:?}: {body}"
        );
    }
    assert!(
        server.backend.calls().is_empty(),
        "{:?}",
        server.backend.calls()
    );
    // Ordinary non-ASCII paths still work.
    let resp = server
        .send(Req::post("/session").json(&json!({ "cwd": "/tmp/ünï cødé" })))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}
