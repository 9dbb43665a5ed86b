//! `qserve-host policy …`: work with policies without starting the daemon.
//!
//! `inspect`, `check`, `list` (here), `test` ([`test`]), `eval` ([`eval`]),
//! `replay` ([`replay`]), `new` ([`new`], which writes a policy crate and
//! loads nothing). They honour the deployment flags
//! (`--policy-memory-mib`, `--policy-deadline-ms`, `--cache-dir`,
//! `--policy-config`) wherever they are on the command line.

mod cases;
mod eval;
mod new;
mod outcome;
mod replay;
mod test;

use std::path::Path;
use std::process::ExitCode;

use qserve_runtime::inspect::inspect_policy;

use crate::cli::{PolicyCommand, ServeArgs};
use crate::guests;

pub async fn run(command: PolicyCommand, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    // Writes files only: no engine, no component.
    if let PolicyCommand::New { name, dir } = command {
        return new::run(&name, dir);
    }
    let engine = guests::engine(args)?;
    let options = guests::policy_options(args);
    let config = match &args.policy_config {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
            anyhow::anyhow!("cannot read --policy-config {}: {err}", path.display())
        })?),
        None => None,
    };
    let read_config = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        match path {
            Some(path) => Ok(Some(read_text(path)?)),
            None => Ok(config.clone()),
        }
    };
    match command {
        PolicyCommand::Test {
            policy,
            cases,
            config: case_config,
            coverage,
        } => {
            let config_override = match &case_config {
                Some(path) => Some(read_text(path)?),
                None => None,
            };
            if coverage {
                anyhow::ensure!(
                    policy == "builtin:rules",
                    "--coverage lists unexercised rules of builtin:rules only"
                );
            }
            test::run(
                &engine,
                &policy,
                &cases,
                config_override,
                &options,
                coverage,
            )
            .await
        }
        PolicyCommand::Eval {
            policy,
            input,
            config: eval_config,
        } => {
            eval::run(
                &engine,
                &policy,
                &input,
                read_config(&eval_config)?,
                &options,
            )
            .await
        }
        PolicyCommand::Replay {
            policy,
            decisions,
            config: replay_config,
            show,
        } => {
            replay::run(
                &engine,
                &policy,
                &decisions,
                read_config(&replay_config)?,
                &options,
                show,
            )
            .await
        }
        PolicyCommand::Inspect { policy } => {
            let inspection = inspect_policy(&engine, &policy, &options, config.as_deref()).await?;
            print!("{}", inspection.render());
            Ok(if inspection.fits() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Check { policy } => {
            let inspection = inspect_policy(&engine, &policy, &options, config.as_deref()).await?;
            for warning in &inspection.warnings {
                eprintln!("warning: {warning}");
            }
            if inspection.fits() {
                println!(
                    "{}: fits the `policy` world ({})",
                    inspection.origin,
                    inspection.policy.as_deref().unwrap_or("?")
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{}: does not fit the `policy` world:", inspection.origin);
                for problem in &inspection.problems {
                    eprintln!("  - {problem}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        PolicyCommand::List => {
            println!("{:<20} {:<10} SHA256", "NAME", "VERSION");
            for builtin in qserve_runtime::builtin::all() {
                let loaded = engine.load_component(builtin.name)?;
                let policy = qserve_runtime::Policy::load(&engine, &loaded, options.clone()).await;
                // A policy that needs a config to say who it is (cedar: the
                // policy set) is listed without a version.
                let version = match &policy {
                    Ok(policy) => policy.identity().version.clone(),
                    Err(qserve_runtime::LoadError::ConfigRefused { .. }) => "(config)".to_owned(),
                    Err(err) => format!("(does not load: {err})"),
                };
                println!("{:<20} {:<10} {}", builtin.name, version, loaded.sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::New { .. } => unreachable!("handled above"),
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))
}
