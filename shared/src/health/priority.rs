//! The CSM priority list (`nudge queue`): which accounts a person should look at first, why, and
//! one concrete next step for each.
//!
//! Pure: a function of the active model, one [`PriorityInput`] per account and "now". Three
//! groups, in this order, each sorted by ARR (largest first, equal ARR by account id); an
//! account is listed once, in the first group it belongs to:
//!
//! 1. **NPS** (`low_nps`, `falling_nps`): an account with a lot at stake ([`is_high_arr`])
//!    whose latest NPS answer (not older than `thresholds.nps_max_age_days`) is a detractor
//!    (at most `thresholds.detractor_max`: `low_nps`) or at least [`FALLING_NPS_DROP`] points
//!    below the answer before it (`falling_nps`). The row carries the answer's comment.
//! 2. **Red** (`red`): the latest score is in the red band. The next step follows the factor
//!    that cost the score the most points (`explain::gaps`).
//! 3. **Stalled onboarding** (`stalled_onboarding`): in the onboarding phase, steps still
//!    open, and no step completed in the last [`STALL_DAYS`] days.
//!
//! Anything else (a green or yellow account with good NPS and onboarding on track) is not
//! listed. A provisional score still lists its account; the row's detail says "provisional".

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::explain::gaps;
use super::model::{Band, Factor, HealthModel, Phase};
use super::score::{HealthScore, NpsResponse, local_day, phase};
use crate::domain::Tier;
use crate::store::HealthRecord;

/// A drop of one point between two answers is noise; two points is a changed opinion.
pub const FALLING_NPS_DROP: u8 = 2;

/// Onboarding steps come a few days apart; a week without one means stuck, not busy.
pub const STALL_DAYS: i64 = 7;

/// Why an account is on the list (its group).
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
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PriorityReason {
    /// The latest NPS answer is a detractor's.
    LowNps,
    /// The latest NPS answer fell at least [`FALLING_NPS_DROP`] points.
    FallingNps,
    /// The latest score is red.
    Red,
    /// Onboarding has not moved for [`STALL_DAYS`] days.
    StalledOnboarding,
}

impl PriorityReason {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// The group's place in the list (NPS first, then red, then onboarding).
    fn group(&self) -> u8 {
        match self {
            PriorityReason::LowNps | PriorityReason::FallingNps => 0,
            PriorityReason::Red => 1,
            PriorityReason::StalledOnboarding => 2,
        }
    }
}

/// Where an account is with its onboarding.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardingProgress {
    pub phase: Phase,
    /// Steps of the plan done (`first_report` also counts when the account created a report).
    pub steps_done: usize,
    pub steps_total: usize,
    /// The first open step in the plan's order.
    pub next_open: Option<String>,
    /// When the most recent step was completed.
    pub last_step_at: Option<DateTime<Utc>>,
    /// From when progress could be seen (the later of the contract start and the day Nudge
    /// first saw the account): with no step done, the stall is counted from here.
    pub since: DateTime<Utc>,
}

/// One account as the priority list reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorityInput {
    pub account_id: String,
    pub name: String,
    pub arr: f64,
    pub tier: Tier,
    /// The latest score under the active model; `None` before the first daily run.
    pub score: Option<HealthScore>,
    /// NPS answers, any order (the newest is found by `at`).
    pub nps: Vec<NpsResponse>,
    pub onboarding: OnboardingProgress,
}

/// One line of the priority list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityRow {
    pub account_id: String,
    pub name: String,
    pub arr: f64,
    /// `None` while the account has no score yet.
    pub band: Option<Band>,
    pub score: Option<u8>,
    pub provisional: bool,
    pub reason: PriorityReason,
    /// Why it is listed, in one line ("NPS 3 (was 8) · ARR 120,000").
    pub detail: String,
    /// The latest NPS answer's comment (NPS rows only).
    pub nps_comment: Option<String>,
    /// One concrete action for the CSM.
    pub next_step: String,
}

/// A lot at stake: ARR at or above `tiers.low_touch_from_arr` (below it the model puts an
/// account in tech touch, served without a named person), or a high-touch tier whatever the
/// ARR (a CS decision or a plan rule said a person owns it).
pub fn is_high_arr(model: &HealthModel, tier: Tier, arr: f64) -> bool {
    tier == Tier::HighTouch || arr >= model.tiers.low_touch_from_arr
}

impl PriorityInput {
    /// The input of a stored account: profile, firsts (`step_<name>`, `report`) and NPS answers
    /// of `record`, with its latest `score`. `None` without a profile (nothing to rank by).
    pub fn from_record(
        model: &HealthModel,
        record: &HealthRecord,
        first_seen: DateTime<Utc>,
        score: Option<HealthScore>,
        now: DateTime<Utc>,
    ) -> Option<PriorityInput> {
        let account = record.account.as_ref()?;
        let profile = account.profile.as_ref()?;
        let steps = model.onboarding_steps(&profile.plan);
        // When each step was done; `first_report` is also done by the first report (the
        // earlier of the two is when it was done).
        let done_at = |step: &str| -> Option<DateTime<Utc>> {
            let own = record.firsts.get(&format!("step_{step}")).copied();
            let report = (step == "first_report")
                .then(|| record.firsts.get("report").copied())
                .flatten();
            match (own, report) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let done: Vec<Option<DateTime<Utc>>> = steps.iter().map(|s| done_at(s)).collect();
        let steps_done = done.iter().flatten().count();
        let next_open = steps
            .iter()
            .zip(&done)
            .find(|(_, at)| at.is_none())
            .map(|(s, _)| s.clone());
        let today = local_day(now, profile.timezone);
        // Midnight UTC of the contract start: a few hours off the account's own midnight,
        // nothing against a window of days.
        let contract_start = profile.contract_start.and_time(NaiveTime::MIN).and_utc();
        Some(PriorityInput {
            account_id: account.account_id.clone(),
            name: profile.name.clone(),
            arr: profile.arr,
            tier: model.tier(profile).0,
            score,
            nps: record
                .satisfaction
                .nps
                .iter()
                .map(|a| NpsResponse {
                    score: a.score,
                    at: a.at,
                    comment: a.comment.clone(),
                })
                .collect(),
            onboarding: OnboardingProgress {
                phase: phase(model, profile, today, steps_done >= steps.len()),
                steps_done,
                steps_total: steps.len(),
                next_open,
                last_step_at: done.iter().flatten().max().copied(),
                since: contract_start.max(first_seen),
            },
        })
    }
}

/// The priority list: NPS rows, then red, then stalled onboarding; see the module
/// documentation for the rules.
pub fn rank(
    model: &HealthModel,
    accounts: &[PriorityInput],
    now: DateTime<Utc>,
) -> Vec<PriorityRow> {
    let mut rows: Vec<PriorityRow> = accounts.iter().filter_map(|a| row(model, a, now)).collect();
    rows.sort_by(|a, b| {
        a.reason
            .group()
            .cmp(&b.reason.group())
            .then(b.arr.total_cmp(&a.arr))
            .then_with(|| a.account_id.cmp(&b.account_id))
    });
    rows
}

/// The account's row in the first group it belongs to, if any.
fn row(model: &HealthModel, a: &PriorityInput, now: DateTime<Utc>) -> Option<PriorityRow> {
    let t = &model.thresholds;
    let provisional = a.score.as_ref().is_some_and(|s| s.provisional);
    let base = |reason: PriorityReason, detail: String, next_step: String| PriorityRow {
        account_id: a.account_id.clone(),
        name: a.name.clone(),
        arr: a.arr,
        band: a.score.as_ref().map(|s| s.band),
        score: a.score.as_ref().map(|s| s.score),
        provisional,
        reason,
        detail: if provisional {
            format!("{detail} · provisional")
        } else {
            detail
        },
        nps_comment: None,
        next_step,
    };

    // 1. Low or falling NPS on an account with a lot at stake.
    let (latest, previous) = latest_two(&a.nps, now, Duration::days(t.nps_max_age_days));
    if let Some(latest) = latest
        && is_high_arr(model, a.tier, a.arr)
    {
        let score = latest.score.min(10);
        let before = previous.map(|p| p.score.min(10));
        let low = i64::from(score) <= t.detractor_max;
        let falling = before.is_some_and(|b| b >= score.saturating_add(FALLING_NPS_DROP));
        if low || falling {
            let was = before.map_or(String::new(), |b| format!(" (was {b})"));
            let comment = latest
                .comment
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty());
            let (reason, next_step) = if low {
                (PriorityReason::LowNps, low_nps_step(comment.is_some()))
            } else {
                (PriorityReason::FallingNps, FALLING_NPS_STEP.to_string())
            };
            let mut r = base(
                reason,
                format!("NPS {score}{was} · ARR {}", arr_text(a.arr)),
                next_step,
            );
            r.nps_comment = comment.map(str::to_string);
            return Some(r);
        }
    }

    // 2. Red, with a step for what cost the most.
    if let Some(s) = &a.score
        && s.band == Band::Red
    {
        let top = gaps(s, 1).into_iter().next();
        let lost = top.map_or(String::new(), |(f, pts)| {
            format!(" · lost most on {} (-{pts:.1} points)", f.as_str())
        });
        return Some(base(
            PriorityReason::Red,
            format!("score {} (red){lost} · ARR {}", s.score, arr_text(a.arr)),
            red_step(top.map(|(f, _)| f)).to_string(),
        ));
    }

    // 3. Onboarding that stopped moving.
    let o = &a.onboarding;
    let moved_at = o.last_step_at.map_or(o.since, |at| at.max(o.since));
    let quiet = now - moved_at;
    if o.phase == Phase::Onboarding
        && o.steps_done < o.steps_total
        && quiet >= Duration::days(STALL_DAYS)
    {
        let quiet_days = quiet.num_days();
        let last = if o.last_step_at.is_some() {
            format!("no step for {quiet_days} days")
        } else {
            format!("no step yet, {quiet_days} days in")
        };
        return Some(base(
            PriorityReason::StalledOnboarding,
            format!(
                "onboarding {} of {} steps · {last} · ARR {}",
                o.steps_done,
                o.steps_total,
                arr_text(a.arr)
            ),
            onboarding_step(o),
        ));
    }
    None
}

/// The newest and second-newest answers not older than `max_age` and not after `now`.
fn latest_two(
    nps: &[NpsResponse],
    now: DateTime<Utc>,
    max_age: Duration,
) -> (Option<&NpsResponse>, Option<&NpsResponse>) {
    let mut recent: Vec<&NpsResponse> = nps
        .iter()
        .filter(|r| r.at <= now && now - r.at <= max_age)
        .collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.at));
    (recent.first().copied(), recent.get(1).copied())
}

fn low_nps_step(has_comment: bool) -> String {
    if has_comment {
        "call the admin this week about their comment; offer a 15-minute review of what is \
         getting in their way"
    } else {
        "call the admin this week to hear what is getting in their way; offer a 15-minute review"
    }
    .to_string()
}

const FALLING_NPS_STEP: &str = "ask the admin what changed since their previous answer and agree \
     on one thing to fix together, with a date";

/// The next step for a red account, by the factor that cost its score the most.
fn red_step(top: Option<Factor>) -> &'static str {
    use Factor::*;
    match top {
        Some(Tenure | Renewals) => {
            "book a 30-minute success review with the admin: confirm the goals they bought for \
             and show the progress so far"
        }
        Some(DaysToRenewal) => {
            "schedule a value review before the renewal date: what they achieved this year and \
             what they need next"
        }
        Some(Plan) => {
            "check with the admin that their plan still fits how they work, and show what it \
             includes that they have not tried"
        }
        Some(LoginDays | LoginTrend | LoginDecline) => {
            "ask the admin what changed in their team's week and offer a 15-minute walkthrough \
             of the one report they used most"
        }
        Some(ActiveContacts) => {
            "offer the admin help inviting the colleagues who would benefit most, with a short \
             intro session for them"
        }
        Some(FeatureBreadth | KeyFeaturesUnused) => {
            "show the admin one key feature they have not tried yet, on their own data, in a \
             15-minute call"
        }
        Some(FeatureDepth) => {
            "send the admin a short how-to for the feature they use most and offer to set it up \
             for their workflow"
        }
        Some(Reports) => "offer to build their next report together in a 15-minute session",
        Some(Onboarding) => {
            "offer to do the next open onboarding step together in a 15-minute call"
        }
        Some(Nps | NpsTrend | NpsDetractor) => {
            "call the admin to hear what is behind their last NPS answer and agree on one fix"
        }
        Some(OpenTickets | RecentTickets | TicketSpike) => {
            "go through their open tickets with support, then call the admin with a plan and a \
             date for each"
        }
        Some(AdminChanged) => {
            "introduce yourself to the new admin and offer a 30-minute handover of how their \
             team uses the product"
        }
        None => "call the admin this week to hear how things are going and agree on one next step",
    }
}

fn onboarding_step(o: &OnboardingProgress) -> String {
    let step = o.next_open.as_deref().map_or("next".to_string(), |s| {
        format!("\"{}\"", s.replace('_', " "))
    });
    if o.steps_done == 0 {
        format!("offer a 15-minute kickoff call to do the {step} step together")
    } else {
        format!(
            "offer to do the {step} step together in a 15-minute call; {} of {} steps done so \
             far",
            o.steps_done, o.steps_total
        )
    }
}

/// ARR as a whole number with thousands separators ("120,000").
pub fn arr_text(arr: f64) -> String {
    let whole = arr.round();
    let digits = format!("{:.0}", whole.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if whole < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many accounts each reason listed (for a summary line).
pub fn counts(rows: &[PriorityRow]) -> BTreeMap<PriorityReason, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.reason).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests;
