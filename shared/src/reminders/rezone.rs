//! Pure: what a new recipient zone does to one deadline's planned stages.
//!
//! Stages are planned at local times (three days before at the same wall-clock time, 09:00 on
//! the day, quiet hours), so when the recipient's zone changes after `deadline_set` the stages
//! still pending are planned again in the new zone, under the same nudge ids
//! (`dl/<deadline_id>/<version>/<stage>`): the deadline's version has not changed, and a
//! repeat of the same change finds everything in place and does nothing. Stages sent (or being
//! sent) stay sent and keep their slot, as when a deadline moves (`plan::replan`); stages whose
//! new time has passed follow the planning rules for past stages (skipped, except the latest
//! one within the catch-up window, sent late).
//!
//! A pending stage the new zone no longer has (its time passed, or it no longer comes before
//! the next stage) is cancelled with reason [`REZONED`]; a later zone change that brings it back
//! reopens that same nudge.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::stages::{nudge_id, sent_stages, stage_nudges};
use super::{ReminderPolicy, ReminderStage};
use crate::domain::{Nudge, NudgeStatus};
use crate::store::{DeadlineRecord, DeadlineStatus, ERASED};

/// The reason of a stage a zone change dropped (and the only cancelled stage one reopens).
pub const REZONED: &str = "rezoned";

/// The writes that bring one deadline's stages in line with a plan (in a new zone, or new).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageWrites {
    /// Pending stages moved to a new time (nudge id, time).
    pub moved: Vec<(String, DateTime<Utc>)>,
    /// Stages an earlier zone change dropped, pending again at a time (nudge id, time).
    pub reopened: Vec<(String, DateTime<Utc>)>,
    /// Stages this version never had (their time had passed, or they were out of order),
    /// planned now.
    pub planned: Vec<Nudge>,
    /// Pending stages the new zone drops, to cancel with reason [`REZONED`].
    pub dropped: Vec<String>,
}

impl StageWrites {
    pub fn is_empty(&self) -> bool {
        self.moved.is_empty()
            && self.reopened.is_empty()
            && self.planned.is_empty()
            && self.dropped.is_empty()
    }

    /// The ids this re-plan made pending (moved, reopened, planned).
    pub fn pending_ids(&self) -> Vec<String> {
        self.moved
            .iter()
            .chain(&self.reopened)
            .map(|(id, _)| id.clone())
            .chain(self.planned.iter().map(|n| n.nudge_id.clone()))
            .collect()
    }
}

/// Re-plans deadline `d` of `account` in zone `tz` at `now`, given every stage nudge of the
/// deadline (`existing`, all versions: a stage sent under an earlier version counts as sent).
/// Nothing for a deadline that is not active or already due, or whose stages were erased
/// with its contact (`nudge erase-contact`): nothing is planned for them again.
pub fn rezone(
    account: &str,
    d: &DeadlineRecord,
    tz: Tz,
    now: DateTime<Utc>,
    existing: &[Nudge],
    policy: &ReminderPolicy,
) -> StageWrites {
    let mut out = StageWrites::default();
    if d.status != DeadlineStatus::Active || d.due_at <= now {
        return out;
    }
    let version = d.updated_at.timestamp_millis();
    let current = |stage: ReminderStage| {
        let id = nudge_id(&d.deadline_id, version, stage);
        existing.iter().find(|n| n.nudge_id == id)
    };
    if ReminderStage::ALL
        .iter()
        .filter_map(|s| current(*s))
        .any(|n| n.reason.as_deref() == Some(ERASED))
    {
        return out;
    }
    let wanted = stage_nudges(account, d, tz, now, &sent_stages(existing), policy);
    for stage in ReminderStage::ALL {
        let want = wanted
            .iter()
            .find(|n| n.nudge_id == nudge_id(&d.deadline_id, version, stage));
        match (want, current(stage)) {
            (Some(w), None) => out.planned.push(w.clone()),
            (Some(w), Some(have)) if have.status == NudgeStatus::Pending => {
                // A stage that is late in the new zone and already due stays as it is: the
                // sweep sends it at once either way.
                let in_place =
                    have.send_at == w.send_at || (w.send_at < now && have.send_at <= now);
                if !in_place {
                    out.moved
                        .push((w.nudge_id.clone(), due_from(w.send_at, now)));
                }
            }
            (Some(w), Some(have))
                if have.status == NudgeStatus::Cancelled
                    && have.reason.as_deref() == Some(REZONED) =>
            {
                out.reopened
                    .push((w.nudge_id.clone(), due_from(w.send_at, now)));
            }
            (None, Some(have)) if have.status == NudgeStatus::Pending => {
                out.dropped.push(have.nudge_id.clone());
            }
            // Sent, claimed, blocked, failed or cancelled otherwise: final, left alone.
            _ => {}
        }
    }
    out
}

/// The time a moved or reopened stage is due: a late stage (its time passed moments ago) is
/// due now, so it lands in a due-index bucket the sweep still reads (a new nudge does the same
/// through its creation time).
fn due_from(send_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    send_at.max(now)
}

#[cfg(test)]
mod tests;
