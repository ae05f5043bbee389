//! `SuppressionStore`: suppressed addresses (`ADDR#<sha256>`), from SES feedback.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use chrono::{DateTime, Utc};

use super::{DynamoStore, Item, get_n, get_s, get_ts, n, s, ts};
use crate::domain::SuppressionReason;
use crate::store::schema::{self, PK, SK};
use crate::store::{AddressFeedback, StoreError, Suppression, SuppressionStore};

fn suppression_from_item(item: &Item) -> Suppression {
    let suppressed = item
        .get("suppressed")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false);
    Suppression {
        reason: if suppressed {
            get_s(item, "reason").and_then(SuppressionReason::parse)
        } else {
            None
        },
        soft_streak: get_n(item, "soft_streak") as u32,
        updated_at: get_ts(item, "updated_at"),
    }
}

#[async_trait]
impl SuppressionStore for DynamoStore {
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .get_item(&schema::address_pk(address), schema::SUPPRESSION_SK)
            .await?
            .map(|i| suppression_from_item(&i)))
    }

    async fn record_address_feedback(
        &self,
        address: &str,
        feedback: AddressFeedback,
        at: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError> {
        let pk = schema::address_pk(address);
        let base = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(schema::SUPPRESSION_SK))
                .return_values(ReturnValue::AllNew)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
        };
        let req = match feedback {
            AddressFeedback::Complaint => base()
                .update_expression("SET suppressed = :t, reason = :r, updated_at = :at")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":r", s(SuppressionReason::Complaint.as_str()))
                .expression_attribute_values(":at", ts(at)),
            // A complaint is never downgraded to a bounce.
            AddressFeedback::HardBounce => base()
                .update_expression("SET suppressed = :t, reason = :r, updated_at = :at")
                .condition_expression("attribute_not_exists(reason) OR reason <> :c")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":r", s(SuppressionReason::HardBounce.as_str()))
                .expression_attribute_values(":c", s(SuppressionReason::Complaint.as_str()))
                .expression_attribute_values(":at", ts(at)),
            AddressFeedback::SoftBounce { .. } => base()
                .update_expression("ADD soft_streak :one SET updated_at = :at")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":at", ts(at)),
            // Only touch the item when there is a streak to reset.
            AddressFeedback::Delivered => base()
                .update_expression("SET soft_streak = :zero, updated_at = :at")
                .condition_expression("soft_streak > :zero")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":at", ts(at)),
        };
        let Some(item) = self
            .conditional(req.send().await)?
            .and_then(|out| out.attributes)
        else {
            return Ok(None);
        };
        let mut state = suppression_from_item(&item);
        if let AddressFeedback::SoftBounce { limit } = feedback {
            let already = item
                .get("suppressed")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false);
            if !already && state.soft_streak >= limit.max(1) {
                let req = base()
                    .update_expression("SET suppressed = :t, reason = :r")
                    .condition_expression("attribute_not_exists(reason)")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":r", s(SuppressionReason::SoftBounce.as_str()));
                if self.conditional(req.send().await)?.is_some() {
                    state.reason = Some(SuppressionReason::SoftBounce);
                }
            }
        }
        Ok(Some(state))
    }
}
