//! Tests of `plan`.

use super::*;
use ReminderStage::{Final, MorningOf, TMinus3d};
use chrono_tz::{America::New_York, Asia::Tokyo, Australia::Lord_Howe, Europe::London, UTC};
use proptest::prelude::*;

/// A test instant given as unambiguous local wall-clock time.
fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("test times are unambiguous")
        .with_timezone(&Utc)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    local(UTC, y, mo, d, h, mi)
}

fn nominal(d: &Deadline, stage: ReminderStage) -> DateTime<Utc> {
    nominal_times(d, &ReminderPolicy::default())
        .into_iter()
        .find(|(s, _)| *s == stage)
        .map(|(_, at)| at)
        .expect("stage has a nominal time")
}

fn on_time(stage: ReminderStage, send_at: DateTime<Utc>) -> PlannedStage {
    PlannedStage {
        stage,
        send_at,
        late: false,
    }
}

fn stages(planned: &[PlannedStage]) -> Vec<ReminderStage> {
    planned.iter().map(|p| p.stage).collect()
}

#[test]
fn stage_names_round_trip_through_as_str_parse_and_serde() {
    for stage in ReminderStage::ALL {
        assert_eq!(ReminderStage::parse(stage.as_str()), Some(stage));
        let json = serde_json::to_string(&stage).expect("serialize");
        assert_eq!(json, format!("\"{}\"", stage.as_str()));
        let back: ReminderStage = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, stage);
    }
    assert_eq!(TMinus3d.as_str(), "t_minus_3d");
    assert_eq!(MorningOf.as_str(), "morning_of");
    assert_eq!(Final.as_str(), "final");
    assert_eq!(ReminderStage::parse("t_minus3d"), None);
}

#[test]
fn t_minus_3d_keeps_local_wall_clock_across_us_dst_end() {
    // DST ends 2026-11-01 02:00 in New York. Due Tue 2026-11-03 17:00 EST; three days
    // before is Sat 2026-10-31 17:00 EDT: 73 h earlier, not 72 h.
    let d = Deadline {
        due_at: local(New_York, 2026, 11, 3, 17, 0),
        tz: New_York,
    };
    let t3 = nominal(&d, TMinus3d);
    assert_eq!(t3, utc(2026, 10, 31, 21, 0)); // 17:00 EDT (-4)
    assert_eq!(d.due_at - t3, Duration::hours(73));

    // Due 2026-11-04 17:00: three days before is 2026-11-01 17:00, already EST (the switch
    // was at 02:00 that morning), so this one is exactly 72 h.
    let d = Deadline {
        due_at: local(New_York, 2026, 11, 4, 17, 0),
        tz: New_York,
    };
    assert_eq!(nominal(&d, TMinus3d), utc(2026, 11, 1, 22, 0)); // 17:00 EST (-5)
    assert_eq!(d.due_at - nominal(&d, TMinus3d), Duration::hours(72));
}

#[test]
fn t_minus_3d_keeps_local_wall_clock_across_us_dst_start() {
    // DST starts 2026-03-08 02:00. Due Tue 2026-03-10 17:00 EDT; three days before is
    // Sat 2026-03-07 17:00 EST: 71 h earlier.
    let d = Deadline {
        due_at: local(New_York, 2026, 3, 10, 17, 0),
        tz: New_York,
    };
    let t3 = nominal(&d, TMinus3d);
    assert_eq!(t3, utc(2026, 3, 7, 22, 0));
    assert_eq!(d.due_at - t3, Duration::hours(71));
}

#[test]
fn t_minus_3d_in_tokyo_is_exactly_72_hours() {
    let d = Deadline {
        due_at: local(Tokyo, 2026, 11, 4, 17, 0),
        tz: Tokyo,
    };
    assert_eq!(d.due_at - nominal(&d, TMinus3d), Duration::hours(72));
}

#[test]
fn spring_forward_gap_moves_to_first_valid_instant() {
    // Due 2026-03-11 02:30 EDT; 2026-03-08 02:30 does not exist in New York (02:00 → 03:00).
    let d = Deadline {
        due_at: local(New_York, 2026, 3, 11, 2, 30),
        tz: New_York,
    };
    // First valid instant after the gap: 03:00 EDT = 07:00Z.
    assert_eq!(nominal(&d, TMinus3d), utc(2026, 3, 8, 7, 0));

    // 03:00 is in quiet hours, so the planned t-3d goes out at 08:00 EDT that morning;
    // morning_of (09:00) is after the 02:30 due time and is dropped.
    let planned = plan(&d, utc(2026, 3, 1, 0, 0), &ReminderPolicy::default());
    assert_eq!(
        planned,
        vec![
            on_time(TMinus3d, local(New_York, 2026, 3, 8, 8, 0)),
            on_time(Final, local(New_York, 2026, 3, 11, 0, 30)),
        ]
    );
}

#[test]
fn half_hour_gap_in_lord_howe_resolves_to_exact_transition() {
    // Lord Howe jumps 02:00 +10:30 → 02:30 +11:00 on 2026-10-04; 02:10 does not exist.
    let gap =
        NaiveDateTime::parse_from_str("2026-10-04 02:10", "%Y-%m-%d %H:%M").expect("valid literal");
    assert_eq!(
        resolve_local(Lord_Howe, gap),
        Some(utc(2026, 10, 3, 15, 30))
    );
}

#[test]
fn fall_back_ambiguous_time_uses_earlier_instant() {
    // 2026-11-01 01:30 happens twice in New York; take the first (EDT, 05:30Z).
    let d = Deadline {
        due_at: local(New_York, 2026, 11, 4, 1, 30),
        tz: New_York,
    };
    assert_eq!(nominal(&d, TMinus3d), utc(2026, 11, 1, 5, 30));
}

#[test]
fn due_at_0800_has_no_morning_of() {
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 8, 0),
        tz: Tokyo,
    };
    let planned = plan(&d, utc(2026, 6, 1, 0, 0), &ReminderPolicy::default());
    assert_eq!(
        planned,
        vec![
            // 08:00 is the end of quiet hours, so it is not quiet.
            on_time(TMinus3d, local(Tokyo, 2026, 6, 7, 8, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 6, 0)),
        ]
    );
}

#[test]
fn morning_of_at_or_after_final_is_dropped() {
    let p = ReminderPolicy::default();
    let now = utc(2026, 6, 1, 0, 0);
    // Due 10:00: final 08:00 comes before morning_of 09:00.
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 10, 0),
        tz: Tokyo,
    };
    assert_eq!(stages(&plan(&d, now, &p)), vec![TMinus3d, Final]);
    // Due 11:00: final 09:00 equals morning_of; the order must be strict.
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 11, 0),
        tz: Tokyo,
    };
    assert_eq!(stages(&plan(&d, now, &p)), vec![TMinus3d, Final]);
    // Due 11:30: all three fit.
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 11, 30),
        tz: Tokyo,
    };
    assert_eq!(stages(&plan(&d, now, &p)), vec![TMinus3d, MorningOf, Final]);
}

#[test]
fn due_late_at_night_moves_t3d_out_of_quiet_hours() {
    // Due 23:00: t-3d at 23:00 is quiet and moves to 08:00 the next morning (two days and
    // fifteen hours ahead), still well before morning_of on the due day.
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 23, 0),
        tz: Tokyo,
    };
    let planned = plan(&d, utc(2026, 6, 1, 0, 0), &ReminderPolicy::default());
    assert_eq!(
        planned,
        vec![
            on_time(TMinus3d, local(Tokyo, 2026, 6, 8, 8, 0)),
            on_time(MorningOf, local(Tokyo, 2026, 6, 10, 9, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 21, 0)),
        ]
    );
}

#[test]
fn early_morning_t3d_moves_to_0800_the_same_day() {
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 6, 0),
        tz: Tokyo,
    };
    let planned = plan(&d, utc(2026, 6, 1, 0, 0), &ReminderPolicy::default());
    assert_eq!(
        planned[0],
        on_time(TMinus3d, local(Tokyo, 2026, 6, 7, 8, 0))
    );
}

#[test]
fn quiet_hours_move_past_next_stage_skips_the_stage() {
    // Quiet until 10:00: morning_of 09:00 would move to 10:00, after final 09:00 → skipped.
    let p = ReminderPolicy {
        quiet_end_hour: 10,
        ..ReminderPolicy::default()
    };
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 11, 0),
        tz: Tokyo,
    };
    let planned = plan(&d, utc(2026, 6, 1, 0, 0), &p);
    assert_eq!(
        planned,
        vec![
            on_time(TMinus3d, local(Tokyo, 2026, 6, 7, 11, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 9, 0)),
        ]
    );
}

#[test]
fn final_stage_still_sent_in_quiet_hours() {
    // Due 00:30: final at 22:30 the evening before is inside quiet hours but still planned.
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 11, 0, 30),
        tz: Tokyo,
    };
    let planned = plan(&d, utc(2026, 6, 1, 0, 0), &ReminderPolicy::default());
    assert_eq!(
        planned,
        vec![
            on_time(TMinus3d, local(Tokyo, 2026, 6, 8, 8, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 22, 30)),
        ]
    );
}

#[test]
fn due_less_than_two_hours_away_plans_only_late_final_or_nothing() {
    let p = ReminderPolicy::default();
    let now = local(Tokyo, 2026, 6, 10, 14, 0);
    let at = |due_at| Deadline { due_at, tz: Tokyo };

    // Final passed 10 minutes ago: sent late, alone.
    let d = at(now + Duration::minutes(110));
    assert_eq!(
        plan(&d, now, &p),
        vec![PlannedStage {
            stage: Final,
            send_at: now - Duration::minutes(10),
            late: true
        }]
    );
    // Final passed 20 minutes ago: nothing.
    assert_eq!(plan(&at(now + Duration::minutes(100)), now, &p), vec![]);
    // Final exactly now: on time.
    assert_eq!(
        plan(&at(now + Duration::hours(2)), now, &p),
        vec![on_time(Final, now)]
    );
}

#[test]
fn due_in_the_past_plans_nothing() {
    let p = ReminderPolicy::default();
    let now = utc(2026, 6, 10, 5, 0);
    for due_at in [now, now - Duration::hours(1), now - Duration::days(400)] {
        assert_eq!(plan(&Deadline { due_at, tz: Tokyo }, now, &p), vec![]);
    }
}

#[test]
fn set_one_day_before_skips_t_minus_3d() {
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 17, 0),
        tz: Tokyo,
    };
    let now = local(Tokyo, 2026, 6, 9, 17, 0);
    assert_eq!(
        plan(&d, now, &ReminderPolicy::default()),
        vec![
            on_time(MorningOf, local(Tokyo, 2026, 6, 10, 9, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 15, 0)),
        ]
    );
}

#[test]
fn stage_passed_within_catch_up_window_is_sent_late_once() {
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 17, 0),
        tz: Tokyo,
    };
    let morning = local(Tokyo, 2026, 6, 10, 9, 0);
    let final_at = local(Tokyo, 2026, 6, 10, 15, 0);
    let p = ReminderPolicy::default();

    // 10 minutes after morning_of: morning_of late, t-3d (days ago) gone.
    let planned = plan(&d, morning + Duration::minutes(10), &p);
    assert_eq!(
        planned,
        vec![
            PlannedStage {
                stage: MorningOf,
                send_at: morning,
                late: true
            },
            on_time(Final, final_at),
        ]
    );
    // The window is inclusive at 15 minutes and closed at 16.
    assert!(plan(&d, morning + Duration::minutes(15), &p)[0].late);
    assert_eq!(
        plan(&d, morning + Duration::minutes(16), &p),
        vec![on_time(Final, final_at)]
    );

    // Even when a wide window covers two passed stages, only the latest is sent late.
    let wide = ReminderPolicy {
        catch_up: Duration::days(5),
        ..ReminderPolicy::default()
    };
    let planned = plan(&d, morning + Duration::minutes(10), &wide);
    assert_eq!(stages(&planned), vec![MorningOf, Final]);
    assert_eq!(planned.iter().filter(|s| s.late).count(), 1);
}

#[test]
fn moved_later_replans_unsent_only() {
    // t-3d went out for a deadline on 06-10; on 06-08 it moves to 06-14. The new t-3d
    // (06-11 17:00) is in the future, but "3 days left" was already said.
    let p = ReminderPolicy::default();
    let moved = Deadline {
        due_at: local(Tokyo, 2026, 6, 14, 17, 0),
        tz: Tokyo,
    };
    let now = local(Tokyo, 2026, 6, 8, 12, 0);
    assert_eq!(
        replan(&moved, now, &[TMinus3d], &p),
        vec![
            on_time(MorningOf, local(Tokyo, 2026, 6, 14, 9, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 14, 15, 0)),
        ]
    );
    // Nothing sent yet: everything is planned from the new due time.
    assert_eq!(
        stages(&replan(&moved, now, &[], &p)),
        vec![TMinus3d, MorningOf, Final]
    );
}

#[test]
fn moved_earlier_never_repeats_sent_stage() {
    let p = ReminderPolicy::default();
    // t-3d sent at 06-07 17:00; five minutes later the deadline moves three minutes earlier.
    // The new t-3d (16:57) is inside the catch-up window, but it was already sent.
    let now = local(Tokyo, 2026, 6, 7, 17, 5);
    let moved = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 16, 57),
        tz: Tokyo,
    };
    assert_eq!(
        stages(&plan(&moved, now, &p)),
        vec![TMinus3d, MorningOf, Final]
    );
    assert_eq!(
        replan(&moved, now, &[TMinus3d], &p),
        vec![
            on_time(MorningOf, local(Tokyo, 2026, 6, 10, 9, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 14, 57)),
        ]
    );

    // morning_of sent; on the due day at 10:00 the deadline moves from 17:00 to 12:00.
    let now = local(Tokyo, 2026, 6, 10, 10, 0);
    let moved = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 12, 0),
        tz: Tokyo,
    };
    assert_eq!(
        replan(&moved, now, &[TMinus3d, MorningOf], &p),
        vec![on_time(Final, now)]
    );
}

#[test]
fn sent_final_keeps_its_slot_so_morning_of_does_not_follow_it() {
    // Due 10:00, final sent at 08:00; at 08:30 the deadline moves to 10:45. The new final
    // slot (08:45) precedes morning_of (09:00), so morning_of stays dropped: no
    // "today at 10:45" after "in 2 hours".
    let moved = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 10, 45),
        tz: Tokyo,
    };
    let now = local(Tokyo, 2026, 6, 10, 8, 30);
    assert_eq!(
        replan(&moved, now, &[TMinus3d, Final], &ReminderPolicy::default()),
        vec![]
    );
}

#[test]
fn hours_out_of_range_plan_without_morning_of_or_quiet_hours() {
    let p = ReminderPolicy {
        morning_hour: 24,
        quiet_start_hour: 99,
        ..ReminderPolicy::default()
    };
    let d = Deadline {
        due_at: local(Tokyo, 2026, 6, 10, 23, 0),
        tz: Tokyo,
    };
    assert_eq!(
        plan(&d, utc(2026, 6, 1, 0, 0), &p),
        vec![
            on_time(TMinus3d, local(Tokyo, 2026, 6, 7, 23, 0)),
            on_time(Final, local(Tokyo, 2026, 6, 10, 21, 0)),
        ]
    );
}

const ZONES: [Tz; 5] = [Tokyo, New_York, London, Lord_Howe, UTC];
/// ±5 years around 2026-01-01, in seconds.
const SPAN: i64 = 5 * 366 * 24 * 3600;
const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("in range")
}

/// `now` either near the due time (where the interesting cases are) or anywhere.
fn now_strategy(due: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        (-6 * 86_400i64..86_400).prop_map(move |off| due + off),
        (BASE - SPAN..BASE + SPAN),
    ]
}

fn check_invariants(
    d: &Deadline,
    now: DateTime<Utc>,
    p: &ReminderPolicy,
    planned: &[PlannedStage],
) -> Result<(), TestCaseError> {
    for pair in planned.windows(2) {
        prop_assert!(
            pair[0].send_at < pair[1].send_at,
            "not increasing: {planned:?}"
        );
        prop_assert!(pair[0].stage < pair[1].stage, "stage order: {planned:?}");
    }
    prop_assert!(planned.iter().filter(|s| s.late).count() <= 1);
    for s in planned {
        prop_assert!(s.send_at < d.due_at, "{s:?} not before due");
        prop_assert!(s.send_at >= now - p.catch_up, "{s:?} too stale at {now}");
        prop_assert_eq!(s.late, s.send_at < now);
        if s.stage == Final {
            prop_assert_eq!(s.send_at, d.due_at - p.final_lead);
        } else {
            let local = s.send_at.with_timezone(&d.tz).naive_local().time();
            prop_assert!(!p.is_quiet(local), "{s:?} in quiet hours ({local})");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn plan_invariants_hold_near_dst_transitions(
        year in 2021i32..2032,
        month in prop::sample::select(vec![3u32, 4, 9, 10, 11]),
        day in 1u32..29,
        minute_of_day in 0u32..(24 * 60),
        zone in 0..ZONES.len(),
        now_offset in -6 * 86_400i64..86_400,
    ) {
        // Due times whose t-3d or morning_of lands on a transition day, in local terms.
        let tz = ZONES[zone];
        let naive = chrono::NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|date| date.and_hms_opt(minute_of_day / 60, minute_of_day % 60, 0));
        let due_at = naive.and_then(|n| resolve_local(tz, n));
        prop_assume!(due_at.is_some());
        let d = Deadline { due_at: due_at.expect("assumed"), tz };
        let p = ReminderPolicy::default();
        let now = d.due_at + Duration::seconds(now_offset);
        check_invariants(&d, now, &p, &plan(&d, now, &p))?;
        // Long before the deadline, t-3d and final are always planned (t-3d can always
        // move to 08:00, which is before morning_of or final on a later day).
        let early = plan(&d, d.due_at - Duration::days(30), &p);
        prop_assert!(early.iter().any(|s| s.stage == TMinus3d), "{early:?}");
        prop_assert!(early.iter().any(|s| s.stage == Final), "{early:?}");
    }

    #[test]
    fn plan_invariants_hold_for_any_due_zone_and_now(
        (due, now) in (BASE - SPAN..BASE + SPAN).prop_flat_map(|due| (Just(due), now_strategy(due))),
        zone in 0..ZONES.len(),
    ) {
        let p = ReminderPolicy::default();
        let d = Deadline { due_at: at(due), tz: ZONES[zone] };
        let now = at(now);
        let planned = plan(&d, now, &p);
        check_invariants(&d, now, &p, &planned)?;
        let has_final = planned.iter().any(|s| s.stage == Final);
        if d.due_at - p.final_lead >= now {
            prop_assert!(has_final, "final missing: {planned:?}");
        }
    }

    #[test]
    fn replan_never_plans_a_sent_stage(
        (due, now) in (BASE - SPAN..BASE + SPAN).prop_flat_map(|due| (Just(due), now_strategy(due))),
        zone in 0..ZONES.len(),
        sent_mask in 0u8..8,
    ) {
        let p = ReminderPolicy::default();
        let d = Deadline { due_at: at(due), tz: ZONES[zone] };
        let now = at(now);
        let sent: Vec<ReminderStage> = ReminderStage::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| sent_mask & (1 << i) != 0)
            .map(|(_, s)| s)
            .collect();
        let planned = replan(&d, now, &sent, &p);
        check_invariants(&d, now, &p, &planned)?;
        prop_assert!(planned.iter().all(|s| !sent.contains(&s.stage)));
        // Unsent stages that are on time keep exactly the time plan() gives them.
        let full = plan(&d, now, &p);
        for s in planned.iter().filter(|s| !s.late) {
            prop_assert!(full.contains(s), "{s:?} not in {full:?}");
        }
    }
}
