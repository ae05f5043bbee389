//! `ProfileStore`: account and contact records, last writer wins by the event's time.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, opt_millis};
use super::{DynamoStore, Read, get_s, s, ts};
use crate::events::{AccountProfile, ContactProfile};
use crate::store::schema::{self, PK, SK};
use crate::store::{
    AccountChange, AccountRecord, Applied, ContactRecord, ProfileStore, StoreError, Upserted,
};

#[async_trait]
impl ProfileStore for DynamoStore {
    async fn upsert_account(
        &self,
        account_id: &str,
        profile: &AccountProfile,
        at: DateTime<Utc>,
    ) -> Result<Upserted, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising account profile: {e}")))?;
        self.upsert_profile(
            &schema::account_pk(account_id),
            schema::PROFILE_SK,
            at,
            profile_av,
        )
        .await
    }

    async fn upsert_contact(
        &self,
        account_id: &str,
        contact_id: &str,
        profile: &ContactProfile,
        at: DateTime<Utc>,
    ) -> Result<Upserted, StoreError> {
        let profile_av = serde_dynamo::to_attribute_value(profile)
            .map_err(|e| StoreError::Backend(format!("serialising contact profile: {e}")))?;
        self.upsert_profile(
            &schema::account_pk(account_id),
            &schema::contact_sk(contact_id),
            at,
            profile_av,
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
        // A pause replaces the one before it whole: a reply after an operator's timed pause
        // is indefinite again, so an absent end or reason is removed, not kept.
        let mut removes: Vec<&str> = Vec::new();
        let (clock, sets): (&str, Vec<(&str, AttributeValue)>) = match change {
            AccountChange::Paused { until, reason } => {
                let mut v = vec![
                    ("paused", AttributeValue::Bool(true)),
                    ("paused_at", ts(at)),
                ];
                match until {
                    Some(u) => v.push(("paused_until", ts(*u))),
                    None => removes.push("paused_until"),
                }
                match reason {
                    Some(r) => v.push(("pause_reason", s(r))),
                    None => removes.push("pause_reason"),
                }
                ("paused_clock", v)
            }
            AccountChange::Resumed => {
                removes.extend(["paused_until", "pause_reason"]);
                (
                    "paused_clock",
                    vec![("paused", AttributeValue::Bool(false))],
                )
            }
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
        self.lww_update(&pk, schema::PROFILE_SK, clock, at, sets, &removes)
            .await
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
        self.account_read(account_id, Read::Eventual).await
    }

    async fn contact(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.contact_read(account_id, contact_id, Read::Eventual)
            .await
    }

    async fn account_consistent(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.account_read(account_id, Read::Strong).await
    }

    async fn contact_consistent(
        &self,
        account_id: &str,
        contact_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.contact_read(account_id, contact_id, Read::Strong)
            .await
    }

    async fn contacts(&self, account_id: &str) -> Result<Vec<ContactRecord>, StoreError> {
        self.query_prefix(&schema::account_pk(account_id), "CONTACT#")
            .await?
            .iter()
            .map(|item| {
                let sk = get_s(item, SK).unwrap_or_default();
                let contact_id = sk.strip_prefix("CONTACT#").unwrap_or(sk);
                Ok(from_item::<ContactItem>("contact", item)?.into_record(account_id, contact_id))
            })
            .collect()
    }
}

/// The account item (`PROFILE`) as read. It is written piecewise by `upsert_profile` and
/// `lww_update` (one clock per kind of change: `profile_at`, `paused_clock`, `admin_clock`,
/// `churn_clock`, `renew_clock`; `profile_at` and `admin_clock` (when the admin changed) are
/// also read).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct AccountItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<AccountProfile>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    profile_at: Option<DateTime<Utc>>,
    #[serde(default)]
    paused: bool,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    paused_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    paused_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pause_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_contact_id: Option<String>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    admin_clock: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    churned_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    renewed_at: Option<DateTime<Utc>>,
    /// From `contract_renewed`, `%Y-%m-%d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewal_date: Option<NaiveDate>,
}

impl AccountItem {
    pub(super) fn into_record(self, account_id: &str) -> AccountRecord {
        let mut profile = self.profile;
        // contract_renewed may carry a new renewal date after the profile was written.
        if let (Some(p), Some(d)) = (profile.as_mut(), self.renewal_date) {
            p.renewal_date = p.renewal_date.max(d);
        }
        AccountRecord {
            account_id: account_id.to_string(),
            profile,
            profile_at: self.profile_at,
            paused: self.paused,
            paused_at: self.paused_at,
            paused_until: self.paused_until,
            pause_reason: self.pause_reason,
            admin_contact_id: self.admin_contact_id,
            admin_changed_at: self.admin_clock,
            churned_at: self.churned_at,
            renewed_at: self.renewed_at,
        }
    }
}

/// The contact item (`CONTACT#<id>`) as read; `cap_sends`/`cap_version` belong to caps.rs.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ContactItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<ContactProfile>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    profile_at: Option<DateTime<Utc>>,
    /// A string set (`ADD unsubscribed :c`), absent while empty.
    #[serde(
        default,
        with = "serde_dynamo::string_set",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    unsubscribed: BTreeSet<String>,
}

impl ContactItem {
    fn into_record(self, account_id: &str, contact_id: &str) -> ContactRecord {
        ContactRecord {
            account_id: account_id.to_string(),
            contact_id: contact_id.to_string(),
            profile: self.profile,
            profile_at: self.profile_at,
            unsubscribed: self.unsubscribed,
        }
    }
}

impl DynamoStore {
    /// Sets attributes only if `clock` is absent or older than `at` (last writer wins by the
    /// event's `occurred_at`, so a late old event never overwrites newer state).
    async fn account_read(
        &self,
        account_id: &str,
        read: Read,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.get_item_read(&schema::account_pk(account_id), schema::PROFILE_SK, read)
            .await?
            .map(|item| Ok(from_item::<AccountItem>("account", &item)?.into_record(account_id)))
            .transpose()
    }

    async fn contact_read(
        &self,
        account_id: &str,
        contact_id: &str,
        read: Read,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.get_item_read(
            &schema::account_pk(account_id),
            &schema::contact_sk(contact_id),
            read,
        )
        .await?
        .map(|item| {
            Ok(from_item::<ContactItem>("contact", &item)?.into_record(account_id, contact_id))
        })
        .transpose()
    }

    /// Sets `profile` under the `profile_at` clock (last writer wins) and reads the replaced
    /// profile's zone from the write's old values: no read request, no extra units.
    async fn upsert_profile(
        &self,
        pk: &str,
        sk: &str,
        at: DateTime<Utc>,
        profile: AttributeValue,
    ) -> Result<Upserted, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression("SET #clock = :at, #profile = :p")
            .condition_expression("attribute_not_exists(#clock) OR #clock < :at")
            .expression_attribute_names("#clock", "profile_at")
            .expression_attribute_names("#profile", "profile")
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":p", profile)
            .return_values(ReturnValue::UpdatedOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        Ok(match self.conditional(req.send().await)? {
            Some(out) => Upserted::Applied {
                zone_before: out
                    .attributes()
                    .and_then(|old| old.get("profile"))
                    .and_then(|p| p.as_m().ok())
                    .and_then(|p| p.get("timezone"))
                    .and_then(|tz| tz.as_s().ok())
                    .and_then(|tz| tz.parse().ok()),
            },
            None => Upserted::Stale,
        })
    }

    /// Sets `sets` and removes `removes` if the item's `clock` is absent or older than `at`
    /// (last writer wins per kind of change), and moves the clock to `at`.
    async fn lww_update(
        &self,
        pk: &str,
        sk: &str,
        clock: &str,
        at: DateTime<Utc>,
        sets: Vec<(&str, AttributeValue)>,
        removes: &[&str],
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
        let mut removed = Vec::new();
        for (i, name) in removes.iter().enumerate() {
            removed.push(format!("#r{i}"));
            req = req.expression_attribute_names(format!("#r{i}"), *name);
        }
        let update = if removed.is_empty() {
            format!("SET {}", exprs.join(", "))
        } else {
            format!("SET {} REMOVE {}", exprs.join(", "), removed.join(", "))
        };
        let req = req.update_expression(update);
        Ok(match self.conditional(req.send().await)? {
            Some(_) => Applied::Applied,
            None => Applied::Stale,
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeZone;

    use super::super::Item;
    use super::super::item::to_item;
    use super::*;
    use crate::events::{Csm, Locale, Role, Tier};

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 9, 30, 0).unwrap()
    }

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, d).unwrap()
    }

    fn account_profile() -> AccountProfile {
        AccountProfile {
            name: "Acme".into(),
            plan: "pro".into(),
            industry: "logistics".into(),
            tier: Some(Tier::HighTouch),
            csm: Some(Csm {
                name: "Sato".into(),
                email: "sato@example.jp".into(),
            }),
            timezone: chrono_tz::Asia::Tokyo,
            locale: Locale::Ja,
            contract_start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            renewal_date: date(1),
            renewals: 2,
            arr: 12000.5,
        }
    }

    fn account_item(r: &AccountRecord) -> AccountItem {
        AccountItem {
            profile: r.profile.clone(),
            profile_at: r.profile_at,
            paused: r.paused,
            paused_at: r.paused_at,
            paused_until: r.paused_until,
            pause_reason: r.pause_reason.clone(),
            admin_contact_id: r.admin_contact_id.clone(),
            admin_clock: r.admin_changed_at,
            churned_at: r.churned_at,
            renewed_at: r.renewed_at,
            renewal_date: None,
        }
    }

    #[test]
    fn an_account_round_trips_through_its_item() {
        let record = AccountRecord {
            account_id: "acme".into(),
            profile: Some(account_profile()),
            profile_at: Some(t(1)),
            paused: true,
            paused_at: Some(t(2)),
            paused_until: Some(t(9)),
            pause_reason: Some("migration".into()),
            admin_contact_id: Some("u-1".into()),
            admin_changed_at: Some(t(2)),
            churned_at: Some(t(3)),
            renewed_at: Some(t(4)),
        };
        let item = to_item("account", &account_item(&record)).unwrap();
        assert!(matches!(item["profile"], AttributeValue::M(_)));
        assert_eq!(item["paused"], AttributeValue::Bool(true));
        assert_eq!(
            item["paused_at"],
            AttributeValue::S("2026-11-02T09:30:00.000Z".into())
        );
        let back = from_item::<AccountItem>("account", &item).unwrap();
        assert_eq!(back.into_record("acme"), record);
        let empty = from_item::<AccountItem>("account", &Item::new()).unwrap();
        assert!(!empty.paused && empty.profile.is_none());
    }

    #[test]
    fn a_later_renewal_date_from_contract_renewed_wins_over_the_profile() {
        let mut item = to_item(
            "account",
            &AccountItem {
                profile: Some(account_profile()),
                ..account_item(&AccountRecord {
                    account_id: "acme".into(),
                    profile: None,
                    profile_at: None,
                    paused: false,
                    paused_at: None,
                    paused_until: None,
                    pause_reason: None,
                    admin_contact_id: None,
                    admin_changed_at: None,
                    churned_at: None,
                    renewed_at: None,
                })
            },
        )
        .unwrap();
        // What change_account(Renewed) writes.
        item.insert(
            "renewal_date".into(),
            AttributeValue::S("2027-01-15".into()),
        );
        item.insert(
            "renew_clock".into(),
            AttributeValue::S("2026-11-04T09:30:00.000Z".into()),
        );
        let record = from_item::<AccountItem>("account", &item)
            .unwrap()
            .into_record("acme");
        assert_eq!(record.profile.map(|p| p.renewal_date), Some(date(15)));
    }

    #[test]
    fn a_contact_round_trips_through_its_item_with_a_string_set() {
        let record = ContactRecord {
            account_id: "acme".into(),
            contact_id: "u-7".into(),
            profile: Some(ContactProfile {
                email: "u7@example.jp".into(),
                phone: None,
                name: "Tanaka".into(),
                role: Role::Admin,
                timezone: Some(chrono_tz::Asia::Tokyo),
                locale: Some(Locale::Ja),
            }),
            profile_at: Some(t(1)),
            unsubscribed: ["all".to_string(), "reminders".to_string()].into(),
        };
        let item = to_item(
            "contact",
            &ContactItem {
                profile: record.profile.clone(),
                profile_at: record.profile_at,
                unsubscribed: record.unsubscribed.clone(),
            },
        )
        .unwrap();
        assert_eq!(
            item["unsubscribed"],
            AttributeValue::Ss(vec!["all".into(), "reminders".into()])
        );
        let back = from_item::<ContactItem>("contact", &item).unwrap();
        assert_eq!(back.into_record("acme", "u-7"), record);
        // A contact item created by `unsubscribe` or `reserve_cap` alone has no profile.
        let mut bare = Item::new();
        bare.insert("cap_version".into(), AttributeValue::N("1".into()));
        let back = from_item::<ContactItem>("contact", &bare).unwrap();
        assert!(back.profile.is_none() && back.unsubscribed.is_empty());
    }
}
