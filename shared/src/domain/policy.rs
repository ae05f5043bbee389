//! The send policy: a pure function of what the store says about the recipient, checked in
//! this order (the first that applies is the recorded reason):
//!
//! 1. the contact unsubscribed (the nudge's category, or `all`);
//! 2. the address is suppressed: hard bounce or complaint, or a soft bounce after
//!    `soft_bounce_limit` in a row (a complaint stops everything customer-facing, a bounce
//!    stops email);
//! 3. the account is paused because the customer replied (until `automation_resumed`);
//! 4. the per-contact frequency cap for marketing-type nudges (deadline reminders are
//!    transactional and exempt).
//!
//! CSM-facing nudges (alerts, tasks, pause notices) skip all four: they are work for people,
//! and the pause in particular must never silence the CSM.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::nudge::{Audience, Channel, NudgeKind, category};

/// Frequency caps for marketing-type nudges per contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub per_day: u32,
    pub per_week: u32,
}

/// Why an address is suppressed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SuppressionReason {
    HardBounce,
    Complaint,
    SoftBounce,
}

impl SuppressionReason {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// Why a nudge did not go out (the delivery log's `reason`).
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
pub enum BlockReason {
    Unsubscribed,
    SuppressedHardBounce,
    SuppressedComplaint,
    SuppressedSoftBounce,
    AccountPaused,
    FrequencyCapDaily,
    FrequencyCapWeekly,
    /// No contact, no address, or no CSM topic configured.
    NoRecipient,
    /// A follow-up whose original was opened meanwhile.
    Opened,
    /// A deadline reminder still unsent when its deadline passed (a retried final stage): a
    /// reminder after the fact helps nobody.
    DeadlinePassed,
}

impl BlockReason {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// A deadline reminder whose deadline (`due_at`, from its variables) is not in the future any
/// more: it is dropped, never sent late.
pub fn deadline_passed(
    kind: super::NudgeKind,
    vars: &serde_json::Value,
    now: DateTime<Utc>,
) -> bool {
    kind == super::NudgeKind::DeadlineReminder
        && vars
            .get("due_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|due| due <= now)
}

/// Everything the policy looks at, already loaded.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    pub nudge_id: &'a str,
    pub kind: NudgeKind,
    /// Usually the kind's; a customer kind's copy for the CSM is `Csm`.
    pub audience: Audience,
    pub channel: Channel,
    /// The contact's unsubscribed categories (`all` = everything customer-facing).
    pub unsubscribed: &'a std::collections::BTreeSet<String>,
    /// Suppression of the recipient address, if any.
    pub suppression: Option<SuppressionReason>,
    pub paused: bool,
    pub cap: FrequencyCap,
    /// Marketing sends already reserved for this contact: nudge id → time.
    pub recent_marketing: &'a BTreeMap<String, DateTime<Utc>>,
    /// The contact's time zone: "a day" of the cap is the contact's calendar day.
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

/// The policy decision, in the documented order.
pub fn check(input: &PolicyInput<'_>) -> Result<(), BlockReason> {
    if input.audience == Audience::Csm {
        return Ok(());
    }
    let cat = input.kind.category();
    if input.unsubscribed.contains(category::ALL) || input.unsubscribed.contains(cat) {
        return Err(BlockReason::Unsubscribed);
    }
    match (input.suppression, input.channel) {
        // A complaint stops everything customer-facing, whatever the channel.
        (Some(SuppressionReason::Complaint), _) => return Err(BlockReason::SuppressedComplaint),
        (Some(SuppressionReason::HardBounce), Channel::Email) => {
            return Err(BlockReason::SuppressedHardBounce);
        }
        (Some(SuppressionReason::SoftBounce), Channel::Email) => {
            return Err(BlockReason::SuppressedSoftBounce);
        }
        _ => {}
    }
    if input.paused {
        return Err(BlockReason::AccountPaused);
    }
    if input.kind.is_marketing() {
        cap_check(
            input.recent_marketing,
            input.nudge_id,
            input.now,
            input.tz,
            input.cap,
        )?;
    }
    Ok(())
}

/// The frequency cap: at most `per_day` marketing nudges on the contact's local calendar day
/// and `per_week` on their last 7 local days (today and the 6 before). Whole days, not a rolling
/// 168 hours: a send that a retry delayed by minutes leaves the same room for the next. The
/// nudge itself (already reserved by an earlier attempt) does not count against itself, so a
/// retry after a crash is not capped.
pub fn cap_check(
    recent: &BTreeMap<String, DateTime<Utc>>,
    nudge_id: &str,
    now: DateTime<Utc>,
    tz: Tz,
    cap: FrequencyCap,
) -> Result<(), BlockReason> {
    let today = now.with_timezone(&tz).date_naive();
    let week_start = today - Duration::days(6);
    let others = recent
        .iter()
        .filter(|(id, _)| id.as_str() != nudge_id)
        .map(|(_, at)| *at);
    let (mut day, mut week) = (0u32, 0u32);
    for at in others.filter(|at| *at <= now) {
        let local_day = at.with_timezone(&tz).date_naive();
        if local_day >= week_start {
            week += 1;
        }
        if local_day == today {
            day += 1;
        }
    }
    if day >= cap.per_day {
        return Err(BlockReason::FrequencyCapDaily);
    }
    if week >= cap.per_week {
        return Err(BlockReason::FrequencyCapWeekly);
    }
    Ok(())
}

/// The reservations worth keeping after adding one at `now`: the last 8 days.
pub fn prune_reservations(
    recent: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> BTreeMap<String, DateTime<Utc>> {
    let horizon = now - Duration::days(8);
    recent
        .iter()
        .filter(|(_, at)| **at > horizon)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeSet;

    const CAP: FrequencyCap = FrequencyCap {
        per_day: 1,
        per_week: 3,
    };

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    struct Case {
        kind: NudgeKind,
        channel: Channel,
        unsub: BTreeSet<String>,
        suppression: Option<SuppressionReason>,
        paused: bool,
        recent: BTreeMap<String, DateTime<Utc>>,
    }

    impl Case {
        fn new(kind: NudgeKind) -> Case {
            Case {
                kind,
                channel: kind.channel(),
                unsub: BTreeSet::new(),
                suppression: None,
                paused: false,
                recent: BTreeMap::new(),
            }
        }
        fn check(&self) -> Result<(), BlockReason> {
            check(&PolicyInput {
                nudge_id: "n1",
                kind: self.kind,
                audience: self.kind.audience(),
                channel: self.channel,
                unsubscribed: &self.unsub,
                suppression: self.suppression,
                paused: self.paused,
                cap: CAP,
                recent_marketing: &self.recent,
                tz: chrono_tz::Asia::Tokyo,
                now: t(20, 3),
            })
        }
    }

    #[test]
    fn order_is_unsubscribe_suppression_pause_cap() {
        let mut c = Case::new(NudgeKind::UpsellOffer);
        c.unsub.insert("success".into());
        c.suppression = Some(SuppressionReason::HardBounce);
        c.paused = true;
        c.recent.insert("x".into(), t(20, 1));
        assert_eq!(c.check(), Err(BlockReason::Unsubscribed));
        c.unsub.clear();
        assert_eq!(c.check(), Err(BlockReason::SuppressedHardBounce));
        c.suppression = None;
        assert_eq!(c.check(), Err(BlockReason::AccountPaused));
        c.paused = false;
        assert_eq!(c.check(), Err(BlockReason::FrequencyCapDaily));
        c.recent.clear();
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn unsubscribe_is_per_category_and_all_means_all() {
        let mut c = Case::new(NudgeKind::DeadlineReminder);
        c.unsub.insert("success".into());
        assert_eq!(c.check(), Ok(()));
        c.unsub.insert("reminders".into());
        assert_eq!(c.check(), Err(BlockReason::Unsubscribed));
        let mut c = Case::new(NudgeKind::AdminWelcome);
        c.unsub.insert("all".into());
        assert_eq!(c.check(), Err(BlockReason::Unsubscribed));
    }

    #[test]
    fn reminders_are_exempt_from_the_cap_but_not_from_suppression() {
        let mut c = Case::new(NudgeKind::DeadlineReminder);
        for i in 0..5 {
            c.recent.insert(format!("m{i}"), t(20, 1));
        }
        assert_eq!(c.check(), Ok(()));
        c.suppression = Some(SuppressionReason::SoftBounce);
        assert_eq!(c.check(), Err(BlockReason::SuppressedSoftBounce));
    }

    #[test]
    fn csm_messages_bypass_everything() {
        let mut c = Case::new(NudgeKind::AutomationPaused);
        c.unsub.insert("all".into());
        c.suppression = Some(SuppressionReason::Complaint);
        c.paused = true;
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn a_customer_kinds_copy_for_the_csm_bypasses_customer_policy() {
        let mut c = Case::new(NudgeKind::OnboardingProgress);
        c.paused = true;
        c.unsub.insert("all".into());
        assert_eq!(c.check(), Err(BlockReason::Unsubscribed));
        let input = PolicyInput {
            nudge_id: "n1",
            kind: c.kind,
            audience: Audience::Csm,
            channel: Channel::Sns,
            unsubscribed: &c.unsub,
            suppression: None,
            paused: true,
            cap: CAP,
            recent_marketing: &c.recent,
            tz: chrono_tz::Asia::Tokyo,
            now: t(20, 3),
        };
        assert_eq!(check(&input), Ok(()), "a paused account's CSM still hears");
    }

    #[test]
    fn a_bounce_stops_email_but_a_complaint_stops_every_channel() {
        let mut c = Case::new(NudgeKind::RiskNudge);
        c.channel = Channel::Sns;
        c.suppression = Some(SuppressionReason::HardBounce);
        assert_eq!(c.check(), Ok(()));
        c.suppression = Some(SuppressionReason::Complaint);
        assert_eq!(c.check(), Err(BlockReason::SuppressedComplaint));
    }

    #[test]
    fn cap_counts_the_local_day_and_the_rolling_week() {
        let tz = chrono_tz::Asia::Tokyo;
        let mut recent = BTreeMap::new();
        // 2026-11-19 23:00 JST = 14:00 UTC, a different local day from 20th 12:00 JST.
        recent.insert("a".into(), t(19, 14));
        assert_eq!(cap_check(&recent, "n", t(20, 3), tz, CAP), Ok(()));
        // 2026-11-20 00:30 JST is the same local day as 20th 12:00 JST.
        recent.insert("b".into(), t(19, 15) + Duration::minutes(30));
        assert_eq!(
            cap_check(&recent, "n", t(20, 3), tz, CAP),
            Err(BlockReason::FrequencyCapDaily)
        );
        // The nudge's own reservation never counts against it.
        assert_eq!(cap_check(&recent, "b", t(20, 3), tz, CAP), Ok(()));
        recent.insert("c".into(), t(17, 3));
        assert_eq!(
            cap_check(&recent, "n", t(21, 3), tz, CAP),
            Err(BlockReason::FrequencyCapWeekly)
        );
        // A week later the old ones have rolled out.
        assert_eq!(cap_check(&recent, "n", t(27, 3), tz, CAP), Ok(()));
    }

    #[test]
    fn the_week_is_the_contacts_last_seven_local_days_not_a_rolling_168_hours() {
        let tz = chrono_tz::America::New_York;
        let cap = FrequencyCap {
            per_day: 5,
            per_week: 1,
        };
        // Friday 2026-11-13 09:15 EST; now is Friday 2026-11-20 09:00 EST, seven local days
        // later: outside the week (the 14th to the 20th), though inside the last 168 hours.
        let mut recent = BTreeMap::new();
        recent.insert("a".into(), t(13, 14) + Duration::minutes(15));
        let now = t(20, 14);
        assert_eq!(cap_check(&recent, "n", now, tz, cap), Ok(()));
        // The next morning (the 14th) is inside it.
        recent.insert("b".into(), t(14, 14));
        assert_eq!(
            cap_check(&recent, "n", now, tz, cap),
            Err(BlockReason::FrequencyCapWeekly)
        );
    }

    #[test]
    fn pruning_keeps_eight_days() {
        let mut recent = BTreeMap::new();
        recent.insert("old".into(), t(1, 0));
        recent.insert("new".into(), t(19, 0));
        let kept = prune_reservations(&recent, t(20, 0));
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["new"]);
    }
}
