//! `nudge bench`: every capability's figures in one run against the local stack, printed as
//! one table and written as JSON (for comparison across commits): ingest, delivery,
//! reminders, milestones and health in-process (request units, throughput), then every
//! function's release bootstrap and the Python + boto3 peer through the local runtime API
//! (`bench_lambda.rs`: cold start, RSS, CPU per event and per account). Figures are printed,
//! never asserted; the only failures are a run that did not do its work.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::bench::{self, IngestFigures, RemindersBench, RemindersFigures};
use crate::bench_delivery::DeliveryBench;
use crate::bench_lambda::{self, Comparison, LambdaFigures};
use crate::local::{LocalStack, repo_root};

/// Sizes of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub ingest_batches: usize,
    pub delivery_nudges: usize,
    pub reminders_deadlines: usize,
    pub reminders_due: usize,
    pub milestones_programs: usize,
    pub milestones_firsts: usize,
    pub health_accounts: usize,
    pub bootstrap_accounts: usize,
    pub cold_starts: usize,
}

impl Sizes {
    pub fn of(quick: bool) -> Sizes {
        if quick { Sizes::quick() } else { Sizes::full() }
    }

    /// The Lambda section's options at these sizes.
    pub fn lambda(&self, bootstraps: PathBuf, python: Option<PathBuf>) -> bench_lambda::Options {
        bench_lambda::Options {
            bootstraps,
            python,
            cold_starts: self.cold_starts,
            ingest_batches: self.ingest_batches,
            health_accounts: self.bootstrap_accounts,
        }
    }

    pub fn full() -> Sizes {
        Sizes {
            ingest_batches: 20,
            delivery_nudges: 20,
            reminders_deadlines: 100_000,
            reminders_due: 1_000,
            milestones_programs: 100_000,
            milestones_firsts: 500,
            health_accounts: 1_000,
            bootstrap_accounts: 1_000,
            cold_starts: 5,
        }
    }

    /// A smoke run: every measurement, at sizes that take a minute or two.
    pub fn quick() -> Sizes {
        Sizes {
            ingest_batches: 2,
            delivery_nudges: 5,
            reminders_deadlines: 2_000,
            reminders_due: 50,
            milestones_programs: 2_000,
            milestones_firsts: 50,
            health_accounts: 100,
            bootstrap_accounts: 100,
            cold_starts: 1,
        }
    }
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub commit: String,
    pub quick: bool,
    pub machine: Machine,
    pub database: &'static str,
    pub sizes: Sizes,
    pub ingest: IngestFigures,
    pub delivery: DeliveryBench,
    pub reminders: RemindersFigures,
    pub milestones: Value,
    pub health: Value,
    pub lambda: LambdaFigures,
}

pub struct Options {
    pub quick: bool,
    pub bootstraps: PathBuf,
    pub python: Option<PathBuf>,
}

pub async fn run(stack: &LocalStack, opts: &Options) -> Result<Report> {
    let sizes = Sizes::of(opts.quick);
    eprintln!("bench: ingest (in-process) ...");
    let ingest = bench::ingest(stack, sizes.ingest_batches).await?;
    eprintln!("bench: delivery ...");
    let delivery = bench::delivery(stack, sizes.delivery_nudges).await?;
    eprintln!("bench: reminders ...");
    let reminders = bench::reminders(
        stack,
        RemindersBench {
            deadlines: sizes.reminders_deadlines,
            due: sizes.reminders_due,
            runs: if opts.quick { 3 } else { 9 },
        },
    )
    .await?;
    eprintln!("bench: milestones ...");
    let milestones = crate::bench_milestones::bench_milestones(
        stack,
        sizes.milestones_programs,
        sizes.milestones_firsts,
    )
    .await?;
    eprintln!("bench: health ...");
    let health = crate::bench_health::bench_health(
        stack,
        sizes.health_accounts,
        sizes.health_accounts,
        None,
    )
    .await?;
    let lambda = bench_lambda::bench(
        stack,
        &sizes.lambda(opts.bootstraps.clone(), opts.python.clone()),
    )
    .await?;
    Ok(Report {
        commit: commit(),
        quick: opts.quick,
        machine: machine(),
        database: "DynamoDB Local (SES v2, SNS and SQS: moto)",
        sizes,
        ingest,
        delivery,
        reminders,
        milestones,
        health,
        lambda,
    })
}

/// Writes the JSON report to `path` (creating its directory).
pub fn write_json(report: &Report, path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_f64()
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The report as a Markdown table: capability, figure, value.
pub fn table(r: &Report) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |a: &str, b: String, c: String| rows.push((a.into(), b, c));
    let i = &r.ingest;
    row(
        "ingest",
        "write units per usage event (cold / warm container; duplicate)".into(),
        format!(
            "{:.2} / {:.2} WCU; {:.2} WCU",
            i.wcu_per_event_cold, i.wcu_per_event_warm, i.wcu_per_duplicate
        ),
    );
    row(
        "ingest",
        "requests per usage event (cold / warm)".into(),
        format!(
            "{:.2} / {:.2}",
            i.requests_per_event_cold, i.requests_per_event_warm
        ),
    );
    row(
        "ingest",
        "events/s through the handler vs a bare BatchWriteItem loop".into(),
        format!(
            "{:.0} vs {:.0} items/s: ratio {:.2}",
            i.handler_events_per_s, i.bare_loop_items_per_s, i.handler_over_bare_loop
        ),
    );
    row(
        "ingest",
        format!(
            "verify + parse + validate a {} KiB, 500-event body",
            i.body_bytes / 1024
        ),
        format!(
            "{:.2} ms (HMAC {:.2}, parse + validate {:.2})",
            i.verify_parse_validate_ms, i.verify_ms, i.parse_validate_ms
        ),
    );
    comparison_rows(&mut row, &r.lambda.ingest);
    let d = &r.delivery;
    for (what, u) in [
        ("per nudge recorded", d.record),
        ("per sent transactional nudge", d.sent_transactional),
        ("per sent marketing nudge", d.sent_marketing),
        ("per blocked nudge", d.blocked),
    ] {
        row(
            "delivery",
            what.into(),
            format!(
                "{:.2} RRU, {:.2} WRU, {:.1} requests",
                u.read_units, u.write_units, u.requests
            ),
        );
    }
    let m = &r.reminders;
    row(
        "reminders",
        format!("idle run, {} deadlines stored", m.deadlines_stored),
        format!(
            "{} requests, {:.1} ms; billed floor {:.1} RRU",
            m.idle_run_requests, m.idle_run_ms, m.idle_run_billed_rru
        ),
    );
    row(
        "reminders",
        format!("per final stage due ({} due)", m.due),
        format!(
            "{:.2} RRU, {:.2} WRU; {:.0} sends/s to moto",
            m.rru_per_send, m.wru_per_send, m.sends_per_s
        ),
    );
    let ms = &r.milestones;
    row(
        "milestones",
        format!(
            "idle hourly run, {} programs stored",
            r.sizes.milestones_programs
        ),
        format!(
            "{} requests, {} ms; billed floor {} RRU",
            f(num(ms, &["empty_hourly_run", "requests"]), 0),
            f(num(ms, &["empty_hourly_run", "wall_ms"]), 1),
            f(num(ms, &["empty_hourly_run", "billed_floor_rru"]), 1)
        ),
    );
    row(
        "milestones",
        "per congratulation: planned at ingest / delivered".into(),
        format!(
            "{} RRU + {} WRU / {} RRU + {} WRU",
            f(
                num(ms, &["per_congratulation_planned_at_ingest", "read_units"]),
                2
            ),
            f(
                num(ms, &["per_congratulation_planned_at_ingest", "write_units"]),
                2
            ),
            f(num(ms, &["per_congratulation_delivered", "read_units"]), 2),
            f(num(ms, &["per_congratulation_delivered", "write_units"]), 2),
        ),
    );
    let h = &r.health;
    row(
        "health",
        format!(
            "daily run, {} accounts, steady day: units per account",
            r.sizes.health_accounts
        ),
        format!(
            "{} RRU, {} WRU; {} accounts/s",
            f(num(h, &["next_day_steady", "read_units_per_account"]), 2),
            f(num(h, &["next_day_steady", "write_units_per_account"]), 2),
            f(num(h, &["next_day_steady", "accounts_per_s"]), 0),
        ),
    );
    row(
        "health",
        format!(
            "first day, plays made and delivered, {} accounts: units per account",
            r.sizes.health_accounts
        ),
        format!(
            "{} RRU, {} WRU",
            f(
                num(
                    h,
                    &["first_day_with_plays_delivered", "read_units_per_account"]
                ),
                2
            ),
            f(
                num(
                    h,
                    &["first_day_with_plays_delivered", "write_units_per_account"]
                ),
                2
            ),
        ),
    );
    row(
        "health",
        "pure scoring, one core".into(),
        format!(
            "{} accounts/s",
            f(num(h, &["pure_scoring_accounts_per_s_one_core"]), 0)
        ),
    );
    comparison_rows(&mut row, &r.lambda.health);
    for c in &r.lambda.cold_starts {
        let size = c.bytes.map_or_else(String::new, |b| {
            format!(", {:.2} MiB", b as f64 / 1048576.0)
        });
        let over = r
            .lambda
            .init_over_empty
            .get(&c.name)
            .map_or_else(String::new, |x| format!(" ({x:.2}x the empty handler)"));
        row(
            "cold start",
            format!("{} ({}{size})", c.name, c.runtime),
            format!(
                "init {:.1} ms{over}, first request {:.1} ms, peak RSS {:.1} MiB",
                c.init_ms, c.first_request_ms, c.peak_rss_mib
            ),
        );
        if let Some(w) = &c.without_connect_at_init {
            row(
                "cold start",
                format!("{} without the connection opened at init", c.name),
                format!(
                    "init {:.1} ms, first request {:.1} ms",
                    w.init_ms, w.first_request_ms
                ),
            );
        }
    }
    let mut out = format!(
        "Nudge bench at {}{} on {} ({} cores, {} GiB), {}\n\n| capability | figure | value |\n|---|---|---|\n",
        r.commit,
        if r.quick { " (--quick)" } else { "" },
        r.machine.cpu,
        r.machine.cores,
        r.machine.memory_gib,
        r.database
    );
    for (a, b, c) in rows {
        out.push_str(&format!("| {a} | {b} | {c} |\n"));
    }
    out
}

fn comparison_rows(row: &mut impl FnMut(&str, String, String), c: &Comparison) {
    for w in std::iter::once(&c.rust).chain(c.python.as_ref()) {
        row(
            c.workload,
            format!(
                "{} bootstrap: CPU per {}, {}s/s ({} {}s)",
                w.runtime, c.unit, c.unit, w.units, c.unit
            ),
            format!(
                "{:.1} µs, {:.0}/s; peak RSS {:.1} MiB",
                w.cpu_us_per_unit, w.units_per_s, w.peak_rss_mib
            ),
        );
    }
    if let Some(x) = &c.python_over_rust {
        row(
            c.workload,
            "Python + boto3 over Rust: CPU per unit, init, peak RSS".into(),
            format!(
                "{:.1}x, {:.1}x, {:.1}x (same result: {})",
                x.cpu_per_unit,
                x.init,
                x.peak_rss,
                c.same_result.join("; ")
            ),
        );
    }
}
