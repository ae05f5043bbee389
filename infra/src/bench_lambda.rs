//! `nudge bench`'s Lambda figures: each function's release bootstrap run as Lambda runs it,
//! through the local runtime API of `runtime_api.rs` against the local stack, and the Python +
//! boto3 peer (`infra/peer`, under `awslambdaric`, as AWS's Python images run it) fed the same
//! bytes by the same server, both reaching DynamoDB over HTTPS (`tls_front.rs`), as deployed:
//! - cold starts: process start until ready for the first event, the first request's latency,
//!   peak RSS, release size; with and without the DynamoDB connection opened at init;
//! - ingest: 500-event signed batches, CPU per event and events/s, Rust and the peer, each
//!   into its own fresh table, then both tables compared (same raw records, same rollups);
//! - health: the queue worker scoring every seeded account on a steady day, CPU per account,
//!   Rust then the peer over the same table, then their scores compared account by account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration as Days, Utc};
use hyper::body::Bytes;
use nudge_shared::channels::MemoryQueue;
use nudge_shared::registry;
use serde::Serialize;
use serde_json::{Value, json};

use crate::bench_health::{drain_concurrently, seed_accounts};
use crate::local::{LOCAL_LINK_KEYS, LOCAL_SECRET, LOCAL_SENDER, LocalStack, repo_root};
use crate::runtime_api::{self, Bootstrap, Run};
use crate::tls_front::TlsFront;
use crate::{apigw, bench};

/// The binaries measured, the floor first.
pub const BINARIES: [&str; 5] = [
    "empty-handler",
    "ingest",
    "health",
    "reminders",
    "milestones",
];

/// How much to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory of the release binaries (`target/release`).
    pub bootstraps: PathBuf,
    /// The peer's Python (`.nudge/peer-venv/bin/python`); `None` skips the peer.
    pub python: Option<PathBuf>,
    /// Cold starts per binary (the median is reported).
    pub cold_starts: usize,
    /// 500-event batches through ingest.
    pub ingest_batches: usize,
    /// Accounts scored by health.
    pub health_accounts: usize,
}

/// One binary's cold start, medians over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub name: String,
    pub runtime: &'static str,
    /// The bootstrap's size (`None` for the Python peer: its handler is a few files beside an
    /// interpreter and boto3).
    pub bytes: Option<u64>,
    pub runs: usize,
    pub init_ms: f64,
    pub init_cpu_ms: f64,
    pub first_request_ms: f64,
    pub peak_rss_mib: f64,
    /// The same without the DynamoDB connection opened at init (`NUDGE_CONNECT_AT_INIT=0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_connect_at_init: Option<Box<ColdStart>>,
}

/// One runtime's figures over a workload.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub runtime: &'static str,
    /// Events (ingest) or accounts (health) processed.
    pub units: usize,
    pub invocations: usize,
    pub init_ms: f64,
    pub peak_rss_mib: f64,
    /// CPU time per event or account, every invocation included.
    pub cpu_us_per_unit: f64,
    /// Events or accounts per second of invocation time.
    pub units_per_s: f64,
}

/// Python over Rust, for each figure (above 1: Rust does better).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub init: f64,
    pub peak_rss: f64,
    pub cpu_per_unit: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub workload: &'static str,
    pub unit: &'static str,
    pub rust: Workload,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<Workload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_over_rust: Option<Ratios>,
    /// What was compared between the two runs' results, and that it matched.
    pub same_result: Vec<String>,
}

impl Comparison {
    /// The Rust run alone (the peer skipped).
    fn rust_only(workload: &'static str, unit: &'static str, rust: Workload) -> Comparison {
        Comparison {
            workload,
            unit,
            rust,
            python: None,
            python_over_rust: None,
            same_result: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LambdaFigures {
    pub cold_starts: Vec<ColdStart>,
    /// Each handler's init over the empty handler of its runtime.
    pub init_over_empty: BTreeMap<String, f64>,
    pub ingest: Comparison,
    pub health: Comparison,
}

const TIMEOUT: Duration = Duration::from_secs(300);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The environment of a function run against the local stack, DynamoDB through `front`
/// (HTTPS, as deployed).
fn function_env(
    stack: &LocalStack,
    front: &TlsFront,
    table: &str,
    topic: &str,
) -> Vec<(String, String)> {
    let bundle = front.ca_bundle.to_string_lossy();
    [
        ("AWS_ENDPOINT_URL_DYNAMODB", front.url.as_str()),
        // rustls-native-certs (the Rust SDK's roots) and botocore read these.
        ("SSL_CERT_FILE", &bundle),
        ("AWS_CA_BUNDLE", &bundle),
        ("AWS_ENDPOINT_URL_SESV2", &stack.moto_url),
        ("AWS_ENDPOINT_URL_SNS", &stack.moto_url),
        ("AWS_ENDPOINT_URL_SQS", &stack.moto_url),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("NUDGE_TABLE", table),
        ("NUDGE_SENDER", LOCAL_SENDER),
        ("NUDGE_CSM_TOPIC_ARN", topic),
        ("NUDGE_PUBLIC_BASE_URL", "https://nudge.example.test"),
        ("NUDGE_SIGNING_SECRET", LOCAL_SECRET),
        ("NUDGE_LINK_KEYS", LOCAL_LINK_KEYS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn rust_bootstrap(opts: &Options, name: &str, env: Vec<(String, String)>) -> Bootstrap {
    Bootstrap {
        name: name.to_string(),
        program: opts.bootstraps.join(name),
        args: vec![],
        env,
        dir: None,
    }
}

/// The peer's handler `module` under `awslambdaric`.
fn python_bootstrap(
    python: &Path,
    name: &str,
    module: &str,
    env: Vec<(String, String)>,
) -> Bootstrap {
    Bootstrap {
        name: format!("python-{name}"),
        program: python.to_path_buf(),
        args: vec![
            "-m".into(),
            "awslambdaric".into(),
            format!("{module}.handler"),
        ],
        env,
        dir: Some(repo_root().join("infra/peer")),
    }
}

/// A signed `POST /events` of `n` usage events over `accounts` accounts, as API Gateway
/// delivers it.
fn ingest_event(prefix: &str, n: usize, accounts: usize, at: DateTime<Utc>) -> Bytes {
    let body = json!({ "events": bench::usage_batch(prefix, n, accounts) }).to_string();
    Bytes::from(apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &body, at).to_string())
}

fn scheduled_event(at: DateTime<Utc>) -> Bytes {
    Bytes::from(
        json!({
            "version": "0", "id": "bench", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012",
            "time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": "us-east-1", "resources": [], "detail": {}
        })
        .to_string(),
    )
}

/// The SQS event of the health queue with one work item per shard in `shards`.
fn health_event(now: DateTime<Utc>, shards: std::ops::Range<u32>, of: u32) -> Bytes {
    let records: Vec<Value> = shards
        .map(|shard| {
            json!({
                "messageId": format!("m-{shard}"), "receiptHandle": "r", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-health",
                "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {},
                "body": json!({"now": now, "shard": shard, "shards": of}).to_string(),
            })
        })
        .collect();
    Bytes::from(json!({ "Records": records }).to_string())
}

/// Runs `bootstrap` with `events`; every invocation must succeed.
async fn run_ok(bootstrap: &Bootstrap, events: &[Bytes]) -> Result<Run> {
    let run = runtime_api::run(bootstrap, events, TIMEOUT).await?;
    if let Some(e) = run.first_error() {
        bail!(
            "{} answered an invocation with an error: {e}",
            bootstrap.name
        );
    }
    Ok(run)
}

/// Cold starts of `bootstraps` (one binary, its variants), interleaved run by run so a slow
/// spell of the machine or of DynamoDB Local touches each alike; one discarded warm-up run
/// first (DynamoDB Local's own first requests are slow).
async fn cold_starts_of(
    bootstraps: &[Bootstrap],
    event: impl Fn(usize) -> Bytes,
    runs: usize,
    runtime: &'static str,
) -> Result<Vec<ColdStart>> {
    #[derive(Default)]
    struct Samples {
        init: Vec<f64>,
        init_cpu: Vec<f64>,
        first: Vec<f64>,
        rss: Vec<f64>,
    }
    let mut samples: Vec<Samples> = bootstraps.iter().map(|_| Samples::default()).collect();
    if let Some(b) = bootstraps.first() {
        run_ok(b, &[event(usize::MAX)]).await?;
    }
    for i in 0..runs {
        for (v, (b, s)) in bootstraps.iter().zip(&mut samples).enumerate() {
            // A fresh event for every run (ingest: new event ids, not duplicates).
            let run = run_ok(b, &[event(i * bootstraps.len() + v)]).await?;
            s.init.push(ms(run.init));
            s.init_cpu.push(ms(run.init_cpu));
            s.first.push(
                run.invocations
                    .first()
                    .map(|i| ms(i.latency))
                    .unwrap_or(0.0),
            );
            s.rss.push(mib(run.peak_rss_kib));
        }
    }
    Ok(bootstraps
        .iter()
        .zip(samples)
        .map(|(b, s)| ColdStart {
            name: b.name.clone(),
            runtime,
            bytes: std::fs::metadata(&b.program)
                .ok()
                .filter(|_| runtime == "rust")
                .map(|m| m.len()),
            runs,
            init_ms: median(s.init),
            init_cpu_ms: median(s.init_cpu),
            first_request_ms: median(s.first),
            peak_rss_mib: median(s.rss),
            without_connect_at_init: None,
        })
        .collect())
}

fn workload(runtime: &'static str, run: &Run, units: usize) -> Workload {
    let cpu: Duration = run.invocations.iter().map(|i| i.cpu).sum();
    let busy: Duration = run.invocations.iter().map(|i| i.latency).sum();
    Workload {
        runtime,
        units,
        invocations: run.invocations.len(),
        init_ms: ms(run.init),
        peak_rss_mib: mib(run.peak_rss_kib),
        cpu_us_per_unit: cpu.as_secs_f64() * 1e6 / units.max(1) as f64,
        units_per_s: units as f64 / busy.as_secs_f64().max(1e-9),
    }
}

fn ratios(rust: &Workload, python: &Workload) -> Ratios {
    Ratios {
        init: python.init_ms / rust.init_ms.max(1e-9),
        peak_rss: python.peak_rss_mib / rust.peak_rss_mib.max(1e-9),
        cpu_per_unit: python.cpu_us_per_unit / rust.cpu_us_per_unit.max(1e-9),
    }
}

type Items = BTreeMap<(String, String), BTreeMap<String, String>>;

/// Every item of `table` whose sort key starts with `prefix`: (pk, sk) -> each attribute's
/// value as text (sets sorted).
async fn items(stack: &LocalStack, table: &str, prefix: &str) -> Result<Items> {
    let client = stack.dynamodb();
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .filter_expression("begins_with(sk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(prefix.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        for item in page.items() {
            let attrs: BTreeMap<String, String> =
                item.iter().map(|(k, v)| (k.clone(), text(v))).collect();
            let key = |k: &str| attrs.get(k).cloned().unwrap_or_default();
            out.insert((key("pk"), key("sk")), attrs.clone());
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

fn text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            s.join(",")
        }
        AttributeValue::M(m) => {
            let mut kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
            kv.sort();
            format!("{{{}}}", kv.join(","))
        }
        other => format!("{other:?}"),
    }
}

/// Compares two runs' items; `ignore` names attributes that may differ (times of receipt).
/// Returns what was compared, or names the first attributes that differ.
fn same_items(what: &str, rust: &Items, python: &Items, ignore: &[&str]) -> Result<String> {
    ensure!(
        rust.len() == python.len(),
        "the peer wrote {} {what} items, Rust {}: not the same work",
        python.len(),
        rust.len()
    );
    let mut differ: BTreeMap<String, usize> = BTreeMap::new();
    let mut example = String::new();
    for (key, a) in rust {
        let Some(b) = python.get(key) else {
            bail!("the peer has no {what} item {key:?}: not the same work");
        };
        let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for name in names {
            if !ignore.contains(&name.as_str()) && a.get(name) != b.get(name) {
                *differ.entry(name.clone()).or_default() += 1;
                if example.is_empty() {
                    example = format!(
                        "; e.g. {name} of {key:?}: Rust {:?}, the peer {:?}",
                        a.get(name),
                        b.get(name)
                    );
                }
            }
        }
    }
    ensure!(
        differ.is_empty(),
        "the peer's {what} items differ from Rust's in {differ:?} (attribute: items){example}: not the same work"
    );
    Ok(format!(
        "{} {what} items, every attribute but {}",
        rust.len(),
        if ignore.is_empty() {
            "none".to_string()
        } else {
            ignore.join(", ")
        }
    ))
}

/// Cold starts of every binary (and of the peer's two handlers), each answering a first
/// request that does real work: a 100-event batch, an idle scheduled run, a shard scored.
pub async fn cold_starts(
    stack: &LocalStack,
    front: &TlsFront,
    opts: &Options,
) -> Result<Vec<ColdStart>> {
    let table = format!("bench-cold-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let result = async {
        let at = bench::bench_now();
        let env = function_env(stack, front, &table, &topic);
        let event_for = |name: &str| -> Box<dyn Fn(usize) -> Bytes> {
            match name {
                "ingest" => Box::new(move |i| ingest_event(&format!("cold{i}-"), 100, 10, at)),
                "health" => Box::new(move |_| health_event(at, 0..1, 8)),
                "reminders" | "milestones" => Box::new(move |_| scheduled_event(at)),
                _ => Box::new(|_| Bytes::from_static(b"{}")),
            }
        };
        let mut out = Vec::new();
        for name in BINARIES {
            eprintln!("bench: cold starts of {name} ...");
            let mut variants = vec![rust_bootstrap(opts, name, env.clone())];
            if name != "empty-handler" {
                let mut off = env.clone();
                off.push(("NUDGE_CONNECT_AT_INIT".into(), "0".into()));
                variants.push(rust_bootstrap(opts, name, off));
            }
            let mut measured = cold_starts_of(&variants, event_for(name), opts.cold_starts, "rust")
                .await?
                .into_iter();
            let mut c = measured.next().context("a cold start")?;
            c.without_connect_at_init = measured.next().map(Box::new);
            out.push(c);
        }
        if let Some(python) = &opts.python {
            for (name, module) in [
                ("empty-handler", "empty_handler"),
                ("ingest", "ingest_handler"),
                ("health", "health_handler"),
            ] {
                eprintln!("bench: cold starts of the Python peer's {name} ...");
                out.extend(
                    cold_starts_of(
                        &[python_bootstrap(python, name, module, env.clone())],
                        event_for(name),
                        opts.cold_starts,
                        "python",
                    )
                    .await?,
                );
            }
        }
        Ok(out)
    }
    .await;
    let _ = stack.delete_table(&table).await;
    result
}

/// Ingest's write path: the same signed batches through the Rust bootstrap and the peer,
/// each into a fresh table; then the two tables' raw records and rollups compared.
pub async fn ingest(stack: &LocalStack, front: &TlsFront, opts: &Options) -> Result<Comparison> {
    let at = bench::bench_now();
    let batches: Vec<Bytes> = (0..opts.ingest_batches)
        .map(|b| ingest_event(&format!("lw{b}"), 500, 100, at))
        .collect();
    let events = opts.ingest_batches * 500;
    let topic = stack.prepare_messaging().await?;
    let rust_table = format!("bench-ingest-rs-{}", std::process::id());
    let py_table = format!("bench-ingest-py-{}", std::process::id());
    stack.create_table(&rust_table).await?;
    let result = async {
        eprintln!("bench: ingest, {events} events through the Rust bootstrap ...");
        let run = run_ok(
            &rust_bootstrap(
                opts,
                "ingest",
                function_env(stack, front, &rust_table, &topic),
            ),
            &batches,
        )
        .await?;
        check_accepted(&run, 500)?;
        let rust = workload("rust", &run, events);
        let Some(python) = &opts.python else {
            return Ok(Comparison::rust_only("ingest", "event", rust));
        };
        stack.create_table(&py_table).await?;
        eprintln!("bench: ingest, the same batches through the Python peer ...");
        let run = run_ok(
            &python_bootstrap(
                python,
                "ingest",
                "ingest_handler",
                function_env(stack, front, &py_table, &topic),
            ),
            &batches,
        )
        .await?;
        check_accepted(&run, 500)?;
        let py = workload("python", &run, events);
        let mut same = Vec::new();
        for (prefix, ignore) in [
            ("EVT#", &RECEIPT[..]),
            ("DAY#", &[][..]),
            ("FIRSTS", &[][..]),
        ] {
            let a = items(stack, &rust_table, prefix).await?;
            let b = items(stack, &py_table, prefix).await?;
            same.push(same_items(prefix, &a, &b, ignore)?);
        }
        Ok(Comparison {
            workload: "ingest",
            unit: "event",
            python_over_rust: Some(ratios(&rust, &py)),
            rust,
            python: Some(py),
            same_result: same,
        })
    }
    .await;
    let _ = stack.delete_table(&rust_table).await;
    let _ = stack.delete_table(&py_table).await;
    result
}

/// What differs between two receipts of the same event by design.
const RECEIPT: [&str; 2] = ["received_at", "ttl"];

fn check_accepted(run: &Run, per_batch: u64) -> Result<()> {
    for inv in &run.invocations {
        let body = inv.outcome.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let resp: Value = serde_json::from_slice(body)?;
        let inner: Value = resp["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        ensure!(
            inner["accepted"].as_u64() == Some(per_batch),
            "a batch was not accepted whole: {resp}"
        );
    }
    Ok(())
}

/// The health worker over seeded accounts on a steady day (the first day's plays already
/// made in-process): the Rust bootstrap, then the peer over the same table and day, one
/// invocation per shard each; their snapshots compared account by account.
pub async fn health(stack: &LocalStack, front: &TlsFront, opts: &Options) -> Result<Comparison> {
    let table = format!("bench-health-rt-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let result = async {
        let (deps, store) = stack.deps(stack.config(&table, &topic)?);
        let queue = Arc::new(MemoryQueue::default());
        let deps = deps.with_queue(queue.clone());
        let shards = deps.config.health_index_shards;
        let n = opts.health_accounts;
        eprintln!("bench: health, seeding {n} accounts and running their first day ...");
        seed_accounts(&store, n, shards).await?;
        let first_day = crate::bench_health::now();
        let health = registry::find("health").context("health is registered")?;
        registry::run_scheduled(health, &deps, first_day, "bench").await?;
        drain_concurrently(&deps, &queue).await?;

        let day = first_day + Days::days(1);
        let events: Vec<Bytes> = (0..shards)
            .map(|s| health_event(day, s..s + 1, shards))
            .collect();
        let env = function_env(stack, front, &table, &topic);
        eprintln!("bench: health, scoring them through the Rust bootstrap ...");
        let run = run_ok(&rust_bootstrap(opts, "health", env.clone()), &events).await?;
        let rust = workload("rust", &run, n);
        let prefix = format!(
            "HEALTH#{}",
            nudge_shared::health::local_day(day, chrono_tz::Asia::Tokyo)
        );
        let by_rust = items(stack, &table, &prefix).await?;
        ensure!(
            by_rust.len() == n,
            "the Rust worker wrote {} snapshots for {n} accounts",
            by_rust.len()
        );
        let Some(python) = &opts.python else {
            return Ok(Comparison::rust_only("health", "account", rust));
        };
        eprintln!("bench: health, the same through the Python peer ...");
        let run = run_ok(
            &python_bootstrap(python, "health", "health_handler", env),
            &events,
        )
        .await?;
        let py = workload("python", &run, n);
        let by_py = items(stack, &table, &prefix).await?;
        // The peer overwrote Rust's snapshots: the same keys, and (ttl aside, which counts
        // from the time of writing) the same score, band and drivers.
        Ok(Comparison {
            workload: "health",
            unit: "account",
            python_over_rust: Some(ratios(&rust, &py)),
            rust,
            python: Some(py),
            same_result: vec![same_items("HEALTH# snapshot", &by_rust, &by_py, &["ttl"])?],
        })
    }
    .await;
    let _ = stack.delete_table(&table).await;
    result
}

pub async fn bench(stack: &LocalStack, opts: &Options) -> Result<LambdaFigures> {
    for name in BINARIES {
        let path = opts.bootstraps.join(name);
        ensure!(
            path.is_file(),
            "{} is missing: build the release binaries first (infra/bench.sh does)",
            path.display()
        );
    }
    let upstream = stack
        .dynamodb_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let front = TlsFront::start(upstream, &std::env::temp_dir()).await?;
    let cold_starts = cold_starts(stack, &front, opts).await?;
    // Each handler's init over the empty handler of its own runtime.
    let floor = |runtime: &str| {
        cold_starts
            .iter()
            .find(|c| c.runtime == runtime && c.name.ends_with("empty-handler"))
            .map(|c| c.init_ms)
    };
    let init_over_empty = cold_starts
        .iter()
        .filter(|c| !c.name.ends_with("empty-handler"))
        .filter_map(|c| Some((c.name.clone(), c.init_ms / floor(c.runtime)?.max(1e-9))))
        .collect();
    Ok(LambdaFigures {
        cold_starts,
        init_over_empty,
        ingest: ingest(stack, &front, opts).await?,
        health: health(stack, &front, opts).await?,
    })
}
