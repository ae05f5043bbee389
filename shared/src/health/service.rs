//! The `health` feature's I/O: the daily run walks the account index and fans the accounts out
//! over the function's own queue, in work items of [`ACCOUNTS_PER_ITEM`]; the queue worker
//! scores each account with the active model (and the shadow model, if one is selected) and
//! writes one snapshot per account, model and local day. Reads per account: its profile, its
//! daily rollups, firsts and satisfaction state; never its raw events.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{info, warn};

use super::model::HISTORY_DAYS;
use super::{DayUsage, HealthInputs, HealthModel, HealthScore, ModelError, NpsResponse, Ticket};
use super::{local_day, score};
use crate::Deps;
use crate::channels::SendError;
use crate::store::{
    HealthRecord, HealthSnapshot, IndexedAccount, ModelSelection, StoreError, TicketState,
};

/// The function that runs the daily score.
pub const FUNCTION: &str = "health";
/// Accounts per queued work item: small enough for one invocation to score them well within
/// its timeout, large enough that the queue is not the cost.
pub const ACCOUNTS_PER_ITEM: usize = 100;

#[derive(Debug, Error)]
pub enum HealthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not enqueue health work: {0}")]
    Queue(#[from] SendError),
    #[error("stored model {version} is not usable: {error}")]
    Model { version: String, error: ModelError },
    #[error("selected model {0} is not stored")]
    MissingModel(String),
    #[error("bad health work item: {0}")]
    BadWorkItem(String),
}

impl HealthError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HealthError::Store(e) => e.is_retryable(),
            HealthError::Queue(e) => matches!(e, SendError::Transient(_)),
            _ => false,
        }
    }
}

/// One queued piece of the daily run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The daily run's "now" (the scheduled time), for every account of the item.
    pub now: DateTime<Utc>,
    pub accounts: Vec<IndexedAccount>,
}

/// The daily run: every account of the index, in work items on the health queue.
pub async fn plan(deps: &Deps, now: DateTime<Utc>) -> Result<Value, HealthError> {
    let shards = deps.config.health_index_shards;
    let mut accounts = Vec::new();
    for shard in 0..shards {
        accounts.extend(deps.store.indexed_accounts(shard, shards).await?);
    }
    accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let items: Vec<String> = accounts
        .chunks(ACCOUNTS_PER_ITEM)
        .map(|chunk| {
            serde_json::to_string(&WorkItem {
                now,
                accounts: chunk.to_vec(),
            })
            .unwrap_or_default()
        })
        .collect();
    deps.queue.enqueue(FUNCTION, &items).await?;
    info!(
        accounts = accounts.len(),
        items = items.len(),
        "health run planned"
    );
    Ok(json!({ "accounts": accounts.len(), "work_items": items.len() }))
}

/// The active and shadow models, validated; the built-in default when none is selected.
pub async fn models(deps: &Deps) -> Result<(HealthModel, Option<HealthModel>), HealthError> {
    let ModelSelection { active, shadow } = deps.store.model_selection().await?;
    let active = match active {
        Some(v) => load_model(deps, &v).await?,
        None => HealthModel::default(),
    };
    let shadow = match shadow {
        Some(v) => Some(load_model(deps, &v).await?),
        None => None,
    };
    Ok((active, shadow))
}

/// A stored model, parsed and validated again (a model is data: the code that reads it may be
/// newer than the code that stored it).
pub async fn load_model(deps: &Deps, version: &str) -> Result<HealthModel, HealthError> {
    let json = deps
        .store
        .model(version)
        .await?
        .ok_or_else(|| HealthError::MissingModel(version.to_string()))?;
    HealthModel::parse(&json).map_err(|error| HealthError::Model {
        version: version.to_string(),
        error,
    })
}

/// The queue worker: scores every account of one work item.
pub async fn score_item(deps: &Deps, body: &str) -> Result<Value, HealthError> {
    let item: WorkItem =
        serde_json::from_str(body).map_err(|e| HealthError::BadWorkItem(e.to_string()))?;
    let (active, shadow) = models(deps).await?;
    let mut scored = 0;
    for account in &item.accounts {
        let span = tracing::info_span!("health_account", account_id = %account.account_id);
        let _guard = span.enter();
        if score_account(deps, &active, shadow.as_ref(), account, item.now)
            .await?
            .is_some()
        {
            scored += 1;
        }
    }
    Ok(json!({ "accounts": item.accounts.len(), "scored": scored }))
}

/// Scores one account and writes its snapshots; `None` when it has no profile yet.
pub async fn score_account(
    deps: &Deps,
    active: &HealthModel,
    shadow: Option<&HealthModel>,
    account: &IndexedAccount,
    now: DateTime<Utc>,
) -> Result<Option<HealthScore>, HealthError> {
    let Some(tz) = profile_tz(deps, &account.account_id).await? else {
        return Ok(None);
    };
    let today = local_day(now, tz);
    let from = today - Duration::days(HISTORY_DAYS);
    let record = deps
        .store
        .health_record(&account.account_id, from, today)
        .await?;
    let Some(current) = score_record(active, &record, account.first_seen, now) else {
        warn!(account_id = %account.account_id, "indexed account without a profile; not scored");
        return Ok(None);
    };
    let ttl = (now + Duration::days(i64::from(deps.config.raw_event_ttl_days))).timestamp();
    deps.store
        .put_snapshot(&snapshot(&account.account_id, &current, false), ttl)
        .await?;
    if let Some(shadow) = shadow
        && let Some(s) = score_record(shadow, &record, account.first_seen, now)
    {
        deps.store
            .put_snapshot(&snapshot(&account.account_id, &s, true), ttl)
            .await?;
    }
    Ok(Some(current))
}

async fn profile_tz(deps: &Deps, account_id: &str) -> Result<Option<chrono_tz::Tz>, HealthError> {
    Ok(deps
        .store
        .account(account_id)
        .await?
        .and_then(|a| a.profile)
        .map(|p| p.timezone))
}

/// The score of a stored record under `model`: the pure core over the store's shapes.
pub fn score_record(
    model: &HealthModel,
    record: &HealthRecord,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<HealthScore> {
    let account = record.account.as_ref()?;
    let profile = account.profile.as_ref()?;
    let usage: Vec<DayUsage> = record
        .days
        .iter()
        .map(|d| DayUsage {
            day: d.day,
            logins: d.logins,
            reports: d.reports,
            features: d.features.clone(),
            active_contacts: d.active_contacts.clone(),
        })
        .collect();
    let steps: BTreeSet<String> = record
        .firsts
        .keys()
        .filter_map(|k| k.strip_prefix("step_"))
        .map(str::to_string)
        .collect();
    let ticket = |t: &TicketState| Ticket {
        id: t.ticket_id.clone(),
        severity: t.severity,
        opened_at: t.opened_at,
    };
    let open: Vec<Ticket> = record
        .satisfaction
        .tickets
        .iter()
        .filter(|t| t.closed_at.is_none_or(|c| c > now))
        .map(ticket)
        .collect();
    let recent: Vec<Ticket> = record.satisfaction.tickets.iter().map(ticket).collect();
    let nps: Vec<NpsResponse> = record
        .satisfaction
        .nps
        .iter()
        .map(|a| NpsResponse {
            score: a.score,
            at: a.at,
            comment: a.comment.clone(),
        })
        .collect();
    let inputs = HealthInputs {
        profile,
        first_seen,
        usage: &usage,
        onboarding_steps_done: &steps,
        first_report: record.firsts.contains_key("report"),
        open_tickets: &open,
        recent_tickets: &recent,
        nps: &nps,
        admin_changed_at: account.admin_changed_at,
        now,
    };
    Some(score(model, &inputs))
}

fn snapshot(account_id: &str, s: &HealthScore, shadow: bool) -> HealthSnapshot {
    HealthSnapshot {
        account_id: account_id.to_string(),
        day: s.day,
        model_version: s.model_version.clone(),
        shadow,
        score: s.score,
        band: s.band.as_str().to_string(),
        provisional: s.provisional,
        detail: serde_json::to_string(s).unwrap_or_default(),
    }
}

/// The stored score of a snapshot.
pub fn parse_snapshot(s: &HealthSnapshot) -> Option<HealthScore> {
    serde_json::from_str(&s.detail).ok()
}
