//! `qserve-host policy eval POLICY --input CALL.json`: one decision with its
//! reason and latency, like `opa eval`.
//!
//! The input is one case in JSON (the shape of a `[[case]]` of a case table,
//! without `expect`): `{"kind":"permission","context":{…},"call":{…},
//! "options":[…]}`, `{"kind":"file","access":"write","path":{…}}` or
//! `{"kind":"session","context":{"phase":"create",…}}`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use qserve_runtime::{GuestEngine, Policy, PolicyOptions};

use super::cases::{Case, CaseKind, Defaults};
use super::outcome::decide;

pub async fn run(
    engine: &GuestEngine,
    policy_spec: &str,
    input: &Path,
    config: Option<String>,
    options: &PolicyOptions,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let case: Case = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a decision input", input.display()))?;
    anyhow::ensure!(
        case.kind != CaseKind::Init,
        "`init` is checked by loading: use `policy check` (with --policy-config)"
    );
    let defaults = Defaults {
        config,
        ..Defaults::default()
    };
    let inputs = case.inputs(&defaults).map_err(anyhow::Error::msg)?;
    let component = engine.load_component(policy_spec)?;
    let policy = Policy::load(
        engine,
        &component,
        PolicyOptions {
            config_document: Arc::from(inputs.config.as_str()),
            ..options.clone()
        },
    )
    .await?;
    let outcome = decide(&policy, case.kind, &inputs).await;
    let identity = policy.identity();
    println!("verdict: {}", outcome.summary());
    println!("reason:  {}", outcome.reason);
    println!("latency: {:.3} ms", outcome.latency.as_secs_f64() * 1000.0);
    println!(
        "policy:  {} {} sha256:{}",
        identity.name, identity.version, identity.sha256
    );
    Ok(ExitCode::SUCCESS)
}
