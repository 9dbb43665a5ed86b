//! The resume cursor: only a pure decimal not above 2^53-1 counts, whatever its length
//! (leading zeros included), and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qserve_http::sse::last_event_id::{parse, MAX_EVENT_ID};

fuzz_target!(|value: &str| {
    let model = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let significant = value.trim_start_matches('0');
        if significant.len() > 16 {
            None
        } else {
            let n: u64 = if significant.is_empty() {
                0
            } else {
                significant.parse().unwrap()
            };
            (n <= MAX_EVENT_ID).then_some(n)
        }
    } else {
        None
    };
    assert_eq!(parse(value), model, "{value:?}");
});
