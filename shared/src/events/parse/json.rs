//! The request body as the validators read it, deserialised once and borrowing from it:
//! strings without escapes point into the body (`Cow::Borrowed`), objects are small vectors in
//! document order, and nothing is hashed or sorted. Building `serde_json::Value` instead cost
//! a `String` per key and value and a map per object, more than half of ingest's parse time.
//!
//! Validation then reads fields by name and type, so every rejection still names its field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value. Arrays keep their elements (the envelope's `events`); nothing else reads
/// inside an array, but a value of the wrong type still has to be named in the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool,
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The member `key`; the last one when a key repeats (as `serde_json::Map` keeps it).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    /// The JSON type's name, for messages (`got integer`).
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "boolean",
            Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Json::Number(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
}

/// A string that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool)
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
        // serde_json never yields a non-finite number; refuse one from another source.
        Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(Text(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Json::Object(Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_borrow_from_the_body() {
        let body = r#"{"a": "plain", "b": "with \"escape\"", "a": "last"}"#;
        let Ok(Json::Object(o)) = serde_json::from_str::<Json>(body) else {
            panic!("an object");
        };
        assert!(matches!(o.get("a"), Some(Json::Str(Cow::Borrowed("last")))));
        assert!(matches!(o.get("b"), Some(Json::Str(Cow::Owned(s))) if s == "with \"escape\""));
    }

    #[test]
    fn kinds_are_named_as_json_names_them() {
        let kinds: Vec<&str> = [
            "null", "true", "1", "-1", "1.5", "1e3", "\"s\"", "[1]", "{}",
        ]
        .iter()
        .map(|t| {
            serde_json::from_str::<Json>(t)
                .map(|j| j.kind())
                .unwrap_or("?")
        })
        .collect();
        assert_eq!(
            kinds,
            [
                "null", "boolean", "integer", "integer", "number", "number", "string", "array",
                "object"
            ]
        );
    }

    #[test]
    fn reads_a_serde_json_value_the_same_way() {
        let v = serde_json::json!({"k": "v", "n": [1, {"x": null}]});
        let from_value = Json::deserialize(&v).ok();
        let text = v.to_string();
        let from_text = serde_json::from_str::<Json>(&text).ok();
        assert!(from_value.is_some());
        assert_eq!(from_value, from_text);
    }
}
