//! `--allow-origin`: which web pages may call the daemon from a browser.
//!
//! By default any request with an `Origin` header is refused (403), so no
//! page can drive the daemon. An operator who serves a front-end elsewhere
//! names its origin; requests from it pass the Origin check and get CORS
//! headers (tower-http's `CorsLayer`, which also answers preflights). Every
//! other check still applies: the Host allowlist (a DNS-rebinding page has
//! its own origin, never an allowed one) and the bearer token.

use std::str::FromStr;

/// One `--allow-origin` value: an exact origin (`https://console.example.com`,
/// `http://localhost:5173`) or every subdomain of a domain
/// (`https://*.example.com`). Scheme, host and port must match; no path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    /// Lowercase host, or the domain after `*.` for a pattern.
    host: String,
    any_subdomain: bool,
    port: Option<u16>,
}

impl FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Err("`*` would let every web page drive the daemon; name the origins (e.g. https://console.example.com or https://*.example.com)".into());
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an origin: expected SCHEME://HOST[:PORT]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{text:?}: the scheme must be http or https"));
        }
        if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
            return Err(format!(
                "{text:?}: an origin has no path, query or user (write it as the browser sends it, e.g. https://console.example.com)"
            ));
        }
        let (host, port_text) = if rest.starts_with('[') {
            // [v6] or [v6]:port
            let close = rest
                .find(']')
                .ok_or_else(|| format!("{text:?}: an IPv6 host needs its closing `]`"))?;
            let (host, after) = rest.split_at(close + 1);
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("{text:?}: unexpected {after:?} after the host")),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port_text {
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{text:?}: {port:?} is not a port"))?,
            ),
            None => None,
        };
        let host = host.to_ascii_lowercase();
        let (host, any_subdomain) = match host.strip_prefix("*.") {
            Some(domain) => (domain.to_owned(), true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(format!(
                "{text:?}: `*` is only allowed as the first label (https://*.example.com)"
            ));
        }
        Ok(AllowedOrigin {
            scheme,
            host,
            any_subdomain,
            port,
        })
    }
}

impl AllowedOrigin {
    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if scheme != self.scheme || port != self.port {
            return false;
        }
        if self.any_subdomain {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

/// The origins allowed to call the daemon (empty: none).
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    allowed: Vec<AllowedOrigin>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<AllowedOrigin>) -> OriginPolicy {
        OriginPolicy { allowed }
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether a request's `Origin` header value is allowed. `null` (sandboxed
    /// frames, file: pages) never is; the default port of a scheme is the
    /// same as writing no port.
    pub fn allows(&self, origin: &str) -> bool {
        let Ok(parsed) = origin.parse::<AllowedOrigin>() else {
            return false;
        };
        if parsed.any_subdomain {
            return false;
        }
        let default_port = if parsed.scheme == "https" { 443 } else { 80 };
        let port = parsed.port.filter(|p| *p != default_port);
        self.allowed.iter().any(|allowed| {
            let allowed_port = allowed.port.filter(|p| *p != default_port);
            AllowedOrigin {
                port: allowed_port,
                ..allowed.clone()
            }
            .matches(&parsed.scheme, &parsed.host, port)
        })
    }
}

/// Whether `origin` (a request's `Origin` header) is the daemon's own
/// origin: `scheme://HOST` where HOST is the request's own `Host` header.
/// The web console is served by the daemon, so its requests carry exactly
/// this. The Host header itself is judged elsewhere (the loopback allowlist
/// refuses a rebound name before this is asked). Default ports are the same
/// as no port; `null` and anything unparsable are never the daemon's own.
pub fn is_same_origin(origin: &str, scheme: &str, host: &str) -> bool {
    if host.is_empty() || host.contains(['*', '/', '@', '?', '#']) {
        return false;
    }
    let (Ok(page), Ok(own)) = (
        origin.parse::<AllowedOrigin>(),
        format!("{scheme}://{host}").parse::<AllowedOrigin>(),
    ) else {
        return false;
    };
    if page.any_subdomain || own.any_subdomain {
        return false;
    }
    let default_port = if own.scheme == "https" { 443 } else { 80 };
    let normal = |port: Option<u16>| port.filter(|p| *p != default_port);
    page.scheme == own.scheme && page.host == own.host && normal(page.port) == normal(own.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OriginPolicy {
        OriginPolicy::new(origins.iter().map(|o| o.parse().unwrap()).collect())
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let p = policy(&["https://console.example.com", "http://localhost:5173"]);
        assert!(p.allows("https://console.example.com"));
        assert!(p.allows("https://CONSOLE.example.com:443"));
        assert!(p.allows("http://localhost:5173"));
        for refused in [
            "http://console.example.com",
            "https://console.example.com:8443",
            "https://console.example.com.evil.net",
            "https://evilconsole.example.com",
            "http://localhost:5174",
            "http://localhost",
            "null",
            "",
        ] {
            assert!(!p.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_pattern_allows_subdomains_only() {
        let p = policy(&["https://*.example.com"]);
        assert!(p.allows("https://a.example.com"));
        assert!(p.allows("https://a.b.example.com"));
        for refused in [
            "https://example.com",
            "https://evilexample.com",
            "https://a.example.com.evil.net",
            "http://a.example.com",
            "https://*.example.com",
        ] {
            assert!(!p.allows(refused), "{refused}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for bad in [
            "*",
            "console.example.com",
            "ftp://x.example.com",
            "https://x.example.com/app",
            "https://x.example.com:99999",
            "https://a.*.example.com",
            "https://user@x.example.com",
        ] {
            let err = bad.parse::<AllowedOrigin>().unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!("http://[::1]:3000".parse::<AllowedOrigin>().is_ok());
        assert!("http://[::1]".parse::<AllowedOrigin>().is_ok());
        assert!("http://a:b:c".parse::<AllowedOrigin>().is_err());
    }

    #[test]
    fn the_daemons_own_origin_is_scheme_and_host_exactly() {
        assert!(is_same_origin(
            "http://127.0.0.1:4170",
            "http",
            "127.0.0.1:4170"
        ));
        assert!(is_same_origin(
            "http://LOCALHOST:4170",
            "http",
            "localhost:4170"
        ));
        assert!(is_same_origin(
            "https://q.example.com",
            "https",
            "q.example.com:443"
        ));
        assert!(is_same_origin("http://[::1]:4170", "http", "[::1]:4170"));
        for (origin, scheme, host) in [
            ("http://127.0.0.1:4171", "http", "127.0.0.1:4170"),
            ("http://localhost:4170", "http", "127.0.0.1:4170"),
            ("https://127.0.0.1:4170", "http", "127.0.0.1:4170"),
            ("http://127.0.0.1:4170", "https", "127.0.0.1:4170"),
            ("http://evil.example:4170", "http", "127.0.0.1:4170"),
            ("null", "http", "127.0.0.1:4170"),
            ("http://127.0.0.1:4170/x", "http", "127.0.0.1:4170"),
            ("http://*.example.com", "http", "*.example.com"),
            ("http://127.0.0.1:4170", "http", ""),
            ("http://127.0.0.1:4170", "http", "127.0.0.1:4170/evil"),
        ] {
            assert!(
                !is_same_origin(origin, scheme, host),
                "{origin} vs {scheme}://{host}"
            );
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn host() -> impl Strategy<Value = String> {
        "[a-z0-9-]{1,8}(\\.[a-z0-9-]{1,8}){0,3}"
    }

    fn upper_some(text: &str, mask: &[bool]) -> String {
        text.chars()
            .zip(mask.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any text, as an `--allow-origin` value or as an `Origin` header, is judged
        /// without a panic, and `null` or a pattern never passes as a request's origin.
        #[test]
        fn any_text_is_judged(text in "\\PC{0,40}|(https?://)?[a-z*.:\\[\\]0-9@/]{0,20}") {
            let _ = text.parse::<AllowedOrigin>();
            let policy = OriginPolicy::new(vec!["https://*.example.com".parse().unwrap()]);
            if policy.allows(&text) {
                let lower = text.trim().to_ascii_lowercase();
                prop_assert!(lower.starts_with("https://"));
                prop_assert!(!lower.contains("*."));
            }
        }

        /// An exact origin allows itself in any letter case, with or without its scheme's
        /// default port, and nothing with another scheme, host or port.
        #[test]
        fn an_exact_origin_matches_only_itself(
            https in any::<bool>(),
            name in host(),
            port in proptest::option::of(1u16..),
            other_name in host(),
            other_port in 1u16..,
            mask in proptest::collection::vec(any::<bool>(), 1..8),
        ) {
            let scheme = if https { "https" } else { "http" };
            let default_port = if https { 443 } else { 80 };
            let origin = match port {
                Some(port) => format!("{scheme}://{name}:{port}"),
                None => format!("{scheme}://{name}"),
            };
            let policy = OriginPolicy::new(vec![origin.parse().unwrap()]);
            prop_assert!(policy.allows(&origin));
            prop_assert!(policy.allows(&upper_some(&origin, &mask)));
            let effective = port.unwrap_or(default_port);
            if effective == default_port {
                let origin = format!("{scheme}://{name}:{default_port}");
            prop_assert!(policy.allows(&origin), "{}", origin);
                let origin = format!("{scheme}://{name}");
            prop_assert!(policy.allows(&origin), "{}", origin);
            }
            let other_scheme = if https { "http" } else { "https" };
            let origin = format!("{other_scheme}://{name}:{effective}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
            if other_name != name {
                let origin = format!("{scheme}://{other_name}:{effective}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
            }
            if other_port != effective {
                let origin = format!("{scheme}://{name}:{other_port}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
            }
            let origin = format!("{scheme}://{name}.evil.net:{effective}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
        }

        /// `https://*.D` allows every subdomain of D and neither D itself nor a name that
        /// merely ends with D's text.
        #[test]
        fn a_pattern_allows_subdomains_only(domain in host(), label in "[a-z0-9-]{1,8}") {
            let policy = OriginPolicy::new(vec![format!("https://*.{domain}").parse().unwrap()]);
            let origin = format!("https://{label}.{domain}");
            prop_assert!(policy.allows(&origin), "{}", origin);
            let origin = format!("https://{label}.{label}.{domain}");
            prop_assert!(policy.allows(&origin), "{}", origin);
            let origin = format!("https://{domain}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
            let origin = format!("https://{label}{domain}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
            let origin = format!("http://{label}.{domain}");
            prop_assert!(!policy.allows(&origin), "{}", origin);
        }
    }
}
