//! SES feedback: the configuration set publishes bounce, complaint, delivery, open and click
//! events to an SNS topic that invokes `ingest` (same binary, SNS event path).
//!
//! Parsing is pure ([`parse_message`]); [`apply`] updates suppression (by hashed address)
//! and engagement (on the nudge, found through the `MSG#<message id>` mapping or the `nref`
//! tag) plus the per-kind stats. Rules:
//! - permanent bounce → the address is suppressed for email (CSM alerts over SNS continue);
//! - complaint → the address is suppressed for everything customer-facing;
//! - transient/undetermined bounce → soft-bounce streak; suppressed after
//!   `config.soft_bounce_limit` in a row; a delivery resets the streak;
//! - delivery / open / click → first occurrence recorded on the nudge and counted once.
//!
//! Feedback is trusted only from where it must come from ([`check_origin`]): the SNS topic the
//! configuration set publishes to (`NUDGE_FEEDBACK_TOPIC_ARN`), mail tagged with our
//! configuration set (`NUDGE_CONFIGURATION_SET`) and sent by our account
//! (`NUDGE_SENDING_ACCOUNT_ID`). Anything else (another topic subscribed to the function, a
//! forged message, another account's SES) is logged without addresses and ignored: a forged
//! bounce must never suppress a customer. With one of the three unset, nothing is applied.
//!
//! A record that cannot be parsed is logged and skipped (SNS would redeliver the whole event
//! if we failed it); a store error that may pass fails the invocation so Lambda retries it
//! (every update is idempotent except the soft-bounce streak, which may count a retry twice).

use std::collections::BTreeMap;

use aws_lambda_events::sns::SnsEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::DeliveryError;
use super::message::parse_nudge_ref_tag;
use crate::Deps;
use crate::config::Config;
use crate::store::{AddressFeedback, EngagementKind, MessageRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    HardBounce,
    SoftBounce,
    Complaint,
    Delivery,
    Open,
    Click,
    Reject,
    /// SES accepted the message: the proof that a send whose answer was lost did leave.
    Send,
    /// DeliveryDelay, Rendering Failure, Subscription, ...: recorded in the summary only.
    Other,
}

impl FeedbackKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedbackKind::HardBounce => "hard_bounce",
            FeedbackKind::SoftBounce => "soft_bounce",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Delivery => "delivery",
            FeedbackKind::Open => "open",
            FeedbackKind::Click => "click",
            FeedbackKind::Reject => "reject",
            FeedbackKind::Send => "send",
            FeedbackKind::Other => "other",
        }
    }
}

/// One SES event, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackEvent {
    pub kind: FeedbackKind,
    /// SES's `mail.messageId` (= the id `SendEmail` returned).
    pub message_id: String,
    pub at: DateTime<Utc>,
    /// The addresses concerned (bounced/complained/delivered recipients; else the destination).
    pub recipients: Vec<String>,
    pub tags: BTreeMap<String, Vec<String>>,
    /// `mail.sendingAccountId`.
    pub sending_account_id: Option<String>,
}

impl FeedbackEvent {
    /// The configuration set SES sent the mail with (its `ses:configuration-set` tag; event
    /// publishing always sets it).
    pub fn configuration_set(&self) -> Option<&str> {
        tag(self, "ses:configuration-set")
    }
}

/// Why a feedback record is not trusted. Messages name no address.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ForeignFeedback {
    #[error("{0} is not configured: SES feedback cannot be checked, so none is applied")]
    NotConfigured(&'static str),
    #[error("the SNS topic is not the configured feedback topic")]
    Topic,
    #[error("the mail was not sent with the configured configuration set")]
    ConfigurationSet,
    #[error("the mail was not sent by the configured account")]
    Account,
}

/// Whether the record of `topic_arn` carrying `e` comes from our own SES: the configured
/// feedback topic, configuration set and sending account, all three.
pub fn check_origin(
    config: &Config,
    topic_arn: &str,
    e: &FeedbackEvent,
) -> Result<(), ForeignFeedback> {
    fn expected<'a>(
        value: &'a Option<String>,
        name: &'static str,
    ) -> Result<&'a str, ForeignFeedback> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(ForeignFeedback::NotConfigured(name))
    }
    let topic = expected(&config.feedback_topic_arn, "NUDGE_FEEDBACK_TOPIC_ARN")?;
    let set = expected(&config.configuration_set, "NUDGE_CONFIGURATION_SET")?;
    let account = expected(&config.sending_account_id, "NUDGE_SENDING_ACCOUNT_ID")?;
    if topic_arn != topic {
        return Err(ForeignFeedback::Topic);
    }
    if e.configuration_set() != Some(set) {
        return Err(ForeignFeedback::ConfigurationSet);
    }
    if e.sending_account_id.as_deref() != Some(account) {
        return Err(ForeignFeedback::Account);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeedbackParseError {
    #[error("the message is not JSON")]
    NotJson,
    #[error("the message has no eventType/notificationType")]
    NoType,
    #[error("the message has no mail.messageId")]
    NoMessageId,
}

fn ts(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn addresses(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    r.get("emailAddress")
                        .and_then(Value::as_str)
                        .or_else(|| r.as_str())
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the SNS `Message` of SES event publishing (`eventType`) or of identity notifications
/// (`notificationType`). `fallback_at` is the SNS timestamp.
pub fn parse_message(
    message: &str,
    fallback_at: DateTime<Utc>,
) -> Result<FeedbackEvent, FeedbackParseError> {
    let v: Value = serde_json::from_str(message).map_err(|_| FeedbackParseError::NotJson)?;
    let ty = v
        .get("eventType")
        .or_else(|| v.get("notificationType"))
        .and_then(Value::as_str)
        .ok_or(FeedbackParseError::NoType)?;
    let mail = v.get("mail").cloned().unwrap_or(Value::Null);
    let message_id = mail
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(FeedbackParseError::NoMessageId)?
        .to_string();
    let destination = addresses(mail.get("destination"));
    let tags: BTreeMap<String, Vec<String>> = mail
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    let section = |name: &str| v.get(name).cloned().unwrap_or(Value::Null);
    let (kind, detail) = match ty {
        "Bounce" => {
            let b = section("bounce");
            let kind = match b.get("bounceType").and_then(Value::as_str) {
                Some("Permanent") => FeedbackKind::HardBounce,
                _ => FeedbackKind::SoftBounce,
            };
            (kind, b)
        }
        "Complaint" => (FeedbackKind::Complaint, section("complaint")),
        "Delivery" => (FeedbackKind::Delivery, section("delivery")),
        "Open" => (FeedbackKind::Open, section("open")),
        "Click" => (FeedbackKind::Click, section("click")),
        "Reject" => (FeedbackKind::Reject, section("reject")),
        "Send" => (FeedbackKind::Send, section("send")),
        _ => (FeedbackKind::Other, Value::Null),
    };
    let mut recipients = match kind {
        FeedbackKind::HardBounce | FeedbackKind::SoftBounce => {
            addresses(detail.get("bouncedRecipients"))
        }
        FeedbackKind::Complaint => addresses(detail.get("complainedRecipients")),
        FeedbackKind::Delivery => addresses(detail.get("recipients")),
        _ => Vec::new(),
    };
    if recipients.is_empty() {
        recipients = destination;
    }
    let at = ts(detail.get("timestamp"))
        .or_else(|| ts(mail.get("timestamp")))
        .unwrap_or(fallback_at);
    let sending_account_id = mail
        .get("sendingAccountId")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(FeedbackEvent {
        kind,
        message_id,
        at,
        recipients,
        tags,
        sending_account_id,
    })
}

/// Parses every record of an SNS event: (record index, result).
pub fn parse_sns(event: &SnsEvent) -> Vec<Result<FeedbackEvent, FeedbackParseError>> {
    event
        .records
        .iter()
        .map(|r| parse_message(&r.sns.message, r.sns.timestamp))
        .collect()
}

/// What one SNS invocation did (the Lambda's return value).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedbackSummary {
    pub records: usize,
    pub applied: usize,
    pub skipped: usize,
    /// Records from an unexpected topic, configuration set or account: not applied.
    pub ignored: usize,
    /// Events per kind.
    pub events: BTreeMap<String, usize>,
    /// Addresses newly (or again) suppressed.
    pub suppressed: usize,
    /// First engagements recorded on a nudge.
    pub engagement: usize,
}

fn tag<'a>(e: &'a FeedbackEvent, name: &str) -> Option<&'a str> {
    e.tags.get(name).and_then(|v| v.first()).map(String::as_str)
}

async fn message_ref(deps: &Deps, e: &FeedbackEvent) -> Result<Option<MessageRef>, DeliveryError> {
    if let Some(r) = deps.store.message_ref(&e.message_id).await? {
        return Ok(Some(r));
    }
    Ok(tag(e, "nref")
        .and_then(parse_nudge_ref_tag)
        .map(|(account_id, nudge_id)| MessageRef {
            account_id,
            nudge_id,
            kind: tag(e, "nudge_kind").unwrap_or("unknown").to_string(),
            variant: tag(e, "variant").unwrap_or("a").to_string(),
        }))
}

/// Applies one event.
pub async fn apply_event(
    deps: &Deps,
    e: &FeedbackEvent,
    summary: &mut FeedbackSummary,
) -> Result<(), DeliveryError> {
    let store = &deps.store;
    let address_feedback = match e.kind {
        FeedbackKind::HardBounce => Some(AddressFeedback::HardBounce),
        FeedbackKind::Complaint => Some(AddressFeedback::Complaint),
        FeedbackKind::SoftBounce => Some(AddressFeedback::SoftBounce {
            limit: deps.config.soft_bounce_limit,
        }),
        FeedbackKind::Delivery => Some(AddressFeedback::Delivered),
        _ => None,
    };
    if let Some(fb) = address_feedback {
        for addr in &e.recipients {
            let state = store.record_address_feedback(addr, fb, e.at).await?;
            if fb != AddressFeedback::Delivered && state.is_some_and(|s| s.reason.is_some()) {
                summary.suppressed += 1;
            }
        }
    }
    let engagement = match e.kind {
        FeedbackKind::Delivery => Some(EngagementKind::Delivered),
        FeedbackKind::Open => Some(EngagementKind::Opened),
        FeedbackKind::Click => Some(EngagementKind::Clicked),
        FeedbackKind::HardBounce => Some(EngagementKind::Bounced),
        FeedbackKind::Complaint => Some(EngagementKind::Complained),
        FeedbackKind::Send => Some(EngagementKind::Accepted),
        _ => None,
    };
    if let Some(what) = engagement {
        match message_ref(deps, e).await? {
            Some(r) => {
                if store.record_engagement(&r, what, e.at).await? {
                    summary.engagement += 1;
                }
                info!(account_id = %r.account_id, nudge_id = %r.nudge_id, kind = %r.kind, feedback = e.kind.as_str(), "SES feedback");
            }
            None => {
                info!(
                    feedback = e.kind.as_str(),
                    "SES feedback for a message Nudge does not know"
                );
            }
        }
    }
    Ok(())
}

/// Handles one SNS invocation of SES feedback.
pub async fn handle_sns(deps: &Deps, event: &SnsEvent) -> Result<FeedbackSummary, DeliveryError> {
    let mut summary = FeedbackSummary {
        records: event.records.len(),
        ..Default::default()
    };
    for (i, (record, parsed)) in event.records.iter().zip(parse_sns(event)).enumerate() {
        if let Ok(e) = &parsed
            && let Err(why) = check_origin(&deps.config, &record.sns.topic_arn, e)
        {
            warn!(record = i, feedback = e.kind.as_str(), reason = %why, "SES feedback from an unexpected origin; ignored");
            summary.ignored += 1;
            continue;
        }
        match parsed {
            Ok(e) => {
                *summary.events.entry(e.kind.as_str().into()).or_default() += 1;
                match apply_event(deps, &e, &mut summary).await {
                    Ok(()) => summary.applied += 1,
                    Err(err) if err.is_retryable() => return Err(err),
                    Err(err) => {
                        warn!(record = i, error = %err, "SES feedback record not applied; skipped");
                        summary.skipped += 1;
                    }
                }
            }
            Err(err) => {
                warn!(record = i, error = %err, "unparsable SES feedback record; skipped");
                summary.skipped += 1;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fixture(name: &str) -> SnsEvent {
        let text = match name {
            "bounce-permanent" => include_str!("../../../tests/events/ses-bounce-permanent.json"),
            "bounce-transient" => include_str!("../../../tests/events/ses-bounce-transient.json"),
            "complaint" => include_str!("../../../tests/events/ses-complaint.json"),
            "delivery" => include_str!("../../../tests/events/ses-delivery.json"),
            "open" => include_str!("../../../tests/events/ses-open.json"),
            "click" => include_str!("../../../tests/events/ses-click.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    fn one(name: &str) -> FeedbackEvent {
        let ev = fixture(name);
        let mut parsed = parse_sns(&ev);
        assert_eq!(parsed.len(), 1);
        parsed.remove(0).unwrap()
    }

    #[test]
    fn fixtures_parse_into_typed_events() {
        let b = one("bounce-permanent");
        assert_eq!(b.kind, FeedbackKind::HardBounce);
        assert_eq!(b.recipients, vec!["gone@example.jp"]);
        assert_eq!(
            b.message_id,
            "010001877a7b5f5e-1a2b3c4d-0000-0000-0000-000000000000-000000"
        );
        assert_eq!(b.at, Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 2).unwrap());
        assert_eq!(one("bounce-transient").kind, FeedbackKind::SoftBounce);
        let c = one("complaint");
        assert_eq!(c.kind, FeedbackKind::Complaint);
        assert_eq!(c.recipients, vec!["angry@example.jp"]);
        assert_eq!(one("delivery").kind, FeedbackKind::Delivery);
        let o = one("open");
        assert_eq!(o.kind, FeedbackKind::Open);
        assert_eq!(o.at, Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap());
        assert_eq!(one("click").kind, FeedbackKind::Click);
        assert_eq!(
            parse_nudge_ref_tag(tag(&o, "nref").unwrap()),
            Some(("acme".into(), "up:1".into()))
        );
        assert_eq!(tag(&o, "nudge_kind"), Some("upsell_offer"));
    }

    /// The configuration the fixtures were published under.
    fn ours() -> Config {
        Config::from_lookup(|k| match k {
            "NUDGE_TABLE" => Some("t".into()),
            "NUDGE_FEEDBACK_TOPIC_ARN" => {
                Some("arn:aws:sns:ap-northeast-1:123456789012:nudge-ses-feedback".into())
            }
            "NUDGE_CONFIGURATION_SET" => Some("nudge-events".into()),
            "NUDGE_SENDING_ACCOUNT_ID" => Some("123456789012".into()),
            _ => None,
        })
        .unwrap()
    }

    fn topic_of(name: &str) -> String {
        fixture(name).records[0].sns.topic_arn.clone()
    }

    #[test]
    fn feedback_is_trusted_only_from_our_topic_configuration_set_and_account() {
        let config = ours();
        for name in ["bounce-permanent", "complaint", "delivery", "open", "click"] {
            assert_eq!(
                check_origin(&config, &topic_of(name), &one(name)),
                Ok(()),
                "{name}"
            );
        }
        let bounce = one("bounce-permanent");
        let topic = topic_of("bounce-permanent");
        assert_eq!(
            check_origin(
                &config,
                "arn:aws:sns:ap-northeast-1:123456789012:someone-elses-topic",
                &bounce
            ),
            Err(ForeignFeedback::Topic)
        );
        let mut other_set = bounce.clone();
        other_set
            .tags
            .insert("ses:configuration-set".into(), vec!["marketing".into()]);
        assert_eq!(
            check_origin(&config, &topic, &other_set),
            Err(ForeignFeedback::ConfigurationSet)
        );
        // Identity notifications carry no tags: not ours to trust either.
        let mut untagged = bounce.clone();
        untagged.tags.clear();
        assert_eq!(
            check_origin(&config, &topic, &untagged),
            Err(ForeignFeedback::ConfigurationSet)
        );
        let mut other_account = bounce.clone();
        other_account.sending_account_id = Some("210987654321".into());
        assert_eq!(
            check_origin(&config, &topic, &other_account),
            Err(ForeignFeedback::Account)
        );
        other_account.sending_account_id = None;
        assert_eq!(
            check_origin(&config, &topic, &other_account),
            Err(ForeignFeedback::Account)
        );
        let mut unset = config.clone();
        unset.sending_account_id = None;
        assert_eq!(
            check_origin(&unset, &topic, &bounce),
            Err(ForeignFeedback::NotConfigured("NUDGE_SENDING_ACCOUNT_ID"))
        );
        let why = ForeignFeedback::Topic.to_string();
        assert!(!why.contains('@'), "{why}");
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        assert_eq!(parse_message("nope", t), Err(FeedbackParseError::NotJson));
        assert_eq!(parse_message("{}", t), Err(FeedbackParseError::NoType));
        assert_eq!(
            parse_message(r#"{"eventType":"Open","mail":{}}"#, t),
            Err(FeedbackParseError::NoMessageId)
        );
        let e = parse_message(
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Undetermined"},"mail":{"messageId":"m","destination":["x@example.jp"]}}"#,
            t,
        )
        .unwrap();
        assert_eq!(e.kind, FeedbackKind::SoftBounce);
        assert_eq!(e.recipients, vec!["x@example.jp"]);
        assert_eq!(e.at, t);
        let e = parse_message(
            r#"{"eventType":"Rendering Failure","mail":{"messageId":"m"}}"#,
            t,
        )
        .unwrap();
        assert_eq!(e.kind, FeedbackKind::Other);
    }
}
