//! `EventStore`: raw events (the de-duplication point), daily usage rollups, first occurrences.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, NaiveDate, Utc};

use super::{DynamoStore, Item, corrupt, get_n, get_s, get_ss, get_ts, n, s, ts};
use crate::store::schema::{self, PK, SK, TTL};
use crate::store::{DayRollup, EventStore, Inserted, RawEvent, RollupDelta, StoreError};

#[async_trait]
impl EventStore for DynamoStore {
    async fn insert_raw_event(&self, ev: &RawEvent) -> Result<Inserted, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(schema::account_pk(&ev.account_id)))
            .item(SK, s(schema::event_sk(&ev.event_id)))
            .item("type", s(ev.event_type))
            .item("occurred_at", ts(ev.occurred_at))
            .item("received_at", ts(ev.received_at))
            .item("body", s(&ev.body))
            .item(TTL, n(ev.expires_at))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(c) = &ev.contact_id {
            req = req.item("contact_id", s(c));
        }
        Ok(match self.conditional(req.send().await)? {
            Some(_) => Inserted::New,
            None => Inserted::Duplicate,
        })
    }

    async fn delete_raw_event(&self, account_id: &str, event_id: &str) -> Result<(), StoreError> {
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::event_sk(event_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        d: &RollupDelta,
    ) -> Result<(), StoreError> {
        let mut adds: Vec<String> = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::day_sk(day)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let counters = [
            ("events", d.events),
            ("logins", d.logins),
            ("reports", d.reports),
            ("tickets_opened", d.tickets_opened),
            ("tickets_closed", d.tickets_closed),
            ("nps_sum", d.nps_sum),
            ("nps_count", d.nps_count),
        ];
        for (name, v) in counters {
            if v > 0 {
                adds.push(format!("{name} :{name}"));
                req = req.expression_attribute_values(format!(":{name}"), n(v));
            }
        }
        // Feature names are validated lowercase snake case, so they are safe attribute names
        // behind a placeholder.
        for (i, (feature, count)) in d.features.iter().enumerate() {
            adds.push(format!("#f{i} :f{i}"));
            req = req
                .expression_attribute_names(format!("#f{i}"), format!("f_{feature}"))
                .expression_attribute_values(format!(":f{i}"), n(count));
        }
        if !d.contacts.is_empty() {
            adds.push("contacts :contacts".into());
            req = req.expression_attribute_values(
                ":contacts",
                AttributeValue::Ss(d.contacts.iter().cloned().collect()),
            );
        }
        if adds.is_empty() {
            return Ok(());
        }
        let req = req.update_expression(format!("ADD {}", adds.join(", ")));
        self.written(req.send().await)?;
        Ok(())
    }

    async fn record_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        if firsts.is_empty() {
            return Ok(());
        }
        let mut sets = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::FIRSTS_SK))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (i, (key, at)) in firsts.iter().enumerate() {
            sets.push(format!("#k{i} = if_not_exists(#k{i}, :v{i})"));
            req = req
                .expression_attribute_names(format!("#k{i}"), format!("first_{key}"))
                .expression_attribute_values(format!(":v{i}"), ts(*at));
        }
        let req = req.update_expression(format!("SET {}", sets.join(", ")));
        self.written(req.send().await)?;
        Ok(())
    }

    async fn firsts(
        &self,
        account_id: &str,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let item = self
            .get_item(&schema::account_pk(account_id), schema::FIRSTS_SK)
            .await?;
        Ok(item
            .map(|item| {
                item.keys()
                    .filter_map(|k| {
                        let key = k.strip_prefix("first_")?;
                        Some((key.to_string(), get_ts(&item, k)?))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn rollups(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayRollup>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(schema::account_pk(account_id)))
            .expression_attribute_values(":a", s(schema::day_sk(from)))
            .expression_attribute_values(":b", s(schema::day_sk(to)));
        Ok(self
            .query_all(req)
            .await?
            .iter()
            .filter_map(rollup_from_item)
            .collect())
    }

    async fn raw_events(&self, account_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        let items = self
            .query_prefix(&schema::account_pk(account_id), "EVT#")
            .await?;
        items
            .iter()
            .map(|item| {
                let event_id = get_s(item, SK)
                    .and_then(|sk| sk.strip_prefix("EVT#"))
                    .ok_or_else(|| corrupt("raw event", "missing sort key"))?;
                let type_name = get_s(item, "type").unwrap_or_default();
                let event_type = crate::events::EventType::ALL
                    .iter()
                    .find(|t| t.as_str() == type_name)
                    .map(|t| t.as_str())
                    .ok_or_else(|| corrupt("raw event", format!("unknown type {type_name}")))?;
                Ok(RawEvent {
                    account_id: account_id.to_string(),
                    event_id: event_id.to_string(),
                    event_type,
                    contact_id: get_s(item, "contact_id").map(str::to_string),
                    occurred_at: get_ts(item, "occurred_at")
                        .ok_or_else(|| corrupt("raw event", "occurred_at"))?,
                    received_at: get_ts(item, "received_at")
                        .ok_or_else(|| corrupt("raw event", "received_at"))?,
                    body: get_s(item, "body").unwrap_or_default().to_string(),
                    expires_at: get_n(item, TTL) as i64,
                })
            })
            .collect()
    }
}

/// A `DAY#` item; `None` for an item whose sort key is not a day.
fn rollup_from_item(item: &Item) -> Option<DayRollup> {
    let day = get_s(item, SK)
        .and_then(|sk| sk.strip_prefix("DAY#"))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
    Some(DayRollup {
        day,
        events: get_n(item, "events"),
        logins: get_n(item, "logins"),
        reports: get_n(item, "reports"),
        tickets_opened: get_n(item, "tickets_opened"),
        tickets_closed: get_n(item, "tickets_closed"),
        nps_sum: get_n(item, "nps_sum"),
        nps_count: get_n(item, "nps_count"),
        features: item
            .keys()
            .filter_map(|k| {
                k.strip_prefix("f_")
                    .map(|f| (f.to_string(), get_n(item, k)))
            })
            .collect(),
        active_contacts: get_ss(item, "contacts"),
    })
}
