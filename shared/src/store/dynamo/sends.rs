//! `SendStore`: the send-time transitions of a nudge, each one conditional UpdateItem.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use chrono::{DateTime, Duration, Utc};

use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem, Update};

use super::log::log_item;
use super::nudge_item::{gsi_keys, nudge_from_item, nudge_item};
use super::{DynamoStore, n, s, ts};
use crate::domain::{Nudge, NudgeStatus};
use crate::store::schema::{self, GSI1PK, GSI1SK, PK, SK};
use crate::store::{SendStore, SentMark, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

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
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let sent = req.send().await;
        // The SDK resends a claim whose answer was lost; the resend then fails its condition on
        // the claim the first attempt made. Ours (same owner, same lease) is still ours.
        if let Err(SdkError::ServiceError(se)) = &sent
            && let UpdateItemError::ConditionalCheckFailedException(e) = se.err()
            && let Some(old) = e.item()
        {
            self.meter_conditional_failure();
            let mine = nudge_from_item(old)?;
            let ours = mine.status == NudgeStatus::Claimed
                && mine.lease_owner.as_deref() == Some(owner)
                && mine.lease_until.map(|u| u.timestamp_millis())
                    == Some((now + lease).timestamp_millis());
            return Ok(ours.then_some(mine));
        }
        let Some(out) = self.conditional(sent)? else {
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
        mark: &SentMark<'_>,
    ) -> Result<bool, StoreError> {
        let update = "SET #st = :sent, #pmid = :pmid, #sent_at = :at, #done = :at, #ttl = :ttl \
             REMOVE #gpk, #gsk, #lu, #reason";
        let names = [
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
        ];
        let values = vec![
            (":sent", s(NudgeStatus::Sent.as_str())),
            (":pmid", s(mark.provider_message_id)),
            (":at", ts(mark.at)),
            (":ttl", n(self.expiry(mark.at))),
            (":owner", s(mark.owner)),
        ];
        if mark.log.is_none() && mark.follow_up.is_none() {
            return self
                .update_nudge(account_id, nudge_id, update, "#lo = :owner", &names, values)
                .await;
        }
        let pk = schema::account_pk(account_id);
        let mut nudge = Update::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(schema::nudge_sk(nudge_id)))
            .update_expression(update)
            .condition_expression("#lo = :owner");
        for (k, v) in names {
            nudge = nudge.expression_attribute_names(k, v);
        }
        for (k, v) in values {
            nudge = nudge.expression_attribute_values(k, v);
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .update(nudge.build().map_err(backend)?)
                .build(),
        ];
        if let Some(entry) = mark.log {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(log_item(entry, self.expiry(entry.at))?))
                .build()
                .map_err(backend)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let mut follow_up = mark.follow_up;
        loop {
            let mut items = items.clone();
            if let Some(fu) = follow_up {
                // A pending follow-up is this one, written again (a repeated mark); one that
                // moved on is left alone.
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(nudge_item(fu, mark.shards)?))
                    .condition_expression("attribute_not_exists(#pk) OR #st = :pending")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":pending", s(NudgeStatus::Pending.as_str()))
                    .build()
                    .map_err(backend)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            let Some(reasons) = self.transact(items).await? else {
                return Ok(true);
            };
            let failed = |r: &CancellationReason| r.code() == Some("ConditionalCheckFailed");
            if reasons.first().is_some_and(failed) {
                return Ok(false);
            }
            match (follow_up, reasons.last()) {
                (Some(_), Some(r)) if failed(r) => follow_up = None,
                _ => {
                    return Err(StoreError::Backend(format!(
                        "marking {nudge_id} sent was cancelled: {reasons:?}"
                    )));
                }
            }
        }
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
