//! `qserve-host policy new NAME`: a Rust policy crate on the qserve-policy
//! SDK, ready to build (written from `guest/templates/policy-starter`).

use std::path::Path;
use std::process::ExitCode;

pub fn run(name: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a policy name is letters, digits, `-` and `_` (it becomes the crate's name)"
    );
    let dir = Path::new(name);
    anyhow::ensure!(!dir.exists(), "{name} already exists; pick another name");
    anyhow::bail!("`policy new` is not available in this build")
}
