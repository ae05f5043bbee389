//! Product events: the ingest v1 contract (types, parsing, validation, signatures).
//!
//! Everything here is pure: no I/O and no wall clock. "Now" is passed in so replays and the
//! simulator get the same answers as production. The wire shape is documented in
//! ARCHITECTURE.md, "Ingest contract (v1)"; [`parse_event`] and [`Event::to_wire`] are inverses.

pub mod erase;
mod parse;
mod signature;
mod wire;

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use crate::domain::account::{Locale, Role, Tier, UnknownValue};
pub use parse::{is_slug, parse_batch, parse_event};
pub use signature::*;

/// Largest accepted request body; checked before any JSON parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest accepted batch.
pub const MAX_EVENTS: usize = 500;

/// The `type` of an event on the wire.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventType {
    AccountUpserted,
    ContactUpserted,
    Login,
    FeatureUsed,
    ReportCreated,
    SetupStepCompleted,
    AdminChanged,
    SupportTicketOpened,
    SupportTicketClosed,
    NpsResponse,
    CustomerReplied,
    AutomationResumed,
    DeadlineSet,
    DeadlineCompleted,
    DeadlineCancelled,
    ContractRenewed,
    Churned,
    Unsubscribed,
}

impl EventType {
    pub const ALL: &'static [EventType] = <EventType as strum::VariantArray>::VARIANTS;

    /// The wire name (`"feature_used"`).
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Types that are about one person and therefore must carry `contact_id`.
    pub fn requires_contact(&self) -> bool {
        matches!(
            self,
            EventType::AdminChanged
                | EventType::ContactUpserted
                | EventType::Unsubscribed
                | EventType::Login
                | EventType::FeatureUsed
                | EventType::ReportCreated
        )
    }
}

/// Support ticket severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Urgent,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Urgent => "urgent",
        }
    }
}

impl FromStr for Severity {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Urgent,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
        .ok_or(UnknownValue)
    }
}

/// The account's customer-success manager (signs human follow-ups, receives alerts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csm {
    pub name: String,
    pub email: String,
}

/// Properties of `account_upserted`. Serde derives produce the wire `properties` shape, so the
/// store can persist a profile as-is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountProfile {
    pub name: String,
    pub plan: String,
    pub industry: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csm: Option<Csm>,
    pub timezone: Tz,
    pub locale: Locale,
    pub contract_start: NaiveDate,
    pub renewal_date: NaiveDate,
    pub renewals: u32,
    pub arr: f64,
}

/// Properties of `contact_upserted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactProfile {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Tz>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

/// Properties of `deadline_set`. The recipient is the event's `contact_id` (optional: without
/// one the account's admin is reminded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSet {
    pub deadline_id: String,
    pub due_at: DateTime<FixedOffset>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The typed `properties` of an event, one variant per [`EventType`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    AccountUpserted(AccountProfile),
    ContactUpserted(ContactProfile),
    Login,
    FeatureUsed {
        feature: String,
    },
    ReportCreated,
    SetupStepCompleted {
        step: String,
    },
    AdminChanged {
        previous_contact_id: Option<String>,
    },
    SupportTicketOpened {
        ticket_id: String,
        severity: Severity,
    },
    SupportTicketClosed {
        ticket_id: String,
        severity: Option<Severity>,
    },
    NpsResponse {
        score: u8,
        comment: Option<String>,
    },
    CustomerReplied,
    AutomationResumed,
    DeadlineSet(DeadlineSet),
    DeadlineCompleted {
        deadline_id: String,
    },
    DeadlineCancelled {
        deadline_id: String,
    },
    ContractRenewed {
        renewal_date: Option<NaiveDate>,
    },
    Churned,
    Unsubscribed {
        category: Option<String>,
    },
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::AccountUpserted(_) => EventType::AccountUpserted,
            EventPayload::ContactUpserted(_) => EventType::ContactUpserted,
            EventPayload::Login => EventType::Login,
            EventPayload::FeatureUsed { .. } => EventType::FeatureUsed,
            EventPayload::ReportCreated => EventType::ReportCreated,
            EventPayload::SetupStepCompleted { .. } => EventType::SetupStepCompleted,
            EventPayload::AdminChanged { .. } => EventType::AdminChanged,
            EventPayload::SupportTicketOpened { .. } => EventType::SupportTicketOpened,
            EventPayload::SupportTicketClosed { .. } => EventType::SupportTicketClosed,
            EventPayload::NpsResponse { .. } => EventType::NpsResponse,
            EventPayload::CustomerReplied => EventType::CustomerReplied,
            EventPayload::AutomationResumed => EventType::AutomationResumed,
            EventPayload::DeadlineSet(_) => EventType::DeadlineSet,
            EventPayload::DeadlineCompleted { .. } => EventType::DeadlineCompleted,
            EventPayload::DeadlineCancelled { .. } => EventType::DeadlineCancelled,
            EventPayload::ContractRenewed { .. } => EventType::ContractRenewed,
            EventPayload::Churned => EventType::Churned,
            EventPayload::Unsubscribed { .. } => EventType::Unsubscribed,
        }
    }
}

/// One validated product event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    /// Kept with the sender's offset: "the morning of" is local to the customer.
    pub occurred_at: DateTime<FixedOffset>,
    pub payload: EventPayload,
}

/// A first occurrence ingest has just recorded (absent before, see
/// `store::EventStore::record_firsts`): the key (`feature_dashboard`, `report`,
/// `step_import_data`) and the batch's earliest event that made it.
#[derive(Debug, Clone, Copy)]
pub struct NewFirst<'a> {
    pub key: &'a str,
    pub event: &'a Event,
}

/// Whose time zone an applied event changed, within its account: what ingest hands to the
/// features' zone hooks (deadline stages are planned at the recipient's local times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneChange {
    /// A contact's own zone (`contact_upserted`), including one set or removed.
    Contact(String),
    /// The account's zone (`account_upserted`): recipients without a zone of their own.
    Account,
    /// Another admin (`admin_changed`): reminders that name no contact go to them.
    Admin,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    pub fn occurred_at_utc(&self) -> DateTime<Utc> {
        self.occurred_at.with_timezone(&Utc)
    }
}

/// The whole request is rejected (nothing in it is looked at further).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// HTTP 413.
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// HTTP 413.
    #[error("batch has {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    /// HTTP 400.
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl EnvelopeError {
    /// The HTTP status the ingest handler should answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            EnvelopeError::TooLarge { .. } | EnvelopeError::TooManyEvents { .. } => 413,
            EnvelopeError::Malformed(_) => 400,
        }
    }
}

/// Why one event was rejected; `field` is a path like `properties.score`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        EventError {
            field: field.into(),
            message: message.into(),
        }
    }
}
