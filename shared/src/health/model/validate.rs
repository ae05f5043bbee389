//! Validation of a parsed model: every problem at once, each naming its key path and rule;
//! and the lookups by plan.

use super::*;

/// One broken rule of a model: `path` names the key (`weights.usage`), `rule` what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Why a model was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// Not JSON, a wrong type, a missing key or an unknown key: serde_json's message, which
    /// names the key (``unknown field `wieghts`, expected one of ...``) and the line and column.
    Json(String),
    /// Parsed, but numbers break the rules: every problem found, in document order.
    Invalid(Vec<Problem>),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Json(message) => f.write_str(message),
            ModelError::Invalid(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ModelError {}

/// How far a sum of weights may be from 1 (JSON decimals do not add up exactly in binary).
const SUM_TOLERANCE: f64 = 1e-6;

/// Collects problems in document order.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            rule: rule.into(),
        });
    }

    /// `lo <= value <= hi` (a NaN fails too).
    fn between(&mut self, path: impl Into<String>, value: f64, lo: f64, hi: f64) {
        if !(lo..=hi).contains(&value) {
            self.fail(path, format!("must be between {lo} and {hi}, got {value}"));
        }
    }

    fn positive(&mut self, path: impl Into<String>, value: f64) {
        if !(value > 0.0 && value.is_finite()) {
            self.fail(path, format!("must be positive, got {value}"));
        }
    }

    fn positive_int(&mut self, path: impl Into<String>, value: i64) {
        if value < 1 {
            self.fail(path, format!("must be positive, got {value}"));
        }
    }

    /// A window over the usage history: 1..=`HISTORY_DAYS` / `per_window`.
    fn window(&mut self, path: impl Into<String>, value: i64, max: i64, what: &str) {
        if !(1..=max).contains(&value) {
            self.fail(
                path,
                format!("must be between 1 and {max} ({what}), got {value}"),
            );
        }
    }

    /// Shares: each 0..=1 and summing to 1.
    fn shares(&mut self, path: &str, shares: &[(&str, f64)]) {
        for (key, w) in shares {
            self.between(format!("{path}.{key}"), *w, 0.0, 1.0);
        }
        let sum: f64 = shares.iter().map(|(_, w)| w).sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            // `+ 0.0` turns a rounded -0 into 0 for the message.
            let rounded = (sum * 1e6).round() / 1e6 + 0.0;
            self.fail(path, format!("must sum to 1, got {rounded}"));
        }
    }

    /// Plan names: not blank, and no two equal ignoring case (lookups ignore case).
    fn plan_keys<'a>(&mut self, path: &str, keys: impl Iterator<Item = &'a String>) {
        let mut seen: Vec<&str> = Vec::new();
        for key in keys {
            if key.trim().is_empty() {
                self.fail(path, "a plan name must not be blank");
            } else if let Some(other) = seen.iter().find(|s| s.eq_ignore_ascii_case(key.trim())) {
                self.fail(
                    path,
                    format!("plans `{other}` and `{key}` are the same plan (names ignore case)"),
                );
            } else {
                seen.push(key.trim());
            }
        }
    }

    /// A list of names: not empty, no blank name, no duplicate, at most `max`.
    fn names(&mut self, path: &str, names: &[String], max: usize) {
        if names.is_empty() {
            self.fail(path, "must not be empty");
        }
        if names.len() > max {
            self.fail(
                path,
                format!("must have at most {max} names, got {}", names.len()),
            );
        }
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                self.fail(format!("{path}[{i}]"), "must not be blank");
            } else if names[..i].contains(name) {
                self.fail(format!("{path}[{i}]"), format!("`{name}` is listed twice"));
            }
        }
    }

    fn plan_lists(&mut self, path: &str, lists: &PlanLists, max: usize) {
        self.names(&format!("{path}.default"), &lists.default, max);
        self.plan_keys(&format!("{path}.plans"), lists.plans.keys());
        for (plan, names) in &lists.plans {
            self.names(&format!("{path}.plans.{plan}"), names, max);
        }
    }
}

impl HealthModel {
    /// Parses a model from JSON and validates it. Unknown keys are refused by serde (its
    /// message names the key); numbers are checked by [`HealthModel::validate`].
    pub fn parse(json: &str) -> Result<HealthModel, ModelError> {
        let model: HealthModel =
            serde_json::from_str(json).map_err(|e| ModelError::Json(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// Checks every rule of the module documentation; reports all problems at once, each
    /// naming its key path and the rule.
    pub fn validate(&self) -> Result<(), ModelError> {
        let mut c = Checker::default();
        if self.version.trim().is_empty() {
            c.fail("version", "must not be empty");
        }
        let w = &self.weights;
        c.shares(
            "weights",
            &[
                ("contract", w.contract),
                ("usage", w.usage),
                ("satisfaction", w.satisfaction),
            ],
        );
        let f = &self.factors;
        c.shares(
            "factors.contract",
            &[
                ("tenure", f.contract.tenure),
                ("renewals", f.contract.renewals),
                ("days_to_renewal", f.contract.days_to_renewal),
                ("plan", f.contract.plan),
            ],
        );
        c.shares(
            "factors.usage",
            &[
                ("login_days", f.usage.login_days),
                ("login_trend", f.usage.login_trend),
                ("active_contacts", f.usage.active_contacts),
                ("feature_breadth", f.usage.feature_breadth),
                ("feature_depth", f.usage.feature_depth),
                ("reports", f.usage.reports),
                ("onboarding", f.usage.onboarding),
            ],
        );
        c.shares(
            "factors.satisfaction",
            &[
                ("nps", f.satisfaction.nps),
                ("nps_trend", f.satisfaction.nps_trend),
                ("open_tickets", f.satisfaction.open_tickets),
                ("recent_tickets", f.satisfaction.recent_tickets),
            ],
        );
        let p = &self.penalties;
        for (key, v) in [
            ("login_decline", p.login_decline),
            ("key_features_unused", p.key_features_unused),
            ("admin_changed", p.admin_changed),
            ("ticket_spike", p.ticket_spike),
            ("nps_detractor", p.nps_detractor),
        ] {
            c.between(format!("penalties.{key}"), v, 0.0, 100.0);
        }
        let b = &self.bands;
        c.between("bands.red_below", b.red_below, 0.0, 100.0);
        c.between("bands.green_from", b.green_from, 0.0, 100.0);
        if b.red_below >= b.green_from {
            c.fail(
                "bands",
                format!(
                    "red_below ({}) must be below green_from ({})",
                    b.red_below, b.green_from
                ),
            );
        }
        let t = &self.thresholds;
        let history = "the usage history";
        c.window(
            "thresholds.trend_days",
            t.trend_days,
            HISTORY_DAYS / 2,
            "two windows must fit in the usage history",
        );
        if !(t.login_decline_pct > 0.0 && t.login_decline_pct <= 100.0) {
            c.fail(
                "thresholds.login_decline_pct",
                format!(
                    "must be above 0 and at most 100, got {}",
                    t.login_decline_pct
                ),
            );
        }
        c.window("thresholds.usage_days", t.usage_days, HISTORY_DAYS, history);
        c.window(
            "thresholds.key_feature_unused_days",
            t.key_feature_unused_days,
            HISTORY_DAYS,
            history,
        );
        c.positive_int("thresholds.admin_changed_days", t.admin_changed_days);
        c.positive_int("thresholds.recent_ticket_days", t.recent_ticket_days);
        c.positive_int("thresholds.ticket_spike_days", t.ticket_spike_days);
        if t.ticket_spike_days > t.recent_ticket_days {
            c.fail(
                "thresholds",
                format!(
                    "ticket_spike_days ({}) must not exceed recent_ticket_days ({}): spikes are \
                     counted among the recent tickets",
                    t.ticket_spike_days, t.recent_ticket_days
                ),
            );
        }
        c.positive_int("thresholds.ticket_spike_count", t.ticket_spike_count);
        c.positive_int("thresholds.nps_max_age_days", t.nps_max_age_days);
        if !(0..=10).contains(&t.detractor_max) {
            c.fail(
                "thresholds.detractor_max",
                format!("must be between 0 and 10, got {}", t.detractor_max),
            );
        }
        c.positive_int("thresholds.active_uses", t.active_uses);
        c.window(
            "thresholds.active_days",
            t.active_days,
            HISTORY_DAYS,
            history,
        );
        c.positive_int("thresholds.pre_renewal_days", t.pre_renewal_days);
        c.positive_int("thresholds.provisional_days", t.provisional_days);
        c.positive_int("thresholds.onboarding_days", t.onboarding_days);
        let g = &self.targets;
        for (key, v) in [
            ("tenure_days", g.tenure_days),
            ("renewals", g.renewals),
            ("login_days", g.login_days),
            ("active_contacts", g.active_contacts),
            ("feature_uses", g.feature_uses),
            ("reports", g.reports),
            ("open_ticket_load", g.open_ticket_load),
            ("recent_ticket_load", g.recent_ticket_load),
        ] {
            c.positive(format!("targets.{key}"), v);
        }
        // A day's rollup keeps at most this many contacts: the distinct count over a window is
        // exact up to it, so a higher target could never be reached.
        let max_contacts = crate::store::MAX_DAY_CONTACTS as f64;
        if g.active_contacts > max_contacts {
            c.fail(
                "targets.active_contacts",
                format!("must not exceed {max_contacts}, got {}", g.active_contacts),
            );
        }
        if g.login_days > t.trend_days as f64 {
            c.fail(
                "targets.login_days",
                format!(
                    "must not exceed thresholds.trend_days ({}), got {}",
                    t.trend_days, g.login_days
                ),
            );
        }
        let s = &self.severity_weights;
        for (key, v) in [
            ("low", s.low),
            ("medium", s.medium),
            ("high", s.high),
            ("urgent", s.urgent),
        ] {
            c.between(format!("severity_weights.{key}"), v, 0.0, 100.0);
        }
        c.plan_keys("plan_scores", self.plan_scores.keys());
        for (plan, v) in &self.plan_scores {
            c.between(format!("plan_scores.{plan}"), *v, 0.0, 100.0);
        }
        c.plan_lists("key_features", &self.key_features, MAX_KEY_FEATURES);
        c.plan_lists("onboarding_steps", &self.onboarding_steps, usize::MAX);
        let r = &self.tiers;
        for (key, v) in [
            ("high_touch_from_arr", r.high_touch_from_arr),
            ("low_touch_from_arr", r.low_touch_from_arr),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                c.fail(
                    format!("tiers.{key}"),
                    format!("must be 0 or more, got {v}"),
                );
            }
        }
        if r.low_touch_from_arr > r.high_touch_from_arr {
            c.fail(
                "tiers",
                format!(
                    "low_touch_from_arr ({}) must not be above high_touch_from_arr ({})",
                    r.low_touch_from_arr, r.high_touch_from_arr
                ),
            );
        }
        c.plan_keys("tiers.plans", r.plans.keys());
        let books = &self.playbooks;
        for (tier, book) in [
            ("tech_touch", &books.tech_touch),
            ("low_touch", &books.low_touch),
            ("high_touch", &books.high_touch),
        ] {
            for &trigger in Trigger::ALL {
                let actions = book.actions(trigger);
                for (i, action) in actions.iter().enumerate() {
                    let path = format!("playbooks.{tier}.{trigger}[{i}]");
                    if !trigger.allows(*action) {
                        c.fail(path, format!("{trigger} cannot take the action {action}"));
                    } else if actions[..i].contains(action) {
                        c.fail(path, format!("{action} is listed twice"));
                    }
                }
            }
        }
        c.positive(
            "playbooks.upsell.min_feature_uses",
            books.upsell.min_feature_uses,
        );
        c.window(
            "playbooks.upsell.within_days",
            books.upsell.within_days,
            366,
            "a renewal cycle",
        );
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Invalid(c.problems))
        }
    }

    /// The plan's key features (or the default list).
    pub fn key_features(&self, plan: &str) -> &[String] {
        self.key_features.for_plan(plan)
    }

    /// The plan's onboarding steps (or the default list).
    pub fn onboarding_steps(&self, plan: &str) -> &[String] {
        self.onboarding_steps.for_plan(plan)
    }

    /// The plan's score for the `plan` factor; `None` (missing) for an unlisted plan.
    pub fn plan_score(&self, plan: &str) -> Option<f64> {
        lookup(&self.plan_scores, plan).copied()
    }

    /// The touch tier: the account's own `tier` wins; then `tiers.plans`; then ARR.
    pub fn tier(&self, profile: &AccountProfile) -> (Tier, TierSource) {
        if let Some(tier) = profile.tier {
            return (tier, TierSource::Account);
        }
        if let Some(tier) = lookup(&self.tiers.plans, &profile.plan) {
            return (*tier, TierSource::Plan);
        }
        let tier = if profile.arr >= self.tiers.high_touch_from_arr {
            Tier::HighTouch
        } else if profile.arr >= self.tiers.low_touch_from_arr {
            Tier::LowTouch
        } else {
            Tier::TechTouch
        };
        (tier, TierSource::Arr)
    }

    /// The band of a score: red below `red_below`, green from `green_from`, else yellow.
    pub fn band(&self, score: u8) -> Band {
        let s = f64::from(score);
        if s < self.bands.red_below {
            Band::Red
        } else if s >= self.bands.green_from {
            Band::Green
        } else {
            Band::Yellow
        }
    }
}

/// A plan's entry: exact key first, else ignoring ASCII case and surrounding spaces (plans are
/// free text in `account_upserted`).
pub(super) fn lookup<'m, V>(map: &'m BTreeMap<String, V>, plan: &str) -> Option<&'m V> {
    let plan = plan.trim();
    map.get(plan).or_else(|| {
        map.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(plan))
            .map(|(_, v)| v)
    })
}
