//! Where the resume cursor (`Last-Event-ID`) is parsed.
//!
//! qwen serve learned this the hard way: a lenient parse (`parseInt("1.5e10z")`
//! is 1) silently resumes from the wrong place, and a 25-digit value loses
//! precision in a JS client. So only a pure decimal that a JS number holds
//! exactly counts; anything else is ignored — and logged, because a client
//! resuming from scratch without a trace is a miserable bug to chase.

use axum::http::HeaderMap;

/// Largest id a JavaScript client can hold exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_EVENT_ID: u64 = (1 << 53) - 1;

/// The `Last-Event-ID` header (set by EventSource on reconnect).
pub const HEADER: &str = "last-event-id";

/// Parses one cursor value: `Some` only for `^[0-9]+$` not above [`MAX_EVENT_ID`].
pub fn parse(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().filter(|&id| id <= MAX_EVENT_ID)
}

/// The cursor a subscriber asked to resume after: the header when present
/// (EventSource keeps it current across reconnects), else the `lastEventId`
/// query parameter. An unusable value is ignored with a warning.
pub fn from_request(headers: &HeaderMap, query_value: Option<&str>) -> Option<u64> {
    let (source, raw) = match headers.get(HEADER) {
        Some(value) => match value.to_str() {
            Ok(text) => ("Last-Event-ID header", text),
            Err(_) => {
                tracing::warn!(
                    "ignoring a non-ASCII Last-Event-ID header; streaming live events only"
                );
                return None;
            }
        },
        None => match query_value {
            Some(text) => ("lastEventId query parameter", text),
            None => return None,
        },
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = parse(raw);
    if parsed.is_none() {
        tracing::warn!(
            value = %raw.chars().take(64).collect::<String>(),
            "ignoring {source}: not a decimal event id <= 2^53-1; streaming live events only"
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_decimals_within_the_js_safe_range_count() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("12"), Some(12));
        assert_eq!(parse("007"), Some(7));
        assert_eq!(parse("9007199254740991"), Some(MAX_EVENT_ID));
    }

    #[test]
    fn everything_else_is_ignored() {
        for bad in [
            "",
            "12abc",
            "-1",
            "+1",
            "1.5e10z",
            "1.0",
            " 1",
            "abc",
            "9007199254740992",
            "99999999999999999999999999",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_wins_over_query_even_when_it_is_invalid() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_request(&headers, Some("4")), Some(4));
        headers.insert(HEADER, "9".parse().unwrap());
        assert_eq!(from_request(&headers, Some("4")), Some(9));
        headers.insert(HEADER, "nine".parse().unwrap());
        assert_eq!(from_request(&headers, Some("4")), None);
    }
}

#[cfg(test)]
mod proptests {
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    /// The rule, stated independently: 1+ ASCII digits whose value is at
    /// most 2^53-1 (leading zeros allowed).
    fn model(value: &str) -> Option<u64> {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = value.trim_start_matches('0');
        if significant.len() > 16 {
            return None;
        }
        let number: u64 = if significant.is_empty() {
            0
        } else {
            significant.parse().unwrap()
        };
        (number <= MAX_EVENT_ID).then_some(number)
    }

    fn cursor_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,25}",
            "0{0,30}[0-9]{1,17}",
            "[+-]?[0-9]{0,5}[.eE]?[0-9a-z]{0,5}",
            (0..=MAX_EVENT_ID + 10).prop_map(|n| n.to_string()),
            (MAX_EVENT_ID - 3..=MAX_EVENT_ID + 3).prop_map(|n| n.to_string()),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_safe_decimals(value in cursor_text()) {
            prop_assert_eq!(parse(&value), model(&value));
        }

        #[test]
        fn any_header_bytes_are_handled_without_panic(
            header in proptest::collection::vec(any::<u8>(), 0..40),
            query in proptest::option::of(cursor_text()),
        ) {
            let mut headers = HeaderMap::new();
            let expected = match HeaderValue::from_bytes(&header) {
                Ok(value) => {
                    let expected = value.to_str().ok().map(str::trim).and_then(model);
                    headers.insert(HEADER, value);
                    expected
                }
                Err(_) => query.as_deref().map(str::trim).and_then(model),
            };
            prop_assert_eq!(from_request(&headers, query.as_deref()), expected);
        }
    }
}
