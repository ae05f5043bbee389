//! The onboarding KPIs of a customer-success lead (`nudge kpi`), as pure arithmetic over one
//! plain input per account. Every figure is "as of" a time `at`: a first, a step or a log entry
//! after it does not count.
//!
//! - **Cohort**: the accounts whose `contract_start` is within `from..=to` (an account outside
//!   the dates is left out, whatever the caller passes).
//! - **Completion rate**: cohort accounts with every step of their plan done (see
//!   [`Progress`]: a first report also completes `first_report`) / cohort size. The **funnel**
//!   counts, per step name, the cohort accounts whose plan has the step (`of`) and those that
//!   did it (`done`); the default plan's steps come first, in order, then any other plan's.
//! - **Median days to complete**: over the completed accounts, from the account-local midnight
//!   of `contract_start` to the step that completed the plan, in days with one decimal (a step
//!   done before the contract started counts as day 0).
//! - **Time to first value**: the median days from that midnight to the account's first
//!   report, over the accounts that made one. The report, not a key feature's first use: the
//!   program counts onboarding as complete at the first result, and a report is that result.
//! - **Active rate**: cohort accounts with at least `active_uses` key-feature uses in the
//!   `active_days` complete account-local days before `at`'s local day / cohort size (the
//!   health score's `active`, so the two agree).
//! - **Milestones reached**: `milestone` delivery-log entries with status `sent`, per stage
//!   (`week_one`, `first_feature_use`, `first_report`, `onboarding_complete`): the messages,
//!   and the accounts with at least one.
//!
//! An empty cohort gives rates of 0, never NaN; a median with nothing to take it over is
//! `None`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::program::{Progress, local_day_start};
use crate::domain::{DeliveryLogEntry, LogStatus, NudgeKind, Stage};
use crate::health::HealthModel;
use crate::store::DayRollup;

/// The milestone stages counted, in the order the KPIs list them.
pub const MILESTONE_STAGES: [Stage; 4] = [
    Stage::WeekOne,
    Stage::FirstFeatureUse,
    Stage::FirstReport,
    Stage::OnboardingComplete,
];

/// One delivery-log entry, as much of it as the KPIs read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedNudge {
    pub at: DateTime<Utc>,
    pub kind: NudgeKind,
    pub stage: Option<Stage>,
    pub status: LogStatus,
}

impl From<&DeliveryLogEntry> for LoggedNudge {
    fn from(e: &DeliveryLogEntry) -> Self {
        LoggedNudge {
            at: e.at,
            kind: e.kind,
            stage: e.stage,
            status: e.status,
        }
    }
}

/// What the KPIs know of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountInput {
    pub account_id: String,
    pub contract_start: NaiveDate,
    pub tz: Tz,
    /// The plan's onboarding steps, in order.
    pub steps: Vec<String>,
    /// The plan's key features.
    pub key_features: Vec<String>,
    /// The account's firsts (`step_<s>`, `report`, `feature_<f>`, `login`).
    pub firsts: BTreeMap<String, DateTime<Utc>>,
    /// Feature uses per account-local day (the rollups' `features`); only key features count.
    pub feature_days: BTreeMap<NaiveDate, BTreeMap<String, u64>>,
    /// The account's delivery log (any kind: only sent milestones count).
    pub log: Vec<LoggedNudge>,
}

/// The rollups' feature counts by day.
pub fn feature_days(rollups: Vec<DayRollup>) -> BTreeMap<NaiveDate, BTreeMap<String, u64>> {
    rollups.into_iter().map(|r| (r.day, r.features)).collect()
}

/// The model's numbers the KPIs use.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiSettings {
    /// `thresholds.active_uses`.
    pub active_uses: i64,
    /// `thresholds.active_days`.
    pub active_days: i64,
    /// The funnel's first rows: the default plan's steps.
    pub step_order: Vec<String>,
}

impl KpiSettings {
    pub fn from_model(model: &HealthModel) -> KpiSettings {
        KpiSettings {
            active_uses: model.thresholds.active_uses,
            active_days: model.thresholds.active_days,
            step_order: model.onboarding_steps.default.clone(),
        }
    }
}

/// The account-local days whose usage decides "active" as of `at`: the `active_days` complete
/// days before `at`'s local day (that day is partial), first and last.
pub fn active_window(at: DateTime<Utc>, tz: Tz, active_days: i64) -> (NaiveDate, NaiveDate) {
    let today = at.with_timezone(&tz).date_naive();
    (
        today - Duration::days(active_days.max(1)),
        today - Duration::days(1),
    )
}

/// One row of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    pub step: String,
    /// Cohort accounts that did the step.
    pub done: usize,
    /// Cohort accounts whose plan has the step.
    pub of: usize,
    pub rate: f64,
}

/// Sent milestone messages of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MilestoneCount {
    pub stage: Stage,
    /// Messages (an admin's and each executive's copy count apart).
    pub sent: usize,
    /// Accounts with at least one.
    pub accounts: usize,
}

/// The KPIs of one cohort (rates are shares, 0 to 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnboardingKpis {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub at: DateTime<Utc>,
    pub cohort: usize,
    pub completed: usize,
    pub completion_rate: f64,
    pub funnel: Vec<FunnelStep>,
    pub median_days_to_complete: Option<f64>,
    /// Accounts with a first report.
    pub first_value: usize,
    pub median_days_to_first_value: Option<f64>,
    pub active: usize,
    pub active_rate: f64,
    pub active_uses: i64,
    pub active_days: i64,
    pub milestones: Vec<MilestoneCount>,
}

/// The KPIs of the accounts whose contract starts within `from..=to`, as of `at`.
pub fn onboarding_kpis(
    accounts: &[AccountInput],
    from: NaiveDate,
    to: NaiveDate,
    at: DateTime<Utc>,
    settings: &KpiSettings,
) -> OnboardingKpis {
    let cohort: Vec<&AccountInput> = accounts
        .iter()
        .filter(|a| (from..=to).contains(&a.contract_start))
        .collect();

    let mut completed = 0;
    let mut complete_days = Vec::new();
    let mut value_days = Vec::new();
    let mut active = 0;
    let mut funnel: Vec<FunnelStep> = settings
        .step_order
        .iter()
        .map(|s| FunnelStep {
            step: s.clone(),
            done: 0,
            of: 0,
            rate: 0.0,
        })
        .collect();
    let mut milestones: BTreeMap<Stage, (usize, BTreeSet<&str>)> = BTreeMap::new();

    for a in &cohort {
        let start = local_day_start(a.contract_start, 0, a.tz);
        let firsts: BTreeMap<String, DateTime<Utc>> = a
            .firsts
            .iter()
            .filter(|(_, t)| **t <= at)
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        let progress = Progress::from_firsts(&a.steps, &firsts);
        for step in &a.steps {
            let row = match funnel.iter().position(|r| &r.step == step) {
                Some(i) => &mut funnel[i],
                None => {
                    funnel.push(FunnelStep {
                        step: step.clone(),
                        done: 0,
                        of: 0,
                        rate: 0.0,
                    });
                    let last = funnel.len() - 1;
                    &mut funnel[last]
                }
            };
            row.of += 1;
            if progress.done.contains_key(step) {
                row.done += 1;
            }
        }
        if progress.complete() {
            completed += 1;
            if let Some(done_at) = progress.done.values().max() {
                complete_days.push(days_between(start, *done_at));
            }
        }
        if let Some(report) = firsts.get("report") {
            value_days.push(days_between(start, *report));
        }
        if key_feature_uses(a, at, settings.active_days) >= settings.active_uses.max(0) as u64 {
            active += 1;
        }
        for entry in a
            .log
            .iter()
            .filter(|e| e.kind == NudgeKind::Milestone && e.status == LogStatus::Sent && e.at <= at)
        {
            if let Some(stage) = entry.stage.filter(|s| MILESTONE_STAGES.contains(s)) {
                let (sent, who) = milestones.entry(stage).or_default();
                *sent += 1;
                who.insert(&a.account_id);
            }
        }
    }

    for row in &mut funnel {
        row.rate = rate(row.done, row.of);
    }
    OnboardingKpis {
        from,
        to,
        at,
        cohort: cohort.len(),
        completed,
        completion_rate: rate(completed, cohort.len()),
        funnel,
        median_days_to_complete: median(&complete_days),
        first_value: value_days.len(),
        median_days_to_first_value: median(&value_days),
        active,
        active_rate: rate(active, cohort.len()),
        active_uses: settings.active_uses,
        active_days: settings.active_days,
        milestones: MILESTONE_STAGES
            .iter()
            .map(|stage| {
                let (sent, who) = milestones.remove(stage).unwrap_or_default();
                MilestoneCount {
                    stage: *stage,
                    sent,
                    accounts: who.len(),
                }
            })
            .collect(),
    }
}

/// Key-feature uses in the active window as of `at`.
fn key_feature_uses(a: &AccountInput, at: DateTime<Utc>, active_days: i64) -> u64 {
    let (first, last) = active_window(at, a.tz, active_days);
    a.feature_days
        .range(first..=last)
        .flat_map(|(_, features)| features.iter())
        .filter(|(f, _)| a.key_features.contains(f))
        .map(|(_, n)| *n)
        .sum()
}

/// `part / whole`, 0 when `whole` is 0.
pub fn rate(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Days from `start` to `t` (0 when `t` is earlier).
fn days_between(start: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - start).num_seconds().max(0) as f64 / 86_400.0
}

/// The median (the mean of the middle two for an even count), to one decimal; `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let m = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some((m * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests;
