//! `nudge bench health`: the daily health run's figures, printed, never asserted: read and
//! write units per account (DynamoDB Local's ConsumedCapacity) of the run including its plays,
//! accounts/s of the run (plan, one work item per shard, the items run concurrently as Lambda
//! runs them, score, snapshot, plays), the sweeps that deliver the plays through moto
//! (messages/s), pure scoring accounts/s on one core, and the backtest replay time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use nudge_shared::channels::MemoryQueue;
use nudge_shared::domain::Role;
use nudge_shared::events::{AccountProfile, ContactProfile, Event, EventPayload, Locale};
use nudge_shared::health::replay::replay_account;
use nudge_shared::health::service::score_record;
use nudge_shared::health::{HealthModel, local_day};
use nudge_shared::registry;
use nudge_shared::store::{
    AccountChange, DeliveryLogStore, EventStore, HealthStore, NpsAnswer, ProfileStore, RollupDelta,
};
use serde_json::{Value, json};

use crate::local::LocalStack;

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 18, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Every 10th account has gone quiet (it turns red: a CSM alert, and a risk email on tech
/// touch); every 7th renews within 45 days (heavy users among them get the upsell).
fn profile(i: usize) -> AccountProfile {
    let renewal = if i.is_multiple_of(7) {
        NaiveDate::from_ymd_opt(2027, 1, 10)
    } else {
        NaiveDate::from_ymd_opt(2027, 3, 31)
    };
    AccountProfile {
        name: format!("Account {i}"),
        plan: ["starter", "standard", "premium"][i % 3].into(),
        industry: "retail".into(),
        tier: None,
        csm: Some(nudge_shared::events::Csm {
            name: "Sato Hanako".into(),
            email: "sato@vendor.example".into(),
        }),
        timezone: chrono_tz::Asia::Tokyo,
        locale: Locale::Ja,
        contract_start: NaiveDate::from_ymd_opt(2025, 10, 1).unwrap_or_default(),
        renewal_date: renewal.unwrap_or_default(),
        renewals: 1,
        arr: (i % 50) as f64 * 2_000.0,
    }
}

fn quiet(i: usize) -> bool {
    i.is_multiple_of(10)
}

/// One account with 30 days of usage, an NPS answer and onboarding firsts.
async fn seed_account(
    store: &nudge_shared::store::dynamo::DynamoStore,
    i: usize,
    shards: u32,
) -> Result<()> {
    let id = format!("acct-{i:05}");
    let start = now() - Duration::days(60);
    store.upsert_account(&id, &profile(i), start).await?;
    store.index_account(&id, start, shards).await?;
    let admin = ContactProfile {
        email: format!("admin-{i}@bench.example"),
        phone: None,
        name: "Admin".into(),
        role: Role::Admin,
        timezone: None,
        locale: None,
    };
    store.upsert_contact(&id, "u1", &admin, start).await?;
    let change = AccountChange::AdminChanged {
        contact_id: "u1".into(),
    };
    store.change_account(&id, &change, start).await?;
    let today = local_day(now(), chrono_tz::Asia::Tokyo);
    let days = if quiet(i) { 0 } else { 30 };
    for d in 1..=days {
        let day = today - Duration::days(d);
        let mut delta = RollupDelta {
            events: 6,
            logins: 3,
            ..Default::default()
        };
        for f in ["dashboard", "report_builder", "integration", "workflow"] {
            delta.features.insert(f.into(), 1);
        }
        delta.contacts = BTreeSet::from(["u1".to_string(), "u2".to_string()]);
        store.add_rollup(&id, day, &delta).await?;
    }
    let firsts = BTreeMap::from([
        ("step_invite_users".to_string(), start),
        ("report".to_string(), start),
    ]);
    store.record_firsts(&id, &firsts).await?;
    let answer = NpsAnswer {
        score: (i % 11) as u8,
        at: now() - Duration::days(10),
        comment: None,
    };
    store.record_nps(&id, &format!("nps-{i}"), &answer).await?;
    Ok(())
}

/// `accounts` accounts as [`seed_account`] makes them, 16 at a time.
pub(crate) async fn seed_accounts(
    store: &nudge_shared::store::dynamo::DynamoStore,
    accounts: usize,
    shards: u32,
) -> Result<()> {
    stream::iter(0..accounts)
        .map(|i| async move { seed_account(store, i, shards).await })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .context("seeding")?;
    Ok(())
}

/// Events of one account over `days` (a profile, two logins and a feature use a day).
fn synthetic_events(i: usize, days: i64) -> Vec<Event> {
    let start = now() - Duration::days(days);
    let mut out = Vec::new();
    let mut push = |n: usize, at: DateTime<Utc>, payload: EventPayload| {
        out.push(Event {
            event_id: format!("e{i}-{n}"),
            account_id: format!("acct-{i:05}"),
            contact_id: Some("u1".into()),
            occurred_at: at.fixed_offset(),
            payload,
        });
    };
    push(0, start, EventPayload::AccountUpserted(profile(i)));
    for d in 0..days {
        let t = start + Duration::days(d) + Duration::hours(1);
        let n = d as usize * 3;
        push(n + 1, t, EventPayload::Login);
        push(n + 2, t + Duration::hours(2), EventPayload::Login);
        push(
            n + 3,
            t + Duration::hours(3),
            EventPayload::FeatureUsed {
                feature: "dashboard".into(),
            },
        );
    }
    out
}

/// Runs the queued work as Lambda would: every item in the queue at once (items enqueue their
/// shard's rest), until the queue is empty. Returns how many items ran.
pub(crate) async fn drain_concurrently(
    deps: &nudge_shared::Deps,
    queue: &MemoryQueue,
) -> Result<usize> {
    let worker = registry::find("health")
        .and_then(|f| f.queue_worker)
        .context("health has a queue worker")?;
    let mut ran = 0;
    loop {
        let items = queue.take_all();
        if items.is_empty() {
            return Ok(ran);
        }
        ran += items.len();
        futures::future::try_join_all(items.iter().map(|item| worker(deps, &item.body))).await?;
    }
}

pub async fn bench_health(
    stack: &LocalStack,
    accounts: usize,
    backtest_accounts: usize,
    shards: Option<u32>,
) -> Result<Value> {
    let table = format!("bench-health-{}", std::process::id());
    stack.create_table(&table).await?;
    let topic = stack.prepare_messaging().await?;
    let mut config = stack.config(&table, &topic)?;
    if let Some(shards) = shards {
        config.health_index_shards = shards;
    }
    let (deps, store) = stack.deps(config);
    let queue = Arc::new(MemoryQueue::default());
    let deps = deps.with_queue(queue.clone());
    let shards = deps.config.health_index_shards;

    eprintln!("bench health: seeding {accounts} accounts x 30 days of rollups ...");
    let t = Instant::now();
    seed_accounts(&store, accounts, shards).await?;
    eprintln!(
        "bench health: seeded in {:.1} s; daily run ...",
        t.elapsed().as_secs_f64()
    );

    let meter = store.meter();
    let before = meter.snapshot();
    let t = Instant::now();
    let health = registry::find("health").context("health is registered")?;
    registry::run_scheduled(health, &deps, now(), "bench").await?;
    let items = drain_concurrently(&deps, &queue).await?;
    let wall = t.elapsed().as_secs_f64();
    let after = meter.snapshot();
    let n = accounts.max(1) as f64;

    // The plays leave through the sweep: CSM alerts on the next run, customer emails at 09:00
    // in Tokyo (the recipients' business hours).
    eprintln!("bench health: daily run in {wall:.1} s; sweeping the plays ...");
    let reminders = registry::find("reminders").context("the sweep is registered")?;
    let mut sweeps = Vec::new();
    for (at, label) in [
        (now() + Duration::minutes(15), "csm_alerts"),
        (now() + Duration::minutes(15 * 25), "customer_emails"),
    ] {
        let before = meter.snapshot();
        let t = Instant::now();
        let out = registry::run_scheduled(reminders, &deps, at, label).await?;
        let secs = t.elapsed().as_secs_f64();
        let u = meter.snapshot();
        let sent = out["sweep"]["sent"].as_u64().unwrap_or(0);
        sweeps.push(json!({
            "sweep": label,
            "sent": sent,
            "blocked": out["sweep"]["blocked"],
            "deferred": out["sweep"]["deferred"],
            "wall_s": secs,
            "sent_per_s": sent as f64 / secs.max(1e-9),
            "read_units": u.read_units - before.read_units,
            "write_units": u.write_units - before.write_units,
        }));
    }
    let total = meter.snapshot();

    // The next day: every account scored again, the pulse unchanged, nothing to act on.
    let before_next = meter.snapshot();
    let t = Instant::now();
    registry::run_scheduled(health, &deps, now() + Duration::days(1), "bench-2").await?;
    drain_concurrently(&deps, &queue).await?;
    let next_wall = t.elapsed().as_secs_f64();
    let next = meter.snapshot();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for e in store.all_delivery_log().await? {
        *by_kind
            .entry(format!("{} {}", e.kind, e.status.as_str()))
            .or_default() += 1;
    }

    // Pure scoring on one core: the same stored record, scored repeatedly.
    let record = store
        .health_record(
            "acct-00001",
            now().date_naive() - Duration::days(60),
            now().date_naive(),
        )
        .await?;
    let model = HealthModel::default();
    let reps = 20_000;
    let t = Instant::now();
    let mut checksum = 0u64;
    for _ in 0..reps {
        if let Some(s) = score_record(&model, &record, now() - Duration::days(60), now()) {
            checksum += u64::from(s.score);
        }
    }
    let pure_per_s = reps as f64 / t.elapsed().as_secs_f64();

    // Backtest replay: synthetic raw histories, 90 days each, one model.
    let histories: Vec<Vec<Event>> = (0..backtest_accounts)
        .map(|i| synthetic_events(i, 120))
        .collect();
    let from = now().date_naive() - Duration::days(90);
    let to = now().date_naive();
    let t = Instant::now();
    let mut days = 0;
    for events in &histories {
        days += replay_account(&[&model], events, from, to)
            .iter()
            .map(|s| s.scores.len())
            .sum::<usize>();
    }
    let backtest_s = t.elapsed().as_secs_f64();
    stack.delete_table(&table).await?;

    Ok(json!({
        "accounts": accounts,
        "shards": shards,
        "work_items": items,
        "delivery_log": by_kind,
        "sweeps": sweeps,
        "first_day_with_plays_delivered": {
            "read_units_per_account": (total.read_units - before.read_units) / n,
            "write_units_per_account": (total.write_units - before.write_units) / n,
        },
        "next_day_steady": {
            "read_units_per_account": (next.read_units - before_next.read_units) / n,
            "write_units_per_account": (next.write_units - before_next.write_units) / n,
            "requests_per_account": (next.requests - before_next.requests) as f64 / n,
            "accounts_per_s": n / next_wall,
        },
        "daily_run": {
            "read_units_per_account": (after.read_units - before.read_units) / n,
            "write_units_per_account": (after.write_units - before.write_units) / n,
            "requests_per_account": (after.requests - before.requests) as f64 / n,
            "accounts_per_s": n / wall,
            "wall_s": wall,
        },
        "pure_scoring_accounts_per_s_one_core": pure_per_s,
        "backtest": {
            "accounts": backtest_accounts,
            "days": 90,
            "scores": days,
            "wall_s": backtest_s,
        },
        "checksum": checksum,
    }))
}
