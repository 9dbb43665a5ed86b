//! One decision, made by a loaded policy on a case's inputs, in the words
//! `policy test`, `eval` and `replay` compare and print.

use std::time::Duration;

use qserve_runtime::{PermissionAnswer, Policy};

use super::cases::{CaseKind, Inputs};

/// What the policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `select`, `reject`, `ask`, `allow`, `deny` or `fault`.
    pub verdict: String,
    /// The option a `select` (or a `reject`) answers with.
    pub option: Option<String>,
    /// The policy's own timeout of an `ask`.
    pub timeout_ms: Option<u64>,
    pub reason: String,
    pub latency: Duration,
}

impl Outcome {
    /// `select proceed_once`, `ask (timeout 5000 ms)`, `deny`.
    pub fn summary(&self) -> String {
        match (self.verdict.as_str(), &self.option, self.timeout_ms) {
            ("select", Some(option), _) => format!("select {option}"),
            ("ask", _, Some(ms)) => format!("ask (timeout {ms} ms)"),
            (verdict, _, _) => verdict.to_owned(),
        }
    }
}

pub async fn decide(policy: &Policy, kind: CaseKind, inputs: &Inputs) -> Outcome {
    match kind {
        CaseKind::Permission => {
            let decision = policy
                .decide_permission(&inputs.context, &inputs.call, &inputs.options)
                .await;
            let (option, timeout_ms) = match &decision.answer {
                PermissionAnswer::Selected(option) => (Some(option.clone()), None),
                PermissionAnswer::Cancelled => (None, None),
                PermissionAnswer::AskClients(timeout) => {
                    (None, timeout.map(|t| t.as_millis() as u64))
                }
            };
            Outcome {
                verdict: decision.verdict.to_owned(),
                option: if decision.verdict == "select" {
                    option
                } else {
                    None
                },
                timeout_ms,
                reason: decision.reason,
                latency: decision.latency,
            }
        }
        CaseKind::File | CaseKind::Session => {
            let decision = if kind == CaseKind::File {
                policy
                    .decide_file(&inputs.context, inputs.access, &inputs.path)
                    .await
            } else {
                policy.decide_session(&inputs.context).await
            };
            let verdict = if decision.fault.is_some() {
                "fault"
            } else if decision.allow {
                "allow"
            } else {
                "deny"
            };
            Outcome {
                verdict: verdict.to_owned(),
                option: None,
                timeout_ms: None,
                reason: decision.reason,
                latency: decision.latency,
            }
        }
        CaseKind::Init => unreachable!("init cases load a policy; they decide nothing"),
    }
}
