//! The account vocabulary that events carry and nudges use: message language, contact role,
//! customer-success tier. Wire names are the serialized names.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A string that is not one of an enum's wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown value")]
pub struct UnknownValue;

/// Message language. Accepts BCP 47-ish tags (`ja`, `ja-JP`, `EN_us`): only the language
/// prefix matters because templates exist per language, not per region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    Ja,
    En,
}

impl Locale {
    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::Ja => "ja",
            Locale::En => "en",
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lang = s.split(['-', '_']).next().unwrap_or_default();
        if lang.eq_ignore_ascii_case("ja") {
            Ok(Locale::Ja)
        } else if lang.eq_ignore_ascii_case("en") {
            Ok(Locale::En)
        } else {
            Err(UnknownValue)
        }
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("expected a locale: ja or en (e.g. ja-JP)"))
    }
}

/// A contact's role on the customer side; chooses content (admin gets steps, executive gets
/// outcomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Executive,
    User,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Executive => "executive",
            Role::User => "user",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::Admin, Role::Executive, Role::User]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownValue)
    }
}

/// Customer-success coverage model. Serialized `high_touch`; `high-touch` is accepted too
/// because that is how CS people write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    HighTouch,
    LowTouch,
    TechTouch,
}

impl Tier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::HighTouch => "high_touch",
            Tier::LowTouch => "low_touch",
            Tier::TechTouch => "tech_touch",
        }
    }
}

impl FromStr for Tier {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.replace('-', "_");
        [Tier::HighTouch, Tier::LowTouch, Tier::TechTouch]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(&norm))
            .ok_or(UnknownValue)
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::custom("expected a tier: high_touch, low_touch or tech_touch")
        })
    }
}

/// A contact of an account with its role: who a message addressed by role goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub contact_id: &'a str,
    pub role: Role,
}

/// The account's admin: the contact `admin_changed` named, else the first member (by id) whose
/// role is admin.
pub fn admin_of<'a>(named: Option<&'a str>, members: &[Member<'a>]) -> Option<&'a str> {
    named.or_else(|| {
        members
            .iter()
            .find(|m| m.role == Role::Admin)
            .map(|m| m.contact_id)
    })
}

/// The executives other than `admin` (the admin gets the admin's message).
pub fn executives<'a>(
    members: &'a [Member<'a>],
    admin: Option<&'a str>,
) -> impl Iterator<Item = &'a str> + 'a {
    members
        .iter()
        .filter(move |m| m.role == Role::Executive && Some(m.contact_id) != admin)
        .map(|m| m.contact_id)
}
