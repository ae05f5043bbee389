//! `nudge kpi` end to end: a small portfolio of new customers through the real ingest handler,
//! event by event at the time it happened, with the `milestones` function's hourly run and the
//! delivery sweep every two hours of twelve simulated days; then the KPIs read back from
//! DynamoDB Local.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use nudge_infra::kpi;
use nudge_shared::domain::Stage;
use nudge_shared::milestones::kpi::OnboardingKpis;
use nudge_shared::registry;
use nudge_tests::{TestEnv, at, sweep};
use serde_json::{Value, json};

fn profile(name: &str, tz: &str, contract_start: &str) -> Value {
    json!({"name": name, "plan": "premium", "industry": "retail", "timezone": tz,
           "locale": "en", "contract_start": contract_start, "renewal_date": "2027-11-01",
           "renewals": 0, "arr": 12000})
}

fn contact(account: &str, role: &str) -> Value {
    json!({"email": format!("{role}@{account}.example"), "name": "Ann", "role": role})
}

/// The portfolio, in time order (the default plan: invite_users, import_data, first_report):
/// - `acme` (UTC, contract from Mon 11-02): every step, its report on 11-04 10:00 completing
///   onboarding 2 days 10 hours after the contract's midnight; 4 key-feature uses;
/// - `bolt` (Tokyo, from 11-03): one step, one key-feature use; on track at the day-7 check
///   (11-10 00:00 in Tokyo), so its admin and executive get the week-one milestone;
/// - `cove` (UTC, from 11-04): a report on 11-05 12:00 (1.5 days) and nothing else of the plan;
///   3 key-feature uses; on track at its day-7 check;
/// - `dune` (UTC, from 11-06): nothing; stuck at its day-7 check (no milestone);
/// - `old` (contract from 10-01, outside the dates): everything done, active; not a new customer.
fn portfolio() -> Vec<(DateTime<Utc>, Value)> {
    let mut ev = Vec::new();
    let mut n = 0;
    let mut push = |t: &str, account: &str, contact: Option<&str>, ty: &str, p: Value| {
        n += 1;
        let t = at(t);
        let mut e = json!({"event_id": format!("k{n}"), "account_id": account, "type": ty,
                           "occurred_at": t.to_rfc3339(), "properties": p});
        if let Some(c) = contact {
            e["contact_id"] = json!(c);
        }
        ev.push((t, e));
    };
    for (t, account, tz, start, contacts) in [
        (
            "2026-11-02T08:00:00Z",
            "acme",
            "UTC",
            "2026-11-02",
            &[("u1", "admin")][..],
        ),
        (
            "2026-11-02T08:00:00Z",
            "old",
            "UTC",
            "2026-10-01",
            &[("u6", "admin")][..],
        ),
        (
            "2026-11-02T16:00:00Z",
            "bolt",
            "Asia/Tokyo",
            "2026-11-03",
            &[("u2", "admin"), ("u3", "executive")][..],
        ),
        (
            "2026-11-04T08:00:00Z",
            "cove",
            "UTC",
            "2026-11-04",
            &[("u4", "admin")][..],
        ),
        (
            "2026-11-06T08:00:00Z",
            "dune",
            "UTC",
            "2026-11-06",
            &[("u5", "admin")][..],
        ),
    ] {
        push(
            t,
            account,
            None,
            "account_upserted",
            profile(account, tz, start),
        );
        for (c, role) in contacts {
            push(
                t,
                account,
                Some(c),
                "contact_upserted",
                contact(account, role),
            );
        }
    }
    // Time, account, contact, then a step done, a key feature used or a report made.
    let usage = "
        2026-11-02T10:00:00Z acme u1 step invite_users
        2026-11-03T10:00:00Z acme u1 step import_data
        2026-11-03T10:00:00Z acme u1 feature dashboard
        2026-11-03T11:00:00Z acme u1 feature dashboard
        2026-11-04T10:00:00Z acme u1 report
        2026-11-05T10:00:00Z acme u1 feature report_builder
        2026-11-05T11:00:00Z acme u1 feature report_builder
        2026-11-04T01:00:00Z bolt u2 step invite_users
        2026-11-05T01:00:00Z bolt u2 feature workflow
        2026-11-05T12:00:00Z cove u4 report
        2026-11-06T10:00:00Z cove u4 feature dashboard
        2026-11-06T10:30:00Z cove u4 feature dashboard
        2026-11-06T11:00:00Z cove u4 feature dashboard
        2026-11-03T09:00:00Z old u6 step invite_users
        2026-11-03T09:00:00Z old u6 step import_data
        2026-11-03T09:00:00Z old u6 report
        2026-11-04T10:00:00Z old u6 feature dashboard
        2026-11-04T11:00:00Z old u6 feature dashboard
        2026-11-04T12:00:00Z old u6 feature dashboard
        2026-11-04T13:00:00Z old u6 feature dashboard
        2026-11-04T14:00:00Z old u6 feature dashboard
    ";
    for line in usage.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (ty, p) = match (f[3], f.get(4)) {
            ("step", Some(s)) => ("setup_step_completed", json!({ "step": s })),
            ("feature", Some(x)) => ("feature_used", json!({ "feature": x })),
            _ => ("report_created", json!({})),
        };
        push(f[0], f[1], Some(f[2]), ty, p);
    }
    ev.sort_by_key(|(t, _)| *t);
    ev
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("day")
}

/// Each event at its own time, and every two hours (after that time's events) the milestones
/// function's hourly run and the delivery sweep, from `start` to `end`.
async fn live_through(env: &TestEnv, start: DateTime<Utc>, end: DateTime<Utc>) {
    let milestones = registry::find("milestones").expect("milestones is registered");
    let deps = env.deps();
    let mut events = portfolio().into_iter().peekable();
    let mut tick = start;
    while tick <= end {
        while let Some((t, e)) = events.next_if(|(t, _)| *t <= tick) {
            let body = json!({ "events": [e] }).to_string();
            let (status, out) = env.post_events(&body, t).await;
            assert_eq!(status, 200, "{out}");
            assert_eq!(out["accepted"].as_u64(), Some(1), "{e}: {out}");
        }
        let run_id = format!("kpi-{}", tick.timestamp());
        registry::run_scheduled(milestones, deps, tick, &run_id)
            .await
            .expect("milestones run");
        sweep(deps, tick, &run_id).await.expect("sweep");
        tick += Duration::hours(2);
    }
    assert!(events.next().is_none(), "every event is in the window");
}

fn milestones(k: &OnboardingKpis) -> Vec<(Stage, usize, usize)> {
    k.milestones
        .iter()
        .map(|m| (m.stage, m.sent, m.accounts))
        .collect()
}

#[tokio::test]
async fn the_kpis_of_a_cohort_of_new_customers_after_twelve_days_of_milestones() {
    // A generous frequency cap: every milestone the program plans leaves (the cap's own
    // behaviour is tested in delivery.rs).
    let env = TestEnv::with_config("kpi", |c| {
        c.cap.per_day = 10;
        c.cap.per_week = 30;
    })
    .await;
    live_through(&env, at("2026-11-02T00:00:00Z"), at("2026-11-14T00:00:00Z")).await;
    let shards = env.deps().config.health_index_shards;
    let (from, to) = (day("2026-11-02"), day("2026-11-06"));
    let now = at("2026-11-14T00:00:00Z");

    let k = kpi::onboarding(&env.store, shards, from, to, now)
        .await
        .expect("kpis");
    assert_eq!(k.cohort, 4, "acme, bolt, cove, dune; not old: {k:#?}");
    assert_eq!((k.completed, k.completion_rate), (1, 0.25));
    let funnel: Vec<(&str, usize, usize)> = k
        .funnel
        .iter()
        .map(|r| (r.step.as_str(), r.done, r.of))
        .collect();
    assert_eq!(
        funnel,
        [
            ("invite_users", 2, 4),
            ("import_data", 1, 4),
            ("first_report", 2, 4)
        ]
    );
    // acme: 2 days 10 hours (2.42); cove's report after 1.5 days: (2.42 + 1.5) / 2 = 1.96.
    assert_eq!(k.median_days_to_complete, Some(2.4));
    assert_eq!(
        (k.first_value, k.median_days_to_first_value),
        (2, Some(2.0))
    );
    assert_eq!(
        (k.active, k.active_rate),
        (2, 0.5),
        "acme 4 uses, cove 3, bolt 1"
    );
    assert_eq!(
        milestones(&k),
        [
            // bolt's admin and executive, cove's admin; acme was complete by day 7, dune stuck.
            (Stage::WeekOne, 3, 2),
            // acme's dashboard and report_builder, bolt's workflow, cove's dashboard.
            (Stage::FirstFeatureUse, 4, 3),
            // cove's; acme's report completed onboarding and was celebrated as that.
            (Stage::FirstReport, 1, 1),
            (Stage::OnboardingComplete, 1, 1),
        ],
        "{k:#?}"
    );

    // As of 11-05 00:00: acme is complete and celebrated; nothing of cove's report or of the
    // day-7 checks yet.
    let early = kpi::onboarding(&env.store, shards, from, to, at("2026-11-05T00:00:00Z"))
        .await
        .expect("kpis");
    assert_eq!(
        (early.cohort, early.completed, early.first_value),
        (4, 1, 1)
    );
    assert_eq!(
        milestones(&early),
        [
            (Stage::WeekOne, 0, 0),
            (Stage::FirstFeatureUse, 1, 1),
            (Stage::FirstReport, 0, 0),
            (Stage::OnboardingComplete, 1, 1),
        ]
    );

    // The summary puts rates in percent and the funnel in rows; the JSON is the figures.
    let text = kpi::kpi(&env.store, shards, from, to, now, false)
        .await
        .expect("summary");
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("completion rate").ends_with(" 25.0%  (1 of 4 with every step of their plan)"),
        "{text}"
    );
    assert!(
        line("median days to complete").ends_with(" 2.4 days"),
        "{text}"
    );
    assert!(
        line("time to first value").contains(" 2.0 days  (median to the first report"),
        "{text}"
    );
    assert!(
        line("active rate").contains(" 50.0%  (2 of 4 with 3+ key-feature uses in the 30 days"),
        "{text}"
    );
    let row = |step: &str| {
        text.lines()
            .find(|l| l.starts_with(step))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(
        row("import_data"),
        Some(vec!["import_data", "1", "4", "25.0%"]),
        "{text}"
    );
    assert_eq!(row("week_one"), Some(vec!["week_one", "3", "2"]), "{text}");
    let json: Value = serde_json::from_str(
        &kpi::kpi(&env.store, shards, from, to, now, true)
            .await
            .expect("json"),
    )
    .expect("valid JSON");
    assert_eq!(json["completion_rate"], 0.25);
    assert_eq!(json["funnel"][2]["step"], "first_report");
    assert_eq!(json["milestones"][3]["stage"], "onboarding_complete");

    // The window's dates are inclusive; old's contract alone is a cohort of one, complete.
    let old = kpi::onboarding(
        &env.store,
        shards,
        day("2026-10-01"),
        day("2026-10-01"),
        now,
    )
    .await
    .expect("kpis");
    assert_eq!((old.cohort, old.completed, old.active), (1, 1, 1));
    assert!(
        old.milestones.iter().all(|m| m.sent == 0),
        "not a new customer"
    );

    let err = kpi::onboarding(&env.store, shards, to, from, now)
        .await
        .expect_err("from after to");
    assert!(err.to_string().contains("--from"), "{err}");
}

#[tokio::test]
async fn a_cohort_with_no_account_is_all_zeros() {
    let env = TestEnv::new("kpi_empty").await;
    let shards = env.deps().config.health_index_shards;
    let now = at("2026-11-14T00:00:00Z");
    let k = kpi::onboarding(
        &env.store,
        shards,
        day("2026-11-01"),
        day("2026-11-30"),
        now,
    )
    .await
    .expect("kpis");
    assert_eq!((k.cohort, k.completion_rate, k.active_rate), (0, 0.0, 0.0));
    assert_eq!(k.median_days_to_complete, None);
    let text = kpi::kpi(
        &env.store,
        shards,
        day("2026-11-01"),
        day("2026-11-30"),
        now,
        false,
    )
    .await
    .expect("summary");
    assert!(
        text.contains("no account's contract starts in these dates"),
        "{text}"
    );
}
