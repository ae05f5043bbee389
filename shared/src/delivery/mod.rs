//! Delivery: the one path every nudge takes (record, claim, render, check policy, send, mark),
//! and the `Mailer` (SES v2) / `Notifier` (SNS) ports it sends through.

pub mod mime;
pub mod ses;
pub mod sns;

use async_trait::async_trait;
use thiserror::Error;

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
