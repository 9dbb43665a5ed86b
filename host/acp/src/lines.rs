//! Reading newline-delimited input with a hard cap on memory per line.
//!
//! `AsyncBufReadExt::read_until` grows its buffer without bound, so a child
//! that writes gigabytes without a newline would take the daemon down with
//! it. These helpers never hold more than `cap` bytes of one line.

use std::borrow::Cow;
use std::fmt::Write as _;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// `text` made safe for a one-line log record: control characters (line
/// breaks, carriage returns, ANSI escapes, C1 controls) and the Unicode
/// bidirectional overrides become visible `\u{..}` escapes, so an agent or
/// a policy cannot forge a log line or repaint the operator's terminal.
/// Borrowed when there is nothing to escape.
pub fn escape_for_log(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How a call to [`read_line_capped`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnd {
    /// A full line is in the buffer (the `\n` is consumed, not stored).
    Newline,
    /// End of input. The buffer holds the unterminated last line, if any.
    Eof,
    /// The buffer reached `cap` bytes without a newline. The rest of the line
    /// is still unread.
    CapReached,
}

/// Appends one line (without its `\n`) to `buf`, reading at most `cap` bytes
/// of it. `buf` must be empty on entry; it is reused by the caller to avoid an
/// allocation per line.
pub(crate) async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<LineEnd> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineEnd::Eof);
        }
        let room = cap - buf.len();
        match memchr_newline(available) {
            Some(pos) if pos <= room => {
                buf.extend_from_slice(&available[..pos]);
                reader.consume(pos + 1);
                return Ok(LineEnd::Newline);
            }
            _ if room == 0 => return Ok(LineEnd::CapReached),
            found => {
                // No newline within reach: take what fits under the cap. The
                // cap is declared only once the next byte is known not to be
                // the newline, so a line of exactly `cap` bytes fits.
                let take = found.unwrap_or(available.len()).min(room);
                buf.extend_from_slice(&available[..take]);
                reader.consume(take);
            }
        }
    }
}

/// Discards input up to and including the next `\n` (or end of input);
/// returns how many bytes were skipped, newline excluded.
pub(crate) async fn skip_rest_of_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(skipped);
        }
        match memchr_newline(available) {
            Some(pos) => {
                reader.consume(pos + 1);
                return Ok(skipped + pos as u64);
            }
            None => {
                let len = available.len();
                reader.consume(len);
                skipped += len as u64;
            }
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    // `position` compiles to a tight loop; good enough without a memchr dependency.
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines_of(input: &[u8], cap: usize, reader_capacity: usize) -> Vec<(Vec<u8>, LineEnd)> {
        let mut reader = BufReader::with_capacity(reader_capacity, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let end = read_line_capped(&mut reader, &mut buf, cap).await.unwrap();
            out.push((buf.clone(), end));
            match end {
                LineEnd::Eof => return out,
                LineEnd::CapReached => {
                    skip_rest_of_line(&mut reader).await.unwrap();
                }
                LineEnd::Newline => {}
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_small_reads() {
        let got = lines_of(b"ab\ncdef\n\nlast", 100, 2).await;
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), LineEnd::Newline),
                (b"cdef".to_vec(), LineEnd::Newline),
                (b"".to_vec(), LineEnd::Newline),
                (b"last".to_vec(), LineEnd::Eof),
            ]
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_cap_fits() {
        for reader_capacity in [1, 3, 4, 5, 64] {
            let got = lines_of(b"abcd\nx\n", 4, reader_capacity).await;
            assert_eq!(
                got[0],
                (b"abcd".to_vec(), LineEnd::Newline),
                "capacity {reader_capacity}"
            );
            assert_eq!(got[1], (b"x".to_vec(), LineEnd::Newline));
        }
    }

    #[tokio::test]
    async fn a_longer_line_stops_at_the_cap_and_can_be_skipped() {
        let got = lines_of(b"abcdefgh\nnext\n", 4, 3).await;
        assert_eq!(got[0], (b"abcd".to_vec(), LineEnd::CapReached));
        assert_eq!(got[1], (b"next".to_vec(), LineEnd::Newline));
    }

    #[test]
    fn log_text_cannot_forge_lines_or_escape_sequences() {
        assert!(matches!(escape_for_log("plain text ✓"), Cow::Borrowed(_)));
        let forged = "ok\n2026-01-01T00:00:00Z  INFO qserve: forged\r\x1b[2J\u{202E}x\u{9b}";
        let escaped = escape_for_log(forged);
        assert!(!escaped.chars().any(|c| c.is_control()), "{escaped}");
        assert_eq!(
            escaped,
            "ok\\n2026-01-01T00:00:00Z  INFO qserve: forged\\r\\u{1b}[2J\\u{202e}x\\u{9b}"
        );
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use tokio::io::BufReader;

    use super::*;

    /// The lines `split('\n')` gives, each cut at `cap` (with the bytes skipped after it);
    /// a last segment longer than the cap is followed by an empty end-of-input line.
    fn model(input: &[u8], cap: usize) -> Vec<(Vec<u8>, LineEnd, u64)> {
        let segments: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        let mut out = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let last = i == segments.len() - 1;
            if segment.len() <= cap {
                let end = if last { LineEnd::Eof } else { LineEnd::Newline };
                out.push((segment.to_vec(), end, 0));
            } else {
                let skipped = (segment.len() - cap) as u64;
                out.push((segment[..cap].to_vec(), LineEnd::CapReached, skipped));
                if last {
                    out.push((Vec::new(), LineEnd::Eof, 0));
                }
            }
        }
        out
    }

    fn framed(input: &[u8], cap: usize, reader_capacity: usize) -> Vec<(Vec<u8>, LineEnd, u64)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = BufReader::with_capacity(reader_capacity, input);
            let mut out = Vec::new();
            loop {
                let mut buf = Vec::new();
                let end = read_line_capped(&mut reader, &mut buf, cap).await.unwrap();
                let skipped = match end {
                    LineEnd::CapReached => skip_rest_of_line(&mut reader).await.unwrap(),
                    _ => 0,
                };
                out.push((buf, end, skipped));
                if end == LineEnd::Eof {
                    return out;
                }
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The JSON-RPC reader's framing: any bytes, any cap, any read-buffer size give the
        /// lines of `split('\n')`, none longer than the cap.
        #[test]
        fn lines_are_split_and_capped_whatever_the_reads(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'{'), any::<u8>()], 0..200),
            cap in 1usize..40,
            reader_capacity in 1usize..20,
        ) {
            let got = framed(&input, cap, reader_capacity);
            prop_assert!(got.iter().all(|(line, _, _)| line.len() <= cap));
            prop_assert_eq!(got, model(&input, cap));
        }
    }
}
