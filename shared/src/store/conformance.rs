//! The conditional semantics every `Store` adapter must share, as executable checks. The
//! memory adapter runs them in its unit tests; the DynamoDB adapter runs the same checks
//! against DynamoDB Local (`tests/it/store.rs`), so the two cannot drift apart unnoticed.
//!
//! Test support only (`cfg(test)` or the `test-support` feature): the checks panic on a
//! mismatch. Each check uses its own accounts and addresses, so all of them can share one
//! empty store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::{
    AccountChange, AddressFeedback, Applied, CapState, Counted, CountedEvents, DeadlineRecord,
    DeadlineStatus, EngagementKind, Inserted, MAX_DAY_CONTACTS, MessageRef, RawEvent, RollupDelta,
    SentMark, Store, StoreError, Upserted,
};
use crate::domain::{
    Channel, DeliveryLogEntry, LogStatus, Nudge, NudgeKind, NudgeStatus, SuppressionReason,
    UNKNOWN_OUTCOME,
};
use crate::events::{AccountProfile, ContactProfile, Locale, Role};

/// 2026-11-20 09:00 UTC plus `minutes`, with sub-millisecond noise the store must drop.
fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
        + Duration::minutes(minutes)
        + Duration::microseconds(250_700)
}

/// `t(minutes)` at the table's precision (milliseconds).
fn stored(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
        + Duration::minutes(minutes)
        + Duration::milliseconds(250)
}

fn bucket(minutes: i64) -> Vec<String> {
    vec![super::schema::due_bucket(t(minutes))]
}

/// Ids of `account`'s nudges on the due index in the bucket of `t(minutes)`: the index is
/// shared by every account, each check looks at its own.
async fn due(
    store: &dyn Store,
    account: &str,
    minutes: i64,
    shards: u32,
    now: DateTime<Utc>,
) -> Vec<String> {
    let due = store
        .due_nudges(&bucket(minutes), shards, now)
        .await
        .unwrap();
    due.into_iter()
        .filter(|n| n.account_id == account)
        .map(|n| n.nudge_id)
        .collect()
}

fn nudge(account: &str, id: &str, send_at: DateTime<Utc>, created: DateTime<Utc>) -> Nudge {
    Nudge::new(
        id,
        account,
        Some("u-1".into()),
        NudgeKind::RiskNudge,
        send_at,
        "test",
        created,
    )
}

/// Every stored item as text: what a Scan of the whole table returns (the memory adapter: its
/// maps). For the check that an erased person's data is in no item at all, whatever its kind.
#[async_trait]
pub trait ScanText: Send + Sync {
    async fn every_item_text(&self) -> Result<Vec<String>, StoreError>;
}

/// A store the checks can also read whole.
pub trait ScannableStore: Store + ScanText {}

impl<T: Store + ScanText> ScannableStore for T {}

/// Every check, one after the other.
pub async fn all(store: &dyn ScannableStore) {
    nudges_are_planned_once_and_found_by_bucket_and_time(store).await;
    a_lease_decides_who_marks_the_outcome(store).await;
    failing_needs_the_lease_and_the_claim(store).await;
    retries_defers_and_cancels_move_only_pending_nudges(store).await;
    profiles_are_last_writer_wins(store).await;
    deadlines_are_listed_and_a_rezoned_stage_reopens(store).await;
    cap_reservations_are_versioned(store).await;
    suppression_follows_feedback(store).await;
    engagement_counts_first_occurrences(store).await;
    deadlines_and_raw_events_keep_the_first_or_newest_write(store).await;
    rollups_firsts_log_and_checkpoints_accumulate(store).await;
    a_rollup_counts_applying_events_once(store).await;
    a_count_creates_its_records_once(store).await;
    index_pages_contacts_and_the_pulse_read_back(store).await;
    agenda_tasks_are_scheduled_once_found_by_time_and_finished(store).await;
    erasing_a_contact_cancels_redacts_and_forgets_it(store).await;
    erasing_a_contact_leaves_their_address_name_and_comments_in_no_item(store).await;
}

pub async fn nudges_are_planned_once_and_found_by_bucket_and_time(store: &dyn Store) {
    let n = nudge("c-plan", "n1", t(0), t(-60));
    assert!(store.put_nudge(&n, 4).await.unwrap());
    assert!(!store.put_nudge(&n, 4).await.unwrap(), "planned twice");
    let got = store.nudge("c-plan", "n1").await.unwrap().unwrap();
    assert_eq!((got.send_at, got.status), (stored(0), NudgeStatus::Pending));
    // Not due one minute early; due in its bucket once send_at <= now.
    assert!(due(store, "c-plan", 0, 4, t(-1)).await.is_empty());
    assert_eq!(due(store, "c-plan", 0, 4, t(0)).await, ["n1"]);
    assert!(due(store, "c-plan", -15, 4, t(0)).await.is_empty());
    // Planned late: its bucket is the creation time's.
    let late = nudge("c-plan", "n2", t(-120), t(30));
    store.put_nudge(&late, 4).await.unwrap();
    assert_eq!(due(store, "c-plan", 30, 4, t(30)).await, ["n2"]);
    let prefixed = store.nudges_with_prefix("c-plan", "n").await.unwrap();
    assert_eq!(prefixed.len(), 2);
    assert_eq!(store.nudges("c-plan").await.unwrap()[0].nudge_id, "n1");
}

pub async fn a_lease_decides_who_marks_the_outcome(store: &dyn Store) {
    let lease = Duration::minutes(15);
    let n = nudge("c-lease", "n1", t(0), t(-60));
    store.put_nudge(&n, 1).await.unwrap();
    let claimed = store
        .claim("c-lease", "n1", "run-a", t(0), lease)
        .await
        .unwrap();
    let claimed = claimed.expect("a pending nudge is claimed");
    assert_eq!(claimed.status, NudgeStatus::Claimed);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_until, Some(stored(15)));
    assert!(
        store
            .claim("c-lease", "n1", "run-b", t(0), lease)
            .await
            .unwrap()
            .is_none()
    );
    // Still on the due index while claimed (a later run resolves an expired lease).
    assert_eq!(due(store, "c-lease", 0, 1, t(1)).await.len(), 1);
    assert!(
        !store
            .mark_sent("c-lease", "n1", &SentMark::new("run-b", "pm-x", t(1)))
            .await
            .unwrap()
    );
    assert!(
        !store
            .expire_lease("c-lease", "n1", "run-a", t(15))
            .await
            .unwrap()
    );
    assert!(
        store
            .expire_lease("c-lease", "n1", "run-a", t(16))
            .await
            .unwrap()
    );
    let failed = store.nudge("c-lease", "n1").await.unwrap().unwrap();
    assert_eq!(failed.status, NudgeStatus::Failed);
    assert_eq!(failed.reason.as_deref(), Some(UNKNOWN_OUTCOME));
    assert!(due(store, "c-lease", 0, 1, t(16)).await.is_empty());
    // A slow owner that did send still records the truth.
    assert!(
        store
            .mark_sent("c-lease", "n1", &SentMark::new("run-a", "pm-1", t(17)))
            .await
            .unwrap()
    );
    let sent = store.nudge("c-lease", "n1").await.unwrap().unwrap();
    assert_eq!(sent.status, NudgeStatus::Sent);
    assert_eq!(sent.provider_message_id.as_deref(), Some("pm-1"));
    assert_eq!(
        (sent.sent_at, sent.lease_until, sent.reason),
        (Some(stored(17)), None, None)
    );
    assert!(
        store
            .claim("c-lease", "n1", "run-c", t(20), lease)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .mark_blocked("c-lease", "n1", "paused", t(20))
            .await
            .unwrap()
    );
}

pub async fn failing_needs_the_lease_and_the_claim(store: &dyn Store) {
    let lease = Duration::minutes(15);
    store
        .put_nudge(&nudge("c-lease", "n2", t(0), t(-60)), 1)
        .await
        .unwrap();
    assert!(
        !store
            .mark_failed("c-lease", "n2", "run-a", "x", t(1))
            .await
            .unwrap()
    );
    store
        .claim("c-lease", "n2", "run-a", t(0), lease)
        .await
        .unwrap();
    assert!(
        !store
            .mark_failed("c-lease", "n2", "run-b", "x", t(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_failed("c-lease", "n2", "run-a", "provider_rejected", t(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_failed("c-lease", "n2", "run-a", "again", t(1))
            .await
            .unwrap()
    );
}

pub async fn retries_defers_and_cancels_move_only_pending_nudges(store: &dyn Store) {
    let lease = Duration::minutes(15);
    for id in ["n1", "n2", "n3"] {
        store
            .put_nudge(&nudge("c-move", id, t(0), t(-60)), 2)
            .await
            .unwrap();
    }
    store
        .claim("c-move", "n1", "run-a", t(0), lease)
        .await
        .unwrap();
    assert!(
        !store
            .mark_retry("c-move", "n1", "run-b", t(30), "e", false, 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_retry(
                "c-move",
                "n1",
                "run-a",
                t(30),
                "provider_transient: x",
                false,
                2
            )
            .await
            .unwrap()
    );
    let retried = store.nudge("c-move", "n1").await.unwrap().unwrap();
    assert_eq!(
        (retried.status, retried.send_at),
        (NudgeStatus::Pending, stored(30))
    );
    assert_eq!((retried.lease_owner, retried.attempts), (None, 1));
    assert_eq!(retried.reason.as_deref(), Some("provider_transient: x"));
    assert_eq!(due(store, "c-move", 30, 2, t(30)).await, ["n1"]);
    // A throttled send is retried without counting the claim's attempt.
    let again = store.claim("c-move", "n1", "run-c", t(30), lease).await;
    assert_eq!(again.unwrap().map(|n| n.attempts), Some(2));
    assert!(
        store
            .mark_retry(
                "c-move",
                "n1",
                "run-c",
                t(30),
                "provider_throttled: x",
                true,
                2
            )
            .await
            .unwrap()
    );
    let refunded = store.nudge("c-move", "n1").await.unwrap().unwrap();
    assert_eq!(
        (refunded.status, refunded.attempts),
        (NudgeStatus::Pending, 1)
    );
    assert!(store.defer_pending("c-move", "n2", t(45), 2).await.unwrap());
    assert_eq!(due(store, "c-move", 0, 2, t(50)).await, ["n3"]);
    assert_eq!(due(store, "c-move", 45, 2, t(50)).await, ["n2"]);
    store
        .claim("c-move", "n3", "run-a", t(0), lease)
        .await
        .unwrap();
    assert!(!store.defer_pending("c-move", "n3", t(45), 2).await.unwrap());
    let all: Vec<String> = ["n1", "n2", "n3", "missing"].map(String::from).to_vec();
    assert_eq!(
        store
            .cancel_pending("c-move", &all, "moved", t(1))
            .await
            .unwrap(),
        2
    );
    let n2 = store.nudge("c-move", "n2").await.unwrap().unwrap();
    assert_eq!(
        (n2.status, n2.reason.as_deref()),
        (NudgeStatus::Cancelled, Some("moved"))
    );
    assert!(due(store, "c-move", 45, 2, t(50)).await.is_empty());
    assert!(
        !store
            .mark_blocked("c-move", "n2", "paused", t(2))
            .await
            .unwrap()
    );
}

fn account_profile(renewal: NaiveDate) -> AccountProfile {
    AccountProfile {
        name: "Acme".into(),
        plan: "pro".into(),
        industry: "saas".into(),
        tier: None,
        csm: None,
        timezone: chrono_tz::Asia::Tokyo,
        locale: Locale::Ja,
        contract_start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        renewal_date: renewal,
        renewals: 0,
        arr: 1000.0,
    }
}

pub async fn profiles_are_last_writer_wins(store: &dyn Store) {
    let jan = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    let feb = NaiveDate::from_ymd_opt(2027, 2, 1).unwrap();
    assert!(store.account("c-prof").await.unwrap().is_none());
    let profile = account_profile(jan);
    let up = |at| store.upsert_account("c-prof", &profile, at);
    assert_eq!(
        up(t(10)).await.unwrap(),
        Upserted::Applied { zone_before: None }
    );
    assert_eq!(up(t(5)).await.unwrap(), Upserted::Stale);
    assert_eq!(
        up(t(10)).await.unwrap(),
        Upserted::Stale,
        "same time is not newer"
    );
    let change = |c: AccountChange, at| async move { store.change_account("c-prof", &c, at).await };
    let reply = || AccountChange::Paused {
        until: None,
        reason: None,
    };
    assert_eq!(change(reply(), t(20)).await.unwrap(), Applied::Applied);
    assert_eq!(
        change(AccountChange::Resumed, t(15)).await.unwrap(),
        Applied::Stale
    );
    let renewed = AccountChange::Renewed {
        renewal_date: Some(feb),
    };
    assert_eq!(
        change(renewed, t(1)).await.unwrap(),
        Applied::Applied,
        "own clock"
    );
    let a = store.account("c-prof").await.unwrap().unwrap();
    assert!(a.paused);
    assert_eq!(
        (a.paused_at, a.profile_at, a.renewed_at),
        (Some(stored(20)), Some(stored(10)), Some(stored(1)))
    );
    assert_eq!(a.profile.map(|p| p.renewal_date), Some(feb));
    assert_eq!(
        change(AccountChange::Resumed, t(25)).await.unwrap(),
        Applied::Applied
    );
    assert!(!store.account("c-prof").await.unwrap().unwrap().paused);

    // An operator's pause keeps its end and reason; it holds until then, not after.
    let operator = AccountChange::Paused {
        until: Some(t(90)),
        reason: Some("migration".into()),
    };
    assert_eq!(change(operator, t(30)).await.unwrap(), Applied::Applied);
    let a = store.account("c-prof").await.unwrap().unwrap();
    assert_eq!(
        (a.paused_until, a.pause_reason.as_deref()),
        (Some(stored(90)), Some("migration"))
    );
    assert!(a.is_paused(t(89)) && !a.is_paused(t(90)));
    // A reply after it replaces it whole: indefinite, no reason.
    assert_eq!(change(reply(), t(35)).await.unwrap(), Applied::Applied);
    let a = store.account("c-prof").await.unwrap().unwrap();
    assert!(a.is_paused(t(10_000)));
    assert_eq!((a.paused_until, a.pause_reason), (None, None));
    let operator = AccountChange::Paused {
        until: Some(t(90)),
        reason: Some("migration".into()),
    };
    assert_eq!(change(operator, t(40)).await.unwrap(), Applied::Applied);
    // A resume clears the end and reason with the flag.
    assert_eq!(
        change(AccountChange::Resumed, t(45)).await.unwrap(),
        Applied::Applied
    );
    let a = store.account("c-prof").await.unwrap().unwrap();
    assert_eq!(
        (a.paused, a.paused_until, a.pause_reason),
        (false, None, None)
    );

    assert!(store.contact("c-prof", "u-1").await.unwrap().is_none());
    let contact = ContactProfile {
        email: "u1@example.test".into(),
        phone: None,
        name: "U".into(),
        role: Role::Admin,
        timezone: None,
        locale: None,
    };
    let upc = |at| store.upsert_contact("c-prof", "u-1", &contact, at);
    assert_eq!(
        upc(t(10)).await.unwrap(),
        Upserted::Applied { zone_before: None }
    );
    assert_eq!(upc(t(9)).await.unwrap(), Upserted::Stale);
    store
        .unsubscribe("c-prof", "u-1", "reminders")
        .await
        .unwrap();
    store.unsubscribe("c-prof", "u-2", "all").await.unwrap();
    let c = store.contact("c-prof", "u-1").await.unwrap().unwrap();
    assert_eq!((c.profile_at, c.unsubscribed.len()), (Some(stored(10)), 1));
    let bare = store.contact("c-prof", "u-2").await.unwrap().unwrap();
    assert!(bare.profile.is_none() && bare.unsubscribed.contains("all"));

    // An upsert says which zone it replaced, from the write itself.
    let moved = |tz| ContactProfile {
        timezone: Some(tz),
        ..contact.clone()
    };
    let ny = chrono_tz::America::New_York;
    assert_eq!(
        store
            .upsert_contact("c-prof", "u-1", &moved(ny), t(11))
            .await
            .unwrap(),
        Upserted::Applied { zone_before: None },
        "the profile had no zone"
    );
    assert_eq!(
        store
            .upsert_contact("c-prof", "u-1", &moved(chrono_tz::Asia::Tokyo), t(12))
            .await
            .unwrap(),
        Upserted::Applied {
            zone_before: Some(ny)
        }
    );
    assert_eq!(
        store
            .upsert_contact("c-prof", "u-2", &moved(ny), t(12))
            .await
            .unwrap(),
        Upserted::Applied { zone_before: None },
        "a contact known only by an unsubscribe"
    );
    let in_ny = AccountProfile {
        timezone: ny,
        ..account_profile(jan)
    };
    assert_eq!(
        store.upsert_account("c-prof", &in_ny, t(50)).await.unwrap(),
        Upserted::Applied {
            zone_before: Some(chrono_tz::Asia::Tokyo)
        }
    );
    let strong = store.account_consistent("c-prof").await.unwrap().unwrap();
    assert_eq!(
        (strong.profile.map(|p| p.timezone), strong.profile_at),
        (Some(ny), Some(stored(50)))
    );
    let strong = store
        .contact_consistent("c-prof", "u-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (strong.profile.and_then(|p| p.timezone), strong.profile_at),
        (Some(chrono_tz::Asia::Tokyo), Some(stored(12)))
    );
    assert_eq!(
        store.contact_consistent("c-prof", "u-9").await.unwrap(),
        None
    );
}

pub async fn deadlines_are_listed_and_a_rezoned_stage_reopens(store: &dyn Store) {
    let deadline = |id: &str| DeadlineRecord {
        deadline_id: id.into(),
        contact_id: Some("u-1".into()),
        due_at: t(600),
        title: "Report".into(),
        kind: None,
        link: None,
        status: DeadlineStatus::Active,
        updated_at: t(0),
    };
    for (account, id) in [("c-dl", "d2"), ("c-dl", "d1"), ("c-dl-other", "d3")] {
        store.put_deadline(account, &deadline(id)).await.unwrap();
    }
    let completed = DeadlineRecord {
        status: DeadlineStatus::Completed,
        updated_at: t(1),
        ..deadline("d2")
    };
    store.put_deadline("c-dl", &completed).await.unwrap();
    let listed: Vec<(String, DeadlineStatus)> = store
        .deadlines("c-dl")
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.deadline_id, d.status))
        .collect();
    assert_eq!(
        listed,
        [
            ("d1".to_string(), DeadlineStatus::Active),
            ("d2".to_string(), DeadlineStatus::Completed)
        ]
    );
    assert!(store.deadlines("c-dl-none").await.unwrap().is_empty());

    let shards = 2;
    for id in ["n1", "n2"] {
        store
            .put_nudge(&nudge("c-dl", id, t(0), t(-60)), shards)
            .await
            .unwrap();
    }
    let reopen = |id: &'static str, reason: &'static str, at| {
        store.reopen_cancelled("c-dl", id, reason, at, shards)
    };
    assert!(!reopen("n1", "rezoned", t(30)).await.unwrap(), "pending");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .cancel_pending("c-dl", &ids(&["n1"]), "rezoned", t(1))
        .await
        .unwrap();
    store
        .cancel_pending("c-dl", &ids(&["n2"]), "moved", t(1))
        .await
        .unwrap();
    assert!(due(store, "c-dl", 0, shards, t(5)).await.is_empty());
    assert!(
        !reopen("n2", "rezoned", t(30)).await.unwrap(),
        "cancelled for another reason"
    );
    assert!(reopen("n1", "rezoned", t(30)).await.unwrap());
    let n1 = store.nudge("c-dl", "n1").await.unwrap().unwrap();
    assert_eq!(
        (n1.status, n1.send_at, n1.reason),
        (NudgeStatus::Pending, stored(30), None)
    );
    assert_eq!(due(store, "c-dl", 30, shards, t(30)).await, ["n1"]);
    assert!(!reopen("n1", "rezoned", t(45)).await.unwrap(), "once");
    assert_eq!(
        store.nudge("c-dl", "n2").await.unwrap().unwrap().status,
        NudgeStatus::Cancelled
    );
}

pub async fn cap_reservations_are_versioned(store: &dyn Store) {
    let fresh = store.cap_state("c-cap", "u-1").await.unwrap();
    assert_eq!(fresh, CapState::default());
    assert!(
        store
            .reserve_cap("c-cap", "u-1", "old", t(0) - Duration::days(9), &fresh)
            .await
            .unwrap()
    );
    assert!(
        !store
            .reserve_cap("c-cap", "u-1", "n1", t(0), &fresh)
            .await
            .unwrap(),
        "stale version"
    );
    let v1 = store.cap_state("c-cap", "u-1").await.unwrap();
    assert_eq!(v1.version, 1);
    assert!(
        store
            .reserve_cap("c-cap", "u-1", "n1", t(0), &v1)
            .await
            .unwrap()
    );
    let v2 = store.cap_state("c-cap", "u-1").await.unwrap();
    // Pruned to the last 8 days.
    assert_eq!(v2.version, 2);
    assert_eq!(v2.sends, BTreeMap::from([("n1".to_string(), stored(0))]));
    assert!(
        !store
            .reserve_cap("c-cap", "u-1", "n2", t(1), &v1)
            .await
            .unwrap()
    );
    // A reservation alone makes the contact exist (without a profile).
    assert!(
        store
            .contact("c-cap", "u-1")
            .await
            .unwrap()
            .is_some_and(|c| c.profile.is_none())
    );
}

pub async fn suppression_follows_feedback(store: &dyn Store) {
    let a = "Complainer@Example.test";
    assert!(store.suppression(a).await.unwrap().is_none());
    let s = store
        .record_address_feedback(a, AddressFeedback::Complaint, t(0))
        .await
        .unwrap();
    assert_eq!(s.and_then(|s| s.reason), Some(SuppressionReason::Complaint));
    let hb = store
        .record_address_feedback(a, AddressFeedback::HardBounce, t(1))
        .await
        .unwrap();
    assert!(hb.is_none(), "a complaint is never downgraded");
    let s = store
        .suppression(" complainer@example.TEST ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.reason, s.updated_at),
        (Some(SuppressionReason::Complaint), Some(stored(0)))
    );

    let b = "soft@example.test";
    let soft = AddressFeedback::SoftBounce { limit: 2 };
    let s1 = store
        .record_address_feedback(b, soft, t(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s1.reason, s1.soft_streak), (None, 1));
    let s2 = store
        .record_address_feedback(b, soft, t(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s2.reason, s2.soft_streak),
        (Some(SuppressionReason::SoftBounce), 2)
    );
    let s3 = store
        .record_address_feedback(b, soft, t(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s3.reason, s3.soft_streak),
        (Some(SuppressionReason::SoftBounce), 3)
    );
    let d = store
        .record_address_feedback(b, AddressFeedback::Delivered, t(3))
        .await
        .unwrap();
    assert_eq!(d.map(|d| d.soft_streak), Some(0));
    let again = store
        .record_address_feedback(b, AddressFeedback::Delivered, t(4))
        .await
        .unwrap();
    assert!(again.is_none(), "nothing to reset");
    let nobody =
        store.record_address_feedback("new@example.test", AddressFeedback::Delivered, t(0));
    assert!(nobody.await.unwrap().is_none());
    assert!(
        store
            .suppression("new@example.test")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn engagement_counts_first_occurrences(store: &dyn Store) {
    let n = nudge("c-eng", "n1", t(0), t(-60));
    store.put_nudge(&n, 1).await.unwrap();
    let r = MessageRef {
        account_id: "c-eng".into(),
        nudge_id: "n1".into(),
        kind: "risk_nudge".into(),
        variant: "a".into(),
    };
    assert!(store.message_ref("pm-eng").await.unwrap().is_none());
    store.record_message("pm-eng", &r, t(0)).await.unwrap();
    assert_eq!(store.message_ref("pm-eng").await.unwrap(), Some(r.clone()));
    store.count_sent("risk_nudge", "a").await.unwrap();
    assert!(
        store
            .record_engagement(&r, EngagementKind::Opened, t(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_engagement(&r, EngagementKind::Opened, t(6))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_engagement(&r, EngagementKind::Delivered, t(1))
            .await
            .unwrap()
    );
    let unknown = MessageRef {
        nudge_id: "missing".into(),
        ..r.clone()
    };
    assert!(
        !store
            .record_engagement(&unknown, EngagementKind::Opened, t(5))
            .await
            .unwrap()
    );
    let got = store.nudge("c-eng", "n1").await.unwrap().unwrap();
    assert_eq!(got.engagement.opened_at, Some(stored(5)));
    let stats = store.kind_stats().await.unwrap();
    let s = stats
        .iter()
        .find(|s| s.kind == "risk_nudge" && s.variant == "a")
        .unwrap();
    assert_eq!((s.sent, s.delivered, s.opened, s.clicked), (1, 1, 1, 0));
}

pub async fn deadlines_and_raw_events_keep_the_first_or_newest_write(store: &dyn Store) {
    let d = DeadlineRecord {
        deadline_id: "d1".into(),
        contact_id: None,
        due_at: t(600),
        title: "Report".into(),
        kind: None,
        link: None,
        status: DeadlineStatus::Active,
        updated_at: t(0),
    };
    assert_eq!(
        store.put_deadline("c-misc", &d).await.unwrap(),
        Applied::Applied
    );
    let older = DeadlineRecord {
        updated_at: t(-1),
        status: DeadlineStatus::Cancelled,
        ..d.clone()
    };
    assert_eq!(
        store.put_deadline("c-misc", &older).await.unwrap(),
        Applied::Stale
    );
    let got = store.deadline("c-misc", "d1").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.updated_at, got.due_at),
        (DeadlineStatus::Active, stored(0), stored(600))
    );

    let ev = RawEvent {
        account_id: "c-misc".into(),
        event_id: "e1".into(),
        event_type: "login",
        contact_id: Some("u-1".into()),
        occurred_at: t(0),
        received_at: t(1),
        body: "{}".into(),
        expires_at: 1_900_000_000,
    };
    assert_eq!(store.insert_raw_event(&ev).await.unwrap(), Inserted::New);
    // Written `applying` since its receipt: until confirmed, the record is unfinished.
    assert_eq!(
        store.insert_raw_event(&ev).await.unwrap(),
        Inserted::Unfinished { since: stored(1) }
    );
    store.mark_applied("c-misc", "e1").await.unwrap();
    assert_eq!(
        store.insert_raw_event(&ev).await.unwrap(),
        Inserted::Duplicate
    );
    let raw = store.raw_events("c-misc").await.unwrap();
    assert_eq!((raw.len(), raw[0].occurred_at), (1, stored(0)));
    // Confirming an event that has no record creates none.
    store.mark_applied("c-misc", "e-none").await.unwrap();
    assert_eq!(store.raw_events("c-misc").await.unwrap().len(), 1);
}

/// The rollup of applying events is counted once: together with their confirmation, and not
/// at all if any of them was confirmed already.
pub async fn a_rollup_counts_applying_events_once(store: &dyn Store) {
    let account = "c-count";
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let raw = |id: &str| RawEvent {
        account_id: account.into(),
        event_id: id.into(),
        event_type: "login",
        contact_id: Some("u-1".into()),
        occurred_at: t(0),
        received_at: t(1),
        body: "{}".into(),
        expires_at: 1_900_000_000,
    };
    for id in ["e1", "e2", "e3"] {
        assert_eq!(
            store.insert_raw_event(&raw(id)).await.unwrap(),
            Inserted::New
        );
    }
    let logins = |n: u64, contact: &str| RollupDelta {
        events: n,
        logins: n,
        contacts: [contact.to_string()].into(),
        ..Default::default()
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    fn confirm(v: &[String]) -> CountedEvents<'_> {
        CountedEvents {
            confirm: v,
            create: &[],
        }
    }
    assert_eq!(
        store
            .count_applied(
                account,
                day,
                &logins(2, "u-1"),
                confirm(&ids(&["e1", "e2"]))
            )
            .await
            .unwrap(),
        Counted::Counted {
            contacts_full: false
        }
    );
    for id in ["e1", "e2"] {
        assert_eq!(
            store.insert_raw_event(&raw(id)).await.unwrap(),
            Inserted::Duplicate,
            "{id} is confirmed with its count"
        );
    }
    // A second count naming a confirmed event writes nothing and says which one.
    assert_eq!(
        store
            .count_applied(
                account,
                day,
                &logins(2, "u-2"),
                confirm(&ids(&["e2", "e3"]))
            )
            .await
            .unwrap(),
        Counted::Conflicts {
            applied: ids(&["e2"]),
            unfinished: vec![],
        }
    );
    let r = store.rollups(account, day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].logins), (2, 2));
    assert_eq!(r[0].active_contacts, ["u-1".to_string()].into());
    assert_eq!(
        store.insert_raw_event(&raw("e3")).await.unwrap(),
        Inserted::Unfinished { since: stored(1) }
    );

    // A day's contacts stop growing at the cap; the counters still add up.
    let full = RollupDelta {
        events: 1,
        logins: 1,
        contacts: (0..MAX_DAY_CONTACTS).map(|i| format!("c{i:03}")).collect(),
        ..Default::default()
    };
    store.add_rollup(account, day, &full).await.unwrap();
    assert_eq!(
        store
            .count_applied(account, day, &logins(1, "u-late"), confirm(&ids(&["e3"])))
            .await
            .unwrap(),
        Counted::Counted {
            contacts_full: true
        }
    );
    store
        .add_rollup(account, day, &logins(1, "u-later"))
        .await
        .unwrap();
    let r = store.rollups(account, day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].logins), (5, 5));
    assert_eq!(r[0].active_contacts.len(), MAX_DAY_CONTACTS + 1);
    assert!(!r[0].active_contacts.contains("u-late"));
    assert_eq!(
        store.insert_raw_event(&raw("e3")).await.unwrap(),
        Inserted::Duplicate
    );
}

/// Records created by their count exist exactly when it counted them: a count that would
/// create an existing record writes nothing and says whether that record was counted already
/// or is an earlier attempt's, still `applying`.
pub async fn a_count_creates_its_records_once(store: &dyn Store) {
    let account = "c-create";
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let raw = |id: &str| RawEvent {
        account_id: account.into(),
        event_id: id.into(),
        event_type: "feature_used",
        contact_id: Some("u-1".into()),
        occurred_at: t(0),
        received_at: t(1),
        body: r#"{"type":"feature_used"}"#.into(),
        expires_at: 1_900_000_000,
    };
    let uses = |n: u64| RollupDelta {
        events: n,
        features: BTreeMap::from([("export".to_string(), n)]),
        contacts: ["u-1".to_string()].into(),
        ..Default::default()
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let created = [raw("e1"), raw("e2")];
    fn count(create: &[RawEvent]) -> CountedEvents<'_> {
        CountedEvents {
            confirm: &[],
            create,
        }
    }
    assert_eq!(
        store
            .count_applied(account, day, &uses(2), count(&created))
            .await
            .unwrap(),
        Counted::Counted {
            contacts_full: false
        }
    );
    let stored = store.raw_events(account).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.event_id.as_str(), e.body.as_str(), e.expires_at))
            .collect::<Vec<_>>(),
        [
            ("e1", r#"{"type":"feature_used"}"#, 1_900_000_000),
            ("e2", r#"{"type":"feature_used"}"#, 1_900_000_000)
        ]
    );
    // Created applied: a resend is a plain duplicate.
    assert_eq!(
        store.insert_raw_event(&raw("e1")).await.unwrap(),
        Inserted::Duplicate
    );

    // An earlier attempt's record still `applying` is to be confirmed, a counted one dropped;
    // nothing of the count is written meanwhile.
    assert_eq!(
        store.insert_raw_event(&raw("e3")).await.unwrap(),
        Inserted::New
    );
    assert_eq!(
        store
            .count_applied(
                account,
                day,
                &uses(3),
                count(&[raw("e2"), raw("e3"), raw("e4")])
            )
            .await
            .unwrap(),
        Counted::Conflicts {
            applied: ids(&["e2"]),
            unfinished: ids(&["e3"]),
        }
    );
    assert_eq!(
        store.raw_events(account).await.unwrap().len(),
        3,
        "e4 not created"
    );
    let r = store.rollups(account, day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].features["export"]), (2, 2));

    let e3 = ids(&["e3"]);
    let both = CountedEvents {
        confirm: &e3,
        create: &[raw("e4")],
    };
    assert_eq!(
        store
            .count_applied(account, day, &uses(2), both)
            .await
            .unwrap(),
        Counted::Counted {
            contacts_full: false
        }
    );
    for id in ["e3", "e4"] {
        assert_eq!(
            store.insert_raw_event(&raw(id)).await.unwrap(),
            Inserted::Duplicate,
            "{id} is counted"
        );
    }
    let r = store.rollups(account, day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].features["export"]), (4, 4));
}

pub async fn rollups_firsts_log_and_checkpoints_accumulate(store: &dyn Store) {
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let delta = RollupDelta {
        events: 2,
        logins: 1,
        features: BTreeMap::from([("dashboard".to_string(), 2)]),
        contacts: ["u-1".to_string()].into(),
        ..Default::default()
    };
    store.add_rollup("c-misc", day(20), &delta).await.unwrap();
    store.add_rollup("c-misc", day(20), &delta).await.unwrap();
    store.add_rollup("c-misc", day(22), &delta).await.unwrap();
    store
        .add_rollup("c-misc", day(21), &RollupDelta::default())
        .await
        .unwrap();
    let r = store.rollups("c-misc", day(20), day(21)).await.unwrap();
    assert_eq!(
        r.len(),
        1,
        "an empty delta writes nothing; the range is inclusive"
    );
    assert_eq!((r[0].events, r[0].logins, r[0].reports), (4, 2, 0));
    assert_eq!(r[0].features.get("dashboard"), Some(&4));
    assert_eq!(
        store
            .rollups("c-misc", day(20), day(22))
            .await
            .unwrap()
            .len(),
        2
    );
    let first = BTreeMap::from([("report".to_string(), t(5))]);
    let new = store.record_firsts("c-misc", &first).await.unwrap();
    assert_eq!(new.into_iter().collect::<Vec<_>>(), ["report"]);
    let again = BTreeMap::from([
        ("report".to_string(), t(1)),
        ("feature_dashboard".to_string(), t(1)),
    ]);
    let new = store.record_firsts("c-misc", &again).await.unwrap();
    assert_eq!(
        new.into_iter().collect::<Vec<_>>(),
        ["feature_dashboard"],
        "only what was absent is a first"
    );
    // The same event applied again (a crash, a lost answer) still finds its firsts; a later
    // occurrence does not.
    assert_eq!(
        store
            .record_firsts("c-misc", &again)
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["feature_dashboard"]
    );
    let later = BTreeMap::from([("feature_dashboard".to_string(), t(2))]);
    assert!(
        store
            .record_firsts("c-misc", &later)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.firsts("c-misc").await.unwrap().get("report"),
        Some(&stored(5))
    );

    for (id, at) in [("n2", t(2)), ("n1", t(1))] {
        store
            .append_log(&log_entry("c-misc", id, at))
            .await
            .unwrap();
    }
    let log = store.delivery_log("c-misc").await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.nudge_id.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    // The entry keeps whole seconds.
    assert_eq!(
        log[0].at,
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 1, 0).unwrap()
    );
    assert!(store.all_delivery_log().await.unwrap().len() >= 2);
    // From a time on: the key range includes an entry at exactly that time.
    let since = |at| store.delivery_log_since("c-misc", at);
    let ids = |log: Vec<DeliveryLogEntry>| log.into_iter().map(|e| e.nudge_id).collect::<Vec<_>>();
    assert_eq!(ids(since(t(2)).await.unwrap()), ["n2"]);
    assert_eq!(ids(since(t(0)).await.unwrap()), ["n1", "n2"]);
    assert!(since(t(3)).await.unwrap().is_empty());
    assert!(
        store
            .delivery_log_since("c-misc-other", t(0))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.checkpoint("misc").await.unwrap(), None);
    store.set_checkpoint("misc", t(10)).await.unwrap();
    store.set_checkpoint("misc", t(5)).await.unwrap();
    assert_eq!(store.checkpoint("misc").await.unwrap(), Some(stored(10)));
    store.set_checkpoint("misc", t(11)).await.unwrap();
    assert_eq!(store.checkpoint("misc").await.unwrap(), Some(stored(11)));
}

fn log_entry(account: &str, nudge_id: &str, at: DateTime<Utc>) -> DeliveryLogEntry {
    DeliveryLogEntry {
        at,
        function: "test".into(),
        kind: NudgeKind::RiskNudge,
        stage: None,
        channel: Channel::Email,
        account_id: account.into(),
        contact_id: None,
        to: String::new(),
        subject: "s".into(),
        locale: "en".into(),
        status: LogStatus::Sent,
        reason: None,
        nudge_id: nudge_id.into(),
        variant: "a".into(),
        provider_message_id: None,
    }
}

pub async fn index_pages_contacts_and_the_pulse_read_back(store: &dyn Store) {
    use crate::store::HealthPulse;
    // One shard, so every account lands in it.
    for id in ["p-c", "p-a", "p-e", "p-b", "p-d"] {
        store.index_account(id, t(1), 1).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .indexed_accounts_page(0, 1, after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.accounts.len() <= 2);
        seen.extend(page.accounts.iter().map(|a| a.account_id.clone()));
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    let ids: Vec<&str> = seen.iter().map(String::as_str).collect();
    assert!(ids.starts_with(&["p-a", "p-b", "p-c", "p-d", "p-e"]));
    assert_eq!(ids.len(), 5, "each account once: {ids:?}");
    assert!(store.indexed_accounts_page(1, 1, None, 2).await.is_err());
    store.index_account("p-a", t(5), 1).await.unwrap();
    let a = store.indexed_account("p-a", 1).await.unwrap().unwrap();
    assert_eq!(a.first_seen, stored(1), "the first sighting stays");
    assert_eq!(store.indexed_account("p-none", 1).await.unwrap(), None);

    let contact = |role| ContactProfile {
        email: "x@example.test".into(),
        phone: None,
        name: "X".into(),
        role,
        timezone: None,
        locale: None,
    };
    store
        .upsert_contact("c-pulse", "boss", &contact(Role::Executive), t(1))
        .await
        .unwrap();
    store
        .upsert_contact("c-pulse", "adm", &contact(Role::Admin), t(1))
        .await
        .unwrap();
    store
        .upsert_contact("c-other", "zed", &contact(Role::User), t(1))
        .await
        .unwrap();
    let contacts = store.contacts("c-pulse").await.unwrap();
    let listed: Vec<(&str, Option<Role>)> = contacts
        .iter()
        .map(|c| (c.contact_id.as_str(), c.profile.as_ref().map(|p| p.role)))
        .collect();
    assert_eq!(
        listed,
        [("adm", Some(Role::Admin)), ("boss", Some(Role::Executive))]
    );

    let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    let from = day(1);
    assert_eq!(
        store
            .health_record("c-pulse", from, from)
            .await
            .unwrap()
            .pulse,
        HealthPulse::default()
    );
    let pulse = HealthPulse {
        band: Some("red".into()),
        since: Some(day(2)),
        previous_band: Some("yellow".into()),
        upsell_for: Some(day(20)),
    };
    store.put_pulse("c-pulse", &pulse).await.unwrap();
    assert_eq!(
        store
            .health_record("c-pulse", from, from)
            .await
            .unwrap()
            .pulse,
        pulse
    );
    let moved = HealthPulse {
        band: Some("green".into()),
        ..HealthPulse::default()
    };
    store.put_pulse("c-pulse", &moved).await.unwrap();
    assert_eq!(
        store
            .health_record("c-pulse", from, from)
            .await
            .unwrap()
            .pulse,
        moved,
        "replaced whole"
    );
}

pub async fn agenda_tasks_are_scheduled_once_found_by_time_and_finished(store: &dyn Store) {
    use crate::store::AgendaTask;
    let task = |account: &str, name: &str, at| AgendaTask {
        account_id: account.into(),
        task: name.into(),
        due_at: at,
    };
    let shards = 3;
    // t(m) is 09:00 + m minutes (+ 250.7 ms): two hour buckets, 09 and 10.
    assert!(
        store
            .schedule_task(&task("c-ag", "welcome", t(10)), shards)
            .await
            .unwrap()
    );
    assert!(
        store
            .schedule_task(&task("c-ag", "check_07", t(70)), shards)
            .await
            .unwrap()
    );
    assert!(
        store
            .schedule_task(&task("c-ag2", "welcome", t(30)), shards)
            .await
            .unwrap()
    );
    assert!(
        !store
            .schedule_task(&task("c-ag", "welcome", t(500)), shards)
            .await
            .unwrap(),
        "one per account and task"
    );
    let names = |tasks: Vec<AgendaTask>| -> Vec<(String, String)> {
        tasks.into_iter().map(|t| (t.account_id, t.task)).collect()
    };
    let due = store.due_tasks(t(0), t(40), shards).await.unwrap();
    assert_eq!(due[0].due_at, stored(10));
    assert_eq!(
        names(due),
        [
            ("c-ag".into(), "welcome".into()),
            ("c-ag2".into(), "welcome".into())
        ]
    );
    assert_eq!(
        names(store.due_tasks(t(0), t(75), shards).await.unwrap()).len(),
        3
    );
    assert_eq!(
        names(store.due_tasks(t(20), t(75), shards).await.unwrap()),
        [
            ("c-ag2".into(), "welcome".into()),
            ("c-ag".into(), "check_07".into())
        ],
        "from the lower bound on"
    );
    store.finish_task("c-ag", "welcome", t(41)).await.unwrap();
    store.finish_task("c-ag", "welcome", t(42)).await.unwrap();
    store.finish_task("c-none", "welcome", t(42)).await.unwrap();
    assert_eq!(
        names(store.due_tasks(t(0), t(75), shards).await.unwrap()),
        [
            ("c-ag2".into(), "welcome".into()),
            ("c-ag".into(), "check_07".into())
        ]
    );
    assert!(
        !store
            .schedule_task(&task("c-ag", "welcome", t(600)), shards)
            .await
            .unwrap(),
        "a finished task is never scheduled again"
    );
}

pub async fn erasing_a_contact_cancels_redacts_and_forgets_it(store: &dyn Store) {
    use crate::store::{ContactErasure, ERASED};
    let (account, shards) = ("c-erase", 4);
    let profile = |email: &str| ContactProfile {
        email: email.into(),
        phone: Some("+81312345678".into()),
        name: "Ann".into(),
        role: Role::Admin,
        timezone: None,
        locale: None,
    };
    for c in ["u-1", "u-2"] {
        let email = format!("{c}@example.test");
        store
            .upsert_contact(account, c, &profile(&email), t(0))
            .await
            .unwrap();
    }
    let cap = store.cap_state(account, "u-1").await.unwrap();
    assert!(
        store
            .reserve_cap(account, "u-1", "sent", t(1), &cap)
            .await
            .unwrap()
    );
    let vars = serde_json::json!({"title": "Ann's renewal"});
    let of = |id: &str, contact: &str| {
        let mut n = nudge(account, id, t(30), t(0)).with_vars(vars.clone());
        n.contact_id = Some(contact.into());
        n
    };
    for n in [of("pending", "u-1"), of("sent", "u-1"), of("other", "u-2")] {
        store.put_nudge(&n, shards).await.unwrap();
    }
    let lease = Duration::minutes(15);
    store
        .claim(account, "sent", "run", t(30), lease)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .mark_sent(account, "sent", &SentMark::new("run", "pm-erase", t(30)))
            .await
            .unwrap()
    );
    for (id, contact, at) in [("sent", "u-1", t(30)), ("other", "u-2", t(31))] {
        let mut e = log_entry(account, id, at);
        e.contact_id = Some(contact.into());
        e.to = format!("{contact}@example.test");
        e.subject = "Ann, your renewal".into();
        store.append_log(&e).await.unwrap();
    }
    store
        .record_address_feedback("u-1@example.test", AddressFeedback::HardBounce, t(31))
        .await
        .unwrap();

    let erased = store.erase_contact(account, "u-1", t(40)).await.unwrap();
    assert_eq!(
        erased,
        Some(ContactErasure {
            cancelled: 1,
            nudges_redacted: 2,
            in_flight: 0,
            log_entries_redacted: 1,
            cap_reservations: 1,
            ..ContactErasure::default()
        })
    );
    assert_eq!(store.contact(account, "u-1").await.unwrap(), None);
    assert_eq!(
        store.cap_state(account, "u-1").await.unwrap(),
        CapState::default()
    );
    let pending = store.nudge(account, "pending").await.unwrap().unwrap();
    assert_eq!(pending.status, NudgeStatus::Cancelled);
    assert_eq!(pending.reason.as_deref(), Some(ERASED));
    assert_eq!(pending.vars, serde_json::json!({}));
    assert!(
        due(store, account, 30, shards, t(45)).await == ["other"],
        "a cancelled nudge leaves the due index"
    );
    let sent = store.nudge(account, "sent").await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.vars),
        (NudgeStatus::Sent, serde_json::json!({}))
    );
    let other = store.nudge(account, "other").await.unwrap().unwrap();
    assert_eq!(other.vars, vars, "another contact's nudge is untouched");
    let log = store.delivery_log(account).await.unwrap();
    assert_eq!(log.len(), 2, "entries stay for the counts");
    assert_eq!((log[0].to.as_str(), log[0].subject.as_str()), ("", ""));
    assert_eq!(
        (log[0].status, log[0].nudge_id.as_str()),
        (LogStatus::Sent, "sent")
    );
    assert_eq!(log[1].to, "u-2@example.test");
    assert_eq!(
        store
            .suppression("U-1@example.test")
            .await
            .unwrap()
            .and_then(|s| s.reason),
        Some(SuppressionReason::HardBounce),
        "the suppression stays"
    );
    // Gone: a second erasure, like an unknown contact, finds nothing.
    assert_eq!(
        store.erase_contact(account, "u-1", t(41)).await.unwrap(),
        None
    );
    assert_eq!(
        store.erase_contact(account, "nobody", t(41)).await.unwrap(),
        None
    );
    assert!(store.contact(account, "u-2").await.unwrap().is_some());
}

pub async fn erasing_a_contact_leaves_their_address_name_and_comments_in_no_item(
    store: &dyn ScannableStore,
) {
    use crate::store::{ContactErasure, NpsAnswer};
    let (account, shards) = ("c-trace", 4);
    let (email, name, phone) = (
        "hanako.yamada@trace.example",
        "Hanako Yamada",
        "+81398765432",
    );
    let comment = "Hanako thinks exports are far too slow";
    let title = "Renewal call with Hanako Yamada";
    let link = "https://app.example/people/hanako";
    let profile = ContactProfile {
        email: email.into(),
        phone: Some(phone.into()),
        name: name.into(),
        role: Role::Admin,
        timezone: Some(chrono_tz::Asia::Tokyo),
        locale: None,
    };
    store
        .upsert_contact(account, "u-9", &profile, t(0))
        .await
        .unwrap();
    let other = ContactProfile {
        email: "bob@trace.example".into(),
        name: "Bob".into(),
        phone: None,
        ..profile.clone()
    };
    store
        .upsert_contact(account, "u-8", &other, t(0))
        .await
        .unwrap();
    let raw =
        |id: &str, contact: &str, kind: &'static str, properties: serde_json::Value| RawEvent {
            account_id: account.into(),
            event_id: id.into(),
            event_type: kind,
            contact_id: Some(contact.into()),
            occurred_at: t(0),
            received_at: t(0),
            body: serde_json::json!({
                "event_id": id, "account_id": account, "contact_id": contact, "type": kind,
                "occurred_at": "2026-11-20T09:00:00Z", "properties": properties,
            })
            .to_string(),
            expires_at: 1_900_000_000,
        };
    for event in [
        raw(
            "e-who",
            "u-9",
            "contact_upserted",
            serde_json::json!({"email": email, "name": name, "phone": phone, "role": "admin"}),
        ),
        raw(
            "e-nps",
            "u-9",
            "nps_response",
            serde_json::json!({"score": 3, "comment": comment}),
        ),
        raw(
            "e-dl",
            "u-9",
            "deadline_set",
            serde_json::json!({"deadline_id": "d1", "due_at": "2026-11-27T08:00:00Z",
                "title": title, "link": link}),
        ),
        raw("e-login", "u-9", "login", serde_json::json!({})),
        raw(
            "e-bob",
            "u-8",
            "nps_response",
            serde_json::json!({"score": 9, "comment": "Bob likes it"}),
        ),
    ] {
        store.insert_raw_event(&event).await.unwrap();
    }
    let answer = |score, comment: &str| NpsAnswer {
        score,
        at: t(0),
        comment: Some(comment.into()),
    };
    store
        .record_nps(account, "e-nps", &answer(3, comment))
        .await
        .unwrap();
    store
        .record_nps(account, "e-bob", &answer(9, "Bob likes it"))
        .await
        .unwrap();
    let due = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    let deadline = DeadlineRecord {
        deadline_id: "d1".into(),
        contact_id: Some("u-9".into()),
        due_at: due,
        title: title.into(),
        kind: Some("renewal".into()),
        link: Some(link.into()),
        status: DeadlineStatus::Active,
        updated_at: t(0),
    };
    store.put_deadline(account, &deadline).await.unwrap();
    let mut stage = Nudge::new(
        "dl/d1/1/final",
        account,
        Some("u-9".into()),
        NudgeKind::DeadlineReminder,
        due - Duration::hours(2),
        "reminders",
        t(0),
    )
    .with_vars(serde_json::json!({"title": title, "link": link}));
    stage.stage = Some(crate::domain::Stage::Final);
    store.put_nudge(&stage, shards).await.unwrap();
    let alert = Nudge::new(
        "hp/turns_red/2026-11-20/health_alert",
        account,
        None,
        NudgeKind::HealthAlert,
        t(0),
        "health",
        t(0),
    )
    .with_vars(serde_json::json!({"nps": 3, "nps_comment": comment, "trigger": "turns_red"}));
    store.put_nudge(&alert, shards).await.unwrap();
    let mut entry = log_entry(account, "ob/welcome/admin", t(5));
    entry.contact_id = Some("u-9".into());
    entry.to = email.into();
    entry.subject = format!("Welcome, {name}");
    store.append_log(&entry).await.unwrap();

    let traces = || async {
        let items = store.every_item_text().await.unwrap();
        let mut found = Vec::new();
        for needle in [email, name, "hanako", phone, comment, title] {
            let lower = needle.to_lowercase();
            if let Some(item) = items.iter().find(|i| i.to_lowercase().contains(&lower)) {
                let at = item.to_lowercase().find(&lower).unwrap_or(0);
                let context: String = item.chars().skip(at.saturating_sub(60)).take(160).collect();
                found.push(format!("{needle:?} in ...{context}..."));
            }
        }
        found
    };
    assert!(!traces().await.is_empty(), "the setup stores them");

    let erased = store.erase_contact(account, "u-9", t(10)).await.unwrap();
    assert_eq!(
        erased,
        Some(ContactErasure {
            cancelled: 1,
            nudges_redacted: 1,
            log_entries_redacted: 1,
            raw_events_redacted: 3,
            deadlines_redacted: 1,
            comments_removed: 2,
            ..ContactErasure::default()
        })
    );
    let left = traces().await;
    assert!(left.is_empty(), "still stored: {left:#?}");

    // What the counts and the score read stays.
    let raw = store.raw_events(account).await.unwrap();
    assert_eq!(raw.len(), 5, "raw events are redacted, not deleted");
    let nps = raw.iter().find(|e| e.event_id == "e-nps").unwrap();
    let wire: serde_json::Value = serde_json::from_str(&nps.body).unwrap();
    assert_eq!(wire["properties"], serde_json::json!({"score": 3}));
    let record = store
        .health_record(
            account,
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        )
        .await
        .unwrap();
    let mut answers: Vec<(u8, Option<String>)> = record
        .satisfaction
        .nps
        .into_iter()
        .map(|a| (a.score, a.comment))
        .collect();
    answers.sort();
    assert_eq!(answers, [(3, None), (9, Some("Bob likes it".into()))]);
    let kept = store.deadline(account, "d1").await.unwrap().unwrap();
    assert_eq!(
        (
            kept.title.as_str(),
            kept.link,
            kept.contact_id.as_deref(),
            kept.due_at
        ),
        ("", None, Some("u-9"), due)
    );
    let alert = store
        .nudge(account, &alert.nudge_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alert.vars,
        serde_json::json!({"nps": 3, "nps_comment": null, "trigger": "turns_red"})
    );
    assert!(store.contact(account, "u-8").await.unwrap().is_some());
    assert_eq!(
        store.erase_contact(account, "u-9", t(11)).await.unwrap(),
        None
    );
}
