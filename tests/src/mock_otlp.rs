//! A loopback OpenTelemetry collector: accepts OTLP/HTTP JSON on
//! `POST /v1/traces` (what `qserve-host --otlp-endpoint` sends) and keeps
//! every span it received, flattened out of the resource and scope layers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::mock_server::{json_response, MockServer};

/// One received span: its name, ids and attributes (every value as text).
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The running collector; dropping it stops it.
pub struct MockOtlp {
    server: MockServer,
}

impl MockOtlp {
    pub fn start() -> std::io::Result<MockOtlp> {
        let server = MockServer::start(
            "mock-otlp",
            Arc::new(|method: &Method, uri: &axum::http::Uri, _body: &Value| {
                let status = if method == Method::POST && uri.path() == "/v1/traces" {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                };
                // An empty ExportTraceServiceResponse: everything accepted.
                (None, json_response(status, json!({})))
            }),
        )?;
        Ok(MockOtlp { server })
    }

    /// The base URL to give `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// How many export requests arrived (any path).
    pub fn export_requests(&self) -> usize {
        self.server.requests().len()
    }

    /// Every span received on `/v1/traces`, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/traces")
            .flat_map(|r| spans_of(&r.body))
            .collect()
    }
}

/// `resourceSpans[].scopeSpans[].spans[]` of one export request.
pub fn spans_of(body: &Value) -> Vec<ReceivedSpan> {
    let list = |value: &Value, camel: &str, snake: &str| -> Vec<Value> {
        value
            .get(camel)
            .or_else(|| value.get(snake))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |value: &Value, camel: &str, snake: &str| -> String {
        value
            .get(camel)
            .or_else(|| value.get(snake))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut spans = Vec::new();
    for resource in list(body, "resourceSpans", "resource_spans") {
        for scope in list(&resource, "scopeSpans", "scope_spans") {
            for span in list(&scope, "spans", "spans") {
                let attributes = list(&span, "attributes", "attributes")
                    .iter()
                    .filter_map(|kv| {
                        let key = kv.get("key")?.as_str()?.to_owned();
                        Some((key, any_value_text(kv.get("value")?)))
                    })
                    .collect();
                spans.push(ReceivedSpan {
                    name: text(&span, "name", "name"),
                    trace_id: text(&span, "traceId", "trace_id"),
                    span_id: text(&span, "spanId", "span_id"),
                    parent_span_id: text(&span, "parentSpanId", "parent_span_id"),
                    attributes,
                });
            }
        }
    }
    spans
}

/// An OTLP `AnyValue` (`{"stringValue": "x"}`, `{"intValue": "200"}`, …) as text.
fn any_value_text(value: &Value) -> String {
    match value.as_object().and_then(|object| object.values().next()) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
