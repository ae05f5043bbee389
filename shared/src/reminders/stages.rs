//! Pure: a deadline's stage nudges as planning writes them (ids, times, variables), and which
//! stages count as sent. Shared by the `deadline_set` hook, the zone-change re-plan
//! (`rezone`) and bulk loaders, so all of them write exactly the same nudges.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::{Deadline, ReminderPolicy, ReminderStage, replan};
use crate::domain::{Nudge, NudgeKind, NudgeStatus, UNKNOWN_OUTCOME};
use crate::store::DeadlineRecord;

/// The function that plans deadline stages (and, every 15 minutes, runs the sweep).
pub const FUNCTION: &str = "reminders";

/// Prefix of every stage nudge of a deadline.
pub fn nudge_prefix(deadline_id: &str) -> String {
    // `/` cannot occur in an id (ingest allows `[A-Za-z0-9._:@-]`), so deadline `a` never
    // matches the stages of deadline `a:b`.
    format!("dl/{deadline_id}/")
}

pub fn nudge_id(deadline_id: &str, version: i64, stage: ReminderStage) -> String {
    format!("{}{version}/{}", nudge_prefix(deadline_id), stage.as_str())
}

/// The stage nudges planned for deadline `d` at `now` in the recipient's zone `tz`, leaving out
/// `sent` stages: what ingest stores (public so bulk loaders write exactly the same nudges).
pub fn stage_nudges(
    account: &str,
    d: &DeadlineRecord,
    tz: Tz,
    now: DateTime<Utc>,
    sent: &[ReminderStage],
    policy: &ReminderPolicy,
) -> Vec<Nudge> {
    let deadline = Deadline {
        due_at: d.due_at,
        tz,
    };
    let version = d.updated_at.timestamp_millis();
    replan(&deadline, now, sent, policy)
        .into_iter()
        .map(|stage| {
            Nudge::new(
                nudge_id(&d.deadline_id, version, stage.stage),
                account,
                d.contact_id.clone(),
                NudgeKind::DeadlineReminder,
                stage.send_at,
                FUNCTION,
                now,
            )
            .with_stage(stage.stage)
            .with_vars(json!({
                "deadline_id": d.deadline_id,
                "title": d.title,
                "link": d.link,
                "due_at": d.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "deadline_kind": d.kind,
                "late": stage.late,
            }))
        })
        .collect()
}

/// The stages of a deadline that are sent, being sent, or possibly sent (a lease that expired
/// mid-send), under any version of it: never planned again.
pub fn sent_stages(existing: &[Nudge]) -> Vec<ReminderStage> {
    existing
        .iter()
        .filter(|n| {
            matches!(n.status, NudgeStatus::Sent | NudgeStatus::Claimed)
                || (n.status == NudgeStatus::Failed && n.reason.as_deref() == Some(UNKNOWN_OUTCOME))
        })
        .filter_map(|n| n.stage.and_then(|s| ReminderStage::try_from(s).ok()))
        .collect()
}
