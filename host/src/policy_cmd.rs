//! `qserve-host policy inspect|check FILE`.

use std::process::ExitCode;

use qserve_runtime::inspect::inspect_policy;

use crate::cli::{PolicyCommand, ServeArgs};
use crate::guests;

pub async fn run(command: PolicyCommand, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let engine = guests::engine(args)?;
    match command {
        PolicyCommand::Inspect { file } => {
            let inspection = inspect_policy(&engine, &file)?;
            print!("{}", inspection.render());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file } => {
            let inspection = inspect_policy(&engine, &file)?;
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
    }
}
