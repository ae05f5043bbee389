//! Playbooks: what happens, per touch tier, when an account's health moves. Data in the model,
//! so a team changes the plays without a redeploy (the next run reads the active model).

use serde::{Deserialize, Serialize};

use crate::domain::{NudgeKind, Tier};

/// One thing a playbook does. Each is a nudge kind delivered through the one delivery path.
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
pub enum Action {
    /// An SNS alert to the CSM topic: score, band change, drivers, what is at stake, the next step.
    HealthAlert,
    /// A gentle email to the admin contact with one 3-minute alternative step; on a red
    /// account it is signed by the CSM, with `Reply-To` the CSM.
    RiskNudge,
    /// A welcome to the new admin (only on `admin_changed`).
    AdminWelcome,
    /// A trial or upgrade offer to the admin and the executive (only on `renewal_upsell`).
    UpsellOffer,
}

impl Action {
    pub fn kind(&self) -> NudgeKind {
        match self {
            Action::HealthAlert => NudgeKind::HealthAlert,
            Action::RiskNudge => NudgeKind::RiskNudge,
            Action::AdminWelcome => NudgeKind::AdminWelcome,
            Action::UpsellOffer => NudgeKind::UpsellOffer,
        }
    }
}

/// What sets a play off. Each fires once per occurrence: a band trigger on the day the band
/// changes (staying red fires nothing), `admin_changed` once per new admin, `renewal_upsell`
/// once per renewal date.
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
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Trigger {
    /// The band became red (from yellow, green, or the first score after the provisional days).
    TurnsRed,
    /// The band became yellow from green (or first score yellow); red to yellow is recovery.
    TurnsYellow,
    /// A new admin took over (an `admin_changed` event naming a previous admin).
    AdminChanged,
    /// Green, heavy use, and the renewal date within `upsell.within_days`.
    RenewalUpsell,
}

impl Trigger {
    pub const ALL: &'static [Trigger] = <Trigger as strum::VariantArray>::VARIANTS;

    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// The actions a trigger may take: an admin welcome needs the new admin, an upsell a
    /// renewal cycle, and a risk email makes no sense to a green account or a new admin.
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::HealthAlert => true,
            Action::RiskNudge => matches!(self, Trigger::TurnsRed | Trigger::TurnsYellow),
            Action::AdminWelcome => *self == Trigger::AdminChanged,
            Action::UpsellOffer => *self == Trigger::RenewalUpsell,
        }
    }
}

/// The plays of one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub turns_red: Vec<Action>,
    pub turns_yellow: Vec<Action>,
    pub admin_changed: Vec<Action>,
    pub renewal_upsell: Vec<Action>,
}

impl Playbook {
    pub fn actions(&self, trigger: Trigger) -> &[Action] {
        match trigger {
            Trigger::TurnsRed => &self.turns_red,
            Trigger::TurnsYellow => &self.turns_yellow,
            Trigger::AdminChanged => &self.admin_changed,
            Trigger::RenewalUpsell => &self.renewal_upsell,
        }
    }
}

/// When an account is a candidate for the upgrade offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsellRule {
    /// Heavy use: at least this many key-feature uses in the last `thresholds.usage_days`.
    pub min_feature_uses: f64,
    /// The offer goes at most this many days before the renewal date.
    pub within_days: i64,
}

/// Per touch tier, the plays; and the upsell rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbooks {
    pub tech_touch: Playbook,
    pub low_touch: Playbook,
    pub high_touch: Playbook,
    pub upsell: UpsellRule,
}

impl Playbooks {
    pub fn for_tier(&self, tier: Tier) -> &Playbook {
        match tier {
            Tier::TechTouch => &self.tech_touch,
            Tier::LowTouch => &self.low_touch,
            Tier::HighTouch => &self.high_touch,
        }
    }

    /// Tech touch is automation first: a gentle email on any slide, the CSM told when it turns
    /// red. Low and high touch have a person on the account: the CSM is alerted at red and
    /// decides how to reach out. Every tier welcomes a new admin and tells the CSM (a new
    /// admin is a churn signal), and offers heavy users an upgrade before renewal.
    pub fn defaults() -> Playbooks {
        use Action::*;
        let person_led = || Playbook {
            turns_red: vec![HealthAlert],
            turns_yellow: vec![],
            admin_changed: vec![AdminWelcome, HealthAlert],
            renewal_upsell: vec![UpsellOffer],
        };
        Playbooks {
            tech_touch: Playbook {
                turns_red: vec![HealthAlert, RiskNudge],
                turns_yellow: vec![RiskNudge],
                admin_changed: vec![AdminWelcome, HealthAlert],
                renewal_upsell: vec![UpsellOffer],
            },
            low_touch: person_led(),
            high_touch: person_led(),
            upsell: UpsellRule {
                min_feature_uses: 60.0,
                within_days: 60,
            },
        }
    }
}
