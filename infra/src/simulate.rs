//! `nudge simulate`: replays a journey through the real handlers against the local stack.
//!
//! Events go through the real `ingest` handler as signed HTTP API requests: those between two
//! scheduled runs in one request, received at the latest `occurred_at` among them; every registered scheduled function runs at each of its cron firing times
//! with that time as "now". Events before `--from` are ingested as history (no scheduled runs
//! before `--from`); events after `--to` are skipped. Everything is ordered by time (events before scheduled runs at the
//! same instant, scheduled runs in registry order), so the same input gives the same delivery
//! log, byte for byte.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use aws_lambda_events::sns::SnsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use nudge_shared::channels::MemoryQueue;
use nudge_shared::domain::DeliveryLogEntry;
use nudge_shared::ingest::IngestCache;
use nudge_shared::ingest::lambda::Ingest;
use nudge_shared::registry;
use nudge_shared::schedule::Cron;
use serde::Serialize;
use serde_json::Value;

use crate::apigw;
use crate::engagement::{Engagement, Feedback, Recording, SENDING_ACCOUNT, sns_event};
use crate::faults::Faults;
use crate::local::{LOCAL_SECRET, LocalStack};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub events: EventSource,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Keep the simulation's table afterwards (for inspection); deleted by default.
    pub keep_table: bool,
    /// Recipients' behaviour: when set, every email gets its SES feedback (delivery or
    /// bounce, opens, clicks) through ingest's SNS path at the simulated time.
    pub engagement: Option<Engagement>,
    /// Configuration that differs from the environment's (e.g. fewer due-index shards for a
    /// small portfolio).
    pub config: BTreeMap<String, String>,
    /// Faults between the functions and the services (see [`crate::faults`]); every failed or
    /// crashed invocation is delivered again, as its AWS trigger would.
    pub faults: Option<Faults>,
}

/// Where the events come from: a JSON-lines file or the lines themselves.
#[derive(Debug, Clone)]
pub enum EventSource {
    File(PathBuf),
    Lines(String),
}

impl SimulateOptions {
    pub fn new(events: EventSource, from: DateTime<Utc>, to: DateTime<Utc>) -> SimulateOptions {
        SimulateOptions {
            events,
            from,
            to,
            keep_table: false,
            engagement: None,
            config: BTreeMap::new(),
            faults: None,
        }
    }
}

/// A message as it left, for the report: when, what it said, to which nudge it belongs.
#[derive(Debug, Clone, Serialize)]
pub struct MessageCopy {
    pub at: DateTime<Utc>,
    pub channel: &'static str,
    pub account_id: Option<String>,
    pub nudge_id: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a simulation did, for the CLI summary and the demo report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimulationReport {
    pub table: String,
    pub events_read: usize,
    pub events_outside_window: usize,
    pub accepted: usize,
    pub duplicates: usize,
    /// (line number, error) for every event the handler rejected or the file could not parse.
    pub rejected: Vec<(usize, String)>,
    pub retried: usize,
    pub runs: BTreeMap<String, usize>,
    /// Items in the table after the run, by kind (raw events, rollups, contacts, ...).
    pub stored: BTreeMap<String, usize>,
    /// The delivery log: one entry per message that left, was blocked or failed, sorted by
    /// (at, account_id, nudge_id), without provider message ids (random per run).
    pub deliveries: Vec<DeliveryLogEntry>,
    /// Every message that left, in order, with its rendered body.
    #[serde(skip)]
    pub messages: Vec<MessageCopy>,
    /// SES feedback events published to ingest, by type (Delivery, Open, Click, Bounce).
    pub feedback: BTreeMap<String, usize>,
    /// Invocations of the ingest handler: HTTP requests (event batches) and SNS deliveries (SES
    /// feedback).
    pub ingest_requests: usize,
    pub feedback_invocations: usize,
    /// Every message a provider accepted, by (account, nudge id): its channel (`email`, `sns`)
    /// and how many times (more than 1 is a double send).
    #[serde(skip)]
    pub provider_accepted: BTreeMap<(String, String), (&'static str, usize)>,
    /// Faults injected, by "service: fault" (empty without faults).
    pub faults: BTreeMap<String, usize>,
    /// Invocations delivered again after they failed or crashed, by function.
    pub redelivered: BTreeMap<String, usize>,
}

impl SimulationReport {
    /// The delivery log as JSON lines (the user-facing contract).
    pub fn delivery_jsonl(&self) -> String {
        let mut s = String::new();
        for d in &self.deliveries {
            // Struct field order is the contract's order.
            s.push_str(&serde_json::to_string(d).unwrap_or_default());
            s.push('\n');
        }
        s
    }
}

struct TimedEvent {
    at: DateTime<Utc>,
    line: usize,
    body: Value,
}

enum Step<'a> {
    Event(&'a TimedEvent),
    Scheduled(&'static registry::Feature),
}

/// Reads a JSON-lines event file; a line that is not JSON is reported, not fatal.
type LineErrors = Vec<(usize, String)>;

fn read_events(source: &EventSource) -> Result<(Vec<TimedEvent>, LineErrors)> {
    let text = match source {
        EventSource::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading events from {}", path.display()))?,
        EventSource::Lines(text) => text.clone(),
    };
    parse_lines(&text)
}

fn parse_lines(text: &str) -> Result<(Vec<TimedEvent>, LineErrors)> {
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                let at = v
                    .get("occurred_at")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                match at {
                    Some(at) => events.push(TimedEvent {
                        at,
                        line: line_no,
                        body: v,
                    }),
                    None => bad.push((
                        line_no,
                        "occurred_at: missing or not an RFC 3339 timestamp with offset".into(),
                    )),
                }
            }
            Err(e) => bad.push((line_no, format!("not JSON: {e}"))),
        }
    }
    // Stable: events at the same instant keep file order.
    events.sort_by_key(|e| (e.at, e.line));
    Ok((events, bad))
}

pub async fn simulate(stack: &LocalStack, opts: &SimulateOptions) -> Result<SimulationReport> {
    if opts.to <= opts.from {
        bail!("--to ({}) must be after --from ({})", opts.to, opts.from);
    }
    let (events, bad) = read_events(&opts.events)?;
    let table = format!(
        "nudge-sim-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let mut config = stack.config_with(&table, &topic, &opts.config)?;
    // Ingest applies SES feedback only from its own topic, configuration set and account:
    // those the simulated feedback comes from.
    config.feedback_topic_arn = Some(FEEDBACK_TOPIC.into());
    config.sending_account_id = Some(SENDING_ACCOUNT.into());
    if config.configuration_set.is_none() {
        config.configuration_set = Some("nudge-events".into());
    }
    let (deps, _store) = match &opts.faults {
        Some(f) => stack.deps_through(config, f),
        None => stack.deps(config),
    };
    let providers = Recording::with_faults(
        deps.mailer.clone(),
        deps.notifier.clone(),
        opts.faults.clone(),
    );
    let deps = deps.with_providers(providers.clone(), providers.clone());
    // Work a scheduled run fans out (SQS when deployed) is drained in process after the run.
    let queue = Arc::new(MemoryQueue::default());
    let mut ingest = Ingest::new(deps.with_queue(queue.clone()));
    let triggers = Triggers {
        faults: opts.faults.clone(),
    };
    let config_set = ingest
        .deps
        .config
        .configuration_set
        .clone()
        .unwrap_or_default();
    let mut outbox = Outbox {
        providers: providers.clone(),
        engagement: opts.engagement.clone(),
        config_set,
        due: BTreeMap::new(),
        seq: 0,
    };

    let mut report = SimulationReport {
        table: table.clone(),
        events_read: events.len() + bad.len(),
        rejected: bad,
        ..Default::default()
    };

    // The timeline: (time, order, step).
    let mut timeline: Vec<(DateTime<Utc>, usize, Step)> = Vec::new();
    for e in &events {
        // Events before the window are history: ingested in order, with no scheduled runs
        // before `from`. Events after the window are not part of this simulation.
        if e.at > opts.to {
            report.events_outside_window += 1;
            continue;
        }
        timeline.push((e.at, 0, Step::Event(e)));
    }
    for (i, f) in registry::registry().iter().enumerate() {
        let Some(schedule) = f.schedule else { continue };
        let cron = Cron::parse(schedule)?;
        for t in cron.fire_times(opts.from, opts.to) {
            timeline.push((t, 1 + i, Step::Scheduled(f)));
        }
    }
    timeline.sort_by_key(|(t, order, step)| {
        let line = match step {
            Step::Event(e) => e.line,
            Step::Scheduled(_) => 0,
        };
        (*t, *order, line)
    });

    // Events between two scheduled runs go in one request (at most MAX_BATCH events and
    // MAX_BODY bytes), received at the latest of them: what a sender that batches does, and
    // ingest applies each account's events in time order whatever the batch.
    let mut pending: Vec<&TimedEvent> = Vec::new();
    let mut pending_bytes = 0;
    for (at, _, step) in &timeline {
        outbox
            .publish_due(&mut ingest, &triggers, *at, &mut report)
            .await?;
        match step {
            Step::Event(e) => {
                let size = e.body.to_string().len() + 1;
                if pending.len() == MAX_BATCH || pending_bytes + size > MAX_BODY {
                    send_batch(&mut ingest, &triggers, &mut pending, &mut report).await?;
                    outbox.collect(*at, &mut report);
                    pending_bytes = 0;
                }
                pending.push(e);
                pending_bytes += size;
            }
            Step::Scheduled(f) => {
                send_batch(&mut ingest, &triggers, &mut pending, &mut report).await?;
                outbox.collect(*at, &mut report);
                pending_bytes = 0;
                let run_id = format!("sim-{}-{}", f.name, at.timestamp());
                triggers
                    .deliver(f.name, &mut report, || {
                        registry::run_scheduled(f, &ingest.deps, *at, &run_id)
                    })
                    .await
                    .with_context(|| format!("{} run at {at}", f.name))?;
                drain(&ingest.deps, &queue, &triggers, &mut report)
                    .await
                    .with_context(|| format!("{} queued work at {at}", f.name))?;
                *report.runs.entry(f.name.to_string()).or_default() += 1;
                outbox.collect(*at, &mut report);
            }
        }
    }
    send_batch(&mut ingest, &triggers, &mut pending, &mut report).await?;
    outbox.collect(opts.to, &mut report);
    outbox
        .publish_due(&mut ingest, &triggers, opts.to, &mut report)
        .await?;
    report.rejected.sort();
    if let Some(f) = &opts.faults {
        report.faults = f.injected();
    }

    let items = scan_all(stack, &table).await?;
    report.stored = summarise(&items);
    let mut log = ingest
        .deps
        .store
        .all_delivery_log()
        .await
        .context("reading the delivery log")?;
    nudge_shared::domain::log::sort(&mut log);
    for entry in &mut log {
        entry.provider_message_id = None;
    }
    report.deliveries = log;
    if !opts.keep_table {
        stack.delete_table(&table).await?;
    }
    Ok(report)
}

/// What left during the simulation and the SES feedback still to come.
struct Outbox {
    providers: Arc<Recording>,
    engagement: Option<Engagement>,
    config_set: String,
    due: BTreeMap<(DateTime<Utc>, usize), Feedback>,
    seq: usize,
}

impl Outbox {
    /// Takes the messages sent by the step at `at`: copies for the report, feedback planned.
    fn collect(&mut self, at: DateTime<Utc>, report: &mut SimulationReport) {
        for m in self.providers.take() {
            if let Some(engagement) = &self.engagement {
                for f in engagement.feedback(&m, at, &self.config_set) {
                    self.seq += 1;
                    self.due.insert((f.at, self.seq), f);
                }
            }
            if let Some(key) = &m.nudge {
                report
                    .provider_accepted
                    .entry(key.clone())
                    .or_insert((m.channel, 0))
                    .1 += 1;
            }
            let (account_id, nudge_id) = m.nudge.clone().unzip();
            report.messages.push(MessageCopy {
                at,
                channel: m.channel,
                account_id,
                nudge_id,
                subject: m.subject,
                text: m.text,
                html: m.html,
            });
        }
    }

    /// Publishes the feedback due by `now` to ingest, as SES's SNS subscription would.
    async fn publish_due(
        &mut self,
        ingest: &mut Ingest,
        triggers: &Triggers,
        now: DateTime<Utc>,
        report: &mut SimulationReport,
    ) -> Result<()> {
        let later = self.due.split_off(&(now, usize::MAX));
        let due: Vec<Feedback> = std::mem::replace(&mut self.due, later)
            .into_values()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for f in &due {
            *report.feedback.entry(f.kind.to_string()).or_default() += 1;
        }
        let event: SnsEvent = serde_json::from_value(sns_event(FEEDBACK_TOPIC, &due))
            .context("SES feedback event")?;
        // SNS delivers again until the function succeeds.
        let ingest = &*ingest;
        triggers
            .deliver("ingest (SES feedback)", report, || {
                ingest.feedback(event.clone())
            })
            .await
            .with_context(|| format!("SES feedback at {now}"))?;
        report.feedback_invocations += 1;
        Ok(())
    }
}

/// The topic SES publishes its events to (as template.yaml names it).
const FEEDBACK_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:nudge-ses-feedback";

/// Events per request and bytes per body, inside ingest's limits (500 events, 1 MiB).
const MAX_BATCH: usize = 500;
const MAX_BODY: usize = 900 * 1024;

/// Sends the pending events as one signed request received at the latest `occurred_at` among
/// them, and counts the answer; empties `pending`. As a sender should, it sends again what the
/// answer asks to retry, and everything after a server error or no answer (a crash).
async fn send_batch(
    ingest: &mut Ingest,
    triggers: &Triggers,
    pending: &mut Vec<&TimedEvent>,
    report: &mut SimulationReport,
) -> Result<()> {
    let Some(at) = pending.iter().map(|e| e.at).max() else {
        return Ok(());
    };
    for attempt in 1..=MAX_DELIVERIES {
        if attempt > 1 {
            *report.redelivered.entry("ingest".into()).or_default() += 1;
        }
        let events: Vec<&Value> = pending.iter().map(|e| &e.body).collect();
        let body = serde_json::json!({ "events": events }).to_string();
        let req = apigw::to_request(&apigw::signed_post_events(
            LOCAL_SECRET.as_bytes(),
            &body,
            at,
        ))?;
        report.ingest_requests += 1;
        let Some(resp) = triggers.invoke(ingest.http(req)).await else {
            // A new container answers the resend: nothing cached survives the crash.
            ingest.cache = IngestCache::default();
            continue;
        };
        let status = resp.status().as_u16();
        let out: Value = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        // A server error without a verdict per event: a sender sends it all again (only
        // faults make one here; without them it is reported below).
        if status >= 500 && out.get("retry").is_none() && triggers.faults.is_some() {
            continue;
        }
        let count = |k: &str| out.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        report.accepted += count("accepted");
        report.duplicates += count("duplicates");
        let index = |r: &Value| r.get("index").and_then(Value::as_u64).map(|i| i as usize);
        let line_of = |r: &Value| index(r).and_then(|i| pending.get(i)).map_or(0, |e| e.line);
        if let Some(rej) = out.get("rejected").and_then(Value::as_array) {
            for r in rej {
                let msg = r.get("error").and_then(Value::as_str).unwrap_or("rejected");
                report.rejected.push((line_of(r), msg.to_string()));
            }
        }
        if status != 200 && status != 503 {
            let msg = out
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            for e in pending.iter() {
                report
                    .rejected
                    .push((e.line, format!("HTTP {status}: {msg}")));
            }
            pending.clear();
            return Ok(());
        }
        // `retry` lists the indexes of the events to send again.
        let retry: Vec<usize> = out
            .get("retry")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|i| i.as_u64())
                    .map(|i| i as usize)
                    .collect()
            })
            .unwrap_or_default();
        report.retried += retry.len();
        if retry.is_empty() || triggers.faults.is_none() {
            pending.clear();
            return Ok(());
        }
        *pending = retry
            .iter()
            .filter_map(|&i| pending.get(i).copied())
            .collect();
    }
    bail!(
        "ingest did not take {} events at {at} after {MAX_DELIVERIES} deliveries",
        pending.len()
    )
}

/// How often a failed invocation is delivered again before the simulation gives up.
const MAX_DELIVERIES: usize = 30;

/// The AWS triggers of the simulated invocations: with faults, every invocation that fails or
/// crashes is delivered again (Lambda's retries of scheduled runs, SNS's and SQS's redelivery, a
/// sender's resend), until it succeeds.
struct Triggers {
    faults: Option<Faults>,
}

impl Triggers {
    /// One invocation through the fault layer: `None` if it crashed.
    async fn invoke<F: std::future::Future>(&self, invocation: F) -> Option<F::Output> {
        match &self.faults {
            Some(f) => f.invoke(invocation).await,
            None => Some(invocation.await),
        }
    }

    /// Runs `invocation` until it succeeds (once, without faults).
    async fn deliver<T, E, F, Fut>(
        &self,
        function: &str,
        report: &mut SimulationReport,
        mut invocation: F,
    ) -> Result<T>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let mut last = String::new();
        for attempt in 1..=MAX_DELIVERIES {
            if attempt > 1 {
                *report.redelivered.entry(function.to_string()).or_default() += 1;
            }
            match self.invoke(invocation()).await {
                Some(Ok(out)) => return Ok(out),
                Some(Err(e)) if self.faults.is_some() => last = e.to_string(),
                Some(Err(e)) => bail!("{e}"),
                None => last = "crashed".into(),
            }
        }
        bail!("{function} failed {MAX_DELIVERIES} times; last: {last}")
    }
}

/// Runs the work a scheduled run fanned out, oldest first, as the queue's worker would; an item
/// that fails is delivered again.
async fn drain(
    deps: &nudge_shared::Deps,
    queue: &MemoryQueue,
    triggers: &Triggers,
    report: &mut SimulationReport,
) -> Result<()> {
    loop {
        let items = queue.take_all();
        if items.is_empty() {
            return Ok(());
        }
        for item in items {
            let worker = registry::queue_worker(registry::registry(), &item.feature)?;
            triggers
                .deliver(&item.feature, report, || worker(deps, &item.body))
                .await?;
        }
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

async fn scan_all(stack: &LocalStack, table: &str) -> Result<Vec<Item>> {
    let client = stack.dynamodb();
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let resp = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .context("scanning the simulation table")?;
        out.extend(resp.items().iter().cloned());
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    Ok(out)
}

fn sort_key(item: &Item) -> &str {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("")
}

/// Counts stored items by kind, named for people reading the summary.
pub fn summarise(items: &[Item]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for item in items {
        let sk = sort_key(item);
        let kind = match sk.split('#').next().unwrap_or("") {
            "PROFILE" => "accounts",
            "CONTACT" => "contacts",
            "EVT" => "raw events",
            "DAY" => "daily rollups",
            "FIRSTS" => "accounts with firsts",
            "DL" => "deadlines",
            "NUDGE" => "nudges",
            "LOG" => "delivery log entries",
            "SUPPRESSION" => "suppressed addresses",
            "CHECKPOINT" => "checkpoints",
            _ => "other",
        };
        *m.entry(kind.to_string()).or_default() += 1;
    }
    m
}
