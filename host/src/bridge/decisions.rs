//! What the policy is asked, and what is kept of its answer.
//!
//! Every decision — a permission request, an agent file access, a session
//! create or attach — is asked with a [`Context`] built here, is published
//! on the session's stream as a `policy_decision` event (so clients see the
//! decisions nobody voted on), and ends as exactly one record in the
//! decision log: for a permission the policy handed to the clients, the
//! record is written when the request is finally resolved (vote, timeout,
//! cancel), carrying both the policy's verdict and the final one.

use std::time::Duration;

use qserve_acp::methods::{PermissionRequest, ToolCallSummary};
use qserve_runtime::{
    AgentInfo, Context, FileAccess, PermissionOption, Phase, PolicyIdentity, ResolvedPath,
    SessionScope, ToolCall,
};
use serde_json::{json, Value};

use crate::policy::kinds::{option_kind, tool_kind};
use crate::policy::slot::unix_ms;

/// Who decided in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The policy's own verdict (select, reject, allow, deny).
    Policy,
    /// A client's vote on a request the policy handed to the clients.
    Client,
    /// Nobody voted in time.
    Timeout,
    /// The turn or the session ended first (cancel, close, agent death, core fault).
    Cancel,
    /// The policy faulted (trap, deadline, cap, bad answer): failed closed.
    Fault,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Policy => "policy",
            Source::Client => "client",
            Source::Timeout => "timeout",
            Source::Cancel => "cancel",
            Source::Fault => "fault",
        }
    }
}

pub fn scope_of(scope: qserve_runtime::Scope) -> SessionScope {
    match scope {
        qserve_runtime::Scope::Single => SessionScope::Single,
        qserve_runtime::Scope::Thread => SessionScope::Thread,
    }
}

/// The context of a decision.
pub fn context(
    session_id: &str,
    workspace: &str,
    agent: &AgentInfo,
    scope: SessionScope,
    phase: Phase,
) -> Context {
    Context {
        session_id: session_id.to_owned(),
        workspace: workspace.to_owned(),
        agent: agent.clone(),
        scope,
        phase,
    }
}

/// Resolve an agent's path off the async workers (it walks the path with
/// lstat/readlink, which can block on a slow file system).
pub async fn resolve_blocking(
    workspace: &str,
    requested: &std::path::Path,
) -> Result<qserve_acp::fs::ResolvedPath, qserve_acp::fs::FsError> {
    let workspace = std::path::PathBuf::from(workspace);
    let requested = requested.to_owned();
    let shown = requested.clone();
    tokio::task::spawn_blocking(move || qserve_acp::fs::resolve(&workspace, &requested))
        .await
        .unwrap_or_else(|_| {
            Err(qserve_acp::fs::FsError::Io {
                op: "resolve",
                path: shown,
                source: std::io::Error::other("path resolution panicked"),
            })
        })
}

/// The policy's view of one of the agent's paths: resolved the way a file
/// access would be, or — when it cannot be resolved — marked outside and
/// missing, which no sane policy allows.
fn resolved_location(workspace: &str, requested: &str) -> ResolvedPath {
    match qserve_acp::fs::resolve(
        std::path::Path::new(workspace),
        std::path::Path::new(requested),
    ) {
        Ok(resolved) => wit_path(&resolved),
        Err(_) => ResolvedPath {
            requested: requested.to_owned(),
            resolved: requested.to_owned(),
            inside_workspace: false,
            exists: false,
        },
    }
}

pub fn wit_path(resolved: &qserve_acp::fs::ResolvedPath) -> ResolvedPath {
    ResolvedPath {
        requested: resolved.requested.clone(),
        resolved: resolved.resolved.display().to_string(),
        inside_workspace: resolved.inside_workspace,
        exists: resolved.exists,
    }
}

/// The policy's view of a tool call, its locations resolved off the async
/// workers.
pub async fn tool_call(workspace: &str, summary: &ToolCallSummary) -> ToolCall {
    let (ws, paths) = (workspace.to_owned(), summary.locations.clone());
    let locations = tokio::task::spawn_blocking(move || {
        paths
            .iter()
            .map(|path| resolved_location(&ws, path))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    ToolCall {
        tool_call_id: summary.tool_call_id.clone(),
        kind: tool_kind(&summary.kind),
        tool_name: summary.tool_name.clone(),
        title: summary.title.clone(),
        command: summary.command.clone(),
        url: summary.url.clone(),
        locations,
        raw_input: summary
            .raw_input
            .as_ref()
            .map_or_else(|| "null".to_owned(), Value::to_string),
    }
}

pub fn offered_options(request: &PermissionRequest) -> Vec<PermissionOption> {
    request
        .options
        .iter()
        .map(|o| PermissionOption {
            option_id: o.option_id.clone(),
            name: o.name.clone(),
            kind: option_kind(&o.kind),
        })
        .collect()
}

fn path_json(path: &ResolvedPath) -> Value {
    json!({
        "requested": path.requested,
        "resolved": path.resolved,
        "insideWorkspace": path.inside_workspace,
        "exists": path.exists,
    })
}

pub fn tool_call_json(call: &ToolCall, summary: &ToolCallSummary) -> Value {
    json!({
        "toolCallId": call.tool_call_id,
        "kind": summary.kind,
        "toolName": call.tool_name,
        "title": call.title,
        "command": call.command,
        "url": call.url,
        "locations": call.locations.iter().map(path_json).collect::<Vec<_>>(),
    })
}

pub fn options_json(request: &PermissionRequest) -> Value {
    json!(request
        .options
        .iter()
        .map(|o| json!({"optionId": o.option_id, "name": o.name, "kind": o.kind}))
        .collect::<Vec<_>>())
}

pub fn policy_json(identity: &PolicyIdentity) -> Value {
    json!({
        "name": identity.name,
        "version": identity.version,
        "sha256": identity.sha256,
    })
}

fn agent_json(agent: &AgentInfo) -> Value {
    json!({ "name": agent.name, "command": agent.command, "mode": agent.mode })
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// One decision, as published (`policy_decision`) and logged. `subject` is
/// the kind-specific part (tool call and options, or path and access).
pub struct DecisionRecord {
    pub decision_id: String,
    pub kind: &'static str,
    pub context: Context,
    pub subject: serde_json::Map<String, Value>,
    pub policy: Value,
    /// The policy's verdict: select, reject, ask, allow, deny, fault.
    pub policy_verdict: &'static str,
    pub policy_reason: String,
    pub policy_latency: Duration,
    /// For the decision log only (replay needs them; streams do not).
    pub log_only: serde_json::Map<String, Value>,
}

/// Largest `rawInput` kept in a decision-log record (a write's raw input
/// holds the whole file); larger ones are left out and marked.
const MAX_LOGGED_RAW_INPUT: usize = 16 * 1024;

/// `toolCall.rawInput` (bounded) and the policy's own ask timeout, which
/// `policy replay` needs to rebuild and compare a decision.
pub fn permission_log_only(
    summary: &ToolCallSummary,
    policy_timeout: Option<Duration>,
) -> serde_json::Map<String, Value> {
    let mut extra = serde_json::Map::new();
    if let Some(raw) = &summary.raw_input {
        if raw.to_string().len() <= MAX_LOGGED_RAW_INPUT {
            extra.insert("rawInput".into(), raw.clone());
        } else {
            extra.insert("rawInputOmitted".into(), json!(true));
        }
    }
    if let Some(timeout) = policy_timeout {
        extra.insert("policyTimeoutMs".into(), json!(timeout.as_millis() as u64));
    }
    extra
}

impl DecisionRecord {
    /// The `data` of the `policy_decision` event: what the policy said.
    pub fn event_data(&self, option_id: Option<&str>, request_id: Option<&str>) -> Value {
        let mut data = json!({
            "sessionId": self.context.session_id,
            "decisionId": self.decision_id,
            "kind": self.kind,
            "verdict": self.policy_verdict,
            "reason": self.policy_reason,
            "source": if self.policy_verdict == "fault" { "fault" } else { "policy" },
            "policy": self.policy,
            "latencyMs": millis(self.policy_latency),
        });
        if let Some(option_id) = option_id {
            data["optionId"] = json!(option_id);
        }
        if let Some(request_id) = request_id {
            data["requestId"] = json!(request_id);
        }
        for (key, value) in &self.subject {
            data[key.as_str()] = value.clone();
        }
        data
    }

    /// The decision-log line: the policy's verdict and the final outcome.
    pub fn log_line(
        &self,
        outcome: &str,
        option_id: Option<&str>,
        source: Source,
        reason: &str,
        request_id: Option<&str>,
        total: Duration,
    ) -> Value {
        let now = unix_ms();
        let mut line = json!({
            "time": rfc3339_utc(now),
            "timeMs": now,
            "decisionId": self.decision_id,
            "kind": self.kind,
            "sessionId": self.context.session_id,
            "workspace": self.context.workspace,
            "agent": agent_json(&self.context.agent),
            "phase": match self.context.phase { Phase::Create => "create", Phase::Attach => "attach", Phase::Running => "running" },
            "scope": match self.context.scope { SessionScope::Single => "single", SessionScope::Thread => "thread" },
            "verdict": outcome,
            "optionId": option_id,
            "reason": reason,
            "source": source.as_str(),
            "requestId": request_id,
            "policyVerdict": self.policy_verdict,
            "policyReason": self.policy_reason,
            "policy": self.policy,
            "latencyMs": millis(self.policy_latency),
            "totalMs": millis(total),
        });
        for (key, value) in &self.subject {
            line[key.as_str()] = value.clone();
        }
        for (key, value) in &self.log_only {
            match key.as_str() {
                "rawInput" | "rawInputOmitted" => line["toolCall"][key.as_str()] = value.clone(),
                _ => line[key.as_str()] = value.clone(),
            }
        }
        line
    }
}

pub fn permission_subject(
    call: &ToolCall,
    summary: &ToolCallSummary,
    request: &PermissionRequest,
) -> serde_json::Map<String, Value> {
    let mut subject = serde_json::Map::new();
    subject.insert("toolCall".into(), tool_call_json(call, summary));
    subject.insert("options".into(), options_json(request));
    subject
}

pub fn file_subject(access: FileAccess, path: &ResolvedPath) -> serde_json::Map<String, Value> {
    let mut subject = serde_json::Map::new();
    subject.insert(
        "access".into(),
        json!(match access {
            FileAccess::Read => "read",
            FileAccess::Write => "write",
        }),
    );
    subject.insert("path".into(), path_json(path));
    subject
}

/// `2026-11-25T21:48:27.123Z` from Unix milliseconds (UTC; civil-from-days).
pub fn rfc3339_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_795_643_307_123), "2026-11-25T21:48:27.123Z");
    }
}
