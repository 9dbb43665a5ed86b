//! The route table and the order requests pass the checks in.
//!
//! Routes come from [`ROUTE_TABLE`] (also what `openapi.json` is checked
//! against). Outermost first: JSON error rewriting → tracing → request counting and span
//! (`request_metrics`) → Host allowlist (loopback binds) → Origin denial (the console's own
//! origin passes while it is served) → bearer auth or the console cookie (`web/`) (the admin
//! token on `/admin/*`) → route. Everything up to the route
//! runs before a handler's body extractor, so a rejected request is never
//! read, let alone parsed.

use std::sync::Arc;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::auth::{require_bearer, BearerAuth};
use crate::backend::Backend;
use crate::body::BodyLimit;
use crate::config::HttpConfig;
use crate::fallback;
use crate::guard::{deny_browser_origin, require_allowed_host, HostAllowlist, OriginGate};
use crate::routes::admin::{self, AdminBodyLimit};
use crate::routes::{capabilities, events, health, openapi, permission, session, workspace};
use crate::state::AppState;

/// One routed operation. [`ROUTE_TABLE`] is what [`build_router`] routes,
/// so tests can hold `openapi.json` against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Uppercase HTTP method.
    pub method: &'static str,
    /// axum path syntax, which is OpenAPI's: `/session/{id}`.
    pub path: &'static str,
    /// Behind the admin token, and routed only when one is configured.
    pub admin: bool,
}

impl Route {
    /// The web console's login routes: routed by `crate::web` (not behind
    /// the bearer check), and only while the console is served.
    pub fn is_web(&self) -> bool {
        matches!(self.path, "/login" | "/logout")
    }

    const fn client(method: &'static str, path: &'static str) -> Self {
        Self {
            method,
            path,
            admin: false,
        }
    }
}

/// Every operation the daemon routes (the admin ones only with an admin token).
pub const ROUTE_TABLE: &[Route] = &[
    Route::client("GET", "/health"),
    Route::client("GET", "/capabilities"),
    Route::client("GET", "/openapi.json"),
    Route::client("GET", "/metrics"),
    Route::client("POST", "/session"),
    Route::client("GET", "/session/{id}"),
    Route::client("DELETE", "/session/{id}"),
    Route::client("POST", "/session/{id}/prompt"),
    Route::client("POST", "/session/{id}/cancel"),
    Route::client("POST", "/session/{id}/model"),
    Route::client("GET", "/session/{id}/events"),
    Route::client("POST", "/permission/{requestId}"),
    Route::client("GET", "/workspace/{cwd}/sessions"),
    Route::client("GET", "/sessions"),
    Route::client("POST", "/login"),
    Route::client("POST", "/logout"),
    Route {
        method: "PUT",
        path: "/admin/policy",
        admin: true,
    },
];

/// The handler of one [`ROUTE_TABLE`] row.
fn handler<B: Backend>(route: &Route) -> MethodRouter<AppState<B>> {
    match (route.method, route.path) {
        ("GET", "/health") => get(health::health::<B>),
        ("GET", "/capabilities") => get(capabilities::capabilities::<B>),
        ("GET", "/openapi.json") => get(openapi::document),
        ("GET", "/metrics") => get(crate::routes::metrics::metrics),
        ("POST", "/session") => post(session::create::<B>),
        ("GET", "/session/{id}") => get(session::info::<B>),
        ("DELETE", "/session/{id}") => delete(session::close::<B>),
        ("POST", "/session/{id}/prompt") => post(session::prompt::<B>),
        ("POST", "/session/{id}/cancel") => post(session::cancel::<B>),
        ("POST", "/session/{id}/model") => post(session::set_model::<B>),
        ("GET", "/session/{id}/events") => get(events::events::<B>),
        ("POST", "/permission/{requestId}") => post(permission::vote::<B>),
        ("GET", "/workspace/{cwd}/sessions") => get(workspace::list_sessions::<B>),
        ("GET", "/sessions") => get(workspace::list_all::<B>),
        ("PUT", "/admin/policy") => put(admin::put_policy::<B>),
        (method, path) => unreachable!("ROUTE_TABLE lists {method} {path} without a handler"),
    }
}

/// Builds the whole application. `port` is the bound port (for the Host
/// allowlist); `stop` ends SSE streams when cancelled.
pub fn build_router<B: Backend>(
    backend: Arc<B>,
    config: &HttpConfig,
    port: u16,
    stop: CancellationToken,
) -> Router {
    let state = AppState {
        backend,
        mode: Arc::from(config.mode.as_str()),
        features: capabilities::feature_list(&config.features).into(),
        heartbeat: config.heartbeat,
        body_limit: BodyLimit(config.max_body_bytes),
        admin_body_limit: AdminBodyLimit(config.max_admin_body_bytes),
        stop,
        node_id: config.node_id.as_deref().map(Arc::from),
    };
    let routes = ROUTE_TABLE
        .iter()
        .filter(|route| !route.admin && !route.is_web())
        .fold(Router::new(), |router, route| {
            router.route(route.path, handler::<B>(route))
        })
        .fallback(fallback::route_not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(state.clone());

    let health_exempt = config.loopback && !config.require_auth;
    let gate = Arc::new(OriginGate {
        allowed: config.allowed_origins.clone(),
        own_scheme: config.web.then_some(if config.tls.is_some() {
            "https"
        } else {
            "http"
        }),
    });
    let console = config.web.then(|| {
        Arc::new(crate::web::Console::new(
            config.effective_token(),
            config.tls.is_some(),
            gate.clone(),
        ))
    });
    let auth = Arc::new(
        BearerAuth::new(config.effective_token(), health_exempt).with_console(console.clone()),
    );
    let mut router = routes.layer(from_fn_with_state(auth, require_bearer));
    if let Some(console) = console {
        router = router.merge(crate::web::router(console));
    }
    // The admin routes sit beside the client routes, behind their own token
    // only: the client token opens nothing there.
    if let Some(admin_token) = config.effective_admin_token() {
        let admin = ROUTE_TABLE
            .iter()
            .filter(|route| route.admin)
            .fold(Router::new(), |router, route| {
                router.route(route.path, handler::<B>(route))
            })
            .with_state(state)
            .layer(from_fn_with_state(
                Arc::new(admin::AdminAuth::new(admin_token)),
                admin::require_admin,
            ));
        router = router.merge(admin);
    }
    let origins = Arc::new(config.allowed_origins.clone());
    let mut router = router.layer(from_fn_with_state(gate, deny_browser_origin));
    // Inside the Host check, outside the Origin check and auth: a preflight
    // from an allowed page is answered here (browsers send no token on it).
    if !origins.is_empty() {
        router = router.layer(cors_layer(origins));
    }
    if config.loopback {
        let allowlist = Arc::new(HostAllowlist::for_port(port));
        router = router.layer(from_fn_with_state(allowlist, require_allowed_host));
    }
    // Outermost but for the JSON error bodies: a client over its budget
    // costs no token check and no body read.
    if let Some(limits) = config.rate_limit {
        router = router.layer(from_fn_with_state(
            crate::rate_limit::Limiter::new(limits),
            crate::rate_limit::rate_limit,
        ));
    }
    router
        .layer(from_fn(crate::request_metrics::count_requests))
        .layer(TraceLayer::new_for_http())
        .layer(from_fn(fallback::json_error_bodies))
}

/// CORS for `--allow-origin` pages: the methods and headers the API uses;
/// `Retry-After` readable by the page. No cookies: the token is a header.
fn cors_layer(origins: Arc<crate::origin::OriginPolicy>) -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|origin| origins.allows(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}
