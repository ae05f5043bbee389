//! Deadlines in, reminder stages out: the `reminders` feature's ingest hook plans (or cancels)
//! a deadline's stages as nudges; the sweep delivers them. Its render variables say how much
//! time is left, in the recipient's terms, when the message leaves.
//!
//! A deadline's stages are nudges with deterministic ids `dl/<deadline_id>/<version>/<stage>`,
//! where the version is the `occurred_at` (ms) of the `deadline_set` that planned them. Moving a
//! deadline cancels its pending stages and plans the unsent ones again under the new version;
//! stages already sent (or being sent) are never planned again. Completing or cancelling a
//! deadline cancels its pending stages at once, in the same ingest request.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::{Deadline, ReminderPolicy, ReminderStage, format_due, replan, time_left};
use crate::Deps;
use crate::config::Config;
use crate::domain::{Nudge, NudgeKind, NudgeStatus, RecipientContext, UNKNOWN_OUTCOME};
use crate::events::{Event, EventPayload};
use crate::store::{Applied, DeadlineRecord, DeadlineStatus, StoreError};

/// The function that plans deadline stages (and, every 15 minutes, runs the sweep).
pub const FUNCTION: &str = "reminders";

/// Render variables of a stage, computed as it leaves: `time_left` ("3 days", "あと2時間")
/// and `due_local` in the recipient's zone and language.
pub fn render_vars(nudge: &Nudge, to: &RecipientContext, now: DateTime<Utc>) -> Map<String, Value> {
    let mut vars = Map::new();
    let due = nudge
        .vars
        .get("due_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    if let Some(due) = due {
        let due = due.with_timezone(&Utc);
        let lang = to.locale;
        vars.insert("time_left".into(), json!(time_left(due, now, to.tz, lang)));
        vars.insert("due_local".into(), json!(format_due(due, to.tz, lang)));
    }
    vars
}

pub fn policy(config: &Config) -> ReminderPolicy {
    ReminderPolicy {
        quiet_start_hour: config.quiet_hours.start_hour,
        quiet_end_hour: config.quiet_hours.end_hour,
        ..ReminderPolicy::default()
    }
}

/// Prefix of every stage nudge of a deadline.
pub fn nudge_prefix(deadline_id: &str) -> String {
    // `/` cannot occur in an id (ingest allows `[A-Za-z0-9._:@-]`), so deadline `a` never
    // matches the stages of deadline `a:b`.
    format!("dl/{deadline_id}/")
}

pub fn nudge_id(deadline_id: &str, version: i64, stage: ReminderStage) -> String {
    format!("{}{version}/{}", nudge_prefix(deadline_id), stage.as_str())
}

/// Applies a deadline event (set, completed, cancelled); other events are ignored.
pub async fn on_deadline_event(
    deps: &Deps,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = event.occurred_at_utc();
    let account = event.account_id.as_str();
    match &event.payload {
        EventPayload::DeadlineSet(d) => {
            let record = DeadlineRecord {
                deadline_id: d.deadline_id.clone(),
                contact_id: event.contact_id.clone(),
                due_at: d.due_at.with_timezone(&Utc),
                title: d.title.clone(),
                kind: d.kind.clone(),
                link: d.link.clone(),
                status: DeadlineStatus::Active,
                updated_at: at,
            };
            if !store_deadline(deps, account, &record).await? {
                return Ok(());
            }
            plan_stages(deps, account, &record, now).await
        }
        EventPayload::DeadlineCompleted { deadline_id }
        | EventPayload::DeadlineCancelled { deadline_id } => {
            let status = if matches!(event.payload, EventPayload::DeadlineCompleted { .. }) {
                DeadlineStatus::Completed
            } else {
                DeadlineStatus::Cancelled
            };
            let existing = deps.store.deadline(account, deadline_id).await?;
            let record = match existing {
                Some(mut r) => {
                    r.status = status;
                    r.updated_at = at;
                    r
                }
                // Completed before it was ever set (events out of order): remember it, so a
                // late `deadline_set` with an older time does not resurrect it.
                None => DeadlineRecord {
                    deadline_id: deadline_id.clone(),
                    contact_id: event.contact_id.clone(),
                    due_at: at,
                    title: String::new(),
                    kind: None,
                    link: None,
                    status,
                    updated_at: at,
                },
            };
            if !store_deadline(deps, account, &record).await? {
                return Ok(());
            }
            cancel_pending(deps, account, deadline_id, status.as_str(), now).await
        }
        _ => Ok(()),
    }
}

/// Stores the deadline (last writer wins by `occurred_at`). True when `record` is the current
/// state and its effects must be applied: newly written, or already written by an earlier
/// attempt of this same event. The latter is a client retry after the effects failed half-way
/// (the ingest handler compensates by forgetting the event, so it is not a duplicate): the
/// stages are then planned or cancelled again, idempotently.
async fn store_deadline(
    deps: &Deps,
    account: &str,
    record: &DeadlineRecord,
) -> Result<bool, StoreError> {
    if deps.store.put_deadline(account, record).await? == Applied::Applied {
        return Ok(true);
    }
    Ok(deps
        .store
        .deadline(account, &record.deadline_id)
        .await?
        .is_some_and(|stored| is_this_version(&stored, record)))
}

/// Whether `stored` is the state `record` wrote (timestamps compared at the store's precision).
fn is_this_version(stored: &DeadlineRecord, record: &DeadlineRecord) -> bool {
    stored.updated_at.timestamp_millis() == record.updated_at.timestamp_millis()
        && stored.status == record.status
        && stored.due_at.timestamp_millis() == record.due_at.timestamp_millis()
}

async fn cancel_pending(
    deps: &Deps,
    account: &str,
    deadline_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let pending: Vec<String> = deps
        .store
        .nudges_with_prefix(account, &nudge_prefix(deadline_id))
        .await?
        .into_iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .map(|n| n.nudge_id)
        .collect();
    if !pending.is_empty() {
        deps.store
            .cancel_pending(account, &pending, reason, now)
            .await?;
    }
    Ok(())
}

/// The recipient's zone: the contact's, else the account's, else UTC. Without a contact the
/// reminder goes to the account's admin (as the send path resolves it), so the admin's zone
/// applies: stages are planned in the zone the message's wording uses.
async fn recipient_tz(deps: &Deps, account: &str, contact: Option<&str>) -> Result<Tz, StoreError> {
    let record = deps.store.account(account).await?;
    let admin = record.as_ref().and_then(|a| a.admin_contact_id.as_deref());
    if let Some(c) = contact.or(admin)
        && let Some(tz) = deps
            .store
            .contact(account, c)
            .await?
            .and_then(|c| c.profile)
            .and_then(|p| p.timezone)
    {
        return Ok(tz);
    }
    Ok(record
        .and_then(|a| a.profile)
        .map(|p| p.timezone)
        .unwrap_or(Tz::UTC))
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

async fn plan_stages(
    deps: &Deps,
    account: &str,
    d: &DeadlineRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let existing = deps
        .store
        .nudges_with_prefix(account, &nudge_prefix(&d.deadline_id))
        .await?;
    // Sent (or being sent right now, or possibly sent: a lease that expired mid-send) stages
    // are never repeated.
    let sent: Vec<ReminderStage> = existing
        .iter()
        .filter(|n| {
            matches!(n.status, NudgeStatus::Sent | NudgeStatus::Claimed)
                || (n.status == NudgeStatus::Failed && n.reason.as_deref() == Some(UNKNOWN_OUTCOME))
        })
        .filter_map(|n| n.stage.and_then(|s| ReminderStage::try_from(s).ok()))
        .collect();
    let version = d.updated_at.timestamp_millis();
    let current = format!("{}{version}/", nudge_prefix(&d.deadline_id));
    let stale: Vec<String> = existing
        .iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .filter(|n| !n.nudge_id.starts_with(&current))
        .map(|n| n.nudge_id.clone())
        .collect();
    if !stale.is_empty() {
        deps.store
            .cancel_pending(account, &stale, "moved", now)
            .await?;
    }
    let tz = recipient_tz(deps, account, d.contact_id.as_deref()).await?;
    let mut planned = Vec::new();
    for nudge in stage_nudges(account, d, tz, now, &sent, &policy(&deps.config)) {
        deps.store.put_nudge(&nudge, deps.config.due_shards).await?;
        planned.push(nudge.nudge_id);
    }
    // Ingest applies the events of one batch concurrently: a later `deadline_completed` or
    // move of this deadline may have looked for pending stages before ours were written. Its
    // record is stored first, so reading the deadline now tells: if this version is no longer
    // current, withdraw what was just planned (the later event's own cancel saw nothing).
    if !planned.is_empty()
        && !deps
            .store
            .deadline(account, &d.deadline_id)
            .await?
            .is_some_and(|stored| is_this_version(&stored, d))
    {
        deps.store
            .cancel_pending(account, &planned, "superseded", now)
            .await?;
    }
    Ok(())
}
