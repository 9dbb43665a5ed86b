//! The agent's `fs/read_text_file` and `fs/write_text_file`.
//!
//! Order matters for safety: the path is resolved first (canonical,
//! symlinks resolved, inside or outside the workspace), the policy decides
//! on that resolved path, and `qserve-acp`'s file module then performs the
//! I/O on exactly that object — a symlink swapped in after the decision is
//! not followed, and pseudo-filesystems (procfs, sysfs, …) are refused
//! whatever the policy said.

use std::sync::Arc;
use std::time::Instant;

use qserve_acp::fs::ResolvedPath;
use qserve_acp::methods::{ReadTextFileParams, WriteTextFileParams};
use qserve_acp::RpcError;
use qserve_runtime::{FileAccess, Phase};
use serde_json::value::RawValue;
use serde_json::Value;

use super::agent::AgentHost;
use super::decisions::{self, DecisionRecord, Source};
use super::Inner;

/// ACP leaves refusals implementation-defined; this code says "the daemon
/// refused" (its policy, or the host's own confinement), distinct from a
/// missing file (`-32002`).
const POLICY_REFUSED: i64 = qserve_acp::fs::ACCESS_REFUSED;

impl Inner {
    pub(super) async fn on_read_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let read = ReadTextFileParams::parse(params)?;
        let session_id = self.route(host, &read.session_id).await?;
        let resolved = self
            .check_access(&session_id, host, &read.path, FileAccess::Read)
            .await?;
        match read.execute_at(&resolved).await {
            // The quirks table decides (gemini-cli cannot create a file otherwise).
            Err(err)
                if err.code == RpcError::RESOURCE_NOT_FOUND
                    && host.quirks.missing_file_reads_empty =>
            {
                Ok(serde_json::json!({ "content": "" }))
            }
            other => other,
        }
    }

    pub(super) async fn on_write_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let write = WriteTextFileParams::parse(params)?;
        let session_id = self.route(host, &write.session_id).await?;
        let resolved = self
            .check_access(&session_id, host, &write.path, FileAccess::Write)
            .await?;
        write.execute_at(&resolved).await
    }

    /// Resolve, ask the policy, record the decision; the resolved path is
    /// what the caller must open.
    async fn check_access(
        self: &Arc<Self>,
        session_id: &str,
        host: &AgentHost,
        path: &std::path::Path,
        access: FileAccess,
    ) -> Result<ResolvedPath, RpcError> {
        let started = Instant::now();
        let resolved = decisions::resolve_blocking(&host.workspace, path)
            .await
            .map_err(RpcError::from)?;
        let wit_path = decisions::wit_path(&resolved);
        let ctx = self.decision_context(session_id, &host.workspace, Phase::Running);
        let active = self.policy.current();
        let shadow = self.shadow_file(&ctx, access, &wit_path);
        let span = super::metrics::decision_span("file_access", session_id);
        let decided = active.policy.decide_file(&ctx, access, &wit_path);
        let decision = tracing::Instrument::instrument(decided, span.clone()).await;
        let record = DecisionRecord {
            decision_id: uuid::Uuid::new_v4().to_string(),
            kind: "file_access",
            subject: decisions::file_subject(access, &wit_path),
            context: ctx,
            policy: decisions::policy_json(active.policy.identity()),
            policy_verdict: if decision.fault.is_some() {
                "fault"
            } else if decision.allow {
                "allow"
            } else {
                "deny"
            },
            policy_reason: decision.reason.clone(),
            policy_latency: decision.latency,
            log_only: serde_json::Map::new(),
        };
        super::metrics::count_decision(&record, decision.fault.as_deref(), &span);
        self.publish_decision(session_id, &record, None, None).await;
        let source = if decision.fault.is_some() {
            Source::Fault
        } else {
            Source::Policy
        };
        self.record(
            record.log_line(
                if decision.allow { "allow" } else { "deny" },
                None,
                source,
                &decision.reason,
                None,
                started.elapsed(),
            ),
            shadow,
        );
        if decision.allow {
            Ok(resolved)
        } else {
            tracing::info!(
                session = session_id,
                path = %resolved.resolved.display(),
                ?access,
                "policy refused file access: {}",
                decision.reason
            );
            Err(RpcError::new(
                POLICY_REFUSED,
                format!("refused by the daemon's policy: {}", decision.reason),
            ))
        }
    }
}
