//! `DeliveryLogStore`: one item per log entry (`LOG#<at>#<nudge_id>`), the entry as JSON.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use super::item::{from_item, json_text, to_item};
use super::{DynamoStore, Item, s};
use crate::domain::DeliveryLogEntry;
use crate::store::schema::{self, SK};
use crate::store::{DeliveryLogStore, StoreError};

/// A log entry item: the entry as JSON text (its own serde shape is the `nudge simulate`
/// contract, see `domain::log`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LogItem {
    pk: String,
    sk: String,
    #[serde(with = "json_text")]
    entry: DeliveryLogEntry,
    /// `schema::TTL`: epoch seconds. The entry holds an address and a subject, so it goes
    /// with the store's retention (absent on entries written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
}

pub(super) fn log_item(entry: &DeliveryLogEntry, expires_at: i64) -> Result<Item, StoreError> {
    to_item(
        "log",
        &LogItem {
            pk: schema::account_pk(&entry.account_id),
            sk: schema::log_sk(entry.at, &entry.nudge_id),
            entry: entry.clone(),
            ttl: Some(expires_at),
        },
    )
}

pub(super) fn log_from_item(item: &Item) -> Result<DeliveryLogEntry, StoreError> {
    from_item::<LogItem>("log", item).map(|i| i.entry)
}

#[async_trait]
impl DeliveryLogStore for DynamoStore {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(log_item(entry, self.expiry(entry.at))?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn delivery_log(&self, account_id: &str) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        self.query_prefix(&schema::account_pk(account_id), "LOG#")
            .await?
            .iter()
            .map(log_from_item)
            .collect()
    }

    async fn delivery_log_since(
        &self,
        account_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        // `LOG#<at in ms>#...`: the time sorts as text, and `~` sorts after every digit.
        let from_sk = schema::log_sk_from(since);
        self.query_between(
            &schema::account_pk(account_id),
            &from_sk,
            schema::LOG_SK_END,
        )
        .await?
        .iter()
        .map(log_from_item)
        .collect()
    }

    async fn all_delivery_log(&self) -> Result<Vec<DeliveryLogEntry>, StoreError> {
        let req = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#sk, :p)")
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":p", s("LOG#"));
        let mut out = self
            .scan_all(req)
            .await?
            .iter()
            .map(log_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        crate::domain::log::sort(&mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Channel, LogStatus, NudgeKind};

    #[test]
    fn a_log_entry_round_trips_through_its_item_as_json_text_with_its_expiry() {
        let entry = DeliveryLogEntry {
            at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            function: "reminders".into(),
            kind: NudgeKind::DeadlineReminder,
            stage: Some(crate::domain::Stage::Final),
            channel: Channel::Email,
            account_id: "acme".into(),
            contact_id: Some("u-7".into()),
            to: "u7@example.jp".into(),
            subject: "Due soon".into(),
            locale: "ja".into(),
            status: LogStatus::Sent,
            reason: None,
            nudge_id: "dl/d1/1/final".into(),
            variant: "a".into(),
            provider_message_id: Some("pm-1".into()),
        };
        let item = log_item(&entry, 1_800_000_000).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("ACCT#acme".into()));
        assert_eq!(
            item["sk"],
            AttributeValue::S("LOG#2026-11-20T00:00:00.000Z#dl/d1/1/final".into())
        );
        assert_eq!(
            item["entry"],
            AttributeValue::S(serde_json::to_string(&entry).unwrap())
        );
        assert_eq!(item[schema::TTL], AttributeValue::N("1800000000".into()));
        assert_eq!(item.len(), 4);
        assert_eq!(log_from_item(&item).unwrap(), entry);
    }
}
