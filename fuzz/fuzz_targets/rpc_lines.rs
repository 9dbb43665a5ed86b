//! The agent's stdout as the JSON-RPC reader frames it: lines capped at `cap` bytes (the
//! rest of a longer line skipped), each decoded as JSON-RPC. Must match `split('\n')` with
//! the cap applied, whatever the read buffer's size, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qserve_acp::fuzzing::{decode_line, split_lines_capped, CappedLine};

fuzz_target!(|data: &[u8]| {
    let [cap, capacity, input @ ..] = data else {
        return;
    };
    let cap = 1 + (*cap as usize % 64);
    let capacity = 1 + (*capacity as usize % 16);
    let got = split_lines_capped(input, cap, capacity);

    let segments: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    let mut expected = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        if segment.len() <= cap {
            expected.push(CappedLine {
                bytes: segment.to_vec(),
                capped: false,
                skipped: 0,
                eof: last,
            });
        } else {
            expected.push(CappedLine {
                bytes: segment[..cap].to_vec(),
                capped: true,
                skipped: (segment.len() - cap) as u64,
                eof: false,
            });
            if last {
                expected.push(CappedLine {
                    bytes: Vec::new(),
                    capped: false,
                    skipped: 0,
                    eof: true,
                });
            }
        }
    }
    assert_eq!(got, expected, "cap {cap} capacity {capacity}");
    for line in got.iter().filter(|line| !line.capped) {
        let _ = decode_line(&line.bytes);
    }
});
