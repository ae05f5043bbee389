//! The `milestones` feature's I/O. Three entry points, all planning nudges for the sweep:
//! - at ingest, an `account_upserted` of a new customer puts its program on the agenda (the
//!   welcome, the checks on days 7, 14, 21 and 28), once per account;
//! - at ingest, new firsts (recorded by the store's conditional first write) earn their
//!   congratulations;
//! - hourly, the run reads the agenda tasks due since its checkpoint and plans each one: its
//!   cost follows the tasks due, not the accounts stored.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{Instrument, error, info, warn};

use super::program::{
    self, Audience, First, Progress, Task, admin_of, check_nudges, is_new_customer,
    local_day_start, milestone_nudges, standing, welcome_nudges,
};
use crate::Deps;
use crate::domain::Nudge;
use crate::events::{AccountProfile, Event, EventPayload, NewFirst};
use crate::health::HealthModel;
use crate::health::service::{HealthError, models};
use crate::store::{AccountRecord, AgendaTask, ContactRecord, StoreError};

/// The function that runs hourly.
pub const FUNCTION: &str = program::FUNCTION;
/// The hourly run looks this far before its checkpoint again (a task scheduled late, a run
/// that overlapped).
pub const LOOK_BACK: Duration = Duration::hours(1);
/// The oldest task a run ever looks for (bounds a first run or a long outage).
pub const MAX_SCAN: Duration = Duration::days(8);

#[derive(Debug, Error)]
pub enum MilestonesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the onboarding steps and key features come from the health model: {0}")]
    Model(HealthError),
}

impl MilestonesError {
    pub fn is_retryable(&self) -> bool {
        match self {
            MilestonesError::Store(e) => e.is_retryable(),
            MilestonesError::Model(e) => e.is_retryable(),
        }
    }
}

async fn model(deps: &Deps) -> Result<HealthModel, MilestonesError> {
    match models(deps.store.as_ref()).await {
        Ok((active, _)) => Ok(active),
        Err(HealthError::Store(e)) => Err(MilestonesError::Store(e)),
        Err(e) => Err(MilestonesError::Model(e)),
    }
}

/// Whether the program applies: a new customer (its contract started at most
/// `welcome_max_age_days` before Nudge first heard of it).
async fn new_customer(
    deps: &Deps,
    account_id: &str,
    profile: &AccountProfile,
) -> Result<bool, StoreError> {
    let Some(indexed) = deps
        .store
        .indexed_account(account_id, deps.config.health_index_shards)
        .await?
    else {
        return Ok(false);
    };
    Ok(is_new_customer(
        profile.contract_start,
        indexed.first_seen,
        profile.timezone,
        deps.config.welcome_max_age_days,
    ))
}

/// Ingest hook: a new customer's `account_upserted` puts its program on the agenda.
pub async fn on_event(deps: &Deps, event: &Event, now: DateTime<Utc>) -> Result<(), StoreError> {
    let EventPayload::AccountUpserted(profile) = &event.payload else {
        return Ok(());
    };
    // An account whose program would long be over needs no read to say so.
    let local_today = now.with_timezone(&profile.timezone).date_naive();
    let program_end = profile.contract_start + Duration::days(program::PROGRAM_DAYS);
    if program_end < local_today {
        return Ok(());
    }
    let account_id = event.account_id.as_str();
    if !new_customer(deps, account_id, profile).await? {
        return Ok(());
    }
    for (task, due_at) in program::program(profile.contract_start, profile.timezone, now) {
        let task = AgendaTask {
            account_id: account_id.to_string(),
            task: task.name(),
            due_at,
        };
        deps.store
            .schedule_task(&task, deps.config.due_shards)
            .await?;
    }
    Ok(())
}

async fn plan(deps: &Deps, nudges: &[Nudge]) -> Result<usize, StoreError> {
    let mut created = 0;
    for n in nudges {
        if deps.store.put_nudge(n, deps.config.due_shards).await? {
            created += 1;
        }
    }
    Ok(created)
}

/// Firsts hook: congratulations for the new firsts of a new customer in onboarding.
pub async fn on_firsts(
    deps: &Deps,
    account_id: &str,
    firsts: &[NewFirst<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let relevant: Vec<First<'_>> = firsts
        .iter()
        .filter(|f| {
            f.key.starts_with("feature_") || f.key.starts_with("step_") || f.key == "report"
        })
        .map(|f| First {
            key: f.key,
            contact_id: f.event.contact_id.as_deref(),
        })
        .collect();
    if relevant.is_empty() {
        return Ok(());
    }
    let Some(AccountRecord {
        profile: Some(profile),
        admin_contact_id,
        ..
    }) = deps.store.account(account_id).await?
    else {
        return Ok(());
    };
    let model = match model(deps).await {
        Ok(m) => m,
        Err(MilestonesError::Store(e)) => return Err(e),
        Err(e) => {
            // The hourly run fails on the same model, loudly; the events themselves are kept.
            error!(account_id, error = %e, "no usable model; milestones not planned");
            return Ok(());
        }
    };
    let onboarding_end = profile.contract_start + Duration::days(model.thresholds.onboarding_days);
    if now.with_timezone(&profile.timezone).date_naive() > onboarding_end
        || !new_customer(deps, account_id, &profile).await?
    {
        return Ok(());
    }
    let all = deps.store.firsts(account_id).await?;
    let mut without = all.clone();
    for f in &relevant {
        without.remove(f.key);
    }
    let steps = model.onboarding_steps(&profile.plan);
    let before = Progress::from_firsts(steps, &without);
    let after = Progress::from_firsts(steps, &all);
    let contacts = if after.complete() && !before.complete() {
        deps.store.contacts(account_id).await?
    } else {
        Vec::new()
    };
    let members: Vec<_> = contacts.iter().filter_map(ContactRecord::member).collect();
    let to = Audience {
        account_id,
        admin: admin_of(admin_contact_id.as_deref(), &members),
        members: &members,
        now,
    };
    let nudges = milestone_nudges(
        &to,
        &relevant,
        model.key_features(&profile.plan),
        &before,
        &after,
    );
    plan(deps, &nudges).await?;
    Ok(())
}

/// The hourly run: every agenda task due since the last run, planned and finished.
pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Result<Value, MilestonesError> {
    let store = &deps.store;
    let checkpoint = store.checkpoint(FUNCTION).await?.unwrap_or(now);
    let from = (checkpoint.min(now) - LOOK_BACK).max(now - MAX_SCAN);
    let tasks = store.due_tasks(from, now, deps.config.due_shards).await?;
    let mut planned = 0;
    if !tasks.is_empty() {
        let model = model(deps).await?;
        for task in &tasks {
            let span =
                tracing::info_span!("task", account_id = %task.account_id, task = %task.task);
            planned += run_task(deps, &model, task, now).instrument(span).await?;
        }
    }
    store.set_checkpoint(FUNCTION, now).await?;
    info!(tasks = tasks.len(), planned, "milestones run");
    Ok(json!({ "tasks": tasks.len(), "nudges": planned }))
}

async fn run_task(
    deps: &Deps,
    model: &HealthModel,
    task: &AgendaTask,
    now: DateTime<Utc>,
) -> Result<usize, MilestonesError> {
    let store = &deps.store;
    let account = store.account(&task.account_id).await?;
    let account_churned = account.as_ref().is_some_and(AccountRecord::churned);
    let (
        Some(which),
        Some(AccountRecord {
            profile: Some(profile),
            admin_contact_id,
            ..
        }),
    ) = (Task::parse(&task.task), account)
    else {
        warn!("agenda task without a known task or account profile; finished");
        store.finish_task(&task.account_id, &task.task, now).await?;
        return Ok(0);
    };
    if account_churned {
        store.finish_task(&task.account_id, &task.task, now).await?;
        return Ok(0);
    }
    let firsts = store.firsts(&task.account_id).await?;
    let progress = Progress::from_firsts(model.onboarding_steps(&profile.plan), &firsts);
    let contacts = store.contacts(&task.account_id).await?;
    let members: Vec<_> = contacts.iter().filter_map(ContactRecord::member).collect();
    let to = Audience {
        account_id: &task.account_id,
        admin: admin_of(admin_contact_id.as_deref(), &members),
        members: &members,
        now,
    };
    let nudges = match which {
        Task::Welcome => welcome_nudges(&to, &progress),
        Task::Check(day) => {
            let start = local_day_start(profile.contract_start, 0, profile.timezone);
            check_nudges(&to, day, standing(&progress, day, start, now), &progress)
        }
    };
    let created = plan(deps, &nudges).await?;
    store.finish_task(&task.account_id, &task.task, now).await?;
    Ok(created)
}
