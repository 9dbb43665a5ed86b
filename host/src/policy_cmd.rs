//! `qserve-host policy inspect|check|list`.

use std::process::ExitCode;

use qserve_runtime::inspect::inspect_policy;

use crate::cli::{PolicyCommand, ServeArgs};
use crate::guests;

pub async fn run(command: PolicyCommand, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let engine = guests::engine(args)?;
    let options = guests::policy_options(args);
    let config = match &args.policy_config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|err| anyhow::anyhow!("cannot read --policy-config {}: {err}", path.display()))?,
        ),
        None => None,
    };
    match command {
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
                let version = match &policy {
                    Ok(policy) => policy.identity().version.clone(),
                    Err(err) => format!("(does not load: {err})"),
                };
                println!("{:<20} {:<10} {}", builtin.name, version, loaded.sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
