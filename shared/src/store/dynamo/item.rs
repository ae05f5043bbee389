//! Item mapping with serde_dynamo: each capability declares a private item struct whose field
//! names are the attribute names; these are the attribute formats they share.
//!
//! Formats (existing tables depend on them): timestamps are RFC 3339 UTC strings with
//! milliseconds (`2026-11-20T00:00:00.000Z`, so string order is time order), JSON payloads are
//! JSON text in an S attribute, numbers are N, string sets are SS.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Item, corrupt};
use crate::store::StoreError;

/// The item of `value`, an item struct.
pub(crate) fn to_item<T: Serialize>(what: &str, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Backend(format!("serialising a {what} item: {e}")))
}

/// The item struct of a stored item.
pub(crate) fn from_item<T: DeserializeOwned>(what: &str, item: &Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item.clone()).map_err(|e| corrupt(what, e))
}

/// A timestamp attribute (`#[serde(with = "millis")]`).
pub(crate) mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::super::ts_str;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ts_str(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// An optional timestamp attribute (`#[serde(default, with = "opt_millis",
/// skip_serializing_if = "Option::is_none")]`: absent, never NULL).
pub(crate) mod opt_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::super::ts_str;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&ts_str(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// A value kept as JSON text in an S attribute (`#[serde(with = "json_text")]`).
pub(crate) mod json_text {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::{DateTime, TimeZone, Utc};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "millis")]
        at: DateTime<Utc>,
        #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
        maybe: Option<DateTime<Utc>>,
        #[serde(with = "json_text")]
        vars: serde_json::Value,
    }

    #[test]
    fn timestamps_are_millisecond_utc_strings_and_absent_options_are_left_out() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        let sample = Sample {
            at,
            maybe: None,
            vars: serde_json::json!({"a": 1}),
        };
        let item = to_item("sample", &sample).unwrap();
        assert_eq!(
            item["at"],
            AttributeValue::S("2026-11-20T09:00:00.123Z".into())
        );
        assert!(!item.contains_key("maybe"));
        assert_eq!(item["vars"], AttributeValue::S(r#"{"a":1}"#.into()));
        let back: Sample = from_item("sample", &item).unwrap();
        assert_eq!(back.at.timestamp_millis(), at.timestamp_millis());
        assert_eq!(back.maybe, None);
    }

    #[test]
    fn timestamps_with_an_offset_are_read_as_utc() {
        let mut item = Item::new();
        item.insert(
            "at".into(),
            AttributeValue::S("2026-11-20T18:00:00+09:00".into()),
        );
        item.insert(
            "maybe".into(),
            AttributeValue::S("2026-11-20T09:00:00.000Z".into()),
        );
        item.insert("vars".into(), AttributeValue::S("{}".into()));
        let back: Sample = from_item("sample", &item).unwrap();
        assert_eq!(
            back.at,
            Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
        );
        assert_eq!(back.maybe, Some(back.at));
    }

    #[test]
    fn a_bad_timestamp_is_a_corrupt_item() {
        let mut item = Item::new();
        item.insert("at".into(), AttributeValue::S("yesterday".into()));
        item.insert("vars".into(), AttributeValue::S("{}".into()));
        let err = from_item::<Sample>("sample", &item).unwrap_err();
        assert!(err.to_string().contains("corrupt sample item"), "{err}");
    }
}
