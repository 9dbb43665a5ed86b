//! The real `qwen --acp` agent (npm `@qwen-code/qwen-code`, installed by
//! `scripts/npm-deps.sh` into tests/npm/node_modules), set up to talk to the mock model.
//!
//! Everything the agent could read or write about "its user" lives in one temp dir: a
//! throwaway HOME with a settings file that makes the agent ask permission before writing
//! (`tools.approvalMode: "default"`; the package default writes without asking) and stops its
//! background model calls, its temp and runtime dirs, and an empty workspace. Proxies and other
//! providers' keys are removed so that nothing leaves loopback.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use crate::mock_openai::MOCK_MODEL;

/// Where `scripts/npm-deps.sh` installs the agent's launcher.
pub fn qwen_launcher_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("npm/node_modules/.bin/qwen")
}

/// The installed launcher, if any.
pub fn installed_qwen() -> Option<PathBuf> {
    let path = qwen_launcher_path();
    path.exists().then_some(path)
}

/// Whether a real-agent test can run. When qwen is missing it prints a loud SKIPPED line and
/// returns false, so the test returns early — except under `CI=true`, where a missing agent
/// means a broken setup and the test must fail.
pub fn qwen_available_or_skip(test_name: &str) -> bool {
    if installed_qwen().is_some() {
        return true;
    }
    let message = format!(
        "qwen not installed at {} — run scripts/npm-deps.sh",
        qwen_launcher_path().display()
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{test_name}: {message} (CI=true: a missing agent is a failure, not a skip)");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and a
    // skip must be seen.
    let rule = "=".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED {test_name}: {message}\n{rule}\n"
    );
    false
}

/// Variables that must not reach the agent: they would send it off loopback or to another
/// provider. Prefix/suffix rules catch what a developer's shell happens to export.
fn must_not_inherit(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let proxy = upper.ends_with("_PROXY") && upper != "NO_PROXY";
    let provider = [
        "OPENAI_",
        "ANTHROPIC_",
        "GEMINI_",
        "GOOGLE_",
        "DASHSCOPE_",
        "QWEN_",
        "VERTEX",
        "BAILIAN_",
        "AZURE_OPENAI",
    ]
    .iter()
    .any(|prefix| upper.starts_with(prefix));
    proxy || provider || upper.ends_with("_API_KEY")
}

/// One agent environment: its own HOME, temp dirs and workspace, removed with the value.
pub struct RealAgentEnv {
    root: TempDir,
    program: PathBuf,
    envs: Vec<(String, String)>,
    removed: Vec<String>,
}

impl RealAgentEnv {
    /// Builds the environment for a qwen that talks to the mock at `mock_base_url`
    /// (`http://127.0.0.1:PORT/v1`). Panics when qwen is not installed: call
    /// [`qwen_available_or_skip`] first.
    pub fn new(mock_base_url: &str) -> RealAgentEnv {
        let program = installed_qwen().unwrap_or_else(|| {
            panic!(
                "qwen not installed at {} — run scripts/npm-deps.sh",
                qwen_launcher_path().display()
            )
        });
        let root = tempfile::Builder::new()
            .prefix("qserve-qwen-")
            .tempdir()
            .expect("creating the agent's temp dir");
        let dir = |name: &str| {
            let path = root.path().join(name);
            std::fs::create_dir_all(&path).expect("creating a dir in the agent's temp dir");
            path.to_string_lossy().into_owned()
        };
        let home = dir("home");
        let qwen_home = dir("home/.qwen");
        let runtime = dir("runtime");
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("XDG_RUNTIME_DIR must be private");
        std::fs::write(
            Path::new(&qwen_home).join("settings.json"),
            serde_json::to_vec_pretty(&agent_settings()).expect("settings are JSON"),
        )
        .expect("writing the agent's settings.json");
        dir("workspace");

        let envs = vec![
            ("HOME".to_string(), home.clone()),
            ("QWEN_HOME".into(), qwen_home),
            ("XDG_CONFIG_HOME".into(), dir("home/.config")),
            ("XDG_DATA_HOME".into(), dir("home/.local/share")),
            ("XDG_STATE_HOME".into(), dir("home/.local/state")),
            ("XDG_CACHE_HOME".into(), dir("home/.cache")),
            ("XDG_RUNTIME_DIR".into(), runtime),
            ("TMPDIR".into(), dir("tmp")),
            ("OPENAI_API_KEY".into(), "sk-mock".into()),
            ("OPENAI_BASE_URL".into(), mock_base_url.to_string()),
            ("OPENAI_MODEL".into(), MOCK_MODEL.into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            // No colour codes or interactive terminal behaviour in the agent's output.
            ("NO_COLOR".into(), "1".into()),
        ];
        // `CI` changes how node CLIs behave; the agent must act the same on a laptop and in CI.
        let mut removed: Vec<String> = vec!["CI".to_string()];
        removed.extend(
            std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .filter(|name| must_not_inherit(name))
                .filter(|name| !envs.iter().any(|(set, _)| set == name)),
        );
        removed.sort();
        RealAgentEnv {
            root,
            program,
            envs,
            removed,
        }
    }

    /// The launcher (`…/node_modules/.bin/qwen`, a node script).
    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn args(&self) -> Vec<String> {
        vec!["--acp".to_string()]
    }

    /// Program and arguments, for spawning the agent directly.
    pub fn command(&self) -> (PathBuf, Vec<String>) {
        (self.program.clone(), self.args())
    }

    /// The command as one shell-quoted string, for qserve-host's `--agent`.
    pub fn agent_command_line(&self) -> String {
        let program = self.program.to_string_lossy().into_owned();
        shell_words::join(std::iter::once(program).chain(self.args()))
    }

    /// Variables to set (the agent's whole private world); pass them to a daemon too, since
    /// it hands its environment down to the agent.
    pub fn envs(&self) -> &[(String, String)] {
        &self.envs
    }

    /// Variables to unset (proxies, other providers' keys) that the current process has.
    pub fn removed_envs(&self) -> &[String] {
        &self.removed
    }

    /// Applies [`envs`](Self::envs) and [`removed_envs`](Self::removed_envs) to a command.
    pub fn apply_to(&self, command: &mut tokio::process::Command) {
        for name in &self.removed {
            command.env_remove(name);
        }
        command.envs(self.envs.iter().map(|(name, value)| (name, value)));
    }

    /// The throwaway HOME (also what [`crate::process_group::processes_with_home`] looks for).
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// An empty directory to use as the session's cwd (canonical: qwen compares real paths).
    pub fn workspace(&self) -> PathBuf {
        self.root
            .path()
            .join("workspace")
            .canonicalize()
            .expect("the workspace exists")
    }
}

/// `$HOME/.qwen/settings.json`, per /work/shared/REAL-AGENTS.md.
fn agent_settings() -> serde_json::Value {
    json!({
        "$version": 4,
        "security": {"auth": {"selectedType": "openai"}},
        // Essential: the package default ("auto") writes files without asking permission.
        "tools": {"approvalMode": "default"},
        // These make extra background model calls that would muddle the mock's script.
        "memory": {"enableManagedAutoMemory": false, "enableManagedAutoDream": false},
        "ui": {"enableFollowupSuggestions": false},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"enableAutoUpdate": false, "preventSystemSleep": false},
        "ide": {"enabled": false},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_and_other_providers_are_not_inherited() {
        for name in [
            "HTTPS_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "ANTHROPIC_API_KEY",
            "DASHSCOPE_API_KEY",
            "OPENAI_ORG_ID",
            "QWEN_CODE_X",
        ] {
            assert!(must_not_inherit(name), "{name} would leak into the agent");
        }
        for name in ["PATH", "NO_PROXY", "LANG", "RUST_LOG"] {
            assert!(!must_not_inherit(name), "{name} is harmless and needed");
        }
    }
}
