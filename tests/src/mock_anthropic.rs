//! A scripted Anthropic Messages API on loopback, for running the *real* `claude-code-acp`
//! (which bundles Claude Code) with no account.
//!
//! Claude Code talks to whatever `ANTHROPIC_BASE_URL` names: its turns are `POST /v1/messages`
//! with `stream: true`, answered here with Anthropic's SSE events (`message_start`,
//! `content_block_start/delta/stop` — `tool_use` blocks for tools —, `message_delta`,
//! `message_stop`). The reply depends only on the conversation
//! ([`crate::mock_server::Script`]); the write tool is picked from the tools the request
//! offers (`mcp__acp__Write`, the adapter's own, over Claude Code's built-in `Write`).
//! Non-streamed calls (titles, quota checks) and `count_tokens` get harmless answers.

use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use serde_json::{json, Value};

use crate::mock_server::{
    json_response, path_property, script_for_text, sse, MockServer, Recorded, Script, DONE_TEXT,
    HANG_TEXT, HELLO_TEXT, UNSCRIPTED_TEXT,
};

/// A running mock; dropping it stops it.
pub struct MockAnthropic {
    server: MockServer,
}

impl MockAnthropic {
    pub fn start() -> std::io::Result<MockAnthropic> {
        let server = MockServer::start("mock-anthropic", Arc::new(handle))?;
        Ok(MockAnthropic { server })
    }

    /// `http://127.0.0.1:PORT`, the value for `ANTHROPIC_BASE_URL`.
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
    if *method == Method::POST && path.ends_with("/messages/count_tokens") {
        return (
            None,
            json_response(StatusCode::OK, json!({"input_tokens": 10})),
        );
    }
    if *method == Method::POST && path.ends_with("/v1/messages") {
        let script = choose_script(body);
        let reply = Reply::for_script(&script, body);
        let model = body["model"].as_str().unwrap_or("claude-mock").to_string();
        let response = if body["stream"] == true {
            sse(reply.events(&model), matches!(script, Script::Hang))
        } else {
            json_response(StatusCode::OK, reply.message(&model))
        };
        return (Some(script), response);
    }
    (
        None,
        json_response(
            StatusCode::NOT_FOUND,
            json!({"type": "error", "error": {"type": "not_found_error", "message": format!("mock-anthropic: no route for {method} {uri}")}}),
        ),
    )
}

/// Claude Code merges user turns: the last message can hold earlier tool results, earlier
/// prompts and the new prompt, in that order. So: the blocks after the last `tool_result`
/// decide — none means "the tool ran, finish up"; otherwise the newest text block with a
/// trigger line picks the script.
pub fn choose_script(body: &Value) -> Script {
    let messages = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let Some(last) = messages.last().filter(|m| m["role"] == "user") else {
        return Script::Unscripted;
    };
    let blocks: Vec<Value> = match &last["content"] {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(blocks) => blocks.clone(),
        _ => Vec::new(),
    };
    let after_results = match blocks.iter().rposition(|b| b["type"] == "tool_result") {
        Some(at) => &blocks[at + 1..],
        None => &blocks[..],
    };
    let texts: Vec<&str> = after_results
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect();
    if texts.is_empty() && after_results.len() < blocks.len() {
        return Script::ToolResultAck;
    }
    texts
        .iter()
        .rev()
        .map(|text| script_for_text(text))
        .find(|script| *script != Script::Unscripted)
        .unwrap_or(Script::Unscripted)
}

/// The write tool the request offers and its path parameter.
fn write_tool(body: &Value) -> (String, &'static str) {
    let tools: Vec<&Value> = body["tools"].as_array().into_iter().flatten().collect();
    let named = |wanted: &dyn Fn(&str) -> bool| {
        tools
            .iter()
            .find(|t| wanted(t["name"].as_str().unwrap_or("")))
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or("").to_string(),
                    path_property(&t["input_schema"]),
                )
            })
    };
    named(&|name| name == "mcp__acp__Write")
        .or_else(|| named(&|name| name.ends_with("__Write")))
        .or_else(|| named(&|name| name == "Write"))
        .unwrap_or_else(|| ("Write".to_string(), "file_path"))
}

enum Reply {
    Text(&'static str),
    ToolUse { name: String, input: Value },
}

impl Reply {
    fn for_script(script: &Script, body: &Value) -> Reply {
        match script {
            Script::SayHello => Reply::Text(HELLO_TEXT),
            Script::ToolResultAck => Reply::Text(DONE_TEXT),
            Script::Unscripted => Reply::Text(UNSCRIPTED_TEXT),
            Script::Hang => Reply::Text(HANG_TEXT),
            Script::Write { path, content } => {
                let (name, path_arg) = write_tool(body);
                Reply::ToolUse {
                    name,
                    input: json!({path_arg: path, "content": content}),
                }
            }
        }
    }

    fn stop_reason(&self) -> &'static str {
        match self {
            Reply::Text(_) => "end_turn",
            Reply::ToolUse { .. } => "tool_use",
        }
    }

    fn message(&self, model: &str) -> Value {
        let content = match self {
            Reply::Text(text) => json!([{"type": "text", "text": text}]),
            Reply::ToolUse { name, input } => {
                json!([{"type": "tool_use", "id": tool_use_id(), "name": name, "input": input}])
            }
        };
        json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": self.stop_reason(), "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        })
    }

    /// The SSE events of a streamed answer (text in two deltas). A hanging reply stops after
    /// its first delta.
    fn events(&self, model: &str) -> Vec<String> {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut events = vec![event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 1},
            }}),
        )];
        match self {
            Reply::Text(text) => {
                events.push(event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ));
                let middle = text.find(' ').map(|i| i + 1).unwrap_or(text.len());
                let (first, second) = text.split_at(middle);
                for piece in [first, second] {
                    events.push(event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                    ));
                    if *text == HANG_TEXT {
                        return events;
                    }
                }
            }
            Reply::ToolUse { name, input } => {
                events.push(event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": tool_use_id(), "name": name, "input": {}}}),
                ));
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
                ));
            }
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ));
        events.push(event("message_stop", json!({"type": "message_stop"})));
        events
    }
}

/// Distinct per call: the agent tracks tool calls by id.
fn tool_use_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("toolu_mock_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_result_finishes_and_user_text_decides_otherwise() {
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>say hello</system-reminder>"},
            {"type": "text", "text": "write /w/a.txt hi"},
        ]}]});
        assert_eq!(
            choose_script(&body),
            Script::Write {
                path: "/w/a.txt".into(),
                content: "hi".into()
            }
        );
        let body = json!({"messages": [
            {"role": "user", "content": "write /w/a.txt hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        ]});
        assert_eq!(choose_script(&body), Script::ToolResultAck);
        // Merged turns, as Claude Code sends them after a rejected write: the newest prompt wins.
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "ok"},
            {"type": "tool_result", "tool_use_id": "b", "content": "refused", "is_error": true},
            {"type": "text", "text": "write /w/b.txt nope"},
            {"type": "text", "text": "[Request interrupted by user for tool use]"},
            {"type": "text", "text": "hang until cancelled"},
        ]}]});
        assert_eq!(choose_script(&body), Script::Hang);
    }

    #[test]
    fn the_adapters_write_tool_is_preferred() {
        let body = json!({"tools": [
            {"name": "Write", "input_schema": {"properties": {"file_path": {}}}},
            {"name": "mcp__acp__Write", "input_schema": {"properties": {"file_path": {}, "content": {}}}},
        ]});
        assert_eq!(write_tool(&body), ("mcp__acp__Write".into(), "file_path"));
    }
}
