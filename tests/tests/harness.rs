//! Checks of the e2e harness itself against the real daemon binary: it starts, answers on the
//! announced address, and leaves no process behind.

use std::time::Duration;

use qserve_e2e::process_group::is_running;
use qserve_e2e::{fake_agent_path, Daemon, DaemonOptions};
use reqwest::StatusCode;

#[tokio::test]
async fn daemon_starts_on_an_ephemeral_port_answers_and_dies_with_its_value() {
    let agent = fake_agent_path();
    let daemon = Daemon::start(DaemonOptions::with_agent(agent.display().to_string())).await;
    assert!(daemon.base_url().starts_with("http://127.0.0.1:"));
    assert!(
        !daemon.base_url().ends_with(":0"),
        "the real port is announced"
    );

    let (status, body) = daemon.get_json("/health").await;
    assert_eq!(status, StatusCode::OK, "log:\n{}", daemon.log());
    assert_eq!(body["status"], "ok");
    assert!(daemon.log().contains("listening on"));

    let pid = daemon.pid();
    drop(daemon);
    assert!(
        !is_running(pid),
        "qserve-host {pid} outlived its Daemon value"
    );
}

#[tokio::test]
async fn a_daemon_that_cannot_start_fails_the_test_with_its_output() {
    let outcome = tokio::spawn(Daemon::start(DaemonOptions {
        args: vec!["--no-such-flag".into()],
        startup_timeout: Duration::from_secs(10),
        ..DaemonOptions::default()
    }))
    .await;
    let Err(failure) = outcome else {
        panic!("Daemon::start must panic when the daemon exits before listening");
    };
    let panic = failure.into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("exited") && message.contains("no-such-flag"),
        "the panic names the exit and shows the daemon's own complaint: {message}"
    );
}
