//! DynamoDB adapter for the `Store` port, one file per capability (the traits in
//! `store`): this module holds the client, the capacity meter, error mapping and the helpers
//! every capability shares.

mod agenda;
mod caps;
mod checkpoints;
mod deadlines;
mod engagement;
mod erasure;
mod events;
mod health;
mod item;
mod log;
mod nudge_item;
mod nudges;
mod profiles;
#[cfg(test)]
mod sdk_errors;
mod sends;
mod suppression;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use chrono::{DateTime, SecondsFormat, Utc};

use super::StoreError;
use super::schema::{PK, SK};

pub use deadlines::deadline_item;
pub use nudge_item::nudge_item;

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

/// Days a finished nudge and its log entries are kept unless configured otherwise
/// (`Config::delivery_retention_days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// The key [`DynamoStore::open_connection`] reads: no item has it.
const CONNECTION_KEY: &str = "INIT#connection";

#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) meter: Arc<CapacityMeter>,
    /// How long what a finished nudge leaves behind (the nudge, its log entries, its message
    /// mapping) is kept: the `ttl` those items get.
    pub(crate) retention: chrono::Duration,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            meter: Arc::new(CapacityMeter::default()),
            retention: chrono::Duration::days(i64::from(DEFAULT_RETENTION_DAYS)),
        }
    }

    /// The same store keeping finished nudges, log entries and message mappings `days` days.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = chrono::Duration::days(i64::from(days));
        self
    }

    /// The `ttl` (epoch seconds) of an item about a nudge that finished at `at`.
    pub(crate) fn expiry(&self, at: DateTime<Utc>) -> i64 {
        (at + self.retention).timestamp()
    }

    pub fn meter(&self) -> Arc<CapacityMeter> {
        self.meter.clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the connection to DynamoDB (DNS, TCP, TLS, credentials, endpoint) with one
    /// eventually consistent read of a key no item uses (0.5 RCU), so the function's first
    /// request after a cold start reuses it instead of paying the handshake. Called during
    /// init, where it overlaps the secrets' load. A failure is only logged: the first real
    /// request will report it with its context, and retry it if it is transient.
    pub async fn open_connection(&self) {
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(CONNECTION_KEY))
            .key(SK, s(CONNECTION_KEY))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        if let Err(e) = read {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "could not open the connection to DynamoDB during init");
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Every item of the table, each as its attribute map's text (a Scan: tests only).
#[cfg(any(test, feature = "test-support"))]
#[async_trait::async_trait]
impl super::conformance::ScanText for DynamoStore {
    async fn every_item_text(&self) -> Result<Vec<String>, StoreError> {
        let req = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true);
        Ok(self
            .scan_all(req)
            .await?
            .iter()
            .map(|item| format!("{item:?}"))
            .collect())
    }
}

/// The output of a write request (PutItem, UpdateItem, DeleteItem), for its capacity.
pub(crate) trait WriteOutput {
    fn capacity(&self) -> Option<&ConsumedCapacity>;
}

impl WriteOutput for PutItemOutput {
    fn capacity(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity()
    }
}

impl WriteOutput for UpdateItemOutput {
    fn capacity(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity()
    }
}

impl WriteOutput for DeleteItemOutput {
    fn capacity(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity()
    }
}

impl DynamoStore {
    /// A failed conditional write is still billed (1 WCU for a small item), but DynamoDB
    /// returns no ConsumedCapacity with the error: count it here.
    fn meter_conditional_failure(&self) {
        let cc = ConsumedCapacity::builder().capacity_units(1.0).build();
        self.meter.record(Some(&cc));
    }

    /// The result of a conditional write (`req.send().await`), metered: `Some(output)` when
    /// it was written, `None` when its condition failed; any other error is mapped.
    pub(crate) fn conditional<O, E, R>(
        &self,
        sent: Result<O, SdkError<E, R>>,
    ) -> Result<Option<O>, StoreError>
    where
        O: WriteOutput,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        match sent {
            Ok(out) => {
                self.meter.record(out.capacity());
                Ok(Some(out))
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(None)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// The result of an unconditional write, metered.
    pub(crate) fn written<O, E, R>(&self, sent: Result<O, SdkError<E, R>>) -> Result<O, StoreError>
    where
        O: WriteOutput,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let out = sent.map_err(map_err)?;
        self.meter.record(out.capacity());
        Ok(out)
    }
}

/// Maps an SDK error to the store's error kinds; `ConditionalCheckFailed` is handled by
/// [`DynamoStore::conditional`] before this is reached.
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

fn is_conditional_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(crate) fn ts(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(ts_str(t))
}

pub type Item = HashMap<String, AttributeValue>;

/// Read consistency of a base-table read. `Strong` costs twice the read units (1 RCU per 4 KB
/// instead of 0.5) and is what a read whose answer decides a write needs: an eventually
/// consistent read may miss a write made a moment before (by a concurrent ingest request).
/// GSI reads cannot be strongly consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Eventual,
    Strong,
}

impl Read {
    fn is_strong(self) -> bool {
        self == Read::Strong
    }
}

// Readers for the items whose attribute names are data (rollup features `f_<name>`, firsts
// `first_<key>`) or that are read leniently (cap reservations, checkpoints); every other item
// is mapped by its item struct (see `item`).

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
pub(crate) fn get_ss(item: &Item, k: &str) -> BTreeSet<String> {
    item.get(k)
        .and_then(|v| v.as_ss().ok())
        .map(|v| v.iter().cloned().collect())
        .unwrap_or_default()
}

/// A timestamp as stored: RFC 3339, UTC, milliseconds (`2026-11-20T00:00:00.000Z`), so string
/// order is time order.
pub(crate) fn ts_str(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt {what} item: {e}"))
}

impl DynamoStore {
    /// Every item a Query returns, through the SDK's paginator; each page's capacity is
    /// metered (the flattened item stream would hide it).
    pub(crate) async fn query_all(&self, req: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut pages = req
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(map_err)?;
            self.meter.record_read(page.consumed_capacity());
            out.extend(page.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// Every item a Scan returns, page by page like [`Self::query_all`].
    pub(crate) async fn scan_all(&self, req: ScanFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut pages = req
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(map_err)?;
            self.meter.record_read(page.consumed_capacity());
            out.extend(page.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// All items of a partition whose sort key starts with `prefix`, eventually consistent.
    pub(crate) async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_prefix_read(pk, prefix, Read::Eventual).await
    }

    /// [`Self::query_prefix`] with the given read consistency.
    pub(crate) async fn query_prefix_read(
        &self,
        pk: &str,
        prefix: &str,
        read: Read,
    ) -> Result<Vec<Item>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(read.is_strong())
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":p", s(prefix));
        self.query_all(req).await
    }

    /// Every item of partition `pk` whose sort key lies in `from..=to`.
    pub(crate) async fn query_between(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":a", s(from))
            .expression_attribute_values(":b", s(to));
        self.query_all(req).await
    }

    /// One item, eventually consistent.
    pub(crate) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get_item_read(pk, sk, Read::Eventual).await
    }

    /// [`Self::get_item`] with the given read consistency.
    pub(crate) async fn get_item_read(
        &self,
        pk: &str,
        sk: &str,
        read: Read,
    ) -> Result<Option<Item>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(read.is_strong())
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
