//! DynamoDB adapter for the `Store` port.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use chrono::{DateTime, NaiveDate, Utc};

use super::schema::{self, PK, SK, TTL};
use super::{
    AccountChange, AccountRecord, Applied, ContactRecord, DayRollup, EventStore, Inserted,
    ProfileStore, RawEvent, RollupDelta, StoreError,
};
use crate::events::{AccountProfile, ContactProfile};

/// Consumed capacity, summed over every request this adapter made (for benches and the
/// figures in the docs). Units are stored ×1000 to keep fractional units in an atomic.
#[derive(Debug, Default)]
pub struct CapacityMeter {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    requests: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    pub read_units: f64,
    pub write_units: f64,
    pub requests: u64,
}

impl CapacityMeter {
    pub fn snapshot(&self) -> Capacity {
        Capacity {
            read_units: self.read_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            write_units: self.write_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    pub fn record(&self, cc: Option<&ConsumedCapacity>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let Some(cc) = cc else { return };
        // DynamoDB reports read/write split only for some calls; CapacityUnits is the total.
        let read = cc.read_capacity_units().unwrap_or(0.0);
        let write = cc.write_capacity_units().unwrap_or(0.0);
        let total = cc.capacity_units().unwrap_or(0.0);
        let (read, write) = if read == 0.0 && write == 0.0 {
            (0.0, total)
        } else {
            (read, write)
        };
        self.read_milli
            .fetch_add((read * 1000.0).round() as u64, Ordering::Relaxed);
        self.write_milli
            .fetch_add((write * 1000.0).round() as u64, Ordering::Relaxed);
    }

    /// For reads, whose ConsumedCapacity carries only `CapacityUnits`.
    pub fn record_read(&self, cc: Option<&ConsumedCapacity>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let Some(cc) = cc else { return };
        let units = cc.capacity_units().unwrap_or(0.0);
        self.read_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) meter: Arc<CapacityMeter>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            meter: Arc::new(CapacityMeter::default()),
        }
    }

    pub fn meter(&self) -> Arc<CapacityMeter> {
        self.meter.clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl DynamoStore {
    /// A failed conditional write is still billed (1 WCU for a small item), but DynamoDB
    /// returns no ConsumedCapacity with the error: count it here.
    pub(crate) fn meter_conditional_failure(&self) {
        let cc = ConsumedCapacity::builder().capacity_units(1.0).build();
        self.meter.record(Some(&cc));
    }
}

/// Maps an SDK error to the store's error kinds; `ConditionalCheckFailed` is handled by callers
/// before this is reached.
pub(crate) fn map_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TransactionConflictException" => StoreError::Throttled,
                "InternalServerError" | "ServiceUnavailable" => {
                    StoreError::Unavailable(code.to_string())
                }
                _ => StoreError::Backend(format!(
                    "{code}: {}",
                    se.err().message().unwrap_or("no message")
                )),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{e}"))
        }
        _ => StoreError::Backend(format!("{e}")),
    }
}

pub(crate) fn is_conditional_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(crate) fn ts(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(|s| s.as_str())
}
pub(crate) fn get_n(item: &Item, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}
pub(crate) fn get_ts(item: &Item, k: &str) -> Option<DateTime<Utc>> {
    get_s(item, k)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}
pub(crate) fn get_bool(item: &Item, k: &str) -> bool {
    item.get(k)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}
pub(crate) fn get_ss(item: &Item, k: &str) -> BTreeSet<String> {
    item.get(k)
        .and_then(|v| v.as_ss().ok())
        .map(|v| v.iter().cloned().collect())
        .unwrap_or_default()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt {what} item: {e}"))
}

impl DynamoStore {
    /// All items of a partition whose sort key starts with `prefix` (paginated).
    pub(crate) async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":p", s(prefix))
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(map_err)?;
            self.meter.record_read(resp.consumed_capacity());
            out.extend(resp.items().iter().cloned());
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(crate) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record_read(resp.consumed_capacity());
        Ok(resp.item().cloned())
    }
}

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
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(Inserted::New)
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(Inserted::Duplicate)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn delete_raw_event(&self, account_id: &str, event_id: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::event_sk(event_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
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
        let out = req
            .update_expression(format!("ADD {}", adds.join(", ")))
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
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
        let out = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
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
        let pk = schema::account_pk(account_id);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":a", s(schema::day_sk(from)))
                .expression_attribute_values(":b", s(schema::day_sk(to)))
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(map_err)?;
            self.meter.record_read(resp.consumed_capacity());
            for item in resp.items() {
                let Some(day) = get_s(item, SK)
                    .and_then(|sk| sk.strip_prefix("DAY#"))
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                else {
                    continue;
                };
                out.push(DayRollup {
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
                });
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
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

#[async_trait]
impl ProfileStore for DynamoStore {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising account profile: {e}")))?;
        self.lww_set(
            &schema::account_pk(account_id),
            schema::PROFILE_SK,
            "profile_at",
            at,
            vec![("profile", profile_av)],
        )
        .await
    }

    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising contact profile: {e}")))?;
        self.lww_set(
            &schema::account_pk(account_id),
            &schema::contact_sk(contact_id),
            "profile_at",
            at,
            vec![("profile", profile_av)],
        )
        .await
    }

    async fn change_account(
        &self,
        account_id: &str,
        change: &AccountChange,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let pk = schema::account_pk(account_id);
        let (clock, sets): (&str, Vec<(&str, AttributeValue)>) = match change {
            AccountChange::Paused => (
                "paused_clock",
                vec![
                    ("paused", AttributeValue::Bool(true)),
                    ("paused_at", ts(at)),
                ],
            ),
            AccountChange::Resumed => (
                "paused_clock",
                vec![("paused", AttributeValue::Bool(false))],
            ),
            AccountChange::AdminChanged { contact_id } => {
                ("admin_clock", vec![("admin_contact_id", s(contact_id))])
            }
            AccountChange::Churned => ("churn_clock", vec![("churned_at", ts(at))]),
            AccountChange::Renewed { renewal_date } => {
                let mut v = vec![("renewed_at", ts(at))];
                if let Some(d) = renewal_date {
                    v.push(("renewal_date", s(d.format("%Y-%m-%d").to_string())));
                }
                ("renew_clock", v)
            }
        };
        self.lww_set(&pk, schema::PROFILE_SK, clock, at, sets).await
    }

    async fn unsubscribe(
        &self,
        account_id: &str,
        contact_id: &str,
        category: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::contact_sk(contact_id)))
            .update_expression("ADD unsubscribed :c")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![category.to_string()]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
        Ok(())
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        let Some(item) = self
            .get_item(&schema::account_pk(account_id), schema::PROFILE_SK)
            .await?
        else {
            return Ok(None);
        };
        let mut profile: Option<AccountProfile> = match item.get("profile") {
            Some(av) => Some(
                serde_dynamo::from_attribute_value(av.clone())
                    .map_err(|e| corrupt("account profile", e))?,
            ),
            None => None,
        };
        // contract_renewed may carry a new renewal date after the profile was written.
        let renewal = get_s(&item, "renewal_date")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if let (Some(p), Some(d)) = (profile.as_mut(), renewal) {
            p.renewal_date = p.renewal_date.max(d);
        }
        Ok(Some(AccountRecord {
            account_id: account_id.to_string(),
            profile,
            profile_at: get_ts(&item, "profile_at"),
            paused: get_bool(&item, "paused"),
            paused_at: get_ts(&item, "paused_at"),
            admin_contact_id: get_s(&item, "admin_contact_id").map(str::to_string),
            churned_at: get_ts(&item, "churned_at"),
            renewed_at: get_ts(&item, "renewed_at"),
        }))
    }

    async fn contact(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let item = self
            .get_item(
                &schema::account_pk(account_id),
                &schema::contact_sk(contact_id),
            )
            .await?;
        item.map(|item| contact_from_item(account_id, &item))
            .transpose()
    }
}

fn contact_from_item(account_id: &str, item: &Item) -> Result<ContactRecord, StoreError> {
    let contact_id = get_s(item, SK)
        .and_then(|sk| sk.strip_prefix("CONTACT#"))
        .ok_or_else(|| corrupt("contact", "missing sort key"))?;
    let profile = match item.get("profile") {
        Some(av) => Some(
            serde_dynamo::from_attribute_value(av.clone())
                .map_err(|e| corrupt("contact profile", e))?,
        ),
        None => None,
    };
    Ok(ContactRecord {
        account_id: account_id.to_string(),
        contact_id: contact_id.to_string(),
        profile,
        profile_at: get_ts(item, "profile_at"),
        unsubscribed: get_ss(item, "unsubscribed"),
    })
}

impl DynamoStore {
    /// Sets attributes only if `clock` is absent or older than `at` (last writer wins by the
    /// event's `occurred_at`, so a late old event never overwrites newer state).
    async fn lww_set(
        &self,
        pk: &str,
        sk: &str,
        clock: &str,
        at: DateTime<Utc>,
        sets: Vec<(&str, AttributeValue)>,
    ) -> Result<Applied, StoreError> {
        let mut exprs = vec!["#clock = :at".to_string()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("attribute_not_exists(#clock) OR #clock < :at")
            .expression_attribute_names("#clock", clock)
            .expression_attribute_values(":at", ts(at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (i, (name, value)) in sets.into_iter().enumerate() {
            exprs.push(format!("#a{i} = :v{i}"));
            req = req
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        match req
            .update_expression(format!("SET {}", exprs.join(", ")))
            .send()
            .await
        {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(Applied::Applied)
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(Applied::Stale)
            }
            Err(e) => Err(map_err(e)),
        }
    }
}
