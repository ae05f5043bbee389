//! The health capabilities of the store: the account index the daily run walks, the
//! satisfaction state ingest keeps (open tickets, NPS answers), one score snapshot per account
//! per day, and the scoring models as versioned data.
//!
//! Scores and models are kept as JSON text: their shape belongs to `health`, which the store
//! (below it) does not import.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{AccountRecord, DayRollup, StoreError};
use crate::events::Severity;

/// `health_record` returns the tickets opened in this many days up to its last day, and every
/// ticket still open (the score looks back 30 days at most; older closed tickets stay stored).
pub const TICKET_DAYS_READ: i64 = 90;
/// `health_record` returns this many NPS answers, newest first.
pub const NPS_ANSWERS_READ: usize = 10;
/// An NPS comment is kept for the score at most this many characters long: the satisfaction
/// item is read for every account every day and rewritten by every ticket and NPS event, so
/// its size is what they cost. The whole comment stays in the raw event (`EVT#<event_id>`).
pub const NPS_COMMENT_CHARS: usize = 280;

/// An account as the account index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedAccount {
    pub account_id: String,
    /// When Nudge first heard of the account (its first `account_upserted`).
    pub first_seen: DateTime<Utc>,
}

/// A support ticket as the satisfaction state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketState {
    pub ticket_id: String,
    pub severity: Severity,
    pub opened_at: DateTime<Utc>,
    /// `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
}

/// One NPS answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpsAnswer {
    pub score: u8,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What changed about a ticket (from `support_ticket_opened` / `support_ticket_closed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketChange {
    Opened {
        severity: Severity,
    },
    /// Severity if the event carried one (a close seen before its open still records it).
    Closed {
        severity: Option<Severity>,
    },
}

/// The satisfaction state of an account: tickets opened recently or still open, and the latest
/// NPS answers (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Satisfaction {
    pub tickets: Vec<TicketState>,
    pub nps: Vec<NpsAnswer>,
}

/// One day's score of an account under one model (`shadow` = the shadow model's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    pub account_id: String,
    /// The account-local day scored.
    pub day: NaiveDate,
    pub model_version: String,
    pub shadow: bool,
    pub score: u8,
    /// `green`, `yellow`, `red`.
    pub band: String,
    pub provisional: bool,
    /// The whole score with its drivers (JSON of `health::HealthScore`).
    pub detail: String,
}

/// What the health playbooks last acted on for one account (`PULSE`), so a band change acts
/// once (a re-run of the same day finds the same change again, and the same nudge ids) and an
/// upsell once per renewal. Read with the daily record; written only when it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPulse {
    /// The band (`green`, `yellow`, `red`) of the latest non-provisional score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// The account-local day `band` was first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
    /// The band `band` changed from (`None`: the first scored band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_band: Option<String>,
    /// The renewal date the upsell offer was last planned for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsell_for: Option<NaiveDate>,
}

/// Everything the daily run reads for one account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthRecord {
    pub account: Option<AccountRecord>,
    /// Rollups of the account-local days asked for, oldest first.
    pub days: Vec<DayRollup>,
    pub firsts: BTreeMap<String, DateTime<Utc>>,
    pub satisfaction: Satisfaction,
    pub pulse: HealthPulse,
}

/// One page of an account-index shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexPage {
    /// By account id.
    pub accounts: Vec<IndexedAccount>,
    /// Where the next page starts (pass it as `after`); `None` = the shard is done.
    pub next: Option<String>,
}

/// Which stored models score accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSelection {
    /// `None` = the built-in default model.
    pub active: Option<String>,
    pub shadow: Option<String>,
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Lists the account in the account index (shard by its id); the first call's time stays
    /// its `first_seen`.
    async fn index_account(
        &self,
        account_id: &str,
        seen_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<(), StoreError>;
    /// The accounts of one index shard (`0..shards`).
    async fn indexed_accounts(
        &self,
        shard: u32,
        shards: u32,
    ) -> Result<Vec<IndexedAccount>, StoreError>;
    /// The account's index entry (its `first_seen`), if it is listed.
    async fn indexed_account(
        &self,
        account_id: &str,
        shards: u32,
    ) -> Result<Option<IndexedAccount>, StoreError>;
    /// At most `limit` accounts of one shard with ids after `after`, by id: a worker walks a
    /// shard page by page and hands the rest on when its time is up.
    async fn indexed_accounts_page(
        &self,
        shard: u32,
        shards: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IndexPage, StoreError>;
    /// Applies a ticket change (idempotent per ticket and change).
    async fn record_ticket(
        &self,
        account_id: &str,
        ticket_id: &str,
        change: &TicketChange,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Adds an NPS answer, keyed by its event id (a replay adds nothing).
    async fn record_nps(
        &self,
        account_id: &str,
        event_id: &str,
        answer: &NpsAnswer,
    ) -> Result<(), StoreError>;
    /// Profile, rollups of `from..=to` (account-local days), firsts and satisfaction.
    async fn health_record(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HealthRecord, StoreError>;
    /// Replaces the account's playbook state.
    async fn put_pulse(&self, account_id: &str, pulse: &HealthPulse) -> Result<(), StoreError>;
    /// Writes (or overwrites: a re-run of the same day replaces it) one snapshot; kept until
    /// `expires_at` (epoch seconds).
    async fn put_snapshot(
        &self,
        snapshot: &HealthSnapshot,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// The account's snapshots of `from..=to`, both models, oldest first.
    async fn snapshots(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<HealthSnapshot>, StoreError>;
    /// Stores a model version; versions are immutable: false if it already exists.
    async fn put_model(
        &self,
        version: &str,
        json: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn model(&self, version: &str) -> Result<Option<String>, StoreError>;
    async fn model_versions(&self) -> Result<Vec<String>, StoreError>;
    async fn model_selection(&self) -> Result<ModelSelection, StoreError>;
    async fn select_models(&self, selection: &ModelSelection) -> Result<(), StoreError>;
}
