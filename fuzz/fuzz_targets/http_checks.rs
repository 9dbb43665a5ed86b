//! The checks every request passes before a route: the bearer token, the Host allowlist
//! (loopback binds) and `--allow-origin`, each against a model of what must pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qserve_http::fuzzing::{bearer_matches, host_accepted};
use qserve_http::origin::{AllowedOrigin, OriginPolicy};

const TOKEN: &[u8] = b"s3cr3t-T0ken_with.chars~";
const LOOPBACK: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "host.docker.internal"];

fuzz_target!(|input: (u8, u16, &[u8])| {
    let (which, port, bytes) = input;
    match which % 3 {
        0 => {
            // Bearer: `<bearer, any case> 1*SP [SP/HTAB]* TOKEN [SP/HTAB]*`, nothing else.
            let got = bearer_matches(bytes, TOKEN);
            let valid_header = bytes
                .iter()
                .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f));
            let model = valid_header
                && bytes.len() > 7
                && bytes[..6].eq_ignore_ascii_case(b"bearer")
                && bytes[6] == b' '
                && {
                    let rest = &bytes[7..];
                    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
                    let start = rest.iter().position(|b| !is_ws(b)).unwrap_or(rest.len());
                    let end = rest
                        .iter()
                        .rposition(|b| !is_ws(b))
                        .map_or(start, |i| i + 1);
                    &rest[start..end] == TOKEN
                };
            assert_eq!(got, model, "{:?}", String::from_utf8_lossy(bytes));
        }
        1 => {
            let Ok(host) = std::str::from_utf8(bytes) else {
                return;
            };
            let lower = host.to_ascii_lowercase();
            let model = LOOPBACK
                .iter()
                .any(|name| lower == *name || lower == format!("{name}:{port}"));
            assert_eq!(host_accepted(port, host), model, "{host:?} port {port}");
        }
        _ => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            // Any text as an `--allow-origin` value and as an `Origin` header.
            let policy = OriginPolicy::new(vec!["https://*.example.com".parse().unwrap()]);
            let allowed = policy.allows(text);
            if allowed {
                let lower = text.trim().to_ascii_lowercase();
                let host = lower
                    .strip_prefix("https://")
                    .expect("only https is allowed");
                // A port that reads as 443 (`:443`, `:0443`, `:+443`) is the default one.
                let host = match host.rsplit_once(':') {
                    Some((name, port)) if port.parse::<u16>() == Ok(443) => name,
                    _ => host,
                };
                assert!(
                    host.ends_with(".example.com") && host.len() > ".example.com".len(),
                    "{text:?} passed a *.example.com policy"
                );
            }
            if let Ok(origin) = text.parse::<AllowedOrigin>() {
                let exact = !text
                    .trim()
                    .to_ascii_lowercase()
                    .split("://")
                    .nth(1)
                    .unwrap_or("")
                    .starts_with("*.");
                if exact {
                    assert!(
                        OriginPolicy::new(vec![origin]).allows(text),
                        "{text:?} is allowed by itself"
                    );
                }
            }
        }
    }
});
