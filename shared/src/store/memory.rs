//! An in-memory `Store`: the same ports as the DynamoDB adapter with the same conditional
//! semantics, for use-case tests that run in milliseconds (no services) and for local tools.
//!
//! It mirrors what the DynamoDB adapter (`dynamo/`) does, condition for condition:
//! `put_nudge` only if absent, `claim` only if pending, the `mark_*` transitions only while
//! the lease owner matches, last-writer-wins upserts by time, versioned cap reservations,
//! `due_nudges` over the `due` index (pending and claimed nudges, by bucket, `send_at <= now`),
//! checkpoints that never move back. Timestamps are kept at the table's precision
//! (milliseconds; the delivery log's `at` in whole seconds, as its JSON holds it), so what a
//! test reads back is what DynamoDB would return. Every call suspends once before its atomic
//! step, like a request, so concurrent runs interleave as they do against the table.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};

use super::schema;
use super::{
    AccountChange, AccountRecord, AddressFeedback, Applied, CapState, CapStore, CheckpointStore,
    ContactRecord, DayRollup, DeadlineRecord, DeadlineStore, DeliveryLogStore, EngagementKind,
    EngagementStore, EventStore, Inserted, KindStats, MessageRef, NudgeStore, ProfileStore,
    RawEvent, RollupDelta, SendStore, StoreError, Suppression, SuppressionStore,
};
use crate::domain::policy::prune_reservations;
use crate::domain::{DeliveryLogEntry, Nudge, NudgeStatus, SuppressionReason, UNKNOWN_OUTCOME};
use crate::events::{AccountProfile, ContactProfile};

/// Every map behind one lock: each method is one atomic step, like one conditional write.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere (a failed test assertion) must not hide the state from the rest.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Key = (String, String);

#[derive(Debug, Default)]
struct State {
    raw_events: BTreeMap<Key, RawEvent>,
    rollups: BTreeMap<(String, NaiveDate), DayRollup>,
    firsts: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
    accounts: BTreeMap<String, AccountState>,
    contacts: BTreeMap<Key, ContactState>,
    deadlines: BTreeMap<Key, DeadlineRecord>,
    nudges: BTreeMap<Key, StoredNudge>,
    /// Keyed by (account, `schema::log_sk`): one entry per (time, nudge), like the table.
    log: BTreeMap<Key, DeliveryLogEntry>,
    /// Keyed by `schema::address_pk` (hashed, case-folded).
    suppressions: BTreeMap<String, SuppressionState>,
    messages: BTreeMap<String, MessageRef>,
    /// Keyed by `schema::stats_sk`, the table's order.
    stats: BTreeMap<String, KindStats>,
    checkpoints: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct AccountState {
    profile: Option<AccountProfile>,
    paused: bool,
    paused_at: Option<DateTime<Utc>>,
    admin_contact_id: Option<String>,
    churned_at: Option<DateTime<Utc>>,
    renewed_at: Option<DateTime<Utc>>,
    renewal_date: Option<NaiveDate>,
    /// One last-writer-wins clock per kind of change (`profile_at` is also read).
    clocks: BTreeMap<&'static str, DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct ContactState {
    profile: Option<ContactProfile>,
    profile_at: Option<DateTime<Utc>>,
    unsubscribed: BTreeSet<String>,
    cap_sends: BTreeMap<String, DateTime<Utc>>,
    /// `None` until the first reservation (the table has no `cap_version` then).
    cap_version: Option<u64>,
}

#[derive(Debug)]
struct StoredNudge {
    nudge: Nudge,
    /// The `due` GSI partition while the nudge is on the index (its `gsi1pk`).
    due: Option<String>,
}

#[derive(Debug, Default)]
struct SuppressionState {
    suppressed: bool,
    reason: Option<SuppressionReason>,
    soft_streak: u32,
    updated_at: Option<DateTime<Utc>>,
}

impl SuppressionState {
    fn view(&self) -> Suppression {
        Suppression {
            reason: self.reason.filter(|_| self.suppressed),
            soft_streak: self.soft_streak,
            updated_at: self.updated_at,
        }
    }
}

/// One suspension point per call, as a request to the table is: concurrent callers (two
/// sweeps) interleave between store calls as they would against DynamoDB, while each call
/// stays one atomic step.
async fn request() {
    struct Once(bool);
    impl Future for Once {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    Once(false).await
}

/// A time at the table's precision (timestamps are stored as millisecond strings, and
/// conditions compare those strings).
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

fn key(a: &str, b: &str) -> Key {
    (a.to_string(), b.to_string())
}

/// The `due` partition of a nudge, as `dynamo::nudge_item::gsi_keys` computes it.
fn due_partition(nudge: &Nudge, at: DateTime<Utc>, shards: u32) -> String {
    let item_key = format!(
        "{}/{}",
        schema::account_pk(&nudge.account_id),
        schema::nudge_sk(&nudge.nudge_id)
    );
    schema::due_partition(at, &item_key, shards)
}

impl State {
    /// The nudge if `condition` holds (a conditional UpdateItem on an existing item).
    fn nudge_if(
        &mut self,
        account_id: &str,
        nudge_id: &str,
        condition: impl FnOnce(&Nudge) -> bool,
    ) -> Option<&mut StoredNudge> {
        self.nudges
            .get_mut(&key(account_id, nudge_id))
            .filter(|s| condition(&s.nudge))
    }

    /// Last writer wins: applies `set` if the account's `clock` is absent or older than `at`.
    fn account_lww(
        &mut self,
        account_id: &str,
        clock: &'static str,
        at: DateTime<Utc>,
        set: impl FnOnce(&mut AccountState),
    ) -> Applied {
        let at = ms(at);
        if let Some(a) = self.accounts.get(account_id)
            && a.clocks.get(clock).is_some_and(|c| *c >= at)
        {
            return Applied::Stale;
        }
        let a = self.accounts.entry(account_id.to_string()).or_default();
        a.clocks.insert(clock, at);
        set(a);
        Applied::Applied
    }

    fn add_stats(&mut self, kind: &str, variant: &str, counter: &str) {
        let s = self
            .stats
            .entry(schema::stats_sk(kind, variant))
            .or_default();
        s.kind = kind.to_string();
        s.variant = variant.to_string();
        let c = match counter {
            "sent" => &mut s.sent,
            "delivered" => &mut s.delivered,
            "opened" => &mut s.opened,
            "clicked" => &mut s.clicked,
            "bounced" => &mut s.bounced,
            "complained" => &mut s.complained,
            // Counters are `EngagementKind::counter` names and "sent"; the table would hold
            // any other under its own name, which `kind_stats` does not read.
            _ => return,
        };
        *c += 1;
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn insert_raw_event(&self, event: &RawEvent) -> Result<Inserted, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(&event.account_id, &event.event_id);
        if s.raw_events.contains_key(&k) {
            return Ok(Inserted::Duplicate);
        }
        let mut stored = event.clone();
        stored.occurred_at = ms(stored.occurred_at);
        stored.received_at = ms(stored.received_at);
        s.raw_events.insert(k, stored);
        Ok(Inserted::New)
    }

    async fn delete_raw_event(&self, account_id: &str, event_id: &str) -> Result<(), StoreError> {
        request().await;
        self.lock().raw_events.remove(&key(account_id, event_id));
        Ok(())
    }

    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        d: &RollupDelta,
    ) -> Result<(), StoreError> {
        request().await;
        let counters = [
            d.events,
            d.logins,
            d.reports,
            d.tickets_opened,
            d.tickets_closed,
            d.nps_sum,
            d.nps_count,
        ];
        // The adapter sends no request when there is nothing to ADD (no item is created).
        if counters.iter().all(|c| *c == 0) && d.features.is_empty() && d.contacts.is_empty() {
            return Ok(());
        }
        let mut s = self.lock();
        let r = s
            .rollups
            .entry((account_id.to_string(), day))
            .or_insert_with(|| DayRollup {
                day,
                ..Default::default()
            });
        r.events += d.events;
        r.logins += d.logins;
        r.reports += d.reports;
        r.tickets_opened += d.tickets_opened;
        r.tickets_closed += d.tickets_closed;
        r.nps_sum += d.nps_sum;
        r.nps_count += d.nps_count;
        for (f, n) in &d.features {
            *r.features.entry(f.clone()).or_insert(0) += n;
        }
        r.active_contacts.extend(d.contacts.iter().cloned());
        Ok(())
    }

    async fn record_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        request().await;
        if firsts.is_empty() {
            return Ok(());
        }
        let mut s = self.lock();
        let stored = s.firsts.entry(account_id.to_string()).or_default();
        for (k, at) in firsts {
            stored.entry(k.clone()).or_insert(ms(*at));
        }
        Ok(())
    }

    async fn firsts(
        &self,
        account_id: &str,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        request().await;
        Ok(self
            .lock()
            .firsts
            .get(account_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn rollups(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayRollup>, StoreError> {
        request().await;
        if from > to {
            return Ok(Vec::new());
        }
        let s = self.lock();
        let range = (account_id.to_string(), from)..=(account_id.to_string(), to);
        Ok(s.rollups.range(range).map(|(_, r)| r.clone()).collect())
    }

    async fn raw_events(&self, account_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.raw_events
            .iter()
            .filter(|((a, _), _)| a == account_id)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

#[async_trait]
impl ProfileStore for MemoryStore {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        request().await;
        Ok(self.lock().account_lww(account_id, "profile_at", at, |a| {
            a.profile = Some(profile.clone());
        }))
    }

    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        request().await;
        let at = ms(at);
        let mut s = self.lock();
        let k = key(account_id, contact_id);
        if s.contacts
            .get(&k)
            .is_some_and(|c| c.profile_at.is_some_and(|p| p >= at))
        {
            return Ok(Applied::Stale);
        }
        let c = s.contacts.entry(k).or_default();
        c.profile = Some(profile.clone());
        c.profile_at = Some(at);
        Ok(Applied::Applied)
    }

    async fn change_account(
        &self,
        account_id: &str,
        change: &AccountChange,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        request().await;
        let mut s = self.lock();
        let stored_at = ms(at);
        Ok(match change {
            AccountChange::Paused => s.account_lww(account_id, "paused_clock", at, |a| {
                a.paused = true;
                a.paused_at = Some(stored_at);
            }),
            AccountChange::Resumed => {
                s.account_lww(account_id, "paused_clock", at, |a| a.paused = false)
            }
            AccountChange::AdminChanged { contact_id } => {
                s.account_lww(account_id, "admin_clock", at, |a| {
                    a.admin_contact_id = Some(contact_id.clone());
                })
            }
            AccountChange::Churned => s.account_lww(account_id, "churn_clock", at, |a| {
                a.churned_at = Some(stored_at);
            }),
            AccountChange::Renewed { renewal_date } => {
                s.account_lww(account_id, "renew_clock", at, |a| {
                    a.renewed_at = Some(stored_at);
                    if let Some(d) = renewal_date {
                        a.renewal_date = Some(*d);
                    }
                })
            }
        })
    }

    async fn unsubscribe(
        &self,
        account_id: &str,
        contact_id: &str,
        category: &str,
    ) -> Result<(), StoreError> {
        request().await;
        self.lock()
            .contacts
            .entry(key(account_id, contact_id))
            .or_default()
            .unsubscribed
            .insert(category.to_string());
        Ok(())
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.accounts.get(account_id).map(|a| {
            let mut profile = a.profile.clone();
            // contract_renewed may carry a new renewal date after the profile was written.
            if let (Some(p), Some(d)) = (profile.as_mut(), a.renewal_date) {
                p.renewal_date = p.renewal_date.max(d);
            }
            AccountRecord {
                account_id: account_id.to_string(),
                profile,
                profile_at: a.clocks.get("profile_at").copied(),
                paused: a.paused,
                paused_at: a.paused_at,
                admin_contact_id: a.admin_contact_id.clone(),
                churned_at: a.churned_at,
                renewed_at: a.renewed_at,
            }
        }))
    }

    async fn contact(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.contacts
            .get(&key(account_id, contact_id))
            .map(|c| ContactRecord {
                account_id: account_id.to_string(),
                contact_id: contact_id.to_string(),
                profile: c.profile.clone(),
                profile_at: c.profile_at,
                unsubscribed: c.unsubscribed.clone(),
            }))
    }
}

#[async_trait]
impl DeadlineStore for MemoryStore {
    async fn put_deadline(
        &self,
        account_id: &str,
        deadline: &DeadlineRecord,
    ) -> Result<Applied, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(account_id, &deadline.deadline_id);
        let at = ms(deadline.updated_at);
        if s.deadlines.get(&k).is_some_and(|d| d.updated_at >= at) {
            return Ok(Applied::Stale);
        }
        let mut stored = deadline.clone();
        stored.due_at = ms(stored.due_at);
        stored.updated_at = at;
        s.deadlines.insert(k, stored);
        Ok(Applied::Applied)
    }

    async fn deadline(
        &self,
        account_id: &str,
        deadline_id: &str,
    ) -> Result<Option<DeadlineRecord>, StoreError> {
        request().await;
        Ok(self
            .lock()
            .deadlines
            .get(&key(account_id, deadline_id))
            .cloned())
    }
}

#[async_trait]
impl NudgeStore for MemoryStore {
    async fn put_nudge(&self, nudge: &Nudge, shards: u32) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(&nudge.account_id, &nudge.nudge_id);
        if s.nudges.contains_key(&k) {
            return Ok(false);
        }
        // What `put_nudge` writes: the planning fields only.
        let mut stored = nudge.clone();
        stored.send_at = ms(stored.send_at);
        stored.created_at = ms(stored.created_at);
        stored.lease_owner = None;
        stored.lease_until = None;
        stored.provider_message_id = None;
        stored.sent_at = None;
        stored.engagement = Default::default();
        // A nudge planned late lands in the bucket of its creation (see `gsi_keys`).
        let due = (stored.status == NudgeStatus::Pending)
            .then(|| due_partition(nudge, nudge.send_at.max(nudge.created_at), shards));
        s.nudges.insert(k, StoredNudge { nudge: stored, due });
        Ok(true)
    }

    async fn defer_pending(
        &self,
        account_id: &str,
        nudge_id: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| n.status == NudgeStatus::Pending) else {
            return Ok(false);
        };
        n.nudge.send_at = ms(send_at);
        n.due = Some(due_partition(&n.nudge, send_at, shards));
        Ok(true)
    }

    async fn cancel_pending(
        &self,
        account_id: &str,
        nudge_ids: &[String],
        reason: &str,
        _at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        request().await;
        let mut s = self.lock();
        let mut cancelled = 0;
        for id in nudge_ids {
            if let Some(n) = s.nudge_if(account_id, id, |n| n.status == NudgeStatus::Pending) {
                n.nudge.status = NudgeStatus::Cancelled;
                n.nudge.reason = Some(reason.to_string());
                n.due = None;
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    async fn nudge(&self, account_id: &str, nudge_id: &str) -> Result<Option<Nudge>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.nudges
            .get(&key(account_id, nudge_id))
            .map(|n| n.nudge.clone()))
    }

    async fn nudges(&self, account_id: &str) -> Result<Vec<Nudge>, StoreError> {
        request().await;
        self.nudges_with_prefix(account_id, "").await
    }

    async fn nudges_with_prefix(
        &self,
        account_id: &str,
        prefix: &str,
    ) -> Result<Vec<Nudge>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.nudges
            .iter()
            .filter(|((a, id), _)| a == account_id && id.starts_with(prefix))
            .map(|(_, n)| n.nudge.clone())
            .collect())
    }

    async fn due_nudges(
        &self,
        buckets: &[String],
        shards: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Nudge>, StoreError> {
        request().await;
        let partitions: BTreeSet<String> = buckets
            .iter()
            .flat_map(|b| (0..shards.max(1)).map(move |sh| format!("DUE#{b}#{sh}")))
            .collect();
        let now = ms(now);
        let s = self.lock();
        let mut out: Vec<Nudge> = s
            .nudges
            .values()
            .filter(|n| n.due.as_ref().is_some_and(|p| partitions.contains(p)))
            .filter(|n| n.nudge.send_at <= now)
            .map(|n| n.nudge.clone())
            .collect();
        out.sort_by(|a, b| {
            (a.send_at, &a.account_id, &a.nudge_id).cmp(&(b.send_at, &b.account_id, &b.nudge_id))
        });
        Ok(out)
    }
}

fn leased_by(n: &Nudge, owner: &str) -> bool {
    n.lease_owner.as_deref() == Some(owner)
}

#[async_trait]
impl SendStore for MemoryStore {
    async fn claim(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Nudge>, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| n.status == NudgeStatus::Pending) else {
            return Ok(None);
        };
        // Still on the `due` index: a later run finds it if the lease expires.
        n.nudge.status = NudgeStatus::Claimed;
        n.nudge.lease_owner = Some(owner.to_string());
        n.nudge.lease_until = Some(ms(now + lease));
        n.nudge.attempts += 1;
        Ok(Some(n.nudge.clone()))
    }

    async fn mark_sent(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        // Conditional on the lease owner only (see the trait): the truth wins.
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| leased_by(n, owner)) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Sent;
        n.nudge.provider_message_id = Some(provider_message_id.to_string());
        n.nudge.sent_at = Some(ms(at));
        n.nudge.lease_until = None;
        n.nudge.reason = None;
        n.due = None;
        Ok(true)
    }

    async fn mark_retry(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        next_send_at: DateTime<Utc>,
        error: &str,
        shards: u32,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| {
            leased_by(n, owner) && n.status == NudgeStatus::Claimed
        }) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Pending;
        n.nudge.send_at = ms(next_send_at);
        n.nudge.reason = Some(error.to_string());
        n.nudge.lease_owner = None;
        n.nudge.lease_until = None;
        n.due = Some(due_partition(&n.nudge, next_send_at, shards));
        Ok(true)
    }

    async fn mark_failed(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        reason: &str,
        _at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| {
            leased_by(n, owner) && n.status == NudgeStatus::Claimed
        }) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Failed;
        n.nudge.reason = Some(reason.to_string());
        n.nudge.lease_until = None;
        n.due = None;
        Ok(true)
    }

    async fn expire_lease(
        &self,
        account_id: &str,
        nudge_id: &str,
        seen_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let now = ms(now);
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| {
            n.status == NudgeStatus::Claimed
                && leased_by(n, seen_owner)
                && n.lease_until.is_some_and(|u| u < now)
        }) else {
            return Ok(false);
        };
        // The lease stays recorded: a slow owner's `mark_sent` still wins afterwards.
        n.nudge.status = NudgeStatus::Failed;
        n.nudge.reason = Some(UNKNOWN_OUTCOME.to_string());
        n.due = None;
        Ok(true)
    }

    async fn mark_blocked(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        _at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| n.status == NudgeStatus::Pending) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Blocked;
        n.nudge.reason = Some(reason.to_string());
        n.due = None;
        Ok(true)
    }
}

#[async_trait]
impl DeliveryLogStore for MemoryStore {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError> {
        request().await;
        let mut stored = entry.clone();
        // The entry's JSON keeps whole seconds (`domain::log`); the key keeps milliseconds.
        stored.at = stored.at.trunc_subsecs(0);
        let k = key(
            &entry.account_id,
            &schema::log_sk(entry.at, &entry.nudge_id),
        );
        self.lock().log.insert(k, stored);
        Ok(())
    }

    async fn delivery_log(&self, account_id: &str) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.log
            .iter()
            .filter(|((a, _), _)| a == account_id)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn all_delivery_log(&self) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        request().await;
        let mut out: Vec<DeliveryLogEntry> = self.lock().log.values().cloned().collect();
        crate::domain::log::sort(&mut out);
        Ok(out)
    }
}

#[async_trait]
impl SuppressionStore for MemoryStore {
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.suppressions
            .get(&schema::address_pk(address))
            .map(SuppressionState::view))
    }

    async fn record_address_feedback(
        &self,
        address: &str,
        feedback: AddressFeedback,
        at: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError> {
        request().await;
        let k = schema::address_pk(address);
        let at = ms(at);
        let mut s = self.lock();
        let state = match feedback {
            AddressFeedback::Complaint => {
                let st = s.suppressions.entry(k).or_default();
                st.suppressed = true;
                st.reason = Some(SuppressionReason::Complaint);
                st.updated_at = Some(at);
                st.view()
            }
            AddressFeedback::HardBounce => {
                // A complaint is never downgraded to a bounce.
                let st = s.suppressions.entry(k).or_default();
                if st.reason == Some(SuppressionReason::Complaint) {
                    return Ok(None);
                }
                st.suppressed = true;
                st.reason = Some(SuppressionReason::HardBounce);
                st.updated_at = Some(at);
                st.view()
            }
            AddressFeedback::SoftBounce { limit } => {
                let st = s.suppressions.entry(k).or_default();
                st.soft_streak += 1;
                st.updated_at = Some(at);
                let mut view = st.view();
                if !st.suppressed && st.soft_streak >= limit.max(1) && st.reason.is_none() {
                    st.suppressed = true;
                    st.reason = Some(SuppressionReason::SoftBounce);
                    view.reason = st.reason;
                }
                view
            }
            AddressFeedback::Delivered => match s.suppressions.get_mut(&k) {
                // Only touch the item when there is a streak to reset.
                Some(st) if st.soft_streak > 0 => {
                    st.soft_streak = 0;
                    st.updated_at = Some(at);
                    st.view()
                }
                _ => return Ok(None),
            },
        };
        Ok(Some(state))
    }
}

#[async_trait]
impl CapStore for MemoryStore {
    async fn cap_state(&self, account_id: &str, contact_id: &str) -> Result<CapState, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.contacts
            .get(&key(account_id, contact_id))
            .map(|c| CapState {
                sends: c.cap_sends.clone(),
                version: c.cap_version.unwrap_or(0),
            })
            .unwrap_or_default())
    }

    async fn reserve_cap(
        &self,
        account_id: &str,
        contact_id: &str,
        nudge_id: &str,
        now: DateTime<Utc>,
        expected: &CapState,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(account_id, contact_id);
        let current = s.contacts.get(&k).and_then(|c| c.cap_version);
        // Version 0 means "never reserved" (`attribute_not_exists(cap_version)`).
        let unchanged = match current {
            None => expected.version == 0,
            Some(v) => expected.version != 0 && v == expected.version,
        };
        if !unchanged {
            return Ok(false);
        }
        let c = s.contacts.entry(k).or_default();
        let mut sends = prune_reservations(&expected.sends, now);
        sends.insert(nudge_id.to_string(), now);
        c.cap_sends = sends.into_iter().map(|(k, t)| (k, ms(t))).collect();
        c.cap_version = Some(expected.version + 1);
        Ok(true)
    }
}

#[async_trait]
impl EngagementStore for MemoryStore {
    async fn record_message(
        &self,
        provider_message_id: &str,
        r: &MessageRef,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        request().await;
        self.lock()
            .messages
            .insert(provider_message_id.to_string(), r.clone());
        Ok(())
    }

    async fn message_ref(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<MessageRef>, StoreError> {
        request().await;
        Ok(self.lock().messages.get(provider_message_id).cloned())
    }

    async fn record_engagement(
        &self,
        r: &MessageRef,
        what: EngagementKind,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudges.get_mut(&key(&r.account_id, &r.nudge_id)) else {
            return Ok(false);
        };
        let e = &mut n.nudge.engagement;
        let field = match what {
            EngagementKind::Delivered => &mut e.delivered_at,
            EngagementKind::Opened => &mut e.opened_at,
            EngagementKind::Clicked => &mut e.clicked_at,
            EngagementKind::Bounced => &mut e.bounced_at,
            EngagementKind::Complained => &mut e.complained_at,
        };
        if field.is_some() {
            return Ok(false);
        }
        *field = Some(ms(at));
        if let Some(counter) = what.counter() {
            s.add_stats(&r.kind, &r.variant, counter);
        }
        Ok(true)
    }

    async fn count_sent(&self, kind: &str, variant: &str) -> Result<(), StoreError> {
        request().await;
        self.lock().add_stats(kind, variant, "sent");
        Ok(())
    }

    async fn kind_stats(&self) -> Result<Vec<KindStats>, StoreError> {
        request().await;
        Ok(self.lock().stats.values().cloned().collect())
    }
}

#[async_trait]
impl CheckpointStore for MemoryStore {
    async fn checkpoint(&self, function: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        request().await;
        Ok(self.lock().checkpoints.get(function).copied())
    }

    async fn set_checkpoint(&self, function: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        request().await;
        let at = ms(at);
        let mut s = self.lock();
        let c = s.checkpoints.entry(function.to_string()).or_insert(at);
        // Never back.
        if *c < at {
            *c = at;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The shared checks (`store::conformance`), which the DynamoDB adapter passes too.

    use super::MemoryStore;
    use crate::store::conformance;

    macro_rules! conformance_tests {
        ($($check:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $check() {
                conformance::$check(&MemoryStore::new()).await;
            }
        )*};
    }

    conformance_tests!(
        nudges_are_planned_once_and_found_by_bucket_and_time,
        a_lease_decides_who_marks_the_outcome,
        retries_defers_and_cancels_move_only_pending_nudges,
        profiles_are_last_writer_wins,
        cap_reservations_are_versioned,
        suppression_follows_feedback,
        engagement_counts_first_occurrences,
        deadlines_events_log_and_checkpoints,
    );

    #[tokio::test]
    async fn every_check_passes_on_one_shared_store() {
        conformance::all(&MemoryStore::new()).await;
    }
}
