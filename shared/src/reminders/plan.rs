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
mod tests;
