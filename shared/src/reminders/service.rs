//! Deadlines in, reminder stages out: the `reminders` feature's ingest hook plans (or cancels)
//! a deadline's stages as nudges; the sweep delivers them. Its render variables say how much
//! time is left, in the recipient's terms, when the message leaves.
//!
//! A deadline's stages are nudges with deterministic ids `dl/<deadline_id>/<version>/<stage>`,
//! where the version is the `occurred_at` (ms) of the `deadline_set` that planned them. Moving a
//! deadline cancels its pending stages and plans the unsent ones again under the new version;
//! stages already sent (or being sent) are never planned again. Completing or cancelling a
//! deadline cancels its pending stages at once, in the same ingest request. When the
//! recipient's zone changes later, the pending stages of their open deadlines are planned
//! again in the new zone under the same ids (`rezone`; ingest's zone hook).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

pub use super::stages::{FUNCTION, nudge_id, nudge_prefix, sent_stages, stage_nudges};

use super::rezone::{REZONED, StageWrites, rezone};
use super::{ReminderPolicy, format_due, time_left};
use crate::Deps;
use crate::config::Config;
use crate::domain::{Nudge, NudgeStatus, RecipientContext};
use crate::events::{Event, EventPayload, ZoneChange};
use crate::store::{AccountRecord, Applied, DeadlineRecord, DeadlineStatus, StoreError};

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
/// applies: stages are planned in the zone the message's wording uses. Strongly consistent
/// reads: a zone written a moment before (the same batch's `contact_upserted`) must count.
async fn recipient_tz(deps: &Deps, account: &str, contact: Option<&str>) -> Result<Tz, StoreError> {
    let record = deps.store.account_consistent(account).await?;
    let admin = record.as_ref().and_then(|a| a.admin_contact_id.as_deref());
    recipient_zone(deps, account, record.as_ref(), contact.or(admin)).await
}

/// The zone of `recipient` (a contact, else none), else the account's, else UTC.
async fn recipient_zone(
    deps: &Deps,
    account: &str,
    record: Option<&AccountRecord>,
    recipient: Option<&str>,
) -> Result<Tz, StoreError> {
    if let Some(c) = recipient
        && let Some(tz) = deps
            .store
            .contact_consistent(account, c)
            .await?
            .and_then(|c| c.profile)
            .and_then(|p| p.timezone)
    {
        return Ok(tz);
    }
    Ok(record
        .and_then(|a| a.profile.as_ref())
        .map(|p| p.timezone)
        .unwrap_or(Tz::UTC))
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
    // Sent (or being sent right now, or possibly sent) stages are never repeated; a stage
    // already planned (a retry of the same event) is not planned twice (`put_nudge`).
    let sent = sent_stages(&existing);
    let plan = StageWrites {
        planned: stage_nudges(account, d, tz, now, &sent, &policy(&deps.config)),
        ..StageWrites::default()
    };
    apply(deps, account, d, &plan, now).await
}

/// Re-plans, in the new zone, the pending stages of the open deadlines whose recipient's zone
/// `change` moved: the contact's own deadlines (and those without a contact if they are the
/// admin), every open deadline for the account's zone (a deadline whose recipient has a zone
/// of their own comes out unchanged), those without a contact for a new admin.
pub async fn on_zone_change(
    deps: &Deps,
    account: &str,
    change: &ZoneChange,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let open: Vec<DeadlineRecord> = deps
        .store
        .deadlines(account)
        .await?
        .into_iter()
        .filter(|d| d.status == DeadlineStatus::Active && d.due_at > now)
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let record = deps.store.account_consistent(account).await?;
    let admin = record.as_ref().and_then(|a| a.admin_contact_id.clone());
    let recipient = |d: &DeadlineRecord| d.contact_id.clone().or_else(|| admin.clone());
    let affected = |d: &DeadlineRecord| match change {
        ZoneChange::Contact(c) => recipient(d).as_deref() == Some(c.as_str()),
        ZoneChange::Account => true,
        ZoneChange::Admin => d.contact_id.is_none(),
    };
    let policy = policy(&deps.config);
    let mut zones: HashMap<Option<String>, Tz> = HashMap::new();
    for d in open.iter().filter(|d| affected(d)) {
        let to = recipient(d);
        let tz = match zones.get(&to) {
            Some(tz) => *tz,
            None => {
                let tz = recipient_zone(deps, account, record.as_ref(), to.as_deref()).await?;
                zones.insert(to, tz);
                tz
            }
        };
        let existing = deps
            .store
            .nudges_with_prefix(account, &nudge_prefix(&d.deadline_id))
            .await?;
        let plan = rezone(account, d, tz, now, &existing, &policy);
        apply(deps, account, d, &plan, now).await?;
    }
    Ok(())
}

/// Writes a re-plan: each write is conditional (pending, cancelled as rezoned, absent), so a
/// concurrent sweep's claim or a repeat of the same change wins or changes nothing.
async fn apply(
    deps: &Deps,
    account: &str,
    d: &DeadlineRecord,
    plan: &StageWrites,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if plan.is_empty() {
        return Ok(());
    }
    let shards = deps.config.due_shards;
    if !plan.dropped.is_empty() {
        deps.store
            .cancel_pending(account, &plan.dropped, REZONED, now)
            .await?;
    }
    for (id, at) in &plan.moved {
        deps.store.defer_pending(account, id, *at, shards).await?;
    }
    for (id, at) in &plan.reopened {
        deps.store
            .reopen_cancelled(account, id, REZONED, *at, shards)
            .await?;
    }
    for nudge in &plan.planned {
        deps.store.put_nudge(nudge, shards).await?;
    }
    // Ingest applies the events of one batch concurrently: a later `deadline_completed` or
    // move of this deadline may have looked for pending stages before ours were written. Its
    // record is stored first, so reading the deadline now tells: if this version is no longer
    // current, withdraw what was just made pending (the later event's own cancel saw nothing).
    let pending = plan.pending_ids();
    if !pending.is_empty()
        && !deps
            .store
            .deadline(account, &d.deadline_id)
            .await?
            .is_some_and(|stored| is_this_version(&stored, d))
    {
        deps.store
            .cancel_pending(account, &pending, "superseded", now)
            .await?;
    }
    Ok(())
}
