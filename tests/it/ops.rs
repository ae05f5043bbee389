//! The operator commands against DynamoDB Local and moto: `nudge log` filters the stored
//! delivery log, `nudge pause` holds an account's customer messages as a reply does (the sweep
//! blocks them) until `nudge resume` or its end, and an unknown account is an error;
//! `nudge erase-contact` removes one person's data and nothing is sent to them afterwards.

use chrono::{DateTime, Duration, Utc};
use nudge_infra::ops::{self, LogQuery};
use nudge_shared::domain::{
    Channel, DeliveryLogEntry, LogStatus, Nudge, NudgeKind, NudgeStatus, Stage,
};
use nudge_shared::store::{
    DeliveryLogStore, EventStore, NudgeStore, ProfileStore, SuppressionStore,
};
use nudge_tests::{TestEnv, at, sweep};
use serde_json::json;

/// An account with one admin whose address carries the table name (moto is shared).
async fn seed(env: &TestEnv, account: &str) -> String {
    let t = "2026-11-01T00:00:00Z";
    let email = format!("admin.{}@example.test", env.table);
    let events = json!({ "events": [
        {"event_id": format!("{account}-acct"), "account_id": account, "type": "account_upserted",
         "occurred_at": t,
         "properties": {"name": "Acme", "plan": "standard", "industry": "retail",
            "timezone": "Asia/Tokyo", "locale": "en", "contract_start": "2026-10-01",
            "renewal_date": "2027-09-30", "renewals": 0, "arr": 24000}},
        {"event_id": format!("{account}-u1"), "account_id": account, "contact_id": "u1",
         "type": "contact_upserted", "occurred_at": t,
         "properties": {"email": email, "name": "Ann", "role": "admin"}}
    ]});
    let (status, out) = env.post_events(&events.to_string(), at(t)).await;
    assert_eq!(status, 200, "{out}");
    email
}

/// A deadline's final stage due at `send_at` (transactional: no cap, no business hours).
async fn plan_reminder(env: &TestEnv, account: &str, id: &str, send_at: DateTime<Utc>) {
    let n = Nudge::new(
        id,
        account,
        Some("u1".into()),
        NudgeKind::DeadlineReminder,
        send_at,
        "reminders",
        send_at - Duration::hours(1),
    )
    .with_stage(Stage::Final)
    .with_vars(
        json!({"title": "Trial ends", "due_at": (send_at + Duration::hours(2)).to_rfc3339()}),
    );
    assert!(
        env.store
            .put_nudge(&n, env.deps().config.due_shards)
            .await
            .expect("put nudge")
    );
}

async fn outcome(env: &TestEnv, account: &str, id: &str) -> (NudgeStatus, Option<String>) {
    let n = env
        .store
        .nudge(account, id)
        .await
        .expect("read nudge")
        .expect("nudge exists");
    (n.status, n.reason)
}

#[tokio::test]
async fn a_paused_account_has_its_due_reminder_blocked_and_after_resume_the_next_one_sends() {
    let env = TestEnv::new("ops_pause_resume").await;
    seed(&env, "acme").await;
    let now = at("2026-11-20T01:00:00Z");

    let paused = ops::pause(&env.store, "acme", None, Some("billing dispute"), now)
        .await
        .expect("pause");
    assert!(paused.changed && !paused.before.paused && paused.after.paused);
    assert_eq!(paused.after.reason.as_deref(), Some("billing dispute"));
    let text = paused.text("here");
    assert!(
        text.contains("paused acme") && text.contains("until resumed (billing dispute)"),
        "{text}"
    );

    plan_reminder(&env, "acme", "dl/trial/1/final", now).await;
    sweep(env.deps(), now + Duration::minutes(1), "run-1")
        .await
        .expect("sweep");
    assert_eq!(
        outcome(&env, "acme", "dl/trial/1/final").await,
        (NudgeStatus::Blocked, Some("account_paused".into()))
    );

    let resumed = ops::resume(&env.store, "acme", now + Duration::minutes(5))
        .await
        .expect("resume");
    assert!(resumed.changed && resumed.before.paused && !resumed.after.paused);
    let again = ops::resume(&env.store, "acme", now + Duration::minutes(6))
        .await
        .expect("resume twice");
    assert!(!again.changed, "resuming a running account changes nothing");

    let later = now + Duration::minutes(15);
    plan_reminder(&env, "acme", "dl/trial/2/final", later).await;
    sweep(env.deps(), later + Duration::minutes(1), "run-2")
        .await
        .expect("sweep");
    assert_eq!(
        outcome(&env, "acme", "dl/trial/2/final").await,
        (NudgeStatus::Sent, None)
    );
    // The blocked one stays blocked: a pause drops messages, it does not delay them.
    assert_eq!(
        outcome(&env, "acme", "dl/trial/1/final").await.0,
        NudgeStatus::Blocked
    );
}

#[tokio::test]
async fn a_pause_with_an_end_blocks_until_then_and_lets_the_sweep_send_after_it() {
    let env = TestEnv::new("ops_pause_until").await;
    seed(&env, "acme").await;
    let now = at("2026-11-20T01:00:00Z");
    let until = now + Duration::hours(1);
    let paused = ops::pause(&env.store, "acme", Some(until), None, now)
        .await
        .expect("pause");
    assert_eq!(paused.after.until, Some(until));
    assert_eq!(
        paused.after.reason.as_deref(),
        Some(ops::DEFAULT_PAUSE_REASON)
    );

    plan_reminder(&env, "acme", "dl/a/1/final", now + Duration::minutes(30)).await;
    plan_reminder(&env, "acme", "dl/b/1/final", until + Duration::minutes(15)).await;
    sweep(env.deps(), now + Duration::minutes(31), "run-1")
        .await
        .expect("sweep");
    sweep(env.deps(), until + Duration::minutes(16), "run-2")
        .await
        .expect("sweep");
    assert_eq!(
        outcome(&env, "acme", "dl/a/1/final").await,
        (NudgeStatus::Blocked, Some("account_paused".into()))
    );
    assert_eq!(
        outcome(&env, "acme", "dl/b/1/final").await,
        (NudgeStatus::Sent, None)
    );
}

#[tokio::test]
async fn pausing_or_resuming_an_unknown_account_is_an_error_that_writes_nothing() {
    let env = TestEnv::new("ops_unknown").await;
    let now = at("2026-11-20T01:00:00Z");
    let e = ops::pause(&env.store, "nobody", None, None, now)
        .await
        .expect_err("unknown account");
    assert!(
        e.to_string().contains("unknown account \"nobody\""),
        "{e:#}"
    );
    let e = ops::resume(&env.store, "nobody", now)
        .await
        .expect_err("unknown account");
    assert!(
        e.to_string().contains("unknown account \"nobody\""),
        "{e:#}"
    );
    assert!(
        nudge_shared::store::ProfileStore::account(&env.store, "nobody")
            .await
            .expect("read")
            .is_none(),
        "no profile item was created"
    );
}

fn entry(account: &str, kind: NudgeKind, id: &str, at: DateTime<Utc>) -> DeliveryLogEntry {
    DeliveryLogEntry {
        at,
        function: "test".into(),
        kind,
        stage: None,
        channel: Channel::Email,
        account_id: account.into(),
        contact_id: Some("u1".into()),
        to: format!("ann.{id}@example.test"),
        subject: format!("subject {id}"),
        locale: "en".into(),
        status: LogStatus::Sent,
        reason: None,
        nudge_id: id.into(),
        variant: "a".into(),
        provider_message_id: Some(format!("pm-{id}")),
    }
}

#[tokio::test]
async fn the_log_filters_by_account_kind_and_time_and_keeps_the_most_recent() {
    let env = TestEnv::new("ops_log").await;
    let t = |h| at("2026-11-20T00:00:00Z") + Duration::hours(h);
    for e in [
        entry("acme", NudgeKind::Milestone, "m1", t(1)),
        entry("acme", NudgeKind::RiskNudge, "r1", t(2)),
        entry("acme", NudgeKind::Milestone, "m2", t(3)),
        entry("bolt", NudgeKind::Milestone, "m3", t(2)),
    ] {
        env.store.append_log(&e).await.expect("append");
    }
    let ids = |entries: Vec<DeliveryLogEntry>| {
        entries.into_iter().map(|e| e.nudge_id).collect::<Vec<_>>()
    };
    let q = |account: Option<&str>, kind, since, limit| LogQuery {
        account: account.map(str::to_string),
        kind,
        since,
        limit,
    };
    let store = &env.store;
    let read = |q: LogQuery| async move { ops::log_entries(store, &q).await.expect("log") };

    assert_eq!(
        ids(read(q(Some("acme"), None, None, None)).await),
        ["m1", "r1", "m2"]
    );
    assert_eq!(
        ids(read(q(Some("acme"), Some(NudgeKind::Milestone), None, None)).await),
        ["m1", "m2"]
    );
    assert_eq!(
        ids(read(q(Some("acme"), None, Some(t(2)), None)).await),
        ["r1", "m2"]
    );
    assert_eq!(
        ids(read(q(Some("acme"), None, None, Some(2))).await),
        ["r1", "m2"]
    );
    // Every account (a scan: this table holds only this test's entries), oldest first.
    assert_eq!(
        ids(read(q(None, Some(NudgeKind::Milestone), Some(t(2)), None)).await),
        ["m3", "m2"]
    );
    assert!(read(q(Some("nobody"), None, None, None)).await.is_empty());

    let all = read(q(Some("acme"), None, None, None)).await;
    let table = ops::log_table(&all);
    assert!(
        table.contains("a***@example.test") && !table.contains("ann.m1@"),
        "{table}"
    );
    let json = ops::log_json(&all).expect("json");
    let first: DeliveryLogEntry =
        serde_json::from_str(json.lines().next().unwrap_or_default()).expect("a stored entry");
    assert_eq!(first, all[0], "--json prints the entry as stored");
}

#[tokio::test]
async fn erasing_a_contact_cancels_what_was_due_to_them_redacts_the_log_and_keeps_the_suppression()
{
    let env = TestEnv::new("ops_erase_contact").await;
    let email = seed(&env, "acme").await;
    let first = at("2026-11-20T01:00:00Z");
    plan_reminder(&env, "acme", "dl/a/1/final", first).await;
    let report = sweep(env.deps(), first, "run-1").await.expect("sweep");
    assert_eq!(report.sent, 1, "{report:?}");
    let later = first + Duration::days(1);
    plan_reminder(&env, "acme", "dl/b/1/final", later).await;
    env.store
        .record_address_feedback(
            &email,
            nudge_shared::store::AddressFeedback::Complaint,
            first,
        )
        .await
        .expect("feedback");

    let now = first + Duration::hours(2);
    let e = ops::erase_contact(&env.store, "acme", "nobody", now)
        .await
        .expect_err("unknown contact");
    assert!(e.to_string().contains("unknown contact \"nobody\""), "{e}");

    let erased = ops::erase_contact(&env.store, "acme", "u1", now)
        .await
        .expect("erase");
    let j = erased.json();
    assert_eq!(
        (
            &j["cancelled"],
            &j["nudges_redacted"],
            &j["log_entries_redacted"],
            &j["suppression_kept"]
        ),
        (&json!(1), &json!(2), &json!(1), &json!(true)),
        "{j}"
    );
    // The seed's `contact_upserted` named them; no deadline or NPS answer of theirs exists.
    assert_eq!(
        (
            &j["raw_events_redacted"],
            &j["deadlines_redacted"],
            &j["comments_removed"]
        ),
        (&json!(1), &json!(0), &json!(0)),
        "{j}"
    );
    let text = erased.text("here");
    assert!(
        text.contains("erased contact u1 of acme (here)")
            && text.contains("pending nudges cancelled:      1")
            && text.contains("raw events redacted:           1"),
        "{text}"
    );
    let raw = env.store.raw_events("acme").await.unwrap();
    assert!(
        raw.iter()
            .all(|e| !e.body.contains(&email) && !e.body.contains("Ann")),
        "{raw:?}"
    );
    assert!(env.store.contact("acme", "u1").await.unwrap().is_none());
    let log = env.store.delivery_log("acme").await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].to.as_str(), log[0].subject.as_str()), ("", ""));
    assert_eq!(log[0].status, LogStatus::Sent, "kept for the counts");
    assert!(
        env.store
            .suppression(&email)
            .await
            .unwrap()
            .is_some_and(|s| s.reason.is_some())
    );

    // Nothing goes to them any more; erasing again finds no such contact.
    let report = sweep(env.deps(), later, "run-2").await.expect("sweep");
    assert_eq!((report.sent, report.blocked), (0, 0), "{report:?}");
    assert!(env.raw_to(&email).await.len() == 1, "only the first");
    assert_eq!(
        outcome(&env, "acme", "dl/b/1/final").await,
        (NudgeStatus::Cancelled, Some("erased".into()))
    );
    assert!(
        ops::erase_contact(&env.store, "acme", "u1", now)
            .await
            .is_err()
    );
}
