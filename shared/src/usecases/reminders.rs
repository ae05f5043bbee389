//! Deadline reminders through the ingest hook (`registry::on_ingest`) and the sweep.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Asia::Tokyo;
use serde_json::json;

use super::{World, email, utc};
use crate::domain::{LogStatus, Nudge, NudgeStatus};
use crate::events::parse_event;
use crate::registry;
use crate::store::NudgeStore;

/// A `deadline_set` for `d1`, as ingest parses it from the wire.
async fn deadline_set(w: &World, event_id: &str, occurred_at: &str, due_at: &str) {
    let wire = json!({
        "event_id": event_id,
        "account_id": "acme",
        "contact_id": "u1",
        "type": "deadline_set",
        "occurred_at": occurred_at,
        "properties": {
            "deadline_id": "d1",
            "due_at": due_at,
            "title": "Quarterly report",
        },
    });
    let now = utc(occurred_at);
    let event = parse_event(&wire, now).expect("a valid deadline_set");
    registry::on_ingest(&w.deps, &event, now)
        .await
        .expect("ingest hook");
}

async fn stages(w: &World) -> Vec<Nudge> {
    w.store
        .nudges_with_prefix("acme", "dl/d1/")
        .await
        .expect("stages")
}

/// (stage, send time) of the stages in `status`.
fn with_status(stages: &[Nudge], status: NudgeStatus) -> Vec<(String, DateTime<Utc>)> {
    let mut out: Vec<_> = stages
        .iter()
        .filter(|n| n.status == status)
        .map(|n| {
            (
                n.stage.map(|s| s.to_string()).unwrap_or_default(),
                n.send_at,
            )
        })
        .collect();
    out.sort_by_key(|(_, at)| *at);
    out
}

/// Sweeps every 15 minutes in `[from, to)`, as the reminders function runs.
async fn sweep_every_15_minutes(w: &World, from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut now = from;
    while now < to {
        let r = w.sweep(now, &format!("run-{}", now.timestamp())).await;
        assert_eq!(r.errors, 0, "{r:?}");
        now += Duration::minutes(15);
    }
}

#[tokio::test]
async fn moving_a_deadline_replans_its_unsent_stages_and_never_repeats_a_sent_one() {
    let w = World::new();
    let start = utc("2026-11-16T00:00:00Z");
    w.account("acme", Tokyo, start - Duration::days(1)).await;
    w.contact("acme", "u1", Tokyo, start - Duration::days(1))
        .await;

    // Monday: due Friday 17:00 in Tokyo. Stages: 3 days before at 17:00, 09:00 on the day,
    // 2 hours before.
    deadline_set(
        &w,
        "e1",
        "2026-11-16T09:00:00+09:00",
        "2026-11-20T17:00:00+09:00",
    )
    .await;
    let planned = stages(&w).await;
    assert_eq!(
        with_status(&planned, NudgeStatus::Pending),
        [
            ("t_minus_3d".to_string(), utc("2026-11-17T08:00:00Z")),
            ("morning_of".to_string(), utc("2026-11-20T00:00:00Z")),
            ("final".to_string(), utc("2026-11-20T06:00:00Z")),
        ]
    );

    // The sweep sends the first stage on Tuesday.
    let moved_at = utc("2026-11-18T00:00:00Z");
    sweep_every_15_minutes(&w, start, moved_at).await;
    let after_first = stages(&w).await;
    assert_eq!(
        with_status(&after_first, NudgeStatus::Sent),
        [("t_minus_3d".to_string(), utc("2026-11-17T08:00:00Z"))]
    );

    // Wednesday: moved a week later.
    deadline_set(
        &w,
        "e2",
        "2026-11-18T09:00:00+09:00",
        "2026-11-27T17:00:00+09:00",
    )
    .await;
    let replanned = stages(&w).await;
    let cancelled: Vec<_> = replanned
        .iter()
        .filter(|n| n.status == NudgeStatus::Cancelled)
        .collect();
    assert_eq!(cancelled.len(), 2, "the old plan's pending stages");
    assert!(
        cancelled
            .iter()
            .all(|n| n.reason.as_deref() == Some("moved"))
    );
    // The sent stage keeps its slot: only the later stages are planned again.
    assert_eq!(
        with_status(&replanned, NudgeStatus::Pending),
        [
            ("morning_of".to_string(), utc("2026-11-27T00:00:00Z")),
            ("final".to_string(), utc("2026-11-27T06:00:00Z")),
        ]
    );
    // Under the new version: the `occurred_at` of the move.
    let new_version = format!("dl/d1/{}/", moved_at.timestamp_millis());
    assert!(
        replanned
            .iter()
            .filter(|n| n.status == NudgeStatus::Pending)
            .all(|n| n.nudge_id.starts_with(&new_version))
    );

    // Through the old and the new due dates: each stage leaves once, at its new time.
    sweep_every_15_minutes(&w, moved_at, utc("2026-11-28T00:00:00Z")).await;
    let sent: BTreeMap<String, Vec<DateTime<Utc>>> = w
        .log()
        .await
        .into_iter()
        .filter(|e| e.status == LogStatus::Sent)
        .fold(BTreeMap::new(), |mut m, e| {
            m.entry(e.stage.map(|s| s.to_string()).unwrap_or_default())
                .or_insert_with(Vec::new)
                .push(e.at);
            m
        });
    let want: BTreeMap<String, Vec<DateTime<Utc>>> = [
        ("t_minus_3d", utc("2026-11-17T08:00:00Z")),
        ("morning_of", utc("2026-11-27T00:00:00Z")),
        ("final", utc("2026-11-27T06:00:00Z")),
    ]
    .into_iter()
    .map(|(s, at)| (s.to_string(), vec![at]))
    .collect();
    assert_eq!(sent, want);
    let outbox = w.outbox.sent();
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|m| m.to == email("acme", "u1")));
}

#[tokio::test]
async fn completing_a_deadline_cancels_its_pending_stages_at_once() {
    let w = World::new();
    let start = utc("2026-11-16T00:00:00Z");
    w.account("acme", Tokyo, start - Duration::days(1)).await;
    w.contact("acme", "u1", Tokyo, start - Duration::days(1))
        .await;
    deadline_set(
        &w,
        "e1",
        "2026-11-16T09:00:00+09:00",
        "2026-11-20T17:00:00+09:00",
    )
    .await;
    let wire = json!({
        "event_id": "e2",
        "account_id": "acme",
        "type": "deadline_completed",
        "occurred_at": "2026-11-16T10:00:00+09:00",
        "properties": { "deadline_id": "d1" },
    });
    let now = utc("2026-11-16T01:00:00Z");
    let event = parse_event(&wire, now).expect("a valid deadline_completed");
    registry::on_ingest(&w.deps, &event, now)
        .await
        .expect("ingest hook");

    let after = stages(&w).await;
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|n| n.status == NudgeStatus::Cancelled));
    assert!(
        after
            .iter()
            .all(|n| n.reason.as_deref() == Some("completed"))
    );
    sweep_every_15_minutes(&w, now, utc("2026-11-21T00:00:00Z")).await;
    assert!(w.outbox.sent().is_empty());
}

#[tokio::test]
async fn a_batch_applies_each_accounts_events_in_time_order_so_stages_follow_the_new_zone() {
    // The contact was in Tokyo; one batch moves them to New York and sets a deadline, with the
    // deadline first in the body but second in time.
    let w = World::new();
    let t0 = utc("2026-11-01T00:00:00Z");
    w.account("acme", Tokyo, t0).await;
    w.contact("acme", "u1", Tokyo, t0).await;
    let now = utc("2026-11-10T15:10:00Z");
    let wire = [
        json!({"event_id": "dl", "account_id": "acme", "contact_id": "u1",
            "type": "deadline_set", "occurred_at": "2026-11-10T15:05:00Z",
            "properties": {"deadline_id": "d1", "due_at": "2026-11-20T22:00:00Z",
                "title": "Quarterly report"}}),
        json!({"event_id": "move", "account_id": "acme", "contact_id": "u1",
            "type": "contact_upserted", "occurred_at": "2026-11-10T15:00:00Z",
            "properties": {"email": email("acme", "u1"), "name": "U1", "role": "user",
                "timezone": "America/New_York"}}),
    ];
    let parsed = wire.iter().map(|e| parse_event(e, now)).collect();
    let out = crate::ingest::ingest_batch(&w.deps, &Default::default(), parsed, now).await;
    assert_eq!((out.accepted, out.retry.len()), (2, 0), "{out:?}");
    let pending = with_status(&stages(&w).await, NudgeStatus::Pending);
    // 09:00 in New York on the due date (EST, UTC-5), not 09:00 in Tokyo.
    assert!(
        pending.contains(&("morning_of".into(), utc("2026-11-20T14:00:00Z"))),
        "{pending:?}"
    );
}

/// Applies wire events through the ingest batch path (effects, zone hooks, feature hooks),
/// received at `now`.
async fn ingest(w: &World, events: &[serde_json::Value], now: DateTime<Utc>) {
    let parsed = events.iter().map(|e| parse_event(e, now)).collect();
    let out = crate::ingest::ingest_batch(&w.deps, &Default::default(), parsed, now).await;
    assert_eq!(
        (out.accepted, out.rejected.len(), out.retry.len()),
        (events.len(), 0, 0),
        "{out:?}"
    );
}

fn contact_in(event_id: &str, occurred_at: &str, tz: &str) -> serde_json::Value {
    json!({"event_id": event_id, "account_id": "acme", "contact_id": "u1",
        "type": "contact_upserted", "occurred_at": occurred_at,
        "properties": {"email": email("acme", "u1"), "name": "U1", "role": "user",
            "timezone": tz}})
}

#[tokio::test]
async fn a_contact_who_moves_to_new_york_and_back_gets_the_unsent_stages_at_local_times_once() {
    let w = World::new();
    let start = utc("2026-11-16T00:00:00Z");
    w.account("acme", Tokyo, start - Duration::days(1)).await;
    w.contact("acme", "u1", Tokyo, start - Duration::days(1))
        .await;
    // Due Friday 17:00 in Tokyo: Tuesday 17:00, Friday 09:00 and 15:00 Tokyo time.
    deadline_set(
        &w,
        "e1",
        "2026-11-16T09:00:00+09:00",
        "2026-11-20T17:00:00+09:00",
    )
    .await;
    let wednesday = utc("2026-11-18T00:00:00Z");
    sweep_every_15_minutes(&w, start, wednesday).await;

    // Wednesday they move to New York, where the deadline is Friday 03:00: 09:00 on the day
    // comes after the final stage, so that stage goes.
    ingest(
        &w,
        &[contact_in(
            "move",
            "2026-11-18T00:00:00Z",
            "America/New_York",
        )],
        wednesday,
    )
    .await;
    let in_new_york = stages(&w).await;
    assert_eq!(
        with_status(&in_new_york, NudgeStatus::Sent),
        [("t_minus_3d".to_string(), utc("2026-11-17T08:00:00Z"))],
        "the sent stage stays sent"
    );
    assert_eq!(
        with_status(&in_new_york, NudgeStatus::Pending),
        [("final".to_string(), utc("2026-11-20T06:00:00Z"))]
    );
    let dropped = in_new_york
        .iter()
        .find(|n| n.status == NudgeStatus::Cancelled)
        .expect("the morning stage");
    assert_eq!(dropped.reason.as_deref(), Some("rezoned"));

    // The same profile again (a later upsert, same zone) changes nothing.
    ingest(
        &w,
        &[contact_in(
            "again",
            "2026-11-18T01:00:00Z",
            "America/New_York",
        )],
        wednesday + Duration::hours(1),
    )
    .await;
    assert_eq!(stages(&w).await, in_new_york);

    // Thursday they are back in Tokyo: the morning stage comes back under its own id.
    let thursday = utc("2026-11-19T00:00:00Z");
    sweep_every_15_minutes(&w, wednesday, thursday).await;
    ingest(
        &w,
        &[contact_in("back", "2026-11-19T00:00:00Z", "Asia/Tokyo")],
        thursday,
    )
    .await;
    let back = stages(&w).await;
    assert_eq!(back.len(), 3, "one nudge per stage: {back:?}");
    assert_eq!(
        with_status(&back, NudgeStatus::Pending),
        [
            ("morning_of".to_string(), utc("2026-11-20T00:00:00Z")),
            ("final".to_string(), utc("2026-11-20T06:00:00Z")),
        ]
    );

    sweep_every_15_minutes(&w, thursday, utc("2026-11-21T00:00:00Z")).await;
    let sent: Vec<(String, DateTime<Utc>)> = w
        .log()
        .await
        .into_iter()
        .filter(|e| e.status == LogStatus::Sent)
        .map(|e| (e.stage.map(|s| s.to_string()).unwrap_or_default(), e.at))
        .collect();
    assert_eq!(
        sent,
        [
            ("t_minus_3d".to_string(), utc("2026-11-17T08:00:00Z")),
            ("morning_of".to_string(), utc("2026-11-20T00:00:00Z")),
            ("final".to_string(), utc("2026-11-20T06:00:00Z")),
        ]
    );
}

#[tokio::test]
async fn an_account_moving_to_new_york_replans_the_stages_of_a_deadline_that_names_no_contact() {
    let w = World::new();
    let start = utc("2026-11-16T00:00:00Z");
    w.account("acme", Tokyo, start - Duration::days(1)).await;
    // No contact and no admin: the account's zone. Due Saturday 07:00 in Tokyo (Friday 17:00
    // in New York): Wednesday 08:00 (07:00 is in quiet hours) and 2 hours before; 09:00 on
    // the day would come after the final stage.
    let wire = json!({
        "event_id": "e1", "account_id": "acme", "type": "deadline_set",
        "occurred_at": "2026-11-16T00:00:00Z",
        "properties": {"deadline_id": "d1", "due_at": "2026-11-20T22:00:00Z",
            "title": "Quarterly report"},
    });
    ingest(&w, &[wire], start).await;
    assert_eq!(
        with_status(&stages(&w).await, NudgeStatus::Pending),
        [
            ("t_minus_3d".to_string(), utc("2026-11-17T23:00:00Z")),
            ("final".to_string(), utc("2026-11-20T20:00:00Z")),
        ]
    );

    let profile = json!({
        "event_id": "move", "account_id": "acme", "type": "account_upserted",
        "occurred_at": "2026-11-16T01:00:00Z",
        "properties": {"name": "acme Inc.", "plan": "pro", "industry": "saas",
            "timezone": "America/New_York", "locale": "en", "contract_start": "2026-01-01",
            "renewal_date": "2027-01-01", "renewals": 0, "arr": 12000},
    });
    ingest(&w, &[profile], start + Duration::hours(1)).await;
    let replanned = stages(&w).await;
    assert_eq!(
        with_status(&replanned, NudgeStatus::Pending),
        [
            ("t_minus_3d".to_string(), utc("2026-11-17T22:00:00Z")),
            ("morning_of".to_string(), utc("2026-11-20T14:00:00Z")),
            ("final".to_string(), utc("2026-11-20T20:00:00Z")),
        ]
    );
    let version = format!("dl/d1/{}/", start.timestamp_millis());
    assert!(
        replanned.iter().all(|n| n.nudge_id.starts_with(&version)),
        "the deadline's version, as planned"
    );
    assert!(replanned.iter().all(|n| n.contact_id.is_none()));
}
