//! `nudge faults`: the generated portfolio simulated twice, without and with faults between
//! the functions and the services ([`crate::faults`]), and the messages that left compared:
//! the same nudges (kind, stage, account, contact) must leave, none lost and none twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::demo::simulation_of;
use crate::faults::Faults;
use crate::local::LocalStack;
use crate::portfolio::Portfolio;
use crate::simulate::{SimulationReport, simulate};

/// A nudge that left, as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SentNudge {
    pub kind: String,
    pub stage: Option<String>,
    pub account_id: String,
    pub contact_id: Option<String>,
    /// Which of the account's nudges: two messages of one kind and stage to one person (two
    /// deadlines) stay two.
    pub nudge_id: String,
}

/// One simulation's side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub fault_rate: f64,
    /// Nudges that left.
    pub sent: usize,
    /// Messages the providers accepted (more than `sent` if some left twice).
    pub messages: usize,
    /// Faults injected, by "service: fault".
    pub faults: BTreeMap<String, usize>,
    /// Invocations delivered again after they failed or crashed, by function.
    pub redelivered: BTreeMap<String, usize>,
    pub ingest_requests: usize,
    /// (line, reason) of every event ingest refused (the portfolio's malformed ones).
    pub rejected: Vec<(usize, String)>,
    /// Delivery-log entries by status (`unknown_outcome` shows sends whose answer was lost).
    pub log_by_status: BTreeMap<String, usize>,
    pub seconds: f64,
    /// The simulation's table (deleted afterwards unless kept).
    pub table: String,
}

/// What `nudge faults` found.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub clean: Side,
    pub faulted: Side,
    /// Sent without faults, not with them.
    pub lost: Vec<SentNudge>,
    /// Sent with faults only.
    pub extra: Vec<SentNudge>,
    /// (account, nudge id, messages) of customer emails that left more than once, in either run.
    pub doubled: Vec<(String, String, usize)>,
    /// The same for CSM notifications (SNS): at least once by design, as SNS gives no sign that
    /// an unanswered publish went out.
    pub doubled_alerts: Vec<(String, String, usize)>,
}

impl Proof {
    /// None lost, none extra, no customer email twice.
    pub fn holds(&self) -> bool {
        self.lost.is_empty() && self.extra.is_empty() && self.doubled.is_empty()
    }
}

/// The nudges that left in `report`: every message a provider accepted, named by its nudge's
/// delivery-log entry.
pub fn sent_nudges(report: &SimulationReport) -> BTreeSet<SentNudge> {
    let by_id: BTreeMap<(&str, &str), _> = report
        .deliveries
        .iter()
        .map(|e| ((e.account_id.as_str(), e.nudge_id.as_str()), e))
        .collect();
    report
        .provider_accepted
        .keys()
        .map(
            |(account, nudge)| match by_id.get(&(account.as_str(), nudge.as_str())) {
                Some(e) => SentNudge {
                    kind: e.kind.as_str().to_string(),
                    stage: e.stage.map(|s| s.as_str().to_string()),
                    account_id: account.clone(),
                    contact_id: e.contact_id.clone(),
                    nudge_id: nudge.clone(),
                },
                // A message with no log entry at all: it still counts, under its nudge id.
                None => SentNudge {
                    kind: format!("unlogged {nudge}"),
                    stage: None,
                    account_id: account.clone(),
                    contact_id: None,
                    nudge_id: nudge.clone(),
                },
            },
        )
        .collect()
}

fn side(report: &SimulationReport, rate: f64, seconds: f64) -> Side {
    let mut log_by_status = BTreeMap::new();
    for e in &report.deliveries {
        *log_by_status
            .entry(e.status.as_str().to_string())
            .or_default() += 1;
    }
    Side {
        fault_rate: rate,
        sent: sent_nudges(report).len(),
        messages: report.provider_accepted.values().map(|(_, n)| n).sum(),
        faults: report.faults.clone(),
        redelivered: report.redelivered.clone(),
        ingest_requests: report.ingest_requests,
        rejected: report.rejected.clone(),
        log_by_status,
        seconds,
        table: report.table.clone(),
    }
}

/// Simulates `portfolio` without faults, then with `rate` faults (draws from `seed`), and
/// compares what left.
pub async fn prove(
    stack: &LocalStack,
    portfolio: &Portfolio,
    rate: f64,
    seed: u64,
    keep_tables: bool,
) -> Result<Proof> {
    let mut opts = simulation_of(portfolio);
    opts.keep_table = keep_tables;
    let started = Instant::now();
    eprintln!("faults: simulating without faults");
    let clean = simulate(stack, &opts).await?;
    let clean_secs = started.elapsed().as_secs_f64();
    let mut faulty = opts.clone();
    faulty.faults = Some(Faults::new(rate, seed));
    eprintln!("faults: simulating with {:.0}% faults", rate * 100.0);
    let started = Instant::now();
    let faulted = simulate(stack, &faulty).await?;
    let faulted_secs = started.elapsed().as_secs_f64();
    let (a, b) = (sent_nudges(&clean), sent_nudges(&faulted));
    let doubled_on = |channel: &str| -> Vec<(String, String, usize)> {
        [&clean, &faulted]
            .iter()
            .flat_map(|r| r.provider_accepted.iter())
            .filter(|(_, (c, n))| *c == channel && *n > 1)
            .map(|((account, nudge), (_, n))| (account.clone(), nudge.clone(), *n))
            .collect()
    };
    let (doubled, doubled_alerts) = (doubled_on("email"), doubled_on("sns"));
    Ok(Proof {
        clean: side(&clean, 0.0, clean_secs),
        faulted: side(&faulted, rate, faulted_secs),
        lost: a.difference(&b).cloned().collect(),
        extra: b.difference(&a).cloned().collect(),
        doubled,
        doubled_alerts,
    })
}
