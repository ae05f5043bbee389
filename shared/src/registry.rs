//! The feature registry: one entry per Lambda function, read by the binaries, `nudge simulate`
//! and the template test, so adding a function means a feature module, an entry here, a thin
//! binary and its template resources, nothing else.
//!
//! A feature plans nudges; it never sends. Its entry says when it runs (cron, identical to
//! template.yaml), what it does at ingest (a hook called for every new event), and which
//! variables its nudge kinds need when they are rendered. The 15-minute function also runs the
//! one owner-agnostic delivery sweep, which sends every due nudge whoever planned it.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::{Map, Value, json};
use thiserror::Error;
use tracing::{Instrument, warn};

use crate::Deps;
use crate::channels::MemoryQueue;
use crate::delivery;
use crate::domain::{Nudge, NudgeKind, RecipientContext};
use crate::events::Event;
use crate::health;
use crate::milestones;
use crate::reminders;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum ScheduledError {
    #[error("scheduled event has no `time`; cannot tell what \"now\" is")]
    MissingTime,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Delivery(#[from] delivery::DeliveryError),
    #[error("work was queued for {0}, which has no queue worker")]
    NoWorker(String),
    #[error("bad work item: {0}")]
    BadWorkItem(String),
    #[error("could not enqueue work: {0}")]
    Enqueue(#[from] crate::channels::SendError),
    #[error(transparent)]
    Health(#[from] health::service::HealthError),
    #[error(transparent)]
    Milestones(#[from] milestones::service::MilestonesError),
}

impl ScheduledError {
    /// Whether Lambda's retry of the invocation can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScheduledError::MissingTime => false,
            ScheduledError::Store(e) => e.is_retryable(),
            ScheduledError::Delivery(e) => e.is_retryable(),
            ScheduledError::NoWorker(_) | ScheduledError::BadWorkItem(_) => false,
            ScheduledError::Enqueue(e) => matches!(
                e,
                crate::channels::SendError::Transient(_) | crate::channels::SendError::Throttled(_)
            ),
            ScheduledError::Health(e) => e.is_retryable(),
            ScheduledError::Milestones(e) => e.is_retryable(),
        }
    }
}

impl From<ScheduledError> for lambda_runtime::Diagnostic {
    fn from(e: ScheduledError) -> Self {
        let error_type = match (&e, e.is_retryable()) {
            (ScheduledError::MissingTime, _) => "NonRetryable.MissingTime",
            (_, true) => "Retryable.StoreUnavailable",
            (_, false) => "NonRetryable.RunFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ScheduledError>> + Send + 'a>>;
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// A feature's scheduled work; gets "now" from the scheduled event and a run id unique per
/// invocation (the Lambda request id), the owner of any lease it takes.
pub type ScheduledRun = for<'a> fn(&'a Deps, DateTime<Utc>, &'a str) -> RunFuture<'a>;
/// Takes one work item of the function's queue (its body, which carries the run's "now").
pub type QueueWorker = for<'a> fn(&'a Deps, &'a str) -> RunFuture<'a>;
/// Called by ingest for every new (not duplicate) event, after the event's own state change;
/// must be idempotent (a client retry after a partial failure calls it again).
pub type IngestHook = for<'a> fn(&'a Deps, &'a Event, DateTime<Utc>) -> HookFuture<'a>;

pub use crate::events::NewFirst;

/// Called by ingest with one account's new firsts of a batch; must be idempotent (if it fails,
/// ingest forgets those firsts and the client's resend records and hands them over again).
pub type FirstsHook =
    for<'a> fn(&'a Deps, &'a str, &'a [NewFirst<'a>], DateTime<Utc>) -> HookFuture<'a>;

pub use crate::events::ZoneChange;

/// Called by ingest when an applied event changed whose time zone counts in an account (and
/// again on a client's resend of that event); must be idempotent.
pub type ZoneHook = for<'a> fn(&'a Deps, &'a str, &'a ZoneChange, DateTime<Utc>) -> HookFuture<'a>;

/// When a function runs and what it does.
pub struct Feature {
    /// The function (binary and template resource) name.
    pub name: &'static str,
    /// EventBridge cron expression, identical to template.yaml's; `None` = not scheduled.
    pub schedule: Option<&'static str>,
    /// The feature's own scheduled work (planning), if any.
    pub run: Option<ScheduledRun>,
    /// Whether this function's scheduled run ends with the delivery sweep.
    pub sweeps: bool,
    /// Work its scheduled run fanned out over its own queue (`Deps::queue`).
    pub queue_worker: Option<QueueWorker>,
    pub ingest_hook: Option<IngestHook>,
    pub firsts_hook: Option<FirstsHook>,
    pub zone_hook: Option<ZoneHook>,
    /// The kinds this feature plans that need variables computed at render time.
    pub render_vars: Option<(&'static [NudgeKind], crate::domain::ExtraVars)>,
}

const INGEST: Feature = Feature {
    name: "ingest",
    schedule: None,
    run: None,
    sweeps: false,
    queue_worker: None,
    ingest_hook: None,
    firsts_hook: None,
    zone_hook: None,
    render_vars: None,
};

const REMINDERS: Feature = Feature {
    name: reminders::service::FUNCTION,
    schedule: Some("cron(0/15 * * * ? *)"),
    run: None,
    sweeps: true,
    queue_worker: None,
    ingest_hook: Some(reminders_hook),
    firsts_hook: None,
    zone_hook: Some(reminders_zone_hook),
    render_vars: Some((
        &[NudgeKind::DeadlineReminder],
        reminders::service::render_vars,
    )),
};

/// The daily health score: the run queues one work item per account-index shard; the queue
/// worker scores the shard's accounts and plans their playbooks' nudges (`health::service`),
/// which the sweep delivers; a new admin is acted on at ingest. 03:00 in Tokyo.
const HEALTH: Feature = Feature {
    name: health::service::FUNCTION,
    schedule: Some("cron(0 18 * * ? *)"),
    run: Some(health_run),
    sweeps: false,
    queue_worker: Some(health_worker),
    ingest_hook: Some(health_hook),
    firsts_hook: None,
    zone_hook: None,
    render_vars: None,
};

/// Milestones and the onboarding program: new customers' programs go on the agenda at ingest,
/// firsts are congratulated at ingest, and the hourly run plans the agenda's due tasks
/// (`milestones::service`).
const MILESTONES: Feature = Feature {
    name: milestones::service::FUNCTION,
    schedule: Some("cron(0 * * * ? *)"),
    run: Some(milestones_run),
    sweeps: false,
    queue_worker: None,
    ingest_hook: Some(milestones_hook),
    firsts_hook: Some(milestones_firsts),
    zone_hook: None,
    render_vars: None,
};

fn milestones_run<'a>(deps: &'a Deps, now: DateTime<Utc>, _run_id: &'a str) -> RunFuture<'a> {
    Box::pin(async move { Ok(milestones::service::run(deps, now).await?) })
}

fn milestones_hook<'a>(deps: &'a Deps, event: &'a Event, now: DateTime<Utc>) -> HookFuture<'a> {
    Box::pin(milestones::service::on_event(deps, event, now))
}

fn milestones_firsts<'a>(
    deps: &'a Deps,
    account_id: &'a str,
    firsts: &'a [NewFirst<'a>],
    now: DateTime<Utc>,
) -> HookFuture<'a> {
    Box::pin(milestones::service::on_firsts(
        deps, account_id, firsts, now,
    ))
}

fn health_run<'a>(deps: &'a Deps, now: DateTime<Utc>, _run_id: &'a str) -> RunFuture<'a> {
    Box::pin(async move { Ok(health::service::plan(deps, now).await?) })
}

fn health_worker<'a>(deps: &'a Deps, body: &'a str) -> RunFuture<'a> {
    Box::pin(async move { Ok(health::service::score_item(deps, body).await?) })
}

fn health_hook<'a>(deps: &'a Deps, event: &'a Event, now: DateTime<Utc>) -> HookFuture<'a> {
    Box::pin(health::service::on_admin_changed(deps, event, now))
}

fn reminders_hook<'a>(deps: &'a Deps, event: &'a Event, now: DateTime<Utc>) -> HookFuture<'a> {
    Box::pin(reminders::service::on_deadline_event(deps, event, now))
}

fn reminders_zone_hook<'a>(
    deps: &'a Deps,
    account_id: &'a str,
    change: &'a ZoneChange,
    now: DateTime<Utc>,
) -> HookFuture<'a> {
    Box::pin(reminders::service::on_zone_change(
        deps, account_id, change, now,
    ))
}

/// Every function, in the order simulate runs them when they fire at the same minute.
pub fn registry() -> &'static [Feature] {
    &[INGEST, HEALTH, MILESTONES, REMINDERS]
}

pub fn find(name: &str) -> Option<&'static Feature> {
    registry().iter().find(|f| f.name == name)
}

/// The render variables of every feature, for the kind of `nudge`.
pub fn render_vars(nudge: &Nudge, to: &RecipientContext, now: DateTime<Utc>) -> Map<String, Value> {
    registry()
        .iter()
        .filter_map(|f| f.render_vars)
        .filter(|(kinds, _)| kinds.contains(&nudge.kind))
        .flat_map(|(_, vars)| vars(nudge, to, now))
        .collect()
}

/// Runs every feature's ingest hook for one new event.
pub async fn on_ingest(deps: &Deps, event: &Event, now: DateTime<Utc>) -> Result<(), StoreError> {
    for hook in registry().iter().filter_map(|f| f.ingest_hook) {
        hook(deps, event, now).await?;
    }
    Ok(())
}

/// Runs every feature's zone hook for one account's zone change.
pub async fn on_zone_change(
    deps: &Deps,
    account_id: &str,
    change: &ZoneChange,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for hook in registry().iter().filter_map(|f| f.zone_hook) {
        hook(deps, account_id, change, now).await?;
    }
    Ok(())
}

/// Runs every feature's firsts hook for one account's new firsts.
pub async fn on_firsts(
    deps: &Deps,
    account_id: &str,
    firsts: &[NewFirst<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if firsts.is_empty() {
        return Ok(());
    }
    for hook in registry().iter().filter_map(|f| f.firsts_hook) {
        hook(deps, account_id, firsts, now).await?;
    }
    Ok(())
}

/// The next onboarding step of an account, for the page after an "I've done this" link: the
/// first step of its plan's list in the active health model that is not done yet (a
/// `step_<name>` first; `first_report` is also done by the first report). `just_done` counts
/// as done whatever the firsts read returns: the step was recorded a moment ago and the read is
/// eventually consistent. `None` when every step is done, and when the active model cannot be
/// loaded (the page then names no next step rather than failing).
pub async fn next_onboarding_step(
    deps: &Deps,
    account_id: &str,
    just_done: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let model = match health::service::models(deps.store.as_ref()).await {
        Ok((active, _shadow)) => active,
        Err(health::service::HealthError::Store(e)) => return Err(e),
        Err(e) => {
            warn!(error = %e, "no health model: the done page names no next step");
            return Ok(None);
        }
    };
    // An account without a profile yet has no plan: the model's default list.
    let plan = deps
        .store
        .account(account_id)
        .await?
        .and_then(|a| a.profile)
        .map(|p| p.plan)
        .unwrap_or_default();
    let firsts = deps.store.firsts(account_id).await?;
    let done = |step: &str| {
        just_done == Some(step)
            || firsts.contains_key(&format!("step_{step}"))
            || (step == "first_report" && firsts.contains_key("report"))
    };
    Ok(model
        .onboarding_steps(&plan)
        .iter()
        .find(|s| !done(s))
        .cloned())
}

/// One scheduled run of `feature` at `now` without a time limit (simulations, tests).
pub async fn run_scheduled(
    feature: &Feature,
    deps: &Deps,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Value, ScheduledError> {
    run_scheduled_within(feature, deps, now, run_id, delivery::Budget::UNLIMITED).await
}

/// One scheduled run of `feature` at `now`: its own work, then the sweep if it runs it, which
/// starts no delivery once `budget` is spent.
pub async fn run_scheduled_within(
    feature: &Feature,
    deps: &Deps,
    now: DateTime<Utc>,
    run_id: &str,
    budget: delivery::Budget,
) -> Result<Value, ScheduledError> {
    let mut out = json!({ "function": feature.name, "now": now.to_rfc3339() });
    if let Some(run) = feature.run {
        out["run"] = run(deps, now, run_id).await?;
    }
    if feature.sweeps {
        let report = delivery::sweep_within(deps, render_vars, now, run_id, budget).await?;
        out["sweep"] = serde_json::to_value(report).unwrap_or_default();
    }
    Ok(out)
}

/// The Lambda entry of a function's queue worker: each SQS record is one work item; only the
/// records that failed are reported (`ReportBatchItemFailures`), so a failed shard is retried
/// alone and the others are not redone.
pub async fn handle_queue(
    feature: &Feature,
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, ScheduledError> {
    let mut response = SqsBatchResponse::default();
    let Some(worker) = feature.queue_worker else {
        // Misrouted messages: fail them all so they reach the dead-letter queue, not the void.
        warn!(
            function = feature.name,
            "queue event for a function without a queue worker"
        );
        response.set_failures(
            event
                .payload
                .records
                .iter()
                .filter_map(|r| r.message_id.clone()),
        );
        return Ok(response);
    };
    for record in &event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("work_item", function = feature.name, message_id = %id);
        let body = record.body.as_deref().unwrap_or_default();
        if let Err(e) = worker(deps, body).instrument(span).await {
            warn!(function = feature.name, message_id = %id, error = %e, retryable = e.is_retryable(), "work item failed");
            response.add_failure(id);
        }
    }
    Ok(response)
}

/// Runs queued work in process until the queue is empty (work may enqueue more work): what
/// `nudge simulate` and tests do where Lambda would poll SQS. Returns how many items ran.
pub async fn drain(deps: &Deps, queue: &MemoryQueue) -> Result<usize, ScheduledError> {
    drain_with(registry(), deps, queue).await
}

/// The queue worker of the feature named `feature` among `features`.
pub fn queue_worker(features: &[Feature], feature: &str) -> Result<QueueWorker, ScheduledError> {
    features
        .iter()
        .find(|f| f.name == feature)
        .and_then(|f| f.queue_worker)
        .ok_or_else(|| ScheduledError::NoWorker(feature.to_string()))
}

async fn drain_with(
    features: &[Feature],
    deps: &Deps,
    queue: &MemoryQueue,
) -> Result<usize, ScheduledError> {
    let mut ran = 0;
    loop {
        let items = queue.take_all();
        if items.is_empty() {
            return Ok(ran);
        }
        for item in items {
            let worker = queue_worker(features, &item.feature)?;
            worker(deps, &item.body).await?;
            ran += 1;
        }
    }
}

/// The Lambda entry of a function invoked both on its schedule and by its queue: SQS events
/// (`Records`) go to the queue worker, anything else is a scheduled event.
pub async fn handle_any(
    feature: &Feature,
    deps: &Deps,
    event: LambdaEvent<Value>,
) -> Result<Value, ScheduledError> {
    let LambdaEvent { payload, context } = event;
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| ScheduledError::BadWorkItem(format!("not an SQS event: {e}")))?;
        let out = handle_queue(feature, deps, LambdaEvent::new(sqs, context)).await?;
        return Ok(serde_json::to_value(out).unwrap_or_default());
    }
    let scheduled: EventBridgeEvent<Value> = serde_json::from_value(payload)
        .map_err(|e| ScheduledError::BadWorkItem(format!("not a scheduled event: {e}")))?;
    handle_scheduled(feature, deps, LambdaEvent::new(scheduled, context)).await
}

/// "Now" of a scheduled invocation: the event's `time` (the slot's scheduled time).
pub fn scheduled_time(event: &EventBridgeEvent<Value>) -> Result<DateTime<Utc>, ScheduledError> {
    event.time.ok_or(ScheduledError::MissingTime)
}

/// Deliveries stop starting this long before the invocation's deadline: a send and its marks
/// take well under a second, so nothing is left claimed when Lambda stops the run.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The sweep's budget from the Lambda context's deadline (milliseconds since the epoch); none
/// when the context has no deadline (local invocations).
fn lambda_budget(deadline_ms: u64) -> delivery::Budget {
    if deadline_ms == 0 {
        return delivery::Budget::UNLIMITED;
    }
    let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    delivery::Budget::until(std::time::Instant::now() + left)
}

/// The Lambda entry of a scheduled function.
pub async fn handle_scheduled(
    feature: &Feature,
    deps: &Deps,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, ScheduledError> {
    let now = scheduled_time(&event.payload)?;
    let run_id = event.context.request_id.clone();
    let budget = lambda_budget(event.context.deadline);
    let span =
        tracing::info_span!("scheduled", function = feature.name, now = %now, request_id = %run_id);
    run_scheduled_within(feature, deps, now, &run_id, budget)
        .instrument(span)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Cron;

    #[test]
    fn every_registered_schedule_parses() {
        for f in registry() {
            if let Some(s) = f.schedule {
                Cron::parse(s).unwrap();
            }
        }
    }

    #[test]
    fn exactly_one_function_runs_the_sweep_and_it_runs_every_15_minutes() {
        let sweepers: Vec<&Feature> = registry().iter().filter(|f| f.sweeps).collect();
        assert_eq!(sweepers.len(), 1);
        assert_eq!(sweepers[0].schedule, Some("cron(0/15 * * * ? *)"));
    }

    #[test]
    fn names_are_unique_and_a_run_or_sweep_has_a_schedule() {
        let mut names: Vec<&str> = registry().iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), registry().len());
        for f in registry() {
            if f.run.is_some() || f.sweeps {
                assert!(f.schedule.is_some(), "{} runs but has no schedule", f.name);
            }
        }
    }

    fn worker_counting<'a>(_: &'a Deps, body: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            if body == "bad" {
                return Err(ScheduledError::BadWorkItem(body.to_string()));
            }
            Ok(json!({ "done": body }))
        })
    }

    /// Splits "n" into n-1 (a worker that enqueues more work until it reaches 0).
    fn worker_splitting<'a>(deps: &'a Deps, body: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            let n: u32 = body
                .parse()
                .map_err(|_| ScheduledError::BadWorkItem(body.into()))?;
            if n > 0 {
                deps.queue.enqueue("split", &[(n - 1).to_string()]).await?;
            }
            Ok(Value::Null)
        })
    }

    fn test_features() -> [Feature; 2] {
        let f = |name, worker| Feature {
            name,
            schedule: None,
            run: None,
            sweeps: false,
            queue_worker: Some(worker),
            ingest_hook: None,
            firsts_hook: None,
            zone_hook: None,
            render_vars: None,
        };
        [f("count", worker_counting), f("split", worker_splitting)]
    }

    fn test_deps(queue: std::sync::Arc<MemoryQueue>) -> Deps {
        use crate::channels::ses::SesMailer;
        use crate::channels::sns::SnsNotifier;
        use crate::store::dynamo::DynamoStore;
        use std::sync::Arc;
        // Never called by these workers: clients without endpoints are enough.
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let config =
            crate::config::Config::from_lookup(|k| (k == "NUDGE_TABLE").then(|| "t".into()))
                .expect("config");
        Deps::new(
            config,
            Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "t")),
            Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), None)),
            Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(&sdk))),
            crate::deps::Keys::default(),
        )
        .with_queue(queue)
    }

    /// Deps over the memory store (the store is all `next_onboarding_step` uses).
    fn memory_deps() -> (Deps, std::sync::Arc<crate::store::memory::MemoryStore>) {
        let store = std::sync::Arc::new(crate::store::memory::MemoryStore::new());
        let deps = test_deps(std::sync::Arc::new(MemoryQueue::default()));
        let deps = Deps::new(
            deps.config,
            store.clone(),
            deps.mailer,
            deps.notifier,
            deps.keys,
        );
        (deps, store)
    }

    async fn account_on_plan(store: &crate::store::memory::MemoryStore, plan: &str) {
        use crate::store::ProfileStore;
        let profile: crate::events::AccountProfile = serde_json::from_value(json!({
            "name": "Acme", "plan": plan, "industry": "retail", "timezone": "Asia/Tokyo",
            "locale": "ja", "contract_start": "2026-01-01", "renewal_date": "2027-01-01",
            "renewals": 0, "arr": 1000.0
        }))
        .unwrap();
        store
            .upsert_account("acme", &profile, chrono::Utc::now())
            .await
            .unwrap();
    }

    async fn done(store: &crate::store::memory::MemoryStore, keys: &[&str]) {
        use crate::store::EventStore;
        let firsts = keys
            .iter()
            .map(|k| (k.to_string(), chrono::Utc::now()))
            .collect();
        store.record_firsts("acme", &firsts).await.unwrap();
    }

    #[tokio::test]
    async fn the_next_onboarding_step_is_the_first_of_the_plan_not_done() {
        let (deps, store) = memory_deps();
        account_on_plan(&store, "pro").await;
        let next = |just| next_onboarding_step(&deps, "acme", just);
        assert_eq!(next(None).await.unwrap().as_deref(), Some("invite_users"));
        // The step recorded a moment ago counts even if the firsts read does not show it yet.
        assert_eq!(
            next(Some("invite_users")).await.unwrap().as_deref(),
            Some("import_data")
        );
        done(&store, &["step_invite_users", "step_import_data"]).await;
        assert_eq!(next(None).await.unwrap().as_deref(), Some("first_report"));
        // A first report also completes `first_report`.
        done(&store, &["report"]).await;
        assert_eq!(next(None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_next_onboarding_step_follows_the_active_models_plan_list() {
        use crate::store::{HealthStore, ModelSelection};
        let (deps, store) = memory_deps();
        account_on_plan(&store, "enterprise").await;
        let mut model = health::HealthModel {
            version: "steps-2".into(),
            ..health::HealthModel::default()
        };
        model.onboarding_steps.plans.insert(
            "enterprise".into(),
            vec!["connect_sso".into(), "import_data".into()],
        );
        let json = serde_json::to_string(&model).unwrap();
        store
            .put_model("steps-2", &json, chrono::Utc::now())
            .await
            .unwrap();
        let select = |v: &str| ModelSelection {
            active: Some(v.into()),
            shadow: None,
        };
        store.select_models(&select("steps-2")).await.unwrap();
        assert_eq!(
            next_onboarding_step(&deps, "acme", Some("connect_sso"))
                .await
                .unwrap()
                .as_deref(),
            Some("import_data")
        );
        // A selected model that cannot be loaded: no next step, and no failure.
        store.select_models(&select("missing")).await.unwrap();
        assert_eq!(
            next_onboarding_step(&deps, "acme", None).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn drain_runs_work_that_enqueues_more_work_until_the_queue_is_empty() {
        let queue = std::sync::Arc::new(MemoryQueue::default());
        let deps = test_deps(queue.clone());
        deps.queue.enqueue("split", &["3".into()]).await.unwrap();
        let ran = drain_with(&test_features(), &deps, &queue).await.unwrap();
        assert_eq!(ran, 4, "3, 2, 1, 0");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn work_for_a_function_without_a_worker_is_an_error_not_a_silent_drop() {
        let queue = std::sync::Arc::new(MemoryQueue::default());
        let deps = test_deps(queue.clone());
        deps.queue.enqueue("nobody", &["x".into()]).await.unwrap();
        let e = drain_with(&test_features(), &deps, &queue)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "work was queued for nobody, which has no queue worker"
        );
    }

    #[tokio::test]
    async fn a_failed_sqs_record_is_reported_alone() {
        let queue = std::sync::Arc::new(MemoryQueue::default());
        let deps = test_deps(queue);
        let event: SqsEvent = serde_json::from_value(json!({"Records": [
            {"messageId": "m1", "body": "ok"},
            {"messageId": "m2", "body": "bad"},
            {"messageId": "m3", "body": "fine"}
        ]}))
        .unwrap();
        let features = test_features();
        let out = handle_queue(
            &features[0],
            &deps,
            LambdaEvent::new(event, lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        let failed: Vec<&str> = out
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2"]);
    }

    #[test]
    fn deadline_reminders_get_their_time_left_at_render_time() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let nudge = Nudge::new(
            "dl/d1/1/final",
            "acme",
            None,
            NudgeKind::DeadlineReminder,
            now,
            "reminders",
            now,
        )
        .with_vars(json!({ "due_at": "2026-11-20T02:00:00Z" }));
        let to = RecipientContext {
            locale: crate::domain::Locale::En,
            tz: chrono_tz::Asia::Tokyo,
        };
        let vars = render_vars(&nudge, &to, now);
        assert_eq!(vars["time_left"], "in 2 hours");
        assert!(vars.contains_key("due_local"));
        let other = Nudge::new("x", "acme", None, NudgeKind::RiskNudge, now, "health", now);
        assert!(render_vars(&other, &to, now).is_empty());
    }
}
