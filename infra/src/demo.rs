//! `nudge demo`: a generated portfolio through every real handler, then what a
//! customer-success lead wants to see of it, read back from the table (scores, deadlines,
//! KPIs, engagement) for the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use nudge_shared::milestones::kpi::OnboardingKpis;
use nudge_shared::store::dynamo::DynamoStore;
use nudge_shared::store::{EngagementStore, HealthSnapshot, HealthStore, NudgeStore};
use serde::Serialize;
use serde_json::Value;

use crate::local::LocalStack;
use crate::portfolio::{self, Portfolio};
use crate::report;
use crate::simulate::{EventSource, SimulateOptions, SimulationReport, simulate};

/// What the demo simulates.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    pub accounts: usize,
    pub from: DateTime<Utc>,
    pub days: u32,
    pub out_dir: PathBuf,
}

/// One deadline's stages, as the report shows them.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineView {
    pub account_id: String,
    pub deadline_id: String,
    pub title: String,
    pub timezone: String,
    /// (stage, send time in the recipient's zone, status, reason)
    pub stages: Vec<(String, String, String, String)>,
}

/// Everything the report needs besides the simulation's own report.
#[derive(Debug, Clone)]
pub struct DemoData {
    pub portfolio: Portfolio,
    pub sim: SimulationReport,
    /// Per account, its active-model snapshots, oldest first.
    pub snapshots: BTreeMap<String, Vec<HealthSnapshot>>,
    pub deadlines: Vec<DeadlineView>,
    pub kpis: OnboardingKpis,
    /// (kind, sent, delivered, opened, clicked, bounced)
    pub engagement: Vec<(String, u64, u64, u64, u64, u64)>,
}

/// Paths the demo wrote.
pub struct DemoOutput {
    pub deliveries: PathBuf,
    pub report: PathBuf,
    pub events: PathBuf,
    pub data: DemoData,
}

/// How a generated portfolio is simulated: its events and recipients, over its window.
pub fn simulation_of(portfolio: &Portfolio) -> SimulateOptions {
    let mut sim_opts = SimulateOptions::new(
        EventSource::Lines(portfolio.jsonl()),
        portfolio.from,
        portfolio.to,
    );
    sim_opts.engagement = Some(portfolio.engagement.clone());
    // A portfolio of tens of accounts needs no spreading of the due and account indexes.
    sim_opts.config = [
        ("NUDGE_DUE_SHARDS".to_string(), "1".to_string()),
        ("NUDGE_HEALTH_INDEX_SHARDS".to_string(), "1".to_string()),
    ]
    .into();
    sim_opts
}

pub async fn run(stack: &LocalStack, opts: &DemoOptions) -> Result<DemoOutput> {
    let portfolio = portfolio::generate(opts.seed, opts.accounts, opts.from, opts.days);
    eprintln!(
        "demo: {} accounts, {} events over {} days from {} (seed {})",
        portfolio.accounts.len(),
        portfolio.events.len(),
        opts.days,
        opts.from.date_naive(),
        opts.seed
    );
    let mut sim_opts = simulation_of(&portfolio);
    sim_opts.keep_table = true;
    let started = std::time::Instant::now();
    let sim = simulate(stack, &sim_opts).await?;
    eprintln!(
        "demo: simulated through ingest, health, milestones and reminders in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = DynamoStore::new(stack.dynamodb(), sim.table.clone());
    let gathered = gather(&store, &portfolio).await;
    stack.delete_table(&sim.table).await?;
    let (snapshots, deadlines, kpis, engagement) = gathered?;
    let data = DemoData {
        portfolio,
        sim,
        snapshots,
        deadlines,
        kpis,
        engagement,
    };

    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let deliveries = opts.out_dir.join("deliveries.jsonl");
    write(&deliveries, &data.sim.delivery_jsonl())?;
    let events = opts.out_dir.join("events.jsonl");
    write(&events, &data.portfolio.jsonl())?;
    let report = opts.out_dir.join("report.html");
    write(&report, &report::html(&data)?)?;
    Ok(DemoOutput {
        deliveries,
        report,
        events,
        data,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

type Gathered = (
    BTreeMap<String, Vec<HealthSnapshot>>,
    Vec<DeadlineView>,
    OnboardingKpis,
    Vec<(String, u64, u64, u64, u64, u64)>,
);

async fn gather(store: &DynamoStore, p: &Portfolio) -> Result<Gathered> {
    let first = p.from.date_naive() - Duration::days(1);
    let last = p.to.date_naive();
    let snapshots: BTreeMap<String, Vec<HealthSnapshot>> = futures::stream::iter(&p.accounts)
        .map(|a| async move {
            let s = store.snapshots(&a.account_id, first, last).await?;
            anyhow::Ok((
                a.account_id.clone(),
                s.into_iter().filter(|s| !s.shadow).collect(),
            ))
        })
        .buffered(8)
        .try_collect()
        .await
        .context("reading health snapshots")?;

    let mut deadlines = Vec::new();
    for (account, id, title) in deadline_ids(p) {
        let tz: chrono_tz::Tz = p
            .accounts
            .iter()
            .find(|a| a.account_id == account)
            .and_then(|a| a.timezone.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        let mut nudges = store
            .nudges_with_prefix(&account, &format!("dl/{id}/"))
            .await
            .context("reading deadline stages")?;
        nudges.sort_by_key(|n| (n.send_at, n.nudge_id.clone()));
        let stages = nudges
            .iter()
            .map(|n| {
                (
                    n.stage.map(|s| s.to_string()).unwrap_or_default(),
                    n.send_at
                        .with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M %Z")
                        .to_string(),
                    n.status.as_str().to_string(),
                    n.reason.clone().unwrap_or_default(),
                )
            })
            .collect();
        deadlines.push(DeadlineView {
            account_id: account,
            deadline_id: id,
            title,
            timezone: tz.name().to_string(),
            stages,
        });
    }

    let cohort_from = p.from.date_naive();
    let cohort_to = last;
    let kpis = crate::kpi::onboarding(store, 1, cohort_from, cohort_to, p.to)
        .await
        .context("onboarding KPIs")?;
    let mut engagement: BTreeMap<String, (u64, u64, u64, u64, u64)> = BTreeMap::new();
    for s in store.kind_stats().await.context("engagement stats")? {
        let e = engagement.entry(s.kind).or_default();
        e.0 += s.sent;
        e.1 += s.delivered;
        e.2 += s.opened;
        e.3 += s.clicked;
        e.4 += s.bounced;
    }
    let engagement = engagement
        .into_iter()
        .map(|(k, (s, d, o, c, b))| (k, s, d, o, c, b))
        .collect();
    Ok((snapshots, deadlines, kpis, engagement))
}

/// (account, deadline id, latest title) of every deadline the portfolio sets.
fn deadline_ids(p: &Portfolio) -> Vec<(String, String, String)> {
    let mut m: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in &p.events {
        if e["type"] != "deadline_set" {
            continue;
        }
        let (Some(a), Some(id)) = (
            e["account_id"].as_str(),
            e["properties"]["deadline_id"].as_str(),
        ) else {
            continue;
        };
        let title = e["properties"]["title"].as_str().unwrap_or_default();
        m.insert((a.to_string(), id.to_string()), title.to_string());
    }
    m.into_iter().map(|((a, id), t)| (a, id, t)).collect()
}

/// The demo's figures for the terminal (and `--json`).
pub fn summary(d: &DemoData) -> Value {
    let mut by_kind: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut blocked: BTreeMap<String, usize> = BTreeMap::new();
    for e in &d.sim.deliveries {
        let stage = e.stage.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        *by_kind
            .entry(format!("{}/{}", e.kind, e.status.as_str()))
            .or_default()
            .entry(stage)
            .or_default() += 1;
        if e.status.as_str() == "blocked" {
            *blocked
                .entry(e.reason.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    let bands = band_moves(d);
    serde_json::json!({
        "accounts": d.portfolio.accounts.len(),
        "personas": portfolio::personas(&d.portfolio).iter()
            .map(|(p, n)| (p.label().to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "events": {"read": d.sim.events_read, "accepted": d.sim.accepted,
            "rejected": d.sim.rejected.len()},
        "runs": d.sim.runs,
        "ingest_invocations": {"http": d.sim.ingest_requests, "sns": d.sim.feedback_invocations},
        "deliveries": d.sim.deliveries.len(),
        "by_kind_status_stage": by_kind,
        "blocked_by_reason": blocked,
        "ses_feedback": d.sim.feedback,
        "band_movements": bands,
        "onboarding": {"cohort": d.kpis.cohort, "completed": d.kpis.completed,
            "completion_rate": d.kpis.completion_rate,
            "median_days_to_first_value": d.kpis.median_days_to_first_value,
            "active_rate": d.kpis.active_rate},
    })
}

/// Band changes between consecutive non-provisional scores, as "green->red": count.
pub fn band_moves(d: &DemoData) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for snaps in d.snapshots.values() {
        let bands: Vec<&str> = snaps
            .iter()
            .filter(|s| !s.provisional)
            .map(|s| s.band.as_str())
            .collect();
        for w in bands.windows(2) {
            if w[0] != w[1] {
                *m.entry(format!("{}->{}", w[0], w[1])).or_default() += 1;
            }
        }
    }
    m
}
