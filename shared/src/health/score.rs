//! Scoring one account: [`score`] turns a [`HealthModel`] and an account's [`HealthInputs`]
//! into a [`HealthScore`]. The rules are explained in the module documentation of
//! `health` (`shared/src/health/mod.rs`); this file is their implementation.
//!
//! Cost: one pass over the usage days (bit masks for days and key features, no map built; the
//! distinct contacts by merging each day's sorted set), one over tickets and NPS responses; the
//! only allocations are the drivers, the families and two vectors of borrowed contact names.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::model::{Band, Factor, Family, HealthModel, Phase, TierSource};
use crate::domain::Tier;
use crate::events::{AccountProfile, Severity};

/// The neutral sub-score: only used when nothing with weight is known (see [`score`]).
pub const NEUTRAL: f64 = 50.0;

/// The account's local calendar day of an instant: every usage window counts the account's
/// own days, so a login at 23:30 in Tokyo belongs to that Tokyo date, not to the UTC one.
pub fn local_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// Usage of one local day (the caller builds it from what ingest kept; see `store::DayRollup`).
/// Several entries for the same day add up; a day counts once for login days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    pub day: NaiveDate,
    pub logins: u64,
    pub reports: u64,
    /// Feature name -> uses that day.
    pub features: BTreeMap<String, u64>,
    pub active_contacts: BTreeSet<String>,
}

/// A support ticket (open, or opened recently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub severity: Severity,
    pub opened_at: DateTime<Utc>,
}

/// One NPS answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpsResponse {
    /// 0-10 (ingest validates it; anything above counts as 10).
    pub score: u8,
    pub at: DateTime<Utc>,
    pub comment: Option<String>,
}

/// Everything the score of one account depends on. Borrowed, so a caller (or a bench) scores
/// without copying.
#[derive(Debug, Clone, Copy)]
pub struct HealthInputs<'a> {
    pub profile: &'a AccountProfile,
    /// When Nudge first saw the account: usage before it is unknown, not zero.
    pub first_seen: DateTime<Utc>,
    /// Local days, any order; only the `HISTORY_DAYS` complete days before today count.
    pub usage: &'a [DayUsage],
    /// Names of completed onboarding steps (`setup_step_completed`).
    pub onboarding_steps_done: &'a BTreeSet<String>,
    /// The account created its first report: satisfies a step named `first_report`.
    pub first_report: bool,
    /// Tickets open now.
    pub open_tickets: &'a [Ticket],
    /// Tickets opened in the last `recent_ticket_days` (older ones passed here are ignored).
    pub recent_tickets: &'a [Ticket],
    /// Latest NPS responses, any order (the newest is found by `at`).
    pub nps: &'a [NpsResponse],
    pub admin_changed_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// How one factor made the score (serialized without its empty fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    pub factor: Factor,
    pub family: Family,
    /// The input is not known (no NPS yet, no ticket activity, a window Nudge has not observed):
    /// the factor earns nothing and its weight went to the known factors.
    #[serde(default, skip_serializing_if = "is_false")]
    pub missing: bool,
    /// Risk signals: the signal fired. Always false for the other factors.
    #[serde(default, skip_serializing_if = "is_false")]
    pub triggered: bool,
    /// The raw value (what it is for each factor: `Factor`'s documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What `value` is measured against: a (pro-rated) target, the previous window, a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versus: Option<f64>,
    /// 0-100 for weighted factors (1 decimal); `None` for risk signals and missing factors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscore: Option<f64>,
    /// The factor's share of the score after redistribution (4 decimals); 0 for risk signals.
    pub weight: f64,
    /// Points this factor adds (weight x subscore) or, for a risk signal, takes off (negative);
    /// rounded to 0.01. All drivers' points add up to the score, up to rounding.
    pub points: f64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A family's subtotal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyScore {
    pub family: Family,
    /// Share of the score after redistribution (0 for risk).
    pub weight: f64,
    /// Sum of its drivers' points (negative for risk).
    pub points: f64,
    /// Every factor of the family is missing (its weight went to the other families).
    pub missing: bool,
}

/// The health of one account on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthScore {
    pub model_version: String,
    /// The "now" it was computed for.
    pub at: DateTime<Utc>,
    /// The account's local day of `at`.
    pub day: NaiveDate,
    /// 0-100, the blend minus the risk penalties, rounded to the nearest integer (halves up).
    pub score: u8,
    pub band: Band,
    pub tier: Tier,
    pub tier_source: TierSource,
    pub phase: Phase,
    /// At least `active_uses` key-feature uses in the last `active_days`.
    pub active: bool,
    /// Nudge has known the account for less than `provisional_days`: read with care.
    pub provisional: bool,
    /// Contract, usage, satisfaction, risk.
    pub families: Vec<FamilyScore>,
    /// One per factor, in `Factor` order.
    pub drivers: Vec<Driver>,
}

impl HealthScore {
    /// Restores what a compact encoding may leave out: each driver's family (implied by its
    /// factor) and the family subtotals (sums of their drivers, to 0.01 points).
    pub fn restored(mut self) -> HealthScore {
        for d in &mut self.drivers {
            d.family = d.factor.family();
        }
        if self.families.is_empty() {
            self.families = Family::ALL
                .iter()
                .map(|&family| {
                    let of = || self.drivers.iter().filter(move |d| d.family == family);
                    FamilyScore {
                        family,
                        weight: round_to(of().map(|d| d.weight).sum(), 4),
                        points: round_to(of().map(|d| d.points).sum(), 2),
                        missing: family != Family::Risk && of().all(|d| d.missing),
                    }
                })
                .collect();
        }
        self
    }

    pub fn driver(&self, factor: Factor) -> Option<&Driver> {
        self.drivers.iter().find(|d| d.factor == factor)
    }

    pub fn family(&self, family: Family) -> Option<&FamilyScore> {
        self.families.iter().find(|f| f.family == family)
    }
}

/// A weighted factor before weighting.
struct Measure {
    factor: Factor,
    value: Option<f64>,
    versus: Option<f64>,
    /// `None` = missing.
    subscore: Option<f64>,
}

impl Measure {
    fn known(factor: Factor, value: f64, versus: Option<f64>, subscore: f64) -> Self {
        Measure {
            factor,
            value: Some(value),
            versus,
            subscore: Some(subscore.clamp(0.0, 100.0)),
        }
    }

    fn missing(factor: Factor, value: Option<f64>, versus: Option<f64>) -> Self {
        Measure {
            factor,
            value,
            versus,
            subscore: None,
        }
    }
}

/// A risk signal before penalties.
struct Signal {
    factor: Factor,
    value: Option<f64>,
    versus: Option<f64>,
    missing: bool,
    /// 0 = not fired; otherwise the share of the full penalty (1, or unused/all features).
    share: f64,
}

/// 100 x value / target, capped at 100.
fn ratio_score(value: f64, target: f64) -> f64 {
    if target <= 0.0 {
        return 100.0;
    }
    (100.0 * value / target).clamp(0.0, 100.0)
}

/// 100 at no load, 0 at `limit` or more.
fn load_score(load: f64, limit: f64) -> f64 {
    if limit <= 0.0 {
        return if load > 0.0 { 0.0 } else { 100.0 };
    }
    (100.0 * (1.0 - load / limit)).clamp(0.0, 100.0)
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    let r = (x * f).round() / f;
    // Never "-0" in a report.
    if r == 0.0 { 0.0 } else { r }
}

/// What the usage days say, gathered in one pass.
#[derive(Default)]
struct UsageFacts<'a> {
    /// Bit `age` set when that day (1 = yesterday) had a login.
    login_day_mask: u64,
    logins_last: u64,
    logins_prev: u64,
    reports: u64,
    key_uses: u64,
    active_uses: u64,
    /// Bit `i` = key feature `i` used in the usage window / in the unused window.
    used_in_usage_window: u64,
    used_in_unused_window: u64,
    /// Distinct active contacts of the usage window, sorted.
    contacts: Vec<&'a str>,
}

impl<'a> UsageFacts<'a> {
    fn collect(
        model: &HealthModel,
        usage: &'a [DayUsage],
        keys: &[String],
        today: NaiveDate,
    ) -> Self {
        let t = &model.thresholds;
        let trend = t.trend_days;
        let mut u = UsageFacts::default();
        let mut scratch: Vec<&'a str> = Vec::new();
        for day in usage {
            // Age 1 = yesterday. Today (partial) and the future never count.
            let age = (today - day.day).num_days();
            if !(1..=super::model::HISTORY_DAYS).contains(&age) {
                continue;
            }
            if age <= trend {
                u.logins_last += day.logins;
                if day.logins > 0 {
                    u.login_day_mask |= 1u64 << age;
                }
            } else if age <= 2 * trend {
                u.logins_prev += day.logins;
            }
            let in_usage = age <= t.usage_days;
            if in_usage {
                u.reports += day.reports;
                union_into(&mut u.contacts, &mut scratch, &day.active_contacts);
            }
            let in_active = age <= t.active_days;
            let in_unused = age <= t.key_feature_unused_days;
            if !(in_usage || in_active || in_unused) {
                continue;
            }
            for (i, key) in keys.iter().take(super::model::MAX_KEY_FEATURES).enumerate() {
                let n = day.features.get(key.as_str()).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                if in_usage {
                    u.key_uses += n;
                    u.used_in_usage_window |= 1u64 << i;
                }
                if in_active {
                    u.active_uses += n;
                }
                if in_unused {
                    u.used_in_unused_window |= 1u64 << i;
                }
            }
        }
        u
    }
}

/// `acc` (sorted, distinct) becomes its union with one day's contacts (a sorted set): a
/// linear merge, so a month of the same 50 contacts costs 30 short merges, not a sort of 1,500
/// names.
fn union_into<'a>(acc: &mut Vec<&'a str>, scratch: &mut Vec<&'a str>, day: &'a BTreeSet<String>) {
    if day.is_empty() {
        return;
    }
    scratch.clear();
    let mut a = acc.iter().copied().peekable();
    let mut b = day.iter().map(String::as_str).peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    b.next();
                    a.next()
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        scratch.extend(next);
    }
    std::mem::swap(acc, scratch);
}

/// The newest and second-newest NPS responses not older than `max_age` (and not after now).
fn latest_two(
    nps: &[NpsResponse],
    now: DateTime<Utc>,
    max_age: Duration,
) -> (Option<&NpsResponse>, Option<&NpsResponse>) {
    let mut first: Option<&NpsResponse> = None;
    let mut second: Option<&NpsResponse> = None;
    for r in nps {
        if r.at > now || now - r.at > max_age {
            continue;
        }
        match first {
            Some(f) if r.at <= f.at => {
                if second.is_none_or(|s| r.at > s.at) {
                    second = Some(r);
                }
            }
            _ => {
                second = first;
                first = Some(r);
            }
        }
    }
    (first, second)
}

fn nps_value(r: &NpsResponse) -> f64 {
    f64::from(r.score.min(10))
}

/// Index of a blended family in `[contract, usage, satisfaction]` (risk is never blended).
fn family_index(family: Family) -> usize {
    match family {
        Family::Contract => 0,
        Family::Usage => 1,
        Family::Satisfaction | Family::Risk => 2,
    }
}

/// The phase on `today` (see `Phase`).
pub fn phase(
    model: &HealthModel,
    profile: &AccountProfile,
    today: NaiveDate,
    onboarding_complete: bool,
) -> Phase {
    let t = &model.thresholds;
    let to_renewal = (profile.renewal_date - today).num_days();
    let tenure = (today - profile.contract_start).num_days();
    if to_renewal <= t.pre_renewal_days {
        Phase::PreRenewal
    } else if tenure < t.onboarding_days && !onboarding_complete {
        Phase::Onboarding
    } else {
        Phase::Operation
    }
}

/// Scores one account. See the `health` module documentation for every rule; in short:
///
/// 1. each weighted factor gets a 0-100 sub-score, or is missing;
/// 2. the factor's weight is `family weight x factor weight`, where a family's missing factors
///    give their weight to the family's known ones, and a family with nothing known gives its
///    weight to the other families; the blend is the sum of `weight x subscore`;
/// 3. fired risk signals subtract their penalty; if the penalties add up to more than the
///    blend they are scaled down together so the score stops at 0;
/// 4. the score is that number rounded to an integer.
///
/// If no factor with weight is known at all (only possible when a model gives every weight
/// to factors this account lacks), every weighted factor counts as the neutral 50 at its
/// nominal weight, so the blend is 50.
pub fn score(model: &HealthModel, input: &HealthInputs<'_>) -> HealthScore {
    let p = input.profile;
    let t = &model.thresholds;
    let g = &model.targets;
    let now = input.now;
    let today = local_day(now, p.timezone);
    // Days Nudge has observed, counting the day it first saw the account.
    let since_seen = (today - local_day(input.first_seen, p.timezone)).num_days();
    let observed = |window: i64| since_seen.clamp(0, window);
    // A target pro-rated to the observed part of its window (a week-old account is not
    // expected to have a month of usage).
    let prorated = |target: f64, window: i64| target * observed(window) as f64 / window as f64;

    let keys = model.key_features(&p.plan);
    let key_count = keys.len().min(super::model::MAX_KEY_FEATURES);
    let u = UsageFacts::collect(model, input.usage, keys, today);

    let steps = model.onboarding_steps(&p.plan);
    let steps_done = steps
        .iter()
        .filter(|s| {
            input.onboarding_steps_done.contains(s.as_str())
                || (input.first_report && s.as_str() == "first_report")
        })
        .count();
    let onboarding_complete = steps_done >= steps.len();
    let phase = phase(model, p, today, onboarding_complete);
    let (tier, tier_source) = model.tier(p);

    let tenure_days = (today - p.contract_start).num_days();
    let to_renewal = (p.renewal_date - today).num_days();

    // --- Measures of the weighted factors, in `Factor` order.
    let mut measures: Vec<Measure> = Vec::with_capacity(15);
    measures.push(Measure::known(
        Factor::Tenure,
        tenure_days as f64,
        Some(g.tenure_days),
        ratio_score(tenure_days as f64, g.tenure_days),
    ));
    measures.push(Measure::known(
        Factor::Renewals,
        f64::from(p.renewals),
        Some(g.renewals),
        ratio_score(f64::from(p.renewals), g.renewals),
    ));
    let pre = t.pre_renewal_days as f64;
    measures.push(Measure::known(
        Factor::DaysToRenewal,
        to_renewal as f64,
        Some(pre),
        ratio_score(to_renewal as f64, pre),
    ));
    measures.push(match model.plan_score(&p.plan) {
        Some(s) => Measure::known(Factor::Plan, s, None, s),
        None => Measure::missing(Factor::Plan, None, None),
    });

    // Usage: each window needs at least one observed day.
    let usage_measure = |factor: Factor, value: f64, target: f64, window: i64| {
        let versus = round_to(prorated(target, window), 2);
        if observed(window) == 0 {
            Measure::missing(factor, Some(value), Some(versus))
        } else {
            Measure::known(
                factor,
                value,
                Some(versus),
                ratio_score(value, prorated(target, window)),
            )
        }
    };
    let login_days = (u.login_day_mask >> 1).count_ones();
    measures.push(usage_measure(
        Factor::LoginDays,
        f64::from(login_days),
        g.login_days,
        t.trend_days,
    ));
    // The trend needs both windows fully observed and some logins in them.
    let trend_known = since_seen >= 2 * t.trend_days && (u.logins_last + u.logins_prev) > 0;
    let (last, prev) = (u.logins_last as f64, u.logins_prev as f64);
    measures.push(if trend_known {
        let s = if prev == 0.0 {
            100.0
        } else {
            100.0 * last / prev
        };
        Measure::known(Factor::LoginTrend, last, Some(prev), s)
    } else {
        Measure::missing(Factor::LoginTrend, Some(last), Some(prev))
    });
    measures.push(usage_measure(
        Factor::ActiveContacts,
        u.contacts.len() as f64,
        g.active_contacts,
        t.usage_days,
    ));
    let breadth = f64::from(u.used_in_usage_window.count_ones());
    measures.push(if observed(t.usage_days) == 0 || key_count == 0 {
        Measure::missing(
            Factor::FeatureBreadth,
            Some(breadth),
            Some(key_count as f64),
        )
    } else {
        Measure::known(
            Factor::FeatureBreadth,
            breadth,
            Some(key_count as f64),
            100.0 * breadth / key_count as f64,
        )
    });
    measures.push(usage_measure(
        Factor::FeatureDepth,
        u.key_uses as f64,
        g.feature_uses,
        t.usage_days,
    ));
    measures.push(usage_measure(
        Factor::Reports,
        u.reports as f64,
        g.reports,
        t.usage_days,
    ));
    // No step on record after the onboarding phase most likely means Nudge never saw the
    // steps (the account onboarded before Nudge), not that none was done: missing.
    let (done, total) = (steps_done as f64, steps.len() as f64);
    measures.push(
        if steps.is_empty() || (steps_done == 0 && phase != Phase::Onboarding) {
            Measure::missing(Factor::Onboarding, Some(done), Some(total))
        } else {
            Measure::known(Factor::Onboarding, done, Some(total), 100.0 * done / total)
        },
    );

    // Satisfaction.
    let (latest, previous) = latest_two(input.nps, now, Duration::days(t.nps_max_age_days));
    measures.push(match latest {
        Some(r) => Measure::known(Factor::Nps, nps_value(r), None, 10.0 * nps_value(r)),
        None => Measure::missing(Factor::Nps, None, None),
    });
    measures.push(match (latest, previous) {
        (Some(l), Some(p)) => {
            let delta = nps_value(l) - nps_value(p);
            Measure::known(
                Factor::NpsTrend,
                nps_value(l),
                Some(nps_value(p)),
                100.0 + 10.0 * delta,
            )
        }
        (l, _) => Measure::missing(Factor::NpsTrend, l.map(nps_value), None),
    });
    let recent_from = now - Duration::days(t.recent_ticket_days);
    let recent = || {
        input
            .recent_tickets
            .iter()
            .filter(move |k| k.opened_at > recent_from)
    };
    let sev = &model.severity_weights;
    let open_load: f64 = input.open_tickets.iter().map(|k| sev.of(k.severity)).sum();
    let recent_load: f64 = recent().map(|k| sev.of(k.severity)).sum();
    // No open ticket and none recent: no support signal at all (silence is not praise).
    let no_support_signal = input.open_tickets.is_empty() && recent().next().is_none();
    for (factor, load, limit) in [
        (Factor::OpenTickets, open_load, g.open_ticket_load),
        (Factor::RecentTickets, recent_load, g.recent_ticket_load),
    ] {
        measures.push(if no_support_signal {
            Measure::missing(factor, Some(0.0), Some(limit))
        } else {
            Measure::known(factor, load, Some(limit), load_score(load, limit))
        });
    }

    // --- Risk signals, in `Factor` order.
    let mut signals: Vec<Signal> = Vec::with_capacity(5);
    let decline_pct = if prev > 0.0 {
        Some(round_to(100.0 * (prev - last) / prev, 1))
    } else {
        None
    };
    signals.push(match decline_pct {
        Some(pct) if trend_known => Signal {
            factor: Factor::LoginDecline,
            value: Some(pct),
            versus: Some(t.login_decline_pct),
            missing: false,
            share: if pct >= t.login_decline_pct { 1.0 } else { 0.0 },
        },
        _ => Signal {
            factor: Factor::LoginDecline,
            value: None,
            versus: Some(t.login_decline_pct),
            missing: true,
            share: 0.0,
        },
    });
    let unused = key_count as u32 - u.used_in_unused_window.count_ones();
    let unused_known = since_seen >= t.key_feature_unused_days && key_count > 0;
    signals.push(Signal {
        factor: Factor::KeyFeaturesUnused,
        value: unused_known.then_some(f64::from(unused)),
        versus: Some(key_count as f64),
        missing: !unused_known,
        share: if unused_known && unused > 0 {
            f64::from(unused) / key_count as f64
        } else {
            0.0
        },
    });
    let admin_age = input
        .admin_changed_at
        .map(|at| (now - at).max(Duration::zero()));
    signals.push(Signal {
        factor: Factor::AdminChanged,
        value: admin_age.map(|a| a.num_days() as f64),
        versus: Some(t.admin_changed_days as f64),
        missing: false,
        share: match admin_age {
            Some(a) if a < Duration::days(t.admin_changed_days) => 1.0,
            _ => 0.0,
        },
    });
    let spike_from = now - Duration::days(t.ticket_spike_days);
    let spike = recent().filter(|k| k.opened_at > spike_from).count() as i64;
    signals.push(Signal {
        factor: Factor::TicketSpike,
        value: Some(spike as f64),
        versus: Some(t.ticket_spike_count as f64),
        missing: false,
        share: if spike >= t.ticket_spike_count {
            1.0
        } else {
            0.0
        },
    });
    signals.push(match latest {
        Some(r) => Signal {
            factor: Factor::NpsDetractor,
            value: Some(nps_value(r)),
            versus: Some(t.detractor_max as f64),
            missing: false,
            share: if i64::from(r.score.min(10)) <= t.detractor_max {
                1.0
            } else {
                0.0
            },
        },
        None => Signal {
            factor: Factor::NpsDetractor,
            value: None,
            versus: Some(t.detractor_max as f64),
            missing: true,
            share: 0.0,
        },
    });

    // --- Weights after redistribution.
    let families = [Family::Contract, Family::Usage, Family::Satisfaction];
    let known_share = |family: Family| -> f64 {
        measures
            .iter()
            .filter(|m| m.factor.family() == family && m.subscore.is_some())
            .map(|m| model.factors.of(m.factor))
            .sum()
    };
    let shares = families.map(known_share);
    let known_families: f64 = families
        .iter()
        .zip(shares)
        .filter(|(_, s)| *s > 0.0)
        .map(|(f, _)| model.weights.of(*f))
        .sum();
    let nothing_known = known_families <= 0.0;
    let effective_weight = |m: &Measure| -> f64 {
        let fam = m.factor.family();
        let fw = model.weights.of(fam);
        let w = model.factors.of(m.factor);
        if nothing_known {
            return fw * w;
        }
        let share = shares[family_index(fam)];
        match m.subscore {
            Some(_) if share > 0.0 => fw / known_families * w / share,
            _ => 0.0,
        }
    };

    let mut drivers: Vec<Driver> = Vec::with_capacity(Factor::ALL.len());
    let mut family_exact = [0.0f64; 3];
    let mut family_weight = [0.0f64; 3];
    let mut blend = 0.0;
    for m in &measures {
        let weight = effective_weight(m);
        let sub = match m.subscore {
            Some(s) => s,
            None if nothing_known => NEUTRAL,
            None => 0.0,
        };
        let exact = weight * sub;
        blend += exact;
        let fi = family_index(m.factor.family());
        family_exact[fi] += exact;
        family_weight[fi] += weight;
        drivers.push(Driver {
            factor: m.factor,
            family: m.factor.family(),
            missing: m.subscore.is_none(),
            triggered: false,
            value: m.value,
            versus: m.versus,
            subscore: m.subscore.map(|s| round_to(s, 1)),
            weight: round_to(weight, 4),
            points: round_to(exact, 2),
        });
    }

    // --- Penalties, scaled down together if they would take the score below 0.
    let nominal: f64 = signals
        .iter()
        .map(|s| s.share * model.penalties.of(s.factor))
        .sum();
    let scale = if nominal > blend && nominal > 0.0 {
        blend / nominal
    } else {
        1.0
    };
    let mut penalty_total = 0.0;
    for s in &signals {
        let applied = s.share * model.penalties.of(s.factor) * scale;
        penalty_total += applied;
        drivers.push(Driver {
            factor: s.factor,
            family: Family::Risk,
            missing: s.missing,
            triggered: s.share > 0.0,
            value: s.value,
            versus: s.versus,
            subscore: None,
            weight: 0.0,
            points: round_to(-applied, 2),
        });
    }

    let exact = (blend - penalty_total).clamp(0.0, 100.0);
    let score = exact.round() as u8;
    let mut family_scores: Vec<FamilyScore> = families
        .iter()
        .enumerate()
        .map(|(i, f)| FamilyScore {
            family: *f,
            weight: round_to(family_weight[i], 4),
            points: round_to(family_exact[i], 2),
            missing: shares[i] <= 0.0,
        })
        .collect();
    family_scores.push(FamilyScore {
        family: Family::Risk,
        weight: 0.0,
        points: round_to(-penalty_total, 2),
        missing: false,
    });

    HealthScore {
        model_version: model.version.clone(),
        at: now,
        day: today,
        score,
        band: model.band(score),
        tier,
        tier_source,
        phase,
        active: u.active_uses as i64 >= t.active_uses,
        provisional: now - input.first_seen < Duration::days(t.provisional_days),
        families: family_scores,
        drivers,
    }
}

#[cfg(test)]
pub(super) mod fixtures;
#[cfg(test)]
mod tests;
