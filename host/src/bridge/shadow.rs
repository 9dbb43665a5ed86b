//! Shadow mode: a candidate policy (`--shadow-component`) decides every
//! request too, on live traffic, and only its verdict is recorded — next to
//! the real one in the decision log. It never affects the agent: it runs on
//! its own task, and the record waits for it, the answer does not.

use std::sync::Arc;

use qserve_runtime::{Context, FileAccess, PermissionOption, ResolvedPath, ToolCall};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::decisions::policy_json;
use super::Inner;

/// What the shadow decided, as it goes into the record (`"shadow": {…}`).
pub type ShadowVerdict = JoinHandle<Value>;

impl Inner {
    pub(super) fn shadow_permission(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> Option<ShadowVerdict> {
        let shadow = self.shadow.as_ref()?.current();
        let (ctx, call, options) = (ctx.clone(), call.clone(), options.to_vec());
        Some(tokio::spawn(async move {
            let decision = shadow.policy.decide_permission(&ctx, &call, &options).await;
            let option = match &decision.answer {
                qserve_runtime::PermissionAnswer::Selected(id) => Some(id.clone()),
                _ => None,
            };
            json!({
                "verdict": decision.verdict,
                "optionId": option,
                "reason": decision.reason,
                "policy": policy_json(shadow.policy.identity()),
                "latencyMs": decision.latency.as_secs_f64() * 1000.0,
            })
        }))
    }

    pub(super) fn shadow_file(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> Option<ShadowVerdict> {
        let shadow = self.shadow.as_ref()?.current();
        let (ctx, path) = (ctx.clone(), path.clone());
        Some(tokio::spawn(async move {
            let decision = shadow.policy.decide_file(&ctx, access, &path).await;
            access_json(&decision, &shadow)
        }))
    }

    pub(super) fn shadow_session(&self, ctx: &Context) -> Option<ShadowVerdict> {
        let shadow = self.shadow.as_ref()?.current();
        let ctx = ctx.clone();
        Some(tokio::spawn(async move {
            let decision = shadow.policy.decide_session(&ctx).await;
            access_json(&decision, &shadow)
        }))
    }

    /// Append a decision-log record, with the shadow's verdict once it is in.
    pub(super) fn record(self: &Arc<Self>, mut line: Value, shadow: Option<ShadowVerdict>) {
        match shadow {
            None => self.decisions.append(&line),
            Some(shadow) => {
                let log = self.decisions.clone();
                tokio::spawn(async move {
                    line["shadow"] = shadow.await.unwrap_or_else(
                        |_| json!({"verdict": "fault", "reason": "the shadow decision panicked"}),
                    );
                    log.append(&line);
                });
            }
        }
    }
}

fn access_json(
    decision: &qserve_runtime::AccessDecision,
    shadow: &crate::policy::slot::Active,
) -> Value {
    json!({
        "verdict": if decision.fault.is_some() { "fault" } else if decision.allow { "allow" } else { "deny" },
        "reason": decision.reason,
        "policy": policy_json(shadow.policy.identity()),
        "latencyMs": decision.latency.as_secs_f64() * 1000.0,
    })
}
