//! `NudgeStore`: nudges with their sparse `due` GSI keys.
//!
//! Every nudge transition is one conditional UpdateItem, so two runs (overlapping schedules,
//! Lambda retries, replays) can never both move a nudge forward.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};

use super::{DynamoStore, Item, corrupt, get_n, get_s, get_ts, n, s, ts, ts_str};
use crate::domain::{Engagement, Nudge, NudgeKind, NudgeStatus};
use crate::store::schema::{self, GSI_DUE, GSI1PK, GSI1SK, PK, SK};
use crate::store::{NudgeStore, StoreError};

/// GSI keys of a pending nudge. The partition is the bucket of `max(send_at, not_before)`: a
/// nudge planned late (send time already past) lands in a bucket the next run still scans.
pub(super) fn gsi_keys(
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

    async fn query_due_partition(
        &self,
        partition: &str,
        upper: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_DUE)
            .key_condition_expression("#gpk = :p AND #gsk <= :u")
            .expression_attribute_names("#gpk", GSI1PK)
            .expression_attribute_names("#gsk", GSI1SK)
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":u", s(upper));
        self.query_all(req).await
    }
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
