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
