//! `nudge bench ingest`: ingest figures (request units, throughput, CPU, memory, size), printed,
//! never asserted.
//! Run with an optimised build: `cargo run --profile fast -p nudge-infra --bin nudge -- bench ingest`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::{self, StreamExt};
use nudge_shared::events::{parse_batch, sign, verify};
use nudge_shared::ingest::lambda::Ingest;
use serde::Serialize;
use serde_json::{Value, json};

use crate::apigw;
use crate::local::{LOCAL_SECRET, LocalStack};

pub(crate) fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A realistic usage batch: logins and feature uses spread over `accounts` accounts, one day.
pub fn usage_batch(prefix: &str, n: usize, accounts: usize) -> Vec<Value> {
    const FEATURES: [&str; 4] = ["report_builder", "dashboard", "integration", "workflow"];
    (0..n)
        .map(|i| {
            let account = format!("acct-{}", i % accounts);
            let contact = format!("u-{}", (i / accounts) % 5);
            let t = format!("2026-11-20T{:02}:{:02}:00+09:00", 9 + (i / 60) % 10, i % 60);
            if i % 2 == 0 {
                json!({"event_id": format!("{prefix}-{i}"), "account_id": account, "contact_id": contact,
                       "type": "login", "occurred_at": t})
            } else {
                json!({"event_id": format!("{prefix}-{i}"), "account_id": account, "contact_id": contact,
                       "type": "feature_used", "occurred_at": t,
                       "properties": {"feature": FEATURES[i % 4]}})
            }
        })
        .collect()
}

/// 500 events whose body is just under 1 MiB (NPS responses with long comments).
pub fn large_body() -> String {
    let comment = "とても使いやすい。".repeat(70); // 630 chars, ~1.9 KB of UTF-8
    let events: Vec<Value> = (0..500)
        .map(|i| {
            json!({"event_id": format!("big-{i}"), "account_id": format!("acct-{}", i % 10),
                   "contact_id": "u-1", "type": "nps_response", "occurred_at": "2026-11-20T10:00:00+09:00",
                   "properties": {"score": i % 11, "comment": comment}})
        })
        .collect();
    json!({ "events": events }).to_string()
}

/// POSTs a batch through the real ingest handler, signed with the local secret.
pub(crate) async fn post(ingest: &Ingest, events: &[Value], at: DateTime<Utc>) -> Result<Value> {
    let body = json!({ "events": events }).to_string();
    let req = apigw::to_request(&apigw::signed_post_events(
        LOCAL_SECRET.as_bytes(),
        &body,
        at,
    ))?;
    let resp = ingest.http(req).await;
    match resp.body() {
        lambda_http::Body::Text(t) => Ok(serde_json::from_str(t)?),
        _ => anyhow::bail!("empty response"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `nudge bench ingest`'s figures (DynamoDB Local's ConsumedCapacity; times on this machine).
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    /// A 100-event usage batch over 10 accounts, cold container.
    pub wcu_per_event_cold: f64,
    pub requests_per_event_cold: f64,
    /// The same batch resent: every event a duplicate.
    pub wcu_per_duplicate: f64,
    /// A fresh 100-event batch, warm container.
    pub wcu_per_event_warm: f64,
    pub requests_per_event_warm: f64,
    /// 500-event batches over 100 accounts through the handler, one after another.
    pub handler_events_per_s: f64,
    /// `BatchWriteItem` of equal items, 25 per request, 4 in flight.
    pub bare_loop_items_per_s: f64,
    pub handler_over_bare_loop: f64,
    /// A 1 MiB, 500-event body: HMAC, then parse + validate (medians of 30).
    pub body_bytes: usize,
    pub verify_ms: f64,
    pub parse_validate_ms: f64,
    pub verify_parse_validate_ms: f64,
}

pub async fn ingest(stack: &LocalStack, batches: usize) -> Result<IngestFigures> {
    let table = format!("nudge-bench-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let (deps, store) = stack.deps(stack.config(&table, &topic)?);
    let ingest = Ingest::new(deps);
    let meter = store.meter();
    let now = bench_now();

    // 1. Write units per accepted event: a 100-event batch over 10 accounts, cold container
    //    (no firsts known yet), then the same batch again (all duplicates), then a fresh batch
    //    on a warm container.
    let batch = usage_batch("wcu", 100, 10);
    let before = meter.snapshot();
    let out = post(&ingest, &batch, now).await?;
    let cold = meter.snapshot();
    let accepted = out["accepted"].as_u64().unwrap_or(0) as f64;
    let dup_out = post(&ingest, &batch, now).await?;
    let dup = meter.snapshot();
    let warm_batch = usage_batch("wcu2", 100, 10);
    let warm_out = post(&ingest, &warm_batch, now).await?;
    let warm = meter.snapshot();
    let warm_accepted = warm_out["accepted"].as_f64().unwrap_or(1.0).max(1.0);
    let duplicates = dup_out["duplicates"].as_f64().unwrap_or(1.0).max(1.0);
    let wcu_per_event_cold = (cold.write_units - before.write_units) / accepted.max(1.0);
    let wcu_per_duplicate = (dup.write_units - cold.write_units) / duplicates;
    let wcu_per_event_warm = (warm.write_units - dup.write_units) / warm_accepted;
    println!("== ingest: DynamoDB write units (ReturnConsumedCapacity=TOTAL, DynamoDB Local)");
    println!(
        "100-event batch, 10 accounts, cold container: {wcu_per_event_cold:.2} WCU per accepted event ({} accepted, {:.1} WCU, {} requests)",
        accepted,
        cold.write_units - before.write_units,
        cold.requests - before.requests
    );
    println!(
        "same batch resent (all duplicates): {wcu_per_duplicate:.2} WCU per duplicate ({} duplicates)",
        dup_out["duplicates"]
    );
    println!(
        "next 100-event batch, warm container: {wcu_per_event_warm:.2} WCU per accepted event ({} accepted, {} requests)",
        warm_out["accepted"],
        warm.requests - dup.requests
    );

    // 2. Throughput through the handler vs. a bare BatchWriteItem loop of equal items.
    let started = Instant::now();
    let mut total = 0u64;
    for b in 0..batches {
        let events = usage_batch(&format!("tp{b}"), 500, 100);
        let out = post(&ingest, &events, now).await?;
        total += out["accepted"].as_u64().unwrap_or(0);
    }
    let handler_rate = total as f64 / started.elapsed().as_secs_f64();

    let client = stack.dynamodb();
    let body = json!(usage_batch("raw", 1, 1)[0]).to_string();
    let items: Vec<WriteRequest> = (0..(batches * 500))
        .map(|i| {
            let item: HashMap<String, AttributeValue> = [
                ("pk", AttributeValue::S(format!("ACCT#raw-{}", i % 100))),
                ("sk", AttributeValue::S(format!("EVT#raw-{i}"))),
                ("type", AttributeValue::S("login".into())),
                (
                    "occurred_at",
                    AttributeValue::S("2026-11-20T00:00:00.000Z".into()),
                ),
                (
                    "received_at",
                    AttributeValue::S("2026-11-20T00:00:00.000Z".into()),
                ),
                ("body", AttributeValue::S(body.clone())),
                ("ttl", AttributeValue::N("1830000000".into())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item set"),
                )
                .build()
        })
        .collect();
    let started = Instant::now();
    let chunks: Vec<Vec<WriteRequest>> = items.chunks(25).map(|c| c.to_vec()).collect();
    let n_items = items.len();
    let results: Vec<Result<()>> = stream::iter(chunks)
        .map(|chunk| {
            let client = client.clone();
            let table = table.clone();
            async move {
                let mut pending = chunk;
                while !pending.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, pending)
                        .send()
                        .await
                        .context("BatchWriteItem")?;
                    pending = out
                        .unprocessed_items()
                        .and_then(|m| m.get(&table))
                        .cloned()
                        .unwrap_or_default();
                }
                Ok(())
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let raw_rate = n_items as f64 / started.elapsed().as_secs_f64();
    println!("== ingest: throughput against DynamoDB Local on this machine");
    println!(
        "handler: {total} events in {batches} batches of 500 over 100 accounts: {handler_rate:.0} events/s"
    );
    println!(
        "bare BatchWriteItem loop (25 items/request, 4 in flight), {n_items} equal items: {raw_rate:.0} items/s"
    );
    println!("ratio handler/raw: {:.2}", handler_rate / raw_rate);
    let ratio = handler_rate / raw_rate;

    // 3. Parse + validate + verify a 1 MiB, 500-event body (CPU only).
    let body = large_body();
    let sig = sign(LOCAL_SECRET.as_bytes(), now.timestamp(), body.as_bytes());
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        verify(
            LOCAL_SECRET.as_bytes(),
            Some(&sig),
            body.as_bytes(),
            now.timestamp(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let parsed = parse_batch(body.as_bytes(), now).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(parsed.iter().all(Result::is_ok), "bench body must be valid");
        times.push(t.elapsed());
    }
    let mut verify_times = Vec::new();
    let mut parse_times = Vec::new();
    let mut json_times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _ = verify(
            LOCAL_SECRET.as_bytes(),
            Some(&sig),
            body.as_bytes(),
            now.timestamp(),
        );
        verify_times.push(t.elapsed());
        let t = Instant::now();
        let _ = parse_batch(body.as_bytes(), now);
        parse_times.push(t.elapsed());
        let t = Instant::now();
        let _ = serde_json::from_slice::<Value>(body.as_bytes());
        json_times.push(t.elapsed());
    }
    println!("== ingest: CPU");
    println!(
        "  of which: HMAC verify median {:.2} ms, parse + validate median {:.2} ms (JSON to a tree alone: {:.2} ms)",
        median(verify_times.clone()).as_secs_f64() * 1000.0,
        median(parse_times.clone()).as_secs_f64() * 1000.0,
        median(json_times).as_secs_f64() * 1000.0
    );
    println!(
        "verify + parse + validate, {} bytes, 500 events: median {:.2} ms over 30 runs",
        body.len(),
        median(times.clone()).as_secs_f64() * 1000.0
    );

    stack.delete_table(&table).await?;
    let ms = |v: Vec<Duration>| median(v).as_secs_f64() * 1000.0;
    Ok(IngestFigures {
        wcu_per_event_cold,
        requests_per_event_cold: (cold.requests - before.requests) as f64 / accepted.max(1.0),
        wcu_per_duplicate,
        wcu_per_event_warm,
        requests_per_event_warm: (warm.requests - dup.requests) as f64 / warm_accepted,
        handler_events_per_s: handler_rate,
        bare_loop_items_per_s: raw_rate,
        handler_over_bare_loop: ratio,
        body_bytes: body.len(),
        verify_ms: ms(verify_times),
        parse_validate_ms: ms(parse_times),
        verify_parse_validate_ms: ms(times),
    })
}

/// Peak RSS of a process that builds `Deps` and handles one 500-event, ~1 MiB batch through the
/// ingest handler (run in a child process so the figure is not polluted by the bench).
pub async fn ingest_rss_child(stack: &LocalStack) -> Result<()> {
    let table = format!("nudge-rss-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let (deps, _) = stack.deps(stack.config(&table, &topic)?);
    let ingest = Ingest::new(deps);
    let body = large_body();
    let req = apigw::to_request(&apigw::signed_post_events(
        LOCAL_SECRET.as_bytes(),
        &body,
        bench_now(),
    ))?;
    let resp = ingest.http(req).await;
    anyhow::ensure!(
        resp.status() == 200,
        "batch not accepted: {:?}",
        resp.body()
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown");
    println!(
        "peak RSS handling a 500-event, {} byte batch: {}",
        body.len(),
        hwm.trim_start_matches("VmHWM:").trim()
    );
    stack.delete_table(&table).await?;
    Ok(())
}

// ----------------------------------------------------------------------- bench reminders --

/// Options of `nudge bench reminders`.
#[derive(Debug, Clone, Copy)]
pub struct RemindersBench {
    /// Deadlines stored (each with its pending stages), none due during the empty runs.
    pub deadlines: usize,
    /// Final stages made due in one slot for the send measurement.
    pub due: usize,
    /// Empty runs measured (successive 15-minute slots).
    pub runs: usize,
}

const DEADLINES_PER_ACCOUNT: usize = 10;

/// BatchWriteItem of `items`, 25 per request, `in_flight` requests at once, unprocessed items
/// resent. Returns the number of items written.
async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
    in_flight: usize,
) -> Result<usize> {
    let n = items.len();
    let requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item set"),
                )
                .build()
        })
        .collect();
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(25).map(|c| c.to_vec()).collect();
    let results: Vec<Result<()>> = stream::iter(chunks)
        .map(|chunk| async move {
            let mut pending = chunk;
            while !pending.is_empty() {
                let out = client
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .context("BatchWriteItem")?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
            Ok(())
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(n)
}

/// A deadline as ingest stores it, with the stage nudges it plans, in the item shapes of the
/// store (`deadline_item`, `nudge_item`, `service::stage_nudges`).
fn deadline_items(
    account: &str,
    record: &nudge_shared::store::DeadlineRecord,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    sent: &[nudge_shared::reminders::ReminderStage],
    shards: u32,
) -> Result<Vec<HashMap<String, AttributeValue>>> {
    use nudge_shared::reminders::{ReminderPolicy, service};
    use nudge_shared::store::dynamo;
    let mut items = vec![dynamo::deadline_item(account, record)?];
    for n in service::stage_nudges(account, record, tz, now, sent, &ReminderPolicy::default()) {
        items.push(dynamo::nudge_item(&n, shards)?);
    }
    Ok(items)
}

fn record(
    id: String,
    contact: String,
    due_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> nudge_shared::store::DeadlineRecord {
    nudge_shared::store::DeadlineRecord {
        title: format!("Quarterly report {id}"),
        deadline_id: id.clone(),
        contact_id: Some(contact),
        due_at,
        kind: Some("report".into()),
        link: Some(format!("https://app.example/deadlines/{id}")),
        status: nudge_shared::store::DeadlineStatus::Active,
        updated_at: at,
    }
}

fn units(before: Capacity, after: Capacity) -> (f64, f64, u64) {
    (
        after.read_units - before.read_units,
        after.write_units - before.write_units,
        after.requests - before.requests,
    )
}

use nudge_shared::store::dynamo::Capacity;

/// One reminders run at `now`; (report, capacity used, wall time).
async fn reminders_run(
    deps: &nudge_shared::Deps,
    meter: &nudge_shared::store::dynamo::CapacityMeter,
    now: DateTime<Utc>,
) -> Result<(Value, (f64, f64, u64), Duration)> {
    let before = meter.snapshot();
    let t = Instant::now();
    let report = nudge_shared::delivery::sweep(
        deps,
        nudge_shared::registry::render_vars,
        now,
        &format!("bench-{}", now.timestamp()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("reminders run: {e}"))?;
    let report = serde_json::to_value(report)?;
    let wall = t.elapsed();
    Ok((report, units(before, meter.snapshot()), wall))
}

/// Empty runs at `runs` successive slots from `first`: (median RRU, median requests, median
/// wall, max RRU).
async fn empty_runs(
    deps: &nudge_shared::Deps,
    meter: &nudge_shared::store::dynamo::CapacityMeter,
    first: DateTime<Utc>,
    runs: usize,
) -> Result<(f64, u64, Duration, f64)> {
    let mut rru = Vec::new();
    let mut reqs = Vec::new();
    let mut walls = Vec::new();
    for k in 0..runs {
        let now = first + chrono::Duration::minutes(15 * k as i64);
        let (report, (r, _, q), wall) = reminders_run(deps, meter, now).await?;
        anyhow::ensure!(
            report["due"] == 0,
            "nothing may be due in the empty runs: {report}"
        );
        rru.push(r);
        reqs.push(q);
        walls.push(wall);
    }
    let max = rru.iter().cloned().fold(0.0, f64::max);
    rru.sort_by(|a, b| a.total_cmp(b));
    reqs.sort();
    Ok((rru[rru.len() / 2], reqs[reqs.len() / 2], median(walls), max))
}

/// `nudge bench reminders`'s figures.
#[derive(Debug, Clone, Serialize)]
pub struct RemindersFigures {
    pub deadlines_stored: usize,
    /// A run with nothing due over them (medians): what DynamoDB Local billed, and the
    /// service's floor (0.5 RRU per read request).
    pub idle_run_rru: f64,
    pub idle_run_billed_rru: f64,
    pub idle_run_requests: u64,
    pub idle_run_ms: f64,
    pub due: usize,
    pub sent: u64,
    pub sends_per_s: f64,
    pub rru_per_send: f64,
    pub wru_per_send: f64,
}

pub async fn reminders(stack: &LocalStack, opts: RemindersBench) -> Result<RemindersFigures> {
    use chrono::Duration as Td;
    let table = format!("nudge-bench-rem-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let config = stack.config(&table, &topic)?;
    let shards = config.due_shards;
    let (deps, store) = stack.deps(config);
    let ingest = Ingest::new(deps);
    let deps = &ingest.deps;
    let meter = store.meter();
    let client = stack.dynamodb();
    let tz = chrono_tz::Asia::Tokyo;
    let t0 = bench_now();
    println!(
        "== reminders: table {table}, due GSI {shards} shards per 15-minute bucket, DynamoDB Local"
    );

    // (a0) Empty runs on an empty table: the baseline.
    reminders_run(deps, &meter, t0 - Td::minutes(15)).await?;
    let (rru0, req0, wall0, _) = empty_runs(deps, &meter, t0, opts.runs).await?;
    println!(
        "empty table, run with nothing due: {rru0:.1} RRU, {req0} requests, {:.1} ms (median of {} runs)",
        wall0.as_secs_f64() * 1000.0,
        opts.runs
    );

    // Load: `deadlines` deadlines over deadlines/10 accounts, due 4-60 days after the
    // measured window, each with its pending stages (3 nudge items) in future buckets.
    let load_at = t0 - Td::days(1);
    let window_end = t0 + Td::minutes(15 * (2 * opts.runs as i64 + 2));
    let started = Instant::now();
    let mut written = 0usize;
    let chunk = 5_000;
    for start in (0..opts.deadlines).step_by(chunk) {
        let mut items: Vec<HashMap<String, AttributeValue>> = Vec::new();
        for i in start..(start + chunk).min(opts.deadlines) {
            let account = format!("acct-{}", i / DEADLINES_PER_ACCOUNT);
            // Spread over 56 days in 7-minute steps: every bucket of the period has work.
            let due = window_end + Td::days(4) + Td::minutes(7 * (i as i64 % 11_520));
            let r = record(format!("d{i}"), format!("u-{}", i % 5), due, load_at);
            items.extend(deadline_items(&account, &r, tz, load_at, &[], shards)?);
        }
        written += batch_write(&client, &table, items, 8).await?;
    }
    let load = started.elapsed();
    println!(
        "loaded {} deadlines + their pending stages: {written} items in {:.1} s ({:.0} items/s, BatchWriteItem, 8 in flight)",
        opts.deadlines,
        load.as_secs_f64(),
        written as f64 / load.as_secs_f64()
    );

    // (a) Empty runs with the deadlines stored.
    let first = t0 + Td::minutes(15 * opts.runs as i64);
    let (rru, req, wall, max) = empty_runs(deps, &meter, first, opts.runs).await?;
    let (idle_rru, idle_req, idle_wall) = (rru, req, wall);
    println!(
        "{} deadlines stored, run with nothing due: {rru:.1} RRU (max {max:.1}), {req} requests, {:.1} ms (median of {} runs at successive 15-min slots)",
        opts.deadlines,
        wall.as_secs_f64() * 1000.0,
        opts.runs
    );
    // DynamoDB Local reports no capacity for a Query that returns nothing; the service bills
    // every eventually consistent read request at least 0.5 RRU. One request of the run is the
    // checkpoint write.
    println!(
        "  billed floor on DynamoDB (0.5 RRU per read request, {} reads): {:.1} RRU per empty run",
        req.saturating_sub(1),
        0.5 * req.saturating_sub(1) as f64
    );

    // (b) `due` final stages due in the next slot: 100 accounts × 10 contacts with email
    // (through the ingest handler), their deadlines due 2 h after the slot, earlier stages
    // already sent.
    let slot = first + Td::minutes(15 * opts.runs as i64);
    let accounts = opts.due.div_ceil(DEADLINES_PER_ACCOUNT);
    let mut events = Vec::new();
    for a in 0..accounts {
        let account = format!("due-{a}");
        events.push(
            json!({"event_id": format!("{account}-acct"), "account_id": account,
            "type": "account_upserted", "occurred_at": load_at.to_rfc3339(),
            "properties": {"name": format!("Bench {a}"), "plan": "standard", "industry": "software",
                "tier": "tech_touch", "csm": {"name": "Sato", "email": "sato@vendor.example"},
                "timezone": "Asia/Tokyo", "locale": if a % 2 == 0 { "ja" } else { "en" },
                "contract_start": "2026-01-01", "renewal_date": "2027-12-31", "renewals": 0,
                "arr": 12000}}),
        );
        for c in 0..DEADLINES_PER_ACCOUNT {
            events.push(
                json!({"event_id": format!("{account}-u{c}"), "account_id": account,
                "contact_id": format!("u-{c}"), "type": "contact_upserted",
                "occurred_at": load_at.to_rfc3339(),
                "properties": {"email": format!("u{c}.{account}@bench.example"),
                    "name": format!("User {c}"), "role": "user"}}),
            );
        }
    }
    for batch in events.chunks(500) {
        let out = post(&ingest, batch, load_at).await?;
        anyhow::ensure!(
            out["accepted"].as_u64() == Some(batch.len() as u64),
            "profiles not accepted: {out}"
        );
    }
    use nudge_shared::reminders::ReminderStage::{MorningOf, TMinus3d};
    let mut items: Vec<HashMap<String, AttributeValue>> = Vec::new();
    for i in 0..opts.due {
        let account = format!("due-{}", i / DEADLINES_PER_ACCOUNT);
        let contact = format!("u-{}", i % DEADLINES_PER_ACCOUNT);
        let r = record(format!("due{i}"), contact, slot + Td::hours(2), load_at);
        items.extend(deadline_items(
            &account,
            &r,
            tz,
            load_at,
            &[TMinus3d, MorningOf],
            shards,
        )?);
    }
    batch_write(&client, &table, items, 8).await?;

    let (report, (r, w, q), wall) = reminders_run(deps, &meter, slot).await?;
    let wall_due = wall;
    let sent = report["sent"].as_u64().unwrap_or(0);
    println!(
        "{} finals due in one slot: sent {sent} (due {}, failed {}, errors {}) in {:.2} s = {:.0} sends/s against moto",
        opts.due,
        report["due"],
        report["failed"],
        report["errors"],
        wall.as_secs_f64(),
        sent as f64 / wall.as_secs_f64()
    );
    println!(
        "  that run: {r:.1} RRU ({:.2} per send), {w:.1} WRU ({:.2} per send), {q} requests",
        r / sent.max(1) as f64,
        w / sent.max(1) as f64
    );
    let (rru, req, wall, _) = empty_runs(deps, &meter, slot + Td::minutes(15), 3).await?;
    println!(
        "next runs (nothing due again): {rru:.1} RRU, {req} requests, {:.1} ms (median of 3)",
        wall.as_secs_f64() * 1000.0
    );
    stack.delete_table(&table).await?;
    Ok(RemindersFigures {
        deadlines_stored: opts.deadlines,
        idle_run_rru: idle_rru,
        idle_run_billed_rru: 0.5 * idle_req.saturating_sub(1) as f64,
        idle_run_requests: idle_req,
        idle_run_ms: idle_wall.as_secs_f64() * 1000.0,
        due: opts.due,
        sent,
        sends_per_s: sent as f64 / wall_due.as_secs_f64().max(1e-9),
        rru_per_send: r / sent.max(1) as f64,
        wru_per_send: w / sent.max(1) as f64,
    })
}

/// `nudge bench delivery`: request units per nudge along the one send path.
pub async fn delivery(
    stack: &LocalStack,
    n: usize,
) -> Result<crate::bench_delivery::DeliveryBench> {
    let table = format!("nudge-bench-delivery-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let (deps, store) = stack.deps(stack.config(&table, &topic)?);
    let meter = store.meter();
    // 09:00 on a Friday in Tokyo, the accounts' zone: marketing email goes out at once inside
    // business hours (at bench_now(), 21:00 there, it would be deferred, not sent).
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let b = crate::bench_delivery::bench_delivery(&deps, &meter, n, "bench", at)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "== delivery: DynamoDB units per nudge (ReturnConsumedCapacity=TOTAL, DynamoDB Local), n={}",
        b.nudges
    );
    for (what, u) in [
        ("record (pending, with due-index keys)", b.record),
        (
            "sent, transactional (claim + mark + record + log)",
            b.sent_transactional,
        ),
        (
            "sent, marketing (+ cap reservation, follow-up)",
            b.sent_marketing,
        ),
        ("blocked (reads + conditional mark + log)", b.blocked),
        ("empty run, per run", b.empty_run),
    ] {
        println!(
            "{what}: {:.2} RRU, {:.2} WRU, {:.1} requests",
            u.read_units, u.write_units, u.requests
        );
    }
    anyhow::ensure!(
        b.outcomes_ok,
        "unexpected delivery outcomes during the bench"
    );
    stack.delete_table(&table).await?;
    Ok(b)
}
