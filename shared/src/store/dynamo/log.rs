//! `DeliveryLogStore`: one item per log entry (`LOG#<at>#<nudge_id>`), the entry as JSON.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::{DynamoStore, Item, corrupt, get_s, s};
use crate::domain::DeliveryLogEntry;
use crate::store::schema::{self, PK, SK};
use crate::store::{DeliveryLogStore, StoreError};

fn log_from_item(item: &Item) -> Result<DeliveryLogEntry, StoreError> {
    let json = get_s(item, "entry").ok_or_else(|| corrupt("log", "entry"))?;
    serde_json::from_str(json).map_err(|e| corrupt("log", e))
}

#[async_trait]
impl DeliveryLogStore for DynamoStore {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry)
            .map_err(|e| StoreError::Backend(format!("serialising a log entry: {e}")))?;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(schema::account_pk(&entry.account_id)))
            .item(SK, s(schema::log_sk(entry.at, &entry.nudge_id)))
            .item("entry", s(json))
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
