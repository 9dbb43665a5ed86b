//! `--watch-policy` through the real binary: the policy config mounted the
//! way a Kubernetes ConfigMap is (`policy.conf -> ..data/policy.conf`,
//! `..data -> ..VERSION`, updated by an atomic swap of `..data`) is reloaded
//! when it changes, exactly as SIGHUP reloads it; a broken update keeps the
//! old policy and says why.

mod common;

use std::path::Path;

use common::*;
use qserve_e2e::binaries::fake_agent_path;
use qserve_e2e::daemon::{Daemon, DaemonOptions};

/// Writes `..VERSION/policy.conf` and points `..data` at it with one rename,
/// as the kubelet does; `policy.conf -> ..data/policy.conf` is made once.
fn configmap_update(dir: &Path, version: &str, content: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("policy.conf"), content).unwrap();
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    let file = dir.join("policy.conf");
    if std::fs::symlink_metadata(&file).is_err() {
        std::os::unix::fs::symlink("..data/policy.conf", &file).unwrap();
    }
}

async fn active_version(daemon: &Daemon) -> serde_json::Value {
    daemon.get_json("/capabilities").await.1["policy"]["version"].clone()
}

#[tokio::test]
async fn a_configmap_swap_reloads_the_policy_and_a_broken_one_keeps_the_old() {
    let mount = tempdir();
    configmap_update(mount.path(), "2026_11_26_01", "version=1\n");
    let mut options = DaemonOptions::with_agent(fake_agent_path().display().to_string());
    options.args.extend(
        [
            "--component",
            guest_component("policy-select-first").to_str().unwrap(),
            "--policy-config",
            mount.path().join("policy.conf").to_str().unwrap(),
            "--watch-policy",
        ]
        .map(str::to_owned),
    );
    let daemon = Daemon::start(options).await;
    assert_eq!(active_version(&daemon).await, "1");
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut events = daemon.subscribe(&session, None).await;

    // The kubelet's update: no signal, no API call.
    configmap_update(mount.path(), "2026_11_26_02", "version=2\n");
    let changed = wait_event(&mut events, "policy_changed", |_| true).await;
    assert_eq!(changed["data"]["policy"]["version"], "2");
    assert_eq!(changed["data"]["previous"]["version"], "1");
    assert_eq!(active_version(&daemon).await, "2");

    // A config the policy refuses: the old policy stays and the log says why.
    configmap_update(mount.path(), "2026_11_26_03", "refuse-me\n");
    assert!(
        daemon
            .wait_for_log("the old policy stays active", WAIT)
            .await,
        "{}",
        daemon.log()
    );
    assert_eq!(active_version(&daemon).await, "2");
    // It still decides, on the version-2 policy.
    prompt_ok(&daemon, &session, "permission edit").await;
    let decision = wait_event(&mut events, "policy_decision", |e| {
        e["data"]["kind"] == "permission"
    })
    .await;
    assert_eq!(decision["data"]["policy"]["version"], "2", "{decision}");

    // Fixed again: reloaded.
    configmap_update(mount.path(), "2026_11_26_04", "version=4\n");
    let changed = wait_event(&mut events, "policy_changed", |_| true).await;
    assert_eq!(changed["data"]["policy"]["version"], "4");
}
