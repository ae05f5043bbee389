//! `EngagementStore`: provider message ids (`MSG#<id>`), first engagement per nudge, and the
//! per-kind counters (`STATS`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, to_item};
use super::{DynamoStore, Item, n, s, ts};
use crate::store::schema::{self, PK, SK};
use crate::store::{EngagementKind, EngagementStore, KindStats, MessageRef, StoreError};

fn variant_a() -> String {
    "a".into()
}

/// `MSG#<provider message id>/MSG`: where SES feedback leads back to (TTL'd).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MessageItem {
    pk: String,
    sk: String,
    account_id: String,
    nudge_id: String,
    kind: String,
    #[serde(default = "variant_a")]
    variant: String,
    /// `schema::TTL`: epoch seconds.
    ttl: i64,
}

impl MessageItem {
    /// `expires_at`: the store's retention from the send, like the nudge it leads to.
    fn new(provider_message_id: &str, r: &MessageRef, expires_at: i64) -> MessageItem {
        MessageItem {
            pk: schema::message_pk(provider_message_id),
            sk: schema::MESSAGE_SK.to_string(),
            account_id: r.account_id.clone(),
            nudge_id: r.nudge_id.clone(),
            kind: r.kind.clone(),
            variant: r.variant.clone(),
            ttl: expires_at,
        }
    }

    fn into_ref(self) -> MessageRef {
        MessageRef {
            account_id: self.account_id,
            nudge_id: self.nudge_id,
            kind: self.kind,
            variant: self.variant,
        }
    }
}

/// `STATS/KIND#<kind>#<variant>`: counters added one at a time, so any may be absent.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StatsItem {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    variant: String,
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    delivered: u64,
    #[serde(default)]
    opened: u64,
    #[serde(default)]
    clicked: u64,
    #[serde(default)]
    bounced: u64,
    #[serde(default)]
    complained: u64,
}

impl StatsItem {
    fn into_stats(self) -> KindStats {
        KindStats {
            kind: self.kind,
            variant: self.variant,
            sent: self.sent,
            delivered: self.delivered,
            opened: self.opened,
            clicked: self.clicked,
            bounced: self.bounced,
            complained: self.complained,
        }
    }
}

fn stats_from_item(item: &Item) -> Result<KindStats, StoreError> {
    from_item::<StatsItem>("stats", item).map(StatsItem::into_stats)
}

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
        let item = to_item(
            "message",
            &MessageItem::new(provider_message_id, r, self.expiry(at)),
        )?;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
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
        // An unreadable mapping reads as unknown (as it always has): the feedback is dropped.
        Ok(item.and_then(|item| {
            from_item::<MessageItem>("message", &item)
                .inspect_err(|e| tracing::error!(error = %e, "unreadable message item"))
                .ok()
                .map(MessageItem::into_ref)
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
        self.query_prefix(schema::STATS_PK, "KIND#")
            .await?
            .iter()
            .map(stats_from_item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    #[test]
    fn a_message_ref_round_trips_through_its_item() {
        let r = MessageRef {
            account_id: "acme".into(),
            nudge_id: "dl/d1/1/final".into(),
            kind: "deadline_reminder".into(),
            variant: "b".into(),
        };
        let item = to_item("message", &MessageItem::new("pm-1", &r, 1_800_000_000)).unwrap();
        let s = |v: &str| AttributeValue::S(v.into());
        let want: Item = [
            ("pk", s("MSG#pm-1")),
            ("sk", s("MSG")),
            ("account_id", s("acme")),
            ("nudge_id", s("dl/d1/1/final")),
            ("kind", s("deadline_reminder")),
            ("variant", s("b")),
            (schema::TTL, AttributeValue::N("1800000000".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(item, want);
        let back = from_item::<MessageItem>("message", &item).unwrap();
        assert_eq!(back.into_ref(), r);
    }

    #[test]
    fn kind_stats_round_trip_and_absent_counters_are_zero() {
        let stats = KindStats {
            kind: "risk_nudge".into(),
            variant: "a".into(),
            sent: 10,
            delivered: 9,
            opened: 5,
            clicked: 2,
            bounced: 1,
            complained: 0,
        };
        let item = to_item(
            "stats",
            &StatsItem {
                kind: stats.kind.clone(),
                variant: stats.variant.clone(),
                sent: stats.sent,
                delivered: stats.delivered,
                opened: stats.opened,
                clicked: stats.clicked,
                bounced: stats.bounced,
                complained: stats.complained,
            },
        )
        .unwrap();
        assert_eq!(item["sent"], AttributeValue::N("10".into()));
        assert_eq!(stats_from_item(&item).unwrap(), stats);
        // What `count_sent` alone leaves (ADD sent, SET kind, variant).
        let mut first = Item::new();
        first.insert("kind".into(), AttributeValue::S("risk_nudge".into()));
        first.insert("variant".into(), AttributeValue::S("a".into()));
        first.insert("sent".into(), AttributeValue::N("1".into()));
        let read = stats_from_item(&first).unwrap();
        assert_eq!((read.sent, read.opened), (1, 0));
    }
}
