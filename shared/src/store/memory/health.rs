//! `HealthStore` in memory: the account index, satisfaction state, snapshots and models, with
//! the DynamoDB adapter's rules (first_seen kept, model versions immutable, a snapshot re-run
//! overwrites, NPS answers keyed by event).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{MemoryStore, request};
use crate::store::health::{NPS_ANSWERS_READ, NPS_COMMENT_CHARS, TICKET_DAYS_READ};
use crate::store::schema;
use crate::store::{
    HealthPulse, HealthRecord, HealthSnapshot, HealthStore, IndexPage, IndexedAccount,
    ModelSelection, NpsAnswer, ProfileStore, Satisfaction, StoreError, TicketChange, TicketState,
};

/// Health state, beside the rest of `State`.
#[derive(Debug, Default)]
pub(super) struct HealthState {
    /// (shard, account id) -> first seen.
    index: BTreeMap<(u32, String), DateTime<Utc>>,
    /// account -> ticket -> (severity, opened_at) of its first open.
    opens: BTreeMap<String, BTreeMap<String, (crate::events::Severity, DateTime<Utc>)>>,
    /// account -> ticket -> closed_at of its latest close.
    closes: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
    nps: BTreeMap<String, BTreeMap<String, NpsAnswer>>,
    /// (account, day, model version) -> snapshot.
    snapshots: BTreeMap<(String, NaiveDate, String), HealthSnapshot>,
    models: BTreeMap<String, String>,
    selection: ModelSelection,
    pulses: BTreeMap<String, HealthPulse>,
}

impl HealthState {
    /// One account's NPS answers by event id (the satisfaction item's `n_<event_id>`).
    pub(super) fn nps_answers_mut(
        &mut self,
        account_id: &str,
    ) -> Option<&mut BTreeMap<String, NpsAnswer>> {
        self.nps.get_mut(account_id)
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn index_account(
        &self,
        account_id: &str,
        seen_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<(), StoreError> {
        request().await;
        let shard = schema::account_index_shard(account_id, shards);
        self.lock()
            .health
            .index
            .entry((shard, account_id.to_string()))
            .or_insert(super::ms(seen_at));
        Ok(())
    }

    async fn indexed_accounts(
        &self,
        shard: u32,
        shards: u32,
    ) -> Result<Vec<IndexedAccount>, StoreError> {
        request().await;
        if shard >= shards {
            return Err(StoreError::Backend(format!(
                "account index shard {shard} is not in 0..{shards}"
            )));
        }
        Ok(self
            .lock()
            .health
            .index
            .iter()
            .filter(|((s, _), _)| *s == shard)
            .map(|((_, a), t)| IndexedAccount {
                account_id: a.clone(),
                first_seen: *t,
            })
            .collect())
    }

    async fn indexed_account(
        &self,
        account_id: &str,
        shards: u32,
    ) -> Result<Option<IndexedAccount>, StoreError> {
        request().await;
        let shard = schema::account_index_shard(account_id, shards);
        Ok(self
            .lock()
            .health
            .index
            .get(&(shard, account_id.to_string()))
            .map(|t| IndexedAccount {
                account_id: account_id.to_string(),
                first_seen: *t,
            }))
    }

    async fn indexed_accounts_page(
        &self,
        shard: u32,
        shards: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IndexPage, StoreError> {
        let all = self.indexed_accounts(shard, shards).await?;
        let rest: Vec<IndexedAccount> = all
            .into_iter()
            .filter(|a| after.is_none_or(|after| a.account_id.as_str() > after))
            .collect();
        let limit = limit.max(1);
        let next = (rest.len() > limit).then(|| rest[limit - 1].account_id.clone());
        Ok(IndexPage {
            accounts: rest.into_iter().take(limit).collect(),
            next,
        })
    }

    async fn put_pulse(&self, account_id: &str, pulse: &HealthPulse) -> Result<(), StoreError> {
        request().await;
        self.lock()
            .health
            .pulses
            .insert(account_id.to_string(), pulse.clone());
        Ok(())
    }

    async fn record_ticket(
        &self,
        account_id: &str,
        ticket_id: &str,
        change: &TicketChange,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        request().await;
        let mut s = self.lock();
        let account = account_id.to_string();
        match change {
            // The first open wins (a replay never moves opened_at), like the table's item.
            TicketChange::Opened { severity } => {
                s.health
                    .opens
                    .entry(account)
                    .or_default()
                    .entry(ticket_id.to_string())
                    .or_insert((*severity, at));
            }
            TicketChange::Closed { .. } => {
                s.health
                    .closes
                    .entry(account)
                    .or_default()
                    .insert(ticket_id.to_string(), at);
            }
        }
        Ok(())
    }

    async fn record_nps(
        &self,
        account_id: &str,
        event_id: &str,
        answer: &NpsAnswer,
    ) -> Result<(), StoreError> {
        request().await;
        self.lock()
            .health
            .nps
            .entry(account_id.to_string())
            .or_default()
            .entry(event_id.to_string())
            .or_insert_with(|| NpsAnswer {
                comment: answer
                    .comment
                    .as_ref()
                    .map(|c| c.chars().take(NPS_COMMENT_CHARS).collect()),
                ..answer.clone()
            });
        Ok(())
    }

    async fn health_record(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HealthRecord, StoreError> {
        let account = self.account(account_id).await?;
        let firsts = crate::store::EventStore::firsts(self, account_id).await?;
        let days = crate::store::EventStore::rollups(self, account_id, from, to).await?;
        request().await;
        let s = self.lock();
        let since = to
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc() - Duration::days(TICKET_DAYS_READ));
        let no_closes = BTreeMap::new();
        let closes = s.health.closes.get(account_id).unwrap_or(&no_closes);
        // A close seen without its open is left out until the open arrives.
        let mut tickets: Vec<TicketState> = s
            .health
            .opens
            .get(account_id)
            .map(|m| {
                m.iter()
                    .map(|(id, (severity, opened_at))| TicketState {
                        ticket_id: id.clone(),
                        severity: *severity,
                        opened_at: *opened_at,
                        closed_at: closes.get(id).copied(),
                    })
                    .filter(|t| t.closed_at.is_none() || since.is_none_or(|h| t.opened_at >= h))
                    .collect()
            })
            .unwrap_or_default();
        tickets.sort_by(|a, b| (a.opened_at, &a.ticket_id).cmp(&(b.opened_at, &b.ticket_id)));
        let mut nps: Vec<(&String, &NpsAnswer)> = s
            .health
            .nps
            .get(account_id)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        // Newest first; equal times by event id, descending, as the table's reader orders them.
        nps.sort_by(|(ia, a), (ib, b)| (b.at, ib).cmp(&(a.at, ia)));
        let nps: Vec<NpsAnswer> = nps
            .into_iter()
            .take(NPS_ANSWERS_READ)
            .map(|(_, a)| a.clone())
            .collect();
        Ok(HealthRecord {
            account,
            days,
            firsts,
            satisfaction: Satisfaction { tickets, nps },
            pulse: s.health.pulses.get(account_id).cloned().unwrap_or_default(),
        })
    }

    async fn put_snapshot(
        &self,
        snapshot: &HealthSnapshot,
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        request().await;
        self.lock().health.snapshots.insert(
            (
                snapshot.account_id.clone(),
                snapshot.day,
                snapshot.model_version.clone(),
            ),
            snapshot.clone(),
        );
        Ok(())
    }

    async fn snapshots(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<HealthSnapshot>, StoreError> {
        request().await;
        Ok(self
            .lock()
            .health
            .snapshots
            .iter()
            .filter(|((a, d, _), _)| a == account_id && *d >= from && *d <= to)
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn put_model(
        &self,
        version: &str,
        json: &str,
        _at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        request().await;
        let mut s = self.lock();
        if s.health.models.contains_key(version) {
            return Ok(false);
        }
        s.health
            .models
            .insert(version.to_string(), json.to_string());
        Ok(true)
    }

    async fn model(&self, version: &str) -> Result<Option<String>, StoreError> {
        request().await;
        Ok(self.lock().health.models.get(version).cloned())
    }

    async fn model_versions(&self) -> Result<Vec<String>, StoreError> {
        request().await;
        Ok(self.lock().health.models.keys().cloned().collect())
    }

    async fn model_selection(&self) -> Result<ModelSelection, StoreError> {
        request().await;
        Ok(self.lock().health.selection.clone())
    }

    async fn select_models(&self, selection: &ModelSelection) -> Result<(), StoreError> {
        request().await;
        self.lock().health.selection = selection.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Severity;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + Duration::hours(h)
    }

    #[tokio::test]
    async fn the_memory_health_store_keeps_the_tables_rules() {
        let s = MemoryStore::new();
        // The first sighting stays first_seen.
        s.index_account("acme", t(0), 8).await.unwrap();
        s.index_account("acme", t(5), 8).await.unwrap();
        let shard = schema::account_index_shard("acme", 8);
        let listed = s.indexed_accounts(shard, 8).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].first_seen, t(0));
        // A close before its open is held back until the open arrives; the first open wins.
        let closed = TicketChange::Closed { severity: None };
        s.record_ticket("acme", "T-1", &closed, t(3)).await.unwrap();
        let day = t(0).date_naive();
        assert!(
            s.health_record("acme", day, day)
                .await
                .unwrap()
                .satisfaction
                .tickets
                .is_empty()
        );
        let opened = TicketChange::Opened {
            severity: Severity::High,
        };
        s.record_ticket("acme", "T-1", &opened, t(1)).await.unwrap();
        s.record_ticket("acme", "T-1", &opened, t(2)).await.unwrap();
        let tickets = s
            .health_record("acme", day, day)
            .await
            .unwrap()
            .satisfaction
            .tickets;
        assert_eq!(
            (tickets[0].opened_at, tickets[0].closed_at),
            (t(1), Some(t(3)))
        );
        // NPS answers newest first; a replay adds nothing.
        let answer = |score, h| NpsAnswer {
            score,
            at: t(h),
            comment: None,
        };
        s.record_nps("acme", "e1", &answer(3, 1)).await.unwrap();
        s.record_nps("acme", "e2", &answer(9, 2)).await.unwrap();
        s.record_nps("acme", "e1", &answer(10, 1)).await.unwrap();
        let nps = s
            .health_record("acme", day, day)
            .await
            .unwrap()
            .satisfaction
            .nps;
        let scores: Vec<u8> = nps.iter().map(|a| a.score).collect();
        assert_eq!(scores, [9, 3]);
        // Model versions are immutable.
        assert!(s.put_model("m-1", "{}", t(0)).await.unwrap());
        assert!(!s.put_model("m-1", "{\"x\":1}", t(1)).await.unwrap());
        assert_eq!(s.model("m-1").await.unwrap().as_deref(), Some("{}"));
    }
}
