//! `bench delivery`: DynamoDB request units per sent and per blocked nudge, measured with the
//! store adapter's capacity meter against a real table (DynamoDB Local reports
//! `ConsumedCapacity` like the service does). The CLI wires it as
//! `nudge bench delivery [--nudges N]`.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;

use nudge_shared::Deps;
use nudge_shared::delivery::sweep::{LOOK_BACK, buckets_between};
use nudge_shared::delivery::{DeliveryError, Outcome, deliver};
use nudge_shared::domain::{Nudge, NudgeKind, no_extra_vars};
use nudge_shared::events::{AccountProfile, ContactProfile, Csm, Locale, Role, Tier};
use nudge_shared::store::dynamo::{Capacity, CapacityMeter};

/// Average cost of one nudge in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UnitsPer {
    pub read_units: f64,
    pub write_units: f64,
    pub requests: f64,
}

fn per(before: Capacity, after: Capacity, n: usize) -> UnitsPer {
    let n = n.max(1) as f64;
    UnitsPer {
        read_units: (after.read_units - before.read_units) / n,
        write_units: (after.write_units - before.write_units) / n,
        requests: (after.requests - before.requests) as f64 / n,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryBench {
    pub nudges: usize,
    /// Recording a pending nudge (PutItem with its GSI keys).
    pub record: UnitsPer,
    /// Delivering a transactional nudge (reads, claim, mark, message map, stats, log).
    pub sent_transactional: UnitsPer,
    /// Delivering a marketing nudge (as above + cap read and reservation + follow-up record).
    pub sent_marketing: UnitsPer,
    /// Blocking a nudge (reads, conditional mark, log).
    pub blocked: UnitsPer,
    /// One scheduled run's due-queries over one hour of buckets with nothing due.
    pub empty_run: UnitsPer,
    pub outcomes_ok: bool,
}

async fn seed(
    deps: &Deps,
    account: &str,
    unsubscribed: bool,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let profile = AccountProfile {
        name: format!("Bench {account}"),
        plan: "standard".into(),
        industry: "software".into(),
        tier: Some(Tier::TechTouch),
        csm: Some(Csm {
            name: "Bench CSM".into(),
            email: "csm@example.com".into(),
        }),
        timezone: chrono_tz::Asia::Tokyo,
        locale: Locale::Ja,
        contract_start: date,
        renewal_date: date + Duration::days(365),
        renewals: 0,
        arr: 12000.0,
    };
    deps.store.upsert_account(account, &profile, now).await?;
    let contact = ContactProfile {
        email: format!("{account}@example.com"),
        phone: None,
        name: "Bench Admin".into(),
        role: Role::Admin,
        timezone: None,
        locale: None,
    };
    deps.store
        .upsert_contact(account, "c1", &contact, now)
        .await?;
    if unsubscribed {
        deps.store.unsubscribe(account, "c1", "all").await?;
    }
    Ok(())
}

fn nudge(account: &str, kind: NudgeKind, now: DateTime<Utc>) -> Nudge {
    Nudge::new(
        format!("bench:{}", kind.as_str()),
        account,
        Some("c1".into()),
        kind,
        now,
        "bench",
        now,
    )
    .with_stage(nudge_shared::domain::Stage::TMinus3d)
    .with_vars(json!({"title": "Bench", "time_left": "3 days", "due_local": "11/23 18:00", "link": "https://app.example.com"}))
}

/// Runs the bench: `n` nudges per phase, on accounts prefixed with `prefix` (use a fresh
/// table or a unique prefix). `meter` must be the meter of the store inside `deps`.
pub async fn bench_delivery(
    deps: &Deps,
    meter: &CapacityMeter,
    n: usize,
    prefix: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryBench, DeliveryError> {
    let n = n.max(1);
    let shards = deps.config.due_shards;
    let mut ok = true;
    for i in 0..n {
        seed(deps, &format!("{prefix}-ok-{i}"), false, now).await?;
        seed(deps, &format!("{prefix}-unsub-{i}"), true, now).await?;
    }
    let make = |group: &str, kind| -> Vec<Nudge> {
        (0..n)
            .map(|i| nudge(&format!("{prefix}-{group}-{i}"), kind, now))
            .collect()
    };
    let transactional = make("ok", NudgeKind::DeadlineReminder);
    let marketing = make("ok", NudgeKind::UpsellOffer);
    let blocked = make("unsub", NudgeKind::DeadlineReminder);

    let before = meter.snapshot();
    for nd in &transactional {
        deps.store.put_nudge(nd, shards).await?;
    }
    let record = per(before, meter.snapshot(), n);
    for nd in marketing.iter().chain(&blocked) {
        deps.store.put_nudge(nd, shards).await?;
    }

    let phase = |list: Vec<Nudge>, expect: fn(&Outcome) -> bool| async move {
        let before = meter.snapshot();
        let mut all = true;
        for nd in &list {
            let o = deliver(deps, no_extra_vars, nd, now, "bench-run").await?;
            if !expect(&o) {
                eprintln!(
                    "bench delivery: {} {}: unexpected outcome {o:?}",
                    nd.kind.as_str(),
                    nd.account_id
                );
            }
            all &= expect(&o);
        }
        Ok::<_, DeliveryError>((per(before, meter.snapshot(), list.len()), all))
    };
    let (sent_transactional, a) =
        phase(transactional, |o| matches!(o, Outcome::Sent { .. })).await?;
    let (sent_marketing, b) = phase(marketing, |o| matches!(o, Outcome::Sent { .. })).await?;
    let (blocked, c) = phase(blocked, |o| matches!(o, Outcome::Blocked(_))).await?;
    ok &= a && b && c;

    let before = meter.snapshot();
    let later = now + Duration::days(30);
    let buckets = buckets_between(later - LOOK_BACK, later);
    deps.store.due_nudges(&buckets, shards, later).await?;
    let empty_run = per(before, meter.snapshot(), 1);

    Ok(DeliveryBench {
        nudges: n,
        record,
        sent_transactional,
        sent_marketing,
        blocked,
        empty_run,
        outcomes_ok: ok,
    })
}
