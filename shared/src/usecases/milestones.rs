//! Milestones and the 30-day program end to end over the memory store: events through the real
//! ingest batch path, the hourly run and the 15-minute sweep on their cadence.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{World, email, utc};
use crate::domain::{Channel, LogStatus, NudgeKind, Stage};
use crate::events::parse_event;
use crate::ingest::{IngestCache, IngestOutcome, ingest_batch};
use crate::registry;
use crate::store::{AgendaStore, DeliveryLogStore, NudgeStore};

struct Journey {
    w: World,
    cache: IngestCache,
    n: usize,
}

impl Journey {
    fn new() -> Journey {
        Journey {
            w: World::new(),
            cache: IngestCache::default(),
            n: 0,
        }
    }

    /// Events of account `acme` at `at`: (type, contact, properties).
    async fn send(&mut self, at: &str, events: &[(&str, Option<&str>, Value)]) -> IngestOutcome {
        let now = utc(at);
        let parsed = events
            .iter()
            .map(|(ty, contact, props)| {
                self.n += 1;
                let mut e = json!({"event_id": format!("e{}", self.n), "account_id": "acme",
                    "type": ty, "occurred_at": at, "properties": props});
                if let Some(c) = contact {
                    e["contact_id"] = json!(c);
                }
                parse_event(&e, now)
            })
            .collect();
        ingest_batch(&self.w.deps, &self.cache, parsed, now).await
    }

    /// A new customer in `tz`, contract starting on `start`, with an admin, an executive and a
    /// user, first heard of at `at`.
    async fn onboard(&mut self, at: &str, start: &str, tz: &str) {
        let profile = json!({"name": "Acme", "plan": "standard", "industry": "retail",
            "timezone": tz, "locale": "en", "contract_start": start, "renewal_date": "2027-12-01",
            "renewals": 0, "arr": 6000});
        let person = |name: &str, role: &str| json!({"email": email("acme", name), "name": name.to_uppercase(), "role": role});
        let out = self
            .send(
                at,
                &[
                    ("account_upserted", None, profile),
                    ("contact_upserted", Some("adm"), person("adm", "admin")),
                    (
                        "contact_upserted",
                        Some("boss"),
                        person("boss", "executive"),
                    ),
                    ("contact_upserted", Some("u1"), person("u1", "user")),
                ],
            )
            .await;
        assert_eq!(out.accepted, 4, "{out:?}");
    }

    /// The hourly run and the sweep every 15 minutes in `[from, to)`, as deployed.
    async fn run(&self, from: &str, to: &str) {
        let milestones = registry::find("milestones").expect("registered");
        let mut at = utc(from);
        while at < utc(to) {
            if at.timestamp() % 3600 == 0 {
                registry::run_scheduled(milestones, &self.w.deps, at, "hourly")
                    .await
                    .expect("hourly run");
            }
            self.w.sweep(at, &format!("sweep-{at}")).await;
            at += Duration::minutes(15);
        }
    }

    /// (kind, stage, channel, to, status) of the delivery log, in order.
    async fn log(&self) -> Vec<(NudgeKind, Option<Stage>, Channel, String, LogStatus)> {
        self.w
            .store
            .delivery_log("acme")
            .await
            .expect("log")
            .into_iter()
            .map(|e| (e.kind, e.stage, e.channel, e.to, e.status))
            .collect()
    }

    async fn milestones_planned(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .w
            .store
            .nudges_with_prefix("acme", "ms/")
            .await
            .expect("nudges")
            .into_iter()
            .map(|n| n.nudge_id)
            .collect();
        ids.sort();
        ids
    }
}

fn to(contact: &str) -> String {
    email("acme", contact)
}

#[tokio::test]
async fn a_new_customer_is_welcomed_congratulated_once_and_checked_weekly() {
    let mut j = Journey::new();
    // Tuesday 2026-12-01, 09:30 in Tokyo.
    j.onboard("2026-12-01T00:30:00Z", "2026-12-01", "Asia/Tokyo")
        .await;
    j.run("2026-12-01T00:45:00Z", "2026-12-01T03:00:00Z").await;
    let welcome: Vec<_> = j.log().await;
    assert_eq!(
        welcome,
        [
            (
                NudgeKind::OnboardingWelcome,
                None,
                Channel::Email,
                to("adm"),
                LogStatus::Sent
            ),
            (
                NudgeKind::OnboardingWelcome,
                None,
                Channel::Email,
                to("boss"),
                LogStatus::Sent
            ),
        ],
        "the admin's first step and the executive's note, an hour after the account arrived"
    );

    // Two key features first used in one batch: one congratulation naming both. The batch
    // again (a client retry) and the same features later (not firsts) plan nothing more.
    let uses = [
        ("feature_used", Some("u1"), json!({"feature": "dashboard"})),
        (
            "feature_used",
            Some("u1"),
            json!({"feature": "report_builder"}),
        ),
        (
            "setup_step_completed",
            Some("adm"),
            json!({"step": "invite_users"}),
        ),
    ];
    j.send("2026-12-02T01:00:00Z", &uses).await;
    j.n -= 3;
    let replay = j.send("2026-12-02T01:00:00Z", &uses).await;
    assert_eq!(replay.duplicates, 3);
    j.send("2026-12-02T02:00:00Z", &uses).await;
    assert_eq!(
        j.milestones_planned().await,
        ["ms/first_feature_use/dashboard+report_builder"]
    );
    j.run("2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z").await;
    let sent = j.log().await;
    assert_eq!(
        sent[2],
        (
            NudgeKind::Milestone,
            Some(Stage::FirstFeatureUse),
            Channel::Email,
            to("u1"),
            LogStatus::Sent
        )
    );

    // Week one: the day-7 check at 00:00 on 12-08 in Tokyo (15:00 UTC on 12-07); one step of
    // three done is on track: the admin's congratulation and the executive's summary at 09:00.
    j.run("2026-12-07T14:00:00Z", "2026-12-08T01:00:00Z").await;
    let week: Vec<_> = j.log().await.into_iter().skip(3).collect();
    assert_eq!(
        week,
        [
            (
                NudgeKind::Milestone,
                Some(Stage::WeekOne),
                Channel::Email,
                to("adm"),
                LogStatus::Sent
            ),
            (
                NudgeKind::Milestone,
                Some(Stage::WeekOne),
                Channel::Email,
                to("boss"),
                LogStatus::Sent
            ),
        ]
    );
    let admin_week = j.w.nudge("acme", "ms/week_one/admin").await;
    assert_eq!(
        admin_week.sent_at,
        Some(utc("2026-12-08T00:00:00Z")),
        "09:00 in Tokyo"
    );

    // Day 14, no step since 12-02: stuck. The CSM hears at once; the admin's email waits for
    // business hours. Then the account pauses: on day 21 only the CSM hears; after resuming,
    // the day-28 email reaches the admin again.
    j.run("2026-12-14T14:00:00Z", "2026-12-15T01:00:00Z").await;
    j.send(
        "2026-12-16T01:00:00Z",
        &[("customer_replied", Some("adm"), json!({}))],
    )
    .await;
    j.run("2026-12-21T14:00:00Z", "2026-12-22T01:00:00Z").await;
    j.send(
        "2026-12-23T01:00:00Z",
        &[("automation_resumed", None, json!({}))],
    )
    .await;
    j.run("2026-12-28T14:00:00Z", "2026-12-29T01:00:00Z").await;
    let entries = j.w.store.delivery_log("acme").await.expect("log");
    let checks: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == NudgeKind::OnboardingProgress && !e.nudge_id.starts_with("fu:"))
        .map(|e| (e.stage, e.channel, e.status))
        .collect();
    // The day-14 email's follow-up (a resend if unopened) fell in the pause too.
    let follow_ups: Vec<_> = entries
        .iter()
        .filter(|e| e.nudge_id.starts_with("fu:"))
        .map(|e| (e.nudge_id.as_str(), e.status))
        .collect();
    assert_eq!(follow_ups, [("fu:ob/check_14/admin", LogStatus::Blocked)]);
    let stuck = Some(Stage::Stuck);
    assert_eq!(
        checks,
        [
            (stuck, Channel::Sns, LogStatus::Sent),
            (stuck, Channel::Email, LogStatus::Sent),
            (stuck, Channel::Sns, LogStatus::Sent),
            (stuck, Channel::Email, LogStatus::Blocked),
            (stuck, Channel::Sns, LogStatus::Sent),
            (stuck, Channel::Email, LogStatus::Sent),
        ]
    );
}

#[tokio::test]
async fn completing_the_steps_is_celebrated_and_ends_the_checks() {
    let mut j = Journey::new();
    j.onboard("2026-12-01T00:30:00Z", "2026-12-01", "Asia/Tokyo")
        .await;
    j.run("2026-12-01T00:45:00Z", "2026-12-01T03:00:00Z").await;
    j.send(
        "2026-12-02T01:00:00Z",
        &[
            (
                "setup_step_completed",
                Some("adm"),
                json!({"step": "invite_users"}),
            ),
            (
                "setup_step_completed",
                Some("adm"),
                json!({"step": "import_data"}),
            ),
        ],
    )
    .await;
    // The first report completes `first_report`, and with it onboarding: one celebration, to
    // the admin and the executive, not a separate first-report message.
    j.send(
        "2026-12-03T01:00:00Z",
        &[("report_created", Some("u1"), json!({}))],
    )
    .await;
    assert_eq!(
        j.milestones_planned().await,
        [
            "ms/onboarding_complete/admin",
            "ms/onboarding_complete/boss"
        ]
    );
    // No check plans anything for a completed account.
    j.run("2026-12-07T14:00:00Z", "2026-12-29T01:00:00Z").await;
    let kinds: Vec<_> = j.log().await.into_iter().map(|e| (e.0, e.1)).collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k.0 == NudgeKind::OnboardingProgress || k.1 == Some(Stage::WeekOne)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(NudgeKind::Milestone, Some(Stage::OnboardingComplete))));
}

#[tokio::test]
async fn an_unsubscribed_contact_gets_no_milestone() {
    let mut j = Journey::new();
    j.onboard("2026-12-01T00:30:00Z", "2026-12-01", "Asia/Tokyo")
        .await;
    j.send(
        "2026-12-01T01:00:00Z",
        &[(
            "unsubscribed",
            Some("u1"),
            json!({"category": "onboarding"}),
        )],
    )
    .await;
    j.send(
        "2026-12-02T01:00:00Z",
        &[("report_created", Some("u1"), json!({}))],
    )
    .await;
    j.run("2026-12-02T01:00:00Z", "2026-12-02T02:00:00Z").await;
    let report: Vec<_> = j
        .log()
        .await
        .into_iter()
        .filter(|e| e.1 == Some(Stage::FirstReport))
        .map(|e| (e.3, e.4))
        .collect();
    assert_eq!(report, [(to("u1"), LogStatus::Blocked)]);
}

#[tokio::test]
async fn an_existing_customer_switched_on_gets_no_program_and_no_congratulations() {
    let mut j = Journey::new();
    // Its contract started in June: Nudge is switched on over an existing base.
    j.onboard("2026-12-01T00:30:00Z", "2026-06-01", "Asia/Tokyo")
        .await;
    j.send(
        "2026-12-02T01:00:00Z",
        &[("report_created", Some("u1"), json!({}))],
    )
    .await;
    j.run("2026-12-01T01:00:00Z", "2026-12-02T03:00:00Z").await;
    assert!(j.log().await.is_empty());
    let tasks =
        j.w.store
            .due_tasks(utc("2026-11-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"), 4)
            .await
            .expect("agenda");
    assert!(tasks.is_empty());
}

#[tokio::test]
async fn week_one_is_the_accounts_local_day_in_new_york_across_the_dst_switch() {
    let mut j = Journey::new();
    // Contract 2026-03-02 in New York (EST); day 7 is 2026-03-09, after the switch to EDT.
    j.onboard("2026-03-02T15:00:00Z", "2026-03-02", "America/New_York")
        .await;
    let due: Vec<(String, DateTime<Utc>)> =
        j.w.store
            .due_tasks(utc("2026-03-01T00:00:00Z"), utc("2026-04-01T00:00:00Z"), 4)
            .await
            .expect("agenda")
            .into_iter()
            .map(|t| (t.task, t.due_at))
            .collect();
    assert_eq!(
        due,
        [
            ("welcome".to_string(), utc("2026-03-02T16:00:00Z")),
            ("check_07".to_string(), utc("2026-03-09T04:00:00Z")),
            ("check_14".to_string(), utc("2026-03-16T04:00:00Z")),
            ("check_21".to_string(), utc("2026-03-23T04:00:00Z")),
            ("check_28".to_string(), utc("2026-03-30T04:00:00Z")),
        ]
    );
}

#[tokio::test]
async fn a_backfilled_old_reply_does_not_pause_the_account_but_a_recent_one_does() {
    let mut j = Journey::new();
    j.onboard("2026-12-01T00:30:00Z", "2026-12-01", "Asia/Tokyo")
        .await;
    // Received on 12-10, it happened on 12-02: history, not today's conversation.
    let now = utc("2026-12-10T01:00:00Z");
    let old = json!({"event_id": "r-old", "account_id": "acme", "contact_id": "adm",
        "type": "customer_replied", "occurred_at": "2026-12-02T01:00:00Z", "properties": {}});
    let parsed = vec![parse_event(&old, now)];
    let out = ingest_batch(&j.w.deps, &j.cache, parsed, now).await;
    assert_eq!(out.accepted, 1, "stored all the same");
    assert!(!paused(&j.w).await);
    j.send(
        "2026-12-10T01:00:00Z",
        &[("customer_replied", Some("adm"), json!({}))],
    )
    .await;
    assert!(paused(&j.w).await);
}

async fn paused(w: &World) -> bool {
    use crate::store::ProfileStore;
    w.store
        .account("acme")
        .await
        .expect("read")
        .is_some_and(|a| a.paused)
}
