//! Hot swap: a new policy is loaded and `init`-checked beside the active
//! one, swapped in with one pointer write (see [`PolicySlot`]), and every
//! live session's stream is told with a `policy_changed` event. A failed
//! load changes nothing and says why.
//!
//! [`PolicySlot`]: crate::policy::slot::PolicySlot

use qserve_http::{policy_json, PolicyInfo, PolicyReload};
use serde_json::json;

use super::Inner;
use crate::policy::slot::ReloadError;

impl Inner {
    /// SIGHUP: `--component` and `--policy-config` as given at start-up.
    pub(super) async fn reload_startup_policy(&self) -> Result<PolicyInfo, ReloadError> {
        let swapped = self.policy.reload_startup().await;
        self.after_reload("SIGHUP", swapped).await
    }

    /// `--watch-policy`: the same sources as SIGHUP, after one of their files changed.
    pub(super) async fn reload_changed_policy(&self) -> Result<PolicyInfo, ReloadError> {
        let swapped = self.policy.reload_startup().await;
        self.after_reload("a policy file change", swapped).await
    }

    /// `PUT /admin/policy`.
    pub(super) async fn reload_admin_policy(
        &self,
        req: PolicyReload,
    ) -> Result<PolicyInfo, ReloadError> {
        let swapped = self.policy.reload_admin(req).await;
        self.after_reload("the admin route", swapped).await
    }

    async fn after_reload(
        &self,
        trigger: &str,
        swapped: Result<(PolicyInfo, PolicyInfo), ReloadError>,
    ) -> Result<PolicyInfo, ReloadError> {
        let (old, new) = match swapped {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(
                    "policy reload from {trigger} refused; the old policy stays active: {err}"
                );
                return Err(err);
            }
        };
        tracing::info!(
            trigger,
            policy = %new.name,
            version = %new.version,
            sha256 = %new.sha256,
            from = %new.origin,
            previous = %format!("{} {} {}", old.name, old.version, old.sha256),
            "policy swapped"
        );
        let data = json!({
            "policy": policy_json(&new),
            "previous": policy_json(&old),
        })
        .to_string();
        let session_ids: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
        let _ = self
            .hub
            .call(move |hub| {
                for session_id in &session_ids {
                    let _ = hub.publish(session_id, "policy_changed", &data, None);
                }
            })
            .await;
        Ok(new)
    }
}
