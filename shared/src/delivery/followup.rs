//! Follow-ups on unopened email ("if not opened in N days").
//!
//! Cheap by construction: when a nudge whose kind has a rule is sent, a pending follow-up
//! nudge `fu:<nudge_id>` is created, due when the recipient's business day `after` later opens
//! ([`due_after`]). When it comes due, its
//! delivery first reads the original: opened or clicked → cancelled with reason `opened`
//! (logged as blocked/opened); otherwise it goes out. No scan over sent mail is ever needed.
//!
//! What goes out depends on the account's tier: high- and low-touch accounts get a CSM task
//! (SNS: "call them about X", the practice of calling when mail goes unopened); tech-touch
//! accounts get one resend of the message as variant "b". A follow-up never has a follow-up.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

use crate::domain::log::rfc3339_seconds;
use crate::domain::{BusinessHours, Nudge, NudgeKind, Tier};

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

/// When the follow-up of a message sent at `sent_at` is due: when the recipient's business
/// day `after` later opens, whatever minute the original left. A send that a provider error
/// delayed by a run does not move its follow-up, nor change which of two follow-ups to one
/// person a frequency cap lets through.
pub fn due_after(
    sent_at: DateTime<Utc>,
    after: Duration,
    tz: Tz,
    hours: &BusinessHours,
) -> DateTime<Utc> {
    let day = sent_at.with_timezone(&tz).date_naive() + after;
    match tz
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
    {
        Some(midnight) => hours.next_open(midnight.with_timezone(&Utc), tz),
        // No midnight that day (a zone that springs forward at 00:00).
        None => hours.next_open(sent_at + after, tz),
    }
}

/// The follow-up to schedule when `original` was sent at `sent_at` to a recipient in `tz`
/// whose business hours are `hours`, or `None`.
pub fn follow_up_for(
    original: &Nudge,
    tier: Option<Tier>,
    subject: &str,
    sent_at: DateTime<Utc>,
    (tz, hours): (Tz, &BusinessHours),
) -> Option<Nudge> {
    if original.follow_up_of.is_some() {
        return None;
    }
    let rule = rule(original.kind)?;
    let action = match tier.unwrap_or(Tier::TechTouch) {
        Tier::HighTouch | Tier::LowTouch => rule.high_low_touch,
        Tier::TechTouch => rule.tech_touch,
    };
    let send_at = due_after(sent_at, rule.after, tz, hours);
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
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Tokyo;

    fn original(kind: NudgeKind) -> Nudge {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        Nudge::new("up:1", "acme", Some("u-7".into()), kind, t, "health", t)
    }

    fn tokyo() -> (Tz, &'static BusinessHours) {
        static HOURS: std::sync::OnceLock<BusinessHours> = std::sync::OnceLock::new();
        (Tokyo, HOURS.get_or_init(BusinessHours::default))
    }

    #[test]
    fn high_touch_gets_a_csm_task_tech_touch_a_resend() {
        // Friday 10:00 in Tokyo; five days later is Wednesday, whose business day opens at
        // 09:00 there.
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap();
        let o = original(NudgeKind::UpsellOffer);
        let task = follow_up_for(&o, Some(Tier::HighTouch), "s", t, tokyo()).unwrap();
        assert_eq!(task.kind, NudgeKind::CsmTask);
        assert_eq!(task.nudge_id, "fu:up:1");
        assert_eq!(
            task.send_at,
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
        );
        assert_eq!(task.follow_up_of.as_deref(), Some("up:1"));
        let resend = follow_up_for(&o, None, "s", t, tokyo()).unwrap();
        assert_eq!(resend.kind, NudgeKind::UpsellOffer);
        assert_eq!(resend.variant, "b");
        assert!(follow_up_for(&resend, None, "s", t, tokyo()).is_none());
        assert!(
            follow_up_for(
                &original(NudgeKind::DeadlineReminder),
                None,
                "s",
                t,
                tokyo()
            )
            .is_none()
        );
    }

    #[test]
    fn a_send_delayed_by_a_retry_keeps_its_follow_ups_time() {
        let hours = BusinessHours::default();
        let on_time = Utc.with_ymd_and_hms(2026, 11, 17, 0, 0, 0).unwrap();
        let late = on_time + Duration::minutes(15);
        let after = Duration::days(3);
        assert_eq!(
            due_after(on_time, after, Tokyo, &hours),
            due_after(late, after, Tokyo, &hours)
        );
        // Tuesday 09:00 in Tokyo + 3 days: Friday 09:00.
        assert_eq!(
            due_after(on_time, after, Tokyo, &hours),
            Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_follow_up_opens_with_new_yorks_business_day_across_the_dst_change_and_the_weekend() {
        let hours = BusinessHours::default();
        // Thursday 2026-10-29 10:00 EDT; three days later is Sunday 2026-11-01, the day
        // daylight time ends: the next business day opens Monday 09:00 EST (14:00 UTC).
        let sent = Utc.with_ymd_and_hms(2026, 10, 29, 14, 0, 0).unwrap();
        assert_eq!(
            due_after(sent, Duration::days(3), New_York, &hours),
            Utc.with_ymd_and_hms(2026, 11, 2, 14, 0, 0).unwrap()
        );
    }
}
