//! The `health` feature's I/O: the daily run enqueues one work item per account-index shard on
//! the function's own queue; the queue worker walks its shard page by page, scores each account
//! with the active model (and the shadow model, if one is selected), writes one snapshot per
//! account, model and local day, and runs the tier's playbook (`actions`): it plans nudges,
//! which the one delivery sweep sends (CSM alerts on its next run, customer emails in the
//! recipient's business hours). A worker that has scored [`ACCOUNTS_PER_MESSAGE`] accounts
//! hands the rest of its shard on as a new work item, so no invocation nears its timeout.
//! Reads per account: its profile, playbook state and satisfaction (one Query), its daily
//! rollups and firsts; never its raw events.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{Instrument, error, info, warn};

use super::actions::{self, Facts};
use super::model::HISTORY_DAYS;
use super::score;
use super::{
    DayUsage, HealthInputs, HealthModel, HealthScore, ModelError, NpsResponse, Ticket, diff,
};
use crate::Deps;
use crate::channels::SendError;
use crate::domain::Nudge;
use crate::events::{Event, EventPayload};
use crate::store::{
    AccountRecord, ContactRecord, HealthPulse, HealthRecord, HealthSnapshot, HealthStore,
    IndexedAccount, ModelSelection, StoreError, TicketState,
};

/// The function that runs the daily score.
pub const FUNCTION: &str = "health";
/// Accounts one work item scores before it hands the rest of its shard on: at the measured
/// in-process rate this is seconds of work, far inside the function's timeout.
pub const ACCOUNTS_PER_MESSAGE: usize = 1_000;
/// Accounts of a page scored at once: their reads and writes overlap.
pub const CONCURRENCY: usize = 8;
/// Accounts per index read.
const PAGE: usize = 100;
/// How far back the previous score is looked for when a band changes (for the alert's "was").
const PREVIOUS_SCORE_DAYS: i64 = 7;

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
            HealthError::Queue(e) => {
                matches!(e, SendError::Transient(_) | SendError::Throttled(_))
            }
            _ => false,
        }
    }
}

/// One queued piece of the daily run: a shard of the account index, from `after` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The daily run's "now" (the scheduled time), for every account of the shard.
    pub now: DateTime<Utc>,
    pub shard: u32,
    pub shards: u32,
    /// The last account already scored by an earlier item of this shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

fn encode_item(item: &WorkItem) -> Result<String, HealthError> {
    serde_json::to_string(item).map_err(|e| HealthError::BadWorkItem(e.to_string()))
}

/// The daily run: one work item per account-index shard on the health queue.
pub async fn plan(deps: &Deps, now: DateTime<Utc>) -> Result<Value, HealthError> {
    let shards = deps.config.health_index_shards;
    let items = (0..shards)
        .map(|shard| {
            encode_item(&WorkItem {
                now,
                shard,
                shards,
                after: None,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    deps.queue.enqueue(FUNCTION, &items).await?;
    info!(shards, "health run planned");
    Ok(json!({ "work_items": items.len() }))
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

/// The queue worker: scores one shard from where its item starts, and hands the rest on.
pub async fn score_item(deps: &Deps, body: &str) -> Result<Value, HealthError> {
    let item: WorkItem =
        serde_json::from_str(body).map_err(|e| HealthError::BadWorkItem(e.to_string()))?;
    let (active, shadow) = models(deps.store.as_ref()).await?;
    let ctx = Run {
        deps,
        active: &active,
        shadow: shadow.as_ref(),
        now: item.now,
    };
    let mut after = item.after.clone();
    let (mut seen, mut scored, mut planned) = (0usize, 0usize, 0usize);
    loop {
        let page = deps
            .store
            .indexed_accounts_page(item.shard, item.shards, after.as_deref(), PAGE)
            .await?;
        // Futures built first: a stream `map` over borrowed accounts trips the compiler's
        // `Send` inference for the Lambda handler's future.
        let scoring: Vec<_> = page
            .accounts
            .iter()
            .map(|account| {
                let span = tracing::info_span!("health_account", account_id = %account.account_id);
                ctx.score_account(account).instrument(span)
            })
            .collect();
        let outcomes: Vec<Scored> = futures::stream::iter(scoring)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        seen += page.accounts.len();
        scored += outcomes.iter().filter(|o| o.score.is_some()).count();
        planned += outcomes.iter().map(|o| o.nudges).sum::<usize>();
        after = page.next;
        let Some(last) = &after else { break };
        if seen >= ACCOUNTS_PER_MESSAGE {
            let rest = encode_item(&WorkItem {
                after: Some(last.clone()),
                ..item.clone()
            })?;
            deps.queue.enqueue(FUNCTION, &[rest]).await?;
            break;
        }
    }
    Ok(json!({
        "shard": item.shard,
        "accounts": seen,
        "scored": scored,
        "nudges": planned,
        "handed_on": after.is_some(),
    }))
}

/// What scoring one account did.
struct Scored {
    score: Option<HealthScore>,
    /// Nudges its playbook planned (new or found already planned by an earlier try).
    nudges: usize,
}

/// One work item's fixed context.
struct Run<'a> {
    deps: &'a Deps,
    active: &'a HealthModel,
    shadow: Option<&'a HealthModel>,
    now: DateTime<Utc>,
}

impl Run<'_> {
    /// Scores one account, writes its snapshots, then runs its playbook.
    async fn score_account(&self, account: &IndexedAccount) -> Result<Scored, HealthError> {
        let (deps, now) = (self.deps, self.now);
        // Days wide enough for any zone's local today (UTC-14 to UTC+14): the score itself
        // counts only the complete local days before today, so no profile read is needed to
        // pick them.
        let from = now.date_naive() - Duration::days(HISTORY_DAYS + 1);
        let to = now.date_naive() + Duration::days(1);
        let record = deps
            .store
            .health_record(&account.account_id, from, to)
            .await?;
        // Built once: the active score, the shadow score and the plays all read it.
        let usage = usage_of(&record);
        let Some(current) = score_with(self.active, &record, &usage, account.first_seen, now)
        else {
            warn!(account_id = %account.account_id, "indexed account without a profile; not scored");
            return Ok(Scored {
                score: None,
                nudges: 0,
            });
        };
        let ttl = (now + Duration::days(i64::from(deps.config.raw_event_ttl_days))).timestamp();
        deps.store
            .put_snapshot(&snapshot(&account.account_id, &current, false), ttl)
            .await?;
        if let Some(shadow) = self.shadow
            && let Some(s) = score_with(shadow, &record, &usage, account.first_seen, now)
        {
            deps.store
                .put_snapshot(&snapshot(&account.account_id, &s, true), ttl)
                .await?;
        }
        let nudges = self
            .act(&account.account_id, &record, &usage, &current)
            .await?;
        Ok(Scored {
            score: Some(current),
            nudges,
        })
    }

    /// The playbook of one scored account: plans its nudges (once: deterministic ids), then
    /// moves its pulse. A crash anywhere before the pulse is written makes the next try find
    /// the same change and plan the same ids, which the store records once.
    async fn act(
        &self,
        account_id: &str,
        record: &HealthRecord,
        usage: &[DayUsage],
        score: &HealthScore,
    ) -> Result<usize, HealthError> {
        let Some(profile) = record.account.as_ref().and_then(|a| a.profile.as_ref()) else {
            return Ok(0);
        };
        // A churned account is still scored (the backtest needs its history), never played.
        if record.account.as_ref().is_some_and(AccountRecord::churned) {
            return Ok(0);
        }
        let model = self.active;
        let (change, mut pulse) = actions::band_change(&record.pulse, score);
        let change = change.filter(|c| c.trigger().is_some());
        let moved = match &change {
            Some(_) => self
                .previous_score(account_id, score)
                .await?
                .map(|before| diff(&before, score)),
            None => None,
        };
        let latest_nps = record.satisfaction.nps.first().map(|a| NpsResponse {
            score: a.score,
            at: a.at,
            comment: a.comment.clone(),
        });
        let facts = Facts {
            account_id,
            profile,
            score,
            change: moved.as_ref(),
            latest_nps: latest_nps.as_ref(),
            usage,
            now: self.now,
        };
        let mut nudges: Vec<Nudge> = Vec::new();
        if let Some(change) = &change {
            nudges.extend(actions::band_nudges(model, change, &facts));
        }
        if let Some(renewal) = actions::upsell_due(model, profile, score, &record.pulse) {
            let contacts = self.deps.store.contacts(account_id).await?;
            let members: Vec<_> = contacts.iter().filter_map(ContactRecord::member).collect();
            let admin = record
                .account
                .as_ref()
                .and_then(|a| a.admin_contact_id.as_deref());
            nudges.extend(actions::upsell_nudges(
                model, &facts, renewal, admin, &members,
            ));
            pulse = Some(HealthPulse {
                upsell_for: Some(renewal),
                ..pulse.unwrap_or_else(|| record.pulse.clone())
            });
        }
        for nudge in &nudges {
            self.deps
                .store
                .put_nudge(nudge, self.deps.config.due_shards)
                .await?;
        }
        if let Some(pulse) = pulse {
            self.deps.store.put_pulse(account_id, &pulse).await?;
        }
        Ok(nudges.len())
    }

    /// The latest active-model score before `score`'s day, within a week.
    async fn previous_score(
        &self,
        account_id: &str,
        score: &HealthScore,
    ) -> Result<Option<HealthScore>, HealthError> {
        let day = score.day;
        let snaps = self
            .deps
            .store
            .snapshots(
                account_id,
                day - Duration::days(PREVIOUS_SCORE_DAYS),
                day - Duration::days(1),
            )
            .await?;
        Ok(snaps
            .iter()
            .rev()
            .find(|s| !s.shadow)
            .and_then(parse_snapshot))
    }
}

/// At ingest, a new admin: the tier's `admin_changed` plays (a welcome to the new admin, an
/// alert to the CSM), planned once per new admin and delivered by the sweep. Not for the first
/// admin an account names (that is onboarding, not a change), nor for a provisional account.
pub async fn on_admin_changed(
    deps: &Deps,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (
        EventPayload::AdminChanged {
            previous_contact_id: Some(previous),
        },
        Some(new_admin),
    ) = (&event.payload, event.contact_id.as_deref())
    else {
        return Ok(());
    };
    if previous == new_admin {
        return Ok(());
    }
    let store = deps.store.as_ref();
    let account_id = event.account_id.as_str();
    let model = match models(store).await {
        Ok((active, _)) => active,
        Err(HealthError::Store(e)) => return Err(e),
        Err(e) => {
            // The daily run fails on the same model, loudly; the event itself is kept.
            error!(account_id, error = %e, "no usable health model; admin change not acted on");
            return Ok(());
        }
    };
    let Some(profile) = store.account(account_id).await?.and_then(|a| a.profile) else {
        return Ok(());
    };
    let first_seen = store
        .indexed_account(account_id, deps.config.health_index_shards)
        .await?
        .map(|a| a.first_seen);
    let provisional =
        first_seen.is_none_or(|t| now - t < Duration::days(model.thresholds.provisional_days));
    if provisional {
        return Ok(());
    }
    for nudge in actions::admin_nudges(&model, account_id, &profile, new_admin, now) {
        deps.store.put_nudge(&nudge, deps.config.due_shards).await?;
    }
    Ok(())
}

/// The usage days of a stored record, as the score reads them.
fn usage_of(record: &HealthRecord) -> Vec<DayUsage> {
    record
        .days
        .iter()
        .map(|d| DayUsage {
            day: d.day,
            logins: d.logins,
            reports: d.reports,
            features: d.features.clone(),
            active_contacts: d.active_contacts.clone(),
        })
        .collect()
}

/// The score of a stored record under `model`: the pure core over the store's shapes.
pub fn score_record(
    model: &HealthModel,
    record: &HealthRecord,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<HealthScore> {
    score_with(model, record, &usage_of(record), first_seen, now)
}

/// [`score_record`] over the record's usage days already built.
fn score_with(
    model: &HealthModel,
    record: &HealthRecord,
    usage: &[DayUsage],
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<HealthScore> {
    let account = record.account.as_ref()?;
    let profile = account.profile.as_ref()?;
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
        usage,
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
                paused_until: None,
                pause_reason: None,
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
