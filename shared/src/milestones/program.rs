//! The 30-day onboarding program and the milestones, as pure decisions: which tasks a new
//! customer's program has and when, where an account stands at a weekly check, and the nudges
//! each moment plans (with ids that make every one of them happen once).
//!
//! Onboarding is complete at the first result: the plan's steps (the health model's
//! `onboarding_steps`, in order) all done, where the account's first report also completes a
//! step named `first_report`. The order is the prerequisite chain: the next step is always the
//! first one not done, so no message offers a step whose prerequisite is open.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

pub use crate::domain::admin_of;
use crate::domain::{Member, Nudge, NudgeKind, Stage, executives};

/// The function that plans these nudges (the delivery log's `function`).
pub const FUNCTION: &str = "milestones";
/// The program's weekly checks, in days after `contract_start`.
pub const CHECK_DAYS: [i64; 4] = [7, 14, 21, 28];
/// No step for this many days: stuck (the CSM is told, not just the admin).
pub const STUCK_DAYS: i64 = 7;
/// The program's length: a check on day `d` expects `ceil(steps * d / PROGRAM_DAYS)` steps done.
pub const PROGRAM_DAYS: i64 = 28;
/// The welcome waits at least this long after Nudge hears of the account, for its contacts.
pub const CONTACTS_GRACE: Duration = Duration::hours(1);
/// The step that the account's first report also completes.
pub const FIRST_REPORT_STEP: &str = "first_report";

/// A task of the program on the agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Task {
    Welcome,
    /// The weekly check on day 7, 14, 21 or 28.
    Check(i64),
}

impl Task {
    pub fn name(&self) -> String {
        match self {
            Task::Welcome => "welcome".into(),
            Task::Check(day) => format!("check_{day:02}"),
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        if s == "welcome" {
            return Some(Task::Welcome);
        }
        let day: i64 = s.strip_prefix("check_")?.parse().ok()?;
        CHECK_DAYS.contains(&day).then_some(Task::Check(day))
    }
}

/// The start of the account-local day `days` after `start` (a day that begins inside a DST gap
/// starts at its first valid instant).
pub fn local_day_start(start: NaiveDate, days: i64, tz: Tz) -> DateTime<Utc> {
    let day = start + Duration::days(days);
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..24)
        .find_map(|h| {
            (midnight + Duration::hours(h))
                .and_local_timezone(tz)
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

/// Whether the account is a new customer: its contract started at most `max_age_days` before
/// Nudge first heard of it (in its own calendar).
pub fn is_new_customer(
    contract_start: NaiveDate,
    first_seen: DateTime<Utc>,
    tz: Tz,
    max_age_days: u32,
) -> bool {
    let seen = first_seen.with_timezone(&tz).date_naive();
    contract_start >= seen - Duration::days(i64::from(max_age_days))
}

/// The program of a new customer, as of `now`: the welcome at the contract's first local day,
/// but at least [`CONTACTS_GRACE`] from now (an account's contacts usually arrive just after it),
/// and the checks still ahead. Past checks are not run late: a program joined on day 10 starts
/// with the day-14 check.
pub fn program(
    contract_start: NaiveDate,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<(Task, DateTime<Utc>)> {
    let mut out = Vec::new();
    if now < local_day_start(contract_start, CHECK_DAYS[0], tz) {
        out.push((
            Task::Welcome,
            local_day_start(contract_start, 0, tz).max(now + CONTACTS_GRACE),
        ));
    }
    for day in CHECK_DAYS {
        let at = local_day_start(contract_start, day, tz);
        if at >= now - Duration::hours(1) {
            out.push((Task::Check(day), at.max(now)));
        }
    }
    out
}

/// The plan's steps and what is done of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The plan's steps, in order.
    pub steps: Vec<String>,
    /// Step -> when it was done.
    pub done: BTreeMap<String, DateTime<Utc>>,
}

impl Progress {
    /// From the account's firsts (`step_<name>`, `report`).
    pub fn from_firsts(steps: &[String], firsts: &BTreeMap<String, DateTime<Utc>>) -> Progress {
        let done = steps
            .iter()
            .filter_map(|step| {
                let at = firsts.get(&format!("step_{step}")).copied();
                let report = (step == FIRST_REPORT_STEP)
                    .then(|| firsts.get("report").copied())
                    .flatten();
                let at = match (at, report) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }?;
                Some((step.clone(), at))
            })
            .collect();
        Progress {
            steps: steps.to_vec(),
            done,
        }
    }

    pub fn complete(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| self.done.contains_key(s))
    }

    /// The first step not done (the only one a message offers).
    pub fn next_step(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| !self.done.contains_key(*s))
            .map(String::as_str)
    }

    fn vars(&self) -> Value {
        json!({
            "done_steps": self.done.len(),
            "total_steps": self.steps.len(),
            "next_step": self.next_step(),
            "step": self.next_step(),
        })
    }
}

/// Where an account stands at a weekly check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Every step done: no more checks.
    Complete,
    OnTrack,
    /// Fewer steps done than the day expects.
    Behind,
    /// No step done in the last `STUCK_DAYS` (counted from the program's start when none is).
    Stuck,
}

/// The standing at the check on `day` (after `program_start`, the contract's first local day).
pub fn standing(
    progress: &Progress,
    day: i64,
    program_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Standing {
    if progress.complete() {
        return Standing::Complete;
    }
    let last = progress
        .done
        .values()
        .copied()
        .max()
        .unwrap_or(program_start)
        .max(program_start);
    if now - last >= Duration::days(STUCK_DAYS) {
        return Standing::Stuck;
    }
    let total = progress.steps.len() as i64;
    let expected = (total * day + PROGRAM_DAYS - 1) / PROGRAM_DAYS;
    if (progress.done.len() as i64) < expected.min(total) {
        Standing::Behind
    } else {
        Standing::OnTrack
    }
}

/// The account a moment's nudges are for, as of `now`.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub account_id: &'a str,
    /// The admin contact: the one `admin_changed` named, else the first contact with the
    /// admin role (see [`admin_of`]).
    pub admin: Option<&'a str>,
    pub members: &'a [Member<'a>],
    pub now: DateTime<Utc>,
}

impl<'a> Audience<'a> {
    /// Executives other than the admin (the admin gets the admin's message).
    fn executives(&self) -> impl Iterator<Item = &'a str> + 'a {
        executives(self.members, self.admin)
    }

    fn nudge(&self, id: String, to: Option<&str>, kind: NudgeKind) -> Nudge {
        Nudge::new(
            id,
            self.account_id,
            to.map(str::to_string),
            kind,
            self.now,
            FUNCTION,
            self.now,
        )
    }
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// The welcome: the admin's single first step and each executive's note on the 30 days; with
/// no admin contact, a task for the CSM instead of the admin's mail (mail needs a recipient).
pub fn welcome_nudges(to: &Audience<'_>, progress: &Progress) -> Vec<Nudge> {
    let mut out = Vec::new();
    match to.admin {
        Some(_) => out.push(
            to.nudge(
                "ob/welcome/admin".into(),
                to.admin,
                NudgeKind::OnboardingWelcome,
            )
            .with_vars(with(
                progress.vars(),
                json!({ "role": "admin", "first_step": progress.next_step() }),
            )),
        ),
        None => out.push(
            to.nudge("ob/welcome/no_admin".into(), None, NudgeKind::CsmTask)
                .with_stage(Stage::NoAdmin)
                .with_vars(json!({ "task": "no_admin" })),
        ),
    }
    for exec in to.executives() {
        out.push(
            to.nudge(
                format!("ob/welcome/{exec}"),
                Some(exec),
                NudgeKind::OnboardingWelcome,
            )
            .with_vars(with(progress.vars(), json!({ "role": "executive" }))),
        );
    }
    out
}

/// The check on `day`: on track on day 7, the admin's week-one congratulation; behind, one
/// short email with the next step; stuck, that email and an alert to the CSM. Executives get a
/// progress summary on day 7 whatever the standing. Nothing once complete.
pub fn check_nudges(
    to: &Audience<'_>,
    day: i64,
    standing: Standing,
    progress: &Progress,
) -> Vec<Nudge> {
    let mut out = Vec::new();
    if standing == Standing::Complete {
        return out;
    }
    let check = format!("check_{day:02}");
    let vars = with(
        progress.vars(),
        json!({ "day": day, "standing": standing_name(standing) }),
    );
    match standing {
        Standing::OnTrack if day == CHECK_DAYS[0] => out.push(
            to.nudge("ms/week_one/admin".into(), to.admin, NudgeKind::Milestone)
                .with_stage(Stage::WeekOne)
                .with_vars(with(vars.clone(), json!({ "role": "admin" }))),
        ),
        Standing::Behind | Standing::Stuck => {
            let stage = if standing == Standing::Stuck {
                Stage::Stuck
            } else {
                Stage::Behind
            };
            out.push(
                to.nudge(
                    format!("ob/{check}/admin"),
                    to.admin,
                    NudgeKind::OnboardingProgress,
                )
                .with_stage(stage)
                .with_vars(with(vars.clone(), json!({ "role": "admin" }))),
            );
            if standing == Standing::Stuck {
                let last = progress.done.values().max().map(|t| t.to_rfc3339());
                out.push(
                    to.nudge(format!("ob/{check}/csm"), None, NudgeKind::OnboardingProgress)
                        .with_stage(stage)
                        .with_vars(with(vars.clone(), json!({ "for_csm": true, "last_step_at": last, "has_admin": to.admin.is_some() })))
                        .for_csm(),
                );
            }
        }
        _ => {}
    }
    if day == CHECK_DAYS[0] {
        for exec in to.executives() {
            out.push(
                to.nudge(
                    format!("ms/week_one/{exec}"),
                    Some(exec),
                    NudgeKind::Milestone,
                )
                .with_stage(Stage::WeekOne)
                .with_vars(with(vars.clone(), json!({ "role": "executive" }))),
            );
        }
    }
    out
}

fn standing_name(s: Standing) -> &'static str {
    match s {
        Standing::Complete => "complete",
        Standing::OnTrack => "on_track",
        Standing::Behind => "behind",
        Standing::Stuck => "stuck",
    }
}

/// A first occurrence as the milestones see it: the key (`feature_dashboard`, `report`,
/// `step_import_data`) and the contact whose event made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct First<'a> {
    pub key: &'a str,
    pub contact_id: Option<&'a str>,
}

/// The congratulations new firsts earn: one message per contact naming every key feature it
/// used for the first time in the batch (`first_feature_use`), the first report
/// (`first_report`), and `onboarding_complete` to the admin and executives when these firsts
/// complete the plan's steps (`before` is the progress without them). Ids are derived from what
/// is celebrated, so a replay plans nothing new.
pub fn milestone_nudges(
    to: &Audience<'_>,
    firsts: &[First<'_>],
    key_features: &[String],
    before: &Progress,
    after: &Progress,
) -> Vec<Nudge> {
    let mut out = Vec::new();
    let mut by_contact: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for f in firsts {
        if let Some(feature) = f.key.strip_prefix("feature_")
            && key_features.iter().any(|k| k == feature)
        {
            by_contact.entry(f.contact_id).or_default().push(feature);
        }
    }
    for (contact, mut features) in by_contact {
        features.sort_unstable();
        features.dedup();
        out.push(
            to.nudge(
                format!("ms/first_feature_use/{}", features.join("+")),
                contact,
                NudgeKind::Milestone,
            )
            .with_stage(Stage::FirstFeatureUse)
            .with_vars(with(
                after.vars(),
                json!({ "feature": features[0], "features": features }),
            )),
        );
    }
    let completes = after.complete() && !before.complete();
    // A first report that completes onboarding is celebrated as the completion: one message.
    if let Some(f) = firsts.iter().find(|f| f.key == "report")
        && !completes
    {
        out.push(
            to.nudge("ms/first_report".into(), f.contact_id, NudgeKind::Milestone)
                .with_stage(Stage::FirstReport)
                .with_vars(after.vars()),
        );
    }
    if completes {
        out.push(
            to.nudge(
                "ms/onboarding_complete/admin".into(),
                to.admin,
                NudgeKind::Milestone,
            )
            .with_stage(Stage::OnboardingComplete)
            .with_vars(with(after.vars(), json!({ "role": "admin" }))),
        );
        for exec in to.executives() {
            out.push(
                to.nudge(
                    format!("ms/onboarding_complete/{exec}"),
                    Some(exec),
                    NudgeKind::Milestone,
                )
                .with_stage(Stage::OnboardingComplete)
                .with_vars(with(after.vars(), json!({ "role": "executive" }))),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
