//! `SendStore`: the send-time transitions of a nudge, each one conditional UpdateItem.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};
use chrono::{DateTime, Duration, Utc};

use super::nudge_item::{gsi_keys, nudge_from_item};
use super::{DynamoStore, n, s, ts};
use crate::domain::{Nudge, NudgeStatus};
use crate::store::schema::{self, GSI1PK, GSI1SK, PK, SK};
use crate::store::{SendStore, StoreError};

#[async_trait]
impl SendStore for DynamoStore {
    async fn claim(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Nudge>, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::nudge_sk(nudge_id)))
            .update_expression("SET #st = :claimed, #lo = :owner, #lu = :until ADD #att :one")
            .condition_expression("#st = :pending")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#lo", "lease_owner")
            .expression_attribute_names("#lu", "lease_until")
            .expression_attribute_names("#att", "attempts")
            .expression_attribute_values(":claimed", s(NudgeStatus::Claimed.as_str()))
            .expression_attribute_values(":pending", s(NudgeStatus::Pending.as_str()))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", ts(now + lease))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let Some(out) = self.conditional(req.send().await)? else {
            return Ok(None);
        };
        out.attributes()
            .map(nudge_from_item)
            .transpose()
            .map(|n| n.filter(|n| n.status == NudgeStatus::Claimed))
    }

    async fn mark_sent(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :sent, #pmid = :pmid, #sent_at = :at, #done = :at, #ttl = :ttl \
             REMOVE #gpk, #gsk, #lu, #reason",
            "#lo = :owner",
            &[
                ("#st", "status"),
                ("#pmid", "provider_message_id"),
                ("#sent_at", "sent_at"),
                ("#done", "finished_at"),
                ("#ttl", schema::TTL),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
                ("#lo", "lease_owner"),
                ("#lu", "lease_until"),
                ("#reason", "reason"),
            ],
            vec![
                (":sent", s(NudgeStatus::Sent.as_str())),
                (":pmid", s(provider_message_id)),
                (":at", ts(at)),
                (":ttl", n(self.expiry(at))),
                (":owner", s(owner)),
            ],
        )
        .await
    }

    async fn mark_retry(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        next_send_at: DateTime<Utc>,
        error: &str,
        refund_attempt: bool,
        shards: u32,
    ) -> Result<bool, StoreError> {
        let pk = schema::account_pk(account_id);
        let sk = schema::nudge_sk(nudge_id);
        let (gpk, gsk) = gsi_keys(&pk, &sk, next_send_at, next_send_at, shards);
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :pending, #send_at = :next, #gpk = :gpk, #gsk = :gsk, #reason = :err \
             REMOVE #lo, #lu ADD #att :refund",
            "#lo = :owner AND #st = :claimed",
            &[
                ("#st", "status"),
                ("#send_at", "send_at"),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
                ("#reason", "reason"),
                ("#lo", "lease_owner"),
                ("#lu", "lease_until"),
                ("#att", "attempts"),
            ],
            vec![
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":claimed", s(NudgeStatus::Claimed.as_str())),
                (":next", ts(next_send_at)),
                (":gpk", s(gpk)),
                (":gsk", s(gsk)),
                (":err", s(error)),
                (":owner", s(owner)),
                (":refund", n(if refund_attempt { -1 } else { 0 })),
            ],
        )
        .await
    }

    async fn mark_failed(
        &self,
        account_id: &str,
        nudge_id: &str,
        owner: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :failed, #reason = :r, #done = :at, #ttl = :ttl REMOVE #gpk, #gsk, #lu",
            "#lo = :owner AND #st = :claimed",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
                ("#ttl", schema::TTL),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
                ("#lo", "lease_owner"),
                ("#lu", "lease_until"),
            ],
            vec![
                (":failed", s(NudgeStatus::Failed.as_str())),
                (":claimed", s(NudgeStatus::Claimed.as_str())),
                (":r", s(reason)),
                (":at", ts(at)),
                (":ttl", n(self.expiry(at))),
                (":owner", s(owner)),
            ],
        )
        .await
    }

    async fn expire_lease(
        &self,
        account_id: &str,
        nudge_id: &str,
        seen_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :failed, #reason = :r, #done = :now, #ttl = :ttl REMOVE #gpk, #gsk",
            "#st = :claimed AND #lo = :owner AND #lu < :now",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
                ("#ttl", schema::TTL),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
                ("#lo", "lease_owner"),
                ("#lu", "lease_until"),
            ],
            vec![
                (":failed", s(NudgeStatus::Failed.as_str())),
                (":claimed", s(NudgeStatus::Claimed.as_str())),
                (":r", s("unknown_outcome")),
                (":now", ts(now)),
                (":ttl", n(self.expiry(now))),
                (":owner", s(seen_owner)),
            ],
        )
        .await
    }

    async fn mark_blocked(
        &self,
        account_id: &str,
        nudge_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :blocked, #reason = :r, #done = :at, #ttl = :ttl REMOVE #gpk, #gsk",
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
                (":blocked", s(NudgeStatus::Blocked.as_str())),
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":r", s(reason)),
                (":at", ts(at)),
                (":ttl", n(self.expiry(at))),
            ],
        )
        .await
    }
}
