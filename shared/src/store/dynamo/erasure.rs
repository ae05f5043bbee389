//! `ErasureStore`: one contact's personal data out of the account's partition.
//!
//! Reads are strongly consistent (what is redacted is decided on them); every write is one
//! UpdateItem conditional on the item still existing (an expired raw event is not recreated),
//! and the contact item is deleted last, so a run that fails half-way is simply repeated:
//! what it already removed is found removed and counts nothing.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};

use super::log::log_from_item;
use super::nudge_item::nudge_from_item;
use super::{DynamoStore, Item, Read, get_s, n, s, ts};
use crate::domain::NudgeStatus;
use crate::events::EventType;
use crate::events::erase::{erase_personal_properties, nps_comment};
use crate::store::erasure::{forget_quotes, stored_forms};
use crate::store::schema::{self, GSI1PK, GSI1SK, PK, SK};
use crate::store::{ContactErasure, ERASED, ErasureStore, StoreError};

/// The variables of an erased contact's nudges (JSON text, as `vars` is stored).
const NO_VARS: &str = "{}";

/// A raw event of the contact, as read.
struct RawBody {
    sk: String,
    event_id: String,
    event_type: Option<EventType>,
    body: String,
}

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

        // Their NPS answers are known through their raw events (the satisfaction item keys an
        // answer by its event id only); the comments' texts, to find where they are quoted.
        let raw = self.raw_bodies(&pk, contact_id).await?;
        let answered: Vec<&str> = raw
            .iter()
            .filter(|r| r.event_type == Some(EventType::NpsResponse))
            .map(|r| r.event_id.as_str())
            .collect();
        let mut comments: Vec<String> = raw
            .iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .filter_map(|v: serde_json::Value| nps_comment(&v).map(str::to_string))
            .collect();
        let commented = self.commented_answers(&pk, &answered).await?;
        comments.extend(commented.iter().map(|(_, c)| c.clone()));
        let quotes = stored_forms(comments.iter().map(String::as_str));

        let items = self
            .query_prefix_read(&pk, &schema::nudge_sk(""), Read::Strong)
            .await?;
        for item in &items {
            let nudge = nudge_from_item(item)?;
            if nudge.contact_id.as_deref() != Some(contact_id) {
                // Another nudge (a CSM alert) may quote their comment.
                let mut vars = nudge.vars.clone();
                if forget_quotes(&mut vars, &quotes)
                    && self.set_vars(account_id, &nudge.nudge_id, &vars).await?
                {
                    out.comments_removed += 1;
                }
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
            let Some(sk) = get_s(&item, SK) else {
                continue;
            };
            // Only the entry changes: its key and `ttl` stay.
            if self
                .update_existing(
                    &pk,
                    sk,
                    "SET #entry = :e",
                    &[("#entry", "entry")],
                    vec![(":e", s(text))],
                )
                .await?
            {
                out.log_entries_redacted += 1;
            }
        }
        for item in self
            .query_prefix_read(&pk, &schema::deadline_sk(""), Read::Strong)
            .await?
        {
            let personal =
                !get_s(&item, "title").unwrap_or_default().is_empty() || item.contains_key("link");
            let Some(sk) = get_s(&item, SK) else {
                continue;
            };
            // The contact id stays: a deadline without one goes to the account's admin.
            if get_s(&item, "contact_id") == Some(contact_id)
                && personal
                && self
                    .update_existing(
                        &pk,
                        sk,
                        "SET #title = :empty REMOVE #link",
                        &[("#title", "title"), ("#link", "link")],
                        vec![(":empty", s(""))],
                    )
                    .await?
            {
                out.deadlines_redacted += 1;
            }
        }
        for (event_id, _) in &commented {
            let answer = format!("{}{event_id}", schema::NPS_PREFIX);
            let req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(schema::SAT_SK))
                .update_expression("REMOVE #a.#c")
                .condition_expression("attribute_exists(#a.#c)")
                .expression_attribute_names("#a", answer)
                .expression_attribute_names("#c", "comment")
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if self.conditional(req.send().await)?.is_some() {
                out.comments_removed += 1;
            }
        }
        for r in &raw {
            let Ok(mut wire) = serde_json::from_str::<serde_json::Value>(&r.body) else {
                continue;
            };
            if !erase_personal_properties(&mut wire) {
                continue;
            }
            if self
                .update_existing(
                    &pk,
                    &r.sk,
                    "SET #body = :b",
                    &[("#body", "body")],
                    vec![(":b", s(wire.to_string()))],
                )
                .await?
            {
                out.raw_events_redacted += 1;
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

    /// Replaces a nudge's variables, whatever its status (a quote goes from a sent one too).
    async fn set_vars(
        &self,
        account_id: &str,
        nudge_id: &str,
        vars: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        self.update_nudge(
            account_id,
            nudge_id,
            "SET #vars = :v",
            "attribute_exists(#pk)",
            &[("#vars", "vars"), ("#pk", PK)],
            vec![(":v", s(vars.to_string()))],
        )
        .await
    }

    /// One UpdateItem on an item of the partition that still exists; false if it is gone.
    async fn update_existing(
        &self,
        pk: &str,
        sk: &str,
        update: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(update)
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        Ok(self.conditional(req.send().await)?.is_some())
    }

    /// The raw events whose `contact_id` is the contact (the filter saves the transfer, not
    /// the read: every raw event of the account is read).
    async fn raw_bodies(&self, pk: &str, contact_id: &str) -> Result<Vec<RawBody>, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
            .filter_expression("#c = :c")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#c", "contact_id")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":p", s(schema::event_sk("")))
            .expression_attribute_values(":c", s(contact_id));
        Ok(self
            .query_all(req)
            .await?
            .iter()
            .filter_map(|item: &Item| {
                let sk = get_s(item, SK)?;
                Some(RawBody {
                    sk: sk.to_string(),
                    event_id: sk.strip_prefix("EVT#")?.to_string(),
                    event_type: get_s(item, "type").and_then(|t| t.parse().ok()),
                    body: get_s(item, "body").unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    /// The answers among `event_ids` that still carry a comment on the satisfaction item,
    /// with the comment.
    async fn commented_answers(
        &self,
        pk: &str,
        event_ids: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(sat) = self.get_item_read(pk, schema::SAT_SK, Read::Strong).await? else {
            return Ok(Vec::new());
        };
        let ids: BTreeSet<&str> = event_ids.iter().copied().collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let answer = sat
                    .get(&format!("{}{id}", schema::NPS_PREFIX))?
                    .as_m()
                    .ok()?;
                let comment = answer.get("comment")?.as_s().ok()?;
                Some((id.to_string(), comment.clone()))
            })
            .collect())
    }
}
