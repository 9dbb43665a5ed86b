//! The SSE frame encoder: whatever the event type, payload and originator, a frame is
//! `[id: N\n]event: T\ndata: ONE-LINE\n\n` — no injected line, no early frame end — and a
//! JSON payload comes back out of the envelope with the same meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qserve_http::encode_event;
use serde_json::Value;

fuzz_target!(|input: (Option<u64>, String, String, Option<String>)| {
    let (id, kind, data_json, originator) = input;
    let frame = encode_event(id, &kind, &data_json, originator.as_deref());
    assert_eq!(frame.id, id);
    let bytes: &[u8] = &frame.bytes;
    let body = bytes
        .strip_suffix(b"\n\n")
        .expect("a frame ends with a blank line");
    assert!(
        !body.contains(&b'\r'),
        "a CR would end a line for an SSE parser"
    );
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let mut lines = lines.into_iter();
    if let Some(id) = id {
        assert_eq!(lines.next().unwrap(), format!("id: {id}").as_bytes());
    }
    assert!(lines.next().unwrap().starts_with(b"event: "));
    let data = lines.next().expect("a data line");
    let envelope = data.strip_prefix(b"data: ").expect("the data line");
    assert!(lines.next().is_none(), "one line per field");

    let Ok(payload) = serde_json::from_str::<Value>(&data_json) else {
        return;
    };
    let envelope: Value = serde_json::from_slice(envelope).expect("the envelope is JSON");
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["type"], Value::String(kind));
    assert_eq!(envelope["data"], payload);
    match id {
        Some(id) => assert_eq!(envelope["id"], id),
        None => assert!(envelope.get("id").is_none()),
    }
    match originator {
        Some(originator) => assert_eq!(envelope["originatorClientId"], Value::String(originator)),
        None => assert!(envelope.get("originatorClientId").is_none()),
    }
});
