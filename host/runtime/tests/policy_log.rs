//! What a policy writes to the daemon's log stays bounded and cannot forge
//! lines: policy-hostile-logflood calls `host.log` 100 000 times with 64 KiB
//! each (6.4 GB); the daemon's log gets a handful of truncated lines and one
//! count of what was dropped.

mod support;

use std::time::{Duration, Instant};

use qserve_runtime::guest_limits::{BURST, MAX_LINE_BYTES, PER_SECOND};
use qserve_runtime::{PermissionAnswer, PolicyOptions, ToolKind};
use support::{call, ctx, offered, CapturedLog};

#[test]
fn a_log_flood_gets_its_verdict_and_the_log_stays_bounded() {
    let log = CapturedLog::default();
    let (decision, took) = tracing::subscriber::with_default(log.clone(), || {
        support::current_thread().block_on(async {
            let policy = support::policy_with(
                "policy-hostile-logflood",
                PolicyOptions {
                    // Long enough for 6.4 GB of copying in a debug build: the
                    // point here is the log, not the deadline.
                    call_deadline: Duration::from_secs(120),
                    ..PolicyOptions::default()
                },
            )
            .await;
            let started = Instant::now();
            let decision = policy
                .decide_permission(&ctx("/w"), &call(ToolKind::Edit), &offered())
                .await;
            let took = started.elapsed();
            drop(policy); // its instance reports what it dropped
            (decision, took)
        })
    });
    assert_eq!(
        decision.answer,
        PermissionAnswer::AskClients(None),
        "{decision:?}"
    );
    assert_eq!(
        decision.reason,
        "hostile-logflood logged 100000 lines of 64 KiB"
    );

    let lines = log.lines();
    let flood: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("hostile-logflood xxx"))
        .collect();
    let allowed = BURST + PER_SECOND * took.as_secs_f64() + 1.0;
    assert!(!flood.is_empty());
    assert!(
        (flood.len() as f64) <= allowed,
        "{} flood lines logged in {took:?} (at most {allowed})",
        flood.len()
    );
    for line in &flood {
        assert!(line.len() < MAX_LINE_BYTES + 256, "{} bytes", line.len());
        assert!(
            line.contains("… [truncated, "),
            "{}",
            &line[line.len() - 80..]
        );
        assert!(
            line.contains("guest=policy:hostile-logflood"),
            "{}",
            &line[..80]
        );
    }
    let total: usize = lines.iter().map(String::len).sum();
    assert!(total < 1 << 20, "{total} bytes of log for a 6.4 GB flood");

    // What was dropped is counted, not lost silently.
    let dropped: u64 = lines
        .iter()
        .filter(|l| l.contains("guest log rate limit"))
        .map(|l| {
            let field = l.split("dropped=").nth(1).unwrap();
            field
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        dropped + flood.len() as u64,
        100_000,
        "every line logged or counted"
    );
    println!(
        "flood: {} lines logged, {dropped} dropped, {total} bytes, decision took {took:?}",
        flood.len()
    );
}
