//! `CheckpointStore`: where scheduled functions left off (`SYS/CHECKPOINT#<function>`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};

use super::{DynamoStore, get_ts, s, ts};
use crate::store::schema::{self, PK, SK};
use crate::store::{CheckpointStore, StoreError};

#[async_trait]
impl CheckpointStore for DynamoStore {
    async fn checkpoint(&self, function: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .get_item(schema::SYS_PK, &schema::checkpoint_sk(function))
            .await?
            .and_then(|i| get_ts(&i, "at")))
    }

    async fn set_checkpoint(&self, function: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::SYS_PK))
            .key(SK, s(schema::checkpoint_sk(function)))
            .update_expression("SET #at = :at")
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", ts(at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.conditional(req.send().await)?;
        Ok(())
    }
}
