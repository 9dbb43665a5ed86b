//! A real policy component that imports more than the `policy` world offers
//! (guest/components/policy-hostile-imports):
//! - WASI is provided, but locked down: no environment variables, no
//!   preopened directories, stdout captured into the daemon's log;
//! - an interface qserve does not provide (`qserve:test/phone-home`) does not
//!   stop it from loading; calling it traps, and that decision fails closed.
//!
//!
//! Regression guard: `Linker::define_unknown_imports_as_traps` after WASI
//! broke exactly this (every guest importing `wasi:io/streams` failed to link);
//! the runtime now stubs only the instances qserve does not provide.

mod support;

use qserve_runtime::inspect::inspect_policy;
use qserve_runtime::{FileAccess, PermissionAnswer, Policy, PolicyOptions, ToolKind};
use support::{call, ctx, offered, path, CapturedLog};

const COMPONENT: &str = "policy-hostile-imports";
const UNKNOWN_IMPORT: &str = "qserve:test/phone-home@0.1.0";

async fn load_policy() -> Policy {
    Policy::load(
        support::engine(),
        &support::component(COMPONENT),
        PolicyOptions::default(),
    )
    .await
    .expect("a policy with extra imports still loads")
}

#[tokio::test]
async fn inspect_names_the_unknown_import_and_the_locked_down_wasi() {
    let inspection = inspect_policy(
        support::engine(),
        &support::guest_path(COMPONENT),
        &PolicyOptions::default(),
        None,
    )
    .await
    .unwrap();
    let report = inspection.render();
    assert!(inspection.fits(), "{report}");
    assert_eq!(
        inspection.warnings.len(),
        1,
        "only phone-home fails when called: {report}"
    );
    assert!(
        report.contains("fits the `policy` world: yes (hostile-imports"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "warning: imports `{UNKNOWN_IMPORT}`, which qserve does not provide: calls to it trap"
        )),
        "{report}"
    );
    for wasi in [
        "wasi:cli/environment@0.2.12",
        "wasi:filesystem/preopens@0.2.12",
        "wasi:cli/stdout@0.2.12",
    ] {
        assert!(
            report.contains(&format!(
                "imports `{wasi}`: given a locked-down WASI (no files, env, args, network"
            )),
            "{report}"
        );
    }
}

#[test]
fn wasi_is_locked_down_and_the_unknown_import_traps_only_when_called() {
    // Something the guest would see if the host passed its environment through.
    std::env::set_var("QSERVE_TEST_SECRET", "must-not-reach-the-guest");
    let log = CapturedLog::default();
    tracing::subscriber::with_default(log.clone(), || {
        support::current_thread().block_on(async {
            let policy = load_policy().await;
            assert_eq!(policy.identity().name, "hostile-imports");

            // The guest admits only when WASI shows it no variable and no directory.
            let admitted = policy.decide_session(&ctx("/w")).await;
            assert!(admitted.allow, "{admitted:?}");
            assert_eq!(admitted.reason, "WASI shows nothing of the daemon");
            let stdout_line = log
                .lines()
                .into_iter()
                .find(|line| line.contains("on-session-create(/w)"))
                .expect("the guest's stdout reaches the log");
            assert!(
                stdout_line.contains("0 environment variables, 0 preopened directories"),
                "{stdout_line}"
            );
            assert!(
                stdout_line.contains("guest=policy:hostile-imports")
                    && stdout_line.contains("stream=\"stdout\""),
                "{stdout_line}"
            );

            // A decision that makes no forbidden call works normally.
            assert_eq!(
                policy
                    .decide_permission(&ctx("/w"), &call(ToolKind::Edit), &offered())
                    .await
                    .answer,
                PermissionAnswer::Selected("proceed_always".into())
            );
            assert_eq!(policy.health().faults, 0);

            // The one call to the unprovided import traps: the access is refused.
            let refusal = policy
                .decide_file(&ctx("/w"), FileAccess::Read, &path("/w/secret.txt"))
                .await;
            assert!(!refusal.allow);
            let cause = refusal.fault.clone().expect("a fault");
            assert!(
                refusal.reason.starts_with("policy fault: "),
                "{}",
                refusal.reason
            );
            assert!(!cause.contains('\n'), "one line: {cause}");
            assert!(
                cause.contains(&format!("unknown import `{UNKNOWN_IMPORT}#call`")),
                "{cause}"
            );
            assert!(
                !refusal.reason.contains("phone-home answered"),
                "the import must not have returned: {}",
                refusal.reason
            );
            assert_eq!(policy.health().faults, 1);
            let warning = log
                .lines()
                .into_iter()
                .find(|line| line.contains("policy fault, failing closed"))
                .expect("the fault is logged");
            assert!(warning.starts_with("WARN"), "{warning}");
            assert!(warning.contains("call=\"on-file-access\""), "{warning}");
            assert!(
                warning.contains("policy=policy:hostile-imports"),
                "{warning}"
            );

            // The next call runs on a fresh instance and works again.
            assert!(policy.decide_session(&ctx("/w")).await.allow);
            assert_eq!(policy.health().faults, 1);
            println!("refusal: {cause}\nwarning: {warning}\nstdout: {stdout_line}");
        })
    });
}
