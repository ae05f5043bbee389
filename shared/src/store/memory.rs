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
//!
//! Events, profiles and deadlines are in `memory/accounts.rs`, nudges and sends in
//! `memory/nudges.rs`, the health capabilities in `memory/health.rs`, the others here.

mod accounts;
mod agenda;
mod erasure;
mod health;
mod nudges;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use super::schema;
use super::{
    AddressFeedback, Applied, CapState, CapStore, CheckpointStore, DayRollup, DeadlineRecord,
    DeliveryLogStore, EngagementKind, EngagementStore, KindStats, MessageRef, RawEvent, StoreError,
    Suppression, SuppressionStore,
};
use crate::domain::policy::prune_reservations;
use crate::domain::{DeliveryLogEntry, Nudge, SuppressionReason};
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
    /// Raw records still `applying`, with the time they were written; the others are applied.
    raw_applying: BTreeMap<Key, DateTime<Utc>>,
    rollups: BTreeMap<(String, NaiveDate), DayRollup>,
    firsts: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
    accounts: BTreeMap<String, AccountState>,
    contacts: BTreeMap<Key, ContactState>,
    /// (account, task) -> (due at, done at).
    agenda: BTreeMap<Key, (DateTime<Utc>, Option<DateTime<Utc>>)>,
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
    health: health::HealthState,
}

#[derive(Debug, Default)]
struct AccountState {
    profile: Option<AccountProfile>,
    paused: bool,
    paused_at: Option<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
    pause_reason: Option<String>,
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
    fn append_log(&mut self, entry: &DeliveryLogEntry) {
        let mut stored = entry.clone();
        // The entry's JSON keeps whole seconds (`domain::log`); the key keeps milliseconds.
        stored.at = stored.at.trunc_subsecs(0);
        let k = key(
            &entry.account_id,
            &schema::log_sk(entry.at, &entry.nudge_id),
        );
        self.log.insert(k, stored);
    }

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
impl DeliveryLogStore for MemoryStore {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError> {
        request().await;
        self.lock().append_log(entry);
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

    async fn delivery_log_since(
        &self,
        account_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        request().await;
        // The same key range as the table's: by the key's milliseconds, not the entry's seconds.
        let from = schema::log_sk_from(since);
        let s = self.lock();
        Ok(s.log
            .iter()
            .filter(|((a, sk), _)| a == account_id && *sk >= from)
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
            EngagementKind::Accepted => &mut e.accepted_at,
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

/// Each map of the state as text: everything the store holds.
#[cfg(any(test, feature = "test-support"))]
#[async_trait]
impl super::conformance::ScanText for MemoryStore {
    async fn every_item_text(&self) -> Result<Vec<String>, StoreError> {
        request().await;
        let s = self.lock();
        let State {
            raw_events,
            raw_applying,
            rollups,
            firsts,
            accounts,
            contacts,
            agenda,
            deadlines,
            nudges,
            log,
            suppressions,
            messages,
            stats,
            checkpoints,
            health,
        } = &*s;
        // Destructured so that a new map cannot be left out of the scan.
        Ok(vec![
            format!("{raw_events:?}"),
            format!("{raw_applying:?}"),
            format!("{rollups:?}"),
            format!("{firsts:?}"),
            format!("{accounts:?}"),
            format!("{contacts:?}"),
            format!("{agenda:?}"),
            format!("{deadlines:?}"),
            format!("{nudges:?}"),
            format!("{log:?}"),
            format!("{suppressions:?}"),
            format!("{messages:?}"),
            format!("{stats:?}"),
            format!("{checkpoints:?}"),
            format!("{health:?}"),
        ])
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
        failing_needs_the_lease_and_the_claim,
        retries_defers_and_cancels_move_only_pending_nudges,
        profiles_are_last_writer_wins,
        deadlines_are_listed_and_a_rezoned_stage_reopens,
        cap_reservations_are_versioned,
        suppression_follows_feedback,
        engagement_counts_first_occurrences,
        deadlines_and_raw_events_keep_the_first_or_newest_write,
        rollups_firsts_log_and_checkpoints_accumulate,
        a_rollup_counts_applying_events_once,
        a_count_creates_its_records_once,
        index_pages_contacts_and_the_pulse_read_back,
        agenda_tasks_are_scheduled_once_found_by_time_and_finished,
        erasing_a_contact_cancels_redacts_and_forgets_it,
        erasing_a_contact_leaves_their_address_name_and_comments_in_no_item,
    );

    #[tokio::test]
    async fn every_check_passes_on_one_shared_store() {
        conformance::all(&MemoryStore::new()).await;
    }
}
