//! The two kinds of secret, kept apart so each can be rotated on its own:
//!
//! - [`SigningSecrets`]: the request-signature secret shared with event senders, the current
//!   one and, during a rotation, the previous one (Secrets Manager's `AWSCURRENT` and
//!   `AWSPREVIOUS`). A request signed with either is accepted.
//! - [`LinkKeys`]: the keys of the signed links in customer email (unsubscribe, "I've done
//!   this"), known to Nudge alone, so no event sender can mint a link. A key set, each key
//!   under an id that every token carries: new tokens use the current key, a token verifies
//!   under the key its id names for as long as that id stays in the set, so a link in a
//!   two-year-old email keeps working across rotations.
//!
//! Neither ever appears in `Debug` output or an error message.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

/// Shortest accepted request-signing secret.
pub const MIN_SIGNING_SECRET_LEN: usize = 16;
/// Shortest accepted link key: these sign links for years, and nobody types them.
pub const MIN_LINK_KEY_LEN: usize = 32;
/// Longest key id: ids travel in every link.
const MAX_KEY_ID_LEN: usize = 32;
/// The member of the key set's JSON that names the current key (so no key can have this id).
const CURRENT: &str = "current";

/// One HMAC key for request signatures.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SigningSecret(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// The request-signature secrets a request may be signed with. Empty (the default) in a
/// function that serves no signed requests: every signature is refused.
#[derive(Clone, Debug, Default)]
pub struct SigningSecrets {
    current: Option<SigningSecret>,
    previous: Option<SigningSecret>,
}

impl SigningSecrets {
    pub fn new(current: SigningSecret, previous: Option<SigningSecret>) -> Self {
        SigningSecrets {
            current: Some(current),
            previous,
        }
    }

    /// The current secret, then the previous one.
    pub fn all(&self) -> Vec<&[u8]> {
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .map(SigningSecret::as_bytes)
            .collect()
    }
}

/// Why a link key set was refused. Names key ids, never keys.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LinkKeysError {
    #[error(
        "expected a JSON object of key ids to keys with \"current\" naming one, e.g. \
         {{\"current\": \"k2\", \"k1\": \"...\", \"k2\": \"...\"}}"
    )]
    NotAnObject,
    #[error("\"current\" is missing or not a string")]
    NoCurrent,
    #[error("\"current\" names key id {0:?}, which the set does not have")]
    CurrentNotInSet(String),
    #[error("key id {0:?}: ids are 1-32 characters from A-Z a-z 0-9 _ -")]
    BadKeyId(String),
    #[error("key {0:?} must be a string of at least {MIN_LINK_KEY_LEN} characters")]
    BadKey(String),
}

/// The link-signing keys by id, one of them current. Empty (the default) in a function that
/// neither signs nor verifies links: nothing is signed, every token is refused.
#[derive(Clone, Default)]
pub struct LinkKeys {
    current: Option<String>,
    keys: BTreeMap<String, Vec<u8>>,
}

impl LinkKeys {
    /// Parses the key set's JSON: `{"current": "<id>", "<id>": "<key>", ...}` (flat, so
    /// Secrets Manager can generate the first key into it).
    pub fn parse(json: &str) -> Result<LinkKeys, LinkKeysError> {
        let v: Value = serde_json::from_str(json).map_err(|_| LinkKeysError::NotAnObject)?;
        let obj = v.as_object().ok_or(LinkKeysError::NotAnObject)?;
        let current = obj
            .get(CURRENT)
            .and_then(Value::as_str)
            .ok_or(LinkKeysError::NoCurrent)?
            .to_string();
        let mut keys = BTreeMap::new();
        for (id, key) in obj.iter().filter(|(id, _)| *id != CURRENT) {
            if !is_key_id(id) {
                return Err(LinkKeysError::BadKeyId(id.clone()));
            }
            let key = key
                .as_str()
                .filter(|k| k.len() >= MIN_LINK_KEY_LEN)
                .ok_or_else(|| LinkKeysError::BadKey(id.clone()))?;
            keys.insert(id.clone(), key.as_bytes().to_vec());
        }
        if !keys.contains_key(&current) {
            return Err(LinkKeysError::CurrentNotInSet(current));
        }
        Ok(LinkKeys {
            current: Some(current),
            keys,
        })
    }

    /// The key new tokens are signed with, and its id.
    pub fn current(&self) -> Option<(&str, &[u8])> {
        let id = self.current.as_deref()?;
        Some((id, self.keys.get(id)?.as_slice()))
    }

    /// The key of `id`, if the set has it.
    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.keys.get(id).map(Vec::as_slice)
    }
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKeys")
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A key id as tokens carry it: URL-safe, no `.` (the tokens' separator).
pub fn is_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a function holds of both kinds.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub signing: SigningSecrets,
    pub links: LinkKeys,
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1-0123456789abcdef0123456789abcdef";
    const K2: &str = "k2-0123456789abcdef0123456789abcdef";

    #[test]
    fn a_key_set_names_its_current_key() {
        let keys = LinkKeys::parse(&format!(
            r#"{{"current": "k2", "k1": "{K1}", "k2": "{K2}"}}"#
        ))
        .unwrap();
        assert_eq!(keys.current(), Some(("k2", K2.as_bytes())));
        assert_eq!(keys.get("k1"), Some(K1.as_bytes()));
        assert_eq!(keys.get("k3"), None);
        assert_eq!(keys.get(CURRENT), None);
        let debug = format!("{keys:?}");
        assert!(!debug.contains(K1) && !debug.contains(K2), "{debug}");
        assert_eq!(LinkKeys::default().current(), None);
    }

    #[test]
    fn bad_key_sets_say_what_is_wrong_without_a_key() {
        let cases = [
            ("[]", LinkKeysError::NotAnObject),
            ("not json", LinkKeysError::NotAnObject),
            (
                &format!(r#"{{"k1": "{K1}"}}"#) as &str,
                LinkKeysError::NoCurrent,
            ),
            (
                &format!(r#"{{"current": "k2", "k1": "{K1}"}}"#),
                LinkKeysError::CurrentNotInSet("k2".into()),
            ),
            (
                &format!(r#"{{"current": "k1", "k1": "{K1}", "k.2": "{K2}"}}"#),
                LinkKeysError::BadKeyId("k.2".into()),
            ),
            (
                r#"{"current": "k1", "k1": "too-short"}"#,
                LinkKeysError::BadKey("k1".into()),
            ),
            (
                r#"{"current": "k1", "k1": 12345}"#,
                LinkKeysError::BadKey("k1".into()),
            ),
        ];
        for (json, want) in cases {
            let got = LinkKeys::parse(json).unwrap_err();
            assert_eq!(got, want, "{json}");
            assert!(!got.to_string().contains("too-short"), "{got}");
        }
    }

    #[test]
    fn signing_secrets_are_tried_current_first() {
        let s = SigningSecrets::new(
            SigningSecret::new(b"current-secret-16".to_vec()),
            Some(SigningSecret::new(b"previous-secret-16".to_vec())),
        );
        assert_eq!(
            s.all(),
            vec![&b"current-secret-16"[..], &b"previous-secret-16"[..]]
        );
        assert!(SigningSecrets::default().all().is_empty());
        assert_eq!(format!("{s:?}").matches("SigningSecret(..)").count(), 2);
    }
}
