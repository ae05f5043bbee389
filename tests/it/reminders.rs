//! Three-stage deadline reminders end to end: deadline events go through the real `ingest`
//! handler (signed HTTP API requests received at their time), and the real
//! `reminders` scheduled run (the delivery sweep) is invoked on its production cadence (every 15 minutes) across a
//! window. Assertions read the delivery log (DynamoDB Local) and what moto's SES accepted.
//!
//! moto is shared by every test, so each test's addresses carry its own table name.

use chrono::{DateTime, Duration, DurationRound, Utc};
use nudge_shared::delivery::send::LEASE;
use nudge_shared::domain::{DeliveryLogEntry, LogStatus, NudgeStatus};
use nudge_shared::registry;
use nudge_shared::store::{DeliveryLogStore, NudgeStore, SendStore};
use nudge_tests::{TestEnv, at, mail};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------- helpers --

fn addr(env: &TestEnv, who: &str) -> String {
    format!("{who}.{}@example.test", env.table)
}

/// A contact of the test account: id, time zone, locale (None = inherit the account's).
struct Person<'a> {
    id: &'a str,
    tz: Option<&'a str>,
    locale: Option<&'a str>,
}

fn person<'a>(id: &'a str, tz: &'a str, locale: &'a str) -> Person<'a> {
    Person {
        id,
        tz: Some(tz),
        locale: Some(locale),
    }
}

/// The account (in `tz`/`locale`) and its contacts, ingested well before anything else.
async fn seed(env: &TestEnv, tz: &str, locale: &str, people: &[Person<'_>]) {
    let t = "2026-01-01T00:00:00Z";
    let mut events = vec![json!({
        "event_id": "acct", "account_id": "acme", "type": "account_upserted", "occurred_at": t,
        "properties": {"name": format!("Acme {}", env.table), "plan": "standard",
            "industry": "retail", "tier": "tech_touch",
            "csm": {"name": "Sato", "email": "sato@vendor.example"},
            "timezone": tz, "locale": locale, "contract_start": "2025-10-01",
            "renewal_date": "2027-09-30", "renewals": 0, "arr": 24000}
    })];
    for p in people {
        let mut props = json!({"email": addr(env, p.id), "name": format!("Name {}", p.id),
            "role": "admin"});
        if let Some(tz) = p.tz {
            props["timezone"] = json!(tz);
        }
        if let Some(l) = p.locale {
            props["locale"] = json!(l);
        }
        events.push(json!({
            "event_id": format!("c-{}", p.id), "account_id": "acme", "contact_id": p.id,
            "type": "contact_upserted", "occurred_at": t, "properties": props
        }));
    }
    post_all(env, events, at(t)).await;
}

/// Posts events in one signed request received at `received`; all must be accepted.
async fn post_all(env: &TestEnv, events: Vec<Value>, received: DateTime<Utc>) {
    let n = events.len();
    let body = json!({ "events": events }).to_string();
    let (status, out) = env.post_events(&body, received).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"].as_u64(), Some(n as u64), "{out}");
}

/// `deadline_set` for contact `contact` (None: the account's admin), occurring and received
/// at `when`. `due` carries its offset, as clients send it.
async fn set_deadline(
    env: &TestEnv,
    contact: Option<&str>,
    id: &str,
    due: &str,
    when: DateTime<Utc>,
) {
    let mut e = json!({
        "event_id": format!("set-{id}-{}", when.timestamp_millis()), "account_id": "acme",
        "type": "deadline_set", "occurred_at": when.to_rfc3339(),
        "properties": {"deadline_id": id, "due_at": due, "title": format!("Report {id}"),
            "link": format!("https://app.example/d/{id}")}
    });
    if let Some(c) = contact {
        e["contact_id"] = json!(c);
    }
    post_all(env, vec![e], when).await;
}

fn deadline_event(kind: &str, id: &str, when: DateTime<Utc>) -> Value {
    json!({
        "event_id": format!("{kind}-{id}-{}", when.timestamp_millis()), "account_id": "acme",
        "type": kind, "occurred_at": when.to_rfc3339(), "properties": {"deadline_id": id}
    })
}

/// The first 15-minute slot at or after `t`.
fn slot_at_or_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let q = Duration::minutes(15);
    let down = t.duration_trunc(q).expect("truncate");
    if down == t { t } else { down + q }
}

/// One scheduled run of the `reminders` function at `t`: its sweep's report.
async fn reminders_run(
    deps: &nudge_shared::Deps,
    t: DateTime<Utc>,
    run_id: &str,
) -> Result<Value, registry::ScheduledError> {
    let feature = registry::find("reminders").expect("reminders is registered");
    let out = registry::run_scheduled(feature, deps, t, run_id).await?;
    Ok(out["sweep"].clone())
}

/// The reminders function on its production cadence: every 15-minute slot in `[from, to]`,
/// "now" = the slot (as the EventBridge `time`). Returns the run reports.
async fn run_every_15_min(env: &TestEnv, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut t = slot_at_or_after(from);
    while t <= to {
        let report = reminders_run(env.deps(), t, &format!("run-{}", t.timestamp()))
            .await
            .expect("reminders run");
        assert_eq!(report["errors"], 0, "{report}");
        out.push(report);
        t += Duration::minutes(15);
    }
    out
}

async fn log(env: &TestEnv) -> Vec<DeliveryLogEntry> {
    env.store.delivery_log("acme").await.unwrap()
}

/// (stage, at) of every sent deadline reminder, in time order.
async fn sent(env: &TestEnv) -> Vec<(String, DateTime<Utc>)> {
    let mut v: Vec<(String, DateTime<Utc>)> = log(env)
        .await
        .into_iter()
        .filter(|e| e.status == LogStatus::Sent)
        .map(|e| {
            assert_eq!(e.kind.as_str(), "deadline_reminder");
            assert_eq!(e.function, "reminders");
            (e.stage.map(|s| s.to_string()).unwrap_or_default(), e.at)
        })
        .collect();
    v.sort_by_key(|(_, t)| *t);
    v
}

fn stages(v: &[(String, DateTime<Utc>)]) -> Vec<&str> {
    v.iter().map(|(s, _)| s.as_str()).collect()
}

/// Subject, text and HTML of every message `who` received.
async fn messages(env: &TestEnv, who: &str) -> Vec<(String, String, String)> {
    env.raw_to(&addr(env, who))
        .await
        .iter()
        .map(|raw| {
            assert!(
                mail::header(raw, "List-Unsubscribe")
                    .is_some_and(|h| h.contains("/unsubscribe?token=")),
                "List-Unsubscribe header: {raw}"
            );
            (
                mail::subject(raw),
                mail::part(raw, "text/plain"),
                mail::part(raw, "text/html"),
            )
        })
        .collect()
}

/// A test table whose `due` GSI has one shard per bucket instead of the default four: a run
/// then makes 3 queries instead of 12, which keeps hundreds of 15-minute runs per test fast.
/// Sharding itself is covered by the tests that keep the default (Tokyo, races, crashes).
async fn one_shard(name: &str) -> TestEnv {
    TestEnv::with_config(name, |c| c.due_shards = 1).await
}

// ------------------------------------------------------------------------------------ tests --

#[tokio::test]
async fn tokyo_recipient_gets_three_stages_at_local_times_in_japanese() {
    let env = TestEnv::new("rem_tokyo").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    // Friday 20 Nov 2026, 18:00 in Tokyo (09:00Z).
    set_deadline(
        &env,
        Some("u1"),
        "q4",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-20T09:00:00Z")).await;

    let s = sent(&env).await;
    assert_eq!(
        s,
        vec![
            // same wall-clock time, three calendar days before: Tue 17 Nov 18:00 JST
            ("t_minus_3d".to_string(), at("2026-11-17T09:00:00Z")),
            // 09:00 JST on the due date
            ("morning_of".to_string(), at("2026-11-20T00:00:00Z")),
            // due - 2 h: 16:00 JST
            ("final".to_string(), at("2026-11-20T07:00:00Z")),
        ]
    );
    let entries = log(&env).await;
    assert!(entries.iter().all(|e| e.locale == "ja"
        && e.to == addr(&env, "u1")
        && e.contact_id.as_deref() == Some("u1")
        && e.provider_message_id.is_some()));

    let m = messages(&env, "u1").await;
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].0, "「Report q4」の締切まであと3日");
    assert_eq!(m[1].0, "【本日締切】「Report q4」本日18:00まで");
    assert_eq!(m[2].0, "【まもなく締切】「Report q4」あと2時間");
    for (subject, text, html) in &m {
        assert_eq!(
            entries.iter().filter(|e| &e.subject == subject).count(),
            1,
            "the log records the subject that left"
        );
        assert!(
            text.contains("2026年11月20日(金) 18:00 (Asia/Tokyo)"),
            "{text}"
        );
        assert!(text.contains("https://app.example/d/q4"), "{text}");
        assert!(text.contains("Name u1 様"), "{text}");
        // Auto-escape writes `/` as `&#x2f;` in HTML: compare the decoded href.
        let decoded = html.replace("&#x2f;", "/");
        assert!(
            decoded.contains("href=\"https://app.example/d/q4\""),
            "{html}"
        );
        assert!(html.contains("「Report q4」を開く"), "{html}");
    }
}

#[tokio::test]
async fn new_york_t_minus_3d_is_same_wall_clock_across_dst_end() {
    let env = one_shard("rem_ny_dst_end").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "America/New_York", "en")],
    )
    .await;
    // Tue 3 Nov 2026, 17:00 EST. DST ended on Sun 1 Nov at 02:00 (EDT -4 → EST -5).
    set_deadline(
        &env,
        Some("u1"),
        "dst",
        "2026-11-03T17:00:00-05:00",
        at("2026-10-20T12:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-10-30T00:00:00Z"), at("2026-11-04T00:00:00Z")).await;

    let s = sent(&env).await;
    assert_eq!(
        s,
        vec![
            // Sat 31 Oct 17:00 EDT = 21:00Z: 73 h before, the same wall-clock time.
            ("t_minus_3d".to_string(), at("2026-10-31T21:00:00Z")),
            ("morning_of".to_string(), at("2026-11-03T14:00:00Z")),
            ("final".to_string(), at("2026-11-03T20:00:00Z")),
        ]
    );
    // The contact's zone and locale win over the account's (Tokyo, ja).
    let entries = log(&env).await;
    assert!(entries.iter().all(|e| e.locale == "en"), "{entries:?}");
    let m = messages(&env, "u1").await;
    assert_eq!(m[0].0, "\"Report dst\" is due in 3 days");
    assert_eq!(m[1].0, "Today: \"Report dst\" is due today at 17:00");
    assert_eq!(m[2].0, "Last call: \"Report dst\" is due in 2 hours");
    assert!(
        m[0].1
            .contains("Tue 3 Nov 2026, 17:00 (America/New_York), 3 days from now"),
        "{}",
        m[0].1
    );
    assert!(m[2].1.contains("Open it here: https://app.example/d/dst"));
}

#[tokio::test]
async fn new_york_stages_keep_local_times_across_dst_start() {
    let env = one_shard("rem_ny_dst_start").await;
    seed(
        &env,
        "America/New_York",
        "en",
        &[Person {
            id: "u1",
            tz: None,
            locale: None,
        }],
    )
    .await;
    // Tue 16 Mar 2027, 17:00 EDT. DST starts on Sun 14 Mar 2027 at 02:00 (EST -5 → EDT -4).
    // The contact has no zone of its own: the account's applies.
    set_deadline(
        &env,
        Some("u1"),
        "spring",
        "2027-03-16T21:00:00Z",
        at("2027-03-01T12:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2027-03-12T00:00:00Z"), at("2027-03-17T00:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            // Sat 13 Mar 17:00 EST = 22:00Z: 71 h before.
            ("t_minus_3d".to_string(), at("2027-03-13T22:00:00Z")),
            ("morning_of".to_string(), at("2027-03-16T13:00:00Z")),
            ("final".to_string(), at("2027-03-16T19:00:00Z")),
        ]
    );
    let m = messages(&env, "u1").await;
    assert_eq!(m[0].0, "\"Report spring\" is due in 3 days");
    assert!(m[0].1.contains("Tue 16 Mar 2027, 17:00 (America/New_York)"));
}

#[tokio::test]
async fn due_early_in_the_morning_moves_t_minus_3d_out_of_quiet_hours_and_skips_morning_of() {
    let env = one_shard("rem_early").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    // Fri 20 Nov 2026, 07:00 JST. t_minus_3d would be 07:00 JST (quiet) → 08:00 JST;
    // morning_of (09:00) is after the due time → not planned; final 05:00 JST is sent at night.
    set_deadline(
        &env,
        Some("u1"),
        "early",
        "2026-11-20T07:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-16T00:00:00Z"), at("2026-11-20T00:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            ("t_minus_3d".to_string(), at("2026-11-16T23:00:00Z")),
            ("final".to_string(), at("2026-11-19T20:00:00Z")),
        ]
    );
    let m = messages(&env, "u1").await;
    assert_eq!(m[0].0, "「Report early」の締切まであと3日");
    assert_eq!(m[1].0, "【まもなく締切】「Report early」あと2時間");
}

#[tokio::test]
async fn final_stage_still_sent_in_quiet_hours() {
    let env = one_shard("rem_late_night").await;
    seed(
        &env,
        "America/New_York",
        "en",
        &[person("u1", "America/New_York", "en")],
    )
    .await;
    // Fri 20 Nov 2026, 23:30 EST (04:30Z on the 21st): final at 21:30 EST is in quiet hours and
    // still goes; t_minus_3d (23:30 on the 17th) moves to 08:00 on the 18th.
    set_deadline(
        &env,
        Some("u1"),
        "night",
        "2026-11-20T23:30:00-05:00",
        at("2026-11-10T12:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-21T06:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            ("t_minus_3d".to_string(), at("2026-11-18T13:00:00Z")),
            ("morning_of".to_string(), at("2026-11-20T14:00:00Z")),
            ("final".to_string(), at("2026-11-21T02:30:00Z")),
        ]
    );
    let m = messages(&env, "u1").await;
    // Moved out of the night, the first reminder says what is really left: 2 calendar days.
    assert_eq!(m[0].0, "\"Report night\" is due in 2 days");
    assert_eq!(m[1].0, "Today: \"Report night\" is due today at 23:30");
    assert_eq!(m[2].0, "Last call: \"Report night\" is due in 2 hours");
}

#[tokio::test]
async fn due_in_under_2h_sends_final_late_only_if_it_passed_within_15_minutes() {
    let env = one_shard("rem_soon").await;
    seed(
        &env,
        "Asia/Tokyo",
        "en",
        &[person("u1", "Asia/Tokyo", "en")],
    )
    .await;
    let now = at("2026-11-20T03:05:00Z"); // 12:05 JST
    // Final for `soon` was 10 minutes ago (due 13:55 JST): sent late, at the next run.
    set_deadline(&env, Some("u1"), "soon", "2026-11-20T13:55:00+09:00", now).await;
    // Final for `sooner` was 30 minutes ago (due 13:35 JST): skipped, nothing is sent.
    set_deadline(&env, Some("u1"), "sooner", "2026-11-20T13:35:00+09:00", now).await;
    run_every_15_min(&env, now, at("2026-11-20T06:00:00Z")).await;
    let entries = log(&env).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].nudge_id.split('/').nth(1), Some("soon"));
    assert_eq!(entries[0].stage.map(|s| s.as_str()), Some("final"));
    assert_eq!(entries[0].at, at("2026-11-20T03:15:00Z"));
    let m = messages(&env, "u1").await;
    // 13:55 - 12:15 = 1 h 40 min left, in the recipient's terms.
    assert_eq!(m[0].0, "Last call: \"Report soon\" is due in 1 hour");
}

#[tokio::test]
async fn due_in_the_past_plans_and_sends_nothing() {
    let env = one_shard("rem_past").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    let now = at("2026-11-20T03:00:00Z");
    set_deadline(&env, Some("u1"), "old", "2026-11-19T18:00:00+09:00", now).await;
    assert!(env.store.nudges("acme").await.unwrap().is_empty());
    run_every_15_min(&env, now, at("2026-11-21T00:00:00Z")).await;
    assert!(log(&env).await.is_empty());
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
}

#[tokio::test]
async fn moved_later_replans_unsent_stages_and_never_repeats_sent_ones() {
    let env = one_shard("rem_later").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "mv",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-18T00:00:00Z")).await;
    assert_eq!(stages(&sent(&env).await), vec!["t_minus_3d"]);

    // Moved two days later, to Sun 22 Nov 18:00 JST: its t_minus_3d (19 Nov) is not repeated.
    set_deadline(
        &env,
        Some("u1"),
        "mv",
        "2026-11-22T18:00:00+09:00",
        at("2026-11-18T00:05:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-18T00:05:00Z"), at("2026-11-23T00:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            ("t_minus_3d".to_string(), at("2026-11-17T09:00:00Z")),
            ("morning_of".to_string(), at("2026-11-22T00:00:00Z")),
            ("final".to_string(), at("2026-11-22T07:00:00Z")),
        ]
    );
    // The old version's stages were cancelled as "moved" at ingest.
    let nudges = env.store.nudges("acme").await.unwrap();
    let cancelled: Vec<&str> = nudges
        .iter()
        .filter(|n| n.status == NudgeStatus::Cancelled)
        .map(|n| n.stage.map(|s| s.as_str()).unwrap_or_default())
        .collect();
    assert_eq!(cancelled, vec!["final", "morning_of"], "{nudges:?}");
    assert!(
        nudges
            .iter()
            .filter(|n| n.status == NudgeStatus::Cancelled)
            .all(|n| n.reason.as_deref() == Some("moved"))
    );
    let m = messages(&env, "u1").await;
    assert_eq!(m.len(), 3);
    // The new due date is in the messages after the move.
    assert!(
        m[2].1.contains("2026年11月22日(日) 18:00 (Asia/Tokyo)"),
        "{}",
        m[2].1
    );
}

#[tokio::test]
async fn moved_earlier_skips_stages_already_passed_and_sends_the_rest_at_new_times() {
    let env = one_shard("rem_earlier").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "mv",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-15T00:00:00Z"), at("2026-11-16T00:00:00Z")).await;
    assert!(sent(&env).await.is_empty());
    // Moved earlier, to Wed 18 Nov 18:00 JST: its t_minus_3d (15 Nov) passed a day ago.
    set_deadline(
        &env,
        Some("u1"),
        "mv",
        "2026-11-18T18:00:00+09:00",
        at("2026-11-16T00:05:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-16T00:05:00Z"), at("2026-11-21T00:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            ("morning_of".to_string(), at("2026-11-18T00:00:00Z")),
            ("final".to_string(), at("2026-11-18T07:00:00Z")),
        ]
    );
    assert_eq!(messages(&env, "u1").await.len(), 2);
}

#[tokio::test]
async fn completed_between_stages_cancels_the_rest_at_ingest() {
    let env = one_shard("rem_completed").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "done",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "dropped",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-18T00:00:00Z")).await;
    assert_eq!(stages(&sent(&env).await), vec!["t_minus_3d", "t_minus_3d"]);

    let t = at("2026-11-18T03:00:00Z");
    post_all(
        &env,
        vec![
            deadline_event("deadline_completed", "done", t),
            deadline_event("deadline_cancelled", "dropped", t),
        ],
        t,
    )
    .await;
    // At once, without waiting for a run: nothing is pending any more.
    let nudges = env.store.nudges("acme").await.unwrap();
    assert!(
        nudges.iter().all(|n| n.status != NudgeStatus::Pending),
        "{nudges:?}"
    );
    for (id, reason) in [("done", "completed"), ("dropped", "cancelled")] {
        let d: Vec<_> = nudges
            .iter()
            .filter(|n| n.nudge_id.starts_with(&format!("dl/{id}/")))
            .collect();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.iter()
                .filter(
                    |n| n.status == NudgeStatus::Cancelled && n.reason.as_deref() == Some(reason)
                )
                .count(),
            2,
            "{d:?}"
        );
    }
    run_every_15_min(&env, t, at("2026-11-21T00:00:00Z")).await;
    assert_eq!(stages(&sent(&env).await), vec!["t_minus_3d", "t_minus_3d"]);
    assert_eq!(messages(&env, "u1").await.len(), 2);
}

#[tokio::test]
async fn two_racing_runs_send_each_stage_once() {
    let env = TestEnv::new("rem_race").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    // Set the day before: t_minus_3d has passed; five morning_of stages share the 09:00 JST
    // slot, the finals follow hourly.
    for i in 0..5 {
        set_deadline(
            &env,
            Some("u1"),
            &format!("r{i}"),
            &format!("2026-11-20T{:02}:00:00+09:00", 14 + i),
            at("2026-11-19T01:00:00Z"),
        )
        .await;
    }
    let mut t = at("2026-11-19T23:00:00Z");
    let mut sent_by_runs = 0;
    while t <= at("2026-11-20T10:00:00Z") {
        let (id_a, id_b) = (
            format!("a-{}", t.timestamp()),
            format!("b-{}", t.timestamp()),
        );
        let (a, b) = tokio::join!(
            reminders_run(env.deps(), t, &id_a),
            reminders_run(env.deps(), t, &id_b)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a["errors"].as_u64().unwrap() + b["errors"].as_u64().unwrap(),
            0
        );
        sent_by_runs += a["sent"].as_u64().unwrap() + b["sent"].as_u64().unwrap();
        t += Duration::minutes(15);
    }
    assert_eq!(sent_by_runs, 10);
    let s = sent(&env).await;
    let mut expected = vec!["morning_of"; 5];
    expected.extend(vec!["final"; 5]);
    assert_eq!(stages(&s), expected);
    let mut ids: Vec<String> = log(&env).await.into_iter().map(|e| e.nudge_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each stage once in the log");
    assert_eq!(
        messages(&env, "u1").await.len(),
        10,
        "each stage once in SES"
    );
}

/// A run claims a stage and dies before sending or marking it. While its lease holds nobody
/// touches the stage; once it expires, the run that finds it sees no SES event for it (nothing
/// left) and sends it, once. The other stages go out as usual.
async fn crash_after_claiming(env: &TestEnv, due: &str, stage: &str) {
    seed(env, "Asia/Tokyo", "en", &[person("u1", "Asia/Tokyo", "en")]).await;
    set_deadline(env, Some("u1"), "crash", due, at("2026-11-10T01:00:00Z")).await;
    let due_at = at(due);
    let nudge = env
        .store
        .nudges("acme")
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.stage.map(|s| s.as_str()) == Some(stage) && n.status == NudgeStatus::Pending)
        .expect("pending stage");
    // The run at the stage's slot claims it, then crashes (no send, no mark, no checkpoint).
    let crash_at = slot_at_or_after(nudge.send_at);
    run_every_15_min(
        env,
        at("2026-11-17T00:00:00Z"),
        crash_at - Duration::minutes(15),
    )
    .await;
    let claimed = env
        .store
        .claim("acme", &nudge.nudge_id, "crashed-run", crash_at, LEASE)
        .await
        .unwrap();
    assert!(claimed.is_some());
    run_every_15_min(
        env,
        crash_at + Duration::minutes(15),
        due_at + Duration::hours(1),
    )
    .await;

    let entries = log(env).await;
    let mine: Vec<&DeliveryLogEntry> = entries
        .iter()
        .filter(|e| e.nudge_id == nudge.nudge_id)
        .collect();
    assert_eq!(mine.len(), 1, "{entries:?}");
    assert_eq!(mine[0].status, LogStatus::Sent);
    assert!(
        mine[0].at >= crash_at + LEASE,
        "sent after the lease: {mine:?}"
    );
    let n = env
        .store
        .nudge("acme", &nudge.nudge_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.status, n.attempts), (NudgeStatus::Sent, 2));
    let s = sent(env).await;
    assert_eq!(s.iter().filter(|(st, _)| st == stage).count(), 1, "{s:?}");
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(messages(env, "u1").await.len(), 3, "each stage once in SES");
}

#[tokio::test]
async fn a_stage_whose_run_died_after_claiming_is_sent_once_after_the_lease() {
    let env = TestEnv::new("rem_crash").await;
    // morning_of at 09:00 JST: on a slot boundary.
    crash_after_claiming(&env, "2026-11-20T18:00:00+09:00", "morning_of").await;
}

#[tokio::test]
async fn a_mid_slot_stage_whose_run_died_after_claiming_is_sent_once_after_the_lease() {
    let env = TestEnv::new("rem_crash_mid").await;
    // final at 16:05 JST: claimed by the 16:15 run, ten minutes after its send time.
    crash_after_claiming(&env, "2026-11-20T18:05:00+09:00", "final").await;
}

#[tokio::test]
async fn unsubscribed_from_reminders_stops_them() {
    let env = one_shard("rem_unsub").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "q4",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    let t = at("2026-11-12T00:00:00Z");
    post_all(
        &env,
        vec![
            json!({"event_id": "unsub", "account_id": "acme", "contact_id": "u1",
            "type": "unsubscribed", "occurred_at": t.to_rfc3339(),
            "properties": {"category": "reminders"}}),
        ],
        t,
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-21T00:00:00Z")).await;
    let entries = log(&env).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e.status == LogStatus::Blocked && e.reason.as_deref() == Some("unsubscribed"))
    );
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
}

#[tokio::test]
async fn paused_account_blocks_reminders() {
    let env = one_shard("rem_paused").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    set_deadline(
        &env,
        Some("u1"),
        "q4",
        "2026-11-20T18:00:00+09:00",
        at("2026-11-10T01:00:00Z"),
    )
    .await;
    let t = at("2026-11-12T00:00:00Z");
    post_all(
        &env,
        vec![
            json!({"event_id": "reply", "account_id": "acme", "contact_id": "u1",
            "type": "customer_replied", "occurred_at": t.to_rfc3339()}),
        ],
        t,
    )
    .await;
    run_every_15_min(&env, at("2026-11-17T00:00:00Z"), at("2026-11-21T00:00:00Z")).await;
    let entries: Vec<DeliveryLogEntry> = log(&env)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == "deadline_reminder")
        .collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries.iter().all(
            |e| e.status == LogStatus::Blocked && e.reason.as_deref() == Some("account_paused")
        )
    );
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
}

#[tokio::test]
async fn a_deadline_without_link_renders_no_link_and_no_none() {
    let env = one_shard("rem_nolink").await;
    seed(
        &env,
        "Asia/Tokyo",
        "en",
        &[person("u1", "Asia/Tokyo", "en")],
    )
    .await;
    let t = at("2026-11-20T06:50:00Z");
    // Due 17:50 JST, set at 15:50 JST: only the final stage is still ahead.
    post_all(
        &env,
        vec![json!({
            "event_id": "nolink", "account_id": "acme", "contact_id": "u1",
            "type": "deadline_set", "occurred_at": t.to_rfc3339(),
            "properties": {"deadline_id": "nl", "due_at": "2026-11-20T17:50:00+09:00",
                "title": "Sign the <order>"}
        })],
        t,
    )
    .await;
    run_every_15_min(&env, t, at("2026-11-20T09:00:00Z")).await;
    let m = messages(&env, "u1").await;
    assert_eq!(m.len(), 1);
    let (subject, text, html) = &m[0];
    assert_eq!(subject, "Last call: \"Sign the <order>\" is due in 1 hour");
    assert!(!text.contains("none"), "{text}");
    for bad in ["href=\"none\"", "href=\"\"", ">none<"] {
        assert!(!html.contains(bad), "{html}");
    }
    assert!(!text.contains("Open it here"), "{text}");
    assert!(html.contains("Sign the &lt;order&gt;"), "{html}");
}

#[tokio::test]
async fn a_deadline_without_contact_reminds_the_admin_in_the_admins_zone() {
    let env = one_shard("rem_admin").await;
    // The account is in Tokyo; its admin works in New York.
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "America/New_York", "en")],
    )
    .await;
    let t = at("2026-11-02T00:00:00Z");
    post_all(
        &env,
        vec![
            json!({"event_id": "admin", "account_id": "acme", "contact_id": "u1",
            "type": "admin_changed", "occurred_at": t.to_rfc3339()}),
        ],
        t,
    )
    .await;
    // Fri 20 Nov 2026, 18:00 EST.
    set_deadline(&env, None, "adm", "2026-11-20T18:00:00-05:00", t).await;
    run_every_15_min(&env, at("2026-11-17T12:00:00Z"), at("2026-11-21T00:00:00Z")).await;
    assert_eq!(
        sent(&env).await,
        vec![
            ("t_minus_3d".to_string(), at("2026-11-17T23:00:00Z")),
            ("morning_of".to_string(), at("2026-11-20T14:00:00Z")),
            ("final".to_string(), at("2026-11-20T21:00:00Z")),
        ]
    );
    let m = messages(&env, "u1").await;
    assert_eq!(m[1].0, "Today: \"Report adm\" is due today at 18:00");
}

/// The pending stages of the account: (deadline id, version, stage).
async fn pending(env: &TestEnv) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = env
        .store
        .nudges("acme")
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .map(|n| {
            let parts: Vec<&str> = n.nudge_id.split('/').collect();
            (parts[1].into(), parts[2].into(), parts[3].into())
        })
        .collect();
    v.sort();
    v
}

fn set_event(id: &str, due: &str, when: DateTime<Utc>) -> Value {
    json!({
        "event_id": format!("set-{id}-{}", when.timestamp_millis()), "account_id": "acme",
        "contact_id": "u1", "type": "deadline_set", "occurred_at": when.to_rfc3339(),
        "properties": {"deadline_id": id, "due_at": due, "title": format!("Report {id}")}
    })
}

#[tokio::test]
async fn set_then_completed_in_one_batch_leaves_nothing_pending() {
    let env = one_shard("rem_batch_done").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    let t = at("2026-11-10T01:00:00Z");
    let later = t + Duration::seconds(1);
    // The ingest handler applies the events of a batch concurrently.
    let mut events = Vec::new();
    for i in 0..8 {
        let id = format!("b{i}");
        events.push(set_event(&id, "2026-11-20T18:00:00+09:00", t));
        events.push(deadline_event("deadline_completed", &id, later));
    }
    post_all(&env, events, later).await;
    assert_eq!(pending(&env).await, vec![]);
}

#[tokio::test]
async fn two_moves_in_one_batch_keep_only_the_latest_plan() {
    let env = one_shard("rem_batch_move").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    let t = at("2026-11-10T01:00:00Z");
    let later = t + Duration::seconds(1);
    let mut events = Vec::new();
    for i in 0..8 {
        let id = format!("m{i}");
        events.push(set_event(&id, "2026-11-20T18:00:00+09:00", t));
        events.push(set_event(&id, "2026-11-22T18:00:00+09:00", later));
    }
    post_all(&env, events, later).await;
    let p = pending(&env).await;
    assert_eq!(p.len(), 8 * 3, "{p:?}");
    let version = later.timestamp_millis().to_string();
    assert!(p.iter().all(|(_, v, _)| *v == version), "{p:?}");
}

#[tokio::test]
async fn a_deadline_set_retried_after_a_half_applied_attempt_plans_its_stages() {
    use nudge_shared::store::{DeadlineRecord, DeadlineStatus, DeadlineStore};
    let env = one_shard("rem_retry_set").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    let t = at("2026-11-10T01:00:00Z");
    // A first attempt stored the deadline, then failed before planning; the handler
    // forgot the event (compensation) and the client retries it.
    let record = DeadlineRecord {
        deadline_id: "r1".into(),
        contact_id: Some("u1".into()),
        due_at: at("2026-11-20T09:00:00Z"),
        title: "Report r1".into(),
        kind: None,
        link: None,
        status: DeadlineStatus::Active,
        updated_at: t,
    };
    env.store.put_deadline("acme", &record).await.unwrap();
    post_all(
        &env,
        vec![set_event("r1", "2026-11-20T18:00:00+09:00", t)],
        t,
    )
    .await;
    let p = pending(&env).await;
    assert_eq!(p.len(), 3, "{p:?}");
}

/// `tests/events/deadline-set.json`: a signed HTTP API event carrying a `deadline_set`, for
/// `sam local invoke -e` / `cargo lambda invoke`. Regenerate with NUDGE_WRITE_FIXTURES=1.
#[tokio::test]
async fn deadline_set_sample_event_verifies_and_plans_three_stages() {
    let env = one_shard("rem_fixture").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u-7", "Asia/Tokyo", "ja")],
    )
    .await;
    // The exact bytes that were signed (a `json!` map's key order depends on serde_json's
    // features, which differ between `-p` and `--workspace` builds).
    let body = r#"{"events":[{"account_id":"acme","contact_id":"u-7","event_id":"evt-dl-1","occurred_at":"2026-11-10T10:00:00+09:00","properties":{"deadline_id":"q4-report","due_at":"2026-11-20T18:00:00+09:00","kind":"report","link":"https://app.example/deadlines/q4-report","title":"Q4 report"},"type":"deadline_set"}]}"#;
    let expected = nudge_infra::apigw::signed_post_events(
        nudge_tests::LOCAL_SECRET.as_bytes(),
        body,
        at("2026-11-10T01:00:05Z"),
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/events/deadline-set.json"
    );
    if std::env::var_os("NUDGE_WRITE_FIXTURES").is_some() {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        committed, expected,
        "regenerate with NUDGE_WRITE_FIXTURES=1"
    );
    let (status, out) = env.call(&committed).await;
    assert_eq!((status, out["accepted"].as_u64()), (200, Some(1)), "{out}");
    let p = pending(&env).await;
    let stages: Vec<&str> = p.iter().map(|(_, _, s)| s.as_str()).collect();
    assert_eq!(stages, vec!["final", "morning_of", "t_minus_3d"], "{p:?}");
}

#[tokio::test]
async fn completing_deadline_a_leaves_deadline_a_colon_b_alone() {
    let env = one_shard("rem_prefix").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    for id in ["a", "a:b"] {
        set_deadline(
            &env,
            Some("u1"),
            id,
            "2026-11-20T18:00:00+09:00",
            at("2026-11-10T01:00:00Z"),
        )
        .await;
    }
    let t = at("2026-11-12T03:00:00Z");
    post_all(&env, vec![deadline_event("deadline_completed", "a", t)], t).await;
    let nudges = env.store.nudges("acme").await.unwrap();
    let pending: Vec<&str> = nudges
        .iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .map(|n| n.nudge_id.as_str())
        .collect();
    assert_eq!(pending.len(), 3, "{pending:?}");
    assert!(
        pending.iter().all(|id| id.starts_with("dl/a:b/")),
        "{pending:?}"
    );
}

#[tokio::test]
async fn scheduled_event_fixture_drives_the_reminders_entry_with_its_time_as_now() {
    let env = one_shard("rem_fixture").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    // Final stage at 2026-11-24T00:00Z (due 11:00 Tokyo), the fixture's `time`.
    set_deadline(
        &env,
        Some("u1"),
        "fixture",
        "2026-11-24T11:00:00+09:00",
        at("2026-11-23T22:00:00Z"),
    )
    .await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/events/scheduled-reminders.json"
    ))
    .unwrap();
    let event: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_str(&text).expect("fixture parses as a scheduled event");
    let out = registry::handle_scheduled(
        registry::find("reminders").expect("registered"),
        env.deps(),
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .expect("run");
    assert_eq!(out["sweep"]["sent"], 1, "{out}");
    let entries = log(&env).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].at, at("2026-11-24T00:00:00Z"));
    assert_eq!(entries[0].stage.map(|s| s.as_str()), Some("final"));
}

// ------------------------------------------------------------------- read consistency --

/// The base-table reads a client made: (operation, the sort key or key-condition values,
/// whether it asked for `ConsistentRead`). Recorded by an SDK interceptor, before the request
/// is serialised, so what is checked is what goes on the wire.
#[derive(Debug, Clone, Default)]
struct SeenReads(std::sync::Arc<std::sync::Mutex<Vec<SeenRead>>>);

type SeenRead = (&'static str, String, bool);

impl aws_sdk_dynamodb::config::Intercept for SeenReads {
    fn name(&self) -> &'static str {
        "seen-reads"
    }

    fn read_before_execution(
        &self,
        ctx: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{get_item::GetItemInput, query::QueryInput};
        let text = |v: Option<&aws_sdk_dynamodb::types::AttributeValue>| {
            v.and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        let input = ctx.input();
        let seen = if let Some(g) = input.downcast_ref::<GetItemInput>() {
            let sk = text(g.key().and_then(|k| k.get("sk")));
            Some(("GetItem", sk, g.consistent_read() == Some(true)))
        } else if let Some(q) = input.downcast_ref::<QueryInput>() {
            let mut values: Vec<String> = q
                .expression_attribute_values()
                .map(|v| v.values().map(|v| text(Some(v))).collect())
                .unwrap_or_default();
            values.sort();
            Some(("Query", values.join(" "), q.consistent_read() == Some(true)))
        } else {
            None
        };
        if let Some(seen) = seen {
            self.0.lock().expect("not poisoned").push(seen);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_reads_that_decide_a_deadlines_stage_writes_are_strongly_consistent() {
    let mut env = TestEnv::new("reminders_consistent_reads").await;
    seed(
        &env,
        "Asia/Tokyo",
        "ja",
        &[person("u1", "Asia/Tokyo", "ja")],
    )
    .await;
    // The same handler, its table client recording every read.
    let seen = SeenReads::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        env.store
            .client()
            .config()
            .to_builder()
            .interceptor(seen.clone())
            .build(),
    );
    let deps = nudge_shared::Deps::new(
        env.deps().config.clone(),
        std::sync::Arc::new(nudge_shared::store::dynamo::DynamoStore::new(
            client,
            env.table.clone(),
        )),
        env.deps().mailer.clone(),
        env.deps().notifier.clone(),
        env.deps().keys.clone(),
    );
    env.app = nudge_shared::ingest::lambda::Ingest::new(deps);

    let t0 = at("2026-11-02T00:00:00Z");
    set_deadline(&env, Some("u1"), "d1", "2026-11-10T18:00:00+09:00", t0).await;
    let moved = t0 + Duration::hours(1);
    set_deadline(&env, Some("u1"), "d1", "2026-11-12T18:00:00+09:00", moved).await;
    let done = moved + Duration::hours(1);
    post_all(
        &env,
        vec![deadline_event("deadline_completed", "d1", done)],
        done,
    )
    .await;
    let stages = env
        .store
        .nudges_with_prefix("acme", "dl/d1/")
        .await
        .unwrap();
    assert!(
        stages.iter().all(|n| n.status == NudgeStatus::Cancelled),
        "{stages:?}"
    );

    let seen = seen.0.lock().expect("not poisoned").clone();
    let deadline_reads: Vec<_> = seen.iter().filter(|r| r.1 == "DL#d1").collect();
    let stage_queries: Vec<_> = seen
        .iter()
        .filter(|r| r.0 == "Query" && r.1.contains("NUDGE#dl/d1/"))
        .collect();
    // set (the supersede check), move (the same) and complete (the read before the write).
    assert!(deadline_reads.len() >= 3, "{seen:?}");
    // set, move and complete each read the deadline's stages before writing.
    assert_eq!(stage_queries.len(), 3, "{seen:?}");
    for r in deadline_reads.iter().chain(&stage_queries) {
        assert!(r.2, "an eventually consistent read decided a write: {r:?}");
    }
}

// ------------------------------------------------------------------------ zone changes --

/// `contact_upserted` of the admin `u1` in `tz`, occurring at `when`.
fn u1_in(env: &TestEnv, event_id: &str, name: &str, tz: &str, when: DateTime<Utc>) -> Value {
    json!({
        "event_id": event_id, "account_id": "acme", "contact_id": "u1",
        "type": "contact_upserted", "occurred_at": when.to_rfc3339(),
        "properties": {"email": addr(env, "u1"), "name": name, "role": "admin",
            "timezone": tz, "locale": "en"}
    })
}

/// (nudge id, stage, send time) of the pending stages of `d1`, by time.
async fn pending_stages(env: &TestEnv) -> Vec<(String, String, DateTime<Utc>)> {
    let mut v: Vec<(String, String, DateTime<Utc>)> = env
        .store
        .nudges_with_prefix("acme", "dl/d1/")
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .map(|n| {
            let stage = n.stage.map(|s| s.to_string()).unwrap_or_default();
            (n.nudge_id, stage, n.send_at)
        })
        .collect();
    v.sort_by_key(|(_, _, at)| *at);
    v
}

#[tokio::test]
async fn a_contact_who_moves_from_tokyo_to_new_york_gets_the_unsent_stages_at_new_york_times() {
    let mut env = one_shard("rem_rezone").await;
    seed(
        &env,
        "Asia/Tokyo",
        "en",
        &[person("u1", "Asia/Tokyo", "en")],
    )
    .await;
    // Due Saturday 12:00 in Tokyo, which is Friday 22:00 in New York.
    let t0 = at("2026-11-16T00:00:00Z");
    set_deadline(&env, Some("u1"), "d1", "2026-11-21T12:00:00+09:00", t0).await;
    let version = format!("dl/d1/{}/", t0.timestamp_millis());
    let id = |stage: &str| format!("{version}{stage}");
    let tokyo = pending_stages(&env).await;
    assert_eq!(
        tokyo,
        [
            (
                id("t_minus_3d"),
                "t_minus_3d".into(),
                at("2026-11-18T03:00:00Z")
            ),
            (
                id("morning_of"),
                "morning_of".into(),
                at("2026-11-21T00:00:00Z")
            ),
            (id("final"), "final".into(), at("2026-11-21T01:00:00Z")),
        ]
    );

    // The same ingest handler from here on, its table client recording every read and its
    // store metering what the zone change costs.
    let seen = SeenReads::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        env.store
            .client()
            .config()
            .to_builder()
            .interceptor(seen.clone())
            .build(),
    );
    let store = nudge_shared::store::dynamo::DynamoStore::new(client, env.table.clone());
    let meter = store.meter();
    let deps = nudge_shared::Deps::new(
        env.deps().config.clone(),
        std::sync::Arc::new(store),
        env.deps().mailer.clone(),
        env.deps().notifier.clone(),
        env.deps().keys.clone(),
    );
    env.app = nudge_shared::ingest::lambda::Ingest::new(deps);

    // Tuesday: a new name in the same zone, then the move to New York.
    let tuesday = at("2026-11-17T00:00:00Z");
    let before = meter.snapshot();
    let renamed = u1_in(&env, "rename", "Name u1 Ono", "Asia/Tokyo", tuesday);
    post_all(&env, vec![renamed], tuesday).await;
    let kept = meter.snapshot();
    seen.0.lock().expect("not poisoned").clear();
    let moved_at = tuesday + Duration::minutes(1);
    let moved = u1_in(&env, "move", "Name u1 Ono", "America/New_York", moved_at);
    post_all(&env, vec![moved], moved_at).await;
    let after = meter.snapshot();
    let (keep_r, keep_w) = (
        kept.read_units - before.read_units,
        kept.write_units - before.write_units,
    );
    let (move_r, move_w) = (
        after.read_units - kept.read_units,
        after.write_units - kept.write_units,
    );
    println!(
        "contact_upserted keeping the zone: {keep_r} RCU + {keep_w} WCU ({} requests); \
         moving it (one open deadline, two stages moved): {move_r} RCU + {move_w} WCU ({} \
         requests); the re-plan: {} RCU + {} WCU",
        kept.requests - before.requests,
        after.requests - kept.requests,
        move_r - keep_r,
        move_w - keep_w,
    );
    assert!(move_r > keep_r && move_w > keep_w, "the move re-planned");

    // Every read the re-plan decided on was strongly consistent.
    let seen = seen.0.lock().expect("not poisoned").clone();
    for key in ["DL#", "PROFILE", "CONTACT#u1", "NUDGE#dl/d1/"] {
        let reads: Vec<&SeenRead> = seen.iter().filter(|r| r.1.contains(key)).collect();
        assert!(!reads.is_empty(), "no read of {key}: {seen:?}");
        assert!(
            reads.iter().all(|r| r.2),
            "an eventually consistent read decided a re-plan: {reads:?}"
        );
    }

    // 22:00 on Tuesday in New York is quiet: 08:00 on Wednesday; 09:00 on Friday; the final
    // stage is the same instant. Same ids: the deadline's version did not change.
    assert_eq!(
        pending_stages(&env).await,
        [
            (
                id("t_minus_3d"),
                "t_minus_3d".into(),
                at("2026-11-18T13:00:00Z")
            ),
            (
                id("morning_of"),
                "morning_of".into(),
                at("2026-11-20T14:00:00Z")
            ),
            (id("final"), "final".into(), at("2026-11-21T01:00:00Z")),
        ]
    );
    // The same change again (a resend of the event is a duplicate; a repeat) moves nothing.
    let again_at = moved_at + Duration::minutes(1);
    let again = u1_in(&env, "again", "Name u1 Ono", "America/New_York", again_at);
    post_all(&env, vec![again], again_at).await;
    assert_eq!(pending_stages(&env).await.len(), 3);

    // The old Tokyo times send nothing; the New York times send each stage once.
    for (slot, want) in [
        ("2026-11-18T03:00:00Z", 0),
        ("2026-11-18T13:00:00Z", 1),
        ("2026-11-20T14:00:00Z", 2),
        ("2026-11-21T00:00:00Z", 2),
        ("2026-11-21T01:00:00Z", 3),
    ] {
        let report = reminders_run(env.deps(), at(slot), &format!("run-{slot}"))
            .await
            .expect("reminders run");
        assert_eq!(report["errors"], 0, "{report}");
        assert_eq!(sent(&env).await.len(), want, "after the run at {slot}");
    }
    assert_eq!(
        sent(&env).await,
        [
            ("t_minus_3d".to_string(), at("2026-11-18T13:00:00Z")),
            ("morning_of".to_string(), at("2026-11-20T14:00:00Z")),
            ("final".to_string(), at("2026-11-21T01:00:00Z")),
        ]
    );
    let m = messages(&env, "u1").await;
    assert_eq!(m[1].0, "Today: \"Report d1\" is due today at 22:00");
}
