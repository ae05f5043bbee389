//! `EventStore`: raw events (the de-duplication point), daily usage rollups, first occurrences.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, millis, to_item};
use super::{DynamoStore, Item, corrupt, get_n, get_s, get_ss, get_ts, n, s, ts};
use crate::events::EventType;
use crate::store::schema::{self, PK, SK};
use crate::store::{DayRollup, EventStore, Inserted, RawEvent, RollupDelta, StoreError};

#[async_trait]
impl EventStore for DynamoStore {
    async fn insert_raw_event(&self, ev: &RawEvent) -> Result<Inserted, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("raw event", &RawEventItem::new(ev))?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
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
    ) -> Result<BTreeSet<String>, StoreError> {
        if firsts.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut sets = Vec::new();
        // The old values of the attributes set: those that come back existed already, so the
        // rest are this call's firsts (no extra request).
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::FIRSTS_SK))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (i, (key, at)) in firsts.iter().enumerate() {
            sets.push(format!("#k{i} = if_not_exists(#k{i}, :v{i})"));
            req = req
                .expression_attribute_names(format!("#k{i}"), format!("first_{key}"))
                .expression_attribute_values(format!(":v{i}"), ts(*at));
        }
        let req = req.update_expression(format!("SET {}", sets.join(", ")));
        let out = self.written(req.send().await)?;
        let existed = out.attributes();
        Ok(firsts
            .keys()
            .filter(|k| !existed.is_some_and(|a| a.contains_key(&format!("first_{k}"))))
            .cloned()
            .collect())
    }

    async fn forget_firsts(
        &self,
        account_id: &str,
        firsts: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        for (key, at) in firsts {
            let req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(schema::account_pk(account_id)))
                .key(SK, s(schema::FIRSTS_SK))
                .update_expression("REMOVE #k")
                .condition_expression("#k = :v")
                .expression_attribute_names("#k", format!("first_{key}"))
                .expression_attribute_values(":v", ts(*at))
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            // A first that another batch has since re-recorded is theirs: leave it.
            self.conditional(req.send().await)?;
        }
        Ok(())
    }

    async fn firsts(
        &self,
        account_id: &str,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let item = self
            .get_item(&schema::account_pk(account_id), schema::FIRSTS_SK)
            .await?;
        Ok(item.as_ref().map(firsts_from_item).unwrap_or_default())
    }

    async fn rollups(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayRollup>, StoreError> {
        let (from_sk, to_sk) = (schema::day_sk(from), schema::day_sk(to));
        Ok(self
            .query_between(&schema::account_pk(account_id), &from_sk, &to_sk)
            .await?
            .iter()
            .filter_map(rollup_from_item)
            .collect())
    }

    async fn raw_events(&self, account_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        self.query_prefix(&schema::account_pk(account_id), "EVT#")
            .await?
            .iter()
            .map(|item| from_item::<RawEventItem>("raw event", item)?.into_event(account_id))
            .collect()
    }
}

/// A raw event (`EVT#<event_id>`), TTL'd.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RawEventItem {
    pk: String,
    sk: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(with = "millis")]
    occurred_at: DateTime<Utc>,
    #[serde(with = "millis")]
    received_at: DateTime<Utc>,
    #[serde(default)]
    body: String,
    /// `schema::TTL`: epoch seconds.
    #[serde(default)]
    ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
}

impl RawEventItem {
    fn new(ev: &RawEvent) -> RawEventItem {
        RawEventItem {
            pk: schema::account_pk(&ev.account_id),
            sk: schema::event_sk(&ev.event_id),
            event_type: ev.event_type.to_string(),
            occurred_at: ev.occurred_at,
            received_at: ev.received_at,
            body: ev.body.clone(),
            ttl: ev.expires_at,
            contact_id: ev.contact_id.clone(),
        }
    }

    fn into_event(self, account_id: &str) -> Result<RawEvent, StoreError> {
        let event_id = self
            .sk
            .strip_prefix("EVT#")
            .ok_or_else(|| corrupt("raw event", "sort key"))?;
        let event_type = self
            .event_type
            .parse::<EventType>()
            .map_err(|_| corrupt("raw event", format!("unknown type {}", self.event_type)))?
            .as_str();
        Ok(RawEvent {
            account_id: account_id.to_string(),
            event_id: event_id.to_string(),
            event_type,
            contact_id: self.contact_id,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            body: self.body,
            expires_at: self.ttl,
        })
    }
}

/// The `FIRSTS` item: `first_<key>` = time.
pub(super) fn firsts_from_item(item: &Item) -> BTreeMap<String, DateTime<Utc>> {
    item.keys()
        .filter_map(|k| {
            let key = k.strip_prefix("first_")?;
            Some((key.to_string(), get_ts(item, k)?))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_raw_event_round_trips_through_its_item() {
        let ev = RawEvent {
            account_id: "acme".into(),
            event_id: "e-1".into(),
            event_type: EventType::DeadlineSet.as_str(),
            contact_id: Some("u-7".into()),
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            received_at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 1).unwrap(),
            body: r#"{"type":"deadline_set"}"#.into(),
            expires_at: 1_800_000_000,
        };
        let item = to_item("raw event", &RawEventItem::new(&ev)).unwrap();
        assert_eq!(item["type"], AttributeValue::S("deadline_set".into()));
        assert_eq!(item[schema::TTL], AttributeValue::N("1800000000".into()));
        assert_eq!(item["sk"], AttributeValue::S("EVT#e-1".into()));
        let back = from_item::<RawEventItem>("raw event", &item)
            .unwrap()
            .into_event("acme")
            .unwrap();
        assert_eq!(
            (
                back.event_id,
                back.event_type,
                back.contact_id,
                back.body,
                back.expires_at
            ),
            (
                ev.event_id,
                ev.event_type,
                ev.contact_id,
                ev.body,
                ev.expires_at
            )
        );
        assert_eq!(
            (back.occurred_at, back.received_at),
            (ev.occurred_at, ev.received_at)
        );
    }
}
