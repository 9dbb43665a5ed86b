//! Policies that block in a host call (WASI `pollable.block` or `poll` on a
//! 10 s clock subscription): the time passes in the host, where epoch
//! interruption cannot reach, so only the async call's timeout ends it.
//! They must fail closed at the deadline, leave the next decision working,
//! and never hold up a concurrent decision.

mod support;

use std::time::{Duration, Instant};

use qserve_runtime::{
    DecisionSource, FileAccess, PermissionAnswer, Policy, PolicyOptions, ToolKind,
};
use support::{call, ctx, offered, path};

const DEADLINE: Duration = Duration::from_millis(50);
/// Deadline plus a margin any loaded machine meets; far below the guest's 10 s.
const FAULT_BOUND: Duration = Duration::from_secs(2);

async fn blocker(name: &str, call_deadline: Duration) -> Policy {
    support::policy_with(
        name,
        PolicyOptions {
            call_deadline,
            ..PolicyOptions::default()
        },
    )
    .await
}

/// Three rounds: each blocking decision fails closed at the deadline, on a
/// fresh instance (the previous one was dropped); then the paths that do
/// not block answer normally.
async fn blocking_fails_closed_and_the_next_decision_works(name: &str) {
    let policy = blocker(name, DEADLINE).await;
    for round in 1..=3u64 {
        let started = Instant::now();
        let decision = policy
            .decide_permission(&ctx("/w"), &call(ToolKind::Read), &offered())
            .await;
        let took = started.elapsed();
        assert_eq!(
            decision.answer,
            PermissionAnswer::Cancelled,
            "{name} round {round}"
        );
        assert_eq!(decision.source(), DecisionSource::Fault);
        let cause = decision.fault.unwrap();
        assert_eq!(
            cause, "exceeded its 50 ms deadline while waiting in a host call",
            "{name}"
        );
        assert!(took < FAULT_BOUND, "{name} round {round} took {took:?}");
        assert!(took >= DEADLINE, "{name} round {round} took {took:?}");
        assert_eq!(policy.health().faults, round);
        assert_eq!(policy.instances(), 0, "the blocked instance was dropped");
    }

    // A session create in a workspace without `block`, on a fresh instance.
    let session = policy.decide_session(&ctx("/w")).await;
    assert!(session.allow, "{session:?}");
    assert_eq!(session.source(), DecisionSource::Policy);
    assert_eq!(policy.instances(), 1);

    // The other two decisions block on demand, and fail closed too.
    let started = Instant::now();
    let session = policy.decide_session(&ctx("/w/block")).await;
    assert!(!session.allow && session.fault.is_some(), "{session:?}");
    let file = policy
        .decide_file(&ctx("/w"), FileAccess::Read, &path("/w/block/x"))
        .await;
    assert!(!file.allow && file.fault.is_some(), "{file:?}");
    assert!(
        started.elapsed() < 2 * FAULT_BOUND,
        "{:?}",
        started.elapsed()
    );
    assert!(
        policy
            .decide_file(&ctx("/w"), FileAccess::Read, &path("/w/fine"))
            .await
            .allow
    );
    let health = policy.health();
    assert_eq!((health.faults, health.in_flight, health.stuck), (5, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_sleeping_in_a_host_call_fails_closed_at_its_deadline() {
    blocking_fails_closed_and_the_next_decision_works("policy-hostile-sleep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_blocked_in_poll_fails_closed_at_its_deadline() {
    blocking_fails_closed_and_the_next_decision_works("policy-hostile-poll").await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocked_host_call_does_not_block_the_thread() {
    // On a single-threaded runtime, the timer that ends the wait runs on the
    // same thread as the blocked call: this only finishes if the wait is a
    // pending future, not a blocked thread.
    let policy = blocker("policy-hostile-sleep", DEADLINE).await;
    let started = Instant::now();
    let decision = policy
        .decide_permission(&ctx("/w"), &call(ToolKind::Read), &offered())
        .await;
    assert_eq!(decision.answer, PermissionAnswer::Cancelled);
    assert!(started.elapsed() < FAULT_BOUND, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_one_decision_is_blocked_another_completes() {
    // A long deadline, so the first decision is still blocked when the
    // second one runs.
    let deadline = Duration::from_secs(3);
    let policy = blocker("policy-hostile-sleep", deadline).await;
    let stuck = tokio::spawn({
        let policy = policy.clone();
        async move { policy.decide_session(&ctx("/w/block")).await }
    });
    // Wait until it is running (the condition, not a guess at a duration).
    let waiting_since = Instant::now();
    while policy.health().in_flight == 0 {
        assert!(
            waiting_since.elapsed() < deadline,
            "the blocking call never started"
        );
        tokio::task::yield_now().await;
    }

    let started = Instant::now();
    let other = policy.decide_session(&ctx("/w")).await;
    assert!(other.allow, "{other:?}");
    assert!(
        !stuck.is_finished(),
        "the blocking decision is still waiting: the other one did not wait for it"
    );
    assert!(started.elapsed() < deadline);
    let health = policy.health();
    assert_eq!(health.in_flight, 1);
    assert_eq!(health.stuck, 0, "not past its deadline");
    assert_eq!(policy.instances(), 2);

    let blocked = stuck.await.unwrap();
    assert!(!blocked.allow);
    assert_eq!(
        blocked.fault.as_deref(),
        Some("exceeded its 3000 ms deadline while waiting in a host call")
    );
    assert!(blocked.latency >= deadline && blocked.latency < deadline + FAULT_BOUND);
    assert_eq!(policy.health().in_flight, 0);
    assert_eq!(
        policy.instances(),
        1,
        "the good instance was kept, the blocked one dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_beyond_max_instances_wait_then_fail_closed_without_new_instances() {
    let policy = support::policy_with(
        "policy-hostile-sleep",
        PolicyOptions {
            call_deadline: Duration::from_millis(300),
            max_instances: 2,
            ..PolicyOptions::default()
        },
    )
    .await;
    let decisions: Vec<_> = (0..4)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move { policy.decide_session(&ctx("/w/block")).await })
        })
        .collect();
    let mut most = 0;
    while decisions.iter().any(|d| !d.is_finished()) {
        most = most.max(policy.instances());
        tokio::task::yield_now().await;
    }
    assert!(most <= 2, "{most} instances at once");
    for decision in decisions {
        let decision = decision.await.unwrap();
        assert!(!decision.allow && decision.fault.is_some(), "{decision:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_its_caller_abandons_leaves_nothing_behind() {
    let policy = blocker("policy-hostile-sleep", Duration::from_secs(5)).await;
    // The caller gives up (a client hung up, the daemon is shutting down):
    // the decision's future is dropped mid-call.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        policy.decide_session(&ctx("/w/block")),
    )
    .await;
    assert!(abandoned.is_err(), "still blocked when abandoned");
    let health = policy.health();
    assert_eq!((health.in_flight, health.faults), (0, 0), "{health:?}");
    assert_eq!(
        policy.instances(),
        0,
        "the blocked instance went with the call"
    );
    assert!(policy.decide_session(&ctx("/w")).await.allow);
}
