//! Events as terminal lines. Pure: no IO, so it is unit-tested.
//!
//! Everything an agent wrote is shown through [`clean`]: control characters
//! (ESC among them) are made visible, so an agent cannot move the cursor,
//! recolour, or paint a fake permission card over the real one.

use qserve_client::{Event, PermissionRequest, Vote};
use serde_json::Value;

#[derive(Default)]
pub struct Renderer {}

impl Renderer {
    pub fn render(&mut self, event: &Event) -> Vec<String> {
        let data = &event.data;
        match event.kind.as_str() {
            "session_update" => update_lines(&data["update"]),
            "permission_resolved" => {
                let outcome = &data["outcome"];
                let how = match outcome["outcome"].as_str() {
                    Some("selected") => format!("selected {}", text(&outcome["optionId"])),
                    Some(other) => clean(other),
                    None => "?".into(),
                };
                vec![format!("resolved {}: {how}", short(&data["requestId"]))]
            }
            "policy_decision" => vec![format!(
                "policy {} {}: {}",
                text(&data["kind"]),
                text(&data["verdict"]),
                text(&data["reason"])
            )],
            "policy_changed" => vec![format!(
                "policy changed: now {} {}",
                text(&data["policy"]["name"]),
                text(&data["policy"]["version"])
            )],
            "model_switched" => vec![format!("model switched to {}", text(&data["modelId"]))],
            "model_switch_failed" => vec![format!(
                "model switch to {} failed: {}",
                text(&data["modelId"]),
                text(&data["error"])
            )],
            "session_died" => vec![format!("session ended: {}", text(&data["reason"]))],
            "client_evicted" | "stream_error" => {
                vec!["(the stream was cut; resuming where it stopped)".into()]
            }
            "turn_complete" => vec!["(turn complete)".into()],
            "turn_error" => vec![format!(
                "turn failed ({}): {}",
                text(&data["code"]),
                text(&data["message"])
            )],
            // The card is drawn by the caller, which knows what is pending.
            "permission_request" => Vec::new(),
            other => vec![format!("({})", clean(other))],
        }
    }
}

fn update_lines(update: &Value) -> Vec<String> {
    match update["sessionUpdate"].as_str().unwrap_or_default() {
        "agent_message_chunk" => prefixed("agent: ", &update["content"]["text"]),
        "agent_thought_chunk" => prefixed("thinking: ", &update["content"]["text"]),
        "user_message_chunk" => prefixed("user: ", &update["content"]["text"]),
        "tool_call" => vec![format!(
            "tool {} [{}] {} ({})",
            text(&update["toolCallId"]),
            text(&update["kind"]),
            text(&update["title"]),
            text(&update["status"])
        )],
        "tool_call_update" => match update["status"].as_str() {
            Some(status) => vec![format!(
                "tool {} {}",
                text(&update["toolCallId"]),
                clean(status)
            )],
            None => Vec::new(),
        },
        "plan" => {
            let mut lines = vec!["plan:".to_owned()];
            for entry in update["entries"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "  [{}] {}",
                    text(&entry["status"]),
                    text(&entry["content"])
                ));
            }
            lines
        }
        _ => Vec::new(),
    }
}

/// A permission request as a card: what is asked, then numbered options.
pub fn card(request: &PermissionRequest) -> Vec<String> {
    let call = &request.tool_call;
    let mut lines = vec![
        format!(
            "== permission request {} ==",
            short_str(&request.request_id)
        ),
        format!("  {} [{}]", text(&call["title"]), text(&call["kind"])),
    ];
    for location in call["locations"].as_array().into_iter().flatten() {
        lines.push(format!("  path: {}", text(&location["path"])));
    }
    for (n, option) in request.options.iter().enumerate() {
        lines.push(format!(
            "  [{}] {} ({})",
            n + 1,
            clean(&option.name),
            clean(&option.kind)
        ));
    }
    lines.push(format!(
        "  press 1-{} to vote, c to cancel the request",
        request.options.len()
    ));
    lines
}

pub fn vote_label(request: &PermissionRequest, vote: &Vote) -> String {
    match vote {
        Vote::Cancelled => "cancelled".into(),
        Vote::Selected(id) => request
            .options
            .iter()
            .find(|o| &o.option_id == id)
            .map(|o| format!("{} ({})", clean(&o.name), clean(id)))
            .unwrap_or_else(|| clean(id)),
    }
}

/// One line per line of the agent's text, each with the prefix.
fn prefixed(prefix: &str, value: &Value) -> Vec<String> {
    value
        .as_str()
        .unwrap_or_default()
        .split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| format!("{prefix}{}", clean(line)))
        .collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => clean(s),
        Value::Null => "-".into(),
        other => clean(&other.to_string()),
    }
}

fn short(value: &Value) -> String {
    short_str(value.as_str().unwrap_or("?"))
}

fn short_str(id: &str) -> String {
    clean(&id.chars().take(8).collect::<String>())
}

/// Control characters made visible (`\x1b` → `^[`, others as `\u{..}`).
pub fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\t' => out.push(' '),
            '\u{1b}' => out.push_str("^["),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> Event {
        Event {
            id: Some(1),
            v: 1,
            kind: kind.into(),
            data,
        }
    }

    #[test]
    fn agent_text_cannot_drive_the_terminal() {
        let lines = Renderer::default().render(&event(
            "session_update",
            json!({"update": {"sessionUpdate": "agent_message_chunk",
                "content": {"type": "text", "text": "hi\u{1b}[2J\u{1b}[1;1H== permission request fake ==\r\nline two"}}}),
        ));
        assert_eq!(
            lines,
            [
                "agent: hi^[[2J^[[1;1H== permission request fake ==\\u{d}",
                "agent: line two"
            ]
        );
        assert!(lines
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\r')));
    }

    #[test]
    fn a_card_numbers_the_options_in_the_agents_order() {
        let request: PermissionRequest = serde_json::from_value(json!({
            "requestId": "a089be43-83ab-4500-ae78-85eb56cfe85d",
            "toolCall": {"title": "Write x.txt", "kind": "edit", "locations": [{"path": "/ws/x.txt"}]},
            "options": [
                {"optionId": "proceed_once", "name": "Allow once", "kind": "allow_once"},
                {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}
            ]
        }))
        .unwrap();
        assert_eq!(
            card(&request),
            [
                "== permission request a089be43 ==",
                "  Write x.txt [edit]",
                "  path: /ws/x.txt",
                "  [1] Allow once (allow_once)",
                "  [2] Reject (reject_once)",
                "  press 1-2 to vote, c to cancel the request",
            ]
        );
        assert_eq!(
            vote_label(&request, &Vote::Selected("cancel".into())),
            "Reject (cancel)"
        );
    }

    #[test]
    fn decisions_resolutions_and_the_end_are_shown() {
        let mut r = Renderer::default();
        assert_eq!(
            r.render(&event(
                "policy_decision",
                json!({"kind": "permission", "verdict": "ask", "reason": "ask the clients"})
            )),
            ["policy permission ask: ask the clients"]
        );
        assert_eq!(
            r.render(&event("permission_resolved", json!({"requestId": "a089be43-83ab", "outcome": {"outcome": "selected", "optionId": "proceed_once"}}))),
            ["resolved a089be43: selected proceed_once"]
        );
        assert_eq!(
            r.render(&event("session_died", json!({"reason": "closed"}))),
            ["session ended: closed"]
        );
    }
}
