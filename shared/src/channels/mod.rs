//! Channels: the `Mailer` (SES v2, raw MIME) and `Notifier` (SNS) ports the delivery sweep
//! sends through, the `Queue` (SQS) port features fan work out over, and their SDK adapters.

pub mod lazy;
pub mod mime;
pub mod pace;
pub mod queue;
pub mod ses;
pub mod sns;
pub mod sqs;

pub use queue::{MemoryQueue, NoQueue, Queue, WorkItem};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

/// Removes anything that looks like an email address or a phone number from provider error
/// text before it is logged or stored (SES names the address in some rejections).
pub fn redact(s: &str) -> String {
    s.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '<' || c == '>')
        .map(|w| {
            let core = w.trim_end_matches(|c: char| {
                c.is_whitespace() || c == ',' || c == ';' || c == '<' || c == '>'
            });
            let tail = &w[core.len()..];
            let digits = core.chars().filter(|c| c.is_ascii_digit()).count();
            if core.contains('@') || (digits >= 7 && core.starts_with('+')) {
                format!("[redacted]{tail}")
            } else {
                w.to_string()
            }
        })
        .collect::<String>()
        .chars()
        .take(500)
        .collect()
}

/// An email ready to leave: rendered, addressed, with its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: String,
    /// Where replies go instead of `from` (a red account's risk email: the CSM).
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra headers, e.g. `List-Unsubscribe`, `List-Unsubscribe-Post`.
    pub headers: Vec<(String, String)>,
    /// SES message tags (kind, variant, nudge id) so feedback events map back to the nudge.
    pub tags: Vec<(String, String)>,
    /// The `Date` header: the delivery run's "now", not the wall clock.
    pub date: DateTime<Utc>,
    /// The `Message-ID` header, without angle brackets ([`mime::message_id`]).
    pub message_id: String,
}

/// A message to an SNS topic (CSM alerts and tasks).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub topic_arn: String,
    pub subject: String,
    pub message: String,
    /// Sent as string message attributes (the nudge's kind and reference), so subscribers can
    /// filter and a message can be traced back to its nudge, as email tags do for SES.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum SendError {
    /// Surely not sent: the provider refused it for the sending rate. Not the message's fault:
    /// it is retried without counting an attempt, and the run stops sending.
    #[error("provider throttled the send: {0}")]
    Throttled(String),
    /// Surely not sent (the connection never reached the provider): retry later.
    #[error("provider temporarily unavailable: {0}")]
    Transient(String),
    /// Maybe sent: the request may have reached the provider (a server error, a timeout, an
    /// unreadable answer). SES and SNS have no idempotency key, so resending could send twice:
    /// the send path records `unknown_outcome` instead.
    #[error("provider outcome unknown: {0}")]
    Unknown(String),
    /// The provider refused this message (bad address, not verified, ...): retrying won't help.
    #[error("provider rejected the message: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email; returns the provider's message id.
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, SendError>;
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes one notification; returns the provider's message id.
    async fn notify(&self, n: &Notification) -> Result<String, SendError>;
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_removes_addresses_and_phone_numbers() {
        let r = redact(
            "Email address is not verified. The following identities failed the check in region US-EAST-1: a.b@example.jp, <c@d.com> +819012345678",
        );
        assert!(!r.contains('@'), "{r}");
        assert!(!r.contains("819012345678"), "{r}");
        assert!(r.contains("failed the check"));
    }
}
