//! Health playbooks end to end: events through the real ingest handler, the daily run with its
//! queue drained in process, the sweep, and what moto received (SNS to the CSM topic, raw MIME
//! to the admin).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use nudge_shared::channels::MemoryQueue;
use nudge_shared::health::HealthModel;
use nudge_shared::registry;
use nudge_shared::store::{HealthPulse, HealthStore, ModelSelection};
use nudge_tests::mail;
use nudge_tests::{TestEnv, at, sweep};
use serde_json::json;

/// An account Nudge has known for 60 days, tech touch, with a CSM and an admin.
async fn onboard(env: &TestEnv, name: &str, admin_email: &str) {
    let t = at("2026-10-01T01:00:00Z");
    let events = json!({ "events": [
        {"event_id": "a1", "account_id": "acct", "type": "account_upserted",
         "occurred_at": t.to_rfc3339(),
         "properties": {"name": name, "plan": "standard", "industry": "retail",
                        "timezone": "Asia/Tokyo", "locale": "en", "tier": "tech_touch",
                        "contract_start": "2025-10-01", "renewal_date": "2027-09-30",
                        "renewals": 1, "arr": 6000,
                        "csm": {"name": "Sato Hanako", "email": "sato@vendor.example"}}},
        {"event_id": "c1", "account_id": "acct", "contact_id": "adm", "type": "contact_upserted",
         "occurred_at": t.to_rfc3339(),
         "properties": {"email": admin_email, "name": "Ann", "role": "admin"}},
        {"event_id": "ad1", "account_id": "acct", "contact_id": "adm", "type": "admin_changed",
         "occurred_at": t.to_rfc3339(), "properties": {}},
    ]});
    let (status, out) = env.post_events(&events.to_string(), t).await;
    assert_eq!((status, out["accepted"].as_u64()), (200, Some(3)), "{out}");
}

/// Every score red: the band decides the play, not the inputs.
async fn all_red(env: &TestEnv) {
    let mut m = HealthModel {
        version: "all-red".into(),
        ..HealthModel::default()
    };
    m.bands.red_below = 99.0;
    m.bands.green_from = 100.0;
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        env.store
            .put_model(&m.version, &json, at("2026-11-01T00:00:00Z"))
            .await
            .unwrap()
    );
    env.store
        .select_models(&ModelSelection {
            active: Some(m.version.clone()),
            shadow: None,
        })
        .await
        .unwrap();
}

/// SNS notifications moto received on the test's CSM topic that name `account`.
async fn csm_alerts(env: &TestEnv, account: &str) -> Vec<String> {
    let data = env.stack.moto_data().await.unwrap();
    let mut out = Vec::new();
    for topic in data["sns"]["Topic"].as_array().cloned().unwrap_or_default() {
        if topic["arn"].as_str() != Some(env.topic_arn.as_str()) {
            continue;
        }
        for n in topic["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let msg = format!(
                "{} {}",
                n[2].as_str().unwrap_or_default(),
                n[1].as_str().unwrap_or_default()
            );
            if msg.contains(account) {
                out.push(msg);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_red_account_alerts_the_csm_once_and_its_admin_email_replies_to_the_csm() {
    let env = TestEnv::new("playbook_red").await;
    let name = format!("Redwood {}", env.table);
    let admin = format!("ann-{}@redwood.example", env.table);
    onboard(&env, &name, &admin).await;
    all_red(&env).await;
    let queue = Arc::new(MemoryQueue::default());
    let (deps, _) = env.stack.deps(env.deps().config.clone());
    let deps = deps.with_queue(queue.clone());
    let health = registry::find("health").unwrap();
    let daily = |now: DateTime<Utc>| {
        let (deps, queue) = (&deps, &queue);
        async move {
            registry::run_scheduled(health, deps, now, "daily")
                .await
                .unwrap();
            registry::drain(deps, queue).await.unwrap();
            sweep(deps, now + Duration::minutes(15), "sweep")
                .await
                .unwrap();
        }
    };
    let now = at("2026-12-01T18:00:00Z");
    daily(now).await;
    let alerts = csm_alerts(&env, &name).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("red"), "{}", alerts[0]);

    // The shard crashed after sending, before its state was written; then a second retry.
    env.store
        .put_pulse("acct", &HealthPulse::default())
        .await
        .unwrap();
    daily(now).await;
    daily(now).await;
    // 09:15 in Tokyo: the gentle email, signed by the CSM, replies to the CSM.
    sweep(&deps, at("2026-12-02T00:15:00Z"), "morning")
        .await
        .unwrap();
    // Still red tomorrow.
    daily(now + Duration::days(1)).await;
    assert_eq!(
        csm_alerts(&env, &name).await.len(),
        1,
        "once per transition"
    );

    let mails = env.raw_to(&admin).await;
    assert_eq!(mails.len(), 1);
    let reply_to = mail::unfolded_header(&mails[0], "Reply-To").expect("a Reply-To");
    assert!(reply_to.contains("sato@vendor.example"), "{reply_to}");
    let text = mail::part(&mails[0], "text/plain");
    assert!(text.contains("Sato Hanako"), "{text}");
}
