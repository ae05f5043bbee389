//! `HealthStore`: the account index (`ACCOUNTS#<shard>`), the satisfaction item (`SAT`), daily
//! score snapshots (`HEALTH#<day>#<model>`) and the scoring models (`SYS/MODEL#<version>`,
//! `SYS/MODELS`). Keys are in `schema`.
//!
//! The satisfaction item holds flat attributes, each a small map written whole in one
//! UpdateItem: `to_<ticket_id>` (the first open: severity, opened_at), `tc_<ticket_id>` (the
//! close: closed_at, severity if the event had one) and `n_<event_id>` (one NPS answer).
//! DynamoDB cannot SET a path inside a map that does not exist yet, so nested maps would need
//! a second request to create them; flat attributes need none, and open and close of a ticket
//! land in different attributes, so either order and any replay give the same item.
//!
//! Growth: nothing is removed on write. A ticket costs about 100 bytes plus twice its id, an
//! NPS answer about 60 bytes plus its id and comment (at most `NPS_COMMENT_CHARS` characters).
//! The item's size is what each ticket or NPS write costs (1 WCU per KB) and what the daily
//! read costs (0.5 RCU per 4 KB): an account with 200 tickets and 50 answers a year grows by
//! about 30 KB a year. `health_record` prunes on read (`TICKET_DAYS_READ`, `NPS_ANSWERS_READ`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::firsts_from_item;
use super::item::{from_item, millis, to_item};
use super::profiles::AccountItem;
use super::{DynamoStore, Item, corrupt, get_s, s, ts};
use crate::events::Severity;
use crate::store::health::{NPS_ANSWERS_READ, NPS_COMMENT_CHARS, TICKET_DAYS_READ};
use crate::store::schema::{self, PK, SK};
use crate::store::{
    EventStore, HealthPulse, HealthRecord, HealthSnapshot, HealthStore, IndexPage, IndexedAccount,
    ModelSelection, NpsAnswer, Satisfaction, StoreError, TicketChange, TicketState,
};

/// `ACCT#<id>/PULSE`: the playbook state, its fields flat beside the keys.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PulseItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    pulse: HealthPulse,
}

/// `ACCOUNTS#<shard>/ACCT#<id>`, written by `index_account`'s UpdateItem (these names).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct IndexItem {
    account_id: String,
    #[serde(with = "millis")]
    first_seen: DateTime<Utc>,
}

/// `SAT.to_<ticket_id>`: the ticket's first open.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TicketOpen {
    severity: Severity,
    #[serde(with = "millis")]
    opened_at: DateTime<Utc>,
}

/// `SAT.tc_<ticket_id>`: the ticket's close.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TicketClose {
    #[serde(with = "millis")]
    closed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
}

/// `SAT.n_<event_id>`: one NPS answer.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct NpsEntry {
    score: u8,
    #[serde(with = "millis")]
    at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

impl NpsEntry {
    fn new(answer: &NpsAnswer) -> NpsEntry {
        NpsEntry {
            score: answer.score,
            at: answer.at,
            comment: answer
                .comment
                .as_ref()
                .map(|c| c.chars().take(NPS_COMMENT_CHARS).collect()),
        }
    }
}

/// `ACCT#<id>/HEALTH#<day>#<model_version>`. Account, day and model are read back from the
/// keys: every byte is paid for on each daily write.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SnapshotItem {
    pk: String,
    sk: String,
    #[serde(default)]
    shadow: bool,
    score: u8,
    band: String,
    #[serde(default)]
    provisional: bool,
    detail: String,
    /// `schema::TTL`: epoch seconds.
    ttl: i64,
}

impl SnapshotItem {
    fn new(snap: &HealthSnapshot, expires_at: i64) -> SnapshotItem {
        SnapshotItem {
            pk: schema::account_pk(&snap.account_id),
            sk: schema::snapshot_sk(snap.day, &snap.model_version),
            shadow: snap.shadow,
            score: snap.score,
            band: snap.band.clone(),
            provisional: snap.provisional,
            detail: snap.detail.clone(),
            ttl: expires_at,
        }
    }

    fn into_snapshot(self) -> Result<HealthSnapshot, StoreError> {
        let bad_key = || corrupt("health snapshot", format!("sort key {}", self.sk));
        let account_id = self.pk.strip_prefix("ACCT#").ok_or_else(bad_key)?;
        // `HEALTH#<yyyy-mm-dd>#<model_version>`: the date is fixed width, the version is the
        // rest (it may contain `#`).
        let rest = self.sk.strip_prefix("HEALTH#").ok_or_else(bad_key)?;
        let (day, version) = rest
            .split_at_checked(10)
            .and_then(|(d, v)| Some((d, v.strip_prefix('#')?)))
            .ok_or_else(bad_key)?;
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad_key())?;
        Ok(HealthSnapshot {
            account_id: account_id.to_string(),
            day,
            model_version: version.to_string(),
            shadow: self.shadow,
            score: self.score,
            band: self.band,
            provisional: self.provisional,
            detail: self.detail,
        })
    }
}

/// `SYS/MODEL#<version>`: immutable once written.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ModelItem {
    pk: String,
    sk: String,
    json: String,
    #[serde(with = "millis")]
    created_at: DateTime<Utc>,
}

/// `SYS/MODELS`: the selection; an absent attribute selects nothing (the built-in default).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SelectionItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shadow: Option<String>,
}

/// The satisfaction item as `health_record` returns it: tickets opened at or after `since`
/// or still open (oldest first; a close seen without its open is left out until the open
/// arrives), the newest `NPS_ANSWERS_READ` answers (newest first).
fn satisfaction_from_item(item: &Item, since: DateTime<Utc>) -> Result<Satisfaction, StoreError> {
    let mut tickets = Vec::new();
    let mut nps = Vec::new();
    for (key, value) in item {
        if let Some(id) = key.strip_prefix(schema::TICKET_OPEN_PREFIX) {
            let open: TicketOpen = serde_dynamo::from_attribute_value(value.clone())
                .map_err(|e| corrupt("satisfaction", format!("{key}: {e}")))?;
            let close_key = format!("{}{id}", schema::TICKET_CLOSE_PREFIX);
            let closed_at = match item.get(&close_key) {
                Some(v) => Some(
                    serde_dynamo::from_attribute_value::<_, TicketClose>(v.clone())
                        .map_err(|e| corrupt("satisfaction", format!("{close_key}: {e}")))?
                        .closed_at,
                ),
                None => None,
            };
            if closed_at.is_none() || open.opened_at >= since {
                tickets.push(TicketState {
                    ticket_id: id.to_string(),
                    severity: open.severity,
                    opened_at: open.opened_at,
                    closed_at,
                });
            }
        } else if let Some(event_id) = key.strip_prefix(schema::NPS_PREFIX) {
            let entry: NpsEntry = serde_dynamo::from_attribute_value(value.clone())
                .map_err(|e| corrupt("satisfaction", format!("{key}: {e}")))?;
            nps.push((event_id, entry));
        }
    }
    tickets.sort_by(|a, b| (a.opened_at, &a.ticket_id).cmp(&(b.opened_at, &b.ticket_id)));
    nps.sort_by(|(ia, a), (ib, b)| (b.at, ib).cmp(&(a.at, ia)));
    Ok(Satisfaction {
        tickets,
        nps: nps
            .into_iter()
            .take(NPS_ANSWERS_READ)
            .map(|(_, e)| NpsAnswer {
                score: e.score,
                at: e.at,
                comment: e.comment,
            })
            .collect(),
    })
}

impl DynamoStore {
    /// Sets one attribute of the satisfaction item to `value` (`keep`: only if it is absent).
    async fn set_sat_attribute(
        &self,
        account_id: &str,
        name: String,
        value: aws_sdk_dynamodb::types::AttributeValue,
        keep: bool,
    ) -> Result<(), StoreError> {
        let update = if keep {
            "SET #e = if_not_exists(#e, :v)"
        } else {
            "SET #e = :v"
        };
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::SAT_SK))
            .update_expression(update)
            .expression_attribute_names("#e", name)
            .expression_attribute_values(":v", value)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }
}

fn attribute<T: Serialize>(
    what: &str,
    value: &T,
) -> Result<aws_sdk_dynamodb::types::AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value)
        .map_err(|e| StoreError::Backend(format!("serialising {what}: {e}")))
}

#[async_trait]
impl HealthStore for DynamoStore {
    async fn index_account(
        &self,
        account_id: &str,
        seen_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_index_pk(account_id, shards)))
            .key(SK, s(schema::account_index_sk(account_id)))
            .update_expression("SET account_id = :id, first_seen = if_not_exists(first_seen, :t)")
            .expression_attribute_values(":id", s(account_id))
            .expression_attribute_values(":t", ts(seen_at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn indexed_accounts(
        &self,
        shard: u32,
        shards: u32,
    ) -> Result<Vec<IndexedAccount>, StoreError> {
        if shard >= shards {
            return Err(StoreError::Backend(format!(
                "account index shard {shard} is not in 0..{shards}"
            )));
        }
        self.query_prefix(&schema::accounts_pk(shard), "ACCT#")
            .await?
            .iter()
            .map(|item| {
                let i = from_item::<IndexItem>("account index", item)?;
                Ok(IndexedAccount {
                    account_id: i.account_id,
                    first_seen: i.first_seen,
                })
            })
            .collect()
    }

    async fn indexed_account(
        &self,
        account_id: &str,
        shards: u32,
    ) -> Result<Option<IndexedAccount>, StoreError> {
        let pk = schema::account_index_pk(account_id, shards);
        self.get_item(&pk, &schema::account_index_sk(account_id))
            .await?
            .map(|item| {
                let i = from_item::<IndexItem>("account index", &item)?;
                Ok(IndexedAccount {
                    account_id: i.account_id,
                    first_seen: i.first_seen,
                })
            })
            .transpose()
    }

    async fn indexed_accounts_page(
        &self,
        shard: u32,
        shards: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IndexPage, StoreError> {
        if shard >= shards {
            return Err(StoreError::Backend(format!(
                "account index shard {shard} is not in 0..{shards}"
            )));
        }
        let pk = schema::accounts_pk(shard);
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":p", s("ACCT#"))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(after) = after {
            req = req
                .exclusive_start_key(PK, s(&pk))
                .exclusive_start_key(SK, s(schema::account_index_sk(after)));
        }
        let resp = req.send().await.map_err(super::map_err)?;
        self.meter.record_read(resp.consumed_capacity());
        let accounts = resp
            .items()
            .iter()
            .map(|item| {
                let i = from_item::<IndexItem>("account index", item)?;
                Ok(IndexedAccount {
                    account_id: i.account_id,
                    first_seen: i.first_seen,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // DynamoDB may stop a page early (1 MB); its last key says where to go on.
        let next = resp
            .last_evaluated_key()
            .and_then(|k| get_s(k, SK))
            .and_then(|sk| sk.strip_prefix("ACCT#"))
            .map(str::to_string);
        Ok(IndexPage { accounts, next })
    }

    async fn put_pulse(&self, account_id: &str, pulse: &HealthPulse) -> Result<(), StoreError> {
        let item = to_item(
            "health pulse",
            &PulseItem {
                pk: schema::account_pk(account_id),
                sk: schema::PULSE_SK.to_string(),
                pulse: pulse.clone(),
            },
        )?;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn record_ticket(
        &self,
        account_id: &str,
        ticket_id: &str,
        change: &TicketChange,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match change {
            // The first open wins: a replay (or a second open) never moves opened_at.
            TicketChange::Opened { severity } => {
                let open = TicketOpen {
                    severity: *severity,
                    opened_at: at,
                };
                let name = format!("{}{ticket_id}", schema::TICKET_OPEN_PREFIX);
                self.set_sat_attribute(account_id, name, attribute("ticket", &open)?, true)
                    .await
            }
            TicketChange::Closed { severity } => {
                let close = TicketClose {
                    closed_at: at,
                    severity: *severity,
                };
                let name = format!("{}{ticket_id}", schema::TICKET_CLOSE_PREFIX);
                self.set_sat_attribute(account_id, name, attribute("ticket", &close)?, false)
                    .await
            }
        }
    }

    async fn record_nps(
        &self,
        account_id: &str,
        event_id: &str,
        answer: &NpsAnswer,
    ) -> Result<(), StoreError> {
        let name = format!("{}{event_id}", schema::NPS_PREFIX);
        let value = attribute("NPS answer", &NpsEntry::new(answer))?;
        self.set_sat_attribute(account_id, name, value, true).await
    }

    async fn health_record(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HealthRecord, StoreError> {
        let pk = schema::account_pk(account_id);
        // Three reads in parallel, all eventually consistent (the run scores days long since
        // written): the day range; `PROFILE`, `PULSE` and `SAT` in one Query (nothing sorts between
        // them, see `schema`); `FIRSTS`. A Query is billed on the summed size of what it
        // returns, a BatchGetItem on each item rounded up to 4 KB, so with small items this
        // costs 0.5 RCU less than one batch of the three.
        let profile_and_sat = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":a", s(schema::PROFILE_SK))
            .expression_attribute_values(":b", s(schema::SAT_SK));
        let (days, mut items, firsts) = futures::try_join!(
            EventStore::rollups(self, account_id, from, to),
            self.query_all(profile_and_sat),
            self.get_item(&pk, schema::FIRSTS_SK),
        )?;
        items.extend(firsts);
        let mut record = HealthRecord {
            days,
            ..HealthRecord::default()
        };
        // The ticket window is counted in whole UTC days before the last day asked for; the
        // score filters its own (shorter) window precisely.
        let since = (to - Duration::days(TICKET_DAYS_READ))
            .and_time(NaiveTime::MIN)
            .and_utc();
        for item in &items {
            match get_s(item, SK) {
                Some(schema::PROFILE_SK) => {
                    record.account =
                        Some(from_item::<AccountItem>("account", item)?.into_record(account_id));
                }
                Some(schema::FIRSTS_SK) => record.firsts = firsts_from_item(item),
                Some(schema::SAT_SK) => record.satisfaction = satisfaction_from_item(item, since)?,
                Some(schema::PULSE_SK) => {
                    record.pulse = from_item::<PulseItem>("health pulse", item)?.pulse;
                }
                _ => {}
            }
        }
        Ok(record)
    }

    async fn put_snapshot(
        &self,
        snapshot: &HealthSnapshot,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let item = to_item("health snapshot", &SnapshotItem::new(snapshot, expires_at))?;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn snapshots(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<HealthSnapshot>, StoreError> {
        let (from_sk, to_sk) = (schema::snapshots_from(from), schema::snapshots_through(to));
        self.query_between(&schema::account_pk(account_id), &from_sk, &to_sk)
            .await?
            .iter()
            .map(|item| from_item::<SnapshotItem>("health snapshot", item)?.into_snapshot())
            .collect()
    }

    async fn put_model(
        &self,
        version: &str,
        json: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = ModelItem {
            pk: schema::SYS_PK.to_string(),
            sk: schema::model_sk(version),
            json: json.to_string(),
            created_at: at,
        };
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("health model", &item)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        Ok(self.conditional(req.send().await)?.is_some())
    }

    async fn model(&self, version: &str) -> Result<Option<String>, StoreError> {
        self.get_item(schema::SYS_PK, &schema::model_sk(version))
            .await?
            .map(|item| Ok(from_item::<ModelItem>("health model", &item)?.json))
            .transpose()
    }

    async fn model_versions(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query_prefix(schema::SYS_PK, schema::MODEL_PREFIX)
            .await?
            .iter()
            .filter_map(|item| get_s(item, SK)?.strip_prefix(schema::MODEL_PREFIX))
            .map(str::to_string)
            .collect())
    }

    async fn model_selection(&self) -> Result<ModelSelection, StoreError> {
        Ok(self
            .get_item(schema::SYS_PK, schema::MODELS_SK)
            .await?
            .map(|item| from_item::<SelectionItem>("model selection", &item))
            .transpose()?
            .map(|i| ModelSelection {
                active: i.active,
                shadow: i.shadow,
            })
            .unwrap_or_default())
    }

    async fn select_models(&self, selection: &ModelSelection) -> Result<(), StoreError> {
        let item = SelectionItem {
            pk: schema::SYS_PK.to_string(),
            sk: schema::MODELS_SK.to_string(),
            active: selection.active.clone(),
            shadow: selection.shadow.clone(),
        };
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("model selection", &item)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
