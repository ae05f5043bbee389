//! The delivery sweep: exactly-once sends under concurrency, the policy order, send windows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Asia::Tokyo;

use super::{CSM_TOPIC, World, email, utc};
use crate::delivery::sweep::RunReport;
use crate::domain::{Channel, LogStatus, NudgeKind, NudgeStatus};
use crate::store::{
    AccountChange, AddressFeedback, CapState, CapStore, EngagementKind, EngagementStore,
    MessageRef, NudgeStore, ProfileStore, SendStore, SuppressionStore,
};

#[tokio::test]
async fn two_concurrent_sweeps_send_each_due_nudge_exactly_once() {
    let w = World::new();
    // Friday 10:00 in Tokyo.
    let now = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, now - Duration::days(2)).await;
    let ids: Vec<String> = (0..12).map(|i| format!("n{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let contact = format!("u{i}");
        w.contact("acme", &contact, Tokyo, now - Duration::days(2))
            .await;
        // Deadline reminders: no send window and no frequency cap in the way.
        let kind = NudgeKind::DeadlineReminder;
        let send_at = now - Duration::minutes(5);
        w.plan("acme", id, Some(&contact), kind, send_at).await;
    }

    // Every store call and provider call is a suspension point, so the two runs interleave
    // call by call: both read the same due nudges, then race to claim each one.
    let (a, b) = tokio::join!(w.sweep(now, "run-a"), w.sweep(now, "run-b"));

    assert_eq!((a.due, b.due), (12, 12), "both runs saw every nudge due");
    assert_eq!(a.sent + b.sent, 12, "{a:?} {b:?}");
    assert_eq!(a.skipped + b.skipped, 12, "the loser of each claim skips");
    assert_eq!(a.errors + b.errors, 0);
    let mut to: Vec<String> = w.outbox.sent().into_iter().map(|s| s.to).collect();
    to.sort();
    let mut want: Vec<String> = (0..12).map(|i| email("acme", &format!("u{i}"))).collect();
    want.sort();
    assert_eq!(to, want, "one email per nudge");
    for id in &ids {
        assert_eq!(w.nudge("acme", id).await.status, NudgeStatus::Sent);
    }
    let log = w.log().await;
    assert_eq!(log.len(), 12);
    assert!(log.iter().all(|e| e.status == LogStatus::Sent));
    // A third run finds nothing left to do.
    let c = w.sweep(now + Duration::minutes(15), "run-c").await;
    assert_eq!((c.due, c.sent), (0, 0));
}

#[tokio::test]
async fn policy_blocks_in_order_unsubscribed_suppressed_paused_then_cap() {
    let w = World::new();
    // Friday 10:00 in Tokyo: inside business hours, so policy decides.
    let now = utc("2026-11-20T01:00:00Z");
    let before = now - Duration::days(2);
    let reserve_earlier = |account: &'static str, contact: &'static str| {
        let store = w.store.clone();
        async move {
            let earlier = now - Duration::hours(1);
            let reserved = store
                .reserve_cap(account, contact, "earlier", earlier, &CapState::default())
                .await;
            assert!(reserved.expect("reserve"));
        }
    };
    // `acme` is paused; each contact also meets every rule below the one it should hit.
    w.account("acme", Tokyo, before).await;
    w.store
        .change_account(
            "acme",
            &AccountChange::Paused {
                until: None,
                reason: None,
            },
            before,
        )
        .await
        .expect("pause");
    for c in ["unsub", "supp", "paused"] {
        w.contact("acme", c, Tokyo, before).await;
        reserve_earlier("acme", c).await;
    }
    w.store
        .unsubscribe("acme", "unsub", "success")
        .await
        .expect("unsubscribe");
    for c in ["unsub", "supp"] {
        w.store
            .record_address_feedback(&email("acme", c), AddressFeedback::HardBounce, before)
            .await
            .expect("bounce");
    }
    // `beta` is not paused: one contact over the daily cap, one free.
    w.account("beta", Tokyo, before).await;
    for c in ["capped", "free"] {
        w.contact("beta", c, Tokyo, before).await;
    }
    reserve_earlier("beta", "capped").await;
    let cases = [
        ("acme", "unsub"),
        ("acme", "supp"),
        ("acme", "paused"),
        ("beta", "capped"),
        ("beta", "free"),
    ];
    for (account, contact) in cases {
        let send_at = now - Duration::minutes(5);
        w.plan(
            account,
            contact,
            Some(contact),
            NudgeKind::UpsellOffer,
            send_at,
        )
        .await;
    }

    let report = w.sweep(now, "run").await;

    assert_eq!((report.blocked, report.sent), (4, 1), "{report:?}");
    let reasons: BTreeMap<(String, String), Option<String>> = w
        .log()
        .await
        .into_iter()
        .map(|e| ((e.account_id, e.nudge_id), e.reason))
        .collect();
    let want = [
        ("acme", "unsub", Some("unsubscribed")),
        ("acme", "supp", Some("suppressed_hard_bounce")),
        ("acme", "paused", Some("account_paused")),
        ("beta", "capped", Some("frequency_cap_daily")),
        ("beta", "free", None),
    ];
    let want: BTreeMap<(String, String), Option<String>> = want
        .into_iter()
        .map(|(a, n, r)| ((a.into(), n.into()), r.map(String::from)))
        .collect();
    assert_eq!(reasons, want);
    for (account, id) in &cases[..4] {
        let n = w.nudge(account, id).await;
        assert_eq!(n.status, NudgeStatus::Blocked);
    }
    let sent = w.outbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, email("beta", "free"));
}

#[tokio::test]
async fn a_risk_nudge_due_at_3am_in_tokyo_waits_for_9am_while_a_health_alert_goes_at_once() {
    let w = World::new();
    // Friday 03:00 in Tokyo.
    let night = utc("2026-11-19T18:00:00Z");
    let nine = utc("2026-11-20T00:00:00Z");
    w.account("acme", Tokyo, night - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, night - Duration::days(2))
        .await;
    w.plan("acme", "risk", Some("u1"), NudgeKind::RiskNudge, night)
        .await;
    w.plan("acme", "alert", None, NudgeKind::HealthAlert, night)
        .await;

    let first = w.sweep(night, "run-0300").await;

    assert_eq!((first.sent, first.deferred), (1, 1), "{first:?}");
    let sent = w.outbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].channel, Channel::Sns, "the alert went to the CSM");
    let alert = w.log().await.into_iter().find(|e| e.nudge_id == "alert");
    assert_eq!(alert.map(|e| e.to), Some(CSM_TOPIC.to_string()));
    let risk = w.nudge("acme", "risk").await;
    assert_eq!((risk.status, risk.send_at), (NudgeStatus::Pending, nine));

    // The 15-minute cadence through the night sends nothing more.
    let mut now = night + Duration::minutes(15);
    while now < nine {
        let r = w.sweep(now, &format!("run-{now}")).await;
        assert_eq!(r.sent, 0, "nothing leaves at {now}");
        now += Duration::minutes(15);
    }
    let morning = w.sweep(nine, "run-0900").await;

    assert_eq!(morning.sent, 1, "{morning:?}");
    let sent = w.outbox.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to, email("acme", "u1"));
    let entry = w
        .log()
        .await
        .into_iter()
        .find(|e| e.nudge_id == "risk")
        .expect("logged");
    assert_eq!((entry.status, entry.at), (LogStatus::Sent, nine));
    assert_eq!(w.nudge("acme", "risk").await.status, NudgeStatus::Sent);
    // Nothing else is pending but the risk nudge's own follow-up, days later.
    let pending: Vec<_> = w
        .store
        .nudges("acme")
        .await
        .expect("nudges")
        .into_iter()
        .filter(|n| n.status == NudgeStatus::Pending)
        .collect();
    assert!(
        pending
            .iter()
            .all(|n| n.follow_up_of.as_deref() == Some("risk")),
        "{pending:?}"
    );
}

#[tokio::test]
async fn an_address_suppressed_meanwhile_blocks_a_pending_nudge_at_send_time() {
    let w = World::new();
    let now = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, now - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, now - Duration::days(2))
        .await;
    let kind = NudgeKind::DeadlineReminder;
    w.plan("acme", "n1", Some("u1"), kind, now).await;
    let complaint = AddressFeedback::Complaint;
    let addr = email("acme", "u1").to_uppercase();
    w.store
        .record_address_feedback(&addr, complaint, now - Duration::hours(1))
        .await
        .expect("complaint");

    let report = w.sweep(now, "run").await;

    assert_eq!(report.blocked, 1);
    assert!(w.outbox.sent().is_empty());
    let n = w.nudge("acme", "n1").await;
    assert_eq!(n.reason.as_deref(), Some("suppressed_complaint"));
}

#[tokio::test]
async fn a_health_email_without_a_link_points_to_the_configured_app_or_to_nothing() {
    // Friday 10:00 in Tokyo: inside business hours.
    let now = utc("2026-11-20T01:00:00Z");
    for app_url in [Some("https://app.acme.example"), None] {
        let mut w = World::new();
        w.deps.config.app_url = app_url.map(str::to_string);
        w.account("acme", Tokyo, now - Duration::days(2)).await;
        w.contact("acme", "u1", Tokyo, now - Duration::days(2))
            .await;
        w.plan("acme", "risk", Some("u1"), NudgeKind::RiskNudge, now)
            .await;

        let report = w.sweep(now, "run").await;

        assert_eq!(report.sent, 1, "{report:?}");
        let text = w.outbox.sent()[0].text.clone();
        match app_url {
            Some(url) => assert!(
                text.contains(&format!("Try it when it suits you: {url}\n")),
                "{text}"
            ),
            None => {
                assert!(text.contains("Try it whenever it suits you.\n"), "{text}");
                assert_eq!(
                    text.matches("https://").count(),
                    1,
                    "unsubscribe only: {text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn mail_for_the_admin_of_an_account_that_never_named_one_goes_to_its_admin_contact() {
    use crate::events::ContactProfile;
    use crate::store::ProfileStore;
    let w = World::new();
    let at = utc("2026-11-20T01:00:00Z"); // 10:00 on a Friday in Tokyo
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    let admin = ContactProfile {
        email: email("acme", "boss"),
        phone: None,
        name: "Boss".into(),
        role: crate::domain::Role::Admin,
        timezone: None,
        locale: None,
    };
    w.store
        .upsert_contact("acme", "boss", &admin, at - Duration::days(2))
        .await
        .expect("contact");
    // Planned for "the admin" (no contact id); no `admin_changed` ever named one.
    w.plan("acme", "risk", None, NudgeKind::RiskNudge, at).await;
    let r = w.sweep(at, "run").await;
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(w.outbox.sent()[0].to, email("acme", "boss"));
    let logged = w.log().await.into_iter().find(|e| e.nudge_id == "risk");
    assert_eq!(logged.and_then(|e| e.contact_id), Some("boss".to_string()));
}

/// A provider that answers every send with the same error.
struct Failing(crate::channels::SendError);

#[async_trait::async_trait]
impl crate::channels::Mailer for Failing {
    async fn send_email(
        &self,
        _: &crate::channels::OutgoingEmail,
    ) -> Result<String, crate::channels::SendError> {
        Err(self.0.clone())
    }
}

#[tokio::test]
async fn a_send_that_may_have_left_is_unknown_outcome_and_never_resent_while_throttling_is_retried()
{
    use crate::channels::SendError;
    for (error, status, reason) in [
        (
            SendError::Unknown("InternalFailure: 500".into()),
            NudgeStatus::Failed,
            Some("unknown_outcome"),
        ),
        (
            SendError::Transient("TooManyRequestsException".into()),
            NudgeStatus::Pending,
            None,
        ),
    ] {
        let w = World::new();
        let deps = crate::Deps::new(
            w.deps.config.clone(),
            w.store.clone(),
            std::sync::Arc::new(Failing(error.clone())),
            w.outbox.clone(),
            super::test_keys(),
        );
        let at = utc("2026-11-20T01:00:00Z");
        w.account("acme", Tokyo, at - Duration::days(2)).await;
        w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
        w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
            .await;
        crate::delivery::sweep(&deps, crate::registry::render_vars, at, "run-1")
            .await
            .expect("sweep");
        let n = w.nudge("acme", "n").await;
        assert_eq!(n.status, status, "{error:?}");
        let logged: Vec<_> = w
            .log()
            .await
            .into_iter()
            .map(|e| (e.status, e.reason))
            .collect();
        match reason {
            Some(r) => assert_eq!(logged, [(LogStatus::Failed, Some(r.to_string()))]),
            None => assert!(logged.is_empty(), "a retry is not logged as final"),
        }
        // The next runs never send a maybe-sent nudge again.
        let later = at + Duration::hours(1);
        crate::delivery::sweep(&deps, crate::registry::render_vars, later, "run-2")
            .await
            .expect("sweep");
        if status == NudgeStatus::Failed {
            assert_eq!(w.nudge("acme", "n").await.attempts, 1);
        }
    }
}

#[tokio::test]
async fn without_a_link_key_a_customer_email_fails_instead_of_leaving_without_its_unsubscribe_link()
{
    let w = World::new();
    let deps = crate::Deps::new(
        w.deps.config.clone(),
        w.store.clone(),
        w.outbox.clone(),
        w.outbox.clone(),
        crate::deps::Keys::default(),
    );
    let at = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
        .await;
    crate::delivery::sweep(&deps, crate::registry::render_vars, at, "run-1")
        .await
        .expect("sweep");
    assert!(w.outbox.sent().is_empty());
    assert_eq!(w.nudge("acme", "n").await.status, NudgeStatus::Failed);
    let logged: Vec<_> = w.log().await.into_iter().map(|e| e.reason).collect();
    assert_eq!(logged, [Some("template_error".to_string())]);
}

#[tokio::test]
async fn a_throttled_send_costs_no_attempt_and_stops_the_run_and_the_next_run_sends_everything() {
    use crate::channels::SendError;
    let w = World::new();
    let throttled = crate::Deps::new(
        w.deps.config.clone(),
        w.store.clone(),
        std::sync::Arc::new(Failing(SendError::Throttled(
            "TooManyRequestsException: Maximum sending rate exceeded".into(),
        ))),
        w.outbox.clone(),
        super::test_keys(),
    );
    let at = utc("2026-11-20T01:00:00Z");
    let accounts: Vec<String> = (0..20).map(|i| format!("a{i:02}")).collect();
    for account in &accounts {
        w.account(account, Tokyo, at - Duration::days(2)).await;
        w.contact(account, "u1", Tokyo, at - Duration::days(2))
            .await;
        w.plan(account, "n", Some("u1"), NudgeKind::DeadlineReminder, at)
            .await;
    }
    let r = crate::delivery::sweep(&throttled, crate::registry::render_vars, at, "run-1")
        .await
        .expect("sweep");
    // The sends in flight met the throttle; the run started nothing after it.
    assert_eq!(r.sent, 0, "{r:?}");
    assert!(r.throttled >= 1 && r.unstarted >= 1, "{r:?}");
    assert_eq!(r.throttled + r.unstarted, 20, "{r:?}");
    for account in &accounts {
        let n = w.nudge(account, "n").await;
        assert_eq!(
            (n.status, n.attempts),
            (NudgeStatus::Pending, 0),
            "{account}"
        );
    }
    assert!(w.log().await.is_empty(), "nothing final happened");
    // The next run, with the provider back, sends each once.
    let r = w.sweep(at + Duration::minutes(15), "run-2").await;
    assert_eq!(r.sent, 20, "{r:?}");
    assert_eq!(w.outbox.sent().len(), 20);
}

#[tokio::test]
async fn a_run_out_of_time_starts_no_delivery_and_the_next_run_reaches_what_it_left() {
    let w = World::new();
    let at = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
        .await;
    // A first run that completes sets the checkpoint; the next is out of time at once.
    w.sweep(at - Duration::minutes(15), "run-0").await;
    let spent = crate::delivery::Budget::until(std::time::Instant::now());
    let r =
        crate::delivery::sweep_within(&w.deps, crate::registry::render_vars, at, "run-1", spent)
            .await
            .expect("sweep");
    assert_eq!((r.due, r.unstarted, r.sent), (1, 1, 0), "{r:?}");
    assert_eq!(w.nudge("acme", "n").await.status, NudgeStatus::Pending);
    // Much later than the look-back: still found, because the checkpoint stayed behind it.
    let r = w.sweep(at + Duration::hours(2), "run-2").await;
    assert_eq!(r.sent, 1, "{r:?}");
}

#[tokio::test]
async fn a_deadline_reminder_still_unsent_after_its_deadline_is_dropped_not_sent_late() {
    let w = World::new();
    let at = utc("2026-11-20T09:00:00Z");
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    // The final stage (due 07:00) was retried past the deadline (09:00).
    let mut n = crate::domain::Nudge::new(
        "dl/d1/final",
        "acme",
        Some("u1".into()),
        NudgeKind::DeadlineReminder,
        at - Duration::minutes(5),
        "reminders",
        at - Duration::days(3),
    );
    n.vars = serde_json::json!({"title": "Quarterly report", "deadline_id": "d1",
        "due_at": "2026-11-20T09:00:00Z"});
    assert!(
        w.store
            .put_nudge(&n, w.deps.config.due_shards)
            .await
            .expect("put")
    );
    let r = w.sweep(at, "run-1").await;
    assert_eq!((r.sent, r.blocked), (0, 1), "{r:?}");
    assert!(w.outbox.sent().is_empty());
    let logged: Vec<_> = w.log().await.into_iter().map(|e| e.reason).collect();
    assert_eq!(logged, [Some("deadline_passed".to_string())]);
}

/// A provider that takes every message but whose first `lost` answers never arrive (the
/// message left all the same), then answers normally.
struct LostAnswers {
    lost: std::sync::atomic::AtomicUsize,
    outbox: std::sync::Arc<super::Outbox>,
}

#[async_trait::async_trait]
impl crate::channels::Mailer for LostAnswers {
    async fn send_email(
        &self,
        email: &crate::channels::OutgoingEmail,
    ) -> Result<String, crate::channels::SendError> {
        let id = self.outbox.send_email(email).await?;
        let lose = self
            .lost
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if lose {
            return Err(crate::channels::SendError::Unknown(
                "connection reset after the request left".into(),
            ));
        }
        Ok(id)
    }
}

/// A world whose SES publishes its events to Nudge (a configuration set), sending through
/// `mailer`.
fn with_events(w: &World, mailer: std::sync::Arc<dyn crate::channels::Mailer>) -> crate::Deps {
    let mut config = w.deps.config.clone();
    config.configuration_set = Some("nudge-events".into());
    crate::Deps::new(
        config,
        w.store.clone(),
        mailer,
        w.outbox.clone(),
        super::test_keys(),
    )
}

async fn sweep_with(deps: &crate::Deps, now: DateTime<Utc>, run_id: &str) -> RunReport {
    crate::delivery::sweep(deps, crate::registry::render_vars, now, run_id)
        .await
        .expect("sweep")
}

#[tokio::test]
async fn an_unanswered_send_that_left_is_marked_sent_on_its_ses_event_never_sent_twice() {
    let w = World::new();
    let mailer = std::sync::Arc::new(LostAnswers {
        lost: 1.into(),
        outbox: w.outbox.clone(),
    });
    let deps = with_events(&w, mailer);
    let at = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
        .await;
    let first = sweep_with(&deps, at, "run-1").await;
    assert_eq!((first.sent, first.retried), (0, 1), "{first:?}");
    let waiting = w.nudge("acme", "n").await;
    assert_eq!(waiting.status, NudgeStatus::Pending);
    assert!(
        waiting
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("unconfirmed")
    );
    // SES's `Send` event for the message arrives through the feedback path.
    let r = MessageRef {
        account_id: "acme".into(),
        nudge_id: "n".into(),
        kind: "deadline_reminder".into(),
        variant: "a".into(),
    };
    w.store
        .record_engagement(&r, EngagementKind::Accepted, at)
        .await
        .expect("engagement");
    let next = sweep_with(&deps, at + Duration::minutes(15), "run-2").await;
    assert_eq!(next.sent, 1, "{next:?}");
    assert_eq!(w.outbox.sent().len(), 1, "the provider got it once");
    let n = w.nudge("acme", "n").await;
    assert_eq!((n.status, n.sent_at), (NudgeStatus::Sent, Some(at)));
    let logged: Vec<_> = w
        .log()
        .await
        .into_iter()
        .map(|e| (e.status, e.reason))
        .collect();
    assert_eq!(
        logged,
        [(LogStatus::Sent, None)],
        "a sent line carries no reason (the delivery-log contract)"
    );
}

#[tokio::test]
async fn an_unanswered_send_without_any_ses_event_is_sent_again_after_the_wait() {
    let w = World::new();
    // The answer is lost and, as SES never took it, no event comes.
    let deps = with_events(
        &w,
        std::sync::Arc::new(Failing(crate::channels::SendError::Unknown(
            "timeout".into(),
        ))),
    );
    let at = utc("2026-11-20T01:00:00Z");
    w.account("acme", Tokyo, at - Duration::days(2)).await;
    w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
    w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
        .await;
    sweep_with(&deps, at, "run-1").await;
    // Before the wait is over nothing is sent again.
    let early = sweep_with(&deps, at + Duration::minutes(5), "run-2").await;
    assert_eq!(early.sent + early.retried, 0, "{early:?}");
    let healthy = with_events(&w, w.outbox.clone());
    let later = sweep_with(&healthy, at + Duration::minutes(15), "run-3").await;
    assert_eq!(later.sent, 1, "{later:?}");
    assert_eq!(w.outbox.sent().len(), 1);
    let n = w.nudge("acme", "n").await;
    assert_eq!((n.status, n.attempts), (NudgeStatus::Sent, 2));
}

#[tokio::test]
async fn a_run_that_died_after_its_claim_is_taken_over_sent_once_or_confirmed() {
    for left in [false, true] {
        let w = World::new();
        let deps = with_events(&w, w.outbox.clone());
        let at = utc("2026-11-20T01:00:00Z");
        w.account("acme", Tokyo, at - Duration::days(2)).await;
        w.contact("acme", "u1", Tokyo, at - Duration::days(2)).await;
        w.plan("acme", "n", Some("u1"), NudgeKind::DeadlineReminder, at)
            .await;
        // A run claims it and dies, before the send (`left` false) or after SES took it.
        w.store
            .claim("acme", "n", "dead-run", at, crate::delivery::send::LEASE)
            .await
            .expect("claim")
            .expect("claimed");
        if left {
            let r = MessageRef {
                account_id: "acme".into(),
                nudge_id: "n".into(),
                kind: "deadline_reminder".into(),
                variant: "a".into(),
            };
            w.store
                .record_engagement(&r, EngagementKind::Accepted, at)
                .await
                .expect("engagement");
        }
        let during = sweep_with(&deps, at + Duration::minutes(5), "run-2").await;
        assert_eq!(during.sent, 0, "the lease still holds: {during:?}");
        let after = sweep_with(&deps, at + Duration::minutes(30), "run-3").await;
        assert_eq!(after.sent, 1, "left={left}: {after:?}");
        assert_eq!(
            w.outbox.sent().len(),
            usize::from(!left),
            "left={left}: sent by the run that took over only if it had not left"
        );
        let log = w.log().await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].status, LogStatus::Sent);
        assert_eq!(w.nudge("acme", "n").await.status, NudgeStatus::Sent);
    }
}
