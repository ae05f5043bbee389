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
use tracing::{Instrument, info, warn};

use super::model::HISTORY_DAYS;
use super::score;
use super::{DayUsage, HealthInputs, HealthModel, HealthScore, ModelError, NpsResponse, Ticket};
use crate::Deps;
use crate::channels::SendError;
use crate::store::{
    HealthRecord, HealthSnapshot, HealthStore, IndexedAccount, ModelSelection, StoreError,
    TicketState,
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
    #[error("model {0} is not stored")]
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
    let accounts = all_accounts(deps.store.as_ref(), deps.config.health_index_shards).await?;
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

/// Every account of the account index, by id.
pub async fn all_accounts<S: HealthStore + ?Sized>(
    store: &S,
    shards: u32,
) -> Result<Vec<IndexedAccount>, HealthError> {
    let mut accounts = Vec::new();
    for shard in 0..shards {
        accounts.extend(store.indexed_accounts(shard, shards).await?);
    }
    accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    Ok(accounts)
}

/// The active and shadow models, validated; the built-in default when none is selected.
pub async fn models<S: HealthStore + ?Sized>(
    store: &S,
) -> Result<(HealthModel, Option<HealthModel>), HealthError> {
    let ModelSelection { active, shadow } = store.model_selection().await?;
    let active = match active {
        Some(v) => load_model(store, &v).await?,
        None => HealthModel::default(),
    };
    let shadow = match shadow {
        Some(v) => Some(load_model(store, &v).await?),
        None => None,
    };
    Ok((active, shadow))
}

/// A stored model, parsed and validated again (a model is data: the code that reads it may be
/// newer than the code that stored it).
pub async fn load_model<S: HealthStore + ?Sized>(
    store: &S,
    version: &str,
) -> Result<HealthModel, HealthError> {
    let json = store
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
    let (active, shadow) = models(deps.store.as_ref()).await?;
    let mut scored = 0;
    for account in &item.accounts {
        let span = tracing::info_span!("health_account", account_id = %account.account_id);
        if score_account(deps, &active, shadow.as_ref(), account, item.now)
            .instrument(span)
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
    // Days wide enough for any zone's local today (UTC-14 to UTC+14): the score itself counts
    // only the complete local days before today, so no profile read is needed to pick them.
    let from = now.date_naive() - Duration::days(HISTORY_DAYS + 1);
    let to = now.date_naive() + Duration::days(1);
    let record = deps
        .store
        .health_record(&account.account_id, from, to)
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

/// A score as its snapshot keeps it: one row per driver, families left to be recomputed. A day's
/// snapshot is written for every account every day, and DynamoDB bills a write unit per KB.
#[derive(Serialize, Deserialize)]
struct StoredScore {
    model: String,
    at: DateTime<Utc>,
    day: chrono::NaiveDate,
    score: u8,
    band: super::Band,
    tier: crate::domain::Tier,
    tier_source: super::TierSource,
    phase: super::Phase,
    active: bool,
    provisional: bool,
    /// (factor, value, versus, subscore, weight, points, missing, triggered).
    drivers: Vec<StoredDriver>,
}

type StoredDriver = (
    super::Factor,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    f64,
    f64,
    bool,
    bool,
);

fn encode(s: &HealthScore) -> String {
    let stored = StoredScore {
        model: s.model_version.clone(),
        at: s.at,
        day: s.day,
        score: s.score,
        band: s.band,
        tier: s.tier,
        tier_source: s.tier_source,
        phase: s.phase,
        active: s.active,
        provisional: s.provisional,
        drivers: s
            .drivers
            .iter()
            .map(|d| {
                (
                    d.factor,
                    d.value,
                    d.versus,
                    d.subscore,
                    d.weight,
                    d.points,
                    d.missing,
                    d.triggered,
                )
            })
            .collect(),
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

fn decode(detail: &str) -> Option<HealthScore> {
    let s: StoredScore = serde_json::from_str(detail).ok()?;
    let drivers = s
        .drivers
        .into_iter()
        .map(
            |(factor, value, versus, subscore, weight, points, missing, triggered)| super::Driver {
                factor,
                family: factor.family(),
                missing,
                triggered,
                value,
                versus,
                subscore,
                weight,
                points,
            },
        )
        .collect();
    Some(
        HealthScore {
            model_version: s.model,
            at: s.at,
            day: s.day,
            score: s.score,
            band: s.band,
            tier: s.tier,
            tier_source: s.tier_source,
            phase: s.phase,
            active: s.active,
            provisional: s.provisional,
            families: Vec::new(),
            drivers,
        }
        .restored(),
    )
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
        detail: encode(s),
    }
}

/// The stored score of a snapshot.
pub fn parse_snapshot(s: &HealthSnapshot) -> Option<HealthScore> {
    decode(&s.detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AccountProfile, Locale};
    use crate::store::{AccountRecord, DayRollup};

    #[test]
    fn a_snapshot_is_under_1_5_kb_and_reads_back_the_same_score() {
        let t = |d: i64| {
            DateTime::parse_from_rfc3339("2026-11-30T18:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                - Duration::days(d)
        };
        let profile = AccountProfile {
            name: "Acme".into(),
            plan: "premium".into(),
            industry: "retail".into(),
            tier: None,
            csm: None,
            timezone: chrono_tz::Asia::Tokyo,
            locale: Locale::Ja,
            contract_start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            renewal_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            renewals: 1,
            arr: 30000.0,
        };
        let days = (1..=40)
            .map(|d| DayRollup {
                day: (t(d) + Duration::hours(9)).date_naive(),
                logins: 2,
                reports: 1,
                features: [("dashboard".to_string(), 3)].into(),
                active_contacts: ["u1".to_string()].into(),
                ..Default::default()
            })
            .collect();
        let record = HealthRecord {
            account: Some(AccountRecord {
                account_id: "acme".into(),
                profile: Some(profile),
                profile_at: None,
                paused: false,
                paused_at: None,
                admin_contact_id: None,
                admin_changed_at: Some(t(3)),
                churned_at: None,
                renewed_at: None,
            }),
            days,
            ..Default::default()
        };
        let score = score_record(&HealthModel::default(), &record, t(100), t(0)).unwrap();
        let snap = snapshot("acme", &score, false);
        assert!(snap.detail.len() < 1500, "{} bytes", snap.detail.len());
        let back = parse_snapshot(&snap).unwrap();
        assert_eq!(back.drivers, score.drivers);
        assert_eq!(
            (back.score, back.band, back.day),
            (score.score, score.band, score.day)
        );
        for (a, b) in back.families.iter().zip(&score.families) {
            assert_eq!((a.family, a.missing), (b.family, b.missing));
            assert!((a.points - b.points).abs() < 0.1, "{a:?} {b:?}");
        }
        assert_eq!(back.families.len(), score.families.len());
    }
}
