//! `DeadlineStore`: deadlines (`ACCT#<id>/DL#<deadline_id>`), last writer wins.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, millis, to_item};
use super::{DynamoStore, Item, Read, ts};
use crate::store::schema;
use crate::store::{Applied, DeadlineRecord, DeadlineStatus, DeadlineStore, StoreError};

/// The stored shape of a deadline; the id is in the sort key only.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct DeadlineItem {
    pk: String,
    sk: String,
    #[serde(with = "millis")]
    due_at: DateTime<Utc>,
    #[serde(default)]
    title: String,
    status: DeadlineStatus,
    #[serde(with = "millis")]
    updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

impl DeadlineItem {
    fn new(account_id: &str, d: &DeadlineRecord) -> DeadlineItem {
        DeadlineItem {
            pk: schema::account_pk(account_id),
            sk: schema::deadline_sk(&d.deadline_id),
            due_at: d.due_at,
            title: d.title.clone(),
            status: d.status,
            updated_at: d.updated_at,
            contact_id: d.contact_id.clone(),
            kind: d.kind.clone(),
            link: d.link.clone(),
        }
    }

    fn into_record(self, deadline_id: &str) -> DeadlineRecord {
        DeadlineRecord {
            deadline_id: deadline_id.to_string(),
            contact_id: self.contact_id,
            due_at: self.due_at,
            title: self.title,
            kind: self.kind,
            link: self.link,
            status: self.status,
            updated_at: self.updated_at,
        }
    }
}

/// The stored item of a deadline (what `put_deadline` writes; public for bulk loaders).
pub fn deadline_item(account_id: &str, d: &DeadlineRecord) -> Result<Item, StoreError> {
    to_item("deadline", &DeadlineItem::new(account_id, d))
}

#[async_trait]
impl DeadlineStore for DynamoStore {
    async fn put_deadline(
        &self,
        account_id: &str,
        d: &DeadlineRecord,
    ) -> Result<Applied, StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(deadline_item(account_id, d)?))
            // Last writer wins by the event's occurred_at: a late old event changes nothing.
            .condition_expression("attribute_not_exists(#u) OR #u < :u")
            .expression_attribute_names("#u", "updated_at")
            .expression_attribute_values(":u", ts(d.updated_at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        Ok(match self.conditional(req.send().await)? {
            Some(_) => Applied::Applied,
            None => Applied::Stale,
        })
    }

    async fn deadline(
        &self,
        account_id: &str,
        deadline_id: &str,
    ) -> Result<Option<DeadlineRecord>, StoreError> {
        // Strongly consistent: whether to plan or cancel stages is decided on it.
        let item = self
            .get_item_read(
                &schema::account_pk(account_id),
                &schema::deadline_sk(deadline_id),
                Read::Strong,
            )
            .await?;
        // An unreadable deadline reads as absent (as it always has): the next `deadline_set`
        // overwrites it.
        Ok(item.and_then(|item| {
            from_item::<DeadlineItem>("deadline", &item)
                .inspect_err(|e| tracing::error!(error = %e, "unreadable deadline item"))
                .ok()
                .map(|d| d.into_record(deadline_id))
        }))
    }

    async fn deadlines(&self, account_id: &str) -> Result<Vec<DeadlineRecord>, StoreError> {
        let items = self
            .query_prefix_read(
                &schema::account_pk(account_id),
                &schema::deadline_sk(""),
                Read::Strong,
            )
            .await?;
        // An unreadable deadline is left out, as `deadline` reads it as absent.
        Ok(items
            .iter()
            .filter_map(|item| {
                let sk = super::get_s(item, schema::SK)?;
                let id = sk.strip_prefix("DL#")?;
                from_item::<DeadlineItem>("deadline", item)
                    .inspect_err(|e| tracing::error!(error = %e, "unreadable deadline item"))
                    .ok()
                    .map(|d| d.into_record(id))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeZone;

    use super::*;

    fn record() -> DeadlineRecord {
        DeadlineRecord {
            deadline_id: "d1".into(),
            contact_id: Some("u-7".into()),
            due_at: Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
            title: "Quarterly report".into(),
            kind: Some("report".into()),
            link: Some("https://app.example/d1".into()),
            status: DeadlineStatus::Active,
            updated_at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_deadline_round_trips_through_its_item() {
        let item = deadline_item("acme", &record()).unwrap();
        let back = from_item::<DeadlineItem>("deadline", &item).unwrap();
        assert_eq!(back.into_record("d1"), record());
        let bare = DeadlineRecord {
            contact_id: None,
            kind: None,
            link: None,
            status: DeadlineStatus::Cancelled,
            ..record()
        };
        let item = deadline_item("acme", &bare).unwrap();
        assert!(!item.contains_key("contact_id") && !item.contains_key("link"));
        let back = from_item::<DeadlineItem>("deadline", &item).unwrap();
        assert_eq!(back.into_record("d1"), bare);
    }

    #[test]
    fn the_deadline_item_layout_is_pinned() {
        let item = deadline_item("acme", &record()).unwrap();
        let s = |v: &str| AttributeValue::S(v.into());
        let want: Item = [
            ("pk", s("ACCT#acme")),
            ("sk", s("DL#d1")),
            ("due_at", s("2026-11-20T09:00:00.000Z")),
            ("title", s("Quarterly report")),
            ("status", s("active")),
            ("updated_at", s("2026-11-01T00:00:00.000Z")),
            ("contact_id", s("u-7")),
            ("kind", s("report")),
            ("link", s("https://app.example/d1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(item, want);
    }
}
