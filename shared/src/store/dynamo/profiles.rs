//! `ProfileStore`: account and contact records, last writer wins by the event's time.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, NaiveDate, Utc};

use super::{DynamoStore, Item, corrupt, get_bool, get_s, get_ss, get_ts, s, ts};
use crate::events::{AccountProfile, ContactProfile};
use crate::store::schema::{self, PK, SK};
use crate::store::{
    AccountChange, AccountRecord, Applied, ContactRecord, ProfileStore, StoreError,
};

#[async_trait]
impl ProfileStore for DynamoStore {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising account profile: {e}")))?;
        self.lww_set(
            &schema::account_pk(account_id),
            schema::PROFILE_SK,
            "profile_at",
            at,
            vec![("profile", profile_av)],
        )
        .await
    }

    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising contact profile: {e}")))?;
        self.lww_set(
            &schema::account_pk(account_id),
            &schema::contact_sk(contact_id),
            "profile_at",
            at,
            vec![("profile", profile_av)],
        )
        .await
    }

    async fn change_account(
        &self,
        account_id: &str,
        change: &AccountChange,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let pk = schema::account_pk(account_id);
        let (clock, sets): (&str, Vec<(&str, AttributeValue)>) = match change {
            AccountChange::Paused => (
                "paused_clock",
                vec![
                    ("paused", AttributeValue::Bool(true)),
                    ("paused_at", ts(at)),
                ],
            ),
            AccountChange::Resumed => (
                "paused_clock",
                vec![("paused", AttributeValue::Bool(false))],
            ),
            AccountChange::AdminChanged { contact_id } => {
                ("admin_clock", vec![("admin_contact_id", s(contact_id))])
            }
            AccountChange::Churned => ("churn_clock", vec![("churned_at", ts(at))]),
            AccountChange::Renewed { renewal_date } => {
                let mut v = vec![("renewed_at", ts(at))];
                if let Some(d) = renewal_date {
                    v.push(("renewal_date", s(d.format("%Y-%m-%d").to_string())));
                }
                ("renew_clock", v)
            }
        };
        self.lww_set(&pk, schema::PROFILE_SK, clock, at, sets).await
    }

    async fn unsubscribe(
        &self,
        account_id: &str,
        contact_id: &str,
        category: &str,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(schema::account_pk(account_id)))
            .key(SK, s(schema::contact_sk(contact_id)))
            .update_expression("ADD unsubscribed :c")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![category.to_string()]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        self.written(req.send().await)?;
        Ok(())
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        let Some(item) = self
            .get_item(&schema::account_pk(account_id), schema::PROFILE_SK)
            .await?
        else {
            return Ok(None);
        };
        let mut profile: Option<AccountProfile> = match item.get("profile") {
            Some(av) => Some(
                serde_dynamo::from_attribute_value(av.clone())
                    .map_err(|e| corrupt("account profile", e))?,
            ),
            None => None,
        };
        // contract_renewed may carry a new renewal date after the profile was written.
        let renewal = get_s(&item, "renewal_date")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if let (Some(p), Some(d)) = (profile.as_mut(), renewal) {
            p.renewal_date = p.renewal_date.max(d);
        }
        Ok(Some(AccountRecord {
            account_id: account_id.to_string(),
            profile,
            profile_at: get_ts(&item, "profile_at"),
            paused: get_bool(&item, "paused"),
            paused_at: get_ts(&item, "paused_at"),
            admin_contact_id: get_s(&item, "admin_contact_id").map(str::to_string),
            churned_at: get_ts(&item, "churned_at"),
            renewed_at: get_ts(&item, "renewed_at"),
        }))
    }

    async fn contact(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let item = self
            .get_item(
                &schema::account_pk(account_id),
                &schema::contact_sk(contact_id),
            )
            .await?;
        item.map(|item| contact_from_item(account_id, &item))
            .transpose()
    }
}

fn contact_from_item(account_id: &str, item: &Item) -> Result<ContactRecord, StoreError> {
    let contact_id = get_s(item, SK)
        .and_then(|sk| sk.strip_prefix("CONTACT#"))
        .ok_or_else(|| corrupt("contact", "missing sort key"))?;
    let profile = match item.get("profile") {
        Some(av) => Some(
            serde_dynamo::from_attribute_value(av.clone())
                .map_err(|e| corrupt("contact profile", e))?,
        ),
        None => None,
    };
    Ok(ContactRecord {
        account_id: account_id.to_string(),
        contact_id: contact_id.to_string(),
        profile,
        profile_at: get_ts(item, "profile_at"),
        unsubscribed: get_ss(item, "unsubscribed"),
    })
}

impl DynamoStore {
    /// Sets attributes only if `clock` is absent or older than `at` (last writer wins by the
    /// event's `occurred_at`, so a late old event never overwrites newer state).
    async fn lww_set(
        &self,
        pk: &str,
        sk: &str,
        clock: &str,
        at: DateTime<Utc>,
        sets: Vec<(&str, AttributeValue)>,
    ) -> Result<Applied, StoreError> {
        let mut exprs = vec!["#clock = :at".to_string()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("attribute_not_exists(#clock) OR #clock < :at")
            .expression_attribute_names("#clock", clock)
            .expression_attribute_values(":at", ts(at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (i, (name, value)) in sets.into_iter().enumerate() {
            exprs.push(format!("#a{i} = :v{i}"));
            req = req
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        let req = req.update_expression(format!("SET {}", exprs.join(", ")));
        Ok(match self.conditional(req.send().await)? {
            Some(_) => Applied::Applied,
            None => Applied::Stale,
        })
    }
}
