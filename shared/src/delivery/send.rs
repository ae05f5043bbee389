//! The one send path. Every nudge, from every function, goes through [`deliver`]:
//!
//! 1. **record**: the nudge is stored as `pending` with its sparse `due` GSI keys
//!    ([`NudgeStore::put_nudge`], idempotent by its deterministic id);
//! 2. **load**: account, contact, suppression of the address, cap reservations (reads only);
//! 3. **render** the message (pure), then **check policy** (pure, [`policy::check`]);
//!    a block is one conditional write (`pending → blocked`, reason recorded) + a log entry;
//! 4. **reserve the frequency cap** (marketing kinds only): an optimistic, versioned update of
//!    the contact's reservations, keyed by nudge id so a retry is never capped by itself;
//! 5. **claim**: a conditional write `pending → claimed` with a lease (owner = run id, expiry
//!    `now + LEASE`). Exactly one run wins; everybody else skips the nudge;
//! 6. **send** through the `Mailer` (SES v2, raw MIME) or `Notifier` (SNS);
//! 7. **mark**: `claimed → sent` with the provider's message id (condition: the lease is
//!    still mine), the message-id mapping for feedback, the kind's `sent` counter, the log
//!    entry, and the follow-up (if the kind has a rule).
//!
//! A provider error that may pass (throttling, 5xx, network) puts the nudge back to `pending`
//! with `send_at = now + 15 min × 2^(attempts-1)` and its GSI keys re-set, so a later run
//! retries it; after `config.max_attempts` claims it is marked `failed` and logged. A
//! rejection (bad address, unverified sender, ...) fails at once.
//!
//! ## Why nothing is sent twice
//! Overlapping scheduled runs, Lambda retries and replays all reach step 5, and the claim is a
//! conditional write on `status = pending`. A finished nudge (sent, blocked, failed,
//! cancelled) has no GSI keys and is never seen again; re-planning it is a no-op
//! (`put_nudge` is conditional on absence).
//!
//! ## The one unavoidable window, and what we do about it
//! Between the provider accepting a message (step 6) and the `sent` mark (step 7) a crash or
//! timeout loses the knowledge that it went out. No conditional write can close this window:
//! SES and SNS have no idempotency key. The claim is therefore also the "sending" marker: it is
//! written immediately before the provider call (steps 2-4 happen before it, so a crash there
//! simply leaves the nudge pending for the next run). A run that later finds a `claimed`
//! nudge whose lease expired does **not** resend it; it marks it `failed` with reason
//! `unknown_outcome` and writes a `failed` entry to the delivery log (visible to the CSM and
//! in `nudge simulate`), preferring "maybe missing" over "maybe twice". If the original run
//! was merely slow and marks `sent` afterwards, the truth wins (the mark is conditional on the
//! lease owner, not on the status). The lease (15 min) must be longer than the function's
//! timeout. The window is one SES/SNS call plus one UpdateItem: milliseconds per send.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::{Instrument, info, warn};

use super::followup;
use super::log::{DeliveryLogEntry, LogStatus};
use super::nudge::{Audience, Channel, Nudge, NudgeKind, NudgeStatus};
use super::policy::{self, BlockReason, PolicyInput};
use super::unsubscribe;
use super::{DeliveryError, Notification, NotifyTarget, OutgoingEmail, SendError, redact};
use crate::Deps;
use crate::events::{Locale, Tier};
use crate::store::{AccountRecord, ContactRecord, MessageRef, schema};
use crate::templates::{self, Rendered};

/// How long a claim holds. Longer than any function's timeout.
pub const LEASE: Duration = Duration::minutes(15);
/// How far before the checkpoint a run looks again (late writes, clock skew, expired leases).
pub const LOOK_BACK: Duration = Duration::minutes(15);
/// The oldest bucket a run ever scans (bounds a first run or a long outage).
pub const MAX_SCAN: Duration = Duration::days(8);
/// First retry delay; doubled per attempt.
pub const BACKOFF_BASE: Duration = Duration::minutes(15);
/// The failure reason of a nudge whose lease expired mid-send (it may have left).
pub const UNKNOWN_OUTCOME: &str = "unknown_outcome";
/// Concurrent deliveries per run.
const CONCURRENCY: usize = 8;
/// Optimistic cap reservation attempts before giving up for this run.
const CAP_RETRIES: usize = 5;

/// What happened to one nudge in one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        provider_message_id: String,
    },
    Blocked(BlockReason),
    /// A follow-up that was not needed (the original was opened).
    Cancelled(BlockReason),
    Retry {
        next_send_at: DateTime<Utc>,
    },
    Failed {
        reason: String,
    },
    /// Not ours to send now (not due, another run holds it, already finished).
    Skipped,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub function: String,
    pub run_id: String,
    pub due: usize,
    pub sent: usize,
    pub blocked: usize,
    pub cancelled: usize,
    pub retried: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Nudges that hit a store error (left for the next run).
    pub errors: usize,
}

impl RunReport {
    fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Sent { .. } => self.sent += 1,
            Outcome::Blocked(_) => self.blocked += 1,
            Outcome::Cancelled(_) => self.cancelled += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// The functions whose nudges a run of `function` delivers: its own, and for the 15-minute
/// `reminders` run also those created by `ingest` (pause notices whose immediate send failed).
pub fn swept_functions(function: &str) -> Vec<String> {
    let mut v = vec![function.to_string()];
    if function == "reminders" {
        v.push("ingest".into());
    }
    v
}

/// The due buckets from `from` to `now`, inclusive, oldest first.
pub fn buckets_between(from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<String> {
    let step = Duration::minutes(i64::from(schema::BUCKET_MINUTES));
    let mut out = Vec::new();
    let mut t = from.min(now);
    let last = schema::due_bucket(now);
    loop {
        let b = schema::due_bucket(t);
        let done = b == last;
        if out.last() != Some(&b) {
            out.push(b);
        }
        if done {
            break;
        }
        t += step;
        if t > now {
            t = now;
        }
    }
    out
}

/// Start of the due bucket `at` falls in (the GSI partition of a pending nudge is the bucket
/// of `max(send_at, created_at)`, see the store).
fn bucket_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let width = i64::from(schema::BUCKET_MINUTES) * 60;
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(width), 0).unwrap_or(at)
}

/// A scheduled run: deliver every due nudge of `function`, then advance its checkpoint.
pub async fn run_due(
    deps: &Deps,
    function: &str,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<RunReport, DeliveryError> {
    let store = &deps.store;
    let checkpoint = store.checkpoint(function).await?.unwrap_or(now);
    let from = (checkpoint.min(now) - LOOK_BACK).max(now - MAX_SCAN);
    let buckets = buckets_between(from, now);
    let due = store
        .due_nudges(
            &buckets,
            deps.config.due_shards,
            now,
            &swept_functions(function),
        )
        .await?;
    // A nudge claimed by another run whose lease has not expired yet is resolved by a later
    // run (sent by its owner, or `unknown_outcome` once the lease expires). That later run
    // must still scan its bucket: hold the checkpoint so that its look-back reaches it.
    let hold = due
        .iter()
        .filter(|n| n.status == NudgeStatus::Claimed && n.lease_until.is_some_and(|u| u >= now))
        .map(|n| bucket_start(n.send_at.max(n.created_at)) + LOOK_BACK)
        .min();
    let mut report = RunReport {
        function: function.into(),
        run_id: run_id.into(),
        due: due.len(),
        ..Default::default()
    };
    let outcomes: Vec<Result<Outcome, DeliveryError>> = stream::iter(due)
        .map(|n| async move {
            let (account_id, nudge_id, kind) = (n.account_id.clone(), n.nudge_id.clone(), n.kind);
            let r = deliver(deps, &n, now, run_id).await;
            if let Err(e) = &r {
                warn!(account_id = %account_id, nudge_id = %nudge_id, kind = %kind, error = %e, "delivery error; left for the next run");
            }
            r
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for o in &outcomes {
        match o {
            Ok(o) => report.count(o),
            Err(_) => report.errors += 1,
        }
    }
    if report.errors == 0 {
        store
            .set_checkpoint(function, hold.map_or(now, |h| h.min(now)))
            .await?;
    }
    info!(
        function,
        due = report.due,
        sent = report.sent,
        blocked = report.blocked,
        retried = report.retried,
        failed = report.failed,
        skipped = report.skipped,
        errors = report.errors,
        "delivery run"
    );
    Ok(report)
}

/// Records a new nudge and delivers it at once if it is due (functions that create and send
/// in one run). A nudge that already exists is delivered as stored (a replay sends nothing new).
pub async fn deliver_new(
    deps: &Deps,
    nudge: &Nudge,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Outcome, DeliveryError> {
    let created = deps.store.put_nudge(nudge, deps.config.due_shards).await?;
    if created {
        return deliver(deps, nudge, now, run_id).await;
    }
    match deps.store.nudge(&nudge.account_id, &nudge.nudge_id).await? {
        Some(stored) => deliver(deps, &stored, now, run_id).await,
        None => Ok(Outcome::Skipped),
    }
}

fn locale_str(l: Locale) -> &'static str {
    match l {
        Locale::Ja => "ja",
        Locale::En => "en",
    }
}

/// Who a nudge goes to, as resolved from the store.
struct Recipient {
    contact: Option<ContactRecord>,
    /// Email address, or topic ARN for CSM messages; `None` = nobody to send to.
    to: Option<String>,
    locale: &'static str,
    tz: Tz,
}

fn resolve_recipient(
    deps: &Deps,
    nudge: &Nudge,
    account: Option<&AccountRecord>,
    contact: Option<ContactRecord>,
) -> Recipient {
    let profile = account.and_then(|a| a.profile.as_ref());
    let contact_profile = contact.as_ref().and_then(|c| c.profile.as_ref());
    let locale = contact_profile
        .and_then(|p| p.locale)
        .or(profile.map(|p| p.locale))
        .map(locale_str)
        .unwrap_or("en");
    let tz = contact_profile
        .and_then(|p| p.timezone)
        .or(profile.map(|p| p.timezone))
        .unwrap_or(Tz::UTC);
    let to = match nudge.kind.audience() {
        Audience::Customer => contact_profile
            .map(|p| p.email.clone())
            .filter(|e| !e.trim().is_empty()),
        Audience::Csm => deps.config.csm_topic_arn.clone(),
    };
    // CSM messages are written in the account's language (the CSM's working language).
    let locale = match nudge.kind.audience() {
        Audience::Csm => profile.map(|p| locale_str(p.locale)).unwrap_or(locale),
        Audience::Customer => locale,
    };
    Recipient {
        contact,
        to,
        locale,
        tz,
    }
}

fn template_vars(
    deps: &Deps,
    nudge: &Nudge,
    account: Option<&AccountRecord>,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Value {
    let mut vars: Map<String, Value> = match &nudge.vars {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let profile = account.and_then(|a| a.profile.as_ref());
    let mut put = |k: &str, v: Value| {
        vars.entry(k.to_string()).or_insert(v);
    };
    if let Some(p) = profile {
        put("account_name", json!(p.name));
        put("plan", json!(p.plan));
        put("renewal_date", json!(p.renewal_date.to_string()));
        if let Some(t) = p.tier {
            put("tier", serde_json::to_value(t).unwrap_or_default());
        }
        if let Some(csm) = &p.csm {
            put("csm_name", json!(csm.name));
        }
    } else {
        put("account_name", json!(nudge.account_id));
    }
    if let Some(cp) = recipient.contact.as_ref().and_then(|c| c.profile.as_ref()) {
        put("contact_name", json!(cp.name));
    }
    // Deadline wording is computed when the message leaves, in the recipient's own terms.
    if nudge.kind == NudgeKind::DeadlineReminder
        && let Some(due) = nudge
            .vars
            .get("due_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        let due = due.with_timezone(&Utc);
        let lang = recipient.locale;
        put(
            "time_left",
            json!(crate::reminders::time_left(due, now, recipient.tz, lang)),
        );
        put(
            "due_local",
            json!(crate::reminders::format_due(due, recipient.tz, lang)),
        );
    }
    if nudge.kind.audience() == Audience::Customer
        && let Some(c) = &recipient.contact
    {
        let token = unsubscribe::sign(
            deps.secret.as_bytes(),
            &nudge.account_id,
            &c.contact_id,
            nudge.kind.category(),
        );
        vars.insert(
            "unsubscribe_url".into(),
            json!(unsubscribe::link(&deps.config.public_base_url, &token)),
        );
    }
    Value::Object(vars)
}

/// Delivers one nudge (see the module docs for the steps and guarantees).
pub async fn deliver(
    deps: &Deps,
    nudge: &Nudge,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Outcome, DeliveryError> {
    let span = tracing::info_span!(
        "deliver",
        account_id = %nudge.account_id,
        nudge_id = %nudge.nudge_id,
        kind = %nudge.kind
    );
    deliver_in_span(deps, nudge, now, run_id)
        .instrument(span)
        .await
}

async fn deliver_in_span(
    deps: &Deps,
    nudge: &Nudge,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Outcome, DeliveryError> {
    let store = &deps.store;

    match nudge.status {
        NudgeStatus::Pending if nudge.send_at <= now => {}
        NudgeStatus::Claimed => return resolve_claimed(deps, nudge, now).await,
        _ => return Ok(Outcome::Skipped),
    }

    // 2. Load (reads only).
    let account = store.account(&nudge.account_id).await?;
    let contact_id = nudge
        .contact_id
        .clone()
        .or_else(|| account.as_ref().and_then(|a| a.admin_contact_id.clone()));
    let contact = match &contact_id {
        Some(c) => store.contact(&nudge.account_id, c).await?,
        None => None,
    };
    let recipient = resolve_recipient(deps, nudge, account.as_ref(), contact);
    let vars = template_vars(deps, nudge, account.as_ref(), &recipient, now);
    let channel = nudge.kind.channel();
    let entry = |status: LogStatus, subject: &str, reason: Option<String>, pmid: Option<String>| {
        DeliveryLogEntry {
            at: now,
            function: nudge.function.clone(),
            kind: nudge.kind,
            stage: nudge.stage.clone(),
            channel,
            account_id: nudge.account_id.clone(),
            contact_id: recipient
                .contact
                .as_ref()
                .map(|c| c.contact_id.clone())
                .or_else(|| contact_id.clone()),
            to: recipient.to.clone().unwrap_or_default(),
            subject: subject.to_string(),
            locale: recipient.locale.to_string(),
            status,
            reason,
            nudge_id: nudge.nudge_id.clone(),
            variant: nudge.variant.clone(),
            provider_message_id: pmid,
        }
    };

    // 3. Render, then policy.
    let rendered = match templates::render(
        nudge.kind,
        nudge.stage.as_deref(),
        &nudge.variant,
        recipient.locale,
        &vars,
    ) {
        Ok(r) => r,
        Err(e) => {
            // A template defect: fail visibly rather than retry forever.
            warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, error = %e, "template error");
            if store
                .claim(&nudge.account_id, &nudge.nudge_id, run_id, now, LEASE)
                .await?
                .is_some()
                && store
                    .mark_failed(
                        &nudge.account_id,
                        &nudge.nudge_id,
                        run_id,
                        "template_error",
                        now,
                    )
                    .await?
            {
                store
                    .append_log(&entry(
                        LogStatus::Failed,
                        "",
                        Some("template_error".into()),
                        None,
                    ))
                    .await?;
            }
            return Ok(Outcome::Failed {
                reason: "template_error".into(),
            });
        }
    };

    let subject: &str = &rendered.subject;
    let entry = &entry;
    let block = |reason: BlockReason| async move {
        if store
            .mark_blocked(&nudge.account_id, &nudge.nudge_id, reason.as_str(), now)
            .await?
        {
            store
                .append_log(&entry(
                    LogStatus::Blocked,
                    subject,
                    Some(reason.as_str().into()),
                    None,
                ))
                .await?;
            info!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, reason = %reason, "nudge blocked");
            Ok::<_, DeliveryError>(Outcome::Blocked(reason))
        } else {
            Ok(Outcome::Skipped)
        }
    };

    // A follow-up goes out only if the original is still unopened.
    if let Some(original_id) = &nudge.follow_up_of
        && let Some(original) = store.nudge(&nudge.account_id, original_id).await?
        && (original.engagement.opened_at.is_some() || original.engagement.clicked_at.is_some())
    {
        let n = store
            .cancel_pending(
                &nudge.account_id,
                std::slice::from_ref(&nudge.nudge_id),
                BlockReason::Opened.as_str(),
                now,
            )
            .await?;
        if n == 1 {
            store
                .append_log(&entry(
                    LogStatus::Blocked,
                    subject,
                    Some(BlockReason::Opened.as_str().into()),
                    None,
                ))
                .await?;
            return Ok(Outcome::Cancelled(BlockReason::Opened));
        }
        return Ok(Outcome::Skipped);
    }

    let Some(to) = recipient.to.clone() else {
        return block(BlockReason::NoRecipient).await;
    };
    let customer = nudge.kind.audience() == Audience::Customer;
    let suppression = if customer {
        store.suppression(&to).await?.and_then(|s| s.reason)
    } else {
        None
    };
    let contact_ref = recipient.contact.as_ref();
    let mut cap_state = match (nudge.kind.is_marketing(), contact_ref) {
        (true, Some(c)) => Some(store.cap_state(&nudge.account_id, &c.contact_id).await?),
        _ => None,
    };
    let empty = Default::default();
    let unsubscribed = contact_ref.map(|c| &c.unsubscribed).unwrap_or(&empty);
    let empty_sends = Default::default();
    let decision = policy::check(&PolicyInput {
        nudge_id: &nudge.nudge_id,
        kind: nudge.kind,
        channel,
        unsubscribed,
        suppression,
        paused: account.as_ref().is_some_and(|a| a.paused),
        cap: deps.config.cap,
        recent_marketing: cap_state.as_ref().map(|c| &c.sends).unwrap_or(&empty_sends),
        tz: recipient.tz,
        now,
    });
    if let Err(reason) = decision {
        return block(reason).await;
    }

    // 4. Reserve the cap (marketing only), optimistic on the contact's version.
    if let (Some(state), Some(c)) = (cap_state.as_mut(), contact_ref) {
        let mut reserved = false;
        for _ in 0..CAP_RETRIES {
            if let Err(reason) = policy::cap_check(
                &state.sends,
                &nudge.nudge_id,
                now,
                recipient.tz,
                deps.config.cap,
            ) {
                return block(reason).await;
            }
            if store
                .reserve_cap(
                    &nudge.account_id,
                    &c.contact_id,
                    &nudge.nudge_id,
                    now,
                    state,
                )
                .await?
            {
                reserved = true;
                break;
            }
            *state = store.cap_state(&nudge.account_id, &c.contact_id).await?;
        }
        if !reserved {
            // Heavy contention on one contact: leave it pending for the next run.
            return Ok(Outcome::Skipped);
        }
    }

    // 5. Claim (the "sending" marker).
    let Some(claimed) = store
        .claim(&nudge.account_id, &nudge.nudge_id, run_id, now, LEASE)
        .await?
    else {
        return Ok(Outcome::Skipped);
    };

    // 6. Send.
    let sent = match channel {
        Channel::Email => {
            let email = outgoing_email(deps, nudge, &to, &rendered, &vars, now);
            deps.mailer.send_email(&email).await
        }
        Channel::Sns => {
            deps.notifier
                .notify(&Notification {
                    target: NotifyTarget::Topic(to.clone()),
                    subject: rendered.subject.clone(),
                    message: rendered.text.clone(),
                })
                .await
        }
    };

    // 7. Mark.
    match sent {
        Ok(pmid) => {
            if !store
                .mark_sent(&nudge.account_id, &nudge.nudge_id, run_id, &pmid, now)
                .await?
            {
                warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, "sent, but the lease was lost before the mark");
            }
            if channel == Channel::Email && !pmid.is_empty() {
                store
                    .record_message(
                        &pmid,
                        &MessageRef {
                            account_id: nudge.account_id.clone(),
                            nudge_id: nudge.nudge_id.clone(),
                            kind: nudge.kind.as_str().into(),
                            variant: nudge.variant.clone(),
                        },
                        now,
                    )
                    .await?;
            }
            store
                .count_sent(nudge.kind.as_str(), &nudge.variant)
                .await?;
            store
                .append_log(&entry(
                    LogStatus::Sent,
                    &rendered.subject,
                    None,
                    Some(pmid.clone()),
                ))
                .await?;
            if customer && channel == Channel::Email {
                let tier: Option<Tier> = account
                    .as_ref()
                    .and_then(|a| a.profile.as_ref())
                    .and_then(|p| p.tier);
                if let Some(fu) = followup::follow_up_for(nudge, tier, &rendered.subject, now) {
                    store.put_nudge(&fu, deps.config.due_shards).await?;
                }
            }
            info!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, attempts = claimed.attempts, "nudge sent");
            Ok(Outcome::Sent {
                provider_message_id: pmid,
            })
        }
        Err(SendError::Transient(msg)) if claimed.attempts < deps.config.max_attempts => {
            let exp = claimed.attempts.saturating_sub(1).min(10);
            let next = now + BACKOFF_BASE * 2i32.pow(exp);
            let msg = redact(&msg);
            store
                .mark_retry(
                    &nudge.account_id,
                    &nudge.nudge_id,
                    run_id,
                    next,
                    &format!("provider_transient: {msg}"),
                    deps.config.due_shards,
                )
                .await?;
            warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, attempts = claimed.attempts, error = %msg, next_send_at = %next, "provider error; will retry");
            Ok(Outcome::Retry { next_send_at: next })
        }
        Err(e) => {
            let reason = match &e {
                SendError::Transient(_) => "provider_retries_exhausted",
                SendError::Rejected(_) => "provider_rejected",
            };
            let detail = redact(&e.to_string());
            warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, attempts = claimed.attempts, error = %detail, "nudge failed");
            if store
                .mark_failed(&nudge.account_id, &nudge.nudge_id, run_id, reason, now)
                .await?
            {
                store
                    .append_log(&entry(
                        LogStatus::Failed,
                        &rendered.subject,
                        Some(reason.into()),
                        None,
                    ))
                    .await?;
            }
            Ok(Outcome::Failed {
                reason: reason.into(),
            })
        }
    }
}

/// A claimed nudge found by a run: if its lease expired, the outcome is unknown (see the
/// module docs): mark it failed and log it instead of resending.
async fn resolve_claimed(
    deps: &Deps,
    nudge: &Nudge,
    now: DateTime<Utc>,
) -> Result<Outcome, DeliveryError> {
    let (Some(owner), Some(until)) = (&nudge.lease_owner, nudge.lease_until) else {
        return Ok(Outcome::Skipped);
    };
    if until >= now {
        return Ok(Outcome::Skipped);
    }
    if !deps
        .store
        .expire_lease(&nudge.account_id, &nudge.nudge_id, owner, now)
        .await?
    {
        return Ok(Outcome::Skipped);
    }
    warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, "lease expired during a send: outcome unknown, not resent");
    let to = match nudge.kind.audience() {
        Audience::Csm => deps.config.csm_topic_arn.clone().unwrap_or_default(),
        Audience::Customer => String::new(),
    };
    deps.store
        .append_log(&DeliveryLogEntry {
            at: now,
            function: nudge.function.clone(),
            kind: nudge.kind,
            stage: nudge.stage.clone(),
            channel: nudge.kind.channel(),
            account_id: nudge.account_id.clone(),
            contact_id: nudge.contact_id.clone(),
            to,
            subject: String::new(),
            locale: String::new(),
            status: LogStatus::Failed,
            reason: Some(UNKNOWN_OUTCOME.into()),
            nudge_id: nudge.nudge_id.clone(),
            variant: nudge.variant.clone(),
            provider_message_id: None,
        })
        .await?;
    Ok(Outcome::Failed {
        reason: UNKNOWN_OUTCOME.into(),
    })
}

/// After `customer_replied`: tell the CSM that automation for the account stopped. The notice
/// (`paused:<event_id>`, owned by `ingest`) is recorded, then delivered at once; if that send
/// fails it stays pending and the 15-minute `reminders` run retries it (see
/// [`swept_functions`]). A replayed or retried event records nothing new. Only a failure to
/// record the notice is an error (the event is then retried by the client).
pub async fn notify_paused(
    deps: &Deps,
    event: &crate::events::Event,
    applied: crate::store::Applied,
    now: DateTime<Utc>,
) -> Result<(), crate::store::StoreError> {
    let at = event.occurred_at_utc();
    if applied == crate::store::Applied::Stale {
        // Stale is also what a retry of this very event sees: notify only if this event is
        // still the one that paused the account (a later resume wins).
        let current = deps.store.account(&event.account_id).await?;
        if !current.is_some_and(|a| a.paused && a.paused_at == Some(at)) {
            return Ok(());
        }
    }
    let nudge = Nudge::new(
        format!("paused:{}", event.event_id),
        &event.account_id,
        event.contact_id.clone(),
        super::nudge::NudgeKind::AutomationPaused,
        at,
        "ingest",
        now,
    )
    .with_vars(json!({ "paused_at": super::log::rfc3339_seconds::format(&at) }));
    let run_id = format!("ingest:{}:{}", event.event_id, now.timestamp_millis());
    match deliver_new(deps, &nudge, now, &run_id).await {
        Ok(_) => Ok(()),
        Err(DeliveryError::Store(e)) if !deps_has_nudge(deps, &nudge).await => Err(e),
        Err(e) => {
            warn!(account_id = %event.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, error = %e, "pause notice not sent now; the reminders run will retry");
            Ok(())
        }
    }
}

async fn deps_has_nudge(deps: &Deps, nudge: &Nudge) -> bool {
    matches!(
        deps.store.nudge(&nudge.account_id, &nudge.nudge_id).await,
        Ok(Some(_))
    )
}

/// SES tag values allow only `[A-Za-z0-9_-.@]`-ish characters: the nudge reference is hex.
pub fn nudge_ref_tag(account_id: &str, nudge_id: &str) -> Option<String> {
    let json = serde_json::to_string(&[account_id, nudge_id]).ok()?;
    let h = hex::encode(json.as_bytes());
    (h.len() <= 256).then_some(h)
}

/// Decodes [`nudge_ref_tag`].
pub fn parse_nudge_ref_tag(tag: &str) -> Option<(String, String)> {
    let bytes = hex::decode(tag).ok()?;
    let v: Vec<String> = serde_json::from_slice(&bytes).ok()?;
    match v.as_slice() {
        [a, n] => Some((a.clone(), n.clone())),
        _ => None,
    }
}

fn outgoing_email(
    deps: &Deps,
    nudge: &Nudge,
    to: &str,
    rendered: &Rendered,
    vars: &Value,
    now: DateTime<Utc>,
) -> OutgoingEmail {
    let url = vars
        .get("unsubscribe_url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut tags = vec![
        ("nudge_kind".to_string(), nudge.kind.as_str().to_string()),
        ("variant".to_string(), sanitize_tag(&nudge.variant)),
    ];
    if let Some(r) = nudge_ref_tag(&nudge.account_id, &nudge.nudge_id) {
        tags.push(("nref".into(), r));
    }
    OutgoingEmail {
        from: deps.config.sender.clone(),
        to: to.to_string(),
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        headers: unsubscribe::headers(url),
        tags,
        date: now,
        message_id: super::mime::message_id(
            &nudge.account_id,
            &nudge.nudge_id,
            &deps.config.sender,
        ),
    }
}

fn sanitize_tag(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_cover_the_range() {
        let a = Utc.with_ymd_and_hms(2026, 11, 20, 8, 50, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 11, 20, 9, 50, 0).unwrap();
        assert_eq!(
            buckets_between(a, b),
            vec![
                "2026-11-20T08:45",
                "2026-11-20T09:00",
                "2026-11-20T09:15",
                "2026-11-20T09:30",
                "2026-11-20T09:45"
            ]
        );
        assert_eq!(buckets_between(b, b), vec!["2026-11-20T09:45"]);
    }

    #[test]
    fn nudge_ref_tags_round_trip() {
        let t = nudge_ref_tag("acme", "dl:d1:final").unwrap();
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            parse_nudge_ref_tag(&t),
            Some(("acme".into(), "dl:d1:final".into()))
        );
    }
}
