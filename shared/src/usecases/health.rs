//! Health playbooks end to end over the memory store: the daily run through the registry and
//! its in-process queue, the ingest hook, and the sweep.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Asia::Tokyo;
use serde_json::json;

use super::{CSM_TOPIC, World, email, utc};
use crate::channels::MemoryQueue;
use crate::domain::{Channel, NudgeKind, NudgeStatus, Role, Stage, Tier};
use crate::events::{AccountProfile, ContactProfile, Csm, Locale, parse_event};
use crate::health::HealthModel;
use crate::health::model::Action;
use crate::registry;
use crate::store::{
    AccountChange, EventStore, HealthStore, ModelSelection, NudgeStore, ProfileStore, RollupDelta,
};

/// 18:00 UTC, the daily run's slot (03:00 the next day in Tokyo).
fn run_at(day: u32) -> DateTime<Utc> {
    utc(&format!("2026-12-{day:02}T18:00:00Z"))
}

struct Health {
    w: World,
    queue: Arc<MemoryQueue>,
}

impl Health {
    fn new() -> Health {
        let mut w = World::new();
        let queue = Arc::new(MemoryQueue::default());
        w.deps = w.deps.with_queue(queue.clone());
        Health { w, queue }
    }

    /// A tech-touch account in Tokyo with a CSM, an admin, an executive and a user, known to
    /// Nudge since `known_since`.
    async fn account(&self, id: &str, known_since: DateTime<Utc>, renewal: NaiveDate) {
        let profile = AccountProfile {
            name: format!("{id} KK"),
            plan: "standard".into(),
            industry: "retail".into(),
            tier: Some(Tier::TechTouch),
            csm: Some(Csm {
                name: "Sato Hanako".into(),
                email: "sato@vendor.example".into(),
            }),
            timezone: Tokyo,
            locale: Locale::En,
            contract_start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
            renewal_date: renewal,
            renewals: 1,
            arr: 5_000.0,
        };
        let s = &self.w.store;
        s.upsert_account(id, &profile, known_since)
            .await
            .expect("account");
        s.index_account(id, known_since, self.w.deps.config.health_index_shards)
            .await
            .expect("index");
        for (contact, role) in [
            ("adm", Role::Admin),
            ("boss", Role::Executive),
            ("u1", Role::User),
        ] {
            let c = ContactProfile {
                email: email(id, contact),
                phone: None,
                name: contact.to_uppercase(),
                role,
                timezone: None,
                locale: None,
            };
            s.upsert_contact(id, contact, &c, known_since)
                .await
                .expect("contact");
        }
        let admin = AccountChange::AdminChanged {
            contact_id: "adm".into(),
        };
        s.change_account(id, &admin, known_since - Duration::days(400))
            .await
            .expect("admin");
    }

    /// Uses of every key feature on each of the last 30 days: heavy use.
    async fn heavy_use(&self, id: &str, until: NaiveDate) {
        for d in 1..=30 {
            let delta = RollupDelta {
                events: 4,
                logins: 2,
                features: ["report_builder", "dashboard", "integration", "workflow"]
                    .into_iter()
                    .map(|f| (f.to_string(), 1))
                    .collect(),
                contacts: ["adm".to_string()].into(),
                ..RollupDelta::default()
            };
            self.w
                .store
                .add_rollup(id, until - Duration::days(d), &delta)
                .await
                .expect("rollup");
        }
    }

    /// Stores `model` and makes it active.
    async fn activate(&self, model: &HealthModel) {
        let json = serde_json::to_string(model).expect("model json");
        self.w
            .store
            .put_model(&model.version, &json, run_at(1))
            .await
            .expect("put model");
        self.w
            .store
            .select_models(&ModelSelection {
                active: Some(model.version.clone()),
                shadow: None,
            })
            .await
            .expect("select");
    }

    /// The daily run and its queue, as Lambda would run them, then the next sweep.
    async fn daily(&self, now: DateTime<Utc>) {
        let health = registry::find("health").expect("registered");
        registry::run_scheduled(health, &self.w.deps, now, "daily")
            .await
            .expect("daily run");
        registry::drain(&self.w.deps, &self.queue)
            .await
            .expect("queue");
        let next = now + Duration::minutes(15);
        self.w.sweep(next, &format!("sweep-{next}")).await;
    }

    async fn nudges(&self, id: &str) -> Vec<(String, NudgeKind, NudgeStatus)> {
        let mut out: Vec<_> = self
            .w
            .store
            .nudges_with_prefix(id, "hp/")
            .await
            .expect("nudges")
            .into_iter()
            .map(|n| (n.nudge_id, n.kind, n.status))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn sns(&self) -> usize {
        self.w
            .outbox
            .sent()
            .iter()
            .filter(|s| s.channel == Channel::Sns)
            .count()
    }
}

/// Every score red (or green): the bands, not the inputs, decide the tests' transitions.
fn banded(version: &str, red: bool) -> HealthModel {
    let mut m = HealthModel {
        version: version.into(),
        ..HealthModel::default()
    };
    if red {
        m.bands.red_below = 99.0;
        m.bands.green_from = 100.0;
    } else {
        m.bands.red_below = 0.0;
        m.bands.green_from = 1.0;
    }
    m
}

#[tokio::test]
async fn turning_red_alerts_the_csm_at_once_and_the_gentle_email_waits_for_business_hours() {
    let h = Health::new();
    h.account(
        "acme",
        run_at(1) - Duration::days(60),
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    h.activate(&banded("all-red", true)).await;
    h.daily(run_at(1)).await;
    assert_eq!(
        h.nudges("acme").await,
        [
            (
                "hp/turns_red/2026-12-02/health_alert".into(),
                NudgeKind::HealthAlert,
                NudgeStatus::Sent
            ),
            (
                "hp/turns_red/2026-12-02/risk_nudge".into(),
                NudgeKind::RiskNudge,
                NudgeStatus::Pending
            ),
        ]
    );
    assert_eq!(h.sns(), 1, "the CSM alert left with the first sweep");
    let risk =
        h.w.nudge("acme", "hp/turns_red/2026-12-02/risk_nudge")
            .await;
    assert_eq!(risk.send_at, utc("2026-12-02T00:00:00Z"), "09:00 in Tokyo");
    assert_eq!(risk.stage, Some(Stage::TurnsRed));
    // The sweep at 09:00 Tokyo sends it to the admin.
    h.w.sweep(utc("2026-12-02T00:00:00Z"), "sweep").await;
    let mail: Vec<String> =
        h.w.outbox
            .sent()
            .into_iter()
            .filter(|s| s.channel == Channel::Email)
            .map(|s| s.to)
            .collect();
    assert_eq!(mail, [email("acme", "adm")]);
    let log = h.w.log().await;
    assert!(
        log.iter()
            .any(|e| e.kind == NudgeKind::HealthAlert && e.to == CSM_TOPIC)
    );
}

#[tokio::test]
async fn staying_red_and_rerunning_a_day_send_nothing_twice() {
    let h = Health::new();
    h.account(
        "acme",
        run_at(1) - Duration::days(60),
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    h.activate(&banded("all-red", true)).await;
    h.daily(run_at(1)).await;
    let first = h.nudges("acme").await;
    // A shard that crashed after sending, before its state was written: rerun from scratch.
    h.w.store
        .put_pulse("acme", &Default::default())
        .await
        .expect("pulse reset");
    h.daily(run_at(1)).await;
    h.daily(run_at(1)).await;
    assert_eq!(h.nudges("acme").await, first);
    assert_eq!(h.sns(), 1);
    // Still red the next days: nothing more.
    h.daily(run_at(2)).await;
    h.daily(run_at(3)).await;
    assert_eq!(h.nudges("acme").await.len(), 2);
    assert_eq!(h.sns(), 1);
    // Recovered, then red again: a new turn, acted on once.
    h.activate(&banded("all-green", false)).await;
    h.daily(run_at(4)).await;
    h.activate(&banded("all-red-2", true)).await;
    h.daily(run_at(5)).await;
    h.daily(run_at(5)).await;
    assert_eq!(h.sns(), 2);
    assert_eq!(h.nudges("acme").await.len(), 4);
}

#[tokio::test]
async fn provisional_accounts_never_act() {
    let h = Health::new();
    h.account(
        "fresh",
        run_at(1) - Duration::days(3),
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    h.activate(&banded("all-red", true)).await;
    h.daily(run_at(1)).await;
    assert!(h.nudges("fresh").await.is_empty());
    assert_eq!(h.sns(), 0);
}

#[tokio::test]
async fn a_playbook_edit_takes_effect_on_the_next_run() {
    let h = Health::new();
    h.account(
        "acme",
        run_at(1) - Duration::days(60),
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    let mut quiet = banded("red-quiet", true);
    quiet.playbooks.tech_touch.turns_red = vec![];
    h.activate(&quiet).await;
    h.daily(run_at(1)).await;
    assert!(
        h.nudges("acme").await.is_empty(),
        "the team switched red plays off"
    );
    // Back to green, then red under an edited playbook: only the alert.
    h.activate(&banded("green", false)).await;
    h.daily(run_at(2)).await;
    let mut alert_only = banded("red-alert-only", true);
    alert_only.playbooks.tech_touch.turns_red = vec![Action::HealthAlert];
    h.activate(&alert_only).await;
    h.daily(run_at(3)).await;
    let kinds: Vec<NudgeKind> = h.nudges("acme").await.into_iter().map(|n| n.1).collect();
    assert_eq!(kinds, [NudgeKind::HealthAlert]);
}

#[tokio::test]
async fn the_upsell_goes_once_per_renewal_to_the_admin_and_the_executive_only() {
    let h = Health::new();
    let renewal = NaiveDate::from_ymd_opt(2027, 1, 20).expect("d");
    h.account("acme", run_at(1) - Duration::days(60), renewal)
        .await;
    h.heavy_use("acme", NaiveDate::from_ymd_opt(2026, 12, 2).expect("d"))
        .await;
    h.activate(&banded("all-green", false)).await;
    h.daily(run_at(1)).await;
    let ids: Vec<String> = h.nudges("acme").await.into_iter().map(|n| n.0).collect();
    assert_eq!(
        ids,
        [
            "hp/renewal_upsell/2027-01-20/upsell_offer/admin",
            "hp/renewal_upsell/2027-01-20/upsell_offer/boss"
        ]
    );
    h.w.sweep(utc("2026-12-02T00:00:00Z"), "sweep").await;
    h.daily(run_at(2)).await;
    h.daily(run_at(3)).await;
    assert_eq!(h.nudges("acme").await.len(), 2, "once per renewal cycle");
    let mut to: Vec<String> = h.w.outbox.sent().into_iter().map(|s| s.to).collect();
    to.sort();
    assert_eq!(
        to,
        [email("acme", "adm"), email("acme", "boss")],
        "never to plain users"
    );
    let exec =
        h.w.nudge("acme", "hp/renewal_upsell/2027-01-20/upsell_offer/boss")
            .await;
    assert_eq!(exec.vars["role"], "executive");
}

#[tokio::test]
async fn a_new_admin_is_welcomed_once_and_the_csm_told() {
    let h = Health::new();
    h.account(
        "acme",
        run_at(1) - Duration::days(60),
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    let wire = json!({
        "event_id": "e-admin-1",
        "account_id": "acme",
        "contact_id": "boss",
        "type": "admin_changed",
        "occurred_at": "2026-12-01T02:00:00Z",
        "properties": { "previous_contact_id": "adm" },
    });
    let now = utc("2026-12-01T02:00:00Z");
    let event = parse_event(&wire, now).expect("a valid admin_changed");
    for _ in 0..2 {
        registry::on_ingest(&h.w.deps, &event, now)
            .await
            .expect("hook");
    }
    assert_eq!(
        h.nudges("acme").await,
        [
            (
                "hp/admin_changed/boss/admin_welcome".into(),
                NudgeKind::AdminWelcome,
                NudgeStatus::Pending
            ),
            (
                "hp/admin_changed/boss/health_alert".into(),
                NudgeKind::HealthAlert,
                NudgeStatus::Pending
            ),
        ]
    );
    h.w.sweep(now, "sweep").await;
    let mut sent: Vec<(Channel, String)> =
        h.w.outbox
            .sent()
            .into_iter()
            .map(|s| (s.channel, s.to))
            .collect();
    sent.sort_by_key(|(c, _)| c.as_str());
    assert_eq!(
        sent,
        [
            (Channel::Email, email("acme", "boss")),
            (Channel::Sns, String::new())
        ]
    );
    // The account's first admin is not a change.
    let first = json!({
        "event_id": "e-admin-0", "account_id": "acme", "contact_id": "u1",
        "type": "admin_changed", "occurred_at": "2026-12-01T01:00:00Z", "properties": {},
    });
    let event = parse_event(&first, now).expect("valid");
    registry::on_ingest(&h.w.deps, &event, now)
        .await
        .expect("hook");
    assert_eq!(h.nudges("acme").await.len(), 2);
}

#[tokio::test]
async fn a_shard_longer_than_one_work_item_is_handed_on_and_every_account_scored_once() {
    use crate::health::service::ACCOUNTS_PER_MESSAGE;
    let mut h = Health::new();
    // One shard, so it holds more than one work item's worth.
    h.w.deps.config.health_index_shards = 1;
    let n = ACCOUNTS_PER_MESSAGE + 5;
    let known = run_at(1) - Duration::days(60);
    let profile = AccountProfile {
        name: "Bulk".into(),
        plan: "standard".into(),
        industry: "retail".into(),
        tier: None,
        csm: None,
        timezone: Tokyo,
        locale: Locale::Ja,
        contract_start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
        renewal_date: NaiveDate::from_ymd_opt(2027, 9, 1).expect("date"),
        renewals: 1,
        arr: 5_000.0,
    };
    let shards = h.w.deps.config.health_index_shards;
    for i in 0..n {
        let id = format!("a{i:05}");
        h.w.store
            .upsert_account(&id, &profile, known)
            .await
            .expect("account");
        h.w.store
            .index_account(&id, known, shards)
            .await
            .expect("index");
    }
    let health = registry::find("health").expect("registered");
    registry::run_scheduled(health, &h.w.deps, run_at(1), "daily")
        .await
        .expect("daily run");
    let items = registry::drain(&h.w.deps, &h.queue).await.expect("queue");
    assert!(
        items > shards as usize,
        "at least one shard was handed on: {items} items"
    );
    let day = NaiveDate::from_ymd_opt(2026, 12, 2).expect("date");
    for i in [0, n / 2, n - 1] {
        let snaps =
            h.w.store
                .snapshots(&format!("a{i:05}"), day, day)
                .await
                .expect("snapshots");
        assert_eq!(snaps.len(), 1, "a{i:05}");
    }
}

#[tokio::test]
async fn a_churned_account_is_scored_but_never_played() {
    let h = Health::new();
    let known = run_at(1) - Duration::days(60);
    h.account(
        "gone",
        known,
        NaiveDate::from_ymd_opt(2027, 9, 1).expect("d"),
    )
    .await;
    h.w.store
        .change_account(
            "gone",
            &AccountChange::Churned,
            run_at(1) - Duration::days(2),
        )
        .await
        .expect("churn");
    h.activate(&banded("all-red", true)).await;
    h.daily(run_at(1)).await;
    assert!(h.nudges("gone").await.is_empty());
    let day = NaiveDate::from_ymd_opt(2026, 12, 2).expect("d");
    let snaps =
        h.w.store
            .snapshots("gone", day, day)
            .await
            .expect("snapshots");
    assert_eq!(snaps.len(), 1, "its history is kept for the backtest");
}
