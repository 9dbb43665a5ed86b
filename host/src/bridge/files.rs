//! The agent's `fs/read_text_file` and `fs/write_text_file`: the policy says
//! whether, `qserve-acp`'s file module says how (limits, atomic writes).

use std::sync::Arc;

use qserve_acp::methods::{ReadTextFileParams, WriteTextFileParams};
use qserve_acp::RpcError;
use qserve_runtime::FileAccess;
use serde_json::value::RawValue;
use serde_json::Value;

use super::agent::AgentHost;
use super::Inner;

/// ACP leaves refusals implementation-defined; this code says "the daemon's
/// policy refused", distinct from a missing file.
const POLICY_REFUSED: i64 = -32001;

impl Inner {
    pub(super) async fn on_read_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let read = ReadTextFileParams::parse(params)?;
        let session_id = self.route(host, &read.session_id).await?;
        self.check_access(&session_id, &read.path, FileAccess::Read)
            .await?;
        read.execute().await
    }

    pub(super) async fn on_write_text_file(
        self: &Arc<Self>,
        host: &AgentHost,
        params: &RawValue,
    ) -> Result<Value, RpcError> {
        let write = WriteTextFileParams::parse(params)?;
        let session_id = self.route(host, &write.session_id).await?;
        self.check_access(&session_id, &write.path, FileAccess::Write)
            .await?;
        write.execute().await
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
