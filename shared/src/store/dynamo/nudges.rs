//! `NudgeStore`: nudges with their sparse `due` GSI keys.
//!
//! Every nudge transition is one conditional UpdateItem, so two runs (overlapping schedules,
//! Lambda retries, replays) can never both move a nudge forward.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};

use super::nudge_item::{gsi_keys, nudge_from_item, nudge_item};
use super::{DynamoStore, Item, Read, n, s, ts, ts_str};
use crate::domain::{Nudge, NudgeStatus};
use crate::store::schema::{self, GSI_DUE, GSI1PK, GSI1SK, PK, SK};
use crate::store::{NudgeStore, StoreError};

impl DynamoStore {
    /// One conditional UpdateItem on a nudge; Ok(false) when the condition failed.
    pub(super) async fn update_nudge(
        &self,
        account_id: &str,
        nudge_id: &str,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::nudge_sk(nudge_id)))
            .update_expression(update)
            .condition_expression(condition)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        Ok(self.conditional(req.send().await)?.is_some())
    }

    /// Every item of the `due` index's `partitions` whose sort key is at most `upper` (and at
    /// least `lower`, if given), 16 partitions at a time: the read of the sweep (nudges) and of
    /// the milestones run (agenda tasks).
    pub(super) async fn query_due_partitions(
        &self,
        partitions: Vec<String>,
        lower: Option<&str>,
        upper: &str,
    ) -> Result<Vec<Item>, StoreError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let items: Vec<Vec<Item>> = stream::iter(partitions)
            .map(|p| async move {
                let condition = if lower.is_some() {
                    "#gpk = :p AND #gsk BETWEEN :l AND :u"
                } else {
                    "#gpk = :p AND #gsk <= :u"
                };
                let mut req = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(GSI_DUE)
                    .key_condition_expression(condition)
                    .expression_attribute_names("#gpk", GSI1PK)
                    .expression_attribute_names("#gsk", GSI1SK)
                    .expression_attribute_values(":p", s(p))
                    .expression_attribute_values(":u", s(upper));
                if let Some(l) = lower {
                    req = req.expression_attribute_values(":l", s(l));
                }
                self.query_all(req).await
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(items.into_iter().flatten().collect())
    }
}

#[async_trait]
impl NudgeStore for DynamoStore {
    async fn put_nudge(&self, nudge: &Nudge, shards: u32) -> Result<bool, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(nudge_item(nudge, shards)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        Ok(self.conditional(req.send().await)?.is_some())
    }

    async fn defer_pending(
        &self,
        account_id: &str,
        nudge_id: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError> {
        let pk = schema::account_pk(account_id);
        let sk = schema::nudge_sk(nudge_id);
        let (gpk, gsk) = gsi_keys(&pk, &sk, send_at, send_at, shards);
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #send_at = :at, #gpk = :gpk, #gsk = :gsk",
            "#st = :pending",
            &[
                ("#st", "status"),
                ("#send_at", "send_at"),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
            ],
            vec![
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":at", ts(send_at)),
                (":gpk", s(gpk)),
                (":gsk", s(gsk)),
            ],
        )
        .await
    }

    async fn reopen_cancelled(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        send_at: DateTime<Utc>,
        shards: u32,
    ) -> Result<bool, StoreError> {
        let pk = schema::account_pk(account_id);
        let sk = schema::nudge_sk(nudge_id);
        let (gpk, gsk) = gsi_keys(&pk, &sk, send_at, send_at, shards);
        // Pending again: no end, no expiry, back on the due index.
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :pending, #send_at = :at, #gpk = :gpk, #gsk = :gsk \
             REMOVE #reason, #done, #ttl",
            "#st = :cancelled AND #reason = :r",
            &[
                ("#st", "status"),
                ("#send_at", "send_at"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
                ("#ttl", schema::TTL),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
            ],
            vec![
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":cancelled", s(NudgeStatus::Cancelled.as_str())),
                (":r", s(reason)),
                (":at", ts(send_at)),
                (":gpk", s(gpk)),
                (":gsk", s(gsk)),
            ],
        )
        .await
    }

    async fn cancel_pending(
        &self,
        account_id: &str,
        nudge_ids: &[String],
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut cancelled = 0;
        for id in nudge_ids {
            if self
                .update_nudge(
                    account_id,
                    id,
                    "SET #st = :cancelled, #reason = :r, #done = :at, #ttl = :ttl \
                     REMOVE #gpk, #gsk",
                    "#st = :pending",
                    &[
                        ("#st", "status"),
                        ("#reason", "reason"),
                        ("#done", "finished_at"),
                        ("#ttl", schema::TTL),
                        ("#gpk", GSI1PK),
                        ("#gsk", GSI1SK),
                    ],
                    vec![
                        (":cancelled", s(NudgeStatus::Cancelled.as_str())),
                        (":pending", s(NudgeStatus::Pending.as_str())),
                        (":r", s(reason)),
                        (":at", ts(at)),
                        (":ttl", n(self.expiry(at))),
                    ],
                )
                .await?
            {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    async fn nudge(&self, account_id: &str, nudge_id: &str) -> Result<Option<Nudge>, StoreError> {
        // Strongly consistent: a nudge whose planning write just lost is delivered as read.
        self.get_item_read(
            &schema::account_pk(account_id),
            &schema::nudge_sk(nudge_id),
            Read::Strong,
        )
        .await?
        .map(|i| nudge_from_item(&i))
        .transpose()
    }

    async fn nudges(&self, account_id: &str) -> Result<Vec<Nudge>, StoreError> {
        self.nudges_with_prefix(account_id, "").await
    }

    async fn nudges_with_prefix(
        &self,
        account_id: &str,
        prefix: &str,
    ) -> Result<Vec<Nudge>, StoreError> {
        // Strongly consistent: which stages to cancel or plan again is decided on it.
        self.query_prefix_read(
            &schema::account_pk(account_id),
            &schema::nudge_sk(prefix),
            Read::Strong,
        )
        .await?
        .iter()
        .map(nudge_from_item)
        .collect()
    }

    async fn due_nudges(
        &self,
        buckets: &[String],
        shards: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Nudge>, StoreError> {
        // '~' sorts after every character of a key, so every send_at <= now matches.
        let upper = format!("{}#~", ts_str(now));
        let partitions: Vec<String> = buckets
            .iter()
            .flat_map(|b| (0..shards.max(1)).map(move |sh| format!("DUE#{b}#{sh}")))
            .collect();
        let items = self.query_due_partitions(partitions, None, &upper).await?;
        let mut out = Vec::new();
        for item in items {
            match nudge_from_item(&item) {
                Ok(nudge) => out.push(nudge),
                Err(e) => tracing::error!(error = %e, "skipping a corrupt nudge item"),
            }
        }
        out.sort_by(|a, b| {
            (a.send_at, &a.account_id, &a.nudge_id).cmp(&(b.send_at, &b.account_id, &b.nudge_id))
        });
        Ok(out)
    }
}
