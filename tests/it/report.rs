//! `nudge demo` end to end on a small portfolio: every function, SES feedback, the report
//! opened in headless Chromium (no console error, nothing fetched from the network).

use nudge_infra::demo::{DemoOptions, run};
use nudge_infra::local::{LocalStack, repo_root};

fn options(dir: &std::path::Path) -> DemoOptions {
    DemoOptions {
        seed: 7,
        accounts: 12,
        from: "2026-11-01T00:00:00Z".parse().unwrap(),
        days: 10,
        out_dir: dir.to_path_buf(),
    }
}

#[tokio::test]
async fn the_demo_report_loads_in_chromium_without_errors_and_the_log_is_reproducible() {
    let stack = LocalStack::ensure_running().unwrap();
    let dir = std::env::temp_dir().join(format!("nudge-demo-{}", std::process::id()));
    let a = run(&stack, &options(&dir.join("a"))).await.unwrap();
    let b = run(&stack, &options(&dir.join("b"))).await.unwrap();
    // SES feedback (deliveries, opens, clicks) went through ingest and decided follow-ups, and
    // still the same seed gives the same delivery log, byte for byte.
    assert!(
        a.data.sim.feedback.get("Delivery").copied().unwrap_or(0) > 0,
        "{:?}",
        a.data.sim.feedback
    );
    // ... and ingest applied it: deliveries and opens are counted per kind.
    let delivered: u64 = a.data.engagement.iter().map(|r| r.2).sum();
    let opened: u64 = a.data.engagement.iter().map(|r| r.3).sum();
    assert!(delivered > 0 && opened > 0, "{:?}", a.data.engagement);
    assert!(!a.data.sim.deliveries.is_empty());
    assert_eq!(
        std::fs::read(&a.deliveries).unwrap(),
        std::fs::read(&b.deliveries).unwrap()
    );
    let kinds: std::collections::BTreeSet<String> = a
        .data
        .sim
        .deliveries
        .iter()
        .map(|d| d.kind.to_string())
        .collect();
    assert!(
        kinds.contains("onboarding_welcome") && kinds.contains("milestone"),
        "{kinds:?}"
    );

    let shot = dir.join("report.png");
    let out = std::process::Command::new("node")
        .arg(repo_root().join("infra/report-check.mjs"))
        .arg(&a.report)
        .arg(&shot)
        .output()
        .expect("node runs (Node.js comes with the machine)");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success(),
        "report check failed: {seen} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen["accounts"], 12, "{seen}");
    assert_eq!(seen["tiles"], 8, "{seen}");
    assert!(seen["charts"].as_u64().unwrap_or(0) >= 13, "{seen}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}
