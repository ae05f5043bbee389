//! The health model: every number the scoring uses, as data.
//!
//! A model is a JSON document (below, the default one) parsed by [`HealthModel::parse`], which
//! refuses unknown keys (a typo must not silently fall back to a default) and then validates
//! the numbers ([`HealthModel::validate`]). Every key is required: a stored score names its
//! model `version`, and that version must mean the same numbers forever, so a model file never
//! inherits anything from the code's default.
//!
//! Conventions, so a model file reads the same everywhere:
//! - weights are shares between 0 and 1; the three family weights sum to 1, and inside each
//!   family the factor weights sum to 1 (a weight of 0 switches a factor or a family off);
//! - penalties are points (0-100) taken off the score when a risk signal fires;
//! - band cut-offs are scores (0-100): red below `red_below`, green from `green_from`;
//! - day counts and counts are whole numbers, at least 1;
//! - targets are the value that earns a factor its full 100 (or, for ticket loads, the load at
//!   which the factor reaches 0);
//! - plan names are matched ignoring ASCII case and surrounding spaces;
//! - `playbooks` lists, per touch tier and trigger, the actions taken (`playbook.rs`); an
//!   action a trigger cannot take (a welcome without a new admin) is refused.
//!
//! The default model (`version` "default-1"), as JSON:
//!
//! ```json
//! {
//!   "version": "default-1",
//!   "weights": {"contract": 0.2, "usage": 0.5, "satisfaction": 0.3},
//!   "factors": {
//!     "contract": {"tenure": 0.3, "renewals": 0.3, "days_to_renewal": 0.2, "plan": 0.2},
//!     "usage": {"login_days": 0.25, "login_trend": 0.15, "active_contacts": 0.15,
//!               "feature_breadth": 0.15, "feature_depth": 0.1, "reports": 0.1,
//!               "onboarding": 0.1},
//!     "satisfaction": {"nps": 0.5, "nps_trend": 0.1, "open_tickets": 0.2,
//!                      "recent_tickets": 0.2}
//!   },
//!   "penalties": {"login_decline": 10, "key_features_unused": 8, "admin_changed": 10,
//!                 "ticket_spike": 8, "nps_detractor": 10},
//!   "bands": {"red_below": 40, "green_from": 70},
//!   "thresholds": {"trend_days": 14, "login_decline_pct": 30, "usage_days": 30,
//!                  "key_feature_unused_days": 14, "admin_changed_days": 30,
//!                  "recent_ticket_days": 30, "ticket_spike_days": 7, "ticket_spike_count": 3,
//!                  "nps_max_age_days": 365, "detractor_max": 6, "active_uses": 3,
//!                  "active_days": 30, "pre_renewal_days": 90, "provisional_days": 14,
//!                  "onboarding_days": 90},
//!   "targets": {"tenure_days": 365, "renewals": 2, "login_days": 10, "active_contacts": 5,
//!               "feature_uses": 40, "reports": 4, "open_ticket_load": 8,
//!               "recent_ticket_load": 12},
//!   "severity_weights": {"low": 1, "medium": 2, "high": 4, "urgent": 8},
//!   "plan_scores": {"enterprise": 100, "premium": 80, "standard": 60, "starter": 40,
//!                   "free": 20},
//!   "key_features": {"default": ["report_builder", "dashboard", "integration", "workflow"],
//!                    "plans": {}},
//!   "onboarding_steps": {"default": ["invite_users", "import_data", "first_report"],
//!                        "plans": {}},
//!   "tiers": {"high_touch_from_arr": 50000, "low_touch_from_arr": 10000, "plans": {}},
//!   "playbooks": {
//!     "tech_touch": {"turns_red": ["health_alert", "risk_nudge"], "turns_yellow": ["risk_nudge"],
//!                    "admin_changed": ["admin_welcome", "health_alert"],
//!                    "renewal_upsell": ["upsell_offer"]},
//!     "low_touch": {"turns_red": ["health_alert"], "turns_yellow": [],
//!                   "admin_changed": ["admin_welcome", "health_alert"],
//!                   "renewal_upsell": ["upsell_offer"]},
//!     "high_touch": {"turns_red": ["health_alert"], "turns_yellow": [],
//!                    "admin_changed": ["admin_welcome", "health_alert"],
//!                    "renewal_upsell": ["upsell_offer"]},
//!     "upsell": {"min_feature_uses": 60, "within_days": 60}
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::Tier;
use crate::events::{AccountProfile, Severity};

/// How many complete local days of usage the scoring looks at (the caller passes at most
/// these; older days are ignored). Every usage window of the model must fit in it.
pub const HISTORY_DAYS: i64 = 60;

/// Most key features a plan may list (the scorer keeps one bit per key feature).
pub const MAX_KEY_FEATURES: usize = 64;

/// The families a factor belongs to. The first three are blended by weight; `risk` signals
/// only subtract.
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
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Family {
    Contract,
    Usage,
    Satisfaction,
    Risk,
}

impl Family {
    pub const ALL: &'static [Family] = <Family as strum::VariantArray>::VARIANTS;

    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// One input of the score. The declaration order is the order of a score's drivers, and the
/// tie-break when two factors moved by the same points (`explain::diff`).
///
/// Each factor's `value` and `versus` (see `score::Driver`) are documented on its variant.
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
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Factor {
    /// Days since `contract_start` versus `targets.tenure_days`: first-year accounts are the
    /// riskiest (the first renewal is the one most often lost).
    Tenure,
    /// Renewals so far versus `targets.renewals`.
    Renewals,
    /// Days until `renewal_date` versus `thresholds.pre_renewal_days`: full marks outside the
    /// pre-renewal window, then down to 0 on the renewal date (less time left to fix things).
    DaysToRenewal,
    /// The plan's entry in `plan_scores` (no `versus`); missing for a plan not listed there.
    Plan,
    /// Days with at least one login in the last `trend_days` versus `targets.login_days`.
    LoginDays,
    /// Logins in the last `trend_days` (value) versus the `trend_days` before (versus).
    LoginTrend,
    /// Distinct active contacts in the last `usage_days` versus `targets.active_contacts`.
    ActiveContacts,
    /// Key features used at least once in the last `usage_days` versus the plan's key features.
    FeatureBreadth,
    /// Uses of key features in the last `usage_days` versus `targets.feature_uses`.
    FeatureDepth,
    /// Reports created in the last `usage_days` versus `targets.reports`.
    Reports,
    /// Onboarding steps done versus the plan's steps.
    Onboarding,
    /// The latest NPS response, 0-10 (no `versus`).
    Nps,
    /// The latest NPS response (value) versus the one before it (versus).
    NpsTrend,
    /// Severity-weighted load of open tickets versus `targets.open_ticket_load`.
    OpenTickets,
    /// Severity-weighted load of tickets opened in the last `recent_ticket_days` versus
    /// `targets.recent_ticket_load`.
    RecentTickets,
    /// Risk: percent drop of logins, last `trend_days` against the `trend_days` before (negative
    /// = growth) versus `thresholds.login_decline_pct`.
    LoginDecline,
    /// Risk: key features with no use in the last `key_feature_unused_days` versus the plan's
    /// key features.
    KeyFeaturesUnused,
    /// Risk: days since the admin changed versus `thresholds.admin_changed_days` (no value when
    /// the admin never changed).
    AdminChanged,
    /// Risk: tickets opened in the last `ticket_spike_days` versus `thresholds.ticket_spike_count`.
    TicketSpike,
    /// Risk: the latest NPS response versus `thresholds.detractor_max`.
    NpsDetractor,
}

impl Factor {
    pub const ALL: &'static [Factor] = <Factor as strum::VariantArray>::VARIANTS;

    /// The wire name (`"login_days"`).
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    pub fn family(&self) -> Family {
        use Factor::*;
        match self {
            Tenure | Renewals | DaysToRenewal | Plan => Family::Contract,
            LoginDays | LoginTrend | ActiveContacts | FeatureBreadth | FeatureDepth | Reports
            | Onboarding => Family::Usage,
            Nps | NpsTrend | OpenTickets | RecentTickets => Family::Satisfaction,
            LoginDecline | KeyFeaturesUnused | AdminChanged | TicketSpike | NpsDetractor => {
                Family::Risk
            }
        }
    }

    /// Risk signals subtract points; every other factor earns a weighted share.
    pub fn is_risk(&self) -> bool {
        self.family() == Family::Risk
    }
}

/// The traffic light. Ordered worst first, so `a < b` means "a is worse than b".
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
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// Where the account is in its life; decides which plays a CSM runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    /// Within `onboarding_days` of `contract_start` with onboarding steps still open.
    Onboarding,
    /// Neither of the others.
    Operation,
    /// Within `pre_renewal_days` of `renewal_date` (or past it, not yet renewed). Wins over
    /// onboarding: a renewal at stake is the more urgent play.
    PreRenewal,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// Which rule chose the touch tier.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TierSource {
    /// The account profile sets `tier`: a CS decision wins over any rule.
    Account,
    /// `tiers.plans` lists the account's plan.
    Plan,
    /// By ARR against `tiers.high_touch_from_arr` / `tiers.low_touch_from_arr`.
    Arr,
}

/// The three blended families' shares of the score (sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyWeights {
    pub contract: f64,
    pub usage: f64,
    pub satisfaction: f64,
}

impl FamilyWeights {
    /// The family's weight; 0 for `risk` (it subtracts, it is not blended).
    pub fn of(&self, family: Family) -> f64 {
        match family {
            Family::Contract => self.contract,
            Family::Usage => self.usage,
            Family::Satisfaction => self.satisfaction,
            Family::Risk => 0.0,
        }
    }
}

/// Factor shares inside each family (each family's sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorWeights {
    pub contract: ContractWeights,
    pub usage: UsageWeights,
    pub satisfaction: SatisfactionWeights,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractWeights {
    pub tenure: f64,
    pub renewals: f64,
    pub days_to_renewal: f64,
    pub plan: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageWeights {
    pub login_days: f64,
    pub login_trend: f64,
    pub active_contacts: f64,
    pub feature_breadth: f64,
    pub feature_depth: f64,
    pub reports: f64,
    pub onboarding: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SatisfactionWeights {
    pub nps: f64,
    pub nps_trend: f64,
    pub open_tickets: f64,
    pub recent_tickets: f64,
}

impl FactorWeights {
    /// The factor's share of its family; 0 for risk signals.
    pub fn of(&self, factor: Factor) -> f64 {
        use Factor::*;
        let (c, u, s) = (&self.contract, &self.usage, &self.satisfaction);
        match factor {
            Tenure => c.tenure,
            Renewals => c.renewals,
            DaysToRenewal => c.days_to_renewal,
            Plan => c.plan,
            LoginDays => u.login_days,
            LoginTrend => u.login_trend,
            ActiveContacts => u.active_contacts,
            FeatureBreadth => u.feature_breadth,
            FeatureDepth => u.feature_depth,
            Reports => u.reports,
            Onboarding => u.onboarding,
            Nps => s.nps,
            NpsTrend => s.nps_trend,
            OpenTickets => s.open_tickets,
            RecentTickets => s.recent_tickets,
            LoginDecline | KeyFeaturesUnused | AdminChanged | TicketSpike | NpsDetractor => 0.0,
        }
    }
}

/// Points each risk signal takes off when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Penalties {
    pub login_decline: f64,
    /// Scaled by the share of key features unused (2 of 4 unused: half of it).
    pub key_features_unused: f64,
    pub admin_changed: f64,
    pub ticket_spike: f64,
    pub nps_detractor: f64,
}

impl Penalties {
    /// The signal's full penalty; 0 for a factor that is not a risk signal.
    pub fn of(&self, factor: Factor) -> f64 {
        match factor {
            Factor::LoginDecline => self.login_decline,
            Factor::KeyFeaturesUnused => self.key_features_unused,
            Factor::AdminChanged => self.admin_changed,
            Factor::TicketSpike => self.ticket_spike,
            Factor::NpsDetractor => self.nps_detractor,
            _ => 0.0,
        }
    }
}

/// Band cut-offs on the (integer) score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    /// A score below this is red.
    pub red_below: f64,
    /// A score at or above this is green; in between is yellow.
    pub green_from: f64,
}

/// Windows and cut points of the rules. Day windows over usage count complete local days
/// before today (today's partial day never counts); windows over instants (tickets, NPS age,
/// admin change) count back from "now".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Login days and the login trend: the last `trend_days` against the `trend_days` before.
    pub trend_days: i64,
    /// The login-decline signal fires at a drop of at least this percent (0-100].
    pub login_decline_pct: f64,
    /// Window of active contacts, feature breadth and depth, reports.
    pub usage_days: i64,
    /// A key feature with no use in this many days is "unused".
    pub key_feature_unused_days: i64,
    /// The admin-changed signal fires for this many days after the change.
    pub admin_changed_days: i64,
    /// Tickets opened within this many days are "recent".
    pub recent_ticket_days: i64,
    /// The ticket-spike signal fires when `ticket_spike_count` or more tickets were opened
    /// within `ticket_spike_days`.
    pub ticket_spike_days: i64,
    pub ticket_spike_count: i64,
    /// NPS responses older than this are ignored (an old answer says little about today).
    pub nps_max_age_days: i64,
    /// A latest NPS at or below this (0-10) is a detractor: 6 in the standard NPS definition.
    pub detractor_max: i64,
    /// The account is `active` with at least `active_uses` key-feature uses in the last
    /// `active_days`.
    pub active_uses: i64,
    pub active_days: i64,
    /// Pre-renewal phase: within this many days of the renewal date.
    pub pre_renewal_days: i64,
    /// A score is provisional while Nudge has known the account for fewer days than this.
    pub provisional_days: i64,
    /// Onboarding phase: at most this many days after `contract_start`.
    pub onboarding_days: i64,
}

/// What earns a factor its full 100 (ticket loads: the load at which it reaches 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub tenure_days: f64,
    pub renewals: f64,
    /// Login days out of the last `trend_days`.
    pub login_days: f64,
    pub active_contacts: f64,
    pub feature_uses: f64,
    pub reports: f64,
    pub open_ticket_load: f64,
    pub recent_ticket_load: f64,
}

/// Load of one ticket by severity (ticket factors add these up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityWeights {
    pub low: f64,
    pub medium: f64,
    pub high: f64,
    pub urgent: f64,
}

impl SeverityWeights {
    pub fn of(&self, severity: Severity) -> f64 {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Urgent => self.urgent,
        }
    }
}

/// A list per plan, with a default for plans not listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanLists {
    pub default: Vec<String>,
    pub plans: BTreeMap<String, Vec<String>>,
}

impl PlanLists {
    /// The plan's list, or the default one.
    pub fn for_plan(&self, plan: &str) -> &[String] {
        lookup(&self.plans, plan).unwrap_or(&self.default)
    }
}

/// How the touch tier is chosen when the account does not set one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRules {
    /// ARR at or above this: high touch.
    pub high_touch_from_arr: f64,
    /// ARR at or above this (and below high touch): low touch; below it, tech touch.
    pub low_touch_from_arr: f64,
    /// Plans whose tier is fixed whatever the ARR (checked before ARR).
    pub plans: BTreeMap<String, Tier>,
}

/// The health model (see the module documentation for the JSON and its conventions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthModel {
    /// Stored with every score, so a number can always be traced to the rules that made it.
    pub version: String,
    pub weights: FamilyWeights,
    pub factors: FactorWeights,
    pub penalties: Penalties,
    pub bands: Bands,
    pub thresholds: Thresholds,
    pub targets: Targets,
    pub severity_weights: SeverityWeights,
    /// Plan -> 0-100, the `plan` factor. A plan not listed makes that factor missing.
    pub plan_scores: BTreeMap<String, f64>,
    pub key_features: PlanLists,
    pub onboarding_steps: PlanLists,
    pub tiers: TierRules,
    /// What happens when health moves; not part of the score.
    pub playbooks: Playbooks,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

impl Default for HealthModel {
    /// "default-1": usage carries half the score because product use is the earliest and
    /// strongest churn signal; satisfaction 30% (NPS first, tickets next); contract 20% (it
    /// changes slowly and mostly says how much is at stake). Every number is listed in the
    /// module documentation.
    fn default() -> Self {
        HealthModel {
            version: "default-1".into(),
            weights: FamilyWeights {
                contract: 0.2,
                usage: 0.5,
                satisfaction: 0.3,
            },
            factors: FactorWeights {
                contract: ContractWeights {
                    tenure: 0.3,
                    renewals: 0.3,
                    days_to_renewal: 0.2,
                    plan: 0.2,
                },
                usage: UsageWeights {
                    login_days: 0.25,
                    login_trend: 0.15,
                    active_contacts: 0.15,
                    feature_breadth: 0.15,
                    feature_depth: 0.1,
                    reports: 0.1,
                    onboarding: 0.1,
                },
                satisfaction: SatisfactionWeights {
                    nps: 0.5,
                    nps_trend: 0.1,
                    open_tickets: 0.2,
                    recent_tickets: 0.2,
                },
            },
            penalties: Penalties {
                login_decline: 10.0,
                key_features_unused: 8.0,
                admin_changed: 10.0,
                ticket_spike: 8.0,
                nps_detractor: 10.0,
            },
            bands: Bands {
                red_below: 40.0,
                green_from: 70.0,
            },
            thresholds: Thresholds {
                trend_days: 14,
                login_decline_pct: 30.0,
                usage_days: 30,
                key_feature_unused_days: 14,
                admin_changed_days: 30,
                recent_ticket_days: 30,
                ticket_spike_days: 7,
                ticket_spike_count: 3,
                nps_max_age_days: 365,
                detractor_max: 6,
                active_uses: 3,
                active_days: 30,
                pre_renewal_days: 90,
                provisional_days: 14,
                onboarding_days: 90,
            },
            targets: Targets {
                tenure_days: 365.0,
                renewals: 2.0,
                login_days: 10.0,
                active_contacts: 5.0,
                feature_uses: 40.0,
                reports: 4.0,
                open_ticket_load: 8.0,
                recent_ticket_load: 12.0,
            },
            severity_weights: SeverityWeights {
                low: 1.0,
                medium: 2.0,
                high: 4.0,
                urgent: 8.0,
            },
            plan_scores: [
                ("enterprise", 100.0),
                ("premium", 80.0),
                ("standard", 60.0),
                ("starter", 40.0),
                ("free", 20.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            key_features: PlanLists {
                default: strings(&["report_builder", "dashboard", "integration", "workflow"]),
                plans: BTreeMap::new(),
            },
            onboarding_steps: PlanLists {
                default: strings(&["invite_users", "import_data", "first_report"]),
                plans: BTreeMap::new(),
            },
            tiers: TierRules {
                high_touch_from_arr: 50_000.0,
                low_touch_from_arr: 10_000.0,
                plans: BTreeMap::new(),
            },
            playbooks: Playbooks::defaults(),
        }
    }
}

mod playbook;
mod validate;

pub use playbook::{Action, Playbook, Playbooks, Trigger, UpsellRule};

use validate::lookup;
pub use validate::{ModelError, Problem};

#[cfg(test)]
mod tests;
