//! Delivery: the one path every nudge takes (record, claim, render, check policy, send, mark),
//! and the `Mailer` (SES v2) / `Notifier` (SNS) ports it sends through.

pub mod bench;
pub mod feedback;
pub mod followup;
pub mod log;
pub mod mime;
pub mod nudge;
pub mod policy;
pub mod send;
pub mod ses;
pub mod sns;
pub mod unsubscribe;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use log::{DeliveryLogEntry, LogStatus};
pub use nudge::{Audience, Channel, Engagement, Nudge, NudgeKind, NudgeStatus};
pub use policy::{BlockReason, SuppressionReason};
pub use send::{Outcome, RunReport, deliver, deliver_new, run_due};

use crate::store::StoreError;
use crate::templates::TemplateError;

/// Why a delivery step could not complete (the nudge stays where it was, for the next run).
#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl DeliveryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Store(e) => e.is_retryable(),
            DeliveryError::Template(_) => false,
        }
    }
}

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

/// A message to an SNS topic (CSM alerts and tasks) or an SMS to a phone number.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub target: NotifyTarget,
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    Topic(String),
    Sms(String),
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum SendError {
    /// The provider throttled us or was unavailable: retry later.
    #[error("provider temporarily unavailable: {0}")]
    Transient(String),
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
