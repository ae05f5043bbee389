//! The nudge model: what is sent, to whom (audience), through which channel, under which
//! unsubscribe category, and where it is in its life (status).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::account::Locale;

/// The failure reason of a nudge whose lease expired mid-send (it may have left).
pub const UNKNOWN_OUTCOME: &str = "unknown_outcome";

/// The recipient as a feature's render variables see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientContext {
    pub locale: Locale,
    pub tz: Tz,
}

/// Variables a feature adds when its nudge is rendered, computed as the message leaves (a
/// deadline's "time left" in the recipient's own terms, say). The feature registry supplies
/// them, so delivery never imports a feature.
pub type ExtraVars = fn(&Nudge, &RecipientContext, DateTime<Utc>) -> Map<String, Value>;

/// No feature variables (messages whose template needs only the nudge's own vars).
pub fn no_extra_vars(_: &Nudge, _: &RecipientContext, _: DateTime<Utc>) -> Map<String, Value> {
    Map::new()
}

/// What a nudge is about. Serialized snake_case; the delivery log's `kind`.
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
pub enum NudgeKind {
    DeadlineReminder,
    /// The welcome at contract start: the admin's single first step, the executive's note on
    /// what the first 30 days bring.
    OnboardingWelcome,
    Milestone,
    OnboardingProgress,
    HealthAlert,
    RiskNudge,
    AdminWelcome,
    UpsellOffer,
    CsmTask,
    AutomationPaused,
}

/// Who a nudge is for. CSM alerts and tasks bypass unsubscribe, pause and cap (they are work
/// for people, not mail to customers) but are logged like everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Customer,
    Csm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sns,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sns => "sns",
        }
    }
}

/// Unsubscribe categories of customer email. `reminders` is transactional (exempt from the
/// frequency cap, never from unsubscribe or suppression).
pub mod category {
    pub const REMINDERS: &str = "reminders";
    pub const ONBOARDING: &str = "onboarding";
    pub const SUCCESS: &str = "success";
    /// Not a customer category: CSM-facing messages (no unsubscribe).
    pub const CSM: &str = "csm";
    /// Unsubscribed from everything customer-facing.
    pub const ALL: &str = "all";
    /// Categories a contact can unsubscribe from through a link.
    pub const CUSTOMER: [&str; 3] = [REMINDERS, ONBOARDING, SUCCESS];
}

impl NudgeKind {
    pub const ALL: &'static [NudgeKind] = <NudgeKind as strum::VariantArray>::VARIANTS;

    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<NudgeKind> {
        s.parse().ok()
    }

    /// Health alerts, CSM tasks and pause notices go to the CSM; everything else to the customer.
    pub fn audience(&self) -> Audience {
        match self {
            NudgeKind::HealthAlert | NudgeKind::CsmTask | NudgeKind::AutomationPaused => {
                Audience::Csm
            }
            _ => Audience::Customer,
        }
    }

    /// Customer messages are email; CSM messages go to the CSM SNS topic.
    pub fn channel(&self) -> Channel {
        match self.audience() {
            Audience::Customer => Channel::Email,
            Audience::Csm => Channel::Sns,
        }
    }

    /// The unsubscribe category.
    pub fn category(&self) -> &'static str {
        match self {
            NudgeKind::DeadlineReminder => category::REMINDERS,
            NudgeKind::OnboardingWelcome
            | NudgeKind::Milestone
            | NudgeKind::OnboardingProgress
            | NudgeKind::AdminWelcome => category::ONBOARDING,
            NudgeKind::RiskNudge | NudgeKind::UpsellOffer => category::SUCCESS,
            NudgeKind::HealthAlert | NudgeKind::CsmTask | NudgeKind::AutomationPaused => {
                category::CSM
            }
        }
    }

    /// Marketing-type nudges count against the per-contact frequency cap: every
    /// customer-facing kind except deadline reminders (transactional).
    pub fn is_marketing(&self) -> bool {
        self.audience() == Audience::Customer && *self != NudgeKind::DeadlineReminder
    }

    /// When the sweep may send a due nudge of this kind.
    pub fn send_window(&self) -> SendWindow {
        match self {
            NudgeKind::HealthAlert | NudgeKind::CsmTask | NudgeKind::AutomationPaused => {
                SendWindow::Immediate
            }
            NudgeKind::DeadlineReminder => SendWindow::AsPlanned,
            NudgeKind::Milestone
            | NudgeKind::OnboardingWelcome
            | NudgeKind::OnboardingProgress
            | NudgeKind::RiskNudge
            | NudgeKind::AdminWelcome
            | NudgeKind::UpsellOffer => SendWindow::BusinessHours,
        }
    }
}

/// Which message of its kind's sequence a nudge is (the delivery log's `stage`): a deadline
/// reminder's stage or the milestone being celebrated.
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
pub enum Stage {
    /// Three days before a deadline (`snake_case` would spell it "t_minus3d").
    #[serde(rename = "t_minus_3d")]
    #[strum(serialize = "t_minus_3d")]
    TMinus3d,
    /// The morning of the due day.
    MorningOf,
    /// Just before the end.
    Final,
    /// One week since the contract started.
    WeekOne,
    /// The first use of a key feature.
    FirstFeatureUse,
    /// The account's first report.
    FirstReport,
    /// Every onboarding step done.
    OnboardingComplete,
    /// The 30-day program's checks (`onboarding_progress`): behind the plan, or no step in a
    /// week.
    Behind,
    Stuck,
    /// No admin contact when the welcome was due (`csm_task`).
    NoAdmin,
    /// Health plays (`health_alert`, `risk_nudge`, ...): what set them off.
    TurnsRed,
    TurnsYellow,
    AdminChanged,
    RenewalUpsell,
}

impl Stage {
    pub const ALL: &'static [Stage] = <Stage as strum::VariantArray>::VARIANTS;

    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Stage> {
        s.parse().ok()
    }
}

/// When a due nudge may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendWindow {
    /// CSM alerts and tasks: work for people, sent as soon as they are due.
    Immediate,
    /// Customer-facing, non-urgent: within the recipient's local business hours
    /// ([`super::BusinessHours`]); a nudge due outside them waits for the next opening.
    BusinessHours,
    /// Deadline reminders: their planner already applied the stage rules (quiet hours, the
    /// final stage's urgency), so the planned time stands.
    AsPlanned,
}

/// Who a nudge goes to, as the planner named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// A customer contact of the account.
    Contact(&'a str),
    /// The account's admin contact, whoever that is when the nudge leaves.
    AccountAdmin,
    /// The account's customer-success manager (the CSM topic).
    Csm,
}

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
pub enum NudgeStatus {
    /// Waiting for its send time (on the `due` GSI).
    Pending,
    /// Leased by a run that is about to send (the "sending" marker, see `send`).
    Claimed,
    Sent,
    Blocked,
    Failed,
    Cancelled,
}

impl NudgeStatus {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<NudgeStatus> {
        s.parse().ok()
    }
}

/// What happened to a sent nudge afterwards (from SES feedback). First occurrence only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Engagement {
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub bounced_at: Option<DateTime<Utc>>,
    pub complained_at: Option<DateTime<Utc>>,
    /// SES accepted the message (its `Send` event): proof it left even when the answer to the
    /// send was lost.
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
}

impl Engagement {
    /// When the provider's events first show the message left: accepted, delivered, bounced,
    /// complained of, opened or clicked. `None`: no event (yet).
    pub fn left_at(&self) -> Option<DateTime<Utc>> {
        [
            self.accepted_at,
            self.delivered_at,
            self.bounced_at,
            self.complained_at,
            self.opened_at,
            self.clicked_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One message to one recipient. Its id is deterministic (e.g. `dl/<deadline_id>/<version>/<stage>`),
/// so planning it twice (a retried Lambda, a replay) records it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nudge {
    pub nudge_id: String,
    pub account_id: String,
    /// The customer contact; `None` = the account's admin (customer kinds) or the CSM.
    pub contact_id: Option<String>,
    pub kind: NudgeKind,
    pub stage: Option<Stage>,
    /// Content variant ("a"; follow-up resends use "b").
    pub variant: String,
    pub send_at: DateTime<Utc>,
    /// The function that planned it (`reminders`, `ingest`, ...): the delivery log's
    /// `function`. Delivery does not depend on it: one sweep sends every due nudge.
    pub function: String,
    /// Template variables (title, due_at, link, score, ...).
    pub vars: serde_json::Value,
    pub status: NudgeStatus,
    /// Claims so far (each claim is one send attempt).
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Why it was blocked/failed/cancelled, or the last provider error while pending.
    pub reason: Option<String>,
    /// For a follow-up: the nudge whose engagement decides whether it goes out.
    pub follow_up_of: Option<String>,
    pub engagement: Engagement,
    /// Who it is for when not the kind's usual audience (a stuck onboarding's
    /// `onboarding_progress` goes to the CSM topic as well as to the admin); `None` = the kind's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
}

impl Nudge {
    /// A new pending nudge with default variant "a" and no vars.
    pub fn new(
        nudge_id: impl Into<String>,
        account_id: impl Into<String>,
        contact_id: Option<String>,
        kind: NudgeKind,
        send_at: DateTime<Utc>,
        function: impl Into<String>,
        created_at: DateTime<Utc>,
    ) -> Nudge {
        Nudge {
            nudge_id: nudge_id.into(),
            account_id: account_id.into(),
            contact_id,
            kind,
            stage: None,
            variant: "a".into(),
            send_at,
            function: function.into(),
            vars: serde_json::Value::Object(Default::default()),
            status: NudgeStatus::Pending,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            provider_message_id: None,
            created_at,
            sent_at: None,
            reason: None,
            follow_up_of: None,
            engagement: Engagement::default(),
            audience: None,
        }
    }

    /// The CSM's copy of a customer kind: sent to the CSM topic, outside customer policy.
    pub fn for_csm(mut self) -> Nudge {
        self.audience = Some(Audience::Csm);
        self
    }

    pub fn audience(&self) -> Audience {
        self.audience.unwrap_or(self.kind.audience())
    }

    /// The kind's send window; a CSM copy goes at once like every CSM message.
    pub fn send_window(&self) -> SendWindow {
        match self.audience() {
            Audience::Csm => SendWindow::Immediate,
            Audience::Customer => self.kind.send_window(),
        }
    }

    /// Customer messages are email; CSM messages go to the CSM SNS topic.
    pub fn channel(&self) -> Channel {
        match self.audience() {
            Audience::Customer => Channel::Email,
            Audience::Csm => Channel::Sns,
        }
    }

    pub fn with_stage(mut self, stage: impl Into<Stage>) -> Nudge {
        self.stage = Some(stage.into());
        self
    }

    pub fn with_vars(mut self, vars: serde_json::Value) -> Nudge {
        self.vars = vars;
        self
    }

    pub fn with_variant(mut self, variant: impl Into<String>) -> Nudge {
        self.variant = variant.into();
        self
    }

    pub fn recipient(&self) -> Recipient<'_> {
        match (self.audience(), self.contact_id.as_deref()) {
            (Audience::Csm, _) => Recipient::Csm,
            (Audience::Customer, Some(c)) => Recipient::Contact(c),
            (Audience::Customer, None) => Recipient::AccountAdmin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_serialize_snake_case() {
        for &s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Stage::TMinus3d.as_str(), "t_minus_3d");
        assert_eq!(Stage::parse("t_minus3d"), None);
        for &k in NudgeKind::ALL {
            assert_eq!(NudgeKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
    }

    #[test]
    fn reminders_are_transactional_and_csm_kinds_go_to_sns() {
        assert!(!NudgeKind::DeadlineReminder.is_marketing());
        assert!(NudgeKind::UpsellOffer.is_marketing());
        assert!(!NudgeKind::HealthAlert.is_marketing());
        assert_eq!(NudgeKind::HealthAlert.channel(), Channel::Sns);
        assert_eq!(NudgeKind::RiskNudge.channel(), Channel::Email);
        assert_eq!(NudgeKind::DeadlineReminder.category(), "reminders");
        assert_eq!(NudgeKind::AdminWelcome.category(), "onboarding");
        assert_eq!(NudgeKind::Milestone.category(), "onboarding");
        assert_eq!(NudgeKind::RiskNudge.category(), "success");
    }
}
