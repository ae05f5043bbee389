//! Tests of `rezone`: the stages of one deadline re-planned in a new zone, without I/O.

use chrono::{Duration, TimeZone};
use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;

use super::*;
use crate::domain::Stage;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

/// Deadline `d1` due at `due`, set (its version) at `set`, for contact `u1`.
fn deadline(due: DateTime<Utc>, set: DateTime<Utc>) -> DeadlineRecord {
    DeadlineRecord {
        deadline_id: "d1".into(),
        contact_id: Some("u1".into()),
        due_at: due,
        title: "Quarterly report".into(),
        kind: None,
        link: None,
        status: DeadlineStatus::Active,
        updated_at: set,
    }
}

/// The stages as the `deadline_set` hook plans them at `set` in `tz`.
fn planned(d: &DeadlineRecord, tz: Tz) -> Vec<Nudge> {
    stage_nudges("acme", d, tz, d.updated_at, &[], &ReminderPolicy::default())
}

fn id(d: &DeadlineRecord, stage: ReminderStage) -> String {
    nudge_id(&d.deadline_id, d.updated_at.timestamp_millis(), stage)
}

/// What the store holds after the writes of `r`, as the service makes them.
fn applied(mut stored: Vec<Nudge>, r: &StageWrites) -> Vec<Nudge> {
    for n in &mut stored {
        if let Some((_, to)) = r.moved.iter().find(|(id, _)| *id == n.nudge_id) {
            n.send_at = *to;
        }
        if let Some((_, to)) = r.reopened.iter().find(|(id, _)| *id == n.nudge_id) {
            (n.status, n.reason, n.send_at) = (NudgeStatus::Pending, None, *to);
        }
        if r.dropped.contains(&n.nudge_id) {
            (n.status, n.reason) = (NudgeStatus::Cancelled, Some(REZONED.into()));
        }
    }
    stored.extend(r.planned.iter().cloned());
    stored
}

/// (stage, send time) of the pending stages, in stage order.
fn pending(stored: &[Nudge]) -> Vec<(Stage, DateTime<Utc>)> {
    let mut out: Vec<(Stage, DateTime<Utc>)> = stored
        .iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .filter_map(|n| Some((n.stage?, n.send_at)))
        .collect();
    out.sort();
    out
}

fn rezoned(d: &DeadlineRecord, tz: Tz, now: DateTime<Utc>, stored: &[Nudge]) -> StageWrites {
    rezone("acme", d, tz, now, stored, &ReminderPolicy::default())
}

#[test]
fn moving_from_tokyo_to_new_york_replans_the_local_stages_under_the_same_ids() {
    // Due Friday 17:00 in Tokyo (08:00 UTC), set on Monday: 17:00 three days before, 09:00
    // on the day, 15:00 on the day.
    let d = deadline(
        at("2026-11-20T17:00:00+09:00"),
        at("2026-11-16T09:00:00+09:00"),
    );
    let tokyo = planned(&d, Tokyo);
    assert_eq!(
        pending(&tokyo),
        [
            (Stage::TMinus3d, at("2026-11-17T08:00:00Z")),
            (Stage::MorningOf, at("2026-11-20T00:00:00Z")),
            (Stage::Final, at("2026-11-20T06:00:00Z")),
        ]
    );

    // In New York the deadline is at 03:00 on Friday: "three days before" is 03:00 on
    // Tuesday, in quiet hours, so 08:00; 09:00 on the day comes after the final stage.
    let now = at("2026-11-16T12:00:00Z");
    let r = rezoned(&d, New_York, now, &tokyo);
    assert_eq!(
        r.moved,
        [(id(&d, ReminderStage::TMinus3d), at("2026-11-17T13:00:00Z"))]
    );
    assert_eq!(r.dropped, [id(&d, ReminderStage::MorningOf)]);
    assert!(r.planned.is_empty() && r.reopened.is_empty());
    let in_new_york = applied(tokyo, &r);
    assert_eq!(
        pending(&in_new_york),
        [
            (Stage::TMinus3d, at("2026-11-17T13:00:00Z")),
            (Stage::Final, at("2026-11-20T06:00:00Z")),
        ],
        "the final stage is the same instant in any zone"
    );
    assert!(
        rezoned(&d, New_York, now, &in_new_york).is_empty(),
        "the same change again changes nothing"
    );

    // Back to Tokyo: the dropped stage is reopened, not planned a second time.
    let later = now + Duration::hours(1);
    let r = rezoned(&d, Tokyo, later, &in_new_york);
    assert_eq!(
        r.reopened,
        [(id(&d, ReminderStage::MorningOf), at("2026-11-20T00:00:00Z"))]
    );
    assert!(r.planned.is_empty());
    let back = applied(in_new_york, &r);
    assert_eq!(
        pending(&back),
        [
            (Stage::TMinus3d, at("2026-11-17T08:00:00Z")),
            (Stage::MorningOf, at("2026-11-20T00:00:00Z")),
            (Stage::Final, at("2026-11-20T06:00:00Z")),
        ]
    );
    assert_eq!(back.len(), 3, "one nudge per stage, whatever the moves");
}

#[test]
fn a_sent_stage_stays_sent_and_only_the_unsent_ones_move() {
    // A New Yorker's deadline, Friday 17:00 EST; the first stage went on Tuesday.
    let d = deadline(
        at("2026-11-20T17:00:00-05:00"),
        at("2026-11-16T09:00:00-05:00"),
    );
    let mut stored = planned(&d, New_York);
    for n in &mut stored {
        if n.stage == Some(Stage::TMinus3d) {
            n.status = NudgeStatus::Sent;
        }
    }
    // Wednesday they move to Tokyo, where the deadline is 07:00 on Saturday: 09:00 that day
    // comes after the final stage, so the morning stage goes; the final stage stays.
    let r = rezoned(&d, Tokyo, at("2026-11-18T12:00:00Z"), &stored);
    assert_eq!(r.dropped, [id(&d, ReminderStage::MorningOf)]);
    assert!(r.moved.is_empty() && r.planned.is_empty() && r.reopened.is_empty());
    let after = applied(stored, &r);
    assert_eq!(
        after
            .iter()
            .find(|n| n.stage == Some(Stage::TMinus3d))
            .map(|n| n.status),
        Some(NudgeStatus::Sent)
    );
    assert_eq!(
        pending(&after),
        [(Stage::Final, at("2026-11-20T20:00:00Z"))]
    );
}

#[test]
fn across_the_end_of_us_daylight_time_three_days_before_keeps_the_new_zones_wall_clock() {
    // Due Tuesday 2026-11-03 17:00 in New York (EST, 22:00 UTC), planned while the contact
    // was in Tokyo (07:00 on Wednesday there: three days before is 07:00, quiet, so 08:00;
    // 09:00 on the day comes after the final stage).
    let d = deadline(at("2026-11-03T17:00:00-05:00"), at("2026-10-28T00:00:00Z"));
    let tokyo = planned(&d, Tokyo);
    assert_eq!(
        pending(&tokyo),
        [
            (Stage::TMinus3d, at("2026-10-31T23:00:00Z")),
            (Stage::Final, at("2026-11-03T20:00:00Z")),
        ]
    );
    // In New York: Saturday 17:00 EDT, 73 hours before the due time (DST ends on Sunday),
    // and 09:00 EST on the day, a stage this version never had.
    let r = rezoned(&d, New_York, at("2026-10-29T00:00:00Z"), &tokyo);
    let t_minus_3d = New_York
        .with_ymd_and_hms(2026, 10, 31, 17, 0, 0)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc);
    assert_eq!(t_minus_3d, at("2026-10-31T21:00:00Z"));
    assert_eq!(d.due_at - t_minus_3d, Duration::hours(73));
    assert_eq!(r.moved, [(id(&d, ReminderStage::TMinus3d), t_minus_3d)]);
    let morning: Vec<(String, DateTime<Utc>)> = r
        .planned
        .iter()
        .map(|n| (n.nudge_id.clone(), n.send_at))
        .collect();
    assert_eq!(
        morning,
        [(id(&d, ReminderStage::MorningOf), at("2026-11-03T14:00:00Z"))]
    );
    assert_eq!(r.planned[0].contact_id.as_deref(), Some("u1"));
    assert_eq!(r.planned[0].vars["title"], "Quarterly report");
    assert!(r.dropped.is_empty());
}

#[test]
fn a_stage_whose_new_time_has_passed_follows_the_rules_for_past_stages() {
    // A New Yorker's deadline, Friday 17:00 EST; "three days before" is Tuesday 22:00 UTC and
    // still pending (the sweep has not reached it). In Tokyo it would be 23:00 UTC.
    let d = deadline(
        at("2026-11-20T17:00:00-05:00"),
        at("2026-11-16T09:00:00-05:00"),
    );
    let stored = planned(&d, New_York);

    // Ten minutes after the Tokyo time: within the catch-up window, and already due, so it
    // stays as it is (the sweep sends it late).
    let r = rezoned(&d, Tokyo, at("2026-11-17T23:10:00Z"), &stored);
    assert!(!r.dropped.contains(&id(&d, ReminderStage::TMinus3d)));
    assert!(r.moved.is_empty(), "{r:?}");

    // Twenty minutes after: too late for "3 days left", dropped.
    let r = rezoned(&d, Tokyo, at("2026-11-17T23:20:00Z"), &stored);
    assert!(r.dropped.contains(&id(&d, ReminderStage::TMinus3d)));

    // A stage pending at a future time whose new time passed moments ago goes now.
    let mut early = planned(&d, New_York);
    for n in &mut early {
        if n.stage == Some(Stage::TMinus3d) {
            n.send_at = at("2026-11-18T06:00:00Z");
        }
    }
    let now = at("2026-11-17T23:05:00Z");
    let r = rezoned(&d, Tokyo, now, &early);
    assert_eq!(r.moved, [(id(&d, ReminderStage::TMinus3d), now)]);
}

#[test]
fn finished_past_due_and_erased_deadlines_are_left_alone() {
    let d = deadline(
        at("2026-11-20T17:00:00+09:00"),
        at("2026-11-16T09:00:00+09:00"),
    );
    let tokyo = planned(&d, Tokyo);
    let now = at("2026-11-16T12:00:00Z");
    let completed = DeadlineRecord {
        status: DeadlineStatus::Completed,
        ..d.clone()
    };
    assert!(rezoned(&completed, New_York, now, &tokyo).is_empty());
    assert!(rezoned(&d, New_York, d.due_at, &tokyo).is_empty(), "due");
    let mut erased = tokyo.clone();
    for n in &mut erased {
        (n.status, n.reason) = (NudgeStatus::Cancelled, Some(ERASED.into()));
    }
    assert!(rezoned(&d, New_York, now, &erased).is_empty());
    // A stage of an earlier version is not this version's: the new version plans its own.
    let moved = DeadlineRecord {
        updated_at: d.updated_at + Duration::hours(1),
        ..d.clone()
    };
    let r = rezoned(&moved, Tokyo, now, &tokyo);
    assert_eq!(r.planned.len(), 3);
    assert!(r.moved.is_empty() && r.dropped.is_empty());
}
