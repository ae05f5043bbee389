//! The `Store` port: everything Nudge keeps, in domain terms. The DynamoDB adapter lives in
//! `dynamo`, the single-table key layout in `schema`; `memory` is an in-memory adapter with the
//! same conditional semantics, for fast use-case tests.
//!
//! The port is split by capability (events, profiles, nudges, sends, ...): each trait is small
//! enough to read at once, each capability's adapter code stays in its own file, and a caller
//! or a fake names only what it uses. `Store` is the union every handler receives (`Deps`).

pub mod agenda;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod dynamo;
pub mod erasure;
pub mod health;
pub mod memory;
pub mod schema;

pub use agenda::{AgendaStore, AgendaTask};
pub use health::{
    HealthPulse, HealthRecord, HealthSnapshot, HealthStore, IndexPage, IndexedAccount,
    ModelSelection, NpsAnswer, Satisfaction, TicketChange, TicketState,
};

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{DeliveryLogEntry, Member, Nudge, SuppressionReason};
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

/// What recording an event's raw record (`EVT#`, written in state `applying`) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// Recorded before and applied (a record from before raw records had a state counts as
    /// applied): nothing to do.
    Duplicate,
    /// Recorded before but never confirmed applied (a crash, a failed or refused write after
    /// the record): its effects are to be applied again, and its rollup counted once.
    Unfinished {
        since: DateTime<Utc>,
    },
}

/// At most this many events are counted with one rollup write (`count_applied`): with the
/// day's rollup, a DynamoDB transaction's 100 actions.
pub const COUNT_LIMIT: usize = 99;

/// At most this many contact ids are kept in a day's rollup (`contacts`), so the item stays
/// small however large the account. The health score's distinct active contacts over a
/// window are then at least min(true count, this): exact for any target up to it, which the
/// model's validation enforces.
pub const MAX_DAY_CONTACTS: usize = 100;

/// The events one [`EventStore::count_applied`] counts: records written `applying` earlier
/// to confirm, and records of events whose count is their only effect, created `applied` by
/// the count itself (no write of their own before it).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountedEvents<'a> {
    pub confirm: &'a [String],
    pub create: &'a [RawEvent],
}

impl CountedEvents<'_> {
    pub fn len(&self) -> usize {
        self.confirm.len() + self.create.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The outcome of [`EventStore::count_applied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// The delta was added, every record to confirm marked applied and every record to create
    /// written. `contacts_full`: the day already held [`MAX_DAY_CONTACTS`] contacts, so this
    /// delta's contacts were left out.
    Counted { contacts_full: bool },
    /// Nothing was written. `applied`: events counted already (a record to confirm that is no
    /// longer `applying`, a record to create that exists applied): duplicates, to count
    /// without. `unfinished`: records to create that exist still `applying` (an earlier
    /// attempt's), to confirm instead.
    Conflicts {
        applied: Vec<String>,
        unfinished: Vec<String>,
    },
}

/// Outcome of a last-writer-wins update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// A newer write (by `occurred_at`) already holds the item; nothing changed.
    Stale,
}

/// Outcome of a last-writer-wins profile upsert (`upsert_account`, `upsert_contact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// Written. `zone_before`: the time zone of the profile it replaced (`None`: there was
    /// none, or it had no zone), read from the write itself: deadline stages were planned in
    /// it, so a different one re-plans them.
    Applied { zone_before: Option<Tz> },
    /// A newer write (by `occurred_at`) already holds the item; nothing changed.
    Stale,
}

impl Upserted {
    pub fn applied(&self) -> Applied {
        match self {
            Upserted::Applied { .. } => Applied::Applied,
            Upserted::Stale => Applied::Stale,
        }
    }
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

    /// The delta without its contacts (the day's set is full).
    pub fn without_contacts(&self) -> RollupDelta {
        RollupDelta {
            contacts: BTreeSet::new(),
            ..self.clone()
        }
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
    /// Set by `customer_replied` (or an operator's `nudge pause`), cleared by
    /// `automation_resumed` (or `nudge resume`). Read it through [`AccountRecord::is_paused`].
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    /// An operator's pause may end by itself at this time; a customer's reply never does.
    #[serde(default)]
    pub paused_until: Option<DateTime<Utc>>,
    /// Why an operator paused the account (a customer reply records none).
    #[serde(default)]
    pub pause_reason: Option<String>,
    pub admin_contact_id: Option<String>,
    /// When the admin last changed (`admin_changed`'s time): a churn signal for health.
    #[serde(default)]
    pub admin_changed_at: Option<DateTime<Utc>>,
    pub churned_at: Option<DateTime<Utc>>,
    pub renewed_at: Option<DateTime<Utc>>,
}

impl ContactRecord {
    /// The contact with its role, if its profile is known.
    pub fn member(&self) -> Option<Member<'_>> {
        Some(Member {
            contact_id: &self.contact_id,
            role: self.profile.as_ref()?.role,
        })
    }
}

impl AccountRecord {
    /// Whether customer nudges are held at `now`: paused, and not past an operator's `until`.
    pub fn is_paused(&self, now: DateTime<Utc>) -> bool {
        self.paused && self.paused_until.is_none_or(|until| now < until)
    }

    /// Churned and not renewed since: nothing customer-success acts on any more.
    pub fn churned(&self) -> bool {
        self.churned_at
            .is_some_and(|c| self.renewed_at.is_none_or(|r| r < c))
    }
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
    /// A customer's reply pauses until resumed (`until` and `reason` none); an operator may
    /// give an end and a reason. Either replaces whatever pause was stored before.
    Paused {
        until: Option<DateTime<Utc>>,
        reason: Option<String>,
    },
    Resumed,
    AdminChanged {
        contact_id: String,
    },
    Churned,
    Renewed {
        renewal_date: Option<NaiveDate>,
    },
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Conditional put keyed by (account, event_id), in state `applying` since the event's
    /// `received_at`: the de-duplication point. An existing record is reported with its state.
    async fn insert_raw_event(&self, event: &RawEvent) -> Result<Inserted, StoreError>;
    /// Marks an event whose effects all held `applied` (an event without a rollup): a resend
    /// is then a plain duplicate. A missing record is left missing.
    async fn mark_applied(&self, account_id: &str, event_id: &str) -> Result<(), StoreError>;
    /// Adds `delta` (the usage of `events`, at most [`COUNT_LIMIT`]) to the day's rollup,
    /// marks the records to confirm `applied` and creates the records to create `applied`, as
    /// one atomic write that holds only if every record to confirm is still `applying` and
    /// none to create exists: a crash before it counts nothing, after it everything, so a
    /// resend counts each event exactly once.
    async fn count_applied(
        &self,
        account_id: &str,
        day: NaiveDate,
        delta: &RollupDelta,
        events: CountedEvents<'_>,
    ) -> Result<Counted, StoreError>;
    /// Adds `delta` to the day's rollup unconditionally (seeding history: benches, tests).
    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        delta: &RollupDelta,
    ) -> Result<(), StoreError>;
    /// Records first occurrences (`feature_report_builder`, `report`, `step_import_data`); an
    /// existing first is never overwritten (the first one seen wins). Returns the keys this call
    /// recorded (absent before) and those that already held exactly the given time: the same
    /// event applied again after a crash or a lost answer, whose milestones must still be
    /// planned (idempotently). The "first" that milestones act on: a later occurrence never
    /// counts as a first again.
    async fn record_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<BTreeSet<String>, StoreError>;
    /// Removes firsts a failed batch recorded (each only if it still holds the given time),
    /// so the client's resend records them, and acts on them, again.
    async fn forget_firsts(
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
    ) -> Result<Upserted, StoreError>;
    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Upserted, StoreError>;
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
    /// [`ProfileStore::account`], strongly consistent (twice the read units): for a decision
    /// that must see a write made a moment before, such as the zone deadline stages follow.
    async fn account_consistent(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountRecord>, StoreError>;
    /// [`ProfileStore::contact`], strongly consistent (see `account_consistent`).
    async fn contact_consistent(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError>;
    /// Every contact of the account, by id (one Query; for the rare plays that pick
    /// recipients by role).
    async fn contacts(&self, account_id: &str) -> Result<Vec<ContactRecord>, StoreError>;
}

/// Deadlines (`DL#<id>`) and the stage nudges planned for them.
#[async_trait]
pub trait DeadlineStore: Send + Sync {
    /// Last writer wins by `updated_at` (the event's `occurred_at`).
    async fn put_deadline(
        &self,
        account_id: &str,
        deadline: &DeadlineRecord,
    ) -> Result<Applied, StoreError>;
    /// Strongly consistent: the reminders feature decides on it whether its stage writes stand.
    async fn deadline(
        &self,
        account_id: &str,
        deadline_id: &str,
    ) -> Result<Option<DeadlineRecord>, StoreError>;
    /// Every deadline of the account, any status, by id (one Query over all of them, finished
    /// ones included). Strongly consistent: which stages to re-plan is decided on it.
    async fn deadlines(&self, account_id: &str) -> Result<Vec<DeadlineRecord>, StoreError>;
}

// ------------------------------------------------------------------------------- nudges --

/// Suppression state of one email address (keyed by the SHA-256 of the lowercased address).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// Set while the address is suppressed.
    pub reason: Option<SuppressionReason>,
    /// Soft bounces in a row (reset by a delivery).
    pub soft_streak: u32,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What SES said about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFeedback {
    HardBounce,
    Complaint,
    /// Suppresses once `limit` soft bounces came in a row.
    SoftBounce {
        limit: u32,
    },
    Delivered,
}

/// Marketing sends reserved for a contact (nudge id → time), with the version the optimistic
/// update conditions on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapState {
    pub sends: BTreeMap<String, DateTime<Utc>>,
    pub version: u64,
}

/// Where a provider message id leads back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub account_id: String,
    pub nudge_id: String,
    pub kind: String,
    pub variant: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngagementKind {
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
    /// SES accepted the message (`Send` event).
    Accepted,
}

impl EngagementKind {
    pub fn attribute(&self) -> &'static str {
        match self {
            EngagementKind::Delivered => "delivered_at",
            EngagementKind::Opened => "opened_at",
            EngagementKind::Clicked => "clicked_at",
            EngagementKind::Bounced => "bounced_at",
            EngagementKind::Complained => "complained_at",
            EngagementKind::Accepted => "accepted_at",
        }
    }
    /// The STATS counter this engagement increments (first occurrence per nudge only).
    pub fn counter(&self) -> Option<&'static str> {
        match self {
            EngagementKind::Delivered => Some("delivered"),
            EngagementKind::Opened => Some("opened"),
            EngagementKind::Clicked => Some("clicked"),
            EngagementKind::Bounced => Some("bounced"),
            EngagementKind::Complained => Some("complained"),
            // `sent` counts it, once, when the send is marked.
            EngagementKind::Accepted => None,
        }
    }
}

/// Counters per (kind, variant): unique per nudge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    pub kind: String,
    pub variant: String,
    pub sent: u64,
    pub delivered: u64,
    pub opened: u64,
    pub clicked: u64,
    pub bounced: u64,
    pub complained: u64,
}

/// What erasing one contact changed (`nudge erase-contact`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ContactErasure {
    /// Pending nudges to the contact, cancelled (reason [`ERASED`]): nothing more is sent.
    pub cancelled: usize,
    /// Nudges to the contact whose template variables were removed (the cancelled included).
    pub nudges_redacted: usize,
    /// Nudges being sent at this moment (claimed): left to finish, their variables removed.
    pub in_flight: usize,
    /// Delivery-log entries of the contact whose `to` and `subject` were emptied.
    pub log_entries_redacted: usize,
    /// Frequency-cap reservations, gone with the contact item.
    pub cap_reservations: usize,
    /// Raw events (`EVT#`) of the contact whose personal properties were removed (see
    /// `events::erase`): address, name and phone, comments, deadline titles and links. Type,
    /// ids, times and scores stay, so rollups and replays still add up.
    pub raw_events_redacted: usize,
    /// The contact's deadlines (`DL#`) whose title and link were removed.
    pub deadlines_redacted: usize,
    /// NPS comments of the contact removed: from the satisfaction item (`SAT`; the score
    /// stays) and where another nudge's variables quoted them (a CSM alert).
    pub comments_removed: usize,
}

/// The reason a nudge cancelled by an erasure records.
pub const ERASED: &str = "erased";

/// Erasure of a person's data on request.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Removes `contact_id`'s personal data from the account: cancels their pending nudges,
    /// empties the variables of every nudge to them and the `to` and `subject` of their
    /// delivery-log entries (the rest stays, so counts still add up), removes their NPS
    /// comments (satisfaction item and quotes, scores kept), their deadlines' titles and links
    /// (the deadline, its due time and its contact id stay: its stages must not fall to the
    /// admin) and the personal properties of their raw events; then deletes the contact item
    /// (profile, unsubscribes, cap state) last, so a failed run can simply be repeated (what
    /// is already removed counts nothing). Raw events are found by their `contact_id`, NPS
    /// answers through their raw events (an answer whose raw event has expired is not found).
    /// The suppression of their address is kept (it holds only the address's hash). `None`:
    /// no such contact, nothing changed.
    async fn erase_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactErasure>, StoreError>;
}

/// Everything a handler needs from the table: the union of the capabilities.
pub trait Store:
    EventStore
    + ProfileStore
    + DeadlineStore
    + NudgeStore
    + SendStore
    + DeliveryLogStore
    + SuppressionStore
    + CapStore
    + EngagementStore
    + CheckpointStore
    + HealthStore
    + AgendaStore
    + ErasureStore
{
}

impl<T> Store for T where
    T: EventStore
        + ProfileStore
        + DeadlineStore
        + NudgeStore
        + SendStore
        + DeliveryLogStore
        + SuppressionStore
        + CapStore
        + EngagementStore
        + CheckpointStore
        + HealthStore
        + AgendaStore
        + ErasureStore
{
}

/// Nudges as features plan them and the sweep finds them. Every state change of a nudge is a
/// conditional write (see `delivery::send`); the send-time transitions are in [`SendStore`].
#[async_trait]
pub trait NudgeStore: Send + Sync {
    /// Creates a pending nudge unless one with its id exists. Returns whether it was created.
    async fn put_nudge(&self, nudge: &Nudge, shards: u32) -> Result<bool, StoreError>;
    /// Moves a nudge that is still pending to `send_at` (its send window opens then). False
    /// if it is no longer pending.
    async fn defer_pending(
        &self,
        account_id: &str,
        nudge_id: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError>;
    /// Puts a nudge that was cancelled with `reason` back to pending at `send_at` (its due
    /// index entry in that time's bucket): a deadline stage one zone change dropped and the
    /// next brings back, under the same id. False if it is not cancelled with that reason.
    async fn reopen_cancelled(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError>;
    /// Cancels the nudges that are still pending; returns how many were cancelled.
    async fn cancel_pending(
        &self,
        account_id: &str,
        nudge_ids: &[String],
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError>;
    /// Strongly consistent (a caller decides on it whether to deliver).
    async fn nudge(&self, account_id: &str, nudge_id: &str) -> Result<Option<Nudge>, StoreError>;
    /// The account's nudges, ordered by id (strongly consistent, as below).
    async fn nudges(&self, account_id: &str) -> Result<Vec<Nudge>, StoreError>;
    /// The account's nudges whose id starts with `prefix` (a feature's id scheme, e.g. every
    /// stage of one deadline), any status, ordered by id. Strongly consistent: which of them to
    /// cancel or plan again is decided on it.
    async fn nudges_with_prefix(
        &self,
        account_id: &str,
        prefix: &str,
    ) -> Result<Vec<Nudge>, StoreError>;
    /// Pending (and claimed, to find expired leases) nudges on the `due` GSI in `buckets`
    /// (every shard) with `send_at <= now`, whoever planned them, ordered by
    /// (send_at, account, id).
    async fn due_nudges(
        &self,
        buckets: &[String],
        shards: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Nudge>, StoreError>;
}

/// What marking a nudge sent writes besides the nudge, so that no crash can leave a sent nudge
/// without its delivery-log entry or its follow-up.
#[derive(Debug, Clone, Copy)]
pub struct SentMark<'a> {
    pub owner: &'a str,
    pub provider_message_id: &'a str,
    pub at: DateTime<Utc>,
    /// The send's delivery-log entry.
    pub log: Option<&'a DeliveryLogEntry>,
    /// The follow-up the send plans: created, or left as it is if it exists and is no longer
    /// pending; a pending one is written again (the same nudge).
    pub follow_up: Option<&'a Nudge>,
    /// Due-index shards (the follow-up's GSI keys).
    pub shards: u32,
}

impl<'a> SentMark<'a> {
    /// The mark alone, without log entry or follow-up.
    pub fn new(owner: &'a str, provider_message_id: &'a str, at: DateTime<Utc>) -> Self {
        SentMark {
            owner,
            provider_message_id,
            at,
            log: None,
            follow_up: None,
            shards: 1,
        }
    }
}

/// The send-time transitions of a nudge: lease, then exactly one outcome.
#[async_trait]
pub trait SendStore: Send + Sync {
    /// Leases a pending nudge to `owner` until `now + lease`; `None` if it is not pending (sent,
    /// or another run holds it). Counts an attempt.
    async fn claim(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<Nudge>, StoreError>;
    /// Sent, with its log entry and follow-up in the same write (all or nothing): condition =
    /// still leased by `mark.owner` (even if a resolver marked the lease's outcome unknown
    /// meanwhile: the truth wins). Repeating the same mark changes nothing more.
    async fn mark_sent(
        &self,
        account_id: &str,
        nudge_id: &str,
        mark: &SentMark<'_>,
    ) -> Result<bool, StoreError>;
    /// Back to pending at `next_send_at` (GSI keys re-set), condition = leased by `owner`.
    /// `refund_attempt`: the claim's attempt does not count (the provider throttled the send).
    #[allow(clippy::too_many_arguments)]
    async fn mark_retry(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        next_send_at: DateTime<Utc>,
        error: &str,
        refund_attempt: bool,
        shards: u32,
    ) -> Result<bool, StoreError>;
    /// Failed for good, condition = leased by `owner`.
    async fn mark_failed(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// An expired lease of `seen_owner`: outcome unknown, marked failed (never resent).
    async fn expire_lease(
        &self,
        account_id: &str,
        nudge_id: &str,
        seen_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Blocked by policy, condition = still pending.
    async fn mark_blocked(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The delivery log (`nudge simulate`'s contract).
#[async_trait]
pub trait DeliveryLogStore: Send + Sync {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError>;
    /// One account's log, oldest first.
    async fn delivery_log(&self, account_id: &str) -> Result<Vec<DeliveryLogEntry>, StoreError>;
    /// One account's log from `since` on (entries whose time is at or after it), oldest
    /// first: a key range, so the cost follows the entries read, not the account's history.
    async fn delivery_log_since(
        &self,
        account_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DeliveryLogEntry>, StoreError>;
    /// Every account's log (a Scan: for simulate and tests, not for production paths).
    async fn all_delivery_log(&self) -> Result<Vec<DeliveryLogEntry>, StoreError>;
}

/// Suppressed addresses, from SES feedback.
#[async_trait]
pub trait SuppressionStore: Send + Sync {
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError>;
    /// Applies one piece of feedback; the new state, or `None` when it changed nothing (a
    /// bounce after a complaint, a delivery without a soft-bounce streak).
    async fn record_address_feedback(
        &self,
        address: &str,
        feedback: AddressFeedback,
        at: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError>;
}

/// Frequency-cap reservations per contact (optimistic, versioned).
#[async_trait]
pub trait CapStore: Send + Sync {
    /// The contact's reservations, strongly consistent (the version must be current).
    async fn cap_state(&self, account_id: &str, contact_id: &str) -> Result<CapState, StoreError>;
    /// Adds `nudge_id` at `now` to the contact's reservations (pruned to 8 days), if the
    /// version is still `expected.version`. False on a concurrent update (re-read and re-check).
    async fn reserve_cap(
        &self,
        account_id: &str,
        contact_id: &str,
        nudge_id: &str,
        now: DateTime<Utc>,
        expected: &CapState,
    ) -> Result<bool, StoreError>;
}

/// Provider message ids, engagement (first occurrence per nudge) and the per-kind counters.
#[async_trait]
pub trait EngagementStore: Send + Sync {
    async fn record_message(
        &self,
        provider_message_id: &str,
        r: &MessageRef,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn message_ref(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<MessageRef>, StoreError>;
    /// Records the first `what` on the nudge and counts it in the kind's stats. Returns false
    /// for a repeat (a second open) or an unknown nudge.
    async fn record_engagement(
        &self,
        r: &MessageRef,
        what: EngagementKind,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn count_sent(&self, kind: &str, variant: &str) -> Result<(), StoreError>;
    /// Every (kind, variant)'s counters, ordered by kind then variant.
    async fn kind_stats(&self) -> Result<Vec<KindStats>, StoreError>;
}

/// Where scheduled functions left off.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn checkpoint(&self, function: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Moves the checkpoint forward (never back).
    async fn set_checkpoint(&self, function: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}
