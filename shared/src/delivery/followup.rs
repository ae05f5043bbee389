//! Follow-ups on unopened email ("if not opened in N days").
//!
//! Cheap by construction: when a nudge whose kind has a rule is sent, a pending follow-up
//! nudge `fu:<nudge_id>` is created with `send_at = sent_at + after`. When it comes due, its
//! delivery first reads the original: opened or clicked → cancelled with reason `opened`
//! (logged as blocked/opened); otherwise it goes out. No scan over sent mail is ever needed.
//!
//! What goes out depends on the account's tier: high- and low-touch accounts get a CSM task
//! (SNS: "call them about X", the practice of calling when mail goes unopened); tech-touch
//! accounts get one resend of the message as variant "b". A follow-up never has a follow-up.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::domain::log::rfc3339_seconds;
use crate::domain::{Nudge, NudgeKind, Tier};

/// What a tier gets when the original was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    CsmTask,
    Resend { variant: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpRule {
    pub after: Duration,
    pub high_low_touch: FollowUp,
    pub tech_touch: FollowUp,
}

/// The rule table (per kind). Reminders have their own stages; CSM messages are not email.
pub fn rule(kind: NudgeKind) -> Option<FollowUpRule> {
    let days = match kind {
        NudgeKind::AdminWelcome => 3,
        NudgeKind::OnboardingProgress => 4,
        NudgeKind::RiskNudge => 3,
        NudgeKind::UpsellOffer => 5,
        _ => return None,
    };
    Some(FollowUpRule {
        after: Duration::days(days),
        high_low_touch: FollowUp::CsmTask,
        tech_touch: FollowUp::Resend { variant: "b" },
    })
}

pub fn follow_up_id(nudge_id: &str) -> String {
    format!("fu:{nudge_id}")
}

/// The follow-up to schedule when `original` was sent at `sent_at`, or `None`.
pub fn follow_up_for(
    original: &Nudge,
    tier: Option<Tier>,
    subject: &str,
    sent_at: DateTime<Utc>,
) -> Option<Nudge> {
    if original.follow_up_of.is_some() {
        return None;
    }
    let rule = rule(original.kind)?;
    let action = match tier.unwrap_or(Tier::TechTouch) {
        Tier::HighTouch | Tier::LowTouch => rule.high_low_touch,
        Tier::TechTouch => rule.tech_touch,
    };
    let send_at = sent_at + rule.after;
    let id = follow_up_id(&original.nudge_id);
    let mut n = match action {
        FollowUp::CsmTask => Nudge::new(
            id,
            &original.account_id,
            original.contact_id.clone(),
            NudgeKind::CsmTask,
            send_at,
            &original.function,
            sent_at,
        )
        .with_vars(json!({
            "original_kind": original.kind.as_str(),
            "original_subject": subject,
            "original_sent_at": rfc3339_seconds::format(&sent_at),
            "days": rule.after.num_days(),
        })),
        FollowUp::Resend { variant } => {
            let mut n = original.clone();
            n.nudge_id = id;
            n.variant = variant.into();
            n.send_at = send_at;
            n.created_at = sent_at;
            n.status = crate::domain::NudgeStatus::Pending;
            n.attempts = 0;
            n.lease_owner = None;
            n.lease_until = None;
            n.provider_message_id = None;
            n.sent_at = None;
            n.reason = None;
            n.engagement = Default::default();
            n
        }
    };
    n.follow_up_of = Some(original.nudge_id.clone());
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn original(kind: NudgeKind) -> Nudge {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        Nudge::new("up:1", "acme", Some("u-7".into()), kind, t, "health", t)
    }

    #[test]
    fn high_touch_gets_a_csm_task_tech_touch_a_resend() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
        let o = original(NudgeKind::UpsellOffer);
        let task = follow_up_for(&o, Some(Tier::HighTouch), "s", t).unwrap();
        assert_eq!(task.kind, NudgeKind::CsmTask);
        assert_eq!(task.nudge_id, "fu:up:1");
        assert_eq!(task.send_at, t + Duration::days(5));
        assert_eq!(task.follow_up_of.as_deref(), Some("up:1"));
        let resend = follow_up_for(&o, None, "s", t).unwrap();
        assert_eq!(resend.kind, NudgeKind::UpsellOffer);
        assert_eq!(resend.variant, "b");
        assert!(follow_up_for(&resend, None, "s", t).is_none());
        assert!(follow_up_for(&original(NudgeKind::DeadlineReminder), None, "s", t).is_none());
    }
}
