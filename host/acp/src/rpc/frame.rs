//! JSON-RPC 2.0 frames on the wire: decoding one incoming line without
//! copying more than needed, and encoding outgoing frames.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::error::RpcError;

/// A method name. Names the daemon sees all the time are static strings, so
/// the hot path (`session/update`) allocates nothing for them.
pub type MethodName = Cow<'static, str>;

/// One incoming line, borrowed from the read buffer. `params`, `result` and
/// `id` stay raw JSON so nothing is re-serialized.
#[derive(Deserialize)]
struct WireFrame<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// What an incoming line turned out to be.
pub(crate) enum Decoded<'a> {
    Request {
        id: &'a RawValue,
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    Notification {
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    Response {
        id: &'a RawValue,
        result: Result<Option<&'a RawValue>, RpcError>,
    },
}

/// Why a line was not a JSON-RPC message.
#[derive(Debug)]
pub(crate) enum DecodeError {
    NotJson(serde_json::Error),
    NotJsonRpc,
}

pub(crate) fn decode(line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let frame: WireFrame<'_> = serde_json::from_slice(line).map_err(DecodeError::NotJson)?;
    // serde reads a struct from a JSON array as well, its fields in order: without this,
    // `[5,"fs/read_text_file",{…}]` was taken for a request (found by the `rpc_lines`
    // fuzz target). A JSON-RPC message is an object.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(DecodeError::NotJsonRpc);
    }
    match (frame.method, frame.id) {
        (Some(method), Some(id)) => Ok(Decoded::Request {
            id,
            method,
            params: frame.params,
        }),
        (Some(method), None) => Ok(Decoded::Notification {
            method,
            params: frame.params,
        }),
        (None, Some(id)) => {
            let result = match frame.error {
                Some(error) => Err(lenient_error(error)),
                None => Ok(frame.result),
            };
            Ok(Decoded::Response { id, result })
        }
        (None, None) => Err(DecodeError::NotJsonRpc),
    }
}

/// Reads an agent's error object without failing on odd shapes (a float
/// code, a missing message): the caller must always get an error back.
fn lenient_error(raw: &RawValue) -> RpcError {
    let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
    let code = value
        .get("code")
        .and_then(|c| c.as_i64().or_else(|| c.as_f64().map(|f| f as i64)))
        .unwrap_or(RpcError::INTERNAL_ERROR);
    let message = match value.get("message").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => format!(
            "the agent answered with an error without a message: {}",
            raw.get()
        ),
    };
    RpcError {
        code,
        message,
        data: value.get("data").cloned(),
    }
}

/// Our own request ids are numbers; accept them back as numbers or as
/// numeric strings.
pub(crate) fn parse_own_id(id: &RawValue) -> Option<u64> {
    let text = id.get();
    let digits = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    digits.parse().ok()
}

/// Interns the method names seen on the hot path.
pub(crate) fn method_name(method: Cow<'_, str>) -> MethodName {
    const KNOWN: &[&str] = &[
        "session/update",
        "session/request_permission",
        "fs/read_text_file",
        "fs/write_text_file",
    ];
    match KNOWN.iter().find(|known| **known == method) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.into_owned()),
    }
}

#[derive(Serialize)]
struct OutRequest<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct OutNotification<'a, P> {
    jsonrpc: &'static str,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct OutResult<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: &'a Value,
}

#[derive(Serialize)]
struct OutError<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: &'a RpcError,
}

/// Encoded frames end with `\n`, ready for the writer.
pub(crate) fn encode_request<P: Serialize>(
    id: u64,
    method: &str,
    params: P,
) -> serde_json::Result<Vec<u8>> {
    finish(serde_json::to_vec(&OutRequest {
        jsonrpc: "2.0",
        id,
        method,
        params,
    }))
}

pub(crate) fn encode_notification<P: Serialize>(
    method: &str,
    params: P,
) -> serde_json::Result<Vec<u8>> {
    finish(serde_json::to_vec(&OutNotification {
        jsonrpc: "2.0",
        method,
        params,
    }))
}

pub(crate) fn encode_response(id: &RawValue, result: &Result<Value, RpcError>) -> Vec<u8> {
    let encoded = match result {
        Ok(result) => serde_json::to_vec(&OutResult {
            jsonrpc: "2.0",
            id,
            result,
        }),
        Err(error) => serde_json::to_vec(&OutError {
            jsonrpc: "2.0",
            id,
            error,
        }),
    };
    // A `Value` and an `RpcError` always serialize.
    finish(encoded).expect("JSON values serialize")
}

fn finish(encoded: serde_json::Result<Vec<u8>>) -> serde_json::Result<Vec<u8>> {
    let mut bytes = encoded?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let Decoded::Request { id, method, params } = decode(
            br#"{"jsonrpc":"2.0","id":0,"method":"fs/read_text_file","params":{"path":"/x"}}"#,
        )
        .unwrap() else {
            panic!("a request")
        };
        assert_eq!(
            (id.get(), &*method, params.unwrap().get()),
            ("0", "fs/read_text_file", r#"{"path":"/x"}"#)
        );

        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","method":"session/update","params":{}}"#).unwrap(),
            Decoded::Notification { .. }
        ));

        let Decoded::Response { id, result } =
            decode(br#"{"jsonrpc":"2.0","id":"7","result":null}"#).unwrap()
        else {
            panic!("a response")
        };
        assert_eq!(parse_own_id(id), Some(7));
        assert!(matches!(result, Ok(None)), "null result is a success");
    }

    #[test]
    fn an_array_is_not_a_message() {
        for line in [
            &br#"[5,"fs/read_text_file",{"path":"/etc/passwd"}]"#[..],
            br#" [1,"session/update"]"#,
            br#"[9e750,""]"#,
        ] {
            assert!(
                matches!(decode(line), Err(DecodeError::NotJsonRpc)),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(matches!(
            decode(br#" {"jsonrpc":"2.0","id":1,"method":"m"}"#),
            Ok(Decoded::Request { .. })
        ));
    }

    #[test]
    fn odd_error_objects_still_become_errors() {
        let Decoded::Response { result, .. } =
            decode(br#"{"id":1,"error":{"code":-32601.0}}"#).unwrap()
        else {
            panic!("a response")
        };
        let err = result.unwrap_err();
        assert_eq!(err.code, -32601);
        assert!(err.message.contains("without a message"));
    }

    #[test]
    fn rejects_non_json_and_non_rpc() {
        assert!(matches!(decode(b"hello"), Err(DecodeError::NotJson(_))));
        assert!(matches!(decode(b"[1,2]"), Err(DecodeError::NotJson(_))));
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0"}"#),
            Err(DecodeError::NotJsonRpc)
        ));
    }

    #[test]
    fn responses_echo_the_id_verbatim() {
        let id = RawValue::from_string(r#""req-\u00e9""#.to_owned()).unwrap();
        let bytes = encode_response(&id, &Ok(serde_json::json!({"ok": true})));
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":\"req-\\u00e9\",\"result\":{\"ok\":true}}\n"
        );
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever an agent writes on a line, decoding answers (never panics); an error
        /// object of any shape becomes an error.
        #[test]
        fn any_line_decodes_or_is_refused(line in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(Decoded::Response { id, .. }) = decode(&line) {
                let _ = parse_own_id(id);
            }
        }

        #[test]
        fn any_error_member_is_an_error(code in any::<f64>(), message in proptest::option::of(".{0,12}")) {
            let error = match &message {
                Some(message) => json!({"code": code, "message": message}),
                None => json!({"code": code}),
            };
            let line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 3, "error": error})).unwrap();
            let Ok(Decoded::Response { id, result }) = decode(&line) else {
                panic!("a response");
            };
            prop_assert_eq!(parse_own_id(id), Some(3));
            prop_assert!(result.is_err());
        }

        /// What the daemon encodes decodes back to the same message, and an answer to a
        /// request carries the request's id byte for byte.
        #[test]
        fn encoded_frames_decode_to_themselves(
            id in any::<u64>(),
            method in "[a-z_/]{1,24}|\\PC{0,16}",
            text in "\\PC{0,32}",
        ) {
            let params = json!({"text": text});
            let request = encode_request(id, &method, &params).unwrap();
            prop_assert_eq!(request.iter().filter(|b| **b == b'\n').count(), 1);
            let line = &request[..request.len() - 1];
            let Ok(Decoded::Request { id: raw_id, method: decoded, params: Some(raw) }) = decode(line) else {
                panic!("a request");
            };
            prop_assert_eq!(parse_own_id(raw_id), Some(id));
            prop_assert_eq!(&*decoded, method.as_str());
            prop_assert_eq!(serde_json::from_str::<Value>(raw.get()).unwrap(), params.clone());
            let answer = encode_response(raw_id, &Ok(params));
            let Ok(Decoded::Response { id: answered, .. }) = decode(&answer[..answer.len() - 1]) else {
                panic!("a response");
            };
            prop_assert_eq!(answered.get(), raw_id.get());

            let notification = encode_notification(&method, json!({})).unwrap();
            let is_notification = matches!(decode(&notification), Ok(Decoded::Notification { .. }));
            prop_assert!(is_notification);
        }
    }
}
