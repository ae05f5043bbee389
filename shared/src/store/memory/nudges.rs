//! `NudgeStore` and `SendStore` of the memory adapter (the DynamoDB adapter's nudges.rs and
//! sends.rs): the same conditions, on a `StoredNudge` whose `due` is its GSI partition.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{MemoryStore, StoredNudge, due_partition, key, ms, request};
use crate::domain::{Nudge, NudgeStatus, UNKNOWN_OUTCOME};
use crate::store::{NudgeStore, SendStore, SentMark, StoreError};

#[async_trait]
impl NudgeStore for MemoryStore {
    async fn put_nudge(&self, nudge: &Nudge, shards: u32) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let k = key(&nudge.account_id, &nudge.nudge_id);
        if s.nudges.contains_key(&k) {
            return Ok(false);
        }
        s.nudges.insert(k, planned(nudge, shards));
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

    async fn reopen_cancelled(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| {
            n.status == NudgeStatus::Cancelled && n.reason.as_deref() == Some(reason)
        }) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Pending;
        n.nudge.reason = None;
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
        mark: &SentMark<'_>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        // Conditional on the lease owner only (see the trait): the truth wins.
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| leased_by(n, mark.owner)) else {
            return Ok(false);
        };
        n.nudge.status = NudgeStatus::Sent;
        n.nudge.provider_message_id = Some(mark.provider_message_id.to_string());
        n.nudge.sent_at = Some(ms(mark.at));
        n.nudge.lease_until = None;
        n.nudge.reason = None;
        n.due = None;
        if let Some(entry) = mark.log {
            s.append_log(entry);
        }
        if let Some(fu) = mark.follow_up {
            let k = key(&fu.account_id, &fu.nudge_id);
            if s.nudges
                .get(&k)
                .is_none_or(|n| n.nudge.status == NudgeStatus::Pending)
            {
                s.nudges.insert(k, planned(fu, mark.shards));
            }
        }
        Ok(true)
    }

    async fn mark_retry(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        next_send_at: DateTime<Utc>,
        error: &str,
        refund_attempt: bool,
        shards: u32,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        let Some(n) = s.nudge_if(account_id, nudge_id, |n| {
            leased_by(n, owner) && n.status == NudgeStatus::Claimed
        }) else {
            return Ok(false);
        };
        if refund_attempt {
            n.nudge.attempts = n.nudge.attempts.saturating_sub(1);
        }
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

/// What `put_nudge` writes: the planning fields only.
fn planned(nudge: &Nudge, shards: u32) -> StoredNudge {
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
    StoredNudge { nudge: stored, due }
}
