//! `nudge faults`: a generated portfolio through every function twice, without faults and with
//! 10% of requests failing (throttling, server errors, timeouts, lost answers) and 10% of
//! invocations crashing; the same messages must leave, and no customer email twice.

use nudge_infra::local::LocalStack;
use nudge_infra::portfolio;
use nudge_infra::resilience::prove;

#[tokio::test]
async fn faults_and_crashes_change_nothing_that_leaves() {
    let stack = LocalStack::ensure_running().unwrap();
    let from = "2026-11-01T00:00:00Z".parse().unwrap();
    let p = portfolio::generate(20261101, 16, from, 21);
    let proof = prove(&stack, &p, 0.1, 7, false).await.unwrap();
    assert!(
        proof.holds(),
        "lost {:?}, extra {:?}, doubled {:?}",
        proof.lost,
        proof.extra,
        proof.doubled
    );
    assert!(
        proof.clean.sent >= 40,
        "a portfolio that sends: {:?}",
        proof.clean
    );
    assert_eq!(proof.clean.sent, proof.faulted.sent);
    // The faults were real: every kind of request failed and invocations crashed.
    let injected = &proof.faulted.faults;
    for kind in [
        "dynamodb: throttled",
        "dynamodb: server error",
        "dynamodb: reset after applying",
        "dynamodb: timeout after applying",
        "invocation crashed",
    ] {
        assert!(
            injected.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {injected:?}"
        );
    }
    assert!(
        injected.keys().any(|k| k.starts_with("ses: ")),
        "sends failed too: {injected:?}"
    );
    assert!(proof.clean.faults.is_empty() && proof.clean.redelivered.is_empty());
}
