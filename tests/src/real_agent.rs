//! The real ACP agents from npm (installed by `scripts/npm-deps.sh` into tests/npm/node_modules),
//! each set up to talk to a loopback mock of its vendor's API:
//!
//! | agent | package | mock |
//! |---|---|---|
//! | `qwen --acp` | `@qwen-code/qwen-code` | [`crate::mock_openai`] |
//! | `gemini --acp` | `@google/gemini-cli` | [`crate::mock_gemini`] |
//! | `claude-code-acp` | `@zed-industries/claude-code-acp` | [`crate::mock_anthropic`] |
//!
//! Everything an agent could read or write about "its user" lives in one temp dir: a
//! throwaway HOME with a settings file that makes the agent ask permission before writing (each
//! package's own default may write without asking) and stops its background calls, its temp and
//! runtime dirs, and an empty workspace. Proxies and other providers' keys are removed so that
//! nothing leaves loopback. docs/user-guide.md "Choosing an agent" shows the same settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use crate::mock_gemini::GEMINI_MODEL;
use crate::mock_openai::MOCK_MODEL;

/// The real agents the tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealAgent {
    Qwen,
    Gemini,
    ClaudeCodeAcp,
}

impl RealAgent {
    /// The launcher's name in node_modules/.bin.
    pub fn launcher(self) -> &'static str {
        match self {
            RealAgent::Qwen => "qwen",
            RealAgent::Gemini => "gemini",
            RealAgent::ClaudeCodeAcp => "claude-code-acp",
        }
    }

    /// The arguments that make the launcher speak ACP on stdio.
    pub fn args(self) -> Vec<String> {
        match self {
            RealAgent::Qwen | RealAgent::Gemini => vec!["--acp".to_string()],
            RealAgent::ClaudeCodeAcp => Vec::new(),
        }
    }

    /// Where `scripts/npm-deps.sh` installs the launcher.
    pub fn launcher_path(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("npm/node_modules/.bin")
            .join(self.launcher())
    }

    pub fn installed(self) -> Option<PathBuf> {
        let path = self.launcher_path();
        path.exists().then_some(path)
    }

    /// Whether a test of this agent can run: like [`qwen_available_or_skip`].
    pub fn available_or_skip(self, test_name: &str) -> bool {
        available_or_skip(self, test_name)
    }
}

/// Where `scripts/npm-deps.sh` installs the agent's launcher.
pub fn qwen_launcher_path() -> PathBuf {
    RealAgent::Qwen.launcher_path()
}

/// The installed launcher, if any.
pub fn installed_qwen() -> Option<PathBuf> {
    RealAgent::Qwen.installed()
}

/// Whether a real-agent test can run. When qwen is missing it prints a loud SKIPPED line and
/// returns false, so the test returns early — except under `CI=true`, where a missing agent
/// means a broken setup and the test must fail.
pub fn qwen_available_or_skip(test_name: &str) -> bool {
    available_or_skip(RealAgent::Qwen, test_name)
}

fn available_or_skip(agent: RealAgent, test_name: &str) -> bool {
    if agent.installed().is_some() {
        return true;
    }
    let message = format!(
        "{} not installed at {} — run scripts/npm-deps.sh",
        agent.launcher(),
        agent.launcher_path().display()
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
        "CLAUDE",
    ]
    .iter()
    .any(|prefix| upper.starts_with(prefix));
    // IS_SANDBOX set to anything but 1 makes claude-code-acp skip permissions as root while
    // Claude Code itself exits: `session/new` then fails.
    proxy || provider || upper.ends_with("_API_KEY") || upper == "IS_SANDBOX"
}

/// One agent environment: its own HOME, temp dirs and workspace, removed with the value.
pub struct RealAgentEnv {
    agent: RealAgent,
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
        RealAgentEnv::for_agent(RealAgent::Qwen, mock_base_url)
    }

    /// Builds the environment for `agent` talking to its mock at `mock_base_url` (the mock's
    /// `base_url()`). Panics when the agent is not installed: call
    /// [`RealAgent::available_or_skip`] first.
    pub fn for_agent(agent: RealAgent, mock_base_url: &str) -> RealAgentEnv {
        let program = agent.installed().unwrap_or_else(|| {
            panic!(
                "{} not installed at {} — run scripts/npm-deps.sh",
                agent.launcher(),
                agent.launcher_path().display()
            )
        });
        let root = tempfile::Builder::new()
            .prefix(&format!("qserve-{}-", agent.launcher()))
            .tempdir()
            .expect("creating the agent's temp dir");
        let dir = |name: &str| {
            let path = root.path().join(name);
            std::fs::create_dir_all(&path).expect("creating a dir in the agent's temp dir");
            path.to_string_lossy().into_owned()
        };
        let home = dir("home");
        let runtime = dir("runtime");
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("XDG_RUNTIME_DIR must be private");
        dir("workspace");
        let write_settings = |dir_name: &str, settings: serde_json::Value| {
            let dir = dir(dir_name);
            std::fs::write(
                Path::new(&dir).join("settings.json"),
                serde_json::to_vec_pretty(&settings).expect("settings are JSON"),
            )
            .expect("writing the agent's settings.json");
            dir
        };

        let mut envs = vec![
            ("HOME".to_string(), home.clone()),
            ("XDG_CONFIG_HOME".into(), dir("home/.config")),
            ("XDG_DATA_HOME".into(), dir("home/.local/share")),
            ("XDG_STATE_HOME".into(), dir("home/.local/state")),
            ("XDG_CACHE_HOME".into(), dir("home/.cache")),
            ("XDG_RUNTIME_DIR".into(), runtime),
            ("TMPDIR".into(), dir("tmp")),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            // No colour codes or interactive terminal behaviour in the agent's output.
            ("NO_COLOR".into(), "1".into()),
        ];
        let own: Vec<(&str, String)> = match agent {
            RealAgent::Qwen => vec![
                ("QWEN_HOME", write_settings("home/.qwen", qwen_settings())),
                ("OPENAI_API_KEY", "sk-mock".into()),
                ("OPENAI_BASE_URL", mock_base_url.into()),
                ("OPENAI_MODEL", MOCK_MODEL.into()),
            ],
            RealAgent::Gemini => {
                write_settings("home/.gemini", gemini_settings());
                vec![
                    ("GOOGLE_GEMINI_BASE_URL", mock_base_url.into()),
                    ("GEMINI_API_KEY", "mock-key".into()),
                    ("GEMINI_CLI_HOME", home.clone()),
                    // No relaunch of itself in a child node with a bigger heap.
                    ("GEMINI_CLI_NO_RELAUNCH", "true".into()),
                ]
            }
            RealAgent::ClaudeCodeAcp => vec![
                (
                    "CLAUDE_CONFIG_DIR",
                    write_settings("home/.claude", claude_settings()),
                ),
                ("ANTHROPIC_BASE_URL", mock_base_url.into()),
                ("ANTHROPIC_API_KEY", "sk-ant-mock".into()),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
                ("DISABLE_AUTOUPDATER", "1".into()),
                ("DISABLE_TELEMETRY", "1".into()),
                ("DISABLE_ERROR_REPORTING", "1".into()),
                // Else it resolves a vendor host name.
                ("CLAUDE_CODE_DISABLE_FAST_MODE", "1".into()),
            ],
        };
        envs.extend(
            own.into_iter()
                .map(|(name, value)| (name.to_string(), value)),
        );
        // `CI` changes how node CLIs behave; the agent must act the same on a laptop and in CI.
        let mut removed: Vec<String> = vec!["CI".to_string()];
        removed.extend(
            std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .filter(|name| must_not_inherit(name))
                .filter(|name| !envs.iter().any(|(set, _)| set == name)),
        );
        removed.sort();
        removed.dedup();
        RealAgentEnv {
            agent,
            root,
            program,
            envs,
            removed,
        }
    }

    pub fn agent(&self) -> RealAgent {
        self.agent
    }

    /// Takes `tools.approvalMode` out of qwen's settings, so that the package default
    /// (`auto`: writes without asking) applies — unless the daemon sets the asking mode.
    pub fn use_qwen_package_default_approval(&self) {
        assert_eq!(self.agent, RealAgent::Qwen);
        let path = self.home().join(".qwen/settings.json");
        let mut settings = qwen_settings();
        settings.as_object_mut().unwrap().remove("tools");
        std::fs::write(&path, serde_json::to_vec_pretty(&settings).unwrap())
            .expect("rewriting qwen's settings.json");
    }

    /// The launcher (`…/node_modules/.bin/qwen`, a node script).
    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn args(&self) -> Vec<String> {
        self.agent.args()
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

/// `$HOME/.qwen/settings.json` (docs/user-guide.md "Choosing an agent").
pub fn qwen_settings() -> serde_json::Value {
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

/// `$HOME/.gemini/settings.json` (docs/user-guide.md "Choosing an agent").
pub fn gemini_settings() -> serde_json::Value {
    json!({
        "security": {
            "auth": {"selectedType": "gemini-api-key"},
            // Else it asks whether to trust the workspace folder.
            "folderTrust": {"enabled": false},
        },
        // Ask before writing (gemini has no ACP modes the daemon could set instead).
        "general": {"defaultApprovalMode": "default", "enableAutoUpdate": false,
                    "enableAutoUpdateNotification": false},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "ide": {"enabled": false},
        "tools": {"useRipgrep": false},
        // A fixed model: "auto" makes an extra router call first.
        "model": {"name": GEMINI_MODEL},
    })
}

/// `$CLAUDE_CONFIG_DIR/settings.json` (docs/user-guide.md "Choosing an agent").
pub fn claude_settings() -> serde_json::Value {
    json!({"permissions": {"defaultMode": "default"}})
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
            "CLAUDE_CODE_USE_BEDROCK",
            "IS_SANDBOX",
        ] {
            assert!(must_not_inherit(name), "{name} would leak into the agent");
        }
        for name in ["PATH", "NO_PROXY", "LANG", "RUST_LOG"] {
            assert!(!must_not_inherit(name), "{name} is harmless and needed");
        }
    }
}
