//! Field checks shared by the routes that take a JSON body. Each failure is
//! a 400 whose message names the field, so a client author sees what to fix.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// A string field that must be present and non-empty.
pub fn required_string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match body.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(Value::String(_)) => Err(ApiError::bad_request(format!(
            "`{field}` must not be empty"
        ))),
        None | Some(Value::Null) => Err(ApiError::bad_request(format!("`{field}` is required"))),
        Some(_) => Err(ApiError::bad_request(format!("`{field}` must be a string"))),
    }
}

/// A string field that may be absent or null (both mean "not given").
pub fn optional_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::bad_request(format!("`{field}` must be a string"))),
    }
}

/// Path-like input must not carry control characters (C0, DEL, C1). A NUL
/// silently truncates a path at the operating system's boundary, and CR/LF
/// or escape sequences forge log lines and terminal output; no real
/// workspace needs them. `what` names the input in the 400's message.
pub fn check_path_text(what: &str, text: &str) -> Result<(), ApiError> {
    match text.chars().find(|c| c.is_control()) {
        Some(found) => Err(ApiError::bad_request(format!(
            "{what} must not contain control characters (found U+{:04X})",
            u32::from(found)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_other_text_is_not() {
        for bad in [
            "/a\0b",
            "/a\nb",
            "\r",
            "/\u{1b}[31m",
            "/\u{7f}",
            "/\u{85}",
            "/\u{9f}",
        ] {
            let error = check_path_text("`cwd`", bad).unwrap_err();
            assert!(error.message.contains("control characters"), "{bad:?}");
        }
        for good in [
            "/",
            "/tmp/a b",
            "/tmp/ünï/cødé",
            "/tmp/\u{2028}",
            "/tmp/\u{a0}",
        ] {
            assert!(check_path_text("`cwd`", good).is_ok(), "{good:?}");
        }
    }
}
