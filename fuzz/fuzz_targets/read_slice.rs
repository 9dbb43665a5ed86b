//! `fs/read_text_file`'s `line`/`limit` slicing against its reference, JavaScript's
//! `text.split('\n').slice(line - 1, line - 1 + limit).join('\n')`, on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qserve_acp::fuzzing::read_text_lines;

fuzz_target!(|data: &[u8]| {
    let [line, limit, text @ ..] = data else {
        return;
    };
    let line = u32::from(*line % 12);
    let limit = match *limit % 12 {
        0 => None,
        n => Some(u32::from(n)),
    };
    let segments: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let start = (line.max(1) - 1) as usize;
    let expected = if start >= segments.len() {
        Vec::new()
    } else {
        let end = limit.map_or(segments.len(), |l| (start + l as usize).min(segments.len()));
        segments[start..end].join(&b'\n')
    };
    assert_eq!(
        read_text_lines(text, line, limit),
        expected,
        "line {line} limit {limit:?}"
    );
});
