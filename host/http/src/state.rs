//! What every handler can reach: the backend, the answers fixed at start-up,
//! and the shutdown signal long-lived responses watch.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::body::BodyLimit;
use crate::routes::admin::AdminBodyLimit;

/// Router state (cheap to clone: everything is shared).
pub struct AppState<B> {
    pub backend: Arc<B>,
    /// `/capabilities.mode`.
    pub mode: Arc<str>,
    /// Base capability tags followed by the configured extras.
    pub features: Arc<[String]>,
    pub heartbeat: Duration,
    pub body_limit: BodyLimit,
    /// Largest component upload on `PUT /admin/policy`.
    pub admin_body_limit: AdminBodyLimit,
    /// Cancelled when the server shuts down; ends SSE streams.
    pub stop: CancellationToken,
    /// `/capabilities.nodeId` (`--node-id`), when set.
    pub node_id: Option<Arc<str>>,
}

impl<B> Clone for AppState<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            mode: Arc::clone(&self.mode),
            features: Arc::clone(&self.features),
            heartbeat: self.heartbeat,
            body_limit: self.body_limit,
            admin_body_limit: self.admin_body_limit,
            stop: self.stop.clone(),
            node_id: self.node_id.clone(),
        }
    }
}

impl<B: Backend> FromRef<AppState<B>> for BodyLimit {
    fn from_ref(state: &AppState<B>) -> Self {
        state.body_limit
    }
}
