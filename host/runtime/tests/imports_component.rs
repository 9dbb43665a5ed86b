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

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use qserve_runtime::inspect::inspect_policy;
use qserve_runtime::{
    FileAccess, OfferedOption, PermissionAnswer, PolicyGuest, PolicyOptions, ToolCall,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const COMPONENT: &str = "policy-hostile-imports";
const UNKNOWN_IMPORT: &str = "qserve:test/phone-home@0.1.0";

/// Every log event on this thread, as `field=value …` text: the daemon's log
/// as an operator would read it.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<String>>>);

impl CapturedLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct EventText(String);

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl Subscriber for CapturedLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = EventText(format!("{} ", event.metadata().level()));
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn load_policy() -> PolicyGuest {
    PolicyGuest::new(
        support::engine(),
        &support::component(COMPONENT),
        PolicyOptions::default(),
    )
    .expect("a policy with extra imports still loads")
}

fn offered() -> Vec<OfferedOption> {
    [("proceed_once", "allow_once"), ("cancel", "reject_once")]
        .iter()
        .map(|(id, kind)| OfferedOption {
            option_id: id.to_string(),
            name: id.to_string(),
            kind: kind.to_string(),
        })
        .collect()
}

fn edit_call() -> ToolCall {
    ToolCall {
        session_id: "s1".into(),
        workspace: "/w".into(),
        kind: "edit".into(),
        title: "an edit".into(),
        locations: vec!["/w/file.txt".into()],
        raw_input: "null".into(),
    }
}

#[test]
fn inspect_names_the_unknown_import_and_the_locked_down_wasi() {
    let path = support::guest_dir().join(format!("{COMPONENT}.wasm"));
    let inspection = inspect_policy(support::engine(), &path).unwrap();
    let report = inspection.render();
    assert!(inspection.fits(), "{report}");
    assert!(
        report.contains("fits the `policy` world: yes (hostile-imports"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "imports `{UNKNOWN_IMPORT}`, which qserve does not provide: calls to it trap"
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
                "imports `{wasi}`: given a locked-down WASI (no files, env, network"
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
        let mut guest = load_policy();
        assert_eq!(guest.info().name, "hostile-imports");

        // The guest admits only when WASI shows it no variable and no directory.
        assert_eq!(guest.admit_session("/w"), Ok(()));
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
            guest.decide_permission(&edit_call(), &offered()),
            PermissionAnswer::Selected("proceed_once".into())
        );
        assert_eq!(guest.faults(), 0);

        // The one call to the unprovided import traps: the access is refused.
        let refusal = guest
            .check_file_access("s1", "/w/secret.txt", FileAccess::Read)
            .expect_err("a trapping import refuses the access");
        assert!(refusal.starts_with("policy fault: "), "{refusal}");
        assert!(!refusal.contains('\n'), "one line: {refusal}");
        assert!(
            !refusal.contains("phone-home answered"),
            "the import must not have returned: {refusal}"
        );
        assert_eq!(guest.faults(), 1);
        let warning = log
            .lines()
            .into_iter()
            .find(|line| line.contains("policy fault, failing closed"))
            .expect("the fault is logged");
        assert!(warning.starts_with("WARN"), "{warning}");
        assert!(warning.contains("call=\"on-file-access\""), "{warning}");

        // The next call runs on a fresh instance and works again.
        assert_eq!(guest.admit_session("/w"), Ok(()));
        assert_eq!(guest.faults(), 1);
        println!("refusal: {refusal}\nwarning: {warning}\nstdout: {stdout_line}");
    });
}
