//! The delivery log: one entry per message that left, was blocked or failed — the user-facing
//! contract of `nudge simulate` (ARCHITECTURE.md, "Delivery log and nudge simulate").

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::nudge::{Channel, NudgeKind};

/// `"sent"`, `"blocked"` or `"failed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LogStatus {
    Sent,
    Blocked,
    Failed,
}

impl LogStatus {
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// One line of the delivery log. Field order is the serialized order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLogEntry {
    /// UTC, RFC 3339, whole seconds: `2026-11-20T00:00:00Z`.
    #[serde(with = "rfc3339_seconds")]
    pub at: DateTime<Utc>,
    pub function: String,
    pub kind: NudgeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<super::Stage>,
    pub channel: Channel,
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Email address or topic ARN ("" when there was no recipient).
    pub to: String,
    pub subject: String,
    pub locale: String,
    pub status: LogStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub nudge_id: String,
    pub variant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
}

impl DeliveryLogEntry {
    /// The sort key of `nudge simulate`'s output: (at, account_id, nudge_id).
    pub fn sort_key(&self) -> (DateTime<Utc>, &str, &str) {
        (self.at, &self.account_id, &self.nudge_id)
    }
}

/// Sorts entries the way `nudge simulate` writes them.
pub fn sort(entries: &mut [DeliveryLogEntry]) {
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

pub mod rfc3339_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn serializes_in_contract_order_with_second_precision() {
        let e = DeliveryLogEntry {
            at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
                + chrono::Duration::milliseconds(250),
            function: "reminders".into(),
            kind: NudgeKind::DeadlineReminder,
            stage: Some(super::super::Stage::TMinus3d),
            channel: Channel::Email,
            account_id: "acme".into(),
            contact_id: Some("u-7".into()),
            to: "a@example.jp".into(),
            subject: "s".into(),
            locale: "ja".into(),
            status: LogStatus::Blocked,
            reason: Some("unsubscribed".into()),
            nudge_id: "dl:d1:t_minus_3d".into(),
            variant: "a".into(),
            provider_message_id: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"at":"2026-11-20T00:00:00Z","function":"reminders","kind":"deadline_reminder","stage":"t_minus_3d","channel":"email","account_id":"acme","contact_id":"u-7","to":"a@example.jp","subject":"s","locale":"ja","status":"blocked","reason":"unsubscribed","nudge_id":"dl:d1:t_minus_3d","variant":"a"}"#
        );
        let back: DeliveryLogEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.status, LogStatus::Blocked);
    }
}
