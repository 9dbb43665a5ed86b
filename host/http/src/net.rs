//! Bind validation: is `--hostname` loopback, may the daemon start without a
//! token, and did the operator mistype the address?
//!
//! Everything here runs before any socket is opened, so a bad flag fails
//! with a message that names the fix instead of a resolver error.

use std::net::IpAddr;

/// How to bind, once the hostname and token passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindPlan {
    /// What to hand to the socket (IPv6 brackets removed): `::1`, `127.0.0.1`.
    pub listen_host: String,
    /// What to print in a URL (IPv6 bracketed, zone `%` as `%25`): `[::1]`.
    pub url_host: String,
    /// Loopback bind: no token needed, Host allowlist on, `/health` open.
    pub loopback: bool,
    /// The token, trimmed; `None` when absent or blank.
    pub token: Option<String>,
}

/// Why a `--hostname`/token combination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("--hostname is empty; use a loopback name such as 127.0.0.1 or localhost")]
    EmptyHostname,
    #[error("--hostname {given:?} includes a port; use --hostname {host} --port {port} instead")]
    HostIncludesPort {
        given: String,
        host: String,
        port: String,
    },
    #[error("--hostname {given:?} looks like a URL; pass only the host name (e.g. --hostname 127.0.0.1) and the port with --port")]
    LooksLikeUrl { given: String },
    #[error("--hostname {given:?} is not a bracketed IPv6 address; use [addr] or the bare address, and --port for the port")]
    MalformedBrackets { given: String },
    #[error(
        "refusing to bind {hostname} without a bearer token: a non-loopback bind is reachable from \
         the network. Pass --token (or set QSERVE_TOKEN), or bind a loopback address \
         (127.0.0.1, localhost, ::1, [::1])"
    )]
    TokenRequired { hostname: String },
    #[error(
        "--require-auth is set but no bearer token was given: pass --token-file, --token \
         or QSERVE_TOKEN, or drop --require-auth to allow unauthenticated loopback access"
    )]
    AuthRequiredWithoutToken,
}

/// Validates `--hostname` against the token (`None`/blank = no token).
///
/// Loopback = `localhost`, `127.0.0.0/8`, `::1`, `[::1]` (case-insensitive).
/// A non-loopback bind needs a token. `localhost:4170`-style input is caught
/// first, because the real mistake there is the colon, not the token.
pub fn validate_bind(hostname: &str, token: Option<&str>) -> Result<BindPlan, BindError> {
    validate_bind_with(hostname, token, false)
}

/// [`validate_bind`] with `--require-auth`: when `require_auth` is set, a
/// token is needed on every bind, loopback included (on a shared machine
/// every local user can reach a loopback daemon). Pass the same flag as
/// [`crate::HttpConfig::require_auth`], which then also stops exempting
/// `/health` from the token.
pub fn validate_bind_with(
    hostname: &str,
    token: Option<&str>,
    require_auth: bool,
) -> Result<BindPlan, BindError> {
    let given = hostname.trim();
    if given.is_empty() {
        return Err(BindError::EmptyHostname);
    }
    let token = token
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    let listen_host = listen_host(given)?;
    if require_auth && token.is_none() {
        return Err(BindError::AuthRequiredWithoutToken);
    }
    let loopback = is_loopback(&listen_host);
    if !loopback && token.is_none() {
        return Err(BindError::TokenRequired {
            hostname: given.to_owned(),
        });
    }
    let url_host = if listen_host.contains(':') {
        format!("[{}]", listen_host.replace('%', "%25"))
    } else {
        listen_host.clone()
    };
    Ok(BindPlan {
        listen_host,
        url_host,
        loopback,
        token,
    })
}

/// The host to hand to the socket, or why the input is not a host.
fn listen_host(given: &str) -> Result<String, BindError> {
    if given.contains("://") {
        return Err(BindError::LooksLikeUrl {
            given: given.to_owned(),
        });
    }
    if let Some(inner) = given.strip_prefix('[') {
        return bracketed_host(given, inner);
    }
    // A raw IPv6 literal has at least two colons (the shortest is `::`), so
    // exactly one colon can only be `host:port`.
    if given.matches(':').count() == 1 {
        let (host, port) = given.split_once(':').expect("one colon");
        return Err(BindError::HostIncludesPort {
            given: given.to_owned(),
            host: host.to_owned(),
            port: port.to_owned(),
        });
    }
    Ok(given.to_owned())
}

fn bracketed_host(given: &str, after_bracket: &str) -> Result<String, BindError> {
    let malformed = || BindError::MalformedBrackets {
        given: given.to_owned(),
    };
    let (inner, rest) = after_bracket.split_once(']').ok_or_else(malformed)?;
    if inner.is_empty() || !inner.contains(':') {
        return Err(malformed());
    }
    if let Some(port) = rest.strip_prefix(':') {
        return Err(BindError::HostIncludesPort {
            given: given.to_owned(),
            host: format!("[{inner}]"),
            port: port.to_owned(),
        });
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(inner.to_owned())
}

fn is_loopback(listen_host: &str) -> bool {
    listen_host.eq_ignore_ascii_case("localhost")
        || listen_host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_need_no_token() {
        for (hostname, listen, url) in [
            ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
            ("127.4.5.6", "127.4.5.6", "127.4.5.6"),
            ("localhost", "localhost", "localhost"),
            ("LocalHost", "LocalHost", "LocalHost"),
            ("::1", "::1", "[::1]"),
            ("[::1]", "::1", "[::1]"),
            (" 127.0.0.1 ", "127.0.0.1", "127.0.0.1"),
        ] {
            let plan = validate_bind(hostname, None).unwrap();
            assert!(plan.loopback, "{hostname}");
            assert_eq!(plan.listen_host, listen);
            assert_eq!(plan.url_host, url);
            assert_eq!(plan.token, None);
        }
    }

    #[test]
    fn non_loopback_without_token_is_refused_with_the_way_out() {
        for hostname in ["0.0.0.0", "192.168.1.10", "::", "example.com", "128.0.0.1"] {
            let error = validate_bind(hostname, None).unwrap_err();
            assert!(
                matches!(error, BindError::TokenRequired { .. }),
                "{hostname}"
            );
            let message = error.to_string();
            assert!(message.contains("--token") && message.contains("QSERVE_TOKEN"));
        }
        let blank = validate_bind("0.0.0.0", Some(" \n")).unwrap_err();
        assert!(matches!(blank, BindError::TokenRequired { .. }));
    }

    #[test]
    fn require_auth_without_a_token_is_refused_even_on_loopback() {
        for hostname in ["127.0.0.1", "localhost", "[::1]", "0.0.0.0"] {
            for token in [None, Some(""), Some(" \t")] {
                let error = validate_bind_with(hostname, token, true).unwrap_err();
                assert_eq!(
                    error,
                    BindError::AuthRequiredWithoutToken,
                    "{hostname} {token:?}"
                );
                let message = error.to_string();
                assert!(
                    message.contains("--require-auth") && message.contains("--token"),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn require_auth_with_a_token_binds_loopback_as_usual() {
        let plan = validate_bind_with("127.0.0.1", Some(" t "), true).unwrap();
        assert!(plan.loopback);
        assert_eq!(plan.token.as_deref(), Some("t"));
        assert_eq!(
            validate_bind_with("127.0.0.1", None, false),
            validate_bind("127.0.0.1", None)
        );
        // Address typos are still reported first.
        assert!(matches!(
            validate_bind_with("localhost:4170", None, true),
            Err(BindError::HostIncludesPort { .. })
        ));
    }

    #[test]
    fn token_is_trimmed() {
        let plan = validate_bind("0.0.0.0", Some(" s3cret\n")).unwrap();
        assert!(!plan.loopback);
        assert_eq!(plan.token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn host_with_port_typo_suggests_separate_flags() {
        let error = validate_bind("localhost:4170", Some("t")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--hostname \"localhost:4170\" includes a port; use --hostname localhost --port 4170 instead"
        );
        let bracketed = validate_bind("[::1]:4170", None).unwrap_err();
        assert!(bracketed
            .to_string()
            .contains("--hostname [::1] --port 4170"));
    }

    #[test]
    fn malformed_input_is_refused_before_the_token_check() {
        assert_eq!(validate_bind("  ", None), Err(BindError::EmptyHostname));
        for bad in ["[]", "[::1", "[localhost]", "[::1]x"] {
            assert!(
                matches!(
                    validate_bind(bad, None),
                    Err(BindError::MalformedBrackets { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_bind("http://localhost:4170", None),
            Err(BindError::LooksLikeUrl { .. })
        ));
    }

    #[test]
    fn ipv6_zone_is_escaped_only_in_the_url() {
        let plan = validate_bind("fe80::1%lo0", Some("t")).unwrap();
        assert_eq!(plan.listen_host, "fe80::1%lo0");
        assert_eq!(plan.url_host, "[fe80::1%25lo0]");
    }
}
