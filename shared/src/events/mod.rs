//! Product events: the ingest v1 contract (types, parsing, validation, signatures).
//! PROVISIONAL: replaced by the full module from the `events` branch.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    pub const ALL: [EventType; 1] = [EventType::Login];
    pub fn as_str(&self) -> &'static str {
        "login"
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    Ja,
    En,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Executive,
    User,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    HighTouch,
    LowTouch,
    TechTouch,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Urgent,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Csm {
    pub name: String,
    pub email: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountProfile {
    pub name: String,
    pub plan: String,
    pub industry: String,
    pub tier: Option<Tier>,
    pub csm: Option<Csm>,
    pub timezone: chrono_tz::Tz,
    pub locale: Locale,
    pub contract_start: NaiveDate,
    pub renewal_date: NaiveDate,
    pub renewals: u32,
    pub arr: f64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactProfile {
    pub email: String,
    pub phone: Option<String>,
    pub name: String,
    pub role: Role,
    pub timezone: Option<chrono_tz::Tz>,
    pub locale: Option<Locale>,
}
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineSet {
    pub deadline_id: String,
    pub due_at: DateTime<FixedOffset>,
    pub title: String,
    pub kind: Option<String>,
    pub link: Option<String>,
}
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
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    pub occurred_at: DateTime<FixedOffset>,
    pub payload: EventPayload,
}
impl Event {
    pub fn event_type(&self) -> EventType {
        EventType::Login
    }
    pub fn occurred_at_utc(&self) -> DateTime<Utc> {
        self.occurred_at.with_timezone(&Utc)
    }
    pub fn to_wire(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_EVENTS: usize = 500;
pub const SIGNATURE_HEADER: &str = "x-nudge-signature";
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("batch has {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("{0}")]
    Malformed(String),
}
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing")]
    Missing,
}
pub fn parse_batch(
    _body: &[u8],
    _now: DateTime<Utc>,
) -> Result<Vec<Result<Event, EventError>>, EnvelopeError> {
    Err(EnvelopeError::Malformed("provisional".into()))
}
pub fn parse_event(_v: &serde_json::Value, _now: DateTime<Utc>) -> Result<Event, EventError> {
    Err(EventError {
        field: "x".into(),
        message: "provisional".into(),
    })
}
pub fn sign(_secret: &[u8], _unix_secs: i64, _body: &[u8]) -> String {
    String::new()
}
pub fn verify(
    _secret: &[u8],
    _header: Option<&str>,
    _body: &[u8],
    _now_unix: i64,
) -> Result<(), SignatureError> {
    Err(SignatureError::Missing)
}
