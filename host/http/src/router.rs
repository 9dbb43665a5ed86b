//! The route table and the order requests pass the checks in.
//!
//! Outermost first: JSON error rewriting → tracing → Host allowlist (loopback
//! binds) → Origin denial → bearer auth (the admin token on `/admin/*`) → route. Everything up to the route
//! runs before a handler's body extractor, so a rejected request is never
//! read, let alone parsed.

use std::sync::Arc;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::auth::{require_bearer, BearerAuth};
use crate::backend::Backend;
use crate::body::BodyLimit;
use crate::config::HttpConfig;
use crate::fallback;
use crate::guard::{deny_browser_origin, require_allowed_host, HostAllowlist};
use crate::routes::admin::{self, AdminBodyLimit};
use crate::routes::{capabilities, events, health, permission, session, workspace};
use crate::state::AppState;

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
    };
    let routes = Router::new()
        .route("/health", get(health::health::<B>))
        .route("/capabilities", get(capabilities::capabilities::<B>))
        .route("/session", post(session::create::<B>))
        .route("/session/{id}", delete(session::close::<B>))
        .route("/session/{id}/prompt", post(session::prompt::<B>))
        .route("/session/{id}/cancel", post(session::cancel::<B>))
        .route("/session/{id}/model", post(session::set_model::<B>))
        .route("/session/{id}/events", get(events::events::<B>))
        .route("/permission/{request_id}", post(permission::vote::<B>))
        .route(
            "/workspace/{cwd}/sessions",
            get(workspace::list_sessions::<B>),
        )
        .fallback(fallback::route_not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(state.clone());

    let auth = Arc::new(BearerAuth::new(config.effective_token(), config.loopback));
    let mut router = routes.layer(from_fn_with_state(auth, require_bearer));
    // The admin routes sit beside the client routes, behind their own token
    // only: the client token opens nothing there.
    if let Some(admin_token) = config.effective_admin_token() {
        let admin = Router::new()
            .route("/admin/policy", put(admin::put_policy::<B>))
            .with_state(state)
            .layer(from_fn_with_state(
                Arc::new(admin::AdminAuth::new(admin_token)),
                admin::require_admin,
            ));
        router = router.merge(admin);
    }
    let mut router = router.layer(from_fn(deny_browser_origin));
    if config.loopback {
        let allowlist = Arc::new(HostAllowlist::for_port(port));
        router = router.layer(from_fn_with_state(allowlist, require_allowed_host));
    }
    router
        .layer(TraceLayer::new_for_http())
        .layer(from_fn(fallback::json_error_bodies))
}
