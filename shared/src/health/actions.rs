//! The playbooks in action: from one day's score and what was last acted on (the account's
//! [`HealthPulse`]), the nudges to plan. Pure: the service reads, calls these, and hands the
//! nudges to the one delivery path.
//!
//! Once per occurrence, whatever happens to the run:
//! - a band change is found by comparing the score with the pulse; the pulse is written after
//!   the nudges, and a re-run of the same day (a crashed or retried shard) compares with the
//!   band *before* that day again, so it finds the same change and plans the same nudge ids,
//!   which the store records once;
//! - staying in a band changes nothing, so it plans nothing;
//! - a provisional score (an account Nudge has known too briefly) never acts and never moves the
//!   pulse, so its first real score is compared with nothing;
//! - the upsell is keyed by the renewal date it is for; the admin welcome by the new admin.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::model::{Action, Band, Factor, HealthModel, Trigger};
use super::score::{DayUsage, HealthScore, NpsResponse};
use super::{ScoreChange, gaps};
use crate::domain::{Member, Nudge, Role, Stage, executives};
use crate::events::AccountProfile;
use crate::store::HealthPulse;

/// The function that plans health nudges (the delivery log's `function`).
pub const FUNCTION: &str = "health";

/// How many drivers a CSM alert lists.
pub const ALERT_DRIVERS: usize = 3;

/// A band change found today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandChange {
    /// `None`: the account's first non-provisional score.
    pub from: Option<Band>,
    pub to: Band,
    /// The account-local day of the change.
    pub day: NaiveDate,
}

impl BandChange {
    /// What the change sets off: worse into red, or from green (or nothing) into yellow.
    /// Recovering (red to yellow, anything to green) sets off nothing.
    pub fn trigger(&self) -> Option<Trigger> {
        match (self.from, self.to) {
            (from, Band::Red) if from != Some(Band::Red) => Some(Trigger::TurnsRed),
            (None | Some(Band::Green), Band::Yellow) => Some(Trigger::TurnsYellow),
            _ => None,
        }
    }
}

/// Today's band against the pulse: the change to act on (if any) and the pulse to store
/// (`None`: unchanged, nothing to write).
pub fn band_change(
    pulse: &HealthPulse,
    score: &HealthScore,
) -> (Option<BandChange>, Option<HealthPulse>) {
    if score.provisional {
        return (None, None);
    }
    let band = |s: &Option<String>| s.as_deref().and_then(|b| b.parse::<Band>().ok());
    let stored = band(&pulse.band);
    match pulse.since {
        // An older day scored again (a backfill): history, not news.
        Some(since) if since > score.day => (None, None),
        // The same day again (a re-run): the change is from the band before that day.
        Some(since) if since == score.day => {
            let from = band(&pulse.previous_band);
            let change = (from != Some(score.band)).then_some(BandChange {
                from,
                to: score.band,
                day: since,
            });
            let write = (stored != Some(score.band)).then(|| HealthPulse {
                band: Some(score.band.as_str().to_string()),
                ..pulse.clone()
            });
            (change, write)
        }
        _ if stored == Some(score.band) => (None, None),
        _ => (
            Some(BandChange {
                from: stored,
                to: score.band,
                day: score.day,
            }),
            Some(HealthPulse {
                band: Some(score.band.as_str().to_string()),
                since: Some(score.day),
                previous_band: pulse.band.clone(),
                upsell_for: pulse.upsell_for,
            }),
        ),
    }
}

/// What a CSM alert and a risk email are written from, beyond the score.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub account_id: &'a str,
    pub profile: &'a AccountProfile,
    pub score: &'a HealthScore,
    /// Yesterday-to-today (from the latest earlier snapshot), when there is one.
    pub change: Option<&'a ScoreChange>,
    pub latest_nps: Option<&'a NpsResponse>,
    /// The account's usage days (for the feature it stopped using).
    pub usage: &'a [DayUsage],
    pub now: DateTime<Utc>,
}

/// The nudges of a band change under the account's tier's playbook.
pub fn band_nudges(model: &HealthModel, change: &BandChange, facts: &Facts<'_>) -> Vec<Nudge> {
    let Some(trigger) = change.trigger() else {
        return Vec::new();
    };
    let stage = stage_of(trigger);
    let day = change.day;
    model
        .playbooks
        .for_tier(facts.score.tier)
        .actions(trigger)
        .iter()
        .filter_map(|&action| {
            let vars = match action {
                Action::HealthAlert => alert_vars(trigger, change, facts),
                Action::RiskNudge => risk_vars(model, change, facts),
                // Not allowed for band triggers (the model refuses them).
                Action::AdminWelcome | Action::UpsellOffer => return None,
            };
            Some(
                Nudge::new(
                    format!("hp/{trigger}/{day}/{action}"),
                    facts.account_id,
                    None,
                    action.kind(),
                    facts.now,
                    FUNCTION,
                    facts.now,
                )
                .with_stage(stage)
                .with_vars(vars),
            )
        })
        .collect()
}

fn stage_of(trigger: Trigger) -> Stage {
    match trigger {
        Trigger::TurnsRed => Stage::TurnsRed,
        Trigger::TurnsYellow => Stage::TurnsYellow,
        Trigger::AdminChanged => Stage::AdminChanged,
        Trigger::RenewalUpsell => Stage::RenewalUpsell,
    }
}

fn alert_vars(trigger: Trigger, change: &BandChange, f: &Facts<'_>) -> Value {
    let drivers: Vec<Value> = gaps(f.score, ALERT_DRIVERS)
        .into_iter()
        .map(|(factor, lost)| json!({ "factor": factor.as_str(), "points": -lost }))
        .collect();
    let moved: Vec<Value> = f
        .change
        .map(|c| {
            c.reasons
                .iter()
                .map(|r| json!({ "factor": r.factor.as_str(), "points": r.points }))
                .collect()
        })
        .unwrap_or_default();
    let next_step = gaps(f.score, 1)
        .first()
        .map(|(factor, _)| factor.as_str())
        .unwrap_or("check_in");
    json!({
        "trigger": trigger.as_str(),
        "score": f.score.score,
        "band": f.score.band.as_str(),
        "previous_band": change.from.map(|b| b.as_str()),
        "previous_score": f.change.map(|c| c.before),
        "tier": f.score.tier.as_str(),
        "arr": f.profile.arr,
        "drivers": drivers,
        "moved": moved,
        "nps": f.latest_nps.map(|n| n.score),
        "nps_comment": f.latest_nps.and_then(|n| n.comment.clone()),
        "next_step": next_step,
    })
}

fn risk_vars(model: &HealthModel, change: &BandChange, f: &Facts<'_>) -> Value {
    // Red: a person steps in. The email is signed by the CSM and replies reach them.
    let from_csm = change.to == Band::Red && f.profile.csm.is_some();
    json!({
        "band": change.to.as_str(),
        "feature": stopped_feature(model, &f.profile.plan, f.usage, f.score.day),
        "from_csm": from_csm,
    })
}

/// The key feature the account stopped using: used in the history before the last
/// `key_feature_unused_days`, not since, the most used first (the habit that was lost). Else the
/// first key feature with no use at all in the history (a way in); `None` when every key
/// feature is in use.
pub fn stopped_feature(
    model: &HealthModel,
    plan: &str,
    usage: &[DayUsage],
    today: NaiveDate,
) -> Option<String> {
    let recent_from = today - chrono::Duration::days(model.thresholds.key_feature_unused_days);
    let uses = |feature: &str, recent: bool| -> u64 {
        usage
            .iter()
            .filter(|d| d.day < today && (d.day >= recent_from) == recent)
            .filter_map(|d| d.features.get(feature))
            .sum()
    };
    let keys = model.key_features(plan);
    let lost = keys
        .iter()
        .filter(|k| uses(k, true) == 0)
        .map(|k| (uses(k, false), k))
        .filter(|(before, _)| *before > 0)
        // Most used before first; equal uses keep the model's order.
        .fold(None::<(u64, &String)>, |best, (n, k)| match best {
            Some((b, _)) if b >= n => best,
            _ => Some((n, k)),
        });
    lost.map(|(_, k)| k.clone()).or_else(|| {
        keys.iter()
            .find(|k| uses(k, true) == 0 && uses(k, false) == 0)
            .cloned()
    })
}

/// The renewal date an upsell offer is due for today, if it is: a non-provisional green score,
/// heavy use (key-feature uses in the usage window at least the playbook's
/// `min_feature_uses`), the renewal within `within_days`, and not yet offered for that date.
pub fn upsell_due(
    model: &HealthModel,
    profile: &AccountProfile,
    score: &HealthScore,
    pulse: &HealthPulse,
) -> Option<NaiveDate> {
    let rule = &model.playbooks.upsell;
    let uses = score
        .driver(Factor::FeatureDepth)
        .and_then(|d| d.value)
        .unwrap_or(0.0);
    let days_left = (profile.renewal_date - score.day).num_days();
    let due = !score.provisional
        && score.band == Band::Green
        && uses >= rule.min_feature_uses
        && (0..=rule.within_days).contains(&days_left)
        && pulse.upsell_for != Some(profile.renewal_date)
        && !model
            .playbooks
            .for_tier(score.tier)
            .actions(Trigger::RenewalUpsell)
            .is_empty();
    due.then_some(profile.renewal_date)
}

/// The upsell nudges for `renewal`: to the account's admin (resolved when it leaves) and each
/// executive; never to plain users. Keyed by the renewal date, so once per renewal cycle.
pub fn upsell_nudges(
    model: &HealthModel,
    facts: &Facts<'_>,
    renewal: NaiveDate,
    admin_contact_id: Option<&str>,
    members: &[Member<'_>],
) -> Vec<Nudge> {
    let Facts {
        account_id,
        profile,
        score,
        now,
        ..
    } = *facts;
    let premium = profile.plan.trim().eq_ignore_ascii_case("premium")
        || profile.plan.trim().eq_ignore_ascii_case("enterprise");
    let mut to: Vec<(Option<&str>, Role)> = vec![(None, Role::Admin)];
    to.extend(executives(members, admin_contact_id).map(|c| (Some(c), Role::Executive)));
    let trigger = Trigger::RenewalUpsell;
    model
        .playbooks
        .for_tier(score.tier)
        .actions(trigger)
        .iter()
        .flat_map(|&action| {
            to.iter().map(move |(contact, role)| {
                let who = contact.unwrap_or("admin");
                let vars = match action {
                    Action::UpsellOffer => json!({
                        "role": role.as_str(),
                        "premium": premium,
                        "renewal_date": renewal.to_string(),
                    }),
                    _ => json!({ "trigger": trigger.as_str(), "score": score.score,
                                 "band": score.band.as_str(), "arr": profile.arr }),
                };
                Nudge::new(
                    format!("hp/{trigger}/{renewal}/{action}/{who}"),
                    account_id,
                    contact.map(str::to_string),
                    action.kind(),
                    now,
                    FUNCTION,
                    now,
                )
                .with_stage(stage_of(trigger))
                .with_vars(vars)
            })
        })
        // A CSM alert on an upsell goes once, not once per recipient.
        .fold(Vec::<Nudge>::new(), |mut out, n| {
            if n.audience() == crate::domain::Audience::Csm && out.iter().any(|o| o.kind == n.kind)
            {
                return out;
            }
            out.push(n);
            out
        })
}

/// The nudges of a new admin: keyed by the new admin, so once per admin, whatever replays.
pub fn admin_nudges(
    model: &HealthModel,
    account_id: &str,
    profile: &AccountProfile,
    new_admin: &str,
    now: DateTime<Utc>,
) -> Vec<Nudge> {
    let (tier, _) = model.tier(profile);
    let trigger = Trigger::AdminChanged;
    model
        .playbooks
        .for_tier(tier)
        .actions(trigger)
        .iter()
        .filter_map(|&action| {
            let (contact, vars) = match action {
                Action::AdminWelcome => (
                    Some(new_admin.to_string()),
                    json!({ "first_step": model.onboarding_steps(&profile.plan).first() }),
                ),
                Action::HealthAlert => (
                    None,
                    json!({ "trigger": trigger.as_str(), "tier": tier.as_str(),
                            "arr": profile.arr, "next_step": "admin_changed" }),
                ),
                Action::RiskNudge | Action::UpsellOffer => return None,
            };
            Some(
                Nudge::new(
                    format!("hp/{trigger}/{new_admin}/{action}"),
                    account_id,
                    contact,
                    action.kind(),
                    now,
                    FUNCTION,
                    now,
                )
                .with_stage(stage_of(trigger))
                .with_vars(vars),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
