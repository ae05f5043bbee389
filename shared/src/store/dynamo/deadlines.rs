//! DynamoDB adapter for deadlines (`ACCT#<id>/DL#<deadline_id>`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::{DynamoStore, Item, get_s, get_ts, s, ts};
use crate::store::schema::{self, PK, SK};
use crate::store::{Applied, DeadlineRecord, DeadlineStatus, DeadlineStore, StoreError};

/// The stored item of a deadline (what `put_deadline` writes; public for bulk loaders).
pub fn deadline_item(account_id: &str, d: &DeadlineRecord) -> Item {
    let mut item: Item = [
        (PK, s(schema::account_pk(account_id))),
        (SK, s(schema::deadline_sk(&d.deadline_id))),
        ("due_at", ts(d.due_at)),
        ("title", s(&d.title)),
        ("status", s(d.status.as_str())),
        ("updated_at", ts(d.updated_at)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in [
        ("contact_id", &d.contact_id),
        ("kind", &d.kind),
        ("link", &d.link),
    ] {
        if let Some(v) = v {
            item.insert(k.to_string(), AttributeValue::S(v.clone()));
        }
    }
    item
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
            .set_item(Some(deadline_item(account_id, d)))
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
        let item = self
            .get_item(
                &schema::account_pk(account_id),
                &schema::deadline_sk(deadline_id),
            )
            .await?;
        Ok(item.and_then(|item| {
            Some(DeadlineRecord {
                deadline_id: deadline_id.to_string(),
                contact_id: get_s(&item, "contact_id").map(str::to_string),
                due_at: get_ts(&item, "due_at")?,
                title: get_s(&item, "title").unwrap_or_default().to_string(),
                kind: get_s(&item, "kind").map(str::to_string),
                link: get_s(&item, "link").map(str::to_string),
                status: DeadlineStatus::parse(get_s(&item, "status")?)?,
                updated_at: get_ts(&item, "updated_at")?,
            })
        }))
    }
}
