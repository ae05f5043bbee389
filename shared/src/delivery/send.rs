//! The one send path. Every nudge, from every function, goes through [`deliver`]:
//!
//! 1. **record**: the nudge is stored as `pending` with its sparse `due` GSI keys
//!    (`NudgeStore::put_nudge`, idempotent by its deterministic id);
//! 2. **load**: account, contact, suppression of the address, cap reservations (reads only);
//! 3. **render** the message (pure); a customer-facing, non-urgent nudge due outside the
//!    recipient's business hours is **deferred** to the next opening (still `pending`); then
//!    **check policy** (pure, [`policy::check`]); a block is one conditional write
//!    (`pending → blocked`, reason recorded) + a log entry;
//! 4. **reserve the frequency cap** (marketing kinds only): an optimistic, versioned update of
//!    the contact's reservations, keyed by nudge id so a retry is never capped by itself;
//! 5. **claim**: a conditional write `pending → claimed` with a lease (owner = run id, expiry
//!    `now + LEASE`). Exactly one run wins; everybody else skips the nudge;
//! 6. **send** through the `Mailer` (SES v2, raw MIME) or `Notifier` (SNS);
//! 7. **mark**: `claimed → sent` with the provider's message id (condition: the lease is
//!    still mine), the message-id mapping for feedback, the kind's `sent` counter, the log
//!    entry, and the follow-up (if the kind has a rule).
//!
//! A provider error that surely did not send (throttling, no connection) puts the nudge back to
//! `pending` with `send_at = now + 15 min × 2^(attempts-1)` and its GSI keys re-set, so a later
//! run retries it; after `config.max_attempts` claims it is marked `failed` and logged. A
//! rejection (bad address, unverified sender, ...) fails at once; an error after which the
//! message may have left (5xx, timeout) fails as `unknown_outcome`, like an expired lease.
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
use tracing::{Instrument, info, warn};

use super::DeliveryError;
use super::followup;
use super::message::{Recipient, message_tags, outgoing_email, resolve_recipient, template_vars};
use crate::Deps;
use crate::channels::{Notification, SendError, redact};
use crate::domain::policy::{self, BlockReason, PolicyInput};
use crate::domain::{
    Audience, Channel, DeliveryLogEntry, ExtraVars, Locale, LogStatus, Nudge, NudgeStatus, Role,
    SendWindow, UNKNOWN_OUTCOME,
};
use crate::store::{AccountRecord, MessageRef, SentMark};
use crate::templates::{self, Rendered};

/// How long a claim holds. Longer than any function's timeout.
pub const LEASE: Duration = Duration::minutes(15);
/// First retry delay; doubled per attempt.
pub const BACKOFF_BASE: Duration = Duration::minutes(15);
/// Optimistic cap reservation attempts before giving up for this run.
const CAP_RETRIES: usize = 5;

/// What happened to one nudge in one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        provider_message_id: String,
    },
    Blocked(BlockReason),
    /// Due outside the recipient's send window: moved to the window's next opening.
    Deferred {
        until: DateTime<Utc>,
    },
    /// A follow-up that was not needed (the original was opened).
    Cancelled(BlockReason),
    Retry {
        next_send_at: DateTime<Utc>,
    },
    /// The provider throttled the send: back to pending for the next run, no attempt counted.
    Throttled,
    Failed {
        reason: String,
    },
    /// Not ours to send now (not due, another run holds it, already finished).
    Skipped,
}

/// Records a new nudge and delivers it at once if it is due (functions that create and send
/// in one run). A nudge that already exists is delivered as stored (a replay sends nothing new).
pub async fn deliver_new(
    deps: &Deps,
    extra: ExtraVars,
    nudge: &Nudge,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Outcome, DeliveryError> {
    let created = deps.store.put_nudge(nudge, deps.config.due_shards).await?;
    if created {
        return deliver(deps, extra, nudge, now, run_id).await;
    }
    match deps.store.nudge(&nudge.account_id, &nudge.nudge_id).await? {
        Some(stored) => deliver(deps, extra, &stored, now, run_id).await,
        None => Ok(Outcome::Skipped),
    }
}

/// Delivers one nudge (see the module docs for the steps and guarantees).
pub async fn deliver(
    deps: &Deps,
    extra: ExtraVars,
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
    async {
        match nudge.status {
            NudgeStatus::Pending if nudge.send_at <= now => {}
            NudgeStatus::Claimed => return resolve_claimed(deps, extra, nudge, now, run_id).await,
            _ => return Ok(Outcome::Skipped),
        }
        let d = Delivery::load(deps, extra, nudge, now, run_id).await?;
        d.run().await
    }
    .instrument(span)
    .await
}

/// A nudge's message as the send path would write it at `now`: recipient, locale, template
/// variables and rendering exactly as [`deliver`] resolves them, without the send window,
/// policy, claim or send, and without writing anything (`nudge preview`).
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Email address or CSM topic ARN; `None`: nobody to send to (it would be blocked).
    pub to: Option<String>,
    pub locale: Locale,
    pub channel: Channel,
    /// What the template saw.
    pub vars: serde_json::Value,
    pub rendered: Rendered,
}

/// See [`Preview`]. Reads the account and contact from the store, like a delivery.
pub async fn preview(
    deps: &Deps,
    extra: ExtraVars,
    nudge: &Nudge,
    now: DateTime<Utc>,
) -> Result<Preview, DeliveryError> {
    let d = Delivery::load(deps, extra, nudge, now, "preview").await?;
    let locale = d.recipient.context.locale;
    let rendered = templates::render(nudge.kind, nudge.stage, &nudge.variant, locale, &d.vars)?;
    Ok(Preview {
        to: d.recipient.to,
        locale,
        channel: d.channel,
        vars: d.vars,
        rendered,
    })
}

/// What policy says about one nudge now.
enum Verdict {
    Send,
    Block(BlockReason),
    /// Not decidable now (cap reservations contended): stays pending for the next run.
    Later,
}

/// One pending, due nudge on its way out: what was loaded for it, and the steps.
struct Delivery<'a> {
    deps: &'a Deps,
    nudge: &'a Nudge,
    now: DateTime<Utc>,
    run_id: &'a str,
    account: Option<AccountRecord>,
    /// The contact the message is addressed to (the nudge's, else the account's admin).
    contact_id: Option<String>,
    recipient: Recipient,
    vars: serde_json::Value,
    channel: Channel,
}

impl<'a> Delivery<'a> {
    /// Step 2: reads only.
    async fn load(
        deps: &'a Deps,
        extra: ExtraVars,
        nudge: &'a Nudge,
        now: DateTime<Utc>,
        run_id: &'a str,
    ) -> Result<Delivery<'a>, DeliveryError> {
        let store = &deps.store;
        let account = store.account(&nudge.account_id).await?;
        let contact_id = nudge
            .contact_id
            .clone()
            .or_else(|| account.as_ref().and_then(|a| a.admin_contact_id.clone()));
        let (contact_id, contact) = match contact_id {
            Some(c) => {
                let contact = store.contact(&nudge.account_id, &c).await?;
                (Some(c), contact)
            }
            // No admin named by `admin_changed`: the first contact with the admin role (one
            // Query, only for accounts that never named one).
            None if nudge.audience() == Audience::Customer => {
                let admin = store
                    .contacts(&nudge.account_id)
                    .await?
                    .into_iter()
                    .find(|c| c.profile.as_ref().is_some_and(|p| p.role == Role::Admin));
                (admin.as_ref().map(|c| c.contact_id.clone()), admin)
            }
            None => (None, None),
        };
        let recipient = resolve_recipient(deps, nudge, account.as_ref(), contact);
        let vars = template_vars(deps, extra, nudge, account.as_ref(), &recipient, now);
        Ok(Delivery {
            deps,
            nudge,
            now,
            run_id,
            account,
            contact_id,
            recipient,
            vars,
            channel: nudge.channel(),
        })
    }

    /// Steps 3-7.
    async fn run(&self) -> Result<Outcome, DeliveryError> {
        // A customer email always carries its unsubscribe link: with no link key loaded to
        // sign one, it fails as a template error rather than leave without.
        if self.nudge.audience() == Audience::Customer
            && self.recipient.contact.is_some()
            && self.vars.get("unsubscribe_url").is_none()
        {
            return self
                .fail_template(templates::TemplateError::Render {
                    name: "unsubscribe_url".into(),
                    message: "no link key to sign the unsubscribe link with".into(),
                })
                .await;
        }
        let rendered = match templates::render(
            self.nudge.kind,
            self.nudge.stage,
            &self.nudge.variant,
            self.recipient.context.locale,
            &self.vars,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail_template(e).await,
        };
        if self.nudge.attempts > 0
            && let Some(outcome) = self.confirm_if_it_left(&rendered).await?
        {
            return Ok(outcome);
        }
        if let Some(outcome) = self.cancel_if_original_opened(&rendered).await? {
            return Ok(outcome);
        }
        let Some(to) = self.recipient.to.clone() else {
            return self.block(BlockReason::NoRecipient, &rendered).await;
        };
        if let Some(outcome) = self.defer_outside_window().await? {
            return Ok(outcome);
        }
        if policy::deadline_passed(self.nudge.kind, &self.vars, self.now) {
            return self.block(BlockReason::DeadlinePassed, &rendered).await;
        }
        match self.check_policy(&to).await? {
            Verdict::Send => {}
            Verdict::Block(reason) => return self.block(reason, &rendered).await,
            Verdict::Later => return Ok(Outcome::Skipped),
        }
        let claimed = match self.claim().await? {
            Ok(claimed) => claimed,
            Err(outcome) => return Ok(outcome),
        };
        let sent = self.send(&to, &rendered).await;
        self.mark(sent, claimed.attempts, &rendered).await
    }

    /// A line of the delivery log for this nudge.
    fn entry(
        &self,
        status: LogStatus,
        subject: &str,
        reason: Option<String>,
        pmid: Option<String>,
    ) -> DeliveryLogEntry {
        DeliveryLogEntry {
            at: self.now,
            function: self.nudge.function.clone(),
            kind: self.nudge.kind,
            stage: self.nudge.stage,
            channel: self.channel,
            account_id: self.nudge.account_id.clone(),
            contact_id: self
                .recipient
                .contact
                .as_ref()
                .map(|c| c.contact_id.clone())
                .or_else(|| self.contact_id.clone()),
            to: self.recipient.to.clone().unwrap_or_default(),
            subject: subject.to_string(),
            locale: self.recipient.context.locale.as_str().to_string(),
            status,
            reason,
            nudge_id: self.nudge.nudge_id.clone(),
            variant: self.nudge.variant.clone(),
            provider_message_id: pmid,
        }
    }

    /// A template defect: fail visibly rather than retry forever.
    async fn fail_template(&self, e: templates::TemplateError) -> Result<Outcome, DeliveryError> {
        let (store, n) = (&self.deps.store, self.nudge);
        warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, error = %e, "template error");
        let reason = "template_error";
        if store
            .claim(&n.account_id, &n.nudge_id, self.run_id, self.now, LEASE)
            .await?
            .is_some()
            && store
                .mark_failed(&n.account_id, &n.nudge_id, self.run_id, reason, self.now)
                .await?
        {
            store
                .append_log(&self.entry(LogStatus::Failed, "", Some(reason.into()), None))
                .await?;
        }
        Ok(Outcome::Failed {
            reason: reason.into(),
        })
    }

    /// Blocked by policy: one conditional write (`pending → blocked`) and a log line.
    async fn block(
        &self,
        reason: BlockReason,
        rendered: &Rendered,
    ) -> Result<Outcome, DeliveryError> {
        let (store, n) = (&self.deps.store, self.nudge);
        if !store
            .mark_blocked(&n.account_id, &n.nudge_id, reason.as_str(), self.now)
            .await?
        {
            return Ok(Outcome::Skipped);
        }
        store
            .append_log(&self.entry(
                LogStatus::Blocked,
                &rendered.subject,
                Some(reason.as_str().into()),
                None,
            ))
            .await?;
        info!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, reason = %reason, "nudge blocked");
        Ok(Outcome::Blocked(reason))
    }

    /// A follow-up goes out only if the original is still unopened.
    async fn cancel_if_original_opened(
        &self,
        rendered: &Rendered,
    ) -> Result<Option<Outcome>, DeliveryError> {
        let (store, n) = (&self.deps.store, self.nudge);
        let Some(original_id) = &n.follow_up_of else {
            return Ok(None);
        };
        let opened = store
            .nudge(&n.account_id, original_id)
            .await?
            .is_some_and(|o| o.engagement.opened_at.is_some() || o.engagement.clicked_at.is_some());
        if !opened {
            return Ok(None);
        }
        let reason = BlockReason::Opened;
        let cancelled = store
            .cancel_pending(
                &n.account_id,
                std::slice::from_ref(&n.nudge_id),
                reason.as_str(),
                self.now,
            )
            .await?;
        if cancelled != 1 {
            return Ok(Some(Outcome::Skipped));
        }
        store
            .append_log(&self.entry(
                LogStatus::Blocked,
                &rendered.subject,
                Some(reason.as_str().into()),
                None,
            ))
            .await?;
        Ok(Some(Outcome::Cancelled(reason)))
    }

    /// Customer-facing, non-urgent kinds wait for the recipient's local business hours (a
    /// daily job's 03:00 plan must not reach an inbox at 03:00). Policy and the frequency cap
    /// are checked once the window is open, for the day the message actually leaves.
    async fn defer_outside_window(&self) -> Result<Option<Outcome>, DeliveryError> {
        if self.nudge.send_window() != SendWindow::BusinessHours {
            return Ok(None);
        }
        let config = &self.deps.config;
        let open = config
            .business_hours
            .next_open(self.now, self.recipient.context.tz);
        if open <= self.now {
            return Ok(None);
        }
        let moved = self
            .deps
            .store
            .defer_pending(
                &self.nudge.account_id,
                &self.nudge.nudge_id,
                open,
                config.due_shards,
            )
            .await?;
        Ok(Some(if moved {
            Outcome::Deferred { until: open }
        } else {
            Outcome::Skipped
        }))
    }

    /// Policy (unsubscribe, suppression, pause, cap), then the cap reservation (step 4).
    async fn check_policy(&self, to: &str) -> Result<Verdict, DeliveryError> {
        let (deps, n) = (self.deps, self.nudge);
        let store = &deps.store;
        let customer = n.audience() == Audience::Customer;
        let suppression = if customer {
            store.suppression(to).await?.and_then(|s| s.reason)
        } else {
            None
        };
        let contact = self.recipient.contact.as_ref();
        let mut cap_state = match (n.kind.is_marketing(), contact) {
            (true, Some(c)) => Some(store.cap_state(&n.account_id, &c.contact_id).await?),
            _ => None,
        };
        let no_categories = Default::default();
        let no_sends = Default::default();
        let decision = policy::check(&PolicyInput {
            nudge_id: &n.nudge_id,
            kind: n.kind,
            audience: n.audience(),
            channel: self.channel,
            unsubscribed: contact.map(|c| &c.unsubscribed).unwrap_or(&no_categories),
            suppression,
            paused: self.account.as_ref().is_some_and(|a| a.is_paused(self.now)),
            cap: deps.config.cap,
            recent_marketing: cap_state.as_ref().map(|c| &c.sends).unwrap_or(&no_sends),
            tz: self.recipient.context.tz,
            now: self.now,
        });
        if let Err(reason) = decision {
            return Ok(Verdict::Block(reason));
        }
        // Optimistic on the contact's version: a concurrent reservation makes us re-read.
        let (Some(state), Some(c)) = (cap_state.as_mut(), contact) else {
            return Ok(Verdict::Send);
        };
        for _ in 0..CAP_RETRIES {
            if let Err(reason) = policy::cap_check(
                &state.sends,
                &n.nudge_id,
                self.now,
                self.recipient.context.tz,
                deps.config.cap,
            ) {
                return Ok(Verdict::Block(reason));
            }
            if store
                .reserve_cap(&n.account_id, &c.contact_id, &n.nudge_id, self.now, state)
                .await?
            {
                return Ok(Verdict::Send);
            }
            *state = store.cap_state(&n.account_id, &c.contact_id).await?;
        }
        // Heavy contention on one contact: leave it pending for the next run.
        Ok(Verdict::Later)
    }

    /// Step 5: the claim, the "sending" marker. `Err(outcome)` = not ours to send.
    async fn claim(&self) -> Result<Result<Nudge, Outcome>, DeliveryError> {
        let n = self.nudge;
        Ok(self
            .deps
            .store
            .claim(&n.account_id, &n.nudge_id, self.run_id, self.now, LEASE)
            .await?
            .ok_or(Outcome::Skipped))
    }

    /// A nudge sent before without an answer (a lost answer, a crashed run): if the provider's
    /// events show that message left, it is marked sent as of then, never sent again.
    async fn confirm_if_it_left(
        &self,
        rendered: &Rendered,
    ) -> Result<Option<Outcome>, DeliveryError> {
        let n = self.nudge;
        let Some(stored) = self.deps.store.nudge(&n.account_id, &n.nudge_id).await? else {
            return Ok(None);
        };
        let Some(left_at) = stored.engagement.left_at() else {
            return Ok(None);
        };
        let claimed = match self.claim().await? {
            Ok(claimed) => claimed,
            Err(outcome) => return Ok(Some(outcome)),
        };
        info!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, left_at = %left_at, "an unanswered send did leave (provider event): marked sent, not sent again");
        self.mark_sent_as_of(String::new(), claimed.attempts, rendered, left_at)
            .await
            .map(Some)
    }

    /// Step 6.
    async fn send(&self, to: &str, rendered: &Rendered) -> Result<String, SendError> {
        match self.channel {
            Channel::Email => {
                let email =
                    outgoing_email(self.deps, self.nudge, to, rendered, &self.vars, self.now);
                self.deps.mailer.send_email(&email).await
            }
            Channel::Sns => {
                self.deps
                    .notifier
                    .notify(&Notification {
                        topic_arn: to.to_string(),
                        subject: rendered.subject.clone(),
                        message: rendered.text.clone(),
                        tags: message_tags(self.nudge),
                    })
                    .await
            }
        }
    }

    /// Step 7: sent, back to pending for a retry, or failed.
    async fn mark(
        &self,
        sent: Result<String, SendError>,
        attempts: u32,
        rendered: &Rendered,
    ) -> Result<Outcome, DeliveryError> {
        let (deps, n, now, run_id) = (self.deps, self.nudge, self.now, self.run_id);
        let store = &deps.store;
        match sent {
            Ok(pmid) => self.mark_sent(pmid, attempts, rendered).await,
            Err(SendError::Throttled(msg)) => {
                // Over the account's sending rate: not this message's fault, so no attempt is
                // counted, and the next run (15 minutes on) tries again.
                self.retry_at(now, "provider_throttled", &msg, true).await?;
                warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, error = %redact(&msg), "provider throttled; left for the next run");
                Ok(Outcome::Throttled)
            }
            Err(SendError::Transient(msg)) if attempts < deps.config.max_attempts => {
                let exp = attempts.saturating_sub(1).min(10);
                let next = now + BACKOFF_BASE * 2i32.pow(exp);
                self.retry_at(next, "provider_transient", &msg, false)
                    .await?;
                warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, attempts, error = %redact(&msg), next_send_at = %next, "provider error; will retry");
                Ok(Outcome::Retry { next_send_at: next })
            }
            Err(SendError::Unknown(msg))
                if attempts < deps.config.max_attempts && resend_unanswered(deps, self.channel) =>
            {
                // Maybe sent: wait for the provider's events; without one by then, it did not
                // leave and is sent again (`confirm_if_it_left`).
                let next = now + CONFIRM_WAIT;
                self.retry_at(next, UNCONFIRMED, &msg, false).await?;
                warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, attempts, error = %redact(&msg), next_send_at = %next, "no answer from the provider; sent again then unless its events show it left");
                Ok(Outcome::Retry { next_send_at: next })
            }
            Err(e) => {
                let reason = match &e {
                    SendError::Transient(_) | SendError::Throttled(_) => {
                        "provider_retries_exhausted"
                    }
                    SendError::Rejected(_) => "provider_rejected",
                    // Maybe sent: never resent ("maybe missing" over "maybe twice").
                    SendError::Unknown(_) => UNKNOWN_OUTCOME,
                };
                let detail = redact(&e.to_string());
                warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, attempts, error = %detail, "nudge failed");
                if store
                    .mark_failed(&n.account_id, &n.nudge_id, run_id, reason, now)
                    .await?
                {
                    store
                        .append_log(&self.entry(
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

    /// Back to pending until `next`, with `why` and the redacted error; `refund_attempt`: the
    /// claim's attempt does not count.
    async fn retry_at(
        &self,
        next: DateTime<Utc>,
        why: &str,
        error: &str,
        refund_attempt: bool,
    ) -> Result<(), DeliveryError> {
        let n = self.nudge;
        self.deps
            .store
            .mark_retry(
                &n.account_id,
                &n.nudge_id,
                self.run_id,
                next,
                &format!("{why}: {}", redact(error)),
                refund_attempt,
                self.deps.config.due_shards,
            )
            .await?;
        Ok(())
    }

    async fn mark_sent(
        &self,
        pmid: String,
        attempts: u32,
        rendered: &Rendered,
    ) -> Result<Outcome, DeliveryError> {
        self.mark_sent_as_of(pmid, attempts, rendered, self.now)
            .await
    }

    /// Sent at `now` (the message left then): the mark, the message-id mapping, the counter,
    /// the log entry and the follow-up.
    async fn mark_sent_as_of(
        &self,
        pmid: String,
        attempts: u32,
        rendered: &Rendered,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DeliveryError> {
        let (deps, n) = (self.deps, self.nudge);
        let store = &deps.store;
        let logged_pmid = (!pmid.is_empty()).then(|| pmid.clone());
        let entry = self.entry(LogStatus::Sent, &rendered.subject, None, logged_pmid);
        let follow_up = (n.audience() == Audience::Customer && self.channel == Channel::Email)
            .then(|| {
                let tier = self
                    .account
                    .as_ref()
                    .and_then(|a| a.profile.as_ref())
                    .and_then(|p| p.tier);
                followup::follow_up_for(
                    n,
                    tier,
                    &rendered.subject,
                    now,
                    (self.recipient.context.tz, &deps.config.business_hours),
                )
            })
            .flatten();
        let mark = SentMark {
            owner: self.run_id,
            provider_message_id: &pmid,
            at: now,
            log: Some(&entry),
            follow_up: follow_up.as_ref(),
            shards: deps.config.due_shards,
        };
        if !store.mark_sent(&n.account_id, &n.nudge_id, &mark).await? {
            // Only a run that outlived its lease gets here; the run that took the nudge over
            // marks it sent on the provider's events (`confirm_if_it_left`).
            warn!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, "sent, but the lease was lost before the mark");
            return Ok(Outcome::Sent {
                provider_message_id: pmid,
            });
        }
        // Both only help afterwards: feedback finds the nudge by its tag too, and the counter
        // is a statistic.
        if self.channel == Channel::Email && !pmid.is_empty() {
            let r = MessageRef {
                account_id: n.account_id.clone(),
                nudge_id: n.nudge_id.clone(),
                kind: n.kind.as_str().into(),
                variant: n.variant.clone(),
            };
            store.record_message(&pmid, &r, now).await?;
        }
        store.count_sent(n.kind.as_str(), &n.variant).await?;
        info!(account_id = %n.account_id, nudge_id = %n.nudge_id, kind = %n.kind, attempts, "nudge sent");
        Ok(Outcome::Sent {
            provider_message_id: pmid,
        })
    }
}

/// How long an unanswered send waits for the provider's events before it is sent again. SES
/// publishes a message's `Send` event within seconds; this is one sweep interval.
pub const CONFIRM_WAIT: Duration = Duration::minutes(15);
/// The reason of a nudge waiting for its provider's events after an unanswered send.
pub const UNCONFIRMED: &str = "unconfirmed";

/// Whether a send whose answer never came may be sent again when no provider event shows that
/// it left: email when SES publishes its events to Nudge (a configuration set is configured),
/// CSM notifications always (SNS publishes no such events; an internal alert twice is better
/// than a red account never reported). Email without events stays `unknown_outcome`.
fn resend_unanswered(deps: &Deps, channel: Channel) -> bool {
    match channel {
        Channel::Sns => true,
        Channel::Email => deps.config.configuration_set.is_some(),
    }
}

/// A claimed nudge found by a run: if its lease expired, its run is gone (a lease outlives
/// every function's timeout) and its outcome unknown. Where the provider's events can tell
/// (see [`resend_unanswered`]), it goes back to pending and is delivered now: marked sent if
/// those events show it left, sent again if not. Otherwise it is marked failed and logged as
/// `unknown_outcome` instead of resent.
async fn resolve_claimed(
    deps: &Deps,
    extra: ExtraVars,
    nudge: &Nudge,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Outcome, DeliveryError> {
    let (Some(owner), Some(until)) = (&nudge.lease_owner, nudge.lease_until) else {
        return Ok(Outcome::Skipped);
    };
    if until >= now {
        return Ok(Outcome::Skipped);
    }
    if resend_unanswered(deps, nudge.channel()) {
        let released = deps
            .store
            .mark_retry(
                &nudge.account_id,
                &nudge.nudge_id,
                owner,
                now,
                &format!("{UNCONFIRMED}: the lease expired during a send"),
                false,
                deps.config.due_shards,
            )
            .await?;
        if !released {
            return Ok(Outcome::Skipped);
        }
        warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, "lease expired during a send: delivered again unless the provider's events show it left");
        // As `mark_retry` left it; the delivery's own strongly consistent read
        // (`confirm_if_it_left`, attempts > 0) sees the provider's events.
        let mut released = nudge.clone();
        released.status = NudgeStatus::Pending;
        released.send_at = now;
        released.lease_owner = None;
        released.lease_until = None;
        let d = Delivery::load(deps, extra, &released, now, run_id).await?;
        return d.run().await;
    }
    if !deps
        .store
        .expire_lease(&nudge.account_id, &nudge.nudge_id, owner, now)
        .await?
    {
        return Ok(Outcome::Skipped);
    }
    warn!(account_id = %nudge.account_id, nudge_id = %nudge.nudge_id, kind = %nudge.kind, "lease expired during a send: outcome unknown, not resent");
    let to = match nudge.audience() {
        Audience::Csm => deps.config.csm_topic_arn.clone().unwrap_or_default(),
        Audience::Customer => String::new(),
    };
    deps.store
        .append_log(&DeliveryLogEntry {
            at: now,
            function: nudge.function.clone(),
            kind: nudge.kind,
            stage: nudge.stage,
            channel: nudge.channel(),
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
