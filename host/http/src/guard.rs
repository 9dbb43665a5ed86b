//! Where browser-borne requests are turned away: the Host allowlist on
//! loopback binds (a DNS-rebinding page reaches 127.0.0.1 under its own
//! host name) and the `Origin` denial (no browser access at all).
//!
//! Both run as middleware ahead of authentication and of any body read.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::origin::OriginPolicy;

/// Host names a loopback daemon answers to (`host.docker.internal` lets
/// containers on the same machine reach it).
pub const LOOPBACK_HOST_NAMES: [&str; 4] =
    ["localhost", "127.0.0.1", "[::1]", "host.docker.internal"];

/// Message of the 403 for any request with an `Origin` header.
pub const ORIGIN_DENIED: &str = "Request denied by CORS policy";

/// Message of the 403 for a Host header outside the allowlist.
pub const HOST_DENIED: &str = "Request denied: Host header not allowed on a loopback bind";

/// The accepted `Host` values, computed once per bound port.
#[derive(Debug, Clone)]
pub struct HostAllowlist {
    /// Lowercase `name` and `name:port` for every loopback name.
    accepted: Vec<String>,
}

impl HostAllowlist {
    pub fn for_port(port: u16) -> Self {
        let accepted = LOOPBACK_HOST_NAMES
            .iter()
            .flat_map(|name| [name.to_string(), format!("{name}:{port}")])
            .collect();
        Self { accepted }
    }

    /// Host is case-insensitive (RFC 9110 §7.2): a proxy may send `Localhost`.
    pub fn accepts(&self, host: &str) -> bool {
        self.accepted
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

/// Middleware: 403 when the Host header is missing or not on the allowlist.
pub async fn require_allowed_host(
    State(allowlist): State<Arc<HostAllowlist>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match host {
        Some(host) if allowlist.accepts(host) => next.run(request).await,
        _ => ApiError::forbidden(HOST_DENIED).into_response(),
    }
}

/// Which `Origin`s pass: those `--allow-origin` names and, while the web
/// console is served, the daemon's own origin.
#[derive(Debug, Clone)]
pub struct OriginGate {
    pub allowed: OriginPolicy,
    /// `Some(scheme)` (`http`/`https`) while the console is served: a page
    /// whose origin is `scheme://` + the request's own Host is the console.
    pub own_scheme: Option<&'static str>,
}

impl OriginGate {
    /// Whether a request with this `Origin` (and this `Host`) may go on.
    pub fn passes(&self, origin: &str, host: Option<&str>) -> bool {
        self.allowed.allows(origin) || self.is_own(origin, host)
    }

    /// The console's own origin (never an `--allow-origin` one).
    pub fn is_own(&self, origin: &str, host: Option<&str>) -> bool {
        match (self.own_scheme, host) {
            (Some(scheme), Some(host)) => crate::origin::is_same_origin(origin, scheme, host),
            _ => false,
        }
    }
}

/// The request's `Host` header as text.
pub fn host_of(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
}

/// Middleware: 403 for any request that says which web page sent it,
/// unless `--allow-origin` names that page's origin or it is the console's
/// own origin.
pub async fn deny_browser_origin(
    State(gate): State<Arc<OriginGate>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = host_of(&request);
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| gate.passes(origin, host));
        if !allowed {
            return ApiError::forbidden(ORIGIN_DENIED).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_the_bound_port_are_accepted() {
        let allowlist = HostAllowlist::for_port(4170);
        for host in [
            "localhost",
            "localhost:4170",
            "127.0.0.1:4170",
            "[::1]:4170",
            "[::1]",
            "host.docker.internal:4170",
            "LOCALHOST:4170",
            "HOST.Docker.Internal",
        ] {
            assert!(allowlist.accepts(host), "{host}");
        }
    }

    #[test]
    fn the_gate_lets_the_own_origin_through_only_while_the_console_is_served() {
        let served = OriginGate {
            allowed: OriginPolicy::default(),
            own_scheme: Some("http"),
        };
        assert!(served.passes("http://127.0.0.1:4170", Some("127.0.0.1:4170")));
        assert!(!served.passes("http://127.0.0.1:4171", Some("127.0.0.1:4170")));
        assert!(!served.passes("http://127.0.0.1:4170", None));
        let off = OriginGate {
            own_scheme: None,
            ..served
        };
        assert!(!off.passes("http://127.0.0.1:4170", Some("127.0.0.1:4170")));
    }

    #[test]
    fn other_hosts_and_ports_are_refused() {
        let allowlist = HostAllowlist::for_port(4170);
        for host in [
            "evil.example:4170",
            "localhost:4171",
            "127.0.0.2:4170",
            "::1:4170",
            "localhost.:4170",
            "",
        ] {
            assert!(!allowlist.accepts(host), "{host}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn host() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            proptest::sample::select(LOOPBACK_HOST_NAMES.to_vec()).prop_map(str::to_owned),
            "[a-zA-Z0-9.:\\[\\]-]{0,24}",
        ];
        let port = prop_oneof![Just(None), (0u16..=u16::MAX).prop_map(Some)];
        (name, port, any::<bool>()).prop_map(|(name, port, upper)| {
            let name = if upper {
                name.to_ascii_uppercase()
            } else {
                name
            };
            match port {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
    }

    proptest! {
        #[test]
        fn only_loopback_names_with_no_port_or_the_bound_port_pass(
            host in prop_oneof![host(), any::<String>()],
            port in any::<u16>(),
        ) {
            let lowered = host.to_ascii_lowercase();
            let (name, given_port) = match lowered.rsplit_once(':') {
                Some((name, given)) if !name.is_empty() && !name.ends_with(':') => (name, Some(given)),
                _ => (lowered.as_str(), None),
            };
            let expected = (LOOPBACK_HOST_NAMES.contains(&lowered.as_str()))
                || (LOOPBACK_HOST_NAMES.contains(&name)
                    && given_port == Some(port.to_string().as_str()));
            prop_assert_eq!(HostAllowlist::for_port(port).accepts(&host), expected);
        }
    }
}
