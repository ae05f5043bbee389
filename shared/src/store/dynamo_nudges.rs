//! DynamoDB adapter for `NudgeStore`: nudges with their sparse `due` GSI keys, the delivery
//! log, suppression, frequency-cap reservations, engagement, stats and checkpoints.
//!
//! Every nudge transition is one conditional UpdateItem, so two runs (overlapping schedules,
//! Lambda retries, replays) can never both move a nudge forward.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::dynamo::{
    DynamoStore, Item, get_n, get_s, get_ts, is_conditional_failure, map_err, n, s, ts,
};
use super::schema::{self, GSI_DUE, GSI1PK, GSI1SK, PK, SK, TTL};
use super::{
    AddressFeedback, CapState, CapStore, CheckpointStore, DeliveryLogStore, EngagementKind,
    EngagementStore, KindStats, MessageRef, NudgeStore, SendStore, StoreError, Suppression,
    SuppressionStore,
};
use crate::domain::policy::prune_reservations;
use crate::domain::{
    DeliveryLogEntry, Engagement, Nudge, NudgeKind, NudgeStatus, SuppressionReason,
};

/// Provider-message mappings live as long as raw events.
const MESSAGE_TTL_DAYS: i64 = 400;

fn ts_str(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt {what} item: {e}"))
}

/// GSI keys of a pending nudge. The partition is the bucket of `max(send_at, not_before)`: a
/// nudge planned late (send time already past) lands in a bucket the next run still scans.
fn gsi_keys(
    pk: &str,
    sk: &str,
    send_at: DateTime<Utc>,
    not_before: DateTime<Utc>,
    shards: u32,
) -> (String, String) {
    let key = format!("{pk}/{sk}");
    let gpk = schema::due_partition(send_at.max(not_before), &key, shards);
    let gsk = format!("{}#{pk}#{sk}", ts_str(send_at));
    (gpk, gsk)
}

/// The stored item of a nudge, GSI keys included while pending (what `put_nudge` writes; public
/// so bulk loaders such as `nudge bench reminders` write exactly the same shape).
pub fn nudge_item(nudge: &Nudge, shards: u32) -> Item {
    let pk = schema::account_pk(&nudge.account_id);
    let sk = schema::nudge_sk(&nudge.nudge_id);
    let mut item: Item = HashMap::new();
    item.insert(PK.into(), s(&pk));
    item.insert(SK.into(), s(&sk));
    item.insert("nudge_id".into(), s(&nudge.nudge_id));
    item.insert("account_id".into(), s(&nudge.account_id));
    if let Some(c) = &nudge.contact_id {
        item.insert("contact_id".into(), s(c));
    }
    item.insert("kind".into(), s(nudge.kind.as_str()));
    if let Some(st) = &nudge.stage {
        item.insert("stage".into(), s(st));
    }
    item.insert("variant".into(), s(&nudge.variant));
    item.insert("send_at".into(), ts(nudge.send_at));
    item.insert("function".into(), s(&nudge.function));
    item.insert("vars".into(), s(nudge.vars.to_string()));
    item.insert("status".into(), s(nudge.status.as_str()));
    item.insert("attempts".into(), n(nudge.attempts));
    item.insert("created_at".into(), ts(nudge.created_at));
    if let Some(f) = &nudge.follow_up_of {
        item.insert("follow_up_of".into(), s(f));
    }
    if let Some(r) = &nudge.reason {
        item.insert("reason".into(), s(r));
    }
    if nudge.status == NudgeStatus::Pending {
        let (gpk, gsk) = gsi_keys(&pk, &sk, nudge.send_at, nudge.created_at, shards);
        item.insert(GSI1PK.into(), s(gpk));
        item.insert(GSI1SK.into(), s(gsk));
    }
    item
}

pub(crate) fn nudge_from_item(item: &Item) -> Result<Nudge, StoreError> {
    let get = |k: &str| get_s(item, k).map(str::to_string);
    let kind_s = get_s(item, "kind").unwrap_or_default();
    let kind =
        NudgeKind::parse(kind_s).ok_or_else(|| corrupt("nudge", format!("kind {kind_s}")))?;
    let status_s = get_s(item, "status").unwrap_or_default();
    let status = NudgeStatus::parse(status_s)
        .ok_or_else(|| corrupt("nudge", format!("status {status_s}")))?;
    let vars = get_s(item, "vars")
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("nudge vars", e))?
        .unwrap_or(serde_json::Value::Object(Default::default()));
    Ok(Nudge {
        nudge_id: get("nudge_id").ok_or_else(|| corrupt("nudge", "nudge_id"))?,
        account_id: get("account_id").ok_or_else(|| corrupt("nudge", "account_id"))?,
        contact_id: get("contact_id"),
        kind,
        stage: get("stage"),
        variant: get("variant").unwrap_or_else(|| "a".into()),
        send_at: get_ts(item, "send_at").ok_or_else(|| corrupt("nudge", "send_at"))?,
        function: get("function").unwrap_or_default(),
        vars,
        status,
        attempts: get_n(item, "attempts") as u32,
        lease_owner: get("lease_owner"),
        lease_until: get_ts(item, "lease_until"),
        provider_message_id: get("provider_message_id"),
        created_at: get_ts(item, "created_at").ok_or_else(|| corrupt("nudge", "created_at"))?,
        sent_at: get_ts(item, "sent_at"),
        reason: get("reason"),
        follow_up_of: get("follow_up_of"),
        engagement: Engagement {
            delivered_at: get_ts(item, "delivered_at"),
            opened_at: get_ts(item, "opened_at"),
            clicked_at: get_ts(item, "clicked_at"),
            bounced_at: get_ts(item, "bounced_at"),
            complained_at: get_ts(item, "complained_at"),
        },
    })
}

impl DynamoStore {
    /// One conditional UpdateItem on a nudge; Ok(false) when the condition failed.
    async fn update_nudge(
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
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(true)
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn query_due_partition(
        &self,
        partition: &str,
        upper: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_DUE)
                .key_condition_expression("#gpk = :p AND #gsk <= :u")
                .expression_attribute_names("#gpk", GSI1PK)
                .expression_attribute_names("#gsk", GSI1SK)
                .expression_attribute_values(":p", s(partition))
                .expression_attribute_values(":u", s(upper))
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            let resp = req.send().await.map_err(map_err)?;
            self.meter.record_read(resp.consumed_capacity());
            out.extend(resp.items().iter().cloned());
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn add_stats(&self, kind: &str, variant: &str, counter: &str) -> Result<(), StoreError> {
        let out = self
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
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
        Ok(())
    }
}

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

fn log_from_item(item: &Item) -> Result<DeliveryLogEntry, StoreError> {
    let json = get_s(item, "entry").ok_or_else(|| corrupt("log", "entry"))?;
    serde_json::from_str(json).map_err(|e| corrupt("log", e))
}

#[async_trait]
impl NudgeStore for DynamoStore {
    async fn put_nudge(&self, nudge: &Nudge, shards: u32) -> Result<bool, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(nudge_item(nudge, shards)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(true)
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        }
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
                    "SET #st = :cancelled, #reason = :r, #done = :at REMOVE #gpk, #gsk",
                    "#st = :pending",
                    &[
                        ("#st", "status"),
                        ("#reason", "reason"),
                        ("#done", "finished_at"),
                        ("#gpk", GSI1PK),
                        ("#gsk", GSI1SK),
                    ],
                    vec![
                        (":cancelled", s(NudgeStatus::Cancelled.as_str())),
                        (":pending", s(NudgeStatus::Pending.as_str())),
                        (":r", s(reason)),
                        (":at", ts(at)),
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
        self.get_item(&schema::account_pk(account_id), &schema::nudge_sk(nudge_id))
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
        self.query_prefix(&schema::account_pk(account_id), &schema::nudge_sk(prefix))
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
        use futures::stream::{self, StreamExt, TryStreamExt};
        // '~' sorts after every character of a key, so every send_at <= now matches.
        let upper = format!("{}#~", ts_str(now));
        let partitions: Vec<String> = buckets
            .iter()
            .flat_map(|b| (0..shards.max(1)).map(move |sh| format!("DUE#{b}#{sh}")))
            .collect();
        let items: Vec<Vec<Item>> = stream::iter(partitions)
            .map(|p| {
                let upper = upper.clone();
                async move { self.query_due_partition(&p, &upper).await }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for item in items.into_iter().flatten() {
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
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                out.attributes()
                    .map(nudge_from_item)
                    .transpose()
                    .map(|n| n.filter(|n| n.status == NudgeStatus::Claimed))
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(None)
            }
            Err(e) => Err(map_err(e)),
        }
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
            "SET #st = :sent, #pmid = :pmid, #sent_at = :at, #done = :at \
             REMOVE #gpk, #gsk, #lu, #reason",
            "#lo = :owner",
            &[
                ("#st", "status"),
                ("#pmid", "provider_message_id"),
                ("#sent_at", "sent_at"),
                ("#done", "finished_at"),
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
        shards: u32,
    ) -> Result<bool, StoreError> {
        let pk = schema::account_pk(account_id);
        let sk = schema::nudge_sk(nudge_id);
        let (gpk, gsk) = gsi_keys(&pk, &sk, next_send_at, next_send_at, shards);
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :pending, #send_at = :next, #gpk = :gpk, #gsk = :gsk, #reason = :err \
             REMOVE #lo, #lu",
            "#lo = :owner AND #st = :claimed",
            &[
                ("#st", "status"),
                ("#send_at", "send_at"),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
                ("#reason", "reason"),
                ("#lo", "lease_owner"),
                ("#lu", "lease_until"),
            ],
            vec![
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":claimed", s(NudgeStatus::Claimed.as_str())),
                (":next", ts(next_send_at)),
                (":gpk", s(gpk)),
                (":gsk", s(gsk)),
                (":err", s(error)),
                (":owner", s(owner)),
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
            "SET #st = :failed, #reason = :r, #done = :at REMOVE #gpk, #gsk, #lu",
            "#lo = :owner AND #st = :claimed",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
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
            "SET #st = :failed, #reason = :r, #done = :now REMOVE #gpk, #gsk",
            "#st = :claimed AND #lo = :owner AND #lu < :now",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
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
            "SET #st = :blocked, #reason = :r, #done = :at REMOVE #gpk, #gsk",
            "#st = :pending",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
            ],
            vec![
                (":blocked", s(NudgeStatus::Blocked.as_str())),
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":r", s(reason)),
                (":at", ts(at)),
            ],
        )
        .await
    }
}

#[async_trait]
impl DeliveryLogStore for DynamoStore {
    async fn append_log(&self, entry: &DeliveryLogEntry) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry)
            .map_err(|e| StoreError::Backend(format!("serialising a log entry: {e}")))?;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(schema::account_pk(&entry.account_id)))
            .item(SK, s(schema::log_sk(entry.at, &entry.nudge_id)))
            .item("entry", s(json))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
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
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#sk, :p)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":p", s("LOG#"))
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(map_err)?;
            self.meter.record_read(resp.consumed_capacity());
            for item in resp.items() {
                out.push(log_from_item(item)?);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        crate::domain::log::sort(&mut out);
        Ok(out)
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
        let item = match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                out.attributes().cloned()
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                return Ok(None);
            }
            Err(e) => return Err(map_err(e)),
        };
        let Some(item) = item else { return Ok(None) };
        let mut state = suppression_from_item(&item);
        if let AddressFeedback::SoftBounce { limit } = feedback {
            let already = item
                .get("suppressed")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false);
            if !already && state.soft_streak >= limit.max(1) {
                let out = base()
                    .update_expression("SET suppressed = :t, reason = :r")
                    .condition_expression("attribute_not_exists(reason)")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":r", s(SuppressionReason::SoftBounce.as_str()))
                    .send()
                    .await;
                match out {
                    Ok(out) => {
                        self.meter.record(out.consumed_capacity());
                        state.reason = Some(SuppressionReason::SoftBounce);
                    }
                    Err(e) if is_conditional_failure(&e) => self.meter_conditional_failure(),
                    Err(e) => return Err(map_err(e)),
                }
            }
        }
        Ok(Some(state))
    }
}

#[async_trait]
impl CapStore for DynamoStore {
    async fn cap_state(&self, account_id: &str, contact_id: &str) -> Result<CapState, StoreError> {
        // Strongly consistent: the version must be current for the conditional update.
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::contact_sk(contact_id)))
            .projection_expression("cap_sends, cap_version")
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record_read(resp.consumed_capacity());
        let Some(item) = resp.item() else {
            return Ok(CapState::default());
        };
        let sends = item
            .get("cap_sends")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let t = v.as_s().ok()?;
                        let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
                        Some((k.clone(), t))
                    })
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        Ok(CapState {
            sends,
            version: get_n(item, "cap_version"),
        })
    }

    async fn reserve_cap(
        &self,
        account_id: &str,
        contact_id: &str,
        nudge_id: &str,
        now: DateTime<Utc>,
        expected: &CapState,
    ) -> Result<bool, StoreError> {
        let mut sends = prune_reservations(&expected.sends, now);
        sends.insert(nudge_id.to_string(), now);
        let map: HashMap<String, AttributeValue> =
            sends.into_iter().map(|(k, v)| (k, ts(v))).collect();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::contact_sk(contact_id)))
            .update_expression("SET cap_sends = :m, cap_version = :next")
            .expression_attribute_values(":m", AttributeValue::M(map))
            .expression_attribute_values(":next", n(expected.version + 1))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        req = if expected.version == 0 {
            req.condition_expression("attribute_not_exists(cap_version)")
        } else {
            req.condition_expression("cap_version = :v")
                .expression_attribute_values(":v", n(expected.version))
        };
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(true)
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        }
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
        let out = self
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
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_err)?;
        self.meter.record(out.consumed_capacity());
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
        match req.send().await {
            Ok(out) => {
                self.meter.record(out.consumed_capacity());
                Ok(())
            }
            Err(e) if is_conditional_failure(&e) => {
                self.meter_conditional_failure();
                Ok(())
            }
            Err(e) => Err(map_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn late_nudges_land_in_a_bucket_the_next_run_scans() {
        let send = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let created = Utc.with_ymd_and_hms(2026, 11, 20, 9, 7, 0).unwrap();
        let (gpk, gsk) = gsi_keys("ACCT#a", "NUDGE#n", send, created, 1);
        assert_eq!(gpk, "DUE#2026-11-20T09:00#0");
        assert!(gsk.starts_with("2026-11-20T00:00:00.000Z#ACCT#a#NUDGE#n"));
    }

    #[test]
    fn nudge_items_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let n = Nudge::new(
            "dl:d1:final",
            "acme",
            Some("u-7".into()),
            NudgeKind::DeadlineReminder,
            t,
            "reminders",
            t,
        )
        .with_stage("final")
        .with_vars(serde_json::json!({"title": "x"}));
        let item = nudge_item(&n, 4);
        assert!(item.contains_key(GSI1PK));
        assert_eq!(nudge_from_item(&item).unwrap(), n);
    }
}
