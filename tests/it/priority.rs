//! `nudge queue` end to end: a hand-built portfolio through the real ingest handler, the daily
//! health run, then the priority list read back from DynamoDB Local.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use nudge_infra::health_cli;
use nudge_shared::channels::MemoryQueue;
use nudge_shared::health::PriorityReason;
use nudge_tests::{TestEnv, at};
use serde_json::{Value, json};

use crate::health::daily_run;

/// Events of a portfolio whose ranking is known by construction:
/// - `whale` (ARR 200,000): daily use; NPS 8, then 3 with a comment: low NPS;
/// - `drift` (ARR 80,000): daily use; NPS 10, then 7: falling NPS;
/// - `fade` (60,000) and `ember` (30,000): use stopped a month ago: red;
/// - `sprout` (20,000): contract from 11-01, one onboarding step on 11-03, none since: stalled;
/// - `calm` (90,000): daily use, NPS 9: not listed;
/// - `tiny` (3,000, tech touch): daily use, NPS 2: not listed (too little at stake for the
///   NPS group, and not red).
fn portfolio() -> Vec<Value> {
    let mut ev = Vec::new();
    let mut n = 0;
    let mut push = |account: &str, ty: &str, at: DateTime<Utc>, p: Value| {
        n += 1;
        ev.push(
            json!({"event_id": format!("q{n}"), "account_id": account, "type": ty,
                       "contact_id": "u1", "occurred_at": at.to_rfc3339(), "properties": p}),
        );
    };
    let start = at("2026-10-01T01:00:00Z");
    let accounts = [
        ("whale", 200_000, "2025-10-01"),
        ("drift", 80_000, "2025-10-01"),
        ("fade", 60_000, "2025-10-01"),
        ("ember", 30_000, "2025-10-01"),
        ("sprout", 20_000, "2026-11-01"),
        ("calm", 90_000, "2025-10-01"),
        ("tiny", 3_000, "2025-10-01"),
    ];
    for (a, arr, contract_start) in accounts {
        push(
            a,
            "account_upserted",
            start,
            json!({"name": format!("{a} Inc"), "plan": "premium", "industry": "retail",
                   "timezone": "Asia/Tokyo", "locale": "en", "contract_start": contract_start,
                   "renewal_date": "2027-09-30", "renewals": 1, "arr": arr}),
        );
        push(
            a,
            "contact_upserted",
            start,
            json!({"email": format!("u1@{a}.example"), "name": "Ann", "role": "admin"}),
        );
    }
    for d in 0..60 {
        let day = start + Duration::days(d);
        for a in ["whale", "drift", "calm", "tiny", "sprout"] {
            push(a, "login", day, json!({}));
            for f in ["dashboard", "report_builder", "integration", "workflow"] {
                push(a, "feature_used", day, json!({"feature": f}));
            }
        }
        if d < 30 {
            for a in ["fade", "ember"] {
                push(a, "login", day, json!({}));
            }
        }
    }
    push(
        "sprout",
        "setup_step_completed",
        at("2026-11-03T01:00:00Z"),
        json!({"step": "invite_users"}),
    );
    for (a, score, when, comment) in [
        ("whale", 8, "2026-09-01T01:00:00Z", None),
        (
            "whale",
            3,
            "2026-11-20T01:00:00Z",
            Some("Exports keep\nfailing"),
        ),
        ("drift", 10, "2026-10-01T01:00:00Z", None),
        ("drift", 7, "2026-11-25T01:00:00Z", None),
        ("calm", 9, "2026-11-10T01:00:00Z", Some("love it")),
        ("tiny", 2, "2026-11-10T01:00:00Z", Some("too pricey")),
    ] {
        push(
            a,
            "nps_response",
            at(when),
            json!({"score": score, "comment": comment}),
        );
    }
    ev
}

#[tokio::test]
async fn the_queue_ranks_a_portfolio_nps_first_then_red_then_stalled_onboarding() {
    let env = TestEnv::new("priority_queue").await;
    for chunk in portfolio().chunks(200) {
        let body = json!({ "events": chunk }).to_string();
        let (status, out) = env.post_events(&body, at("2026-12-01T00:00:00Z")).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["accepted"].as_u64(), Some(chunk.len() as u64), "{out}");
    }
    let queue = Arc::new(MemoryQueue::default());
    let (deps, _) = env.stack.deps(env.deps().config.clone());
    let deps = deps.with_queue(queue.clone());
    let scored_at = at("2026-11-30T18:00:00Z");
    daily_run(&deps, &queue, scored_at).await;

    let shards = env.deps().config.health_index_shards;
    let now = scored_at + Duration::hours(1);
    let (rows, checked) = health_cli::queue_rows(&env.store, shards, now)
        .await
        .expect("queue");
    assert_eq!(checked, 7);
    let got: Vec<(&str, PriorityReason)> = rows
        .iter()
        .map(|r| (r.account_id.as_str(), r.reason))
        .collect();
    assert_eq!(
        got,
        [
            ("whale", PriorityReason::LowNps),
            ("drift", PriorityReason::FallingNps),
            ("fade", PriorityReason::Red),
            ("ember", PriorityReason::Red),
            ("sprout", PriorityReason::StalledOnboarding),
        ],
        "{rows:#?}"
    );
    assert_eq!(rows[0].detail, "NPS 3 (was 8) · ARR 200,000");
    assert_eq!(
        rows[0].nps_comment.as_deref(),
        Some("Exports keep\nfailing")
    );
    assert!(
        rows[0].score.is_some(),
        "the daily run's score is read back"
    );
    assert!(
        rows[4].detail.starts_with("onboarding 1 of 3 steps"),
        "{}",
        rows[4].detail
    );
    assert!(
        rows[4].next_step.contains("\"import data\""),
        "{}",
        rows[4].next_step
    );

    // The JSON is the same rows; the table puts the comment on its own line.
    let json: Value = serde_json::from_str(
        &health_cli::queue(&env.store, shards, now, true)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(5));
    assert_eq!(json[1]["reason"], "falling_nps");
    let table = health_cli::queue(&env.store, shards, now, false)
        .await
        .unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[1].contains("whale") && lines[1].contains("200,000"),
        "{table}"
    );
    assert_eq!(lines[2].trim(), "\"Exports keep failing\"", "{table}");
    assert!(
        table.contains("5 of 7 account(s) need attention"),
        "{table}"
    );

    // Before the daily run's time there is no score to read: red needs one, NPS does not.
    let (early, _) = health_cli::queue_rows(&env.store, shards, scored_at - Duration::hours(1))
        .await
        .unwrap();
    assert!(
        early
            .iter()
            .all(|r| r.reason != PriorityReason::Red && r.score.is_none())
    );
    assert_eq!(early[0].account_id, "whale");
}

#[tokio::test]
async fn an_empty_portfolio_needs_no_attention() {
    let env = TestEnv::new("priority_queue_empty").await;
    let shards = env.deps().config.health_index_shards;
    let now = at("2026-11-30T18:00:00Z");
    let text = health_cli::queue(&env.store, shards, now, false)
        .await
        .unwrap();
    assert!(text.starts_with("no account needs attention"), "{text}");
    let json = health_cli::queue(&env.store, shards, now, true)
        .await
        .unwrap();
    assert_eq!(json.trim(), "[]");
}
