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
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::{Map, Value, json};
use thiserror::Error;
use tracing::Instrument;

use crate::Deps;
use crate::delivery;
use crate::domain::{Nudge, NudgeKind, RecipientContext};
use crate::events::Event;
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
}

impl ScheduledError {
    /// Whether Lambda's retry of the invocation can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScheduledError::MissingTime => false,
            ScheduledError::Store(e) => e.is_retryable(),
            ScheduledError::Delivery(e) => e.is_retryable(),
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
/// Called by ingest for every new (not duplicate) event, after the event's own state change;
/// must be idempotent (a client retry after a partial failure calls it again).
pub type IngestHook = for<'a> fn(&'a Deps, &'a Event, DateTime<Utc>) -> HookFuture<'a>;

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
    pub ingest_hook: Option<IngestHook>,
    /// The kinds this feature plans that need variables computed at render time.
    pub render_vars: Option<(&'static [NudgeKind], crate::domain::ExtraVars)>,
}

const INGEST: Feature = Feature {
    name: "ingest",
    schedule: None,
    run: None,
    sweeps: false,
    ingest_hook: None,
    render_vars: None,
};

const REMINDERS: Feature = Feature {
    name: reminders::service::FUNCTION,
    schedule: Some("cron(0/15 * * * ? *)"),
    run: None,
    sweeps: true,
    ingest_hook: Some(reminders_hook),
    render_vars: Some((
        &[NudgeKind::DeadlineReminder],
        reminders::service::render_vars,
    )),
};

fn reminders_hook<'a>(deps: &'a Deps, event: &'a Event, now: DateTime<Utc>) -> HookFuture<'a> {
    Box::pin(reminders::service::on_deadline_event(deps, event, now))
}

/// Every function, in the order simulate runs them when they fire at the same minute.
pub fn registry() -> &'static [Feature] {
    &[INGEST, REMINDERS]
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

/// One scheduled run of `feature` at `now`: its own work, then the sweep if it runs it.
pub async fn run_scheduled(
    feature: &Feature,
    deps: &Deps,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Value, ScheduledError> {
    let mut out = json!({ "function": feature.name, "now": now.to_rfc3339() });
    if let Some(run) = feature.run {
        out["run"] = run(deps, now, run_id).await?;
    }
    if feature.sweeps {
        let report = delivery::sweep(deps, render_vars, now, run_id).await?;
        out["sweep"] = serde_json::to_value(report).unwrap_or_default();
    }
    Ok(out)
}

/// "Now" of a scheduled invocation: the event's `time` (the slot's scheduled time).
pub fn scheduled_time(event: &EventBridgeEvent<Value>) -> Result<DateTime<Utc>, ScheduledError> {
    event.time.ok_or(ScheduledError::MissingTime)
}

/// The Lambda entry of a scheduled function.
pub async fn handle_scheduled(
    feature: &Feature,
    deps: &Deps,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, ScheduledError> {
    let now = scheduled_time(&event.payload)?;
    let run_id = event.context.request_id.clone();
    let span =
        tracing::info_span!("scheduled", function = feature.name, now = %now, request_id = %run_id);
    run_scheduled(feature, deps, now, &run_id)
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
