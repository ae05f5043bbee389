//! The nudge item (`ACCT#<id>/NUDGE#<nudge_id>`) and its sparse `due` GSI keys, shared by
//! `NudgeStore` (nudges.rs) and `SendStore` (sends.rs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, json_text, millis, opt_millis, to_item};
use super::{Item, ts_str};
use crate::domain::{Engagement, Nudge, NudgeKind, NudgeStatus, Stage};
use crate::store::StoreError;
use crate::store::schema;

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

fn variant_a() -> String {
    "a".into()
}

fn no_vars() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// The stored shape of a nudge. Field names are attribute names (`pk`, `sk`, `gsi1pk` and
/// `gsi1sk` are `schema::{PK, SK, GSI1PK, GSI1SK}`). `put_nudge` writes the planning fields;
/// the lease, send and engagement fields are set by the `SendStore` and `EngagementStore`
/// updates and only read here. `finished_at` is written by those updates but never read.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct NudgeItem {
    pk: String,
    sk: String,
    nudge_id: String,
    account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
    kind: NudgeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    #[serde(default = "variant_a")]
    variant: String,
    #[serde(with = "millis")]
    send_at: DateTime<Utc>,
    #[serde(default)]
    function: String,
    #[serde(default = "no_vars", with = "json_text")]
    vars: serde_json::Value,
    status: NudgeStatus,
    #[serde(default)]
    attempts: u32,
    #[serde(with = "millis")]
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    follow_up_of: Option<String>,
    /// Set only when not the kind's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<crate::domain::Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_owner: Option<String>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    lease_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_message_id: Option<String>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    sent_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    delivered_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    opened_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    clicked_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    bounced_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    complained_at: Option<DateTime<Utc>>,
    #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
    accepted_at: Option<DateTime<Utc>>,
    /// Present while the nudge is on the `due` GSI (pending or claimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
}

impl NudgeItem {
    /// What `put_nudge` writes: the planning fields, GSI keys while pending.
    fn planned(nudge: &Nudge, shards: u32) -> NudgeItem {
        let pk = schema::account_pk(&nudge.account_id);
        let sk = schema::nudge_sk(&nudge.nudge_id);
        let (gsi1pk, gsi1sk) = if nudge.status == NudgeStatus::Pending {
            let (gpk, gsk) = gsi_keys(&pk, &sk, nudge.send_at, nudge.created_at, shards);
            (Some(gpk), Some(gsk))
        } else {
            (None, None)
        };
        NudgeItem {
            pk,
            sk,
            nudge_id: nudge.nudge_id.clone(),
            account_id: nudge.account_id.clone(),
            contact_id: nudge.contact_id.clone(),
            kind: nudge.kind,
            stage: nudge.stage,
            variant: nudge.variant.clone(),
            send_at: nudge.send_at,
            function: nudge.function.clone(),
            vars: nudge.vars.clone(),
            status: nudge.status,
            attempts: nudge.attempts,
            created_at: nudge.created_at,
            follow_up_of: nudge.follow_up_of.clone(),
            audience: nudge.audience,
            reason: nudge.reason.clone(),
            lease_owner: None,
            lease_until: None,
            provider_message_id: None,
            sent_at: None,
            delivered_at: None,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            accepted_at: None,
            gsi1pk,
            gsi1sk,
        }
    }

    fn into_nudge(self) -> Nudge {
        Nudge {
            nudge_id: self.nudge_id,
            account_id: self.account_id,
            contact_id: self.contact_id,
            kind: self.kind,
            stage: self.stage,
            variant: self.variant,
            send_at: self.send_at,
            function: self.function,
            vars: self.vars,
            status: self.status,
            attempts: self.attempts,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            provider_message_id: self.provider_message_id,
            created_at: self.created_at,
            sent_at: self.sent_at,
            reason: self.reason,
            follow_up_of: self.follow_up_of,
            audience: self.audience,
            engagement: Engagement {
                delivered_at: self.delivered_at,
                opened_at: self.opened_at,
                clicked_at: self.clicked_at,
                bounced_at: self.bounced_at,
                complained_at: self.complained_at,
                accepted_at: self.accepted_at,
            },
        }
    }
}

/// The stored item of a nudge, GSI keys included while pending (what `put_nudge` writes; public
/// so bulk loaders such as `nudge bench reminders` write exactly the same shape).
pub fn nudge_item(nudge: &Nudge, shards: u32) -> Result<Item, StoreError> {
    to_item("nudge", &NudgeItem::planned(nudge, shards))
}

pub(crate) fn nudge_from_item(item: &Item) -> Result<Nudge, StoreError> {
    from_item::<NudgeItem>("nudge", item).map(NudgeItem::into_nudge)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeZone;

    use super::*;
    use crate::store::schema::{GSI1PK, GSI1SK, PK, SK};

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn late_nudges_land_in_a_bucket_the_next_run_scans() {
        let (gpk, gsk) = gsi_keys("ACCT#a", "NUDGE#n", t(0, 0), t(9, 7), 1);
        assert_eq!(gpk, "DUE#2026-11-20T09:00#0");
        assert!(gsk.starts_with("2026-11-20T00:00:00.000Z#ACCT#a#NUDGE#n"));
    }

    fn planned() -> Nudge {
        let mut n = Nudge::new(
            "dl/d1/1/final",
            "acme",
            Some("u-7".into()),
            NudgeKind::DeadlineReminder,
            t(0, 0) + chrono::Duration::milliseconds(250),
            "reminders",
            t(0, 0),
        )
        .with_stage(Stage::Final)
        .with_vars(serde_json::json!({"title": "x"}));
        n.follow_up_of = Some("orig".into());
        n.reason = Some("provider_transient: slow".into());
        n.attempts = 2;
        n
    }

    #[test]
    fn a_planned_nudge_round_trips_through_its_item() {
        let n = planned();
        let item = nudge_item(&n, 4).unwrap();
        assert!(item.contains_key(GSI1PK));
        assert_eq!(nudge_from_item(&item).unwrap(), n);
        let mut blocked = planned().with_variant("b");
        blocked.status = NudgeStatus::Blocked;
        blocked.contact_id = None;
        blocked.stage = None;
        let item = nudge_item(&blocked, 4).unwrap();
        assert!(!item.contains_key(GSI1PK) && !item.contains_key(GSI1SK));
        assert_eq!(nudge_from_item(&item).unwrap(), blocked);
    }

    /// The layout existing tables hold: every attribute name and type `put_nudge` writes.
    #[test]
    fn the_nudge_item_layout_is_pinned() {
        let item = nudge_item(&planned(), 4).unwrap();
        let (gpk, gsk) = gsi_keys(
            "ACCT#acme",
            "NUDGE#dl/d1/1/final",
            planned().send_at,
            planned().created_at,
            4,
        );
        let want: Item = [
            (PK, s("ACCT#acme")),
            (SK, s("NUDGE#dl/d1/1/final")),
            ("nudge_id", s("dl/d1/1/final")),
            ("account_id", s("acme")),
            ("contact_id", s("u-7")),
            ("kind", s("deadline_reminder")),
            ("stage", s("final")),
            ("variant", s("a")),
            ("send_at", s("2026-11-20T00:00:00.250Z")),
            ("function", s("reminders")),
            ("vars", s(r#"{"title":"x"}"#)),
            ("status", s("pending")),
            ("attempts", AttributeValue::N("2".into())),
            ("created_at", s("2026-11-20T00:00:00.000Z")),
            ("follow_up_of", s("orig")),
            ("reason", s("provider_transient: slow")),
            (GSI1PK, s(&gpk)),
            (GSI1SK, s(&gsk)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(item, want);
        assert_eq!(
            gsk,
            "2026-11-20T00:00:00.250Z#ACCT#acme#NUDGE#dl/d1/1/final"
        );
    }

    /// The attributes the send and engagement updates write (sends.rs, engagement.rs) are the
    /// ones read back.
    #[test]
    fn lease_send_and_engagement_attributes_are_read() {
        let mut item = nudge_item(&planned(), 4).unwrap();
        for (k, v) in [
            ("status", s("sent")),
            ("lease_owner", s("run-1")),
            ("lease_until", s("2026-11-20T00:15:00.000Z")),
            ("provider_message_id", s("pm-1")),
            ("sent_at", s("2026-11-20T00:01:00.000Z")),
            ("finished_at", s("2026-11-20T00:01:00.000Z")),
            ("delivered_at", s("2026-11-20T00:02:00.000Z")),
            ("opened_at", s("2026-11-20T00:03:00.000Z")),
            ("clicked_at", s("2026-11-20T00:04:00.000Z")),
            ("bounced_at", s("2026-11-20T00:05:00.000Z")),
            ("complained_at", s("2026-11-20T00:06:00.000Z")),
        ] {
            item.insert(k.to_string(), v);
        }
        let n = nudge_from_item(&item).unwrap();
        assert_eq!(n.status, NudgeStatus::Sent);
        assert_eq!(n.lease_owner.as_deref(), Some("run-1"));
        assert_eq!(n.lease_until, Some(t(0, 15)));
        assert_eq!(n.provider_message_id.as_deref(), Some("pm-1"));
        assert_eq!(n.sent_at, Some(t(0, 1)));
        assert_eq!(
            n.engagement,
            Engagement {
                delivered_at: Some(t(0, 2)),
                opened_at: Some(t(0, 3)),
                clicked_at: Some(t(0, 4)),
                bounced_at: Some(t(0, 5)),
                complained_at: Some(t(0, 6)),
                accepted_at: None,
            }
        );
    }

    #[test]
    fn missing_optional_planning_attributes_take_their_defaults() {
        let mut item = nudge_item(&planned(), 4).unwrap();
        for k in ["variant", "function", "vars", "attempts"] {
            item.remove(k);
        }
        let n = nudge_from_item(&item).unwrap();
        assert_eq!(
            (n.variant.as_str(), n.function.as_str(), n.attempts),
            ("a", "", 0)
        );
        assert_eq!(n.vars, serde_json::json!({}));
    }

    #[test]
    fn an_unknown_kind_is_a_corrupt_item() {
        let mut item = nudge_item(&planned(), 4).unwrap();
        item.insert("kind".into(), s("carrier_pigeon"));
        assert!(nudge_from_item(&item).is_err());
    }
}
