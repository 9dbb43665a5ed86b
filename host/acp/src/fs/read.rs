//! `fs/read_text_file`, blocking part.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsFd;

use rustix::fs::{FileType, OFlags};

use super::open::{describe, open_error, refuse_pseudo, Base};
use super::{FsError, ResolvedPath, MAX_READ_BYTES};

pub(super) fn read_text_file(
    at: &ResolvedPath,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, FsError> {
    if limit == Some(0) {
        return Err(FsError::InvalidParam {
            param: "limit",
            reason: "must be at least 1 (a number of lines)".into(),
        });
    }
    let path = at.resolved.as_path();
    let base = Base::of(at)?;
    let all = base.names.len();
    // First an O_PATH handle: it reads nothing and has no side effect (a
    // device's open may act, a FIFO's blocks), yet it is enough to tell
    // where the object lives and what it is.
    let probe = base
        .open(all, OFlags::PATH)
        .map_err(|e| open_error("open", path, e))?;
    let before = rustix::fs::fstat(&probe).map_err(|e| FsError::from_io("stat", path, e.into()))?;
    refuse_pseudo(probe.as_fd(), at)?;
    check(at, FileType::from_raw_mode(before.st_mode), before.st_size)?;

    // Then the real open, the same way. O_NONBLOCK: were the object swapped
    // for a FIFO in between, the open still returns at once (it has no
    // effect on regular files); the identity check below refuses it.
    let fd = base
        .open(all, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
        .map_err(|e| open_error("open", path, e))?;
    let after = rustix::fs::fstat(&fd).map_err(|e| FsError::from_io("stat", path, e.into()))?;
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
        return Err(FsError::Changed(path.to_owned()));
    }
    check(at, FileType::from_raw_mode(after.st_mode), after.st_size)?;
    let file = File::from(fd);

    // A file that grows while we read still stops at the cap.
    let capped = file.take(MAX_READ_BYTES + 1);
    let bytes = match (line, limit) {
        (None, None) => read_all(path, capped)?,
        _ => read_lines(capped, line.unwrap_or(1), limit)
            .map_err(|e| FsError::from_io("read", path, e))?,
    };
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A link where resolution saw none means the path changed; then only
/// regular files, within the size cap.
fn check(at: &ResolvedPath, kind: FileType, size: i64) -> Result<(), FsError> {
    let path = &at.resolved;
    match kind {
        FileType::RegularFile => {}
        FileType::Symlink => return Err(FsError::Changed(path.clone())),
        other => {
            return Err(FsError::NotRegularFile {
                path: path.clone(),
                kind: describe(other),
            })
        }
    }
    let size = u64::try_from(size).unwrap_or(0);
    if size > MAX_READ_BYTES {
        return Err(FsError::TooLarge {
            path: path.clone(),
            size,
            max: MAX_READ_BYTES,
        });
    }
    Ok(())
}

fn read_all(path: &std::path::Path, mut file: std::io::Take<File>) -> Result<Vec<u8>, FsError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| FsError::from_io("read", path, e))?;
    if bytes.len() as u64 > MAX_READ_BYTES {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            max: MAX_READ_BYTES,
        });
    }
    Ok(bytes)
}

/// The lines `line..line + limit` (1-based; 0 counts as 1) joined by `\n`,
/// reading only as far as needed and holding only the selected lines.
pub(crate) fn read_lines(
    source: impl Read,
    line: u32,
    limit: Option<u32>,
) -> std::io::Result<Vec<u8>> {
    let mut reader = BufReader::with_capacity(64 * 1024, source);
    for _ in 1..line.max(1) {
        if !skip_segment(&mut reader)? {
            // The file has fewer lines than `line - 1`.
            return Ok(Vec::new());
        }
    }
    let mut out = Vec::new();
    let mut segment = Vec::new();
    let mut taken = 0u32;
    loop {
        segment.clear();
        let n = reader.read_until(b'\n', &mut segment)?;
        let ends_with_newline = segment.last() == Some(&b'\n');
        let content = if ends_with_newline {
            &segment[..n - 1]
        } else {
            &segment[..]
        };
        if taken > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(content);
        taken += 1;
        // A line without a newline is the last one; after a final newline
        // comes one more, empty, line (as `split('\n')` sees it).
        if !ends_with_newline || limit == Some(taken) {
            return Ok(out);
        }
    }
}

/// Skips one `\n`-separated segment; false when it was the last one (no
/// newline ended it), so no further line exists.
fn skip_segment(reader: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                reader.consume(pos + 1);
                return Ok(true);
            }
            None => {
                let len = available.len();
                reader.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_lines;

    /// The reference: JavaScript's `split('\n').slice(start, start + limit).join('\n')`.
    fn reference(text: &str, line: u32, limit: Option<u32>) -> String {
        let segments: Vec<&str> = text.split('\n').collect();
        let start = (line.max(1) - 1) as usize;
        let end = limit.map_or(segments.len(), |l| (start + l as usize).min(segments.len()));
        if start >= segments.len() {
            return String::new();
        }
        segments[start..end].join("\n")
    }

    #[test]
    fn matches_split_slice_join_on_every_shape() {
        let texts = [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a\nb\n",
            "a\n\nb\n\n",
            "one\r\ntwo\r\n",
            "x\ny\nz",
        ];
        for text in texts {
            for line in 0..6 {
                for limit in [None, Some(1), Some(2), Some(3), Some(10)] {
                    let got = read_lines(text.as_bytes(), line, limit).unwrap();
                    assert_eq!(
                        String::from_utf8(got).unwrap(),
                        reference(text, line, limit),
                        "text {text:?} line {line} limit {limit:?}"
                    );
                }
            }
        }
    }

    mod proptests {
        use proptest::prelude::*;

        use super::read_lines;

        /// `split('\n').slice(start, start + limit).join('\n')` on bytes.
        fn reference(text: &[u8], line: u32, limit: Option<u32>) -> Vec<u8> {
            let segments: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            let start = (line.max(1) - 1) as usize;
            if start >= segments.len() {
                return Vec::new();
            }
            let end = limit.map_or(segments.len(), |l| (start + l as usize).min(segments.len()));
            segments[start..end].join(&b'\n')
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// `fs/read_text_file`'s `line`/`limit` on any bytes (not only UTF-8) match
            /// the reference.
            #[test]
            fn line_and_limit_slice_like_split_slice_join(
                text in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..120),
                line in 0u32..12,
                limit in proptest::option::of(1u32..12),
            ) {
                let got = read_lines(&text[..], line, limit).unwrap();
                prop_assert_eq!(got, reference(&text, line, limit));
            }
        }
    }
}
