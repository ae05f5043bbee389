//! The daily health score end to end: events through the real ingest handler, the `health`
//! function's scheduled run and its queue worker (the queue drained in process, as `nudge
//! simulate` does), snapshots in DynamoDB Local, and the operator commands (model, compare,
//! explain, backtest).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use nudge_infra::health_cli;
use nudge_shared::Deps;
use nudge_shared::channels::MemoryQueue;
use nudge_shared::health::service::parse_snapshot;
use nudge_shared::health::{Factor, HealthModel};
use nudge_shared::registry;
use nudge_shared::store::HealthStore;
use nudge_tests::{TestEnv, at};
use serde_json::{Value, json};

fn profile(name: &str, tz: &str, plan: &str, arr: u32) -> Value {
    json!({"name": name, "plan": plan, "industry": "retail", "timezone": tz, "locale": "en",
           "contract_start": "2025-10-01", "renewal_date": "2027-09-30", "renewals": 1,
           "arr": arr})
}

/// Events of three accounts: `acme` (Tokyo, daily use, an NPS detractor, a ticket), `beta`
/// (New York, daily use, no NPS), `gamma` (Tokyo, use stops, churns on 11-25).
fn history() -> Vec<Value> {
    let mut ev = Vec::new();
    let mut n = 0;
    let mut push = |account: &str, contact: Option<&str>, ty: &str, at: DateTime<Utc>, p: Value| {
        n += 1;
        let mut e = json!({"event_id": format!("e{n}"), "account_id": account, "type": ty,
                           "occurred_at": at.to_rfc3339(), "properties": p});
        if let Some(c) = contact {
            e["contact_id"] = json!(c);
        }
        ev.push(e);
    };
    let start = at("2026-10-01T01:00:00Z");
    for (a, tz) in [
        ("acme", "Asia/Tokyo"),
        ("beta", "America/New_York"),
        ("gamma", "Asia/Tokyo"),
    ] {
        push(
            a,
            None,
            "account_upserted",
            start,
            profile(a, tz, "premium", 24000),
        );
        push(
            a,
            Some("u1"),
            "contact_upserted",
            start,
            json!({"email": format!("u1@{a}.example"), "name": "Ann", "role": "admin"}),
        );
    }
    for d in 0..60 {
        let day = start + Duration::days(d);
        push("acme", Some("u1"), "login", day, json!({}));
        push(
            "acme",
            Some("u1"),
            "feature_used",
            day,
            json!({"feature": "dashboard"}),
        );
        push(
            "beta",
            Some("u1"),
            "login",
            day + Duration::hours(14),
            json!({}),
        );
        if d < 30 {
            push("gamma", Some("u1"), "login", day, json!({}));
        }
    }
    push(
        "acme",
        Some("u1"),
        "nps_response",
        at("2026-11-20T01:00:00Z"),
        json!({"score": 3, "comment": "Exports keep failing"}),
    );
    push(
        "acme",
        None,
        "support_ticket_opened",
        at("2026-11-21T01:00:00Z"),
        json!({"ticket_id": "T-1", "severity": "high"}),
    );
    push(
        "gamma",
        None,
        "churned",
        at("2026-11-25T01:00:00Z"),
        json!({}),
    );
    ev
}

async fn ingest_history(env: &TestEnv) {
    for chunk in history().chunks(200) {
        let body = json!({ "events": chunk }).to_string();
        let (status, out) = env.post_events(&body, at("2026-12-01T00:00:00Z")).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["accepted"].as_u64(), Some(chunk.len() as u64), "{out}");
    }
}

/// The health function's scheduled run at `now`, then its queued work, in process.
pub(crate) async fn daily_run(
    deps: &Deps,
    queue: &MemoryQueue,
    now: DateTime<Utc>,
) -> (Value, usize) {
    let health = registry::find("health").expect("health is registered");
    let out = registry::run_scheduled(health, deps, now, "run")
        .await
        .expect("health run");
    let items = registry::drain(deps, queue).await.expect("queued work");
    (out, items)
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("day")
}

#[tokio::test]
async fn the_daily_run_scores_every_account_on_its_local_day_and_explains_it() {
    let env = TestEnv::new("health_daily").await;
    ingest_history(&env).await;
    let queue = Arc::new(MemoryQueue::default());
    let (deps, _) = env.stack.deps(env.deps().config.clone());
    let deps = deps.with_queue(queue.clone());

    // 03:00 on 12-01 in Tokyo = 13:00 on 11-30 in New York.
    let now = at("2026-11-30T18:00:00Z");
    let (out, items) = daily_run(&deps, &queue, now).await;
    let shards = deps.config.health_index_shards;
    assert_eq!(out["run"]["work_items"], shards, "{out}");
    assert_eq!(
        items, shards as usize,
        "one per shard; 3 accounts hand nothing on"
    );

    let acme = env
        .store
        .snapshots("acme", day("2026-12-01"), day("2026-12-01"))
        .await
        .unwrap();
    assert_eq!(acme.len(), 1, "{acme:?}");
    let score = parse_snapshot(&acme[0]).expect("detail parses");
    assert_eq!(
        (acme[0].model_version.as_str(), acme[0].shadow),
        ("default-1", false)
    );
    assert!(!score.provisional, "known for 60 days");
    let nps = score
        .driver(Factor::NpsDetractor)
        .expect("detractor signal");
    assert!(nps.triggered && nps.points < 0.0, "{nps:?}");
    let beta = env
        .store
        .snapshots("beta", day("2026-11-30"), day("2026-11-30"))
        .await
        .unwrap();
    assert_eq!(beta.len(), 1, "New York's local day is still 11-30");
    let beta = parse_snapshot(&beta[0]).unwrap();
    assert!(
        beta.driver(Factor::Nps).is_some_and(|d| d.missing),
        "no NPS is neutral, named missing"
    );
    assert!(
        score.score < beta.score,
        "the detractor and the ticket cost acme: {} vs {}",
        score.score,
        beta.score
    );

    // A re-run of the same day replaces its snapshot instead of adding one.
    daily_run(&deps, &queue, now).await;
    let again = env
        .store
        .snapshots("acme", day("2026-12-01"), day("2026-12-01"))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);

    // The next day, then `nudge explain`.
    daily_run(&deps, &queue, now + Duration::days(1)).await;
    let text = health_cli::explain(&env.store, "acme", Some(day("2026-12-02")), false)
        .await
        .expect("explain");
    assert!(text.contains("nps_detractor"), "{text}");
    assert!(text.contains("since the day before"), "{text}");
    assert!(text.contains("last 2 days"), "{text}");
    let json: Value = serde_json::from_str(
        &health_cli::explain(&env.store, "acme", Some(day("2026-12-02")), true)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["score"]["day"], "2026-12-02");
    let e = health_cli::explain(&env.store, "nobody", Some(day("2026-12-02")), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such account"), "{e}");
}

#[tokio::test]
async fn a_model_is_validated_stored_once_and_run_in_shadow_before_it_is_activated() {
    let env = TestEnv::new("health_model").await;
    ingest_history(&env).await;
    let queue = Arc::new(MemoryQueue::default());
    let (deps, _) = env.stack.deps(env.deps().config.clone());
    let deps = deps.with_queue(queue.clone());
    let dir = std::env::temp_dir().join(format!("nudge-model-{}", env.table));
    std::fs::create_dir_all(&dir).unwrap();

    // Invalid weights are refused with the key path; nothing is stored.
    let mut bad = serde_json::to_value(HealthModel::default()).unwrap();
    bad["version"] = json!("broken-1");
    bad["weights"]["usage"] = json!(1.7);
    let bad_file = dir.join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let e = health_cli::model_set(&env.store, &bad_file, at("2026-12-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("weights.usage"), "{e}");
    assert!(env.store.model_versions().await.unwrap().is_empty());

    // A strict draft: everything under 90 is red.
    let mut strict = serde_json::to_value(HealthModel::default()).unwrap();
    strict["version"] = json!("strict-2");
    strict["bands"]["red_below"] = json!(90);
    strict["bands"]["green_from"] = json!(95);
    let file = dir.join("strict.json");
    std::fs::write(&file, strict.to_string()).unwrap();
    health_cli::model_set(&env.store, &file, at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    let again = health_cli::model_set(&env.store, &file, at("2026-12-01T00:00:00Z")).await;
    assert!(again.unwrap_err().to_string().contains("already stored"));

    health_cli::model_activate(&env.store, "strict-2", true)
        .await
        .unwrap();
    daily_run(&deps, &queue, at("2026-11-30T18:00:00Z")).await;
    let snaps = env
        .store
        .snapshots("acme", day("2026-12-01"), day("2026-12-01"))
        .await
        .unwrap();
    let shadow = snaps.iter().find(|s| s.shadow).expect("shadow snapshot");
    assert_eq!(
        (shadow.model_version.as_str(), shadow.band.as_str()),
        ("strict-2", "red")
    );
    let active = snaps.iter().find(|s| !s.shadow).expect("active snapshot");
    assert_eq!(active.model_version, "default-1");
    let accounts = vec!["acme".to_string(), "beta".to_string(), "gamma".to_string()];
    let compare = health_cli::model_compare(&env.store, &accounts, day("2026-12-01"))
        .await
        .unwrap();
    assert!(
        compare.contains("acme") && compare.contains("moves"),
        "{compare}"
    );

    health_cli::model_activate(&env.store, "strict-2", false)
        .await
        .unwrap();
    let shown = health_cli::model_show(&env.store, None).await.unwrap();
    assert!(shown.contains("\"showing\": \"strict-2\""), "{shown}");
    let e = health_cli::model_activate(&env.store, "nope-9", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not stored"), "{e}");
}

#[tokio::test]
async fn backtest_replays_raw_events_and_measures_red_against_churn() {
    let env = TestEnv::new("health_backtest").await;
    ingest_history(&env).await;
    let shards = env.deps().config.health_index_shards;
    let models = health_cli::backtest_models(&env.store, &[]).await.unwrap();
    assert_eq!(models[0].version, "default-1");
    let (text, json) = health_cli::model_backtest(
        &env.store,
        &models,
        shards,
        day("2026-10-15"),
        day("2026-11-30"),
        90,
    )
    .await
    .unwrap();
    let r = &json[0]["report"];
    assert_eq!(r["accounts"], 3, "{text}");
    assert_eq!(r["churned"], 1, "{text}");
    // gamma stopped logging in on 10-30 and churned on 11-25: red before it, with lead time.
    assert_eq!(r["caught"], 1, "{text}");
    assert!(
        r["median_lead_days"].as_f64().is_some_and(|d| d > 0.0),
        "{text}"
    );
    assert!(text.contains("precision"), "{text}");
}
