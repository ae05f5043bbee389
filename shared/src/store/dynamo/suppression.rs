//! `SuppressionStore`: suppressed addresses (`ADDR#<sha256>`), from SES feedback.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, opt_millis};
use super::{DynamoStore, Item, n, s, ts};
use crate::domain::SuppressionReason;
use crate::store::schema::{self, PK, SK};
use crate::store::{AddressFeedback, StoreError, Suppression, SuppressionStore};

/// The suppression item. `reason` stays a string: an unknown reason reads as "not suppressed"
/// rather than failing the send path.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SuppressionItem {
    #[serde(default)]
    suppressed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default)]
    soft_streak: u32,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    updated_at: Option<DateTime<Utc>>,
}

impl SuppressionItem {
    fn into_state(self) -> Suppression {
        Suppression {
            reason: self
                .reason
                .filter(|_| self.suppressed)
                .as_deref()
                .and_then(SuppressionReason::parse),
            soft_streak: self.soft_streak,
            updated_at: self.updated_at,
        }
    }
}

fn suppression_from_item(item: &Item) -> Result<SuppressionItem, StoreError> {
    from_item("suppression", item)
}

#[async_trait]
impl SuppressionStore for DynamoStore {
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .get_item(&schema::address_pk(address), schema::SUPPRESSION_SK)
            .await?
            .map(|i| suppression_from_item(&i).map(SuppressionItem::into_state))
            .transpose()?)
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
        let stored = suppression_from_item(&item)?;
        let already = stored.suppressed;
        let mut state = stored.into_state();
        if let AddressFeedback::SoftBounce { limit } = feedback
            && !already
            && state.soft_streak >= limit.max(1)
        {
            let req = base()
                .update_expression("SET suppressed = :t, reason = :r")
                .condition_expression("attribute_not_exists(reason)")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":r", s(SuppressionReason::SoftBounce.as_str()));
            if self.conditional(req.send().await)?.is_some() {
                state.reason = Some(SuppressionReason::SoftBounce);
            }
        }
        Ok(Some(state))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::item::to_item;
    use super::*;

    fn item_of(state: &Suppression) -> Item {
        to_item(
            "suppression",
            &SuppressionItem {
                suppressed: state.reason.is_some(),
                reason: state.reason.map(|r| r.as_str().to_string()),
                soft_streak: state.soft_streak,
                updated_at: state.updated_at,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_suppression_round_trips_through_its_item() {
        let state = Suppression {
            reason: Some(SuppressionReason::SoftBounce),
            soft_streak: 3,
            updated_at: Some(Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()),
        };
        let item = item_of(&state);
        assert_eq!(item["suppressed"], AttributeValue::Bool(true));
        assert_eq!(item["reason"], AttributeValue::S("soft_bounce".into()));
        assert_eq!(item["soft_streak"], AttributeValue::N("3".into()));
        let back = suppression_from_item(&item).unwrap().into_state();
        assert_eq!(back, state);
        let clear = Suppression::default();
        assert_eq!(
            suppression_from_item(&item_of(&clear))
                .unwrap()
                .into_state(),
            clear
        );
    }

    #[test]
    fn a_reason_counts_only_while_suppressed_and_only_if_known() {
        let mut item = Item::new();
        item.insert("reason".into(), AttributeValue::S("complaint".into()));
        assert_eq!(
            suppression_from_item(&item).unwrap().into_state().reason,
            None
        );
        item.insert("suppressed".into(), AttributeValue::Bool(true));
        assert_eq!(
            suppression_from_item(&item).unwrap().into_state().reason,
            Some(SuppressionReason::Complaint)
        );
        item.insert("reason".into(), AttributeValue::S("moon_phase".into()));
        assert_eq!(
            suppression_from_item(&item).unwrap().into_state().reason,
            None
        );
    }
}
