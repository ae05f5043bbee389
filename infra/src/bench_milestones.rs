//! `nudge bench milestones`: the milestones function's figures, printed, never asserted: the
//! hourly run with nothing due over `--accounts` programs stored (read units, requests, wall
//! time), and the request units a congratulation costs, planned at ingest (a batch of first
//! key-feature uses against the same batch repeated, which has no firsts) and delivered by the
//! sweep (against moto).

use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use nudge_shared::ingest::lambda::Ingest;
use nudge_shared::registry;
use nudge_shared::store::{AgendaStore, AgendaTask};
use serde_json::{Value, json};

use crate::bench::post;
use crate::local::LocalStack;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

pub async fn bench_milestones(stack: &LocalStack, accounts: usize, firsts: usize) -> Result<Value> {
    let table = format!("bench-milestones-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let config = stack.config(&table, &topic)?;
    let shards = config.due_shards;
    let (deps, store) = stack.deps(config);
    let ingest = Ingest::new(deps);
    let deps = &ingest.deps;
    let meter = store.meter();
    let milestones = registry::find("milestones").context("milestones is registered")?;

    // Programs stored: one pending check per account, due over the next 30 days (never in the
    // runs measured).
    eprintln!("bench milestones: storing {accounts} accounts' programs ...");
    let t = Instant::now();
    stream::iter(0..accounts)
        .map(|i| {
            let store = store.clone();
            async move {
                let task = AgendaTask {
                    account_id: format!("acct-{i:06}"),
                    task: "check_28".into(),
                    due_at: now() + Duration::days(2) + Duration::minutes((i % 40_000) as i64),
                };
                store.schedule_task(&task, shards).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "bench milestones: stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut empty = Vec::new();
    for k in 0..5 {
        let at = now() + Duration::hours(k);
        let before = meter.snapshot();
        let t = Instant::now();
        let out = registry::run_scheduled(milestones, deps, at, "bench").await?;
        let wall = t.elapsed().as_secs_f64();
        let after = meter.snapshot();
        anyhow::ensure!(out["run"]["tasks"] == 0, "nothing should be due: {out}");
        empty.push((
            after.read_units - before.read_units,
            after.requests - before.requests,
            wall,
        ));
    }
    empty.sort_by(|a, b| a.2.total_cmp(&b.2));
    let (rru, requests, wall) = empty[empty.len() / 2];

    // Congratulations: `firsts` new customers, each using a key feature for the first time.
    let start = now();
    let mut events = Vec::new();
    for a in 0..firsts {
        let account = format!("new-{a}");
        events.push(
            json!({"event_id": format!("{account}-a"), "account_id": account,
            "type": "account_upserted", "occurred_at": start.to_rfc3339(),
            "properties": {"name": format!("New {a}"), "plan": "standard", "industry": "retail",
                "timezone": "Asia/Tokyo", "locale": "ja", "contract_start": "2026-12-01",
                "renewal_date": "2027-11-30", "renewals": 0, "arr": 6000}}),
        );
        events.push(
            json!({"event_id": format!("{account}-u"), "account_id": account,
            "contact_id": "u1", "type": "contact_upserted", "occurred_at": start.to_rfc3339(),
            "properties": {"email": format!("u1.{account}@bench.example"), "name": "User",
                "role": "admin"}}),
        );
    }
    for batch in events.chunks(500) {
        post(&ingest, batch, start).await?;
    }
    let uses = |tag: &str| -> Vec<Value> {
        (0..firsts)
            .map(|a| {
                json!({"event_id": format!("new-{a}-{tag}"), "account_id": format!("new-{a}"),
                "contact_id": "u1", "type": "feature_used",
                "occurred_at": (start + Duration::hours(1)).to_rfc3339(),
                "properties": {"feature": "dashboard"}})
            })
            .collect()
    };
    let at = start + Duration::hours(1);
    let measure = |label: &'static str| {
        let meter = meter.clone();
        let ingest = &ingest;
        async move {
            let before = meter.snapshot();
            for batch in uses(label).chunks(500) {
                post(ingest, batch, at).await?;
            }
            let after = meter.snapshot();
            Ok::<_, anyhow::Error>((
                after.read_units - before.read_units,
                after.write_units - before.write_units,
            ))
        }
    };
    let with_firsts = measure("first").await?;
    let repeated = measure("again").await?;
    let n = firsts.max(1) as f64;
    let before = meter.snapshot();
    let t = Instant::now();
    // 10:15 in Tokyo on a Tuesday: inside business hours.
    let report = nudge_shared::delivery::sweep(
        deps,
        registry::render_vars,
        start + Duration::hours(1) + Duration::minutes(15),
        "bench",
    )
    .await?;
    let sweep_wall = t.elapsed().as_secs_f64();
    let after = meter.snapshot();
    stack.delete_table(&table).await?;
    Ok(json!({
        "programs_stored": accounts,
        "empty_hourly_run": {
            "read_units": rru,
            "requests": requests,
            "wall_ms": wall * 1000.0,
            "billed_floor_rru": 0.5 * requests.saturating_sub(1) as f64,
        },
        "congratulations": firsts,
        "per_congratulation_planned_at_ingest": {
            "read_units": (with_firsts.0 - repeated.0) / n,
            "write_units": (with_firsts.1 - repeated.1) / n,
        },
        "per_congratulation_delivered": {
            "sent": report.sent,
            "read_units": (after.read_units - before.read_units) / report.sent.max(1) as f64,
            "write_units": (after.write_units - before.write_units) / report.sent.max(1) as f64,
            "sent_per_s": report.sent as f64 / sweep_wall,
        },
    }))
}
