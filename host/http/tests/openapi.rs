//! The OpenAPI document (`openapi.json`, served at `GET /openapi.json`)
//! against the router: every routed method documented, nothing documented
//! that is not routed, and each operation's answers in the error envelope.

mod common;

use std::collections::BTreeSet;

use common::{Req, TestServer};
use qserve_http::{HttpConfig, ROUTE_TABLE};
use serde_json::Value;

const TOKEN: &str = "client-t";
const ADMIN_TOKEN: &str = "admin-t";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn checked_in() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `(METHOD, path)` for every operation of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().unwrap() {
            if METHODS.contains(&key.as_str()) {
                operations.insert((key.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn routed() -> BTreeSet<(String, String)> {
    ROUTE_TABLE
        .iter()
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_document_is_served_behind_the_same_auth_as_other_routes() {
    let server = TestServer::with_token(TOKEN).await;
    server
        .send(Req::get("/openapi.json"))
        .await
        .expect_error(401);
    let resp = server
        .send(Req::get("/openapi.json").header("Authorization", &format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/json")));
    assert_eq!(resp.json(), checked_in());
}

#[test]
fn every_routed_method_is_documented_and_nothing_else() {
    let doc = checked_in();
    let documented = documented(&doc);
    let routed = routed();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in openapi.json: {undocumented:?}; in openapi.json but not routed: {unrouted:?}"
    );
}

/// The route table is the router's: each documented operation reaches a
/// handler (no fallback 404 "no route", no 405).
#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let server = TestServer::with_config(HttpConfig {
        token: Some(TOKEN.into()),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..HttpConfig::default()
    })
    .await;
    for (method, path) in documented(&checked_in()) {
        let concrete = path
            .replace("{id}", "missing")
            .replace("{requestId}", "lost")
            .replace("{cwd}", "%2Fidle");
        let token = if path.starts_with("/admin/") {
            ADMIN_TOKEN
        } else {
            TOKEN
        };
        let mut req =
            Req::new(&method, &concrete).header("Authorization", &format!("Bearer {token}"));
        if method != "GET" && method != "DELETE" {
            req = req.raw_body("application/json", b"{}".to_vec());
        }
        let resp = server.send(req).await;
        let text = resp.text();
        assert!(
            resp.status != 405 && !(resp.status == 404 && text.contains("no route for")),
            "{method} {path} is documented but not routed: {} {text}",
            resp.status
        );
    }
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}")),
            )
        }
        None => value,
    }
}

#[test]
fn every_operation_documents_its_bodies_and_error_envelopes() {
    let doc = checked_in();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let envelope = &doc["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(envelope["required"], serde_json::json!(["error"]));
    for key in ["error", "code", "data"] {
        assert!(envelope["properties"].get(key).is_some(), "envelope {key}");
    }
    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][method.to_ascii_lowercase()];
        let name = format!("{method} {path}");
        assert!(operation["operationId"].is_string(), "{name}: operationId");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{name}: no success answer"
        );
        for status in ["401", "403"] {
            assert!(responses.contains_key(status), "{name}: no {status}");
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(response["description"].is_string(), "{name} {status}");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = resolve(&doc, &response["content"]["application/json"]["schema"]);
                let is_envelope = schema == envelope
                    || schema["allOf"]
                        .as_array()
                        .is_some_and(|all| all.iter().any(|s| resolve(&doc, s) == envelope));
                assert!(is_envelope, "{name} {status}: not the error envelope");
            }
        }
        if method == "POST" || method == "PUT" {
            let needs_body = !path.ends_with("/cancel");
            if needs_body {
                let body = resolve(&doc, &operation["requestBody"]);
                assert!(
                    body["content"].as_object().is_some_and(|c| !c.is_empty()),
                    "{name}: request body schema"
                );
                assert!(responses.contains_key("413"), "{name}: no 413");
            }
        }
    }
    let events = &doc["paths"]["/session/{id}/events"]["get"]["responses"]["200"];
    assert!(events["content"]["text/event-stream"].is_object());
    let admin = &doc["paths"]["/admin/policy"]["put"];
    assert_eq!(
        admin["security"],
        serde_json::json!([{ "adminBearer": [] }])
    );
    let health_params = doc["paths"]["/health"]["get"]["parameters"]
        .as_array()
        .expect("health parameters");
    assert!(health_params
        .iter()
        .any(|p| resolve(&doc, p)["name"] == "deep"));
}
