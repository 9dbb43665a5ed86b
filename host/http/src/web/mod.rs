//! The web console: a page served by the daemon itself (`/`, `/console/*`),
//! and the login that trades the token for a session cookie (`POST /login`,
//! `POST /logout`). `--no-web` leaves all of it out.
//!
//! Why a cookie: a browser's `EventSource` cannot send an `Authorization`
//! header, and a token in a URL ends up in history, logs and `Referer`s.
//! The cookie holds a random server-side value (never the token), is
//! `HttpOnly` (no script reads it) and `SameSite=Strict`; a state-changing
//! request authenticated by it must also carry the console's own `Origin`
//! (see [`Console::cookie_auth`]), so a page on another origin of the same
//! site (another port on localhost) cannot drive the daemon with it.
//!
//! Files: `assets.rs` (the embedded page), `login.rs` (the two routes and
//! the cookie), `sessions.rs` (the bounded store of session values).

mod assets;
mod login;
pub mod sessions;

use std::sync::Arc;

use axum::extract::{FromRef, Request};
use axum::http::{header, HeaderMap, Method};
use axum::routing::{get, post};
use axum::Router;

use crate::body::BodyLimit;
use crate::guard::{host_of, OriginGate};
pub use sessions::CONSOLE_SESSION_TTL;
use sessions::{ConsoleSessions, MAX_CONSOLE_SESSIONS};

/// The cookie that carries a console session.
pub const COOKIE_NAME: &str = "qserve_session";

/// Largest login body (a token is short).
const LOGIN_BODY_LIMIT: usize = 64 * 1024;

/// What the console's routes and the auth check share.
#[derive(Debug)]
pub struct Console {
    sessions: ConsoleSessions,
    /// The client token a login must present; `None` = no authentication.
    token: Option<Vec<u8>>,
    /// Served over TLS: the cookie gets `Secure`.
    secure: bool,
    /// Tells the console's own origin from others.
    gate: Arc<OriginGate>,
}

/// What a request's cookie says.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieAuth {
    /// No cookie, or not a live session.
    Absent,
    /// A live session, on a safe method or from the console's own origin.
    Passes,
    /// A live session on a state-changing request without the console's
    /// own `Origin`, or on any request a browser says another site or
    /// origin sent (`Sec-Fetch-Site`): refused.
    WrongOrigin,
}

impl Console {
    pub fn new(token: Option<String>, secure: bool, gate: Arc<OriginGate>) -> Console {
        Console {
            sessions: ConsoleSessions::new(MAX_CONSOLE_SESSIONS, CONSOLE_SESSION_TTL),
            token: token.map(String::into_bytes),
            secure,
            gate,
        }
    }

    /// Whether the request is authenticated by a console cookie, and may go on.
    pub fn cookie_auth(&self, request: &Request) -> CookieAuth {
        let live = session_cookie(request.headers()).is_some_and(|v| self.sessions.is_live(v));
        if !live {
            return CookieAuth::Absent;
        }
        // Browsers say where a request comes from (Fetch Metadata): a page of
        // another origin — even one the cookie is sent from, on the same site —
        // gets nothing through the cookie, not even a GET it cannot read
        // (an `<img>` or `<script>` pointed at an event stream would hold a
        // subscriber slot).
        let fetch_site = request
            .headers()
            .get("sec-fetch-site")
            .and_then(|value| value.to_str().ok());
        if matches!(fetch_site, Some("same-site" | "cross-site")) {
            return CookieAuth::WrongOrigin;
        }
        let safe = matches!(*request.method(), Method::GET | Method::HEAD);
        let own_origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|origin| origin.to_str().ok())
            .is_some_and(|origin| self.gate.is_own(origin, host_of(request)));
        if safe || own_origin {
            CookieAuth::Passes
        } else {
            CookieAuth::WrongOrigin
        }
    }
}

/// The value of the `qserve_session` cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

/// The console routes' state.
#[derive(Clone)]
struct WebState {
    console: Arc<Console>,
    body_limit: BodyLimit,
}

impl FromRef<WebState> for BodyLimit {
    fn from_ref(state: &WebState) -> Self {
        state.body_limit
    }
}

/// `/`, `/console/*`, `POST /login`, `POST /logout`: outside the bearer
/// check (the page is public; the login is how one gets in), inside the
/// Host and Origin checks like every route.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/console/{*file}", get(assets::file))
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .with_state(WebState {
            console,
            body_limit: BodyLimit(LOGIN_BODY_LIMIT),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::OriginPolicy;

    fn console() -> Console {
        let gate = Arc::new(OriginGate {
            allowed: OriginPolicy::default(),
            own_scheme: Some("http"),
        });
        Console::new(Some("t".into()), false, gate)
    }

    fn request(method: &str, cookie: Option<&str>, origin: Option<&str>) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri("/session")
            .header("host", "127.0.0.1:4170");
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn a_cookie_passes_reads_and_needs_the_own_origin_to_change_anything() {
        let console = console();
        let value = console.sessions.create().unwrap();
        let cookie = format!("other=1; {COOKIE_NAME}={value}");
        let own = Some("http://127.0.0.1:4170");
        assert_eq!(
            console.cookie_auth(&request("GET", Some(&cookie), None)),
            CookieAuth::Passes
        );
        assert_eq!(
            console.cookie_auth(&request("POST", Some(&cookie), own)),
            CookieAuth::Passes
        );
        assert_eq!(
            console.cookie_auth(&request("POST", Some(&cookie), None)),
            CookieAuth::WrongOrigin
        );
        assert_eq!(
            console.cookie_auth(&request(
                "DELETE",
                Some(&cookie),
                Some("http://127.0.0.1:9")
            )),
            CookieAuth::WrongOrigin
        );
        assert_eq!(
            console.cookie_auth(&request("GET", Some("qserve_session=forged"), None)),
            CookieAuth::Absent
        );
        assert_eq!(
            console.cookie_auth(&request("GET", None, own)),
            CookieAuth::Absent
        );
        for site in ["same-site", "cross-site"] {
            let mut get = request("GET", Some(&cookie), None);
            get.headers_mut()
                .insert("sec-fetch-site", site.parse().unwrap());
            assert_eq!(console.cookie_auth(&get), CookieAuth::WrongOrigin, "{site}");
        }
        let mut own_get = request("GET", Some(&cookie), None);
        own_get
            .headers_mut()
            .insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert_eq!(console.cookie_auth(&own_get), CookieAuth::Passes);
    }
}
