//! The agent's `fs/read_text_file` and `fs/write_text_file`: the policy says
//! whether, `qserve-acp`'s file module says how (limits, atomic writes).

use std::path::PathBuf;
use std::sync::Arc;

use qserve_acp::{fs, RpcError};
use qserve_runtime::FileAccess;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::agent::AgentHost;
use super::Inner;

/// ACP leaves refusals implementation-defined; this code says "the daemon's
/// policy refused", distinct from a missing file.
const POLICY_REFUSED: i64 = -32001;

#[derive(Deserialize)]
struct ReadParams {
    path: PathBuf,
    line: Option<i64>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct WriteParams {
    path: PathBuf,
    content: String,
}

impl Inner {
    pub(super) async fn on_read_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let session_id = self.route_request(host, params).await?;
        let read: ReadParams = serde_json::from_str(params.get())
            .map_err(|err| RpcError::invalid_params(format!("bad fs/read_text_file: {err}")))?;
        self.check_access(&session_id, &read.path, FileAccess::Read)
            .await?;
        let line = positive("line", read.line)?;
        let limit = positive("limit", read.limit)?;
        let content = fs::read_text_file(&read.path, line, limit).await?;
        Ok(json!({ "content": content }))
    }

    pub(super) async fn on_write_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let session_id = self.route_request(host, params).await?;
        let write: WriteParams = serde_json::from_str(params.get())
            .map_err(|err| RpcError::invalid_params(format!("bad fs/write_text_file: {err}")))?;
        self.check_access(&session_id, &write.path, FileAccess::Write)
            .await?;
        fs::write_text_file(&write.path, write.content).await?;
        Ok(json!({}))
    }

    async fn check_access(
        &self,
        session_id: &str,
        path: &std::path::Path,
        access: FileAccess,
    ) -> Result<(), RpcError> {
        let sid = session_id.to_owned();
        let shown = path.display().to_string();
        self.policy
            .call(move |policy| policy.check_file_access(&sid, &shown, access))
            .await
            .map_err(|_| RpcError::internal("the policy is not running"))?
            .map_err(|reason| {
                tracing::info!(session = session_id, path = %path.display(), ?access, "policy refused file access: {reason}");
                RpcError::new(POLICY_REFUSED, format!("refused by the daemon's policy: {reason}"))
            })
    }
}

/// `line` and `limit` are 1-based counts: zero or negative is the agent's mistake.
fn positive(name: &str, value: Option<i64>) -> Result<Option<u32>, RpcError> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        Some(v) => Err(RpcError::invalid_params(format!(
            "{name} must be a positive integer, got {v}"
        ))),
    }
}
