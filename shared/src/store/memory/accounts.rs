//! `EventStore`, `ProfileStore` and `DeadlineStore` of the memory adapter (the DynamoDB
//! adapter's events.rs, profiles.rs and deadlines.rs).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{MemoryStore, State, key, ms, request};
use crate::events::{AccountProfile, ContactProfile};
use crate::store::{
    AccountChange, AccountRecord, Applied, ContactRecord, Counted, CountedEvents, DayRollup,
    DeadlineRecord, DeadlineStore, EventStore, Inserted, MAX_DAY_CONTACTS, ProfileStore, RawEvent,
    RollupDelta, StoreError, Upserted,
};

/// A raw record as the table keeps it: times to the millisecond.
fn as_stored(event: &RawEvent) -> RawEvent {
    let mut stored = event.clone();
    stored.occurred_at = ms(stored.occurred_at);
    stored.received_at = ms(stored.received_at);
    stored
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn insert_raw_event(&self, event: &RawEvent) -> Result<Inserted, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(&event.account_id, &event.event_id);
        if s.raw_events.contains_key(&k) {
            return Ok(match s.raw_applying.get(&k) {
                Some(since) => Inserted::Unfinished { since: *since },
                None => Inserted::Duplicate,
            });
        }
        let stored = as_stored(event);
        s.raw_applying.insert(k.clone(), stored.received_at);
        s.raw_events.insert(k, stored);
        Ok(Inserted::New)
    }

    async fn mark_applied(&self, account_id: &str, event_id: &str) -> Result<(), StoreError> {
        request().await;
        self.lock().raw_applying.remove(&key(account_id, event_id));
        Ok(())
    }

    async fn count_applied(
        &self,
        account_id: &str,
        day: NaiveDate,
        delta: &RollupDelta,
        events: CountedEvents<'_>,
    ) -> Result<Counted, StoreError> {
        request().await;
        let mut s = self.lock();
        let mut applied: Vec<String> = events
            .confirm
            .iter()
            .filter(|id| !s.raw_applying.contains_key(&key(account_id, id)))
            .cloned()
            .collect();
        let mut unfinished = Vec::new();
        for ev in events.create {
            let k = key(account_id, &ev.event_id);
            if s.raw_events.contains_key(&k) {
                match s.raw_applying.contains_key(&k) {
                    true => unfinished.push(ev.event_id.clone()),
                    false => applied.push(ev.event_id.clone()),
                }
            }
        }
        if !applied.is_empty() || !unfinished.is_empty() {
            return Ok(Counted::Conflicts {
                applied,
                unfinished,
            });
        }
        for id in events.confirm {
            s.raw_applying.remove(&key(account_id, id));
        }
        for ev in events.create {
            s.raw_events
                .insert(key(account_id, &ev.event_id), as_stored(ev));
        }
        Ok(Counted::Counted {
            contacts_full: add_to_day(&mut s, account_id, day, delta),
        })
    }

    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        d: &RollupDelta,
    ) -> Result<(), StoreError> {
        request().await;
        add_to_day(&mut self.lock(), account_id, day, d);
        Ok(())
    }

    async fn record_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<BTreeSet<String>, StoreError> {
        request().await;
        let mut s = self.lock();
        let stored = s.firsts.entry(account_id.to_string()).or_default();
        let mut new = BTreeSet::new();
        for (k, at) in firsts {
            let at = ms(*at);
            if *stored.entry(k.clone()).or_insert(at) == at {
                new.insert(k.clone());
            }
        }
        Ok(new)
    }

    async fn forget_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        request().await;
        let mut s = self.lock();
        if let Some(stored) = s.firsts.get_mut(account_id) {
            for (k, at) in firsts {
                if stored.get(k) == Some(&ms(*at)) {
                    stored.remove(k);
                }
            }
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

/// Adds a delta to a day's rollup as the adapter's ADD does; true when the day's contacts
/// were already full ([`MAX_DAY_CONTACTS`]) and the delta's were left out.
fn add_to_day(s: &mut State, account_id: &str, day: NaiveDate, d: &RollupDelta) -> bool {
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
        return false;
    }
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
    let full = !d.contacts.is_empty() && r.active_contacts.len() >= MAX_DAY_CONTACTS;
    if !full {
        r.active_contacts.extend(d.contacts.iter().cloned());
    }
    full
}

#[async_trait]
impl ProfileStore for MemoryStore {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Upserted, StoreError> {
        request().await;
        let mut zone_before = None;
        let applied = self.lock().account_lww(account_id, "profile_at", at, |a| {
            zone_before = a.profile.as_ref().map(|p| p.timezone);
            a.profile = Some(profile.clone());
        });
        Ok(match applied {
            Applied::Applied => Upserted::Applied { zone_before },
            Applied::Stale => Upserted::Stale,
        })
    }

    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Upserted, StoreError> {
        request().await;
        let at = ms(at);
        let mut s = self.lock();
        let k = key(account_id, contact_id);
        if s.contacts
            .get(&k)
            .is_some_and(|c| c.profile_at.is_some_and(|p| p >= at))
        {
            return Ok(Upserted::Stale);
        }
        let c = s.contacts.entry(k).or_default();
        let zone_before = c.profile.as_ref().and_then(|p| p.timezone);
        c.profile = Some(profile.clone());
        c.profile_at = Some(at);
        Ok(Upserted::Applied { zone_before })
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
            AccountChange::Paused { until, reason } => {
                s.account_lww(account_id, "paused_clock", at, |a| {
                    a.paused = true;
                    a.paused_at = Some(stored_at);
                    a.paused_until = until.map(ms);
                    a.pause_reason = reason.clone();
                })
            }
            AccountChange::Resumed => s.account_lww(account_id, "paused_clock", at, |a| {
                a.paused = false;
                a.paused_until = None;
                a.pause_reason = None;
            }),
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
                paused_until: a.paused_until,
                pause_reason: a.pause_reason.clone(),
                admin_contact_id: a.admin_contact_id.clone(),
                admin_changed_at: a.clocks.get("admin_clock").copied(),
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

    async fn account_consistent(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        // Every read here sees every write before it.
        self.account(account_id).await
    }

    async fn contact_consistent(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.contact(account_id, contact_id).await
    }

    async fn contacts(&self, account_id: &str) -> Result<Vec<ContactRecord>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.contacts
            .iter()
            .filter(|((a, _), _)| a == account_id)
            .map(|((_, contact_id), c)| ContactRecord {
                account_id: account_id.to_string(),
                contact_id: contact_id.clone(),
                profile: c.profile.clone(),
                profile_at: c.profile_at,
                unsubscribed: c.unsubscribed.clone(),
            })
            .collect())
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

    async fn deadlines(&self, account_id: &str) -> Result<Vec<DeadlineRecord>, StoreError> {
        request().await;
        let s = self.lock();
        Ok(s.deadlines
            .iter()
            .filter(|((a, _), _)| a == account_id)
            .map(|(_, d)| d.clone())
            .collect())
    }
}
