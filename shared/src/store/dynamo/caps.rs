//! `CapStore`: frequency-cap reservations on the contact item, versioned.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};

use super::{DynamoStore, get_n, map_err, n, s, ts};
use crate::domain::policy::prune_reservations;
use crate::store::schema::{self, PK, SK};
use crate::store::{CapState, CapStore, StoreError};

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
        Ok(self.conditional(req.send().await)?.is_some())
    }
}
