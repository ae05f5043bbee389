//! `nudge bench ingest`: the figures the ingest issue asks for, printed, never asserted.
//! Run with an optimised build: `cargo run --profile fast -p nudge-infra --bin nudge -- bench ingest`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::{self, StreamExt};
use nudge_shared::events::{parse_batch, sign, verify};
use nudge_shared::ingest::lambda::Ingest;
use serde_json::{Value, json};

use crate::apigw;
use crate::local::{LOCAL_SECRET, LocalStack};

fn bench_now() -> DateTime<Utc> {
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

async fn post(ingest: &Ingest, events: &[Value], at: DateTime<Utc>) -> Result<Value> {
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

pub async fn ingest(stack: &LocalStack) -> Result<()> {
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
    println!("== ingest: DynamoDB write units (ReturnConsumedCapacity=TOTAL, DynamoDB Local)");
    println!(
        "100-event batch, 10 accounts, cold container: {:.2} WCU per accepted event ({} accepted, {:.1} WCU, {} requests)",
        (cold.write_units - before.write_units) / accepted.max(1.0),
        accepted,
        cold.write_units - before.write_units,
        cold.requests - before.requests
    );
    println!(
        "same batch resent (all duplicates): {:.2} WCU per duplicate ({} duplicates)",
        (dup.write_units - cold.write_units)
            / dup_out["duplicates"].as_f64().unwrap_or(1.0).max(1.0),
        dup_out["duplicates"]
    );
    println!(
        "next 100-event batch, warm container: {:.2} WCU per accepted event ({} accepted)",
        (warm.write_units - dup.write_units)
            / warm_out["accepted"].as_f64().unwrap_or(1.0).max(1.0),
        warm_out["accepted"]
    );

    // 2. Throughput through the handler vs. a bare BatchWriteItem loop of equal items.
    let batches = 20;
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
        median(verify_times).as_secs_f64() * 1000.0,
        median(parse_times).as_secs_f64() * 1000.0,
        median(json_times).as_secs_f64() * 1000.0
    );
    println!(
        "verify + parse + validate, {} bytes, 500 events: median {:.2} ms over 30 runs",
        body.len(),
        median(times).as_secs_f64() * 1000.0
    );

    stack.delete_table(&table).await?;
    Ok(())
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
