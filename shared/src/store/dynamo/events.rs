//! `EventStore`: raw events (the de-duplication point), daily usage rollups, first occurrences.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, millis, opt_millis, to_item};
use super::{DynamoStore, Item, Read, corrupt, get_n, get_s, get_ss, get_ts, map_err, n, s, ts};
use crate::events::EventType;
use crate::store::schema::{self, PK, SK};
use crate::store::{
    Counted, CountedEvents, DayRollup, EventStore, Inserted, MAX_DAY_CONTACTS, RawEvent,
    RollupDelta, StoreError,
};

#[async_trait]
impl EventStore for DynamoStore {
    async fn insert_raw_event(&self, ev: &RawEvent) -> Result<Inserted, StoreError> {
        // On a failed condition the existing record comes back with the error (no extra read,
        // no extra cost), so its state decides between a duplicate and an unfinished event.
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item("raw event", &RawEventItem::new(ev))?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let existing = match &sent {
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
                _ => None,
            },
            _ => None,
        };
        match existing {
            None => {
                self.written(sent)?;
                Ok(Inserted::New)
            }
            Some(item) => {
                self.meter_conditional_failure();
                Ok(match item.as_ref().map(raw_state) {
                    Some(Some(since)) => Inserted::Unfinished { since },
                    _ => Inserted::Duplicate,
                })
            }
        }
    }

    async fn mark_applied(&self, account_id: &str, event_id: &str) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::event_sk(event_id)))
            .update_expression("SET #st = :applied REMOVE applying_at")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":applied", s(APPLIED))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.conditional(req.send().await)?;
        Ok(())
    }

    async fn count_applied(
        &self,
        account_id: &str,
        day: NaiveDate,
        delta: &RollupDelta,
        events: CountedEvents<'_>,
    ) -> Result<Counted, StoreError> {
        let pk = schema::account_pk(account_id);
        let mut writes = Vec::with_capacity(events.len());
        for id in events.confirm {
            let update = Update::builder()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(schema::event_sk(id)))
                .update_expression("SET #st = :applied REMOVE applying_at")
                .condition_expression("#st = :applying")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":applied", s(APPLIED))
                .expression_attribute_values(":applying", s(APPLYING))
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            writes.push(TransactWriteItem::builder().update(update).build());
        }
        // The records come from one request body (at most `events::MAX_BODY_BYTES`, 1 MiB),
        // so a transaction stays far below its 4 MB limit.
        for ev in events.create {
            // A failed condition returns the existing record: its state tells a duplicate
            // from an earlier attempt's unfinished record.
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item("raw event", &RawEventItem::applied(ev))?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let mut delta = Cow::Borrowed(delta);
        loop {
            let mut items = Vec::with_capacity(writes.len() + 1);
            if let Some(rollup) = RollupUpdate::new(&delta) {
                items.push(
                    TransactWriteItem::builder()
                        .update(rollup.transact(&self.table, &pk, &schema::day_sk(day))?)
                        .build(),
                );
            }
            let with_rollup = items.len();
            if with_rollup == 0 && writes.is_empty() {
                return Ok(Counted::Counted {
                    contacts_full: false,
                });
            }
            items.extend(writes.iter().cloned());
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Counted::Counted {
                    contacts_full: matches!(delta, Cow::Owned(_)),
                });
            };
            let failed = |r: &CancellationReason| r.code() == Some("ConditionalCheckFailed");
            let per_write = reasons.get(with_rollup..).unwrap_or_default();
            let mut applied: Vec<String> = events
                .confirm
                .iter()
                .zip(per_write)
                .filter(|(_, r)| failed(r))
                .map(|(id, _)| id.clone())
                .collect();
            let mut unfinished = Vec::new();
            for (ev, r) in events
                .create
                .iter()
                .zip(per_write.iter().skip(events.confirm.len()))
                .filter(|(_, r)| failed(r))
            {
                let existing = match r.item() {
                    Some(item) => Some(item.clone()),
                    None => {
                        let sk = schema::event_sk(&ev.event_id);
                        self.get_item_read(&pk, &sk, Read::Strong).await?
                    }
                };
                match existing.as_ref().map(raw_state) {
                    Some(Some(_)) => unfinished.push(ev.event_id.clone()),
                    // Gone again since (its TTL expired meanwhile): a resend creates it.
                    None => {
                        return Err(StoreError::Unavailable(
                            "an event's record changed while it was counted".into(),
                        ));
                    }
                    Some(None) => applied.push(ev.event_id.clone()),
                }
            }
            if !applied.is_empty() || !unfinished.is_empty() {
                return Ok(Counted::Conflicts {
                    applied,
                    unfinished,
                });
            }
            match reasons.first() {
                // The day's contacts are full: count without this delta's.
                Some(r) if with_rollup == 1 && failed(r) && !delta.contacts.is_empty() => {
                    delta = Cow::Owned(delta.without_contacts());
                }
                _ => return Err(cancelled(&reasons)),
            }
        }
    }

    async fn add_rollup(
        &self,
        account_id: &str,
        day: NaiveDate,
        d: &RollupDelta,
    ) -> Result<(), StoreError> {
        let mut delta = Cow::Borrowed(d);
        while let Some(rollup) = RollupUpdate::new(&delta) {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(schema::account_pk(account_id)))
                .key(SK, s(schema::day_sk(day)))
                .update_expression(&rollup.expression)
                .set_expression_attribute_names(rollup.names())
                .set_expression_attribute_values(rollup.values())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if let Some(c) = &rollup.condition {
                req = req.condition_expression(c);
            }
            if self.conditional(req.send().await)?.is_some() {
                return Ok(());
            }
            // The day's contacts are full: add the counters alone.
            delta = Cow::Owned(delta.without_contacts());
        }
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
            .iter()
            .filter(|(k, at)| {
                existed
                    .and_then(|a| a.get(&format!("first_{k}")))
                    .is_none_or(|old| *old == ts(**at))
            })
            .map(|(k, _)| k.clone())
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

/// A raw record's `state` while its effects are being applied, and once they all held.
const APPLYING: &str = "applying";
const APPLIED: &str = "applied";

/// The time a raw record has been `applying` since; `None` when applied (a record without a
/// state predates states and was applied or compensated before the answer).
fn raw_state(item: &Item) -> Option<DateTime<Utc>> {
    (get_s(item, "state") == Some(APPLYING))
        .then(|| get_ts(item, "applying_at"))
        .flatten()
}

impl DynamoStore {
    /// One `TransactWriteItems`, metered: `None` when it was written, the cancellation reasons
    /// (one per item) when a condition or a conflict cancelled it; any other error is mapped.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match sent {
            Ok(out) => {
                for cc in out.consumed_capacity() {
                    self.meter.record(Some(cc));
                }
                Ok(None)
            }
            Err(e) => match cancellation_reasons(&e) {
                Some(reasons) => {
                    // A cancelled transaction is billed like the writes it would have made.
                    self.meter_conditional_failure();
                    Ok(Some(reasons))
                }
                None => Err(map_err(e)),
            },
        }
    }
}

/// The reasons of a cancelled transaction; `None` for any other error.
fn cancellation_reasons<R>(
    e: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<CancellationReason>> {
    match e {
        SdkError::ServiceError(se) => match se.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => {
                Some(c.cancellation_reasons().to_vec())
            }
            _ => None,
        },
        _ => None,
    }
}

/// A cancelled transaction that no condition explains: a conflict with another transaction
/// or throttling is worth a retry, anything else (a validation error) is not.
fn cancelled(reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons
        .iter()
        .filter_map(CancellationReason::code)
        .filter(|c| *c != "None")
        .collect();
    if codes.iter().any(|c| {
        matches!(
            *c,
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    }) {
        return StoreError::Throttled;
    }
    let message = reasons
        .iter()
        .find_map(CancellationReason::message)
        .unwrap_or("no message");
    StoreError::Backend(format!(
        "transaction cancelled ({}): {message}",
        codes.join(", ")
    ))
}

/// The `ADD` of a rollup delta to its `DAY#` item, for an UpdateItem or a transaction's
/// Update. While the delta carries contacts, it holds only if the day's set is not full yet.
struct RollupUpdate {
    expression: String,
    condition: Option<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl RollupUpdate {
    /// `None` when there is nothing to add (no request is sent).
    fn new(d: &RollupDelta) -> Option<RollupUpdate> {
        let mut u = RollupUpdate {
            expression: String::new(),
            condition: None,
            names: Vec::new(),
            values: Vec::new(),
        };
        let mut adds: Vec<String> = Vec::new();
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
                u.values.push((format!(":{name}"), n(v)));
            }
        }
        // Feature names are validated lowercase snake case, so they are safe attribute names
        // behind a placeholder.
        for (i, (feature, count)) in d.features.iter().enumerate() {
            adds.push(format!("#f{i} :f{i}"));
            u.names.push((format!("#f{i}"), format!("f_{feature}")));
            u.values.push((format!(":f{i}"), n(count)));
        }
        if !d.contacts.is_empty() {
            adds.push("contacts :contacts".into());
            u.values.push((
                ":contacts".into(),
                AttributeValue::Ss(d.contacts.iter().cloned().collect()),
            ));
            u.condition =
                Some("attribute_not_exists(contacts) OR size(contacts) < :max_contacts".into());
            u.values.push((":max_contacts".into(), n(MAX_DAY_CONTACTS)));
        }
        if adds.is_empty() {
            return None;
        }
        u.expression = format!("ADD {}", adds.join(", "));
        Some(u)
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.iter().cloned().collect())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        Some(self.values.iter().cloned().collect())
    }

    fn transact(&self, table: &str, pk: &str, sk: &str) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(&self.expression)
            .set_condition_expression(self.condition.clone())
            .set_expression_attribute_names(self.names())
            .set_expression_attribute_values(self.values())
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))
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
    /// `applying` until every effect held, then `applied`; absent on records from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    applying_at: Option<DateTime<Utc>>,
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
            state: Some(APPLYING.into()),
            applying_at: Some(ev.received_at),
        }
    }

    /// The record of an event whose count is its only effect, created `applied` with it.
    fn applied(ev: &RawEvent) -> RawEventItem {
        RawEventItem {
            state: Some(APPLIED.into()),
            applying_at: None,
            ..RawEventItem::new(ev)
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
