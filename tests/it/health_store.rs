//! The `HealthStore` adapter against DynamoDB Local: account index, satisfaction item,
//! snapshots and models, and what one account's daily health read and write cost.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use nudge_shared::events::{AccountProfile, Locale, Severity};
use nudge_shared::health::{self, DayUsage, HealthInputs, HealthModel, NpsResponse, Ticket};
use nudge_shared::store::schema;
use nudge_shared::store::{
    EventStore, HealthSnapshot, HealthStore, ModelSelection, NpsAnswer, ProfileStore, RollupDelta,
    TicketChange, TicketState,
};
use nudge_tests::{TestEnv, at};

const SHARDS: u32 = 8;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// The raw item at (pk, sk), as the table holds it.
async fn raw_item(env: &TestEnv, pk: &str, sk: &str) -> BTreeMap<String, AttributeValue> {
    env.stack
        .dynamodb()
        .get_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn profile() -> AccountProfile {
    AccountProfile {
        name: "Acme".into(),
        plan: "pro".into(),
        industry: "logistics".into(),
        tier: None,
        csm: None,
        timezone: chrono_tz::America::New_York,
        locale: Locale::En,
        contract_start: day("2025-01-01"),
        renewal_date: day("2027-01-01"),
        renewals: 1,
        arr: 24000.0,
    }
}

#[tokio::test]
async fn accounts_are_indexed_by_shard_and_keep_their_first_seen() {
    let env = TestEnv::new("health_index").await;
    let store = &env.store;
    // Two accounts that the hash puts in different shards.
    let a = "acct-a";
    let b = (0..)
        .map(|i| format!("acct-{i}"))
        .find(|b| schema::account_index_shard(b, SHARDS) != schema::account_index_shard(a, SHARDS))
        .expect("another shard");
    store
        .index_account(a, at("2026-11-01T09:00:00Z"), SHARDS)
        .await
        .unwrap();
    store
        .index_account(&b, at("2026-11-02T09:00:00Z"), SHARDS)
        .await
        .unwrap();
    // A later upsert (or a replay with an earlier time) never moves first_seen.
    store
        .index_account(a, at("2026-11-05T09:00:00Z"), SHARDS)
        .await
        .unwrap();
    store
        .index_account(a, at("2026-10-01T09:00:00Z"), SHARDS)
        .await
        .unwrap();

    let mut listed = Vec::new();
    for shard in 0..SHARDS {
        for acct in store.indexed_accounts(shard, SHARDS).await.unwrap() {
            listed.push((shard, acct.account_id, acct.first_seen));
        }
    }
    listed.sort();
    let mut want = vec![
        (
            schema::account_index_shard(a, SHARDS),
            a.to_string(),
            at("2026-11-01T09:00:00Z"),
        ),
        (
            schema::account_index_shard(&b, SHARDS),
            b.clone(),
            at("2026-11-02T09:00:00Z"),
        ),
    ];
    want.sort();
    assert_eq!(listed, want);

    let item = raw_item(&env, &schema::account_index_pk(a, SHARDS), "ACCT#acct-a").await;
    assert_eq!(item["account_id"], AttributeValue::S("acct-a".into()));
    assert_eq!(
        item["first_seen"],
        AttributeValue::S("2026-11-01T09:00:00.000Z".into())
    );
    assert!(store.indexed_accounts(SHARDS, SHARDS).await.is_err());
}

async fn tickets(env: &TestEnv) -> Vec<TicketState> {
    env.store
        .health_record("acme", day("2026-11-01"), day("2026-11-30"))
        .await
        .unwrap()
        .satisfaction
        .tickets
}

#[tokio::test]
async fn tickets_open_and_close_in_either_order_and_replays_change_nothing() {
    let env = TestEnv::new("health_tickets").await;
    let store = &env.store;
    let opened = TicketChange::Opened {
        severity: Severity::High,
    };
    let closed = TicketChange::Closed { severity: None };
    // T-1 in order, each event twice.
    for _ in 0..2 {
        store
            .record_ticket("acme", "T-1", &opened, at("2026-11-10T09:00:00Z"))
            .await
            .unwrap();
        store
            .record_ticket("acme", "T-1", &closed, at("2026-11-11T09:00:00Z"))
            .await
            .unwrap();
    }
    // T-2 closed before its open arrives (with the severity the close carried).
    store
        .record_ticket(
            "acme",
            "T-2",
            &TicketChange::Closed {
                severity: Some(Severity::Low),
            },
            at("2026-11-13T09:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        tickets(&env).await.len(),
        1,
        "a close without its open is not read yet"
    );
    store
        .record_ticket(
            "acme",
            "T-2",
            &TicketChange::Opened {
                severity: Severity::Urgent,
            },
            at("2026-11-12T09:00:00Z"),
        )
        .await
        .unwrap();
    // T-3 open; a second open (a replay with another time) keeps the first opened_at.
    store
        .record_ticket("acme", "T-3", &opened, at("2026-11-14T09:00:00Z"))
        .await
        .unwrap();
    store
        .record_ticket("acme", "T-3", &opened, at("2026-11-15T09:00:00Z"))
        .await
        .unwrap();

    assert_eq!(
        tickets(&env).await,
        vec![
            TicketState {
                ticket_id: "T-1".into(),
                severity: Severity::High,
                opened_at: at("2026-11-10T09:00:00Z"),
                closed_at: Some(at("2026-11-11T09:00:00Z")),
            },
            TicketState {
                ticket_id: "T-2".into(),
                severity: Severity::Urgent,
                opened_at: at("2026-11-12T09:00:00Z"),
                closed_at: Some(at("2026-11-13T09:00:00Z")),
            },
            TicketState {
                ticket_id: "T-3".into(),
                severity: Severity::High,
                opened_at: at("2026-11-14T09:00:00Z"),
                closed_at: None,
            },
        ]
    );
    let item = raw_item(&env, "ACCT#acme", "SAT").await;
    let names: BTreeSet<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["pk", "sk", "to_T-1", "tc_T-1", "to_T-2", "tc_T-2", "to_T-3"])
    );
    let close = item["tc_T-2"].as_m().unwrap();
    assert_eq!(close["severity"], AttributeValue::S("low".into()));
}

#[tokio::test]
async fn nps_answers_read_newest_first_and_a_replay_adds_nothing() {
    let env = TestEnv::new("health_nps").await;
    let store = &env.store;
    for d in 1..=12u32 {
        let answer = NpsAnswer {
            score: (d % 11) as u8,
            at: at("2026-11-01T09:00:00Z") + Duration::days(i64::from(d)),
            comment: (d == 12).then(|| "遅い".repeat(400)),
        };
        store
            .record_nps("acme", &format!("e{d}"), &answer)
            .await
            .unwrap();
    }
    // A replay of e12 with other content (it cannot differ in practice) changes nothing.
    store
        .record_nps(
            "acme",
            "e12",
            &NpsAnswer {
                score: 0,
                at: at("2026-11-30T09:00:00Z"),
                comment: None,
            },
        )
        .await
        .unwrap();
    let nps = store
        .health_record("acme", day("2026-11-01"), day("2026-11-30"))
        .await
        .unwrap()
        .satisfaction
        .nps;
    let seen: Vec<(u8, DateTime<Utc>)> = nps.iter().map(|a| (a.score, a.at)).collect();
    let want: Vec<(u8, DateTime<Utc>)> = (3..=12u32)
        .rev()
        .map(|d| {
            (
                (d % 11) as u8,
                at("2026-11-01T09:00:00Z") + Duration::days(i64::from(d)),
            )
        })
        .collect();
    assert_eq!(seen, want);
    assert_eq!(
        nps[0].comment.as_ref().map(|c| c.chars().count()),
        Some(nudge_shared::store::health::NPS_COMMENT_CHARS)
    );
    let item = raw_item(&env, "ACCT#acme", "SAT").await;
    assert_eq!(
        item.keys().filter(|k| k.starts_with("n_")).count(),
        12,
        "every answer is kept; the read takes the newest 10"
    );
}

fn snapshot(d: &str, version: &str, shadow: bool, score: u8) -> HealthSnapshot {
    HealthSnapshot {
        account_id: "acme".into(),
        day: day(d),
        model_version: version.into(),
        shadow,
        score,
        band: if score >= 70 { "green" } else { "yellow" }.into(),
        provisional: false,
        detail: format!(r#"{{"score":{score}}}"#),
    }
}

#[tokio::test]
async fn snapshots_round_trip_oldest_first_and_a_rerun_overwrites_the_day() {
    let env = TestEnv::new("health_snapshots").await;
    let store = &env.store;
    let expires = at("2027-11-20T00:00:00Z").timestamp();
    for s in [
        snapshot("2026-11-19", "v1", false, 60),
        snapshot("2026-11-20", "v1", false, 61),
        snapshot("2026-11-20", "v2", true, 75),
        snapshot("2026-11-21", "v1", false, 62),
    ] {
        store.put_snapshot(&s, expires).await.unwrap();
    }
    // The day is scored again (a re-run): the same key, the new score.
    store
        .put_snapshot(&snapshot("2026-11-20", "v1", false, 65), expires)
        .await
        .unwrap();

    let got = store
        .snapshots("acme", day("2026-11-20"), day("2026-11-21"))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            snapshot("2026-11-20", "v1", false, 65),
            snapshot("2026-11-20", "v2", true, 75),
            snapshot("2026-11-21", "v1", false, 62),
        ]
    );
    let item = raw_item(&env, "ACCT#acme", "HEALTH#2026-11-20#v2").await;
    assert_eq!(item["shadow"], AttributeValue::Bool(true));
    assert_eq!(item["ttl"], AttributeValue::N(expires.to_string()));
}

#[tokio::test]
async fn model_versions_are_immutable_and_the_selection_round_trips() {
    let env = TestEnv::new("health_models").await;
    let store = &env.store;
    assert_eq!(
        store.model_selection().await.unwrap(),
        ModelSelection::default()
    );
    let t = at("2026-11-20T09:00:00Z");
    assert!(
        store
            .put_model("v1", r#"{"version":"v1"}"#, t)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_model("v1", r#"{"version":"v1","changed":true}"#, t)
            .await
            .unwrap(),
        "a second put of a version is refused"
    );
    assert!(
        store
            .put_model("v2", r#"{"version":"v2"}"#, t)
            .await
            .unwrap()
    );
    assert_eq!(
        store.model("v1").await.unwrap().as_deref(),
        Some(r#"{"version":"v1"}"#)
    );
    assert_eq!(store.model("v3").await.unwrap(), None);
    assert_eq!(store.model_versions().await.unwrap(), vec!["v1", "v2"]);

    let selection = ModelSelection {
        active: Some("v1".into()),
        shadow: Some("v2".into()),
    };
    store.select_models(&selection).await.unwrap();
    assert_eq!(store.model_selection().await.unwrap(), selection);
    // Back to the built-in default: nothing selected, no stale names left behind.
    store
        .select_models(&ModelSelection::default())
        .await
        .unwrap();
    assert_eq!(
        store.model_selection().await.unwrap(),
        ModelSelection::default()
    );
    let item = raw_item(&env, "SYS", "MODELS").await;
    assert!(!item.contains_key("active") && !item.contains_key("shadow"));
}

/// 30 local days of a busy account: 12 contacts, four features, reports most days.
fn busy_day(i: u32) -> RollupDelta {
    let features: BTreeMap<String, u64> =
        ["report_builder", "dashboard", "integration", "workflow"]
            .iter()
            .enumerate()
            .map(|(k, f)| (f.to_string(), u64::from(i) % 7 + k as u64 + 1))
            .collect();
    let contacts: BTreeSet<String> = (0..12).map(|c| format!("u-{c:03}")).collect();
    RollupDelta {
        events: 40,
        logins: 20,
        reports: u64::from(i % 3),
        features,
        contacts,
        ..RollupDelta::default()
    }
}

#[tokio::test]
async fn health_record_reads_profile_days_firsts_and_satisfaction_and_prints_its_cost() {
    let env = TestEnv::new("health_record").await;
    let store = &env.store;
    let now = at("2026-11-30T17:00:00Z");
    let (from, to) = (day("2026-10-31"), day("2026-11-29"));
    store
        .upsert_account("acme", &profile(), at("2026-10-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .index_account("acme", at("2026-10-01T00:00:00Z"), SHARDS)
        .await
        .unwrap();
    for i in 0..30u32 {
        store
            .add_rollup("acme", from + Duration::days(i64::from(i)), &busy_day(i))
            .await
            .unwrap();
    }
    // A day outside the window is not read.
    store
        .add_rollup("acme", day("2026-10-30"), &busy_day(0))
        .await
        .unwrap();
    let firsts = BTreeMap::from([
        ("login".to_string(), at("2026-10-02T09:00:00Z")),
        ("report".to_string(), at("2026-10-03T09:00:00Z")),
        ("step_import_data".to_string(), at("2026-10-02T10:00:00Z")),
    ]);
    store.record_firsts("acme", &firsts).await.unwrap();
    for (id, sev, opened) in [
        ("T-1", Severity::High, "2026-11-20T09:00:00Z"),
        ("T-2", Severity::Low, "2026-11-25T09:00:00Z"),
    ] {
        store
            .record_ticket(
                "acme",
                id,
                &TicketChange::Opened { severity: sev },
                at(opened),
            )
            .await
            .unwrap();
    }
    store
        .record_ticket(
            "acme",
            "T-1",
            &TicketChange::Closed { severity: None },
            at("2026-11-21T09:00:00Z"),
        )
        .await
        .unwrap();
    for (i, score) in [9u8, 8, 6].into_iter().enumerate() {
        let answer = NpsAnswer {
            score,
            at: at("2026-09-01T09:00:00Z") + Duration::days(30 * i as i64),
            comment: Some("Reports are slow on Mondays.".into()),
        };
        store
            .record_nps("acme", &format!("nps-{i}"), &answer)
            .await
            .unwrap();
    }

    let meter = env.store.meter();
    let before = meter.snapshot();
    let record = store.health_record("acme", from, to).await.unwrap();
    let read = meter.snapshot();

    let account = record.account.as_ref().expect("profile");
    assert_eq!(account.profile.as_ref(), Some(&profile()));
    assert_eq!(record.days.len(), 30);
    assert_eq!(record.days.first().map(|d| d.day), Some(from));
    assert_eq!(record.days.last().map(|d| d.day), Some(to));
    assert_eq!(record.days[5].features.len(), 4);
    assert_eq!(record.firsts, firsts);
    assert_eq!(record.satisfaction.tickets.len(), 2);
    assert_eq!(
        record
            .satisfaction
            .nps
            .iter()
            .map(|a| a.score)
            .collect::<Vec<_>>(),
        vec![6, 8, 9]
    );

    // The score the daily run would keep, from what was read.
    let usage: Vec<DayUsage> = record
        .days
        .iter()
        .map(|d| DayUsage {
            day: d.day,
            logins: d.logins,
            reports: d.reports,
            features: d.features.clone(),
            active_contacts: d.active_contacts.clone(),
        })
        .collect();
    let ticket = |t: &TicketState| Ticket {
        id: t.ticket_id.clone(),
        severity: t.severity,
        opened_at: t.opened_at,
    };
    let open: Vec<Ticket> = record
        .satisfaction
        .tickets
        .iter()
        .filter(|t| t.closed_at.is_none())
        .map(ticket)
        .collect();
    let recent: Vec<Ticket> = record.satisfaction.tickets.iter().map(ticket).collect();
    let nps: Vec<NpsResponse> = record
        .satisfaction
        .nps
        .iter()
        .map(|a| NpsResponse {
            score: a.score,
            at: a.at,
            comment: a.comment.clone(),
        })
        .collect();
    let model = HealthModel::default();
    let score = health::score(
        &model,
        &HealthInputs {
            profile: &profile(),
            first_seen: at("2026-10-01T00:00:00Z"),
            usage: &usage,
            onboarding_steps_done: &BTreeSet::from(["import_data".to_string()]),
            first_report: true,
            open_tickets: &open,
            recent_tickets: &recent,
            nps: &nps,
            admin_changed_at: None,
            now,
        },
    );
    let detail = serde_json::to_string(&score).unwrap();
    let snap = HealthSnapshot {
        account_id: "acme".into(),
        day: score.day,
        model_version: score.model_version.clone(),
        shadow: false,
        score: score.score,
        band: score.band.as_str().into(),
        provisional: score.provisional,
        detail: detail.clone(),
    };
    store
        .put_snapshot(&snap, (now + Duration::days(400)).timestamp())
        .await
        .unwrap();
    let written = meter.snapshot();
    assert_eq!(
        store.snapshots("acme", score.day, score.day).await.unwrap(),
        vec![snap]
    );

    println!(
        "health_record, 30 days of rollups: {:.1} RCU in {} requests (DynamoDB Local); put_snapshot: {:.1} WCU in {} request ({} bytes of detail)",
        read.read_units - before.read_units,
        read.requests - before.requests,
        written.write_units - read.write_units,
        written.requests - read.requests,
        detail.len()
    );
    assert_eq!(
        read.requests - before.requests,
        3,
        "days, PROFILE..=SAT and FIRSTS, in parallel"
    );
}
