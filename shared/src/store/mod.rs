//! The `Store` port: everything Nudge keeps, in domain terms. The DynamoDB adapter lives in
//! `dynamo`; the single-table key layout in `schema`.
//!
//! The trait is split by capability (events, profiles, ...) so each capability's adapter code
//! stays in its own file; `Store` is the union every handler receives.

pub mod dynamo;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::events::{AccountProfile, ContactProfile};

#[derive(Debug, Error)]
pub enum StoreError {
    /// DynamoDB throttled us (or the request limit was hit): the caller may retry later.
    #[error("the table is throttling requests; retry later")]
    Throttled,
    /// Network/timeouts/5xx: retryable.
    #[error("the table is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (validation, permissions, a corrupt item): not retryable.
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Throttled | StoreError::Unavailable(_))
    }
}

/// A raw event as kept for recomputation (TTL'd).
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub account_id: String,
    pub event_id: String,
    pub event_type: &'static str,
    pub contact_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The event in its wire shape (JSON text).
    pub body: String,
    /// Epoch seconds after which DynamoDB may delete the item.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// Outcome of a last-writer-wins update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// A newer write (by `occurred_at`) already holds the item; nothing changed.
    Stale,
}

/// Usage counts to add to one account's day, aggregated over a batch so a batch costs one
/// write per (account, day) instead of one per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupDelta {
    pub events: u64,
    pub logins: u64,
    pub reports: u64,
    pub tickets_opened: u64,
    pub tickets_closed: u64,
    pub nps_sum: u64,
    pub nps_count: u64,
    pub features: BTreeMap<String, u64>,
    pub contacts: BTreeSet<String>,
}

impl RollupDelta {
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }
}

/// One day of usage for an account, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRollup {
    pub day: NaiveDate,
    pub events: u64,
    pub logins: u64,
    pub reports: u64,
    pub tickets_opened: u64,
    pub tickets_closed: u64,
    pub nps_sum: u64,
    pub nps_count: u64,
    pub features: BTreeMap<String, u64>,
    pub active_contacts: BTreeSet<String>,
}

/// Account state as stored: the profile plus what events changed about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub account_id: String,
    pub profile: Option<AccountProfile>,
    pub profile_at: Option<DateTime<Utc>>,
    /// Set by `customer_replied`, cleared by `automation_resumed`.
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub admin_contact_id: Option<String>,
    pub churned_at: Option<DateTime<Utc>>,
    pub renewed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub account_id: String,
    pub contact_id: String,
    pub profile: Option<ContactProfile>,
    pub profile_at: Option<DateTime<Utc>>,
    /// Unsubscribed categories; `"all"` stops every customer-facing email.
    pub unsubscribed: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    Active,
    Completed,
    Cancelled,
}

impl DeadlineStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadlineStatus::Active => "active",
            DeadlineStatus::Completed => "completed",
            DeadlineStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<DeadlineStatus> {
        [
            DeadlineStatus::Active,
            DeadlineStatus::Completed,
            DeadlineStatus::Cancelled,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A deadline as stored (`DL#<id>`); `updated_at` is the `occurred_at` of the event that last
/// changed it (last writer wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineRecord {
    pub deadline_id: String,
    pub contact_id: Option<String>,
    pub due_at: DateTime<Utc>,
    pub title: String,
    pub kind: Option<String>,
    pub link: Option<String>,
    pub status: DeadlineStatus,
    pub updated_at: DateTime<Utc>,
}

/// A state change on an account that is not a profile upsert.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountChange {
    Paused,
    Resumed,
    AdminChanged { contact_id: String },
    Churned,
    Renewed { renewal_date: Option<NaiveDate> },
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Conditional put keyed by (account, event_id): the de-duplication point.
    async fn insert_raw_event(&self, event: &RawEvent) -> Result<Inserted, StoreError>;
    /// Compensation when the event's effects could not be applied: the caller reports the
    /// event for retry, so the raw record must not make the retry look like a duplicate.
    async fn delete_raw_event(&self, account_id: &str, event_id: &str) -> Result<(), StoreError>;
    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        delta: &RollupDelta,
    ) -> Result<(), StoreError>;
    /// Records first occurrences (`feature:report_builder`, `report`, `step:import_data`); an
    /// existing first is never overwritten. Returns the keys that were new.
    async fn record_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    async fn firsts(&self, account_id: &str)
    -> Result<BTreeMap<String, DateTime<Utc>>, StoreError>;
    async fn rollups(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayRollup>, StoreError>;
    /// Raw events of an account (for recomputation), any order.
    async fn raw_events(&self, account_id: &str) -> Result<Vec<RawEvent>, StoreError>;
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;
    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;
    /// Last-writer-wins per kind of change (pause/resume share one clock).
    async fn change_account(
        &self,
        account_id: &str,
        change: &AccountChange,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;
    async fn unsubscribe(
        &self,
        account_id: &str,
        contact_id: &str,
        category: &str,
    ) -> Result<(), StoreError>;
    async fn account(&self, account_id: &str) -> Result<Option<AccountRecord>, StoreError>;
    async fn contact(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError>;
    async fn contacts(&self, account_id: &str) -> Result<Vec<ContactRecord>, StoreError>;
}

/// Everything a handler needs from the table.
pub trait Store: EventStore + ProfileStore {}
impl<T: EventStore + ProfileStore> Store for T {}
