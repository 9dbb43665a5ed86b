//! `qserve-host policy replay POLICY DECISIONS.jsonl`: run a candidate policy
//! over a recorded decision log (`--decision-log`) and report where it would
//! have decided differently — counts by kind of change, then the first
//! differences with their inputs. A record the original policy faulted on is
//! compared too (a fault is a verdict an operator wants to see go away).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use qserve_runtime::{
    AgentInfo, Context, FileAccess, GuestEngine, PermissionOption, Phase, Policy, PolicyOptions,
    ResolvedPath, SessionScope, ToolCall,
};
use serde_json::Value;

use super::cases::{CaseKind, Inputs};
use super::outcome::decide;
use crate::policy::kinds::{option_kind, tool_kind};

pub async fn run(
    engine: &GuestEngine,
    policy_spec: &str,
    log: &Path,
    config: Option<String>,
    options: &PolicyOptions,
    show: usize,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let component = engine.load_component(policy_spec)?;
    let policy = Policy::load(
        engine,
        &component,
        PolicyOptions {
            config_document: Arc::from(config.unwrap_or_default().as_str()),
            ..options.clone()
        },
    )
    .await?;
    let (mut replayed, mut skipped) = (0usize, 0usize);
    let mut changes: BTreeMap<String, usize> = BTreeMap::new();
    let mut shown = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(err) => {
                eprintln!(
                    "{}:{}: not JSON ({err}); skipped",
                    log.display(),
                    number + 1
                );
                skipped += 1;
                continue;
            }
        };
        let Some((kind, inputs)) = inputs_of(&record) else {
            skipped += 1;
            continue;
        };
        replayed += 1;
        let was = recorded_summary(&record);
        let now = decide(&policy, kind, &inputs).await;
        let now_summary = now.summary();
        if was != now_summary {
            *changes
                .entry(format!("{} → {}", verb(&was), now.verdict))
                .or_default() += 1;
            if shown.len() < show {
                shown.push(format!(
                    "line {}: {} — was {was} ({:?}), now {now_summary} ({:?})",
                    number + 1,
                    describe(&record),
                    record["policyReason"].as_str().unwrap_or(""),
                    now.reason
                ));
            }
        }
    }
    let identity = policy.identity();
    println!(
        "replayed {replayed} decisions from {} against {} {} (sha256:{}){}",
        log.display(),
        identity.name,
        identity.version,
        identity.sha256,
        if skipped > 0 {
            format!("; {skipped} lines skipped")
        } else {
            String::new()
        }
    );
    let differences: usize = changes.values().sum();
    println!("differences: {differences}");
    for (change, count) in &changes {
        println!("  {change}: {count}");
    }
    if !shown.is_empty() {
        println!("first {} differences:", shown.len());
        for line in &shown {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verb(summary: &str) -> &str {
    summary.split_whitespace().next().unwrap_or(summary)
}

/// The original policy's verdict, in `Outcome::summary` form.
fn recorded_summary(record: &Value) -> String {
    let verdict = record["policyVerdict"].as_str().unwrap_or("?");
    match verdict {
        "select" => format!("select {}", record["optionId"].as_str().unwrap_or("?")),
        "ask" => match record["policyTimeoutMs"].as_u64() {
            Some(ms) => format!("ask (timeout {ms} ms)"),
            None => "ask".into(),
        },
        other => other.to_owned(),
    }
}

fn describe(record: &Value) -> String {
    match record["kind"].as_str() {
        Some("permission") => {
            let call = &record["toolCall"];
            let mut text = format!(
                "permission {} {:?}",
                call["kind"].as_str().unwrap_or("?"),
                call["title"].as_str().unwrap_or("")
            );
            if let Some(command) = call["command"].as_str() {
                text.push_str(&format!(" command {command:?}"));
            }
            text
        }
        Some("file_access") => format!(
            "file {} {}",
            record["access"].as_str().unwrap_or("?"),
            record["path"]["resolved"].as_str().unwrap_or("?")
        ),
        Some(kind) => format!("{kind} in {}", record["workspace"].as_str().unwrap_or("?")),
        None => "?".into(),
    }
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn path_of(value: &Value) -> ResolvedPath {
    ResolvedPath {
        requested: string(&value["requested"]),
        resolved: string(&value["resolved"]),
        inside_workspace: value["insideWorkspace"].as_bool().unwrap_or(false),
        exists: value["exists"].as_bool().unwrap_or(false),
    }
}

/// Rebuild a decision's inputs from its log record.
fn inputs_of(record: &Value) -> Option<(CaseKind, Inputs)> {
    let kind = match record["kind"].as_str()? {
        "permission" => CaseKind::Permission,
        "file_access" => CaseKind::File,
        "session_create" => CaseKind::Session,
        _ => return None,
    };
    let agent = &record["agent"];
    let context = Context {
        session_id: string(&record["sessionId"]),
        workspace: string(&record["workspace"]),
        agent: AgentInfo {
            name: string(&agent["name"]),
            command: string(&agent["command"]),
            mode: agent["mode"].as_str().map(str::to_owned),
        },
        scope: match record["scope"].as_str() {
            Some("thread") => SessionScope::Thread,
            _ => SessionScope::Single,
        },
        phase: match record["phase"].as_str() {
            Some("create") => Phase::Create,
            Some("attach") => Phase::Attach,
            _ => Phase::Running,
        },
    };
    let call_json = &record["toolCall"];
    let call = ToolCall {
        tool_call_id: string(&call_json["toolCallId"]),
        kind: tool_kind(call_json["kind"].as_str().unwrap_or("other")),
        tool_name: call_json["toolName"].as_str().map(str::to_owned),
        title: string(&call_json["title"]),
        command: call_json["command"].as_str().map(str::to_owned),
        url: call_json["url"].as_str().map(str::to_owned),
        locations: call_json["locations"]
            .as_array()
            .map(|ls| ls.iter().map(path_of).collect())
            .unwrap_or_default(),
        raw_input: call_json
            .get("rawInput")
            .filter(|v| !v.is_null())
            .map_or_else(|| "null".to_owned(), Value::to_string),
    };
    let options = record["options"]
        .as_array()
        .map(|os| {
            os.iter()
                .map(|o| PermissionOption {
                    option_id: string(&o["optionId"]),
                    name: string(&o["name"]),
                    kind: option_kind(o["kind"].as_str().unwrap_or("")),
                })
                .collect()
        })
        .unwrap_or_default();
    let access = match record["access"].as_str() {
        Some("write") => FileAccess::Write,
        _ => FileAccess::Read,
    };
    Some((
        kind,
        Inputs {
            config: String::new(),
            context,
            call,
            options,
            access,
            path: path_of(&record["path"]),
        },
    ))
}
