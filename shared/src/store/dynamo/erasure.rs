//! `ErasureStore`: one contact's personal data out of the account's partition.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};

use super::log::log_from_item;
use super::nudge_item::nudge_from_item;
use super::{DynamoStore, Read, n, s, ts};
use crate::domain::NudgeStatus;
use crate::store::schema::{self, GSI1PK, GSI1SK, PK, SK};
use crate::store::{ContactErasure, ERASED, ErasureStore, StoreError};

/// The variables of an erased contact's nudges (JSON text, as `vars` is stored).
const NO_VARS: &str = "{}";

#[async_trait]
impl ErasureStore for DynamoStore {
    async fn erase_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactErasure>, StoreError> {
        let pk = schema::account_pk(account_id);
        let contact_sk = schema::contact_sk(contact_id);
        let Some(contact) = self.get_item_read(&pk, &contact_sk, Read::Strong).await? else {
            return Ok(None);
        };
        let mut out = ContactErasure {
            cap_reservations: contact
                .get("cap_sends")
                .and_then(|v| v.as_m().ok())
                .map_or(0, |m| m.len()),
            ..ContactErasure::default()
        };
        let items = self
            .query_prefix_read(&pk, &schema::nudge_sk(""), Read::Strong)
            .await?;
        for item in &items {
            let nudge = nudge_from_item(item)?;
            if nudge.contact_id.as_deref() != Some(contact_id) {
                continue;
            }
            if nudge.status == NudgeStatus::Pending
                && self.cancel_erased(account_id, &nudge.nudge_id, at).await?
            {
                out.cancelled += 1;
                out.nudges_redacted += 1;
                continue;
            }
            if nudge.status == NudgeStatus::Claimed {
                out.in_flight += 1;
            }
            let empty = nudge.vars.as_object().is_some_and(|m| m.is_empty());
            if !empty
                && self
                    .update_nudge(
                        account_id,
                        &nudge.nudge_id,
                        "SET #vars = :none",
                        "attribute_exists(#pk)",
                        &[("#vars", "vars"), ("#pk", PK)],
                        vec![(":none", s(NO_VARS))],
                    )
                    .await?
            {
                out.nudges_redacted += 1;
            }
        }
        for item in self.query_prefix(&pk, "LOG#").await? {
            let mut entry = log_from_item(&item)?;
            if entry.contact_id.as_deref() != Some(contact_id)
                || (entry.to.is_empty() && entry.subject.is_empty())
            {
                continue;
            }
            entry.to.clear();
            entry.subject.clear();
            let text = serde_json::to_string(&entry)
                .map_err(|e| StoreError::Backend(format!("log entry: {e}")))?;
            let Some(sk) = item.get(SK).cloned() else {
                continue;
            };
            // Only the entry changes: its key and `ttl` stay.
            let req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, sk)
                .update_expression("SET #entry = :e")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#entry", "entry")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":e", s(text))
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if self.conditional(req.send().await)?.is_some() {
                out.log_entries_redacted += 1;
            }
        }
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(contact_sk))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(Some(out))
    }
}

impl DynamoStore {
    /// Cancels a pending nudge of an erased contact and empties its variables in one
    /// conditional write; false if it is no longer pending.
    async fn cancel_erased(
        &self,
        account_id: &str,
        nudge_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #st = :cancelled, #reason = :r, #done = :at, #ttl = :ttl, #vars = :none \
             REMOVE #gpk, #gsk",
            "#st = :pending",
            &[
                ("#st", "status"),
                ("#reason", "reason"),
                ("#done", "finished_at"),
                ("#ttl", schema::TTL),
                ("#vars", "vars"),
                ("#gpk", GSI1PK),
                ("#gsk", GSI1SK),
            ],
            vec![
                (":cancelled", s(NudgeStatus::Cancelled.as_str())),
                (":pending", s(NudgeStatus::Pending.as_str())),
                (":r", s(ERASED)),
                (":at", ts(at)),
                (":ttl", n(self.expiry(at))),
                (":none", s(NO_VARS)),
            ],
        )
        .await
    }
}
