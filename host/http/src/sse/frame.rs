//! Where SSE frames are encoded: the per-event frame the bridge publishes,
//! the synthetic terminal frames, and the two fixed control lines.
//!
//! Wire shape (PROTOCOL.md "Events"):
//! `id: N\nevent: TYPE\ndata: {"id":N,"v":1,"type":TYPE,"data":…,"originatorClientId"?:S}\n\n`.
//! `DaemonClient` reads only the `data:` line, so the JSON envelope must sit
//! on exactly one line; the `id:`/`event:` lines serve browsers' EventSource.

use bytes::Bytes;

use crate::backend::EventFrame;

/// First bytes of every stream: the client's reconnect delay (3 s).
pub const RETRY_PREAMBLE: &[u8] = b"retry: 3000\n\n";

/// Comment frame that keeps proxies and NATs from closing an idle stream.
pub const HEARTBEAT: &[u8] = b": ping\n\n";

/// Type of the terminal frame sent to a subscriber dropped for falling behind.
pub const CLIENT_EVICTED: &str = "client_evicted";

/// Type of the terminal frame sent when the server ends a stream on its own.
pub const STREAM_ERROR: &str = "stream_error";

/// Encodes one event as a complete SSE frame.
///
/// `data_json` must already be serialized JSON; it is inserted verbatim (this
/// runs once per published event, so no `serde_json::Value` round trip).
/// `kind` and `originator` are JSON-escaped. With `id: None` (synthetic
/// frames) neither the `id:` line nor the envelope's `"id"` member is written,
/// so clients' resume cursors are never moved by them.
pub fn encode_event(
    id: Option<u64>,
    kind: &str,
    data_json: &str,
    originator: Option<&str>,
) -> EventFrame {
    let mut out = Vec::with_capacity(
        64 + 2 * kind.len() + data_json.len() + originator.map_or(0, |o| o.len() + 24),
    );
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        push_decimal(&mut out, id);
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: ");
    push_single_line(&mut out, kind.as_bytes());
    out.extend_from_slice(b"\ndata: {");
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        push_decimal(&mut out, id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"v\":1,\"type\":");
    push_json_string(&mut out, kind);
    out.extend_from_slice(b",\"data\":");
    push_single_line(&mut out, data_json.as_bytes());
    if let Some(originator) = originator {
        out.extend_from_slice(b",\"originatorClientId\":");
        push_json_string(&mut out, originator);
    }
    out.extend_from_slice(b"}\n\n");
    EventFrame {
        id,
        bytes: Bytes::from(out),
    }
}

/// The terminal frame for a subscriber the daemon dropped for falling behind.
pub fn client_evicted_frame() -> EventFrame {
    encode_event(
        None,
        CLIENT_EVICTED,
        r#"{"reason":"subscriber fell behind the live event queue"}"#,
        None,
    )
}

/// The terminal frame for a stream the server ends itself; `data` is
/// `{"error": message}` like every other error body.
pub fn stream_error_frame(message: &str) -> EventFrame {
    let data = serde_json::json!({ "error": message }).to_string();
    encode_event(None, STREAM_ERROR, &data, None)
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_json_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("writing a JSON string into a Vec cannot fail");
}

/// Copies bytes that must stay on one SSE line. Valid JSON can only carry a
/// raw CR/LF as insignificant whitespace (inside strings they are escaped),
/// so turning them into spaces keeps the JSON identical in meaning while
/// preventing a pretty-printed payload from splitting the frame.
fn push_single_line(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().any(|&b| b == b'\n' || b == b'\r') {
        out.extend(
            bytes
                .iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: &EventFrame) -> &str {
        std::str::from_utf8(&frame.bytes).unwrap()
    }

    #[test]
    fn event_with_id_has_id_line_and_id_member() {
        let frame = encode_event(Some(7), "session_update", r#"{"a":1}"#, None);
        assert_eq!(frame.id, Some(7));
        assert_eq!(
            text(&frame),
            "id: 7\nevent: session_update\ndata: {\"id\":7,\"v\":1,\"type\":\"session_update\",\"data\":{\"a\":1}}\n\n"
        );
    }

    #[test]
    fn synthetic_event_has_neither_id_line_nor_id_member() {
        let frame = encode_event(None, "stream_error", r#"{"error":"x"}"#, None);
        assert_eq!(frame.id, None);
        assert_eq!(
            text(&frame),
            "event: stream_error\ndata: {\"v\":1,\"type\":\"stream_error\",\"data\":{\"error\":\"x\"}}\n\n"
        );
    }

    #[test]
    fn originator_and_kind_are_json_escaped() {
        let frame = encode_event(Some(1), "t", "null", Some("c\"li\\ent\n"));
        let data_line = text(&frame).lines().nth(2).unwrap();
        let envelope: serde_json::Value =
            serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(envelope["originatorClientId"], "c\"li\\ent\n");
        assert_eq!(envelope["data"], serde_json::Value::Null);
    }

    #[test]
    fn pretty_printed_data_stays_on_one_line_and_keeps_its_meaning() {
        let pretty = "{\n  \"text\": \"a\\nb\"\r\n}";
        let frame = encode_event(Some(u64::MAX), "x", pretty, None);
        let body = text(&frame);
        assert!(body.starts_with("id: 18446744073709551615\n"));
        assert_eq!(body.matches('\n').count(), 4, "{body:?}");
        let data_line = body.lines().nth(2).unwrap();
        let envelope: serde_json::Value =
            serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(envelope["data"]["text"], "a\nb");
    }

    #[test]
    fn terminal_frames_are_valid_envelopes_without_ids() {
        for frame in [client_evicted_frame(), stream_error_frame("bye \"now\"")] {
            assert_eq!(frame.id, None);
            let body = text(&frame);
            assert!(body.starts_with("event: "), "{body:?}");
            let data_line = body.lines().nth(1).unwrap();
            let envelope: serde_json::Value =
                serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(envelope["v"], 1);
            assert!(envelope.get("id").is_none());
        }
        let error = stream_error_frame("bye \"now\"");
        assert!(text(&error).contains(r#""data":{"error":"bye \"now\""}"#));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Text rich in what matters to SSE framing (CR, LF, `:`, spaces,
    /// control characters), as well as any Unicode.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z_:\r\n \t\u{0}\u{b}\u{c}\u{85}\u{2028}]{0,16}",
        ]
    }

    /// Any JSON value without floats (whose text form need not round-trip).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// How the publisher serialized the payload: compact, pretty, or pretty
    /// with CRLF or lone-CR line ends (all valid JSON text).
    fn serialized(value: &Value, style: u8) -> String {
        match style {
            0 => serde_json::to_string(value).unwrap(),
            1 => serde_json::to_string_pretty(value).unwrap(),
            2 => serde_json::to_string_pretty(value)
                .unwrap()
                .replace('\n', "\r\n"),
            _ => serde_json::to_string_pretty(value)
                .unwrap()
                .replace('\n', "\r"),
        }
    }

    /// Splits a frame the way an SSE parser does (CRLF, LF and lone CR all
    /// end a line) into `(field, value)` pairs up to the first blank line,
    /// and returns what follows that blank line.
    fn parse_frame(text: &str) -> (Vec<(String, String)>, String) {
        let mut fields = Vec::new();
        let mut rest = text;
        loop {
            let end = rest.find(['\r', '\n']).expect("unterminated line");
            let line = &rest[..end];
            let skip = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
            if line.is_empty() {
                return (fields, rest.to_owned());
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            fields.push((field.to_owned(), value.to_owned()));
        }
    }

    proptest! {
        #[test]
        fn any_event_parses_back_to_its_fields_with_no_injected_lines(
            id in proptest::option::of(any::<u64>()),
            kind in text(),
            data in json_value(),
            style in 0u8..4,
            originator in proptest::option::of(text()),
        ) {
            let data_json = serialized(&data, style);
            let frame = encode_event(id, &kind, &data_json, originator.as_deref());
            prop_assert_eq!(frame.id, id);
            let text = std::str::from_utf8(&frame.bytes).unwrap();
            let (fields, rest) = parse_frame(text);
            // Exactly one frame, ending at its blank line.
            prop_assert_eq!(rest, "");
            let mut expected_names = Vec::new();
            if id.is_some() {
                expected_names.push("id");
            }
            expected_names.extend(["event", "data"]);
            let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
            prop_assert_eq!(names, expected_names);
            let value_of = |name: &str| {
                fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.clone())
            };
            prop_assert_eq!(value_of("id"), id.map(|id| id.to_string()));
            // The `event:` line cannot hold a line break; the envelope's
            // `type` keeps the exact kind.
            prop_assert_eq!(value_of("event").unwrap(), kind.replace(['\r', '\n'], " "));
            let envelope: Value = serde_json::from_str(&value_of("data").unwrap()).unwrap();
            prop_assert_eq!(&envelope["v"], &Value::from(1));
            prop_assert_eq!(envelope["type"].as_str(), Some(kind.as_str()));
            prop_assert_eq!(&envelope["data"], &data);
            prop_assert_eq!(envelope.get("id").and_then(Value::as_u64), id);
            prop_assert_eq!(
                envelope.get("originatorClientId").and_then(Value::as_str),
                originator.as_deref()
            );
            let mut keys: Vec<&str> = envelope.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut expected_keys = vec!["data", "type", "v"];
            if id.is_some() {
                expected_keys.push("id");
            }
            if originator.is_some() {
                expected_keys.push("originatorClientId");
            }
            expected_keys.sort_unstable();
            prop_assert_eq!(keys, expected_keys);
        }

        #[test]
        fn stream_error_frames_carry_any_message_on_one_line(message in text()) {
            let frame = stream_error_frame(&message);
            let text = std::str::from_utf8(&frame.bytes).unwrap();
            let (fields, rest) = parse_frame(text);
            prop_assert_eq!(rest, "");
            prop_assert_eq!(fields.len(), 2);
            let envelope: Value = serde_json::from_str(&fields[1].1).unwrap();
            prop_assert_eq!(envelope["data"]["error"].as_str(), Some(message.as_str()));
        }
    }
}
