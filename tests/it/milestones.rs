//! Milestones end to end: events through the real ingest handler, the `milestones` function's
//! hourly run and the sweep, and what moto received.

use chrono::{DateTime, Duration, Utc};
use nudge_shared::registry;
use nudge_tests::mail;
use nudge_tests::{TestEnv, at, sweep};
use serde_json::{Value, json};

async fn post(env: &TestEnv, when: &str, events: Vec<Value>) {
    let (status, out) = env
        .post_events(&json!({ "events": events }).to_string(), at(when))
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["retry"].as_array().is_some_and(|r| r.is_empty()),
        "{out}"
    );
}

fn event(id: &str, ty: &str, contact: Option<&str>, when: &str, props: Value) -> Value {
    let mut e = json!({"event_id": id, "account_id": "acct", "type": ty, "occurred_at": when,
                       "properties": props});
    if let Some(c) = contact {
        e["contact_id"] = json!(c);
    }
    e
}

/// The hourly run and the sweep every 15 minutes in `[from, to)`.
async fn run(env: &TestEnv, from: DateTime<Utc>, to: DateTime<Utc>) {
    let milestones = registry::find("milestones").unwrap();
    let mut t = from;
    while t < to {
        if t.timestamp() % 3600 == 0 {
            registry::run_scheduled(milestones, env.deps(), t, "hourly")
                .await
                .unwrap();
        }
        sweep(env.deps(), t, "sweep").await.unwrap();
        t += Duration::minutes(15);
    }
}

#[tokio::test]
async fn a_new_customer_gets_a_welcome_with_a_done_link_and_one_congratulation() {
    let env = TestEnv::new("milestones_journey").await;
    let admin = format!("adm-{}@acct.example", env.table);
    let user = format!("u1-{}@acct.example", env.table);
    let t0 = "2026-12-01T00:30:00Z";
    post(
        &env,
        t0,
        vec![
            event(
                "a1",
                "account_upserted",
                None,
                t0,
                json!({"name": "Acct", "plan": "standard",
            "industry": "retail", "timezone": "Asia/Tokyo", "locale": "ja",
            "contract_start": "2026-12-01", "renewal_date": "2027-11-30", "renewals": 0,
            "arr": 6000}),
            ),
            event(
                "c1",
                "contact_upserted",
                Some("adm"),
                t0,
                json!({"email": admin, "name": "管理者", "role": "admin"}),
            ),
            event(
                "c2",
                "contact_upserted",
                Some("u1"),
                t0,
                json!({"email": user, "name": "User", "role": "user", "locale": "en"}),
            ),
        ],
    )
    .await;
    run(&env, at("2026-12-01T01:00:00Z"), at("2026-12-01T03:00:00Z")).await;
    let welcome = env.raw_to(&admin).await;
    assert_eq!(welcome.len(), 1, "one welcome");
    let text = mail::part(&welcome[0], "text/plain");
    assert!(
        text.contains("/steps/done?t="),
        "the one-click done link: {text}"
    );
    assert!(
        text.contains("メンバーの招待"),
        "the first step, in Japanese: {text}"
    );

    // Two key features first used in one batch; the same batch resent.
    let t1 = "2026-12-02T01:00:00Z";
    let uses = vec![
        event(
            "f1",
            "feature_used",
            Some("u1"),
            t1,
            json!({"feature": "dashboard"}),
        ),
        event(
            "f2",
            "feature_used",
            Some("u1"),
            t1,
            json!({"feature": "report_builder"}),
        ),
    ];
    post(&env, t1, uses.clone()).await;
    post(&env, t1, uses).await;
    run(&env, at(t1), at("2026-12-02T02:00:00Z")).await;
    let congrats = env.raw_to(&user).await;
    assert_eq!(congrats.len(), 1, "one message for both features, once");
    let subject = mail::subject(&congrats[0]);
    assert!(!subject.is_empty());
    let log = env.deps().store.delivery_log("acct").await.unwrap();
    let milestone: Vec<String> = log
        .iter()
        .filter(|e| e.kind == nudge_shared::domain::NudgeKind::Milestone)
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(milestone.len(), 1);
    assert!(
        milestone[0].contains(r#""kind":"milestone","stage":"first_feature_use""#),
        "{}",
        milestone[0]
    );
}
