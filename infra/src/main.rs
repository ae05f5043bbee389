//! `nudge`: the operator CLI.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{CommandFactory, Parser, Subcommand};
use nudge_infra::local::{LOCAL_SECRET, LocalStack, repo_root};
use nudge_infra::simulate::{EventSource, SimulateOptions, simulate};
use nudge_infra::target::Target;
use nudge_infra::{bench, health_cli, kpi, ops, preview, send};
use nudge_shared::domain::{Locale, NudgeKind, Role};

#[derive(Parser)]
#[command(
    name = "nudge",
    version,
    about = "Nudge operator CLI: simulate journeys, run the demo, send events",
    after_help = "Exit codes: 0 done, 1 failed (AWS, the table, an unknown account), 2 usage \
                  (a bad option or value).\n\
                  Table commands go to the local stack after `eval \"$(infra/stack.sh env)\"`, \
                  or to a deployed stack with --profile NAME [--region R] --table T."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay events through the real handlers against the local stack and write the delivery log.
    Simulate {
        /// Events, one JSON object per line (the ingest event shape).
        #[arg(long)]
        events: PathBuf,
        /// Start of the simulated window (RFC 3339).
        #[arg(long)]
        from: DateTime<Utc>,
        /// End of the simulated window (RFC 3339).
        #[arg(long)]
        to: DateTime<Utc>,
        /// Where to write the delivery log (JSON lines); stdout when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the simulation's DynamoDB table for inspection.
        #[arg(long)]
        keep_table: bool,
    },
    /// Generate a portfolio from a seed, simulate it through every function and write the
    /// delivery log, the events and a self-contained HTML report.
    Demo {
        /// Output directory for deliveries.jsonl, events.jsonl and report.html.
        #[arg(long, default_value = ".nudge/demo")]
        out_dir: PathBuf,
        #[command(flatten)]
        portfolio: PortfolioArgs,
        /// The summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Simulate the generated portfolio without and with faults (throttling, server errors,
    /// timeouts, lost answers, crashed invocations) and compare the nudges that left: exit 1
    /// if one was lost or sent twice.
    Faults {
        /// Share of requests that fail and of invocations that crash (0 to 0.5).
        #[arg(long, default_value_t = 0.1, value_parser = parse_rate)]
        rate: f64,
        /// Seed of the fault draws.
        #[arg(long, default_value_t = 1)]
        fault_seed: u64,
        #[command(flatten)]
        portfolio: PortfolioArgs,
        /// The comparison as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Keep both simulations' tables for inspection.
        #[arg(long)]
        keep_tables: bool,
    },
    /// Write the generated portfolio's events (JSON lines) for `nudge simulate --events`.
    Portfolio {
        #[command(flatten)]
        portfolio: PortfolioArgs,
        /// Where to write them; stdout when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every capability's performance figures in one run (infra/bench.sh builds what it needs
    /// and runs it): one table on stdout, the same as JSON; or one capability's figures alone
    /// (use an optimised build: --profile fast)
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchWhat>,
        #[command(flatten)]
        run: BenchRun,
        /// Where to write the JSON report.
        #[arg(long, default_value = ".nudge/bench/bench.json")]
        json: PathBuf,
    },
    /// Create a table shaped like template.yaml's in the local DynamoDB (for `cargo lambda
    /// watch` / `sam local` runs with NUDGE_TABLE set to it).
    CreateTable {
        #[arg(long, default_value = "nudge-local")]
        name: String,
    },
    /// The health model as data: show, list, set, activate, compare, backtest.
    Model {
        #[command(subcommand)]
        what: ModelCmd,
        #[command(flatten)]
        target: Target,
    },
    /// One account's health: score, band, tier, phase, every driver, what changed since the
    /// day before, and the last 30 days.
    Explain {
        account: String,
        /// The account-local day (default: the latest score).
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// The CSM priority list, most at stake first: high-ARR accounts with low or falling NPS
    /// (with the latest comment), then red accounts by ARR, then stalled onboarding; each row
    /// says why it is there and a next step.
    Queue {
        /// Rank as of this time (RFC 3339; default: now).
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// An array of rows instead of the table.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "NUDGE_HEALTH_INDEX_SHARDS", default_value_t = 8)]
        index_shards: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Onboarding KPIs of the accounts whose contract starts within FROM..=TO: completion rate
    /// and its per-step funnel, median days to complete, time to first value, active rate and
    /// milestones reached.
    ///
    /// As of --at, with the active health model's plans and thresholds. Complete: every step of
    /// the account's plan done (a first report also completes `first_report`). Days are counted
    /// from the contract's first local midnight; time to first value runs to the first report.
    /// Active: at least `active_uses` key-feature uses in the `active_days` local days before
    /// --at. Milestones: `milestone` messages sent, by stage, and the accounts that got one.
    Kpi {
        /// The cohort's first contract-start date (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// The cohort's last contract-start date (YYYY-MM-DD), included.
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// As of this time (RFC 3339; default: now): later steps, uses and messages do not count.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// The figures as JSON (rates as shares, 0 to 1) instead of the summary.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "NUDGE_HEALTH_INDEX_SHARDS", default_value_t = 8)]
        index_shards: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Render a message as its recipient would get it, from sample data and the kind's own
    /// planner (no AWS): subject and plain text, or the HTML body.
    ///
    /// The sample is an account with an admin, an executive and a user, in Tokyo (ja) or New
    /// York (en). NUDGE_COMPANY_NAME, NUDGE_PRODUCT_NAME, NUDGE_APP_URL and
    /// NUDGE_PUBLIC_BASE_URL are read like the functions read them. Links are signed with a
    /// preview key and work nowhere.
    Preview {
        /// The message kind (deadline_reminder, onboarding_welcome, milestone, ...).
        #[arg(value_parser = parse_kind)]
        kind: NudgeKind,
        /// The recipient's language.
        #[arg(long, default_value = "en", value_parser = parse_locale)]
        locale: Locale,
        /// The recipient's role (default: whom the planner addresses first, usually the admin).
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// The account's plan (premium and enterprise get the coaching offer).
        #[arg(long, default_value = "standard")]
        plan: String,
        /// The stage (default: the kind's first; an unknown one lists the valid ones).
        #[arg(long)]
        stage: Option<String>,
        /// Print the HTML body instead (customer emails only).
        #[arg(long, conflicts_with = "json")]
        html: bool,
        /// Everything as one JSON object: recipient, subject, text, HTML, template variables.
        #[arg(long)]
        json: bool,
    },
    /// The delivery log as stored: what was sent, blocked or failed, oldest first.
    ///
    /// The table view masks addresses; --json prints each entry as stored, one per line.
    /// Without --account it scans the whole table: on a large deployed table, name the account.
    Log {
        /// One account (a key range: cheap with --since).
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// Only this kind.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<NudgeKind>,
        /// Entries at or after this time: RFC 3339 or YYYY-MM-DD (UTC midnight).
        #[arg(long, value_parser = ops::parse_since)]
        since: Option<DateTime<Utc>>,
        /// Show the most recent N entries of what matched (0: all).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// JSON lines, as stored (addresses included).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Pause automation for an account, as a customer reply does: its customer messages are
    /// blocked (logged as account_paused) until `nudge resume` or --until; CSM alerts still go.
    Pause {
        account: String,
        /// End the pause by itself at this time (RFC 3339 or YYYY-MM-DD, UTC midnight).
        #[arg(long, value_parser = ops::parse_since)]
        until: Option<DateTime<Utc>>,
        /// Why (shown by `nudge pause` and `resume`; default: "paused by an operator").
        #[arg(long)]
        reason: Option<String>,
        /// What changed as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Resume automation for an account (as `automation_resumed` does). Messages blocked while
    /// it was paused are not sent again.
    Resume {
        account: String,
        /// What changed as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Erase one contact's personal data: the contact item (profile, unsubscribes, cap
    /// state), their pending nudges (cancelled), the variables of their nudges, the address
    /// and subject of their delivery-log entries, the personal properties of their raw events
    /// (address, name, phone, comments, deadline titles and links), their deadlines' titles
    /// and links, and their NPS comments (scores stay). A suppression of the address stays
    /// (hashed).
    EraseContact {
        account: String,
        contact: String,
        /// What changed as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Sign and POST events (JSON lines or {"events": [...]}) to an ingest endpoint.
    SendEvents {
        file: PathBuf,
        /// The endpoint, e.g. https://abc.execute-api.us-east-1.amazonaws.com/events
        #[arg(long, env = "NUDGE_INGEST_URL")]
        url: String,
        /// The signing secret (the deployed one is in Secrets Manager: see the README).
        #[arg(long, env = "NUDGE_SIGNING_SECRET", hide_env_values = true)]
        secret: String,
    },
}

/// The generated portfolio: same seed, same events.
#[derive(clap::Args)]
struct PortfolioArgs {
    #[arg(long, default_value_t = 20261101)]
    seed: u64,
    /// Accounts in the portfolio.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=2000))]
    accounts: u16,
    /// Days simulated.
    #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,
    /// First simulated day (UTC midnight); existing customers have three weeks of history before.
    #[arg(long, default_value = "2026-11-01", value_parser = parse_date)]
    from: NaiveDate,
}

impl PortfolioArgs {
    fn options(&self, out_dir: PathBuf) -> nudge_infra::demo::DemoOptions {
        nudge_infra::demo::DemoOptions {
            seed: self.seed,
            accounts: usize::from(self.accounts),
            from: self.from.and_time(chrono::NaiveTime::MIN).and_utc(),
            days: self.days,
            out_dir,
        }
    }
}

#[derive(Subcommand)]
enum ModelCmd {
    /// The active model (or VERSION) as JSON, with the active and shadow versions.
    Show { version: Option<String> },
    /// Stored versions.
    List,
    /// Validate FILE and store it under its "version" (versions never change).
    Set { file: PathBuf },
    /// Score with VERSION from the next daily run (`default`: the built-in model).
    Activate {
        version: String,
        /// Run it beside the active model instead (its scores are stored too).
        #[arg(long)]
        shadow: bool,
    },
    /// Accounts whose band the shadow model moves, on DATE (default: today).
    Compare {
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long, env = "NUDGE_HEALTH_INDEX_SHARDS", default_value_t = 8)]
        index_shards: u32,
    },
    /// Replay the kept raw events of every account over FROM..TO with each model and report
    /// precision and recall of the red band against `churned` within the horizon.
    Backtest {
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        /// Days before a churn in which a red band counts as a warning.
        #[arg(long, default_value_t = 90)]
        horizon: i64,
        /// Versions to compare (default: the active and the shadow one); `default` = built-in.
        #[arg(long = "model")]
        models: Vec<String>,
        #[arg(long, env = "NUDGE_HEALTH_INDEX_SHARDS", default_value_t = 8)]
        index_shards: u32,
        #[arg(long)]
        json: bool,
    },
}

/// What `nudge bench` and `nudge bench lambda` run against.
#[derive(clap::Args)]
struct BenchRun {
    /// A smoke run: every measurement at small sizes, one cold start each.
    #[arg(long)]
    quick: bool,
    /// The directory of the functions' release binaries and the empty handler's
    /// (`cargo build --release -p ingest -p health -p reminders -p milestones -p empty-handler`).
    #[arg(long, default_value = "target/release")]
    bootstraps: PathBuf,
    /// The Python of the peer's virtualenv (infra/peer/install.sh makes it).
    #[arg(long, default_value = ".nudge/peer-venv/bin/python")]
    python: PathBuf,
    /// Skip the Python + boto3 peer.
    #[arg(long)]
    no_peer: bool,
}

impl BenchRun {
    /// The bootstraps' directory and the peer's Python (`None`: skipped), from the repository
    /// root; fails when the peer is wanted but not installed.
    fn paths(&self) -> Result<(PathBuf, Option<PathBuf>)> {
        let root = repo_root();
        let python = root.join(&self.python);
        anyhow::ensure!(
            self.no_peer || python.is_file(),
            "{} is missing: run infra/peer/install.sh (or pass --no-peer)",
            python.display()
        );
        Ok((
            root.join(&self.bootstraps),
            (!self.no_peer).then_some(python),
        ))
    }
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Request units per recorded, sent (transactional / marketing) and blocked nudge.
    Delivery {
        /// Nudges per measurement.
        #[arg(long, default_value_t = 20)]
        n: usize,
    },
    /// Write units per event, throughput vs. raw BatchWriteItem, parse/verify time, peak RSS,
    /// bootstrap size.
    Ingest,
    /// DynamoDB read units and wall time of a reminders run with 100,000 deadlines stored and
    /// nothing due; then units and sends/s of a run with 1,000 stages due (against moto).
    Reminders {
        /// Deadlines stored (each with its three pending stages).
        #[arg(long, default_value_t = 100_000)]
        deadlines: usize,
        /// Stages due in the send measurement.
        #[arg(long, default_value_t = 1_000)]
        due: usize,
        /// Empty runs measured (successive 15-minute slots).
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
    /// The hourly milestones run with nothing due over 100,000 programs stored; request units
    /// per congratulation planned at ingest and delivered.
    Milestones {
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 500)]
        firsts: usize,
    },
    /// Read/write units per account and accounts/s of the daily health run, pure scoring
    /// accounts/s on one core, backtest replay time.
    Health {
        #[arg(long, default_value_t = 1_000)]
        accounts: usize,
        #[arg(long, default_value_t = 1_000)]
        backtest_accounts: usize,
        /// Account-index shards (work items); default: NUDGE_HEALTH_INDEX_SHARDS or 8.
        #[arg(long)]
        shards: Option<u32>,
    },
    /// The Lambda figures alone: cold starts, RSS, CPU per event and per account of the release
    /// bootstraps and the Python + boto3 peer, through the local runtime API.
    Lambda {
        #[command(flatten)]
        run: BenchRun,
    },
    /// (internal) the peak-RSS child process of `bench ingest`.
    #[command(hide = true)]
    IngestRss,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate {
            events,
            from,
            to,
            out,
            keep_table,
        } => {
            let stack = LocalStack::ensure_running()?;
            let mut opts = SimulateOptions::new(EventSource::File(events), from, to);
            opts.keep_table = keep_table;
            let r = simulate(&stack, &opts).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, r.delivery_jsonl())
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "delivery log: {} ({} lines)",
                        path.display(),
                        r.deliveries.len()
                    );
                }
                None => print!("{}", r.delivery_jsonl()),
            }
            print_summary(&r);
        }
        Command::Demo {
            out_dir,
            portfolio,
            json,
        } => {
            let stack = LocalStack::ensure_running()?;
            let out = nudge_infra::demo::run(&stack, &portfolio.options(out_dir)).await?;
            print_summary(&out.data.sim);
            let summary = nudge_infra::demo::summary(&out.data);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                eprintln!(
                    "ingest invocations: {} HTTP requests (event batches), {} SNS deliveries (SES feedback)",
                    out.data.sim.ingest_requests, out.data.sim.feedback_invocations
                );
                if let Some(kinds) = summary["by_kind_status_stage"].as_object() {
                    eprintln!("by kind, status and stage:");
                    for (kind, stages) in kinds {
                        eprintln!("  {kind}: {stages}");
                    }
                }
                eprintln!("blocked by reason: {}", summary["blocked_by_reason"]);
                eprintln!("band movements: {}", summary["band_movements"]);
                eprintln!("SES feedback: {}", summary["ses_feedback"]);
                eprintln!("onboarding: {}", summary["onboarding"]);
            }
            eprintln!("events:       {}", out.events.display());
            eprintln!("delivery log: {}", out.deliveries.display());
            eprintln!("report:       {}", out.report.display());
        }
        Command::Faults {
            rate,
            fault_seed,
            portfolio,
            json,
            keep_tables,
        } => {
            if std::env::var_os("RUST_LOG").is_some() {
                nudge_shared::telemetry::init();
            }
            let stack = LocalStack::ensure_running()?;
            let o = portfolio.options(PathBuf::new());
            let p = nudge_infra::portfolio::generate(o.seed, o.accounts, o.from, o.days);
            let proof =
                nudge_infra::resilience::prove(&stack, &p, rate, fault_seed, keep_tables).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&proof)?);
            } else {
                print_proof(&proof);
            }
            if !proof.holds() {
                std::process::exit(1);
            }
        }
        Command::Portfolio { portfolio, out } => {
            let o = portfolio.options(PathBuf::new());
            let p = nudge_infra::portfolio::generate(o.seed, o.accounts, o.from, o.days);
            match out {
                Some(path) => {
                    std::fs::write(&path, p.jsonl())
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "{} events of {} accounts: {} (simulate with --from {} --to {})",
                        p.events.len(),
                        p.accounts.len(),
                        path.display(),
                        p.from.to_rfc3339(),
                        p.to.to_rfc3339()
                    );
                }
                None => print!("{}", p.jsonl()),
            }
        }
        Command::Bench {
            what: None,
            run,
            json,
        } => {
            let stack = LocalStack::ensure_running()?;
            let (bootstraps, python) = run.paths()?;
            let opts = nudge_infra::bench_all::Options {
                quick: run.quick,
                bootstraps,
                python,
            };
            let report = nudge_infra::bench_all::run(&stack, &opts).await?;
            let json = repo_root().join(json);
            nudge_infra::bench_all::write_json(&report, &json)?;
            print!("{}", nudge_infra::bench_all::table(&report));
            eprintln!("bench: the same figures as JSON in {}", json.display());
        }
        Command::Bench {
            what: Some(what), ..
        } => {
            let stack = LocalStack::ensure_running()?;
            match what {
                BenchWhat::Ingest => {
                    bench::ingest(&stack, 20).await?;
                    let exe = std::env::current_exe()?;
                    let out = std::process::Command::new(exe)
                        .args(["bench", "ingest-rss"])
                        .output()
                        .context("running the RSS child")?;
                    print!("{}", String::from_utf8_lossy(&out.stdout));
                    eprint!("{}", String::from_utf8_lossy(&out.stderr));
                    let bootstrap = repo_root().join("target/lambda/ingest/bootstrap");
                    match std::fs::metadata(&bootstrap) {
                        Ok(m) => println!(
                            "release bootstrap {}: {:.2} MB",
                            bootstrap.display(),
                            m.len() as f64 / 1_000_000.0
                        ),
                        Err(_) => println!(
                            "release bootstrap: not built (run `cargo lambda build --release --arm64`)"
                        ),
                    }
                }
                BenchWhat::IngestRss => bench::ingest_rss_child(&stack).await?,
                BenchWhat::Lambda { run } => {
                    let (bootstraps, python) = run.paths()?;
                    let opts =
                        nudge_infra::bench_all::Sizes::of(run.quick).lambda(bootstraps, python);
                    let figures = nudge_infra::bench_lambda::bench(&stack, &opts).await?;
                    println!("{}", serde_json::to_string_pretty(&figures)?);
                }
                BenchWhat::Delivery { n } => {
                    bench::delivery(&stack, n).await?;
                }
                BenchWhat::Reminders {
                    deadlines,
                    due,
                    runs,
                } => {
                    let opts = bench::RemindersBench {
                        deadlines,
                        due,
                        runs: runs.max(1),
                    };
                    bench::reminders(&stack, opts).await?;
                }
                BenchWhat::Milestones { accounts, firsts } => {
                    let figures =
                        nudge_infra::bench_milestones::bench_milestones(&stack, accounts, firsts)
                            .await?;
                    println!("{}", serde_json::to_string_pretty(&figures)?);
                }
                BenchWhat::Health {
                    accounts,
                    backtest_accounts,
                    shards,
                } => {
                    let figures = nudge_infra::bench_health::bench_health(
                        &stack,
                        accounts,
                        backtest_accounts,
                        shards,
                    )
                    .await?;
                    println!("{}", serde_json::to_string_pretty(&figures)?);
                }
            }
        }
        Command::CreateTable { name } => {
            let stack = LocalStack::ensure_running()?;
            stack.create_table(&name).await?;
            stack.prepare_messaging().await?;
            println!("created table {name} in {}", stack.dynamodb_url);
        }
        Command::Model { what, target } => {
            let store = store_of(&target, "model").await?;
            let out = match what {
                ModelCmd::Show { version } => {
                    health_cli::model_show(&store, version.as_deref()).await?
                }
                ModelCmd::List => health_cli::model_list(&store).await?,
                ModelCmd::Set { file } => health_cli::model_set(&store, &file, Utc::now()).await?,
                ModelCmd::Activate { version, shadow } => {
                    health_cli::model_activate(&store, &version, shadow).await?
                }
                ModelCmd::Compare { date, index_shards } => {
                    let accounts: Vec<String> = health_cli::all_accounts(&store, index_shards)
                        .await?
                        .into_iter()
                        .map(|a| a.account_id)
                        .collect();
                    let day = date.unwrap_or_else(|| Utc::now().date_naive());
                    health_cli::model_compare(&store, &accounts, day).await?
                }
                ModelCmd::Backtest {
                    from,
                    to,
                    horizon,
                    models,
                    index_shards,
                    json,
                } => {
                    let models = health_cli::backtest_models(&store, &models).await?;
                    let (text, value) = health_cli::model_backtest(
                        &store,
                        &models,
                        index_shards,
                        from,
                        to,
                        horizon,
                    )
                    .await?;
                    if json {
                        serde_json::to_string_pretty(&value)?
                    } else {
                        text
                    }
                }
            };
            println!("{}", out.trim_end());
        }
        Command::Explain {
            account,
            date,
            json,
            target,
        } => {
            let store = store_of(&target, "explain").await?;
            println!(
                "{}",
                health_cli::explain(&store, &account, date, json)
                    .await?
                    .trim_end()
            );
        }
        Command::Queue {
            at,
            json,
            index_shards,
            target,
        } => {
            let store = store_of(&target, "queue").await?;
            let now = at.unwrap_or_else(Utc::now);
            println!(
                "{}",
                health_cli::queue(&store, index_shards, now, json)
                    .await?
                    .trim_end()
            );
        }
        Command::Kpi {
            from,
            to,
            at,
            json,
            index_shards,
            target,
        } => {
            if from > to {
                // A usage error like clap's own: its message shape and exit code 2.
                let mut cli = Cli::command();
                cli.build();
                let msg = format!("--from ({from}) is after --to ({to})");
                let kind = clap::error::ErrorKind::ValueValidation;
                match cli.find_subcommand_mut("kpi") {
                    Some(sub) => sub.error(kind, msg).exit(),
                    None => cli.error(kind, msg).exit(),
                }
            }
            let store = store_of(&target, "kpi").await?;
            let now = at.unwrap_or_else(Utc::now);
            println!(
                "{}",
                kpi::kpi(&store, index_shards, from, to, now, json)
                    .await?
                    .trim_end()
            );
        }
        Command::Preview {
            kind,
            locale,
            role,
            plan,
            stage,
            html,
            json,
        } => {
            let req = preview::PreviewRequest {
                kind,
                stage,
                locale,
                role,
                plan,
            };
            let env = |k: &str| std::env::var(k).ok();
            let out = match preview::render(&req, env).await {
                Ok(out) => out,
                Err(e) => match e.downcast_ref::<preview::Usage>() {
                    Some(u) => usage_error("preview", &u.0),
                    None => return Err(e),
                },
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&out.json())?);
            } else if html {
                match out.html() {
                    Ok(h) => print!("{h}"),
                    Err(u) => usage_error("preview", &u.0),
                }
            } else {
                print!("{}", out.text());
            }
        }
        Command::Log {
            account,
            kind,
            since,
            limit,
            json,
            target,
        } => {
            let store = store_of(&target, "log").await?;
            let q = ops::LogQuery {
                account,
                kind,
                since,
                limit: (limit > 0).then_some(limit),
            };
            let entries = ops::log_entries(&store, &q).await?;
            if json {
                print!("{}", ops::log_json(&entries)?);
            } else {
                print!("{}", ops::log_table(&entries));
            }
        }
        Command::Pause {
            account,
            until,
            reason,
            json,
            target,
        } => {
            let now = Utc::now();
            if until.is_some_and(|u| u <= now) {
                usage_error("pause", "--until is not in the future");
            }
            let store = store_of(&target, "pause").await?;
            let change = ops::pause(&store, &account, until, reason.as_deref(), now).await?;
            print_change(&change, &target, json)?;
        }
        Command::Resume {
            account,
            json,
            target,
        } => {
            let store = store_of(&target, "resume").await?;
            let change = ops::resume(&store, &account, Utc::now()).await?;
            print_change(&change, &target, json)?;
        }
        Command::EraseContact {
            account,
            contact,
            json,
            target,
        } => {
            let store = store_of(&target, "erase-contact").await?;
            let erased = ops::erase_contact(&store, &account, &contact, Utc::now()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&erased.json())?);
            } else {
                print!(
                    "{}",
                    erased.text(&target.describe(|k| std::env::var(k).ok()))
                );
            }
        }
        Command::SendEvents { file, url, secret } => {
            let events = send::read_events(&file)?;
            if secret == LOCAL_SECRET {
                eprintln!("note: using the local development secret");
            }
            let s = send::send_events(&url, secret.as_bytes(), &events).await?;
            println!(
                "batches {} accepted {} duplicates {} rejected {} unsent {}",
                s.batches,
                s.accepted,
                s.duplicates,
                s.rejected.len(),
                s.unsent
            );
            for r in &s.rejected {
                println!("rejected: {r}");
            }
            if s.unsent > 0 {
                anyhow::bail!("{} events could not be stored after retries", s.unsent);
            }
        }
    }
    Ok(())
}

/// The table of `target`; options that contradict the environment are a usage error of
/// `command` (exit code 2) before any call is made.
async fn store_of(
    target: &Target,
    command: &str,
) -> Result<nudge_shared::store::dynamo::DynamoStore> {
    if let Some(problem) = target.conflict(|k| std::env::var(k).ok()) {
        usage_error(command, &problem);
    }
    target.store().await
}

/// Exits with clap's usage message shape and code (2), like clap's own errors.
fn usage_error(command: &str, msg: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let kind = clap::error::ErrorKind::ValueValidation;
    match cli.find_subcommand_mut(command) {
        Some(sub) => sub.error(kind, msg).exit(),
        None => cli.error(kind, msg).exit(),
    }
}

fn print_change(change: &ops::PauseChange, target: &Target, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&change.json())?);
    } else {
        print!(
            "{}",
            change.text(&target.describe(|k| std::env::var(k).ok()))
        );
    }
    Ok(())
}

/// A message kind, with the valid ones listed on a mistake.
fn parse_kind(s: &str) -> Result<NudgeKind, String> {
    NudgeKind::parse(s.trim()).ok_or_else(|| {
        let kinds: Vec<&str> = NudgeKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind; valid kinds: {}", kinds.join(", "))
    })
}

fn parse_locale(s: &str) -> Result<Locale, String> {
    s.parse().map_err(|_| "expected ja or en".to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|_| "expected admin, executive or user".to_string())
}

/// A calendar date for `--from` / `--to`, with a message that shows the expected shape.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{e}: expected a date like 2026-11-01 (YYYY-MM-DD)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.0..=0.5).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is outside 0 to 0.5"))
    }
}

fn print_proof(p: &nudge_infra::resilience::Proof) {
    for side in [&p.clean, &p.faulted] {
        println!(
            "{:>4.0}% faults: {} nudges sent ({} messages) in {:.0} s, {} ingest requests",
            side.fault_rate * 100.0,
            side.sent,
            side.messages,
            side.seconds,
            side.ingest_requests
        );
        println!("      delivery log by status: {:?}", side.log_by_status);
        println!("      table: {}", side.table);
        if !side.faults.is_empty() {
            let total: usize = side.faults.values().sum();
            println!("      {total} faults injected:");
            for (what, n) in &side.faults {
                println!("        {what}: {n}");
            }
            println!("      delivered again: {:?}", side.redelivered);
        }
    }
    if !p.doubled_alerts.is_empty() {
        println!(
            "CSM notifications published twice (SNS: at least once): {}",
            p.doubled_alerts.len()
        );
    }
    if p.holds() {
        println!(
            "same nudges sent: {} at 0% and {} at {:.0}% faults; none lost, no customer email twice",
            p.clean.sent,
            p.faulted.sent,
            p.faulted.fault_rate * 100.0
        );
        return;
    }
    for n in &p.lost {
        println!("LOST: {n:?}");
    }
    for n in &p.extra {
        println!("EXTRA: {n:?}");
    }
    for (a, n, c) in &p.doubled {
        println!("SENT {c} TIMES: {a} {n}");
    }
}

fn print_summary(r: &nudge_infra::simulate::SimulationReport) {
    eprintln!(
        "events: {} read, {} accepted, {} duplicates, {} rejected, {} after the window, {} left for retry",
        r.events_read,
        r.accepted,
        r.duplicates,
        r.rejected.len(),
        r.events_outside_window,
        r.retried
    );
    for (line, err) in &r.rejected {
        eprintln!("  line {line}: {err}");
    }
    let stored: Vec<String> = r.stored.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!("stored: {}", stored.join(", "));
    let runs: Vec<String> = r.runs.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    eprintln!(
        "scheduled runs: {}",
        if runs.is_empty() {
            "none registered".into()
        } else {
            runs.join(", ")
        }
    );
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for d in &r.deliveries {
        let k = format!("{}/{}", d.kind, d.status.as_str());
        *kinds.entry(k).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    eprintln!("deliveries: {} ({})", r.deliveries.len(), kinds.join(", "));
}
