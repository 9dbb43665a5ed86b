//! The prompt commands of the fake agent (listed in the crate docs).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{Agent, Session};

/// Batches of chunk lines are handed to the writer at about this size.
const BATCH_BYTES: usize = 64 * 1024;

static NEXT_TOOL_CALL: AtomicU64 = AtomicU64::new(1);

/// One prompt turn.
struct Turn<'a> {
    agent: &'a Agent,
    session_id: String,
    cwd: String,
    cancel: watch::Receiver<bool>,
}

/// Runs the prompt's command; `None` means "never answer" (`hang`).
pub async fn run(agent: &Agent, params: &Value, session: &Session) -> Option<Result<Value, Value>> {
    session.cancelled.send_replace(false);
    let turn = Turn {
        agent,
        session_id: params["sessionId"].as_str().unwrap_or_default().to_owned(),
        cwd: session.cwd.clone(),
        cancel: session.cancelled.subscribe(),
    };
    let text = first_text_block(params);
    let (command, rest) = split_word(&text);
    match command {
        "chunks" => turn.chunks(rest).await,
        "permission" => turn.permission(rest).await,
        "permissions-until-cancel" => turn.permissions_until_cancel(rest).await,
        "write" => turn.write(rest).await,
        "edit" => turn.edit(rest).await,
        "read" => turn.read(rest).await,
        "sleep" => turn.sleep(rest).await,
        "nap" => {
            // `nap MS`: says so first, so a test can cancel a turn that runs.
            turn.chunk("napping").await;
            turn.sleep(rest).await
        }
        "crash" => {
            turn.chunk("crashing now").await;
            agent.wire.exit(3).await
        }
        "hang" => return None,
        // `fail DETAILS`: the prompt fails the way qwen's does when its model
        // is unreachable (`-32603` with `data.details`).
        "fail" => {
            return Some(Err(json!({
                "code": -32603, "message": "Internal error", "data": {"details": rest}
            })))
        }
        "garbage" => turn.garbage().await,
        "bigline" => turn.chunk(&"x".repeat(number(rest, 0) as usize)).await,
        "ext" => turn.ext().await,
        "unknown-update" => turn.unknown_update().await,
        "echo" => turn.chunk(rest).await,
        "deaf-reads" => {
            // `deaf-reads PATH N`: stop reading stdin, then ask to read
            // PATH N times without waiting: the answers pile up in the
            // client. The turn never ends by itself.
            let mut words = rest.split_whitespace();
            let path = words.next().unwrap_or_default();
            let count = number(words.next().unwrap_or_default(), 1);
            crate::wire::STOP_READING.store(true, Ordering::Release);
            for i in 0..count {
                let request = json!({
                    "jsonrpc": "2.0", "id": 900_000 + i, "method": "fs/read_text_file",
                    "params": {"sessionId": turn.session_id, "path": path}
                });
                agent.wire.send(&request).await;
            }
            turn.chunk(&format!("deaf-reads: sent {count}")).await;
            return None;
        }
        "foreign-updates" => {
            // `foreign-updates N`: N updates, each for a session id this
            // agent never created (memory bounds of the daemon's routing).
            let count = number(rest, 1);
            for i in 0..count {
                let update = json!({
                    "sessionId": format!("foreign-{i}"),
                    "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "x"}}
                });
                agent.wire.notify("session/update", update).await;
            }
            turn.chunk(&format!("foreign-updates: sent {count}")).await
        }
        "stderr" => {
            // `stderr TEXT`: TEXT (with `\n` and `\e` turned into a real
            // newline and ESC) on stderr, which the daemon logs.
            let text = rest.replace("\\n", "\n").replace("\\e", "\u{1b}");
            eprintln!("{text}");
            turn.chunk("stderr: written").await
        }
        "env" => {
            // `env NAME…`: which of these variables the agent was given
            // (never their values).
            let report: Vec<String> = rest
                .split_whitespace()
                .map(|name| {
                    let state = if std::env::var_os(name).is_some() {
                        "set"
                    } else {
                        "unset"
                    };
                    format!("{name}={state}")
                })
                .collect();
            turn.chunk(&format!("env: {}", report.join(" "))).await
        }
        // --- session/prompt hardening (helper "sessions") ---
        // `stuck TEXT`: a chunk TEXT (so a test knows the turn started),
        // then never answers and ignores `session/cancel`.
        "stuck" => {
            turn.chunk(rest).await;
            return None;
        }
        // --- end of session/prompt hardening ---
        other => turn.chunk(&format!("unknown command: {other}")).await,
    }
    let stop_reason = if turn.is_cancelled() {
        "cancelled"
    } else {
        "end_turn"
    };
    Some(Ok(json!({ "stopReason": stop_reason })))
}

impl Turn<'_> {
    fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// One `agent_message_chunk` update.
    async fn chunk(&self, text: &str) {
        let update = json!({
            "sessionId": self.session_id,
            "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
        });
        self.agent.wire.notify("session/update", update).await;
    }

    /// `chunks N [BYTES]`: pre-encoded lines in large batches, so the fake
    /// agent outruns the daemon it is measuring.
    async fn chunks(&self, args: &str) {
        let mut words = args.split_whitespace();
        let count = words.next().map_or(1, |w| w.parse().unwrap_or(1));
        let size = words.next().map_or(64, |w| w.parse().unwrap_or(64));
        let sid = serde_json::to_string(&self.session_id).expect("a string serializes");
        let prefix = format!(
            r#"{{"jsonrpc":"2.0","method":"session/update","params":{{"sessionId":{sid},"update":{{"sessionUpdate":"agent_message_chunk","content":{{"type":"text","text":""#
        );
        let suffix = b"\"}}}}\n";
        let mut batch = Vec::with_capacity(BATCH_BYTES + prefix.len() + size + 64);
        for i in 0..count {
            if i % 256 == 0 && self.is_cancelled() {
                break;
            }
            batch.extend_from_slice(prefix.as_bytes());
            let start = batch.len();
            write!(batch, "chunk {i} ").expect("writing to a Vec");
            let padding = size.saturating_sub(batch.len() - start);
            batch.resize(batch.len() + padding, b'x');
            batch.extend_from_slice(suffix);
            if batch.len() >= BATCH_BYTES {
                self.agent.wire.send_raw(std::mem::take(&mut batch)).await;
                batch.reserve(BATCH_BYTES + prefix.len() + size + 64);
            }
        }
        if !batch.is_empty() {
            self.agent.wire.send_raw(batch).await;
        }
    }

    async fn permission(&self, args: &str) {
        let kind = args.split_whitespace().next().unwrap_or("edit");
        let call_id = format!(
            "fake-call-{}",
            NEXT_TOOL_CALL.fetch_add(1, Ordering::Relaxed)
        );
        let path = format!("{}/fake-target.txt", self.cwd.trim_end_matches('/'));
        let params = json!({
            "sessionId": self.session_id,
            "toolCall": {
                "toolCallId": call_id,
                "title": format!("Fake {kind} tool call"),
                "kind": kind,
                "status": "pending",
                "locations": [{"path": path}],
                "rawInput": {"file_path": path, "content": "fake"}
            },
            "options": [
                {"optionId": "proceed_once", "name": "Allow once", "kind": "allow_once"},
                {"optionId": "proceed_always", "name": "Allow always", "kind": "allow_always"},
                {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}
            ]
        });
        let report = match self
            .agent
            .wire
            .request("session/request_permission", params)
            .await
        {
            Ok(answer) => match answer["outcome"]["outcome"].as_str() {
                Some("selected") => format!(
                    "outcome: selected {}",
                    answer["outcome"]["optionId"].as_str().unwrap_or_default()
                ),
                Some("cancelled") => "outcome: cancelled".to_owned(),
                _ => format!("outcome: unexpected {answer}"),
            },
            Err(error) => format!("outcome: {}", describe_error(&error)),
        };
        self.chunk(&report).await;
    }

    /// `permissions-until-cancel [KIND]`: one permission request after
    /// another (each waits for its answer) until the turn is cancelled, then
    /// one chunk `permissions: sent N answered N selected S cancelled C
    /// ids FIRST..LAST` — a load for hot-swap tests.
    async fn permissions_until_cancel(&self, args: &str) {
        let kind = args.split_whitespace().next().unwrap_or("edit");
        let path = format!("{}/fake-target.txt", self.cwd.trim_end_matches('/'));
        let (mut sent, mut answered, mut selected, mut cancelled) = (0u64, 0u64, 0u64, 0u64);
        let mut ids = Vec::new();
        while !self.is_cancelled() {
            let call_id = format!(
                "fake-call-{}",
                NEXT_TOOL_CALL.fetch_add(1, Ordering::Relaxed)
            );
            ids.push(call_id.clone());
            let params = json!({
                "sessionId": self.session_id,
                "toolCall": {
                    "toolCallId": call_id,
                    "title": format!("Fake {kind} tool call"),
                    "kind": kind,
                    "status": "pending",
                    "locations": [{"path": path}],
                    "rawInput": {"file_path": path, "content": "fake"}
                },
                "options": [
                    {"optionId": "proceed_once", "name": "Allow once", "kind": "allow_once"},
                    {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}
                ]
            });
            sent += 1;
            if let Ok(answer) = self
                .agent
                .wire
                .request("session/request_permission", params)
                .await
            {
                answered += 1;
                match answer["outcome"]["outcome"].as_str() {
                    Some("selected") => selected += 1,
                    Some("cancelled") => cancelled += 1,
                    _ => {}
                }
            }
        }
        self.chunk(&format!(
            "permissions: sent {sent} answered {answered} selected {selected} cancelled {cancelled} ids {}..{}",
            ids.first().map_or("", String::as_str),
            ids.last().map_or("", String::as_str),
        ))
        .await;
    }

    /// `edit NAME CONTENT`: what a coding agent does to change a file — a
    /// plan, a pending `tool_call`, `session/request_permission`, then (if
    /// an allow option was chosen) `fs/write_text_file` of CONTENT to
    /// NAME in the workspace and the tool call `completed`, else `failed`.
    async fn edit(&self, args: &str) {
        let (name, content) = split_word(args);
        let path = format!("{}/{name}", self.cwd.trim_end_matches('/'));
        let call_id = format!(
            "fake-call-{}",
            NEXT_TOOL_CALL.fetch_add(1, Ordering::Relaxed)
        );
        let update = |update: Value| json!({"sessionId": self.session_id, "update": update});
        let plan = |second: &str| {
            update(json!({"sessionUpdate": "plan", "entries": [
                {"content": format!("Write {name}"), "priority": "high", "status": "completed"},
                {"content": "Report the outcome", "priority": "medium", "status": second},
            ]}))
        };
        let wire = &self.agent.wire;
        wire.notify("session/update", plan("pending")).await;
        let title = format!("Write {name}");
        wire.notify(
            "session/update",
            update(
                json!({"sessionUpdate": "tool_call", "toolCallId": call_id, "title": title,
                "kind": "edit", "status": "pending", "locations": [{"path": path}]}),
            ),
        )
        .await;
        let params = json!({
            "sessionId": self.session_id,
            "toolCall": {"toolCallId": call_id, "title": title, "kind": "edit", "status": "pending",
                "locations": [{"path": path}], "rawInput": {"file_path": path, "content": content}},
            "options": [
                {"optionId": "proceed_once", "name": "Allow", "kind": "allow_once"},
                {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}
            ]
        });
        let answer = wire.request("session/request_permission", params).await;
        let allowed = answer.as_ref().is_ok_and(|a| {
            a["outcome"]["outcome"] == "selected" && a["outcome"]["optionId"] == "proceed_once"
        });
        let status = if allowed {
            wire.notify(
                "session/update",
                update(json!({"sessionUpdate": "tool_call_update", "toolCallId": call_id, "status": "in_progress"})),
            )
            .await;
            let written = wire
                .request(
                    "fs/write_text_file",
                    json!({"sessionId": self.session_id, "path": path, "content": content}),
                )
                .await;
            if written.is_ok() {
                "completed"
            } else {
                "failed"
            }
        } else {
            "failed"
        };
        wire.notify(
            "session/update",
            update(json!({"sessionUpdate": "tool_call_update", "toolCallId": call_id, "status": status})),
        )
        .await;
        wire.notify("session/update", plan("completed")).await;
        self.chunk(&format!("edit: {status}")).await;
    }

    /// `write PATH CONTENT` (`\n` in CONTENT becomes a newline).
    async fn write(&self, args: &str) {
        let (path, content) = split_word(args);
        let params = json!({
            "sessionId": self.session_id,
            "path": path,
            "content": content.replace("\\n", "\n"),
        });
        let report = match self.agent.wire.request("fs/write_text_file", params).await {
            Ok(_) => "write: ok".to_owned(),
            Err(error) => format!("write: {}", describe_error(&error)),
        };
        self.chunk(&report).await;
    }

    /// `read PATH [LINE [LIMIT]]` (LINE and LIMIT may be 0 or negative, to
    /// test the client's validation).
    async fn read(&self, args: &str) {
        let mut words = args.split_whitespace();
        let mut params =
            json!({"sessionId": self.session_id, "path": words.next().unwrap_or_default()});
        if let Some(line) = words.next() {
            params["line"] = json!(line.parse::<i64>().unwrap_or(1));
        }
        if let Some(limit) = words.next() {
            params["limit"] = json!(limit.parse::<i64>().unwrap_or(1));
        }
        let report = match self.agent.wire.request("fs/read_text_file", params).await {
            Ok(result) => format!(
                "read: ok {}",
                result["content"].as_str().unwrap_or_default()
            ),
            Err(error) => format!("read: {}", describe_error(&error)),
        };
        self.chunk(&report).await;
    }

    /// `sleep MS`, cut short by `session/cancel`.
    async fn sleep(&self, args: &str) {
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(number(args, 0))) => {}
            _ = cancel.wait_for(|cancelled| *cancelled) => {}
        }
    }

    async fn garbage(&self) {
        let junk =
            b"this line is not JSON\n{\"truncated\": \nplain text with a } brace\n[1, 2, 3]\n\n";
        self.agent.wire.send_raw(junk.to_vec()).await;
        self.chunk("after garbage").await;
    }

    async fn ext(&self) {
        let result = self
            .agent
            .wire
            .request(
                "craft/drainMidTurnQueue",
                json!({"sessionId": self.session_id}),
            )
            .await;
        let report = match result {
            Ok(value) => format!("ext: ok {value}"),
            Err(error) => format!("ext: error {}", error["code"]),
        };
        self.chunk(&report).await;
    }

    async fn unknown_update(&self) {
        let update = json!({
            "sessionId": self.session_id,
            "update": {
                "sessionUpdate": "future_variant_xyz",
                "futureField": {"nested": [1, 2.5, "three"], "flag": true},
                "note": "a session/update variant from the future"
            }
        });
        self.agent.wire.notify("session/update", update).await;
    }
}

/// `error CODE MESSAGE` for a JSON-RPC error object.
fn describe_error(error: &Value) -> String {
    format!(
        "error {} {}",
        error["code"],
        error["message"].as_str().unwrap_or_default()
    )
}

fn first_text_block(params: &Value) -> String {
    params["prompt"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "text"))
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `"word rest of text"` → `("word", "rest of text")`.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

fn number(text: &str, default: u64) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(default)
}
