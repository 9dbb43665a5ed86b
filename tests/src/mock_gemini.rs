//! A scripted Gemini API on loopback, for running the *real* `gemini --acp` with no account.
//!
//! gemini-cli talks to whatever `GOOGLE_GEMINI_BASE_URL` names (no `/v1beta`): its turns are
//! `POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`, answered here with SSE frames of
//! `GenerateContentResponse` JSON (`functionCall` parts for tools). The reply depends only on
//! the conversation ([`crate::mock_server::Script`]); the write tool's name and its path
//! argument are taken from the declarations the request offers, since they change with the
//! agent's version. Side calls (`:generateContent`, `:countTokens`) get harmless answers.

use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use serde_json::{json, Value};

use crate::mock_server::{
    json_response, path_property, script_for_text, sse, MockServer, Recorded, Script, DONE_TEXT,
    HANG_TEXT, HELLO_TEXT, UNSCRIPTED_TEXT,
};

/// The model the agent is configured with (a fixed one: "auto" makes an extra router call).
pub const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// A running mock; dropping it stops it.
pub struct MockGemini {
    server: MockServer,
}

impl MockGemini {
    pub fn start() -> std::io::Result<MockGemini> {
        let server = MockServer::start("mock-gemini", Arc::new(handle))?;
        Ok(MockGemini { server })
    }

    /// `http://127.0.0.1:PORT`, the value for `GOOGLE_GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn saw(&self, script: &Script) -> bool {
        self.server.saw(script)
    }
}

fn handle(method: &Method, uri: &Uri, body: &Value) -> (Option<Script>, axum::response::Response) {
    let path = uri.path();
    if *method != Method::POST {
        return (None, not_found(method, uri));
    }
    if path.ends_with(":streamGenerateContent") {
        let script = choose_script(body);
        let response = stream_reply(&script, body);
        return (Some(script), response);
    }
    if path.ends_with(":generateContent") {
        // Side calls (next-speaker checks and the like) want JSON when they ask for it.
        let wants_json = body["generationConfig"]["responseMimeType"] == "application/json";
        let text = if wants_json {
            json!({"reasoning": "mock", "next_speaker": "user"}).to_string()
        } else {
            UNSCRIPTED_TEXT.to_string()
        };
        let response = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage(),
            "modelVersion": GEMINI_MODEL,
        });
        return (None, json_response(StatusCode::OK, response));
    }
    if path.ends_with(":countTokens") {
        return (
            None,
            json_response(StatusCode::OK, json!({"totalTokens": 10})),
        );
    }
    (None, not_found(method, uri))
}

fn not_found(method: &Method, uri: &Uri) -> axum::response::Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": 404, "message": format!("mock-gemini: no route for {method} {uri}"), "status": "NOT_FOUND"}}),
    )
}

/// A function response in the last content means "the tool ran, finish up"; otherwise the
/// last user text decides.
pub fn choose_script(body: &Value) -> Script {
    let contents = body["contents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let Some(last) = contents.last() else {
        return Script::Unscripted;
    };
    let parts = last["parts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if parts.iter().any(|p| p.get("functionResponse").is_some()) {
        return Script::ToolResultAck;
    }
    let Some(user) = contents.iter().rev().find(|c| c["role"] == "user") else {
        return Script::Unscripted;
    };
    let text: Vec<&str> = user["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    script_for_text(&text.join("\n"))
}

/// The write tool the request declares (`write_file` today) and its path parameter.
fn write_tool(body: &Value) -> (String, &'static str) {
    let declarations = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .into_iter()
                .flatten()
        });
    for declaration in declarations {
        let name = declaration["name"].as_str().unwrap_or("");
        if name == "write_file" || name.ends_with("write_file") {
            let schema = declaration
                .get("parametersJsonSchema")
                .or_else(|| declaration.get("parameters"))
                .unwrap_or(&Value::Null);
            return (name.to_string(), path_property(schema));
        }
    }
    ("write_file".to_string(), "file_path")
}

fn usage() -> Value {
    json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15})
}

fn frame(parts: Value, finish: Option<&str>) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(reason) = finish {
        candidate["finishReason"] = json!(reason);
    }
    let response = json!({
        "candidates": [candidate],
        "usageMetadata": usage(),
        "modelVersion": GEMINI_MODEL,
    });
    format!("data: {response}\n\n")
}

fn text_frames(text: &str) -> Vec<String> {
    let middle = text.find(' ').map(|i| i + 1).unwrap_or(text.len());
    let (first, second) = text.split_at(middle);
    vec![
        frame(json!([{"text": first}]), None),
        frame(json!([{"text": second}]), Some("STOP")),
    ]
}

fn stream_reply(script: &Script, body: &Value) -> axum::response::Response {
    match script {
        Script::SayHello => sse(text_frames(HELLO_TEXT), false),
        Script::ToolResultAck => sse(text_frames(DONE_TEXT), false),
        Script::Unscripted => sse(text_frames(UNSCRIPTED_TEXT), false),
        Script::Hang => sse(vec![frame(json!([{"text": HANG_TEXT}]), None)], true),
        Script::Write { path, content } => {
            let (name, path_arg) = write_tool(body);
            let call = json!([{"functionCall": {
                "name": name,
                "args": {path_arg: path, "content": content},
            }}]);
            sse(vec![frame(call, Some("STOP"))], false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_response_finishes_and_user_text_decides_otherwise() {
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "<ctx>say hello</ctx>"}, {"text": "write /w/a.txt hi"}]},
        ]});
        assert_eq!(
            choose_script(&body),
            Script::Write {
                path: "/w/a.txt".into(),
                content: "hi".into()
            }
        );
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "write /w/a.txt hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "write_file", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {}}}]},
        ]});
        assert_eq!(choose_script(&body), Script::ToolResultAck);
    }

    #[test]
    fn the_write_tool_comes_from_the_declarations() {
        let body = json!({"tools": [{"functionDeclarations": [
            {"name": "read_file", "parametersJsonSchema": {"properties": {"absolute_path": {}}}},
            {"name": "write_file", "parametersJsonSchema": {"properties": {"file_path": {}, "content": {}}}},
        ]}]});
        assert_eq!(write_tool(&body), ("write_file".into(), "file_path"));
    }
}
