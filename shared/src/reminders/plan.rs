//! Pure planning of the three reminder stages for one deadline.
//!
//! Everything here is a function of (deadline, policy, now): no clock, no I/O, so the scheduler,
//! the simulator and the tests all agree on when a reminder is due.
//!
//! Planning happens in three steps:
//! 1. [`nominal_times`]: the ideal instant of each stage, computed in the recipient's local time.
//! 2. The structural schedule: quiet hours move non-final stages to the end of the quiet period,
//!    and a stage survives only if it is strictly before the next surviving stage and the due
//!    time. This depends on the deadline and the policy only, never on `now`, so planning and
//!    re-planning see the same shape.
//! 3. [`plan`] / [`replan`]: drop stages already sent and stages whose time has passed, except the
//!    single latest one that passed within the catch-up window (sent late, right away).

use chrono::{
    DateTime, Days, Duration, LocalResult, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Stage;

/// One of the three reminders sent for a deadline.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReminderStage {
    /// Same local wall-clock time, `days_before` calendar days before the due time.
    // `snake_case` would spell this "t_minus3d"; the delivery log and the store use "t_minus_3d".
    #[serde(rename = "t_minus_3d")]
    #[strum(serialize = "t_minus_3d")]
    TMinus3d,
    /// `morning_hour`:00 local on the due date.
    MorningOf,
    /// `final_lead` before the due time.
    Final,
}

impl From<ReminderStage> for Stage {
    fn from(s: ReminderStage) -> Stage {
        match s {
            ReminderStage::TMinus3d => Stage::TMinus3d,
            ReminderStage::MorningOf => Stage::MorningOf,
            ReminderStage::Final => Stage::Final,
        }
    }
}

impl TryFrom<Stage> for ReminderStage {
    type Error = Stage;
    fn try_from(s: Stage) -> Result<ReminderStage, Stage> {
        match s {
            Stage::TMinus3d => Ok(ReminderStage::TMinus3d),
            Stage::MorningOf => Ok(ReminderStage::MorningOf),
            Stage::Final => Ok(ReminderStage::Final),
            other => Err(other),
        }
    }
}

impl ReminderStage {
    /// All stages in send order.
    pub const ALL: [ReminderStage; 3] = [
        ReminderStage::TMinus3d,
        ReminderStage::MorningOf,
        ReminderStage::Final,
    ];

    /// The stable name used in the store, the delivery log and serde.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Inverse of [`ReminderStage::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// The tunable parts of the reminder rules; the defaults are the product's rules (3 days
/// before at the same local time, 09:00 on the day, 2 hours before the end).
///
/// Planning never fails on a bad policy: an hour outside 0-23 means "no morning_of" or
/// "no quiet hours", and a non-positive `final_lead` means "no final". The only configurable
/// part, quiet hours, is range-checked when the configuration is read (`NUDGE_QUIET_HOURS`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderPolicy {
    /// Calendar days between the first reminder and the due date (3).
    pub days_before: u32,
    /// Local hour of the morning-of reminder (9).
    pub morning_hour: u32,
    /// How long before the due time the final reminder goes out (2 h).
    pub final_lead: Duration,
    /// Local hour at which quiet hours begin (21). Equal start and end disables quiet hours.
    pub quiet_start_hour: u32,
    /// Local hour at which quiet hours end (8); may be smaller than the start (wraps midnight).
    pub quiet_end_hour: u32,
    /// How long after its time a stage may still be sent late when a deadline is (re)planned (15 min).
    pub catch_up: Duration,
}

impl Default for ReminderPolicy {
    fn default() -> Self {
        Self {
            days_before: 3,
            morning_hour: 9,
            final_lead: Duration::hours(2),
            quiet_start_hour: 21,
            quiet_end_hour: 8,
            catch_up: Duration::minutes(15),
        }
    }
}

impl ReminderPolicy {
    /// Start and end of quiet hours as local times; `None` when disabled or out of range.
    fn quiet_window(&self) -> Option<(NaiveTime, NaiveTime)> {
        let start = NaiveTime::from_hms_opt(self.quiet_start_hour, 0, 0)?;
        let end = NaiveTime::from_hms_opt(self.quiet_end_hour, 0, 0)?;
        (start != end).then_some((start, end))
    }

    /// Whether a local time of day falls inside quiet hours (start inclusive, end exclusive).
    pub fn is_quiet(&self, local: NaiveTime) -> bool {
        match self.quiet_window() {
            None => false,
            Some((start, end)) if start < end => start <= local && local < end,
            Some((start, end)) => local >= start || local < end,
        }
    }
}

/// One stage to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    pub stage: ReminderStage,
    /// When the stage is meant to go out. For a late stage this is in the past: send it now.
    pub send_at: DateTime<Utc>,
    /// True when the stage's time had already passed and it was kept by the catch-up rule.
    pub late: bool,
}

/// A deadline as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub due_at: DateTime<Utc>,
    /// The recipient's zone: contact's, else account's, else UTC (resolved by the caller).
    pub tz: Tz,
}

/// Ideal stage times before quiet hours/ordering (for explanation/tests).
///
/// Returned in stage order. A stage is missing only when its time cannot be expressed at all
/// (a calendar overflow, or an hour outside 0-23 in the policy).
pub fn nominal_times(d: &Deadline, p: &ReminderPolicy) -> Vec<(ReminderStage, DateTime<Utc>)> {
    let due_local = d.due_at.with_timezone(&d.tz).naive_local();
    let mut out = Vec::with_capacity(3);

    // Calendar days in local time, not 72 h: across a DST change "17:00 three days before"
    // is what a person expects.
    let t_minus = due_local
        .date()
        .checked_sub_days(Days::new(u64::from(p.days_before)))
        .and_then(|date| resolve_local(d.tz, date.and_time(due_local.time())));
    if let Some(t) = t_minus {
        out.push((ReminderStage::TMinus3d, t));
    }

    let morning = NaiveTime::from_hms_opt(p.morning_hour, 0, 0)
        .and_then(|time| resolve_local(d.tz, due_local.date().and_time(time)));
    if let Some(t) = morning {
        out.push((ReminderStage::MorningOf, t));
    }

    if let Some(t) = d.due_at.checked_sub_signed(p.final_lead) {
        out.push((ReminderStage::Final, t));
    }
    out
}

/// The stages to schedule when a deadline is set at `now`, sorted by send_at.
pub fn plan(d: &Deadline, now: DateTime<Utc>, p: &ReminderPolicy) -> Vec<PlannedStage> {
    replan(d, now, &[], p)
}

/// Re-plan after a move: `already_sent` stages are excluded.
///
/// The schedule's shape (quiet hours, ordering) is computed from the new due time as if nothing
/// had been sent, so a sent stage still occupies its slot: a stage that would come after it is
/// not planned either. Catch-up then applies among the unsent stages only.
pub fn replan(
    d: &Deadline,
    now: DateTime<Utc>,
    already_sent: &[ReminderStage],
    p: &ReminderPolicy,
) -> Vec<PlannedStage> {
    let candidates: Vec<(ReminderStage, DateTime<Utc>)> = schedule(d, p)
        .into_iter()
        .filter(|(stage, _)| !already_sent.contains(stage))
        .collect();

    // Only the latest passed stage may be sent late, and only if it passed moments ago:
    // never "3 days left" with 1 day left, and never two stale reminders at once.
    let late_stage = candidates
        .iter()
        .rev()
        .find(|(_, at)| *at < now)
        .filter(|(_, at)| now.signed_duration_since(*at) <= p.catch_up)
        .map(|(stage, _)| *stage);

    candidates
        .into_iter()
        .filter_map(|(stage, send_at)| {
            if send_at >= now {
                Some(PlannedStage {
                    stage,
                    send_at,
                    late: false,
                })
            } else if late_stage == Some(stage) {
                Some(PlannedStage {
                    stage,
                    send_at,
                    late: true,
                })
            } else {
                None
            }
        })
        .collect()
}

/// The structural schedule: nominal times, moved out of quiet hours, kept only if strictly
/// ordered before the next kept stage and the due time. Sorted by time.
fn schedule(d: &Deadline, p: &ReminderPolicy) -> Vec<(ReminderStage, DateTime<Utc>)> {
    let nominal = nominal_times(d, p);
    let mut bound = d.due_at;
    let mut kept = Vec::with_capacity(nominal.len());
    // Walk backwards so each stage is checked against the next stage that is actually kept.
    for &(stage, at) in nominal.iter().rev() {
        let at = if stage == ReminderStage::Final {
            // The final reminder is the one that matters most; quiet hours never hold it back.
            Some(at)
        } else {
            out_of_quiet_hours(at, d.tz, p)
        };
        if let Some(at) = at.filter(|at| *at < bound) {
            kept.push((stage, at));
            bound = at;
        }
    }
    kept.reverse();
    kept
}

/// `at` itself when outside quiet hours, else the end of the quiet period it falls in.
/// `None` when that end cannot be resolved to a later, non-quiet instant (pathological zones or
/// policies): skipping a reminder is better than sending it at night.
fn out_of_quiet_hours(at: DateTime<Utc>, tz: Tz, p: &ReminderPolicy) -> Option<DateTime<Utc>> {
    let local = at.with_timezone(&tz).naive_local();
    if !p.is_quiet(local.time()) {
        return Some(at);
    }
    let (start, end) = p.quiet_window()?;
    // In a window that wraps midnight, the part after `start` ends on the next local day.
    let end_date = if start > end && local.time() >= start {
        local.date().succ_opt()?
    } else {
        local.date()
    };
    let moved = resolve_local(tz, end_date.and_time(end))?;
    let still_quiet = p.is_quiet(moved.with_timezone(&tz).naive_local().time());
    (moved > at && !still_quiet).then_some(moved)
}

/// Resolves a local wall-clock time to an instant, explicitly for the two DST edge cases:
/// ambiguous (fall-back) → the earlier instant; non-existent (spring-forward gap) → the first
/// valid instant after the gap. `None` only if no valid time follows within two days.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => first_instant_after_gap(tz, local),
    }
}

/// The transition instant that ends the gap containing `local`.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Gaps in the tz database are at most a day long (e.g. Pacific/Apia in 2011).
    const MAX_MINUTES: i64 = 2 * 24 * 60;
    let upper = (1..=MAX_MINUTES).find_map(|minutes| {
        let probe = local.checked_add_signed(Duration::minutes(minutes))?;
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => None,
        }
    })?;
    // The previous probe (one minute earlier in local time) was still in the gap, so the
    // transition lies in (upper - 60 s, upper]. Bisect on whole seconds for its exact instant.
    let offset_at = |secs: i64| {
        DateTime::from_timestamp(secs, 0).map(|t| tz.offset_from_utc_datetime(&t.naive_utc()).fix())
    };
    let after = offset_at(upper.timestamp())?;
    // Transitions fall on whole seconds, so flooring `upper` stays at or after the transition.
    let mut lo = upper.timestamp() - 60; // before the transition
    let mut hi = upper.timestamp(); // at or after it
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(mid)? == after {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

#[cfg(test)]
mod tests {
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
        let gap = NaiveDateTime::parse_from_str("2026-10-04 02:10", "%Y-%m-%d %H:%M")
            .expect("valid literal");
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
}
