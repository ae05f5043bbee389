//! `EngagementStore`: provider message ids (`MSG#<id>`), first engagement per nudge, and the
//! per-kind counters (`STATS`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Duration, Utc};

use super::{DynamoStore, get_n, get_s, n, s, ts};
use crate::store::schema::{self, PK, SK, TTL};
use crate::store::{EngagementKind, EngagementStore, KindStats, MessageRef, StoreError};

/// Provider-message mappings live as long as raw events.
const MESSAGE_TTL_DAYS: i64 = 400;

impl DynamoStore {
    async fn add_stats(&self, kind: &str, variant: &str, counter: &str) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::STATS_PK))
            .key(SK, s(schema::stats_sk(kind, variant)))
            .update_expression("ADD #c :one SET #k = :k, #v = :v")
            .expression_attribute_names("#c", counter)
            .expression_attribute_names("#k", "kind")
            .expression_attribute_names("#v", "variant")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":k", s(kind))
            .expression_attribute_values(":v", s(variant))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }
}

#[async_trait]
impl EngagementStore for DynamoStore {
    async fn record_message(
        &self,
        provider_message_id: &str,
        r: &MessageRef,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(schema::message_pk(provider_message_id)))
            .item(SK, s(schema::MESSAGE_SK))
            .item("account_id", s(&r.account_id))
            .item("nudge_id", s(&r.nudge_id))
            .item("kind", s(&r.kind))
            .item("variant", s(&r.variant))
            .item(TTL, n((at + Duration::days(MESSAGE_TTL_DAYS)).timestamp()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn message_ref(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<MessageRef>, StoreError> {
        let item = self
            .get_item(&schema::message_pk(provider_message_id), schema::MESSAGE_SK)
            .await?;
        Ok(item.and_then(|i| {
            Some(MessageRef {
                account_id: get_s(&i, "account_id")?.to_string(),
                nudge_id: get_s(&i, "nudge_id")?.to_string(),
                kind: get_s(&i, "kind")?.to_string(),
                variant: get_s(&i, "variant").unwrap_or("a").to_string(),
            })
        }))
    }

    async fn record_engagement(
        &self,
        r: &MessageRef,
        what: EngagementKind,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let first = self
            .update_nudge(
                &r.account_id,
                &r.nudge_id,
                "SET #f = :at",
                "attribute_exists(#pk) AND attribute_not_exists(#f)",
                &[("#f", what.attribute()), ("#pk", PK)],
                vec![(":at", ts(at))],
            )
            .await?;
        if first && let Some(counter) = what.counter() {
            self.add_stats(&r.kind, &r.variant, counter).await?;
        }
        Ok(first)
    }

    async fn count_sent(&self, kind: &str, variant: &str) -> Result<(), StoreError> {
        self.add_stats(kind, variant, "sent").await
    }

    async fn kind_stats(&self) -> Result<Vec<KindStats>, StoreError> {
        Ok(self
            .query_prefix(schema::STATS_PK, "KIND#")
            .await?
            .iter()
            .map(|i| KindStats {
                kind: get_s(i, "kind").unwrap_or_default().to_string(),
                variant: get_s(i, "variant").unwrap_or_default().to_string(),
                sent: get_n(i, "sent"),
                delivered: get_n(i, "delivered"),
                opened: get_n(i, "opened"),
                clicked: get_n(i, "clicked"),
                bounced: get_n(i, "bounced"),
                complained: get_n(i, "complained"),
            })
            .collect())
    }
}
