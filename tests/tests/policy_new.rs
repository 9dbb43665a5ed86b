//! `qserve-host policy new` through the real binary: the crate it writes
//! builds into a component with the guest toolchain (`guest/build.sh
//! --policy DIR`, as an author runs it), and that component passes the case
//! table the crate ships with under `qserve-host policy test`.
//!
//! Where the crate goes: under cargo's temporary directory for tests
//! (target/tmp). The crate holds no path into the checkout (checked below)
//! and is a workspace of its own, so it builds the same anywhere; but
//! inside the checkout guest/build.sh shares the guests' target directory,
//! whose Wasm standard library and dependencies `guest/build.sh` already
//! built. Outside it, the same build took 7 min on a loaded 2-core machine
//! (std from source, -Zbuild-std), long enough to starve the tests running
//! beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

use qserve_e2e::binaries::run_qserve_host as qserve_host;

/// Every file under `dir` (skipping `target`), as (relative path, text).
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "target" {
                    stack.push(path);
                }
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), text));
            }
        }
    }
    out
}

#[test]
fn policy_new_writes_a_standalone_crate_that_builds_and_passes_its_cases() {
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = temp.path().join("policy-new-e2e");
    let dir_arg = dir.to_str().unwrap();

    let (code, out, err) = qserve_host(&["policy", "new", "policy-new-e2e", "--dir", dir_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("guest/build.sh --policy {dir_arg}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "qserve-host policy test {dir_arg}/target/policy-new-e2e.wasm {dir_arg}/cases.toml"
        )),
        "{out}"
    );
    assert!(!err.contains("INFO"), "{err}");

    // Nothing in it points back into the checkout it was made from.
    let written = files(&dir);
    for (path, text) in &written {
        assert!(!text.contains("../../sdk"), "{}: {text}", path.display());
        assert!(
            !text.contains(repo().to_str().unwrap()),
            "{} names the checkout",
            path.display()
        );
        if path.ends_with("Cargo.toml") {
            assert!(!text.contains("workspace = true"), "{}", path.display());
        }
    }
    for expected in [
        "Cargo.toml",
        "Cargo.lock",
        "cases.toml",
        "src/lib.rs",
        "vendor/sdk/src/lib.rs",
        "wit/policy/policy.wit",
    ] {
        assert!(dir.join(expected).is_file(), "{expected} missing");
    }

    // A second run into the same directory, and a bad name, are refused
    // (exit non-zero, a message, nothing written).
    let (code, _, err) = qserve_host(&["policy", "new", "policy-new-e2e", "--dir", dir_arg]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(files(&dir), written, "the existing crate was changed");
    let bad = temp.path().join("bad");
    let (code, _, err) = qserve_host(&["policy", "new", "2fast", "--dir", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("not a crate name"), "{err}");
    assert!(!bad.exists(), "a refused name wrote {}", bad.display());

    // Build it as an author would, with the guest toolchain of the checkout.
    let lock_before = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let build = Command::new("bash")
        .arg(repo().join("guest/build.sh"))
        .args(["--policy", dir_arg])
        .output()
        .expect("run guest/build.sh");
    assert!(
        build.status.success(),
        "guest/build.sh --policy failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // The lock it came with was complete: `cargo build --locked` would pass.
    assert_eq!(
        std::fs::read_to_string(dir.join("Cargo.lock")).unwrap(),
        lock_before,
        "the build changed Cargo.lock"
    );

    let component = dir.join("target/policy-new-e2e.wasm");
    assert!(component.is_file(), "no {}", component.display());
    let cases = dir.join("cases.toml");
    let (code, out, err) = qserve_host(&[
        "policy",
        "test",
        component.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 passed, 0 failed"), "{out}");
}
