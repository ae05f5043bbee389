//! The ingest write path over a crash: an event whose raw record was written but whose
//! effects never ran (the function timed out, panicked or ran out of memory right after step
//! 1) is applied by the client's resend, its usage counted once.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{World, utc};
use crate::events::{Event, parse_event};
use crate::ingest::{IngestCache, IngestOutcome, ingest_batch, raw_record};
use crate::store::{DayRollup, EventStore, ProfileStore};

fn now() -> DateTime<Utc> {
    utc("2026-11-20T15:00:00Z")
}

fn login(id: &str, contact: &str) -> Value {
    json!({"event_id": id, "account_id": "acme", "contact_id": contact, "type": "login",
           "occurred_at": "2026-11-20T10:00:00Z"})
}

fn unsubscribed(id: &str, contact: &str) -> Value {
    json!({"event_id": id, "account_id": "acme", "contact_id": contact, "type": "unsubscribed",
           "occurred_at": "2026-11-20T10:05:00Z", "properties": {"category": "success"}})
}

fn parsed(events: &[Value]) -> Vec<Event> {
    events
        .iter()
        .map(|e| parse_event(e, now()).expect("a valid event"))
        .collect()
}

async fn post(w: &World, cache: &IngestCache, events: &[Value]) -> IngestOutcome {
    let batch = parsed(events).into_iter().map(Ok).collect();
    ingest_batch(&w.deps, cache, batch, now()).await
}

/// Step 1 alone, as a function that crashed right after it leaves the table.
async fn crash_after_raw_write(w: &World, events: &[Value]) {
    let ttl = w.deps.config.raw_event_ttl_days;
    for e in parsed(events) {
        w.store
            .insert_raw_event(&raw_record(&e, now(), ttl))
            .await
            .expect("raw record");
    }
}

async fn day(w: &World) -> DayRollup {
    let d = NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
    let days = w.store.rollups("acme", d, d).await.expect("rollups");
    days.into_iter().next().unwrap_or_default()
}

async fn unsubscribed_from(w: &World, contact: &str) -> Vec<String> {
    let c = w.store.contact("acme", contact).await.expect("read");
    c.map(|c| c.unsubscribed.into_iter().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_resend_after_a_crash_past_the_raw_write_applies_the_unsubscribe_and_counts_once() {
    let w = World::new();
    let cache = IngestCache::default();
    let events = [
        login("l1", "u1"),
        login("l2", "u2"),
        unsubscribed("s1", "u1"),
    ];
    crash_after_raw_write(&w, &events).await;
    assert_eq!(day(&w).await.logins, 0);
    assert!(unsubscribed_from(&w, "u1").await.is_empty());

    let out = post(&w, &cache, &events).await;
    assert_eq!((out.accepted, out.duplicates), (3, 0), "{out:?}");
    assert_eq!(unsubscribed_from(&w, "u1").await, ["success"]);
    let d = day(&w).await;
    assert_eq!((d.events, d.logins, d.active_contacts.len()), (2, 2, 2));

    // The same resend once more: plain duplicates, nothing counted again.
    let again = post(&w, &cache, &events).await;
    assert_eq!((again.accepted, again.duplicates), (0, 3), "{again:?}");
    assert_eq!(day(&w).await.logins, 2);
}

#[tokio::test]
async fn a_resend_after_success_is_a_duplicate_with_no_second_rollup() {
    let w = World::new();
    let cache = IngestCache::default();
    let events = [login("l1", "u1"), unsubscribed("s1", "u1")];
    let first = post(&w, &cache, &events).await;
    assert_eq!((first.accepted, first.duplicates), (2, 0), "{first:?}");
    // A fresh container (no caches) sees the same: the record says applied.
    let again = post(&w, &IngestCache::default(), &events).await;
    assert_eq!((again.accepted, again.duplicates), (0, 2), "{again:?}");
    assert_eq!((day(&w).await.events, day(&w).await.logins), (1, 1));
}

#[tokio::test]
async fn an_event_repeated_in_one_body_is_applied_and_counted_once() {
    let w = World::new();
    let out = post(
        &w,
        &IngestCache::default(),
        &[login("l1", "u1"), login("l1", "u1")],
    )
    .await;
    assert_eq!((out.accepted, out.duplicates), (1, 1), "{out:?}");
    assert_eq!(day(&w).await.logins, 1);
}

#[tokio::test]
async fn a_large_accounts_day_keeps_a_bounded_set_of_contacts_and_counts_every_login() {
    let w = World::new();
    let cache = IngestCache::default();
    let max = crate::store::MAX_DAY_CONTACTS;
    for batch in 0..3 {
        let events: Vec<Value> = (0..max)
            .map(|i| login(&format!("l{batch}-{i}"), &format!("u{batch}-{i:03}")))
            .collect();
        let out = post(&w, &cache, &events).await;
        assert_eq!(out.accepted, max, "{out:?}");
    }
    let d = day(&w).await;
    assert_eq!(d.logins, 3 * max as u64);
    assert_eq!(d.active_contacts.len(), max, "full after the first batch");
}
