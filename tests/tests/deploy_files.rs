//! The checked-in deployment files stay true to the binary: every flag the
//! systemd unit, the Dockerfile's CMD and the Kubernetes StatefulSet pass is
//! one `qserve-host` accepts (with its value), every `QSERVE_*` variable they
//! set is one it reads, the ConfigMap's policy loads with `builtin:rules`, and
//! the grace period outlasts the daemon's drain. Docker, systemd and kubectl
//! are not run here; the binary's own parser is.
//!
//! How a flag list is checked without starting a daemon: `qserve-host FLAGS
//! policy new probe --dir TMP` parses FLAGS with the daemon's clap definition
//! (an unknown flag or a bad value is a usage error, exit 2), and `policy new`
//! then only writes files: no token file, port or policy is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use qserve_e2e::binaries::qserve_host_path;
use qserve_e2e::daemon::shared_component_cache;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// Runs `qserve-host ARGS policy new probe` and panics with its stderr
/// unless the daemon's parser accepted ARGS.
fn assert_accepted(source: &str, args: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(qserve_host_path())
        .args(args)
        .args(["policy", "new", "probe", "--dir"])
        .arg(dir.path().join("probe"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("running qserve-host");
    assert!(
        output.status.success(),
        "{source}: qserve-host does not accept {args:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The arguments after the program on the unit's `ExecStart=` (continued
/// lines joined, split as a shell would; systemd's `%d` etc. are kept).
fn systemd_args() -> Vec<String> {
    let unit = read("deploy/systemd/qserve.service");
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    let mut words = shell_words::split(line).unwrap();
    assert!(words.remove(0).ends_with("qserve-host"));
    words
}

/// The Dockerfile's `CMD [...]` (the exec form is JSON).
fn dockerfile_args() -> Vec<String> {
    let dockerfile = read("deploy/Dockerfile");
    let cmd = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD line");
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/qserve-host\"]"),
        "CMD holds qserve-host's flags only if it is the entrypoint"
    );
    serde_json::from_str(cmd).expect("CMD in exec (JSON) form")
}

/// The StatefulSet's `args: [...]` (a one-line flow sequence, which is JSON).
fn statefulset_args() -> Vec<String> {
    let manifest = read("deploy/k8s/statefulset.yaml");
    let args = manifest
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("args: "))
        .expect("an `args: [...]` line");
    serde_json::from_str(args).expect("args as a one-line flow sequence")
}

#[test]
fn every_flag_in_the_unit_the_image_and_the_statefulset_is_accepted() {
    for (source, args) in [
        ("deploy/systemd/qserve.service", systemd_args()),
        ("deploy/Dockerfile", dockerfile_args()),
        ("deploy/k8s/statefulset.yaml", statefulset_args()),
    ] {
        assert!(args.len() >= 4, "{source}: {args:?}");
        assert_accepted(source, &args);
    }
    // The check can fail: an unknown flag and a bad value are refused.
    for bad in [["--no-such-flag", "x"], ["--port", "not-a-port"]] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let refused = std::panic::catch_unwind(|| assert_accepted("negative control", &args));
        assert!(refused.is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn the_manifests_use_node_ids_hot_reload_and_variables_the_binary_reads() {
    let statefulset = read("deploy/k8s/statefulset.yaml");
    let args = statefulset_args();
    assert!(args.contains(&"--watch-policy".to_string()), "{args:?}");
    assert!(statefulset.contains("name: QSERVE_NODE_ID"));
    assert!(statefulset.contains("fieldPath: metadata.name"));

    // Every QSERVE_* name the files set is one the daemon reads.
    let help = Command::new(qserve_host_path())
        .arg("--help")
        .output()
        .expect("qserve-host --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for file in [
        "deploy/systemd/qserve.service",
        "deploy/Dockerfile",
        "deploy/k8s/statefulset.yaml",
        "docs/deploy.md",
    ] {
        let text = read(file);
        for name in qserve_variables(&text) {
            assert!(
                help.contains(&format!("[env: {name}")) || name == "QSERVE_AGENTS",
                "{file} names {name}, which qserve-host does not read"
            );
        }
    }
}

/// `QSERVE_FOO_BAR` words in `text`, except the nginx template's and the tests' own.
fn qserve_variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| word.starts_with("QSERVE_") && word.len() > "QSERVE_".len())
        .filter(|word| {
            !word.starts_with("QSERVE_PROXY_")
                && !word.starts_with("QSERVE_E2E_")
                && !word.starts_with("QSERVE_NODE_0")
                && !word.starts_with("QSERVE_NODE_1")
                && !word.starts_with("QSERVE_ADDR_")
                && !word.starts_with("QSERVE_NODE_i")
                && !word.starts_with("QSERVE_ADDR_i")
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The drain the daemon does on SIGTERM is bounded by these (see main.rs and
/// bridge/lifecycle.rs): 10 s for the agents, 5 s for open HTTP requests.
const DRAIN_BOUND_SECONDS: u64 = 10 + 5;

#[test]
fn the_grace_periods_outlast_the_sigterm_drain() {
    let statefulset = read("deploy/k8s/statefulset.yaml");
    let grace: u64 = statefulset
        .lines()
        .find_map(|line| {
            line.trim_start()
                .strip_prefix("terminationGracePeriodSeconds: ")
        })
        .expect("terminationGracePeriodSeconds")
        .trim()
        .parse()
        .unwrap();
    assert!(grace > DRAIN_BOUND_SECONDS, "{grace}");
    let unit = read("deploy/systemd/qserve.service");
    let stop: u64 = unit
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec=")
        .parse()
        .unwrap();
    assert!(stop > DRAIN_BOUND_SECONDS, "{stop}");
    assert!(
        unit.contains("KillMode=mixed"),
        "SIGTERM must reach the daemon alone, which stops its agents itself"
    );
}

#[test]
fn the_configmap_policy_loads_with_builtin_rules() {
    let configmap = read("deploy/k8s/configmap.yaml");
    // The `policy.toml: |` block scalar, its indentation removed.
    let mut lines = configmap
        .lines()
        .skip_while(|l| l.trim() != "policy.toml: |");
    lines.next().expect("a `policy.toml: |` key");
    let body: Vec<&str> = lines
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .collect();
    let toml = body
        .iter()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(toml.contains("mode"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, toml).unwrap();
    let output = Command::new(qserve_host_path())
        .arg("--cache-dir")
        .arg(shared_component_cache())
        .arg("--policy-config")
        .arg(&path)
        .args(["policy", "check", "builtin:rules"])
        .output()
        .expect("qserve-host policy check");
    assert!(
        output.status.success(),
        "the ConfigMap's policy.toml does not load:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_proxy_deployment_sets_every_variable_of_the_nginx_template() {
    let template = read("deploy/nginx/qserve.conf.template");
    let proxy = read("deploy/k8s/proxy.yaml");
    let mut used: Vec<&str> = template
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split("${").skip(1))
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), 5, "{used:?}");
    for name in used {
        assert!(
            proxy.contains(&format!("- name: {name}\n")),
            "deploy/k8s/proxy.yaml does not set {name}"
        );
    }
    assert!(proxy.contains("mountPath: /etc/nginx/templates"));
}
