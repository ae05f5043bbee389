//! The delivery path end to end: DynamoDB Local for state, moto for SES v2 and SNS (what was
//! sent is read back from moto's `/moto-api/data.json`).
//!
//! moto is shared by every test (and every concurrently running test binary), so each test
//! uses addresses and account names derived from its own table name and only counts those.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use nudge_infra::apigw;
use nudge_shared::Deps;
use nudge_shared::channels::ses::SesMailer;
use nudge_shared::channels::sns::SnsNotifier;
use nudge_shared::channels::{Mailer, OutgoingEmail, SendError};
use nudge_shared::delivery::feedback;
use nudge_shared::delivery::{Outcome, deliver};
use nudge_shared::deps::{Keys, LinkKeys};
use nudge_shared::domain::{
    DeliveryLogEntry, LogStatus, Nudge, NudgeKind, NudgeStatus, no_extra_vars,
};
use nudge_shared::ingest::lambda::Ingest;
use nudge_shared::store::{
    DeliveryLogStore, EngagementKind, EngagementStore, MessageRef, NudgeStore, ProfileStore,
    SendStore, SuppressionStore,
};
use nudge_tests::{TestEnv, at, local_keys, mail, sweep};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------- helpers --

fn addr(env: &TestEnv, who: &str) -> String {
    format!("{who}.{}@example.test", env.table)
}

/// The account's name carries the table name, so SNS messages can be attributed to a test.
fn account_name(env: &TestEnv) -> String {
    format!("Acme {}", env.table)
}

async fn seed(env: &TestEnv, account: &str, tier: &str, contacts: &[(&str, &str)]) {
    let t = "2026-11-01T00:00:00Z";
    let mut events = vec![json!({
        "event_id": format!("{account}-acct"), "account_id": account, "type": "account_upserted",
        "occurred_at": t,
        "properties": {"name": account_name(env), "plan": "premium", "industry": "retail",
            "tier": tier, "csm": {"name": "Sato", "email": "sato@vendor.example"},
            "timezone": "Asia/Tokyo", "locale": "en", "contract_start": "2026-10-01",
            "renewal_date": "2027-09-30", "renewals": 0, "arr": 24000}
    })];
    for (id, name) in contacts {
        events.push(json!({
            "event_id": format!("{account}-{id}"), "account_id": account, "contact_id": id,
            "type": "contact_upserted", "occurred_at": t,
            "properties": {"email": addr(env, id), "name": name, "role": "admin"}
        }));
    }
    let body = json!({ "events": events }).to_string();
    let (status, out) = env.post_events(&body, at(t)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"].as_u64(), Some(events.len() as u64), "{out}");
}

async fn post(env: &TestEnv, event: Value, t: DateTime<Utc>) {
    let body = json!({ "events": [event] }).to_string();
    let (status, out) = env.post_events(&body, t).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], 1, "{out}");
}

fn reminder(account: &str, contact: &str, id: &str, t: DateTime<Utc>) -> Nudge {
    Nudge::new(
        format!("dl:{id}:final"),
        account,
        Some(contact.into()),
        NudgeKind::DeadlineReminder,
        t,
        "reminders",
        t,
    )
    .with_stage(nudge_shared::domain::Stage::Final)
    .with_vars(
        json!({"title": "Quarterly report", "time_left": "in 2 hours",
        "due_local": "18:00", "link": "https://app.example/d/1"}),
    )
}

fn nudge(kind: NudgeKind, account: &str, contact: &str, id: &str, t: DateTime<Utc>) -> Nudge {
    Nudge::new(id, account, Some(contact.into()), kind, t, "health", t)
        .with_vars(json!({"link": "https://app.example/x", "score": 41}))
}

async fn put(env: &TestEnv, n: &Nudge) {
    assert!(
        env.store
            .put_nudge(n, env.deps().config.due_shards)
            .await
            .unwrap()
    );
}

/// SNS notifications on the CSM topic that mention this test's account name: (subject, message).
async fn csm_messages(env: &TestEnv) -> Vec<(String, String)> {
    let data = env.stack.moto_data().await.unwrap();
    let name = account_name(env);
    let mut out = Vec::new();
    for topic in data["sns"]["Topic"].as_array().cloned().unwrap_or_default() {
        if topic["arn"].as_str() != Some(env.topic_arn.as_str()) {
            continue;
        }
        for n in topic["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let msg = n[1].as_str().unwrap_or_default().to_string();
            let subject = n[2].as_str().unwrap_or_default().to_string();
            if msg.contains(&name) || subject.contains(&name) {
                out.push((subject, msg));
            }
        }
    }
    out
}

/// The decoded text/html part of a raw MIME message built by `delivery::mime`.
fn html_part(raw: &str) -> String {
    mail::part(raw, "text/html")
}

async fn log(env: &TestEnv, account: &str) -> Vec<DeliveryLogEntry> {
    env.store.delivery_log(account).await.unwrap()
}

async fn status(env: &TestEnv, account: &str, id: &str) -> NudgeStatus {
    env.store.nudge(account, id).await.unwrap().unwrap().status
}

/// A Mailer that fails the first send with a transient error (naming the address, as SES
/// does in some errors), then delegates to the real SES adapter.
struct FailOnce {
    inner: SesMailer,
    failed: AtomicBool,
}

#[async_trait]
impl Mailer for FailOnce {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(SendError::Transient(format!(
                "TooManyRequestsException: Maximum sending rate exceeded for {}",
                email.to
            )));
        }
        self.inner.send_email(email).await
    }
}

fn deps_with_flaky_mailer(env: &TestEnv) -> Deps {
    Deps::new(
        env.deps().config.clone(),
        Arc::new(env.store.clone()),
        Arc::new(FailOnce {
            inner: SesMailer::new(env.stack.ses(), None),
            failed: AtomicBool::new(false),
        }),
        Arc::new(SnsNotifier::new(env.stack.sns())),
        local_keys(),
    )
}

fn fixture_with(name: &str, from: &str, to: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/tests/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text.replace(from, to)).unwrap()
}

async fn feed(env: &TestEnv, event: Value) -> feedback::FeedbackSummary {
    let sns = serde_json::from_value(event).unwrap();
    feedback::handle_sns(env.deps(), &sns).await.unwrap()
}

// ------------------------------------------------------------------------------------ tests --

#[tokio::test]
async fn two_concurrent_runs_send_each_nudge_exactly_once() {
    let env = TestEnv::new("dlv_concurrent").await;
    let t = at("2026-11-20T00:00:00Z");
    let contacts: Vec<(String, String)> = (0..12)
        .map(|i| (format!("u{i}"), format!("User {i}")))
        .collect();
    let refs: Vec<(&str, &str)> = contacts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    seed(&env, "acme", "tech_touch", &refs).await;
    for (id, _) in &contacts {
        put(&env, &reminder("acme", id, id, t)).await;
    }
    let deps = env.deps();
    let (a, b) = tokio::join!(sweep(deps, t, "run-a"), sweep(deps, t, "run-b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 12, "{a:?} {b:?}");
    assert_eq!(a.errors + b.errors, 0);
    // A replayed run afterwards finds nothing.
    let c = sweep(deps, t, "run-c").await.unwrap();
    assert_eq!(c.due, 0, "{c:?}");
    for (id, _) in &contacts {
        assert_eq!(
            env.raw_to(&addr(&env, id)).await.len(),
            1,
            "{id} got exactly one email"
        );
        assert_eq!(
            status(&env, "acme", &format!("dl:{id}:final")).await,
            NudgeStatus::Sent
        );
    }
    let entries = log(&env, "acme").await;
    assert_eq!(entries.len(), 12);
    assert!(entries.iter().all(|e| e.status == LogStatus::Sent
        && e.provider_message_id.is_some()
        && e.function == "reminders"));
}

#[tokio::test]
async fn a_ses_error_on_the_first_try_is_retried_with_backoff_and_sent_once() {
    let env = TestEnv::new("dlv_retry").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    put(&env, &reminder("acme", "u1", "d1", t)).await;
    let deps = deps_with_flaky_mailer(&env);

    let first = sweep(&deps, t, "run-1").await.unwrap();
    assert_eq!(first.retried, 1, "{first:?}");
    let n = env
        .store
        .nudge("acme", "dl:d1:final")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.status, NudgeStatus::Pending);
    assert_eq!(n.attempts, 1);
    assert_eq!(n.send_at, t + Duration::minutes(15));
    assert!(
        !n.reason.unwrap_or_default().contains('@'),
        "stored error is redacted"
    );

    let early = sweep(&deps, t + Duration::minutes(5), "run-2")
        .await
        .unwrap();
    assert_eq!(early.due, 0, "backoff holds: {early:?}");
    let second = sweep(&deps, t + Duration::minutes(15), "run-3")
        .await
        .unwrap();
    assert_eq!(second.sent, 1, "{second:?}");
    let again = sweep(&deps, t + Duration::minutes(30), "run-4")
        .await
        .unwrap();
    assert_eq!(again.due, 0);

    assert_eq!(env.raw_to(&addr(&env, "u1")).await.len(), 1);
    let entries = log(&env, "acme").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, LogStatus::Sent);
    assert_eq!(entries[0].at, t + Duration::minutes(15));
}

#[tokio::test]
async fn a_permanent_bounce_suppresses_email_but_not_csm_alerts() {
    let env = TestEnv::new("dlv_bounce").await;
    seed(&env, "acme", "high_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    let out = feed(
        &env,
        fixture_with("ses-bounce-permanent", "gone@example.jp", &addr(&env, "u1")),
    )
    .await;
    assert_eq!(out.applied, 1);
    assert_eq!(out.suppressed, 1);

    put(&env, &reminder("acme", "u1", "d1", t)).await;
    put(
        &env,
        &nudge(NudgeKind::HealthAlert, "acme", "u1", "ha:1", t),
    )
    .await;
    // One sweep handles both, whoever planned them.
    let r = sweep(env.deps(), t, "run-1").await.unwrap();
    assert_eq!((r.blocked, r.sent), (1, 1), "{r:?}");

    let entries = log(&env, "acme").await;
    let blocked = entries
        .iter()
        .find(|e| e.kind == NudgeKind::DeadlineReminder)
        .unwrap();
    assert_eq!(blocked.status, LogStatus::Blocked);
    assert_eq!(blocked.reason.as_deref(), Some("suppressed_hard_bounce"));
    assert_eq!(blocked.to, addr(&env, "u1"));
    assert!(!blocked.subject.is_empty());
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
    let alerts = csm_messages(&env).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
}

/// `event` with its SES message changed by `edit`.
fn with_message(mut event: Value, edit: impl FnOnce(&mut Value)) -> Value {
    let sns = &mut event["Records"][0]["Sns"];
    let mut message: Value = serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
    edit(&mut message);
    sns["Message"] = Value::String(message.to_string());
    event
}

#[tokio::test]
async fn feedback_from_another_topic_configuration_set_or_account_changes_nothing() {
    let env = TestEnv::new("dlv_forged").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let to = addr(&env, "u1");
    let bounce = fixture_with("ses-bounce-permanent", "gone@example.jp", &to);
    let complaint = fixture_with("ses-complaint", "angry@example.jp", &to);
    let mut other_topic = bounce.clone();
    other_topic["Records"][0]["Sns"]["TopicArn"] =
        json!("arn:aws:sns:ap-northeast-1:123456789012:someone-elses-topic");
    let other_set = with_message(complaint.clone(), |m| {
        m["mail"]["tags"]["ses:configuration-set"] = json!(["marketing"]);
    });
    let other_account = with_message(bounce.clone(), |m| {
        m["mail"]["sendingAccountId"] = json!("210987654321");
    });
    for forged in [other_topic, other_set, other_account] {
        let out = feed(&env, forged).await;
        assert_eq!(
            (out.applied, out.ignored, out.suppressed),
            (0, 1, 0),
            "{out:?}"
        );
    }
    assert_eq!(env.store.suppression(&to).await.unwrap(), None);
    let t = at("2026-11-20T00:00:00Z");
    put(&env, &reminder("acme", "u1", "d1", t)).await;
    let r = sweep(env.deps(), t, "run-1").await.unwrap();
    assert_eq!((r.sent, r.blocked), (1, 0), "{r:?}");

    // The same bounce through our own topic is applied.
    let out = feed(&env, bounce).await;
    assert_eq!(
        (out.applied, out.ignored, out.suppressed),
        (1, 0, 1),
        "{out:?}"
    );
    assert!(env.store.suppression(&to).await.unwrap().is_some());
}

#[tokio::test]
async fn a_complaint_suppresses_everything_customer_facing() {
    let env = TestEnv::new("dlv_complaint").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    feed(
        &env,
        fixture_with("ses-complaint", "angry@example.jp", &addr(&env, "u1")),
    )
    .await;
    // A later hard bounce does not downgrade the complaint.
    feed(
        &env,
        fixture_with("ses-bounce-permanent", "gone@example.jp", &addr(&env, "u1")),
    )
    .await;
    let s = env
        .store
        .suppression(&addr(&env, "u1").to_uppercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.reason,
        Some(nudge_shared::domain::SuppressionReason::Complaint)
    );

    put(&env, &reminder("acme", "u1", "d1", t)).await;
    put(
        &env,
        &nudge(NudgeKind::UpsellOffer, "acme", "u1", "up:1", t),
    )
    .await;
    put(
        &env,
        &nudge(NudgeKind::HealthAlert, "acme", "u1", "ha:1", t),
    )
    .await;
    let h = sweep(env.deps(), t, "r").await.unwrap();
    assert_eq!((h.sent, h.blocked), (1, 2), "{h:?}");
    let entries = log(&env, "acme").await;
    for e in &entries {
        match e.kind {
            NudgeKind::HealthAlert => assert_eq!(e.status, LogStatus::Sent),
            _ => {
                assert_eq!(e.status, LogStatus::Blocked);
                assert_eq!(e.reason.as_deref(), Some("suppressed_complaint"));
            }
        }
    }
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
}

#[tokio::test]
async fn a_reply_pauses_tells_the_csm_and_resume_restarts() {
    let env = TestEnv::new("dlv_pause").await;
    seed(&env, "acme", "low_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    post(
        &env,
        json!({"event_id": "r1", "account_id": "acme", "contact_id": "u1",
               "type": "customer_replied", "occurred_at": "2026-11-20T00:00:00Z"}),
        t,
    )
    .await;
    // The CSM is told at once, from ingest.
    let notices = csm_messages(&env).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].1.contains("Ann"), "{notices:?}");
    let entries = log(&env, "acme").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, NudgeKind::AutomationPaused);
    assert_eq!(entries[0].function, "ingest");
    assert_eq!(entries[0].status, LogStatus::Sent);

    put(&env, &reminder("acme", "u1", "d1", t)).await;
    put(
        &env,
        &nudge(NudgeKind::HealthAlert, "acme", "u1", "ha:1", t),
    )
    .await;
    let r = sweep(env.deps(), t, "r1").await.unwrap();
    assert_eq!(r.blocked, 1, "{r:?}");
    assert_eq!(r.sent, 1, "CSM alerts continue while paused: {r:?}");

    let t2 = t + Duration::hours(2);
    post(
        &env,
        json!({"event_id": "r2", "account_id": "acme", "type": "automation_resumed",
               "occurred_at": "2026-11-20T01:00:00Z"}),
        t2,
    )
    .await;
    put(&env, &reminder("acme", "u1", "d2", t2)).await;
    let r = sweep(env.deps(), t2, "r2").await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let entries = log(&env, "acme").await;
    let d1 = entries
        .iter()
        .find(|e| e.nudge_id == "dl:d1:final")
        .unwrap();
    assert_eq!(d1.reason.as_deref(), Some("account_paused"));
    assert_eq!(env.raw_to(&addr(&env, "u1")).await.len(), 1);
    // A replay of the reply is a duplicate and notifies nobody again.
    let body = json!({"events": [{"event_id": "r1", "account_id": "acme", "contact_id": "u1",
        "type": "customer_replied", "occurred_at": "2026-11-20T00:00:00Z"}]})
    .to_string();
    let (status, out) = env.post_events(&body, t2).await;
    assert_eq!(
        (status, out["duplicates"].as_u64()),
        (200, Some(1)),
        "{out}"
    );
    assert_eq!(
        csm_messages(&env).await.len(),
        2,
        "the pause notice and the alert only"
    );
}

#[tokio::test]
async fn the_frequency_cap_holds_over_a_week_of_simulated_time() {
    // One shard keeps the 14 simulated days of runs quick.
    let env = TestEnv::with_config("dlv_cap", |c| c.due_shards = 1).await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let start = at("2026-11-20T00:00:00Z"); // 09:00 in Tokyo
    let kinds = [
        NudgeKind::UpsellOffer,
        NudgeKind::RiskNudge,
        NudgeKind::Milestone,
    ];
    for day in 0..14 {
        let t = start + Duration::days(day);
        for (i, kind) in kinds.iter().enumerate() {
            // Spread over the day: 09:00, 13:00, 17:00 local.
            let ti = t + Duration::hours(4 * i as i64);
            put(
                &env,
                &nudge(*kind, "acme", "u1", &format!("m:{day}:{i}"), ti),
            )
            .await;
        }
        put(&env, &reminder("acme", "u1", &format!("d{day}"), t)).await;
        for h in [0, 4, 8] {
            sweep(env.deps(), t + Duration::hours(h), "h")
                .await
                .unwrap();
        }
        sweep(env.deps(), t, "r").await.unwrap();
    }
    let entries = log(&env, "acme").await;
    let sent: Vec<&DeliveryLogEntry> = entries
        .iter()
        .filter(|e| e.status == LogStatus::Sent && e.kind != NudgeKind::DeadlineReminder)
        .collect();
    // Never more than 1 a (local) day and 3 in any rolling 7 days.
    let tokyo = chrono_tz::Asia::Tokyo;
    for e in &sent {
        let local_day = e.at.with_timezone(&tokyo).date_naive();
        let same_day = sent
            .iter()
            .filter(|o| o.at.with_timezone(&tokyo).date_naive() == local_day)
            .count();
        assert_eq!(same_day, 1, "one a day on {local_day}");
        let week = sent
            .iter()
            .filter(|o| o.at <= e.at && o.at > e.at - Duration::days(7))
            .count();
        assert!(week <= 3, "{week} in the week before {}", e.at);
    }
    // Days 0, 1, 2, then the week is full until day 7 (day 0 rolls out), then 7, 8, 9.
    assert_eq!(sent.len(), 6, "{sent:#?}");
    // Follow-ups (`fu:`, resends of unopened offers) are marketing too and capped the same way;
    // the accounting below is over the planned nudges (`m:`).
    let capped = entries
        .iter()
        .filter(|e| e.nudge_id.starts_with("m:"))
        .filter(|e| {
            matches!(
                e.reason.as_deref(),
                Some("frequency_cap_daily" | "frequency_cap_weekly")
            )
        })
        .count();
    let mut summary = std::collections::BTreeMap::new();
    for e in &entries {
        *summary
            .entry(format!("{} {:?} {:?}", e.kind, e.status, e.reason))
            .or_insert(0) += 1;
    }
    let sent_planned = sent.iter().filter(|e| e.nudge_id.starts_with("m:")).count();
    assert_eq!(capped + sent_planned, 14 * kinds.len(), "{summary:#?}");
    // Deadline reminders are transactional: all 14 went out.
    let reminders = entries
        .iter()
        .filter(|e| e.kind == NudgeKind::DeadlineReminder && e.status == LogStatus::Sent)
        .count();
    assert_eq!(reminders, 14);
}

#[tokio::test]
async fn an_unsubscribe_link_keeps_working_after_the_link_key_is_rotated() {
    let env = TestEnv::new("dlv_unsub_rotated").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    put(&env, &nudge(NudgeKind::RiskNudge, "acme", "u1", "rk:1", t)).await;
    sweep(env.deps(), t, "h").await.unwrap();
    let raws = env.raw_to(&addr(&env, "u1")).await;
    let lu = mail::header(&raws[0], "List-Unsubscribe").expect("List-Unsubscribe header");
    let old = lu
        .trim_start_matches('<')
        .trim_end_matches('>')
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    assert!(old.starts_with("local1."), "{old}");

    // k2 becomes current; local1 stays in the set.
    let local1 = serde_json::from_str::<Value>(nudge_tests::LOCAL_LINK_KEYS).unwrap()["local1"]
        .as_str()
        .unwrap()
        .to_string();
    let links = LinkKeys::parse(
        &json!({"current": "k2", "local1": local1, "k2": "k2-0123456789abcdef0123456789abcdef"})
            .to_string(),
    )
    .unwrap();
    let d = env.deps();
    let rotated = Deps::new(
        d.config.clone(),
        d.store.clone(),
        d.mailer.clone(),
        d.notifier.clone(),
        Keys {
            links,
            ..local_keys()
        },
    );
    // New emails carry k2.
    put(&env, &reminder("acme", "u1", "d1", t)).await;
    sweep(&rotated, t, "h2").await.unwrap();
    let raws = env.raw_to(&addr(&env, "u1")).await;
    assert_eq!(raws.len(), 2);
    let lu = mail::header(&raws[1], "List-Unsubscribe").expect("List-Unsubscribe header");
    assert!(lu.contains("token=k2."), "{lu}");

    // The old email's one-click unsubscribe still works.
    let app = Ingest::new(rotated);
    let post = apigw::http_event(
        "POST",
        "/unsubscribe",
        &format!("token={old}"),
        &[("content-type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click",
        t,
    );
    let resp = app.http(apigw::to_request(&post).unwrap()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let contact = env.store.contact("acme", "u1").await.unwrap().unwrap();
    assert_eq!(
        contact.unsubscribed.into_iter().collect::<Vec<_>>(),
        vec!["success"]
    );
}

#[tokio::test]
async fn unsubscribe_links_work_and_a_tampered_token_changes_nothing() {
    let env = TestEnv::new("dlv_unsub").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    put(&env, &nudge(NudgeKind::RiskNudge, "acme", "u1", "rk:1", t)).await;
    sweep(env.deps(), t, "h").await.unwrap();
    let raws = env.raw_to(&addr(&env, "u1")).await;
    assert_eq!(raws.len(), 1);
    let raw = &raws[0];
    assert_eq!(
        mail::header(raw, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    let lu = mail::header(raw, "List-Unsubscribe").expect("List-Unsubscribe header");
    let url = lu.trim_start_matches('<').trim_end_matches('>');
    assert!(url.starts_with("https://nudge.example.test/unsubscribe?token="));
    let token = url.split("token=").nth(1).unwrap().to_string();
    assert!(
        html_part(raw).contains(&token),
        "the footer carries the link"
    );

    let call = |method: &str, query: String, body: &str| {
        apigw::http_event(
            method,
            "/unsubscribe",
            &query,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
            t,
        )
    };
    let unsubscribed = |env: &TestEnv| {
        let store = env.store.clone();
        async move {
            store
                .contact("acme", "u1")
                .await
                .unwrap()
                .unwrap()
                .unsubscribed
        }
    };

    // Tampered: another contact id under the same signature; an unknown key id; no key id
    // (the format before link keys).
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let (kid, payload) = signed.split_once('.').unwrap();
    assert_eq!(kid, "local1");
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"["acme","u1","all"]"#);
    for bad in [
        format!("{kid}.{forged_payload}.{sig}"),
        format!("{signed}.{}", "0".repeat(sig.len())),
        format!("{kid}.{payload}x.{sig}"),
        format!("k9.{payload}.{sig}"),
        format!("{payload}.{sig}"),
        "garbage".to_string(),
    ] {
        let (status, _) = env
            .call(&call(
                "POST",
                format!("token={bad}"),
                "List-Unsubscribe=One-Click",
            ))
            .await;
        assert_eq!(status, 400);
    }
    assert!(unsubscribed(&env).await.is_empty(), "nothing changed");

    // GET shows a confirmation page and does not unsubscribe (mail scanners prefetch).
    let (status, page) = env.call(&call("GET", format!("token={token}"), "")).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("<form method=\"post\""));
    assert!(unsubscribed(&env).await.is_empty());

    // One-click POST unsubscribes from the category of that email only.
    let (status, _) = env
        .call(&call(
            "POST",
            format!("token={token}"),
            "List-Unsubscribe=One-Click",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        unsubscribed(&env).await.into_iter().collect::<Vec<_>>(),
        vec!["success"]
    );
    // The next success-category email is blocked; reminders still go out. (Monday 09:00 in
    // Tokyo: the offer's send window is open.)
    let t2 = t + Duration::days(3);
    put(
        &env,
        &nudge(NudgeKind::UpsellOffer, "acme", "u1", "up:1", t2),
    )
    .await;
    put(&env, &reminder("acme", "u1", "d1", t2)).await;
    sweep(env.deps(), t2, "h2").await.unwrap();
    sweep(env.deps(), t2, "r2").await.unwrap();
    let entries = log(&env, "acme").await;
    let up = entries.iter().find(|e| e.nudge_id == "up:1").unwrap();
    assert_eq!(up.reason.as_deref(), Some("unsubscribed"));
    let dl = entries
        .iter()
        .find(|e| e.nudge_id == "dl:d1:final")
        .unwrap();
    assert_eq!(dl.status, LogStatus::Sent);
}

#[tokio::test]
async fn html_in_a_customer_name_is_escaped_in_the_email_body() {
    let env = TestEnv::new("dlv_escape").await;
    seed(
        &env,
        "acme",
        "tech_touch",
        &[("u1", "<script>alert('x')</script> & <b>Bob</b>")],
    )
    .await;
    let t = at("2026-11-20T00:00:00Z");
    put(&env, &reminder("acme", "u1", "d1", t)).await;
    sweep(env.deps(), t, "r").await.unwrap();
    let raws = env.raw_to(&addr(&env, "u1")).await;
    assert_eq!(raws.len(), 1);
    let html = html_part(&raws[0]);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>Bob</b>"), "{html}");
    // `/` is escaped too (`&#x2f;`): compare with it read back as `/`.
    assert!(
        html.replace("&#x2f;", "/").contains(
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;Bob&lt;/b&gt;"
        ),
        "{html}"
    );
}

#[tokio::test]
async fn feedback_records_engagement_once_and_follow_ups_respect_it() {
    // Engagement and follow-ups, not send windows: the window is always open here (the
    // 5 days below cross a weekend).
    let env = TestEnv::with_config("dlv_engage", |c| {
        c.business_hours = "mon-sun 0-24".parse().expect("window")
    })
    .await;
    seed(&env, "tech", "tech_touch", &[("u1", "Ann")]).await;
    seed(&env, "high", "high_touch", &[("u2", "Ben")]).await;
    let t = at("2026-11-20T00:00:00Z");
    put(
        &env,
        &nudge(NudgeKind::UpsellOffer, "tech", "u1", "up:t", t),
    )
    .await;
    put(
        &env,
        &nudge(NudgeKind::UpsellOffer, "high", "u2", "up:h", t),
    )
    .await;
    put(
        &env,
        &nudge(
            NudgeKind::RiskNudge,
            "tech",
            "u1",
            "rk:t",
            t + Duration::days(1),
        ),
    )
    .await;
    sweep(env.deps(), t, "h").await.unwrap();
    let sent = env.store.nudge("tech", "up:t").await.unwrap().unwrap();
    let mid = sent.provider_message_id.clone().unwrap();

    // Delivery, open, open again, click for the tech-touch upsell.
    let base_mid = "010001877a7b5f5e-1a2b3c4d-0000-0000-0000-000000000000-000000";
    for name in ["ses-delivery", "ses-open", "ses-open", "ses-click"] {
        feed(&env, fixture_with(name, base_mid, &mid)).await;
    }
    let n = env.store.nudge("tech", "up:t").await.unwrap().unwrap();
    assert!(n.engagement.delivered_at.is_some());
    assert_eq!(n.engagement.opened_at, Some(at("2026-11-20T02:00:00Z")));
    assert!(n.engagement.clicked_at.is_some());
    let stats = env.store.kind_stats().await.unwrap();
    let up = stats
        .iter()
        .find(|s| s.kind == "upsell_offer" && s.variant == "a")
        .unwrap();
    assert_eq!((up.sent, up.delivered, up.opened, up.clicked), (2, 1, 1, 1));

    // Day 1: the risk nudge goes out (a different day: the cap allows it).
    let r = sweep(env.deps(), t + Duration::days(1), "h1")
        .await
        .unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    // Day 4: the unopened tech-touch risk nudge gets one resend, as variant b.
    let r = sweep(env.deps(), t + Duration::days(4) + Duration::hours(1), "h2")
        .await
        .unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let fu = env.store.nudge("tech", "fu:rk:t").await.unwrap().unwrap();
    assert_eq!((fu.kind, fu.variant.as_str()), (NudgeKind::RiskNudge, "b"));
    assert_eq!(fu.status, NudgeStatus::Sent);
    assert!(
        env.store
            .nudge("tech", "fu:fu:rk:t")
            .await
            .unwrap()
            .is_none(),
        "a follow-up has no follow-up"
    );
    // Day 5: the opened offer's follow-up cancels itself; the high-touch account's unopened
    // offer becomes a CSM task ("call them").
    let r = sweep(env.deps(), t + Duration::days(5), "h3")
        .await
        .unwrap();
    assert_eq!((r.cancelled, r.sent), (1, 1), "{r:?}");
    assert_eq!(
        status(&env, "tech", "fu:up:t").await,
        NudgeStatus::Cancelled
    );
    assert_eq!(status(&env, "high", "fu:up:h").await, NudgeStatus::Sent);
    let tasks = csm_messages(&env).await;
    assert!(
        tasks
            .iter()
            .any(|(s, m)| s.starts_with("Task:") && m.contains("upsell_offer")),
        "{tasks:?}"
    );
    let cancelled = log(&env, "tech").await;
    assert!(
        cancelled
            .iter()
            .any(|e| e.nudge_id == "fu:up:t" && e.reason.as_deref() == Some("opened"))
    );
}

/// A run claims a nudge and dies. Once its lease has expired, the run that finds it sends it
/// if no SES event shows that it left, and marks it sent without sending if one does: one
/// message in SES either way, one log entry.
#[tokio::test]
async fn an_expired_lease_is_sent_once_or_confirmed_by_its_ses_event() {
    for left in [false, true] {
        let env = TestEnv::new(if left { "dlv_lease_left" } else { "dlv_lease" }).await;
        seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
        let t = at("2026-11-20T00:00:00Z");
        put(&env, &reminder("acme", "u1", "d1", t)).await;
        let claimed = env
            .store
            .claim(
                "acme",
                "dl:d1:final",
                "crashed-run",
                t,
                Duration::minutes(15),
            )
            .await
            .unwrap();
        assert!(claimed.is_some());
        if left {
            // SES took the message before the run died: its `Send` event came back.
            let r = MessageRef {
                account_id: "acme".into(),
                nudge_id: "dl:d1:final".into(),
                kind: "deadline_reminder".into(),
                variant: "a".into(),
            };
            env.store
                .record_engagement(&r, EngagementKind::Accepted, t)
                .await
                .unwrap();
        }
        let during = sweep(env.deps(), t + Duration::minutes(5), "r1")
            .await
            .unwrap();
        assert_eq!((during.sent, during.skipped), (0, 1));
        let after = sweep(env.deps(), t + Duration::minutes(30), "r2")
            .await
            .unwrap();
        assert_eq!(after.sent, 1, "{after:?}");
        let n = env
            .store
            .nudge("acme", "dl:d1:final")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n.status, NudgeStatus::Sent);
        let entries = log(&env, "acme").await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].status, LogStatus::Sent);
        // A `sent` line carries no reason (the delivery-log contract), confirmed or not.
        assert_eq!(entries[0].reason, None);
        let in_ses = env.raw_to(&addr(&env, "u1")).await.len();
        assert_eq!(in_ses, usize::from(!left), "left={left}");
    }
}

#[tokio::test]
async fn delivering_a_finished_nudge_again_is_a_no_op() {
    let env = TestEnv::new("dlv_replay").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T00:00:00Z");
    let n = reminder("acme", "u1", "d1", t);
    put(&env, &n).await;
    // The stale in-memory copy (status pending) is delivered twice, as a Lambda retry would.
    let a = deliver(env.deps(), no_extra_vars, &n, t, "a")
        .await
        .unwrap();
    let b = deliver(env.deps(), no_extra_vars, &n, t, "b")
        .await
        .unwrap();
    assert!(matches!(a, Outcome::Sent { .. }), "{a:?}");
    assert_eq!(b, Outcome::Skipped);
    assert!(
        !env.store.put_nudge(&n, 4).await.unwrap(),
        "re-planning is a no-op"
    );
    assert_eq!(env.raw_to(&addr(&env, "u1")).await.len(), 1);
}

// ------------------------------------------------------------------------- logs stay clean --

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn no_email_address_or_body_appears_in_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,nudge_shared=debug",
        ))
        .with_current_span(true)
        .with_writer(captured.clone())
        .finish();
    // Global, not scoped: a scoped subscriber loses events whose callsites were first hit by
    // parallel tests on threads without one (tracing caches their interest as `never`). The
    // other tests' logs land here too; the secrets checked below are this test's own.
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only test in this binary that installs a subscriber");

    let env = TestEnv::new("dlv_logs").await;
    seed(
        &env,
        "acme",
        "high_touch",
        &[("u1", "Ann Secret-Name"), ("u2", "Ben")],
    )
    .await;
    let t = at("2026-11-20T00:00:00Z");
    let deps = deps_with_flaky_mailer(&env);
    put(&env, &reminder("acme", "u1", "d1", t)).await;
    put(
        &env,
        &nudge(NudgeKind::UpsellOffer, "acme", "u2", "up:1", t),
    )
    .await;
    put(
        &env,
        &nudge(NudgeKind::HealthAlert, "acme", "u1", "ha:1", t),
    )
    .await;
    env.store.unsubscribe("acme", "u2", "all").await.unwrap();
    sweep(&deps, t, "r1").await.unwrap(); // transient failure
    sweep(&deps, t, "h1").await.unwrap(); // a block and a CSM alert
    sweep(&deps, t + Duration::minutes(15), "r2").await.unwrap(); // sent
    feed(
        &env,
        fixture_with("ses-bounce-permanent", "gone@example.jp", &addr(&env, "u1")),
    )
    .await;
    assert_eq!(env.raw_to(&addr(&env, "u1")).await.len(), 1);

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("nudge sent"), "logging was captured: {out}");
    assert!(out.contains("nudge blocked"));
    assert!(out.contains("\"nudge_id\":\"dl:d1:final\""));
    for secret in [
        addr(&env, "u1"),
        addr(&env, "u2"),
        "@example.test".to_string(),
        "Secret-Name".to_string(),
        "Quarterly report".to_string(),
        "Open it here".to_string(),
        "unsubscribe?token".to_string(),
    ] {
        assert!(!out.contains(&secret), "logs contain {secret:?}:\n{out}");
    }
}

// ----------------------------------------------------------------------------------- bench --

#[tokio::test]
async fn bench_delivery_reports_request_units_per_nudge() {
    let env = TestEnv::new("dlv_bench").await;
    let meter = env.store.meter();
    let figures = nudge_infra::bench_delivery::bench_delivery(
        env.deps(),
        &meter,
        5,
        "bench",
        at("2026-11-20T00:00:00Z"),
    )
    .await
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
    assert!(figures.outcomes_ok);
    assert!(figures.sent_transactional.write_units > 0.0);
    assert!(figures.blocked.write_units < figures.sent_transactional.write_units);
}

#[tokio::test]
async fn a_3am_plan_waits_for_local_business_hours_while_csm_alerts_go_at_once() {
    let env = TestEnv::new("dlv_window").await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann"), ("u2", "Bob")]).await;
    // Bob works from New York; Ann (and the account) from Tokyo.
    post(
        &env,
        json!({"event_id": "u2-ny", "account_id": "acme", "contact_id": "u2",
               "type": "contact_upserted", "occurred_at": "2026-11-02T00:00:00Z",
               "properties": {"email": addr(&env, "u2"), "name": "Bob", "role": "user",
                              "timezone": "America/New_York"}}),
        at("2026-11-02T00:00:00Z"),
    )
    .await;
    // Wednesday 03:00 in Tokyo = Tuesday 13:00 in New York: a daily job's plans.
    let t = at("2026-11-17T18:00:00Z");
    put(
        &env,
        &nudge(NudgeKind::RiskNudge, "acme", "u1", "rk:ann", t),
    )
    .await;
    put(
        &env,
        &nudge(NudgeKind::RiskNudge, "acme", "u2", "rk:bob", t),
    )
    .await;
    put(
        &env,
        &nudge(NudgeKind::HealthAlert, "acme", "u1", "ha:1", t),
    )
    .await;

    let r = sweep(env.deps(), t, "s1").await.unwrap();
    assert_eq!((r.sent, r.deferred), (2, 1), "{r:?}");
    let ann = env.store.nudge("acme", "rk:ann").await.unwrap().unwrap();
    assert_eq!(ann.status, NudgeStatus::Pending);
    assert_eq!(ann.send_at, at("2026-11-18T09:00:00+09:00"));
    assert_eq!(ann.attempts, 0, "a deferral is not a send attempt");
    assert!(env.raw_to(&addr(&env, "u1")).await.is_empty());
    assert_eq!(env.raw_to(&addr(&env, "u2")).await.len(), 1);

    // Nothing until 09:00 Tokyo; then it leaves, through the same owner-agnostic sweep.
    let r = sweep(env.deps(), at("2026-11-17T23:45:00Z"), "s2")
        .await
        .unwrap();
    assert_eq!(r.sent, 0, "{r:?}");
    let r = sweep(env.deps(), at("2026-11-18T00:00:00Z"), "s3")
        .await
        .unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(env.raw_to(&addr(&env, "u1")).await.len(), 1);
    let entries = log(&env, "acme").await;
    let ann = entries.iter().find(|e| e.nudge_id == "rk:ann").unwrap();
    assert_eq!(ann.at, at("2026-11-18T00:00:00Z"));
    assert_eq!(
        ann.function, "health",
        "planned by health, sent by the sweep"
    );
    let alert = entries.iter().find(|e| e.nudge_id == "ha:1").unwrap();
    assert_eq!((alert.at, alert.status), (t, LogStatus::Sent));
}

// --------------------------------------------------------------------------- retention --

/// The `ttl` attribute of one stored item, if any.
async fn stored_ttl(env: &TestEnv, pk: &str, sk: &str) -> Option<i64> {
    let item = env
        .store
        .client()
        .get_item()
        .table_name(&env.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the item exists");
    item.get("ttl")
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().expect("ttl is epoch seconds"))
}

#[tokio::test]
async fn finished_nudges_their_log_lines_and_message_mappings_expire_after_the_retention() {
    let env = TestEnv::with_config("delivery_retention", |c| c.delivery_retention_days = 30).await;
    seed(&env, "acme", "tech_touch", &[("u1", "Ann")]).await;
    let t = at("2026-11-20T01:00:00Z");
    put(&env, &reminder("acme", "u1", "sent", t)).await;
    put(&env, &reminder("acme", "ghost", "blocked", t)).await;
    put(
        &env,
        &reminder("acme", "u1", "later", t + Duration::days(2)),
    )
    .await;
    let report = sweep(env.deps(), t, "run-1").await.unwrap();
    assert_eq!((report.sent, report.blocked), (1, 1), "{report:?}");

    let expires = (t + Duration::days(30)).timestamp();
    let pk = "ACCT#acme";
    for id in ["dl:sent:final", "dl:blocked:final"] {
        let sk = format!("NUDGE#{id}");
        assert_eq!(stored_ttl(&env, pk, &sk).await, Some(expires), "{id}");
    }
    // Pending: kept however long it waits, until it is final.
    assert_eq!(stored_ttl(&env, pk, "NUDGE#dl:later:final").await, None);
    let lines = log(&env, "acme").await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let sk = nudge_shared::store::schema::log_sk(line.at, &line.nudge_id);
        assert_eq!(stored_ttl(&env, pk, &sk).await, Some(expires), "{sk}");
    }
    let sent = env
        .store
        .nudge("acme", "dl:sent:final")
        .await
        .unwrap()
        .unwrap();
    let pmid = sent.provider_message_id.expect("sent through moto");
    assert_eq!(
        stored_ttl(&env, &format!("MSG#{pmid}"), "MSG").await,
        Some(expires)
    );

    // Cancelled is final too.
    let cancel_at = t + Duration::hours(1);
    let ids = ["dl:later:final".to_string()];
    assert_eq!(
        env.store
            .cancel_pending("acme", &ids, "cancelled", cancel_at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stored_ttl(&env, pk, "NUDGE#dl:later:final").await,
        Some((cancel_at + Duration::days(30)).timestamp())
    );
}
