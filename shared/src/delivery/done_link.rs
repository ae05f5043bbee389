//! "I've done this": the one signed one-click link of an onboarding email, for the one next
//! onboarding step the email talks about (the nudge's `vars.step`). Following it records
//! `setup_step_completed` for that account, contact and step.
//!
//! Token: `<key id> "." base64url(JSON ["<account_id>","<contact_id>","<step>","<nudge_id>"])
//! "." base64url(HMAC-SHA256(k, "<key id>.<payload>"))`, where
//! `k = HMAC-SHA256(link key <key id>, "nudge-done-link-v1")`: the link keys
//! (`deps::LinkKeys`) are Nudge's own, never the request-signing secret, and the label keeps a
//! done token from ever being an unsubscribe token, nor the other way round. The key id is
//! signed with the payload; new tokens carry the current key id, a token verifies under the
//! key its id names for as long as that id is in the set, and tokens of an id the set does
//! not have are refused. At most [`MAX_TOKEN_LEN`]
//! characters, all URL-safe; no expiry (the step is done whenever the customer says so); the
//! step is a slug as the event contract requires. Verification is constant-time and never
//! panics; a forged or altered token changes nothing.
//!
//! The event recorded for a token has the id `done-<first 32 hex of SHA-256(payload JSON)>`:
//! the same link followed twice is a duplicate for the ingest write path, and says so.
//!
//! HTTP (served by the `ingest` function, `ingest/done.rs`): `GET /steps/done?t=` shows a
//! confirmation page with a button and changes nothing (mail scanners prefetch links);
//! `POST /steps/done` (form body `t=`) records the step. The pages (ja/en) are rendered here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use minijinja::context;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::pages::{bilingual, html_page};
use crate::deps::LinkKeys;
use crate::domain::Locale;
use crate::events::{Event, EventPayload, is_slug};

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are neither signed nor verified.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Hex characters of the payload hash in the event id (128 bits).
const EVENT_ID_HASH_HEX: usize = 32;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("the done-link token is missing")]
    Missing,
    #[error("the done-link token is malformed")]
    Malformed,
    #[error("the done-link token names an unknown key id")]
    UnknownKey,
    #[error("the done-link token's signature does not match")]
    BadSignature,
    #[error("no done link for step {0:?}: a step is lower snake_case, at most 64 characters")]
    BadStep(String),
    #[error("no done link without an account, a contact and a nudge id")]
    MissingId,
    #[error("the done-link token would be {0} characters, over the limit")]
    TooLong(usize),
    #[error("no link key is loaded to sign a done-link token with")]
    NoKey,
}

/// What a token records: one contact of one account says one step is done, from one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneTarget {
    pub account_id: String,
    pub contact_id: String,
    pub step: String,
    /// The nudge whose email carried the link.
    pub nudge_id: String,
}

impl DoneTarget {
    fn payload_json(&self) -> String {
        serde_json::to_string(&[
            &self.account_id,
            &self.contact_id,
            &self.step,
            &self.nudge_id,
        ])
        .unwrap_or_default()
    }

    /// The id of the event this token records: the same for every use of the token.
    pub fn event_id(&self) -> String {
        let hash = hex::encode(Sha256::digest(self.payload_json().as_bytes()));
        format!("done-{}", &hash[..EVENT_ID_HASH_HEX])
    }

    /// The `setup_step_completed` event this token records, as received at `now`.
    pub fn event(&self, now: DateTime<Utc>) -> Event {
        Event {
            event_id: self.event_id(),
            account_id: self.account_id.clone(),
            contact_id: Some(self.contact_id.clone()),
            occurred_at: now.fixed_offset(),
            payload: EventPayload::SetupStepCompleted {
                step: self.step.clone(),
            },
        }
    }
}

const KEY_LABEL: &[u8] = b"nudge-done-link-v1";

/// The done-link key under one link key.
fn key(link_key: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(link_key).expect("HMAC takes any key length");
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

fn mac_for(key: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

/// Signs a token for `target` under the current link key.
pub fn sign(keys: &LinkKeys, target: &DoneTarget) -> Result<String, TokenError> {
    if target.account_id.is_empty() || target.contact_id.is_empty() || target.nudge_id.is_empty() {
        return Err(TokenError::MissingId);
    }
    if !is_slug(&target.step) {
        return Err(TokenError::BadStep(target.step.clone()));
    }
    let (key_id, link_key) = keys.current().ok_or(TokenError::NoKey)?;
    let signed = format!(
        "{key_id}.{}",
        URL_SAFE_NO_PAD.encode(target.payload_json().as_bytes())
    );
    let key = key(link_key);
    let sig = URL_SAFE_NO_PAD.encode(mac_for(&key, &signed).finalize().into_bytes());
    let token = format!("{signed}.{sig}");
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(token.len()));
    }
    Ok(token)
}

/// Verifies a token (constant-time) under the key its key id names and decodes its target.
pub fn verify(keys: &LinkKeys, token: &str) -> Result<DoneTarget, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(key_id), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let key = key(keys.get(key_id).ok_or(TokenError::UnknownKey)?);
    // Unpadded, and (the engine's default) no stray bits: one signature has one spelling.
    let sig = URL_SAFE_NO_PAD
        .decode(sig.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let signed = &token[..key_id.len() + 1 + payload.len()];
    mac_for(&key, signed)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let parts: Vec<String> = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    match parts.as_slice() {
        [a, c, step, n] if !a.is_empty() && !c.is_empty() && !n.is_empty() && is_slug(step) => {
            Ok(DoneTarget {
                account_id: a.clone(),
                contact_id: c.clone(),
                step: step.clone(),
                nudge_id: n.clone(),
            })
        }
        _ => Err(TokenError::Malformed),
    }
}

/// `<base>/steps/done?t=<token>`; relative when no public base URL is configured (as the
/// unsubscribe link, see `unsubscribe.rs`).
pub fn link(base_url: &str, token: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("t", token)
        .finish();
    format!("{}/steps/done?{query}", base_url.trim_end_matches('/'))
}

// ------------------------------------------------------------------------------------ pages --

/// `import_data` -> "Import data": a step name as a person reads it.
fn humanise(step: &str) -> String {
    let words = step.replace('_', " ");
    let words = words.trim();
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A step's name on a page: Japanese names for the default steps of the health model, else the
/// humanised step name (in both languages: a plan's own steps have no translation here).
pub fn step_label(step: &str, lang: Locale) -> String {
    match (lang, step) {
        (Locale::Ja, "invite_users") => "メンバーの招待".into(),
        (Locale::Ja, "import_data") => "データの取り込み".into(),
        (Locale::Ja, "first_report") => "最初のレポート作成".into(),
        _ => humanise(step),
    }
}

/// The page behind the link: names the step and asks for the click that records it.
pub fn confirm_page(lang: Locale, step: &str, token: &str) -> Response<Body> {
    let ctx = context! {
        lang => lang.as_str(),
        step => step_label(step, lang),
        token,
    };
    html_page(StatusCode::OK, "done_confirm", ctx)
}

/// After the click: the step is recorded (or `already` was, by this same link) and, if known,
/// the next step of the plan.
pub fn recorded_page(
    lang: Locale,
    step: &str,
    next: Option<&str>,
    already: bool,
) -> Response<Body> {
    let ctx = context! {
        lang => lang.as_str(),
        step => step_label(step, lang),
        next => next.map(|n| step_label(n, lang)),
        already,
    };
    html_page(StatusCode::OK, "done_recorded", ctx)
}

/// A missing, forged or altered link (or a request no browser form sends): nothing recorded.
pub fn invalid_page(status: StatusCode) -> Response<Body> {
    html_page(status, "done_invalid", bilingual())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: &str = "v1-0123456789abcdef0123456789abcdef";
    const K2: &str = "v2-0123456789abcdef0123456789abcdef";

    /// Key `v1` alone, current.
    fn keys() -> LinkKeys {
        LinkKeys::parse(&format!(r#"{{"current":"v1","v1":"{K1}"}}"#)).unwrap()
    }

    /// `v1` and `v2`, `v2` current: after a rotation.
    fn rotated() -> LinkKeys {
        LinkKeys::parse(&format!(r#"{{"current":"v2","v1":"{K1}","v2":"{K2}"}}"#)).unwrap()
    }

    fn target() -> DoneTarget {
        DoneTarget {
            account_id: "acme".into(),
            contact_id: "u-7".into(),
            step: "import_data".into(),
            nudge_id: "ob:acme:u-7:import_data".into(),
        }
    }

    fn token() -> String {
        sign(&keys(), &target()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_target() {
        let t = token();
        assert!(t.starts_with("v1."), "{t}");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "URL-safe: {t}"
        );
        assert_eq!(verify(&keys(), &t), Ok(target()));
        assert_eq!(verify(&keys(), &format!(" {t}\n")), Ok(target()));
    }

    #[test]
    fn a_token_keeps_verifying_after_another_key_becomes_current() {
        let old = token();
        let new = sign(&rotated(), &target()).unwrap();
        assert!(new.starts_with("v2."), "{new}");
        assert_eq!(verify(&rotated(), &old), Ok(target()));
        assert_eq!(verify(&rotated(), &new), Ok(target()));
        // The same link followed under either key records the same event.
        assert_eq!(
            verify(&rotated(), &old).unwrap().event_id(),
            verify(&rotated(), &new).unwrap().event_id()
        );
        // A container that has not loaded v2 yet refuses v2's tokens.
        assert_eq!(verify(&keys(), &new), Err(TokenError::UnknownKey));
        // The key id is signed: v1's payload and MAC under the id v2 fail.
        let swapped = format!("v2.{}", old.split_once('.').unwrap().1);
        assert_eq!(verify(&rotated(), &swapped), Err(TokenError::BadSignature));
        assert_eq!(
            sign(&LinkKeys::default(), &target()),
            Err(TokenError::NoKey)
        );
    }

    #[test]
    fn separators_in_ids_cannot_confuse_fields() {
        let odd = DoneTarget {
            account_id: "a.b".into(),
            contact_id: "c\",\"d".into(),
            ..target()
        };
        assert_eq!(verify(&keys(), &sign(&keys(), &odd).unwrap()), Ok(odd));
    }

    #[test]
    fn altered_truncated_and_foreign_tokens_are_rejected() {
        let t = token();
        let mut parts = t.split('.');
        let (_, payload, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        // Another contact under the same signature.
        let other =
            URL_SAFE_NO_PAD.encode(br#"["acme","u-8","import_data","ob:acme:u-7:import_data"]"#);
        assert_eq!(
            verify(&keys(), &format!("v1.{other}.{sig}")),
            Err(TokenError::BadSignature)
        );
        // A flipped signature character.
        let mut flipped = sig.to_string().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify(&keys(), &format!("v1.{payload}.{flipped}")),
            Err(TokenError::BadSignature)
        );
        let foreign =
            LinkKeys::parse(r#"{"current":"v1","v1":"not-our-key-0123456789abcdef0123"}"#).unwrap();
        assert_eq!(verify(&foreign, &t), Err(TokenError::BadSignature));
        assert_eq!(
            verify(&keys(), &format!("v2.{payload}.{sig}")),
            Err(TokenError::UnknownKey)
        );
        for cut in 1..t.len() {
            assert!(verify(&keys(), &t[..cut]).is_err(), "truncated to {cut}");
        }
        assert_eq!(
            verify(&keys(), &format!("v1.{payload}")),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&keys(), &format!("{t}.x")),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify(&keys(), ""), Err(TokenError::Missing));
        assert_eq!(verify(&keys(), "garbage"), Err(TokenError::Malformed));
        assert_eq!(verify(&keys(), "v1.%%.!!"), Err(TokenError::Malformed));
        assert_eq!(
            verify(&keys(), &"v1.".repeat(1000)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn an_unsubscribe_token_is_not_a_done_token() {
        let unsub = super::super::unsubscribe::sign(&keys(), "acme", "u-7", "onboarding").unwrap();
        assert!(verify(&keys(), &unsub).is_err());
        // Even laid out as a done token and signed under the unsubscribe key, it is refused:
        // the two keys differ.
        let payload =
            URL_SAFE_NO_PAD.encode(br#"["acme","u-7","import_data","ob:acme:u-7:import_data"]"#);
        let signed = format!("v1.{payload}");
        let mut unsub_key = HmacSha256::new_from_slice(K1.as_bytes()).unwrap();
        unsub_key.update(b"nudge-unsubscribe-v1");
        let unsub_key = unsub_key.finalize().into_bytes();
        let sig = URL_SAFE_NO_PAD.encode(mac_for(&unsub_key, &signed).finalize().into_bytes());
        assert_eq!(
            verify(&keys(), &format!("{signed}.{sig}")),
            Err(TokenError::BadSignature)
        );
        // Nor is a bare signature under the link key itself.
        let sig = URL_SAFE_NO_PAD.encode(mac_for(K1.as_bytes(), &signed).finalize().into_bytes());
        assert_eq!(
            verify(&keys(), &format!("{signed}.{sig}")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_is_signed_only_for_a_slug_step_and_complete_ids() {
        let step = |s: &str| DoneTarget {
            step: s.into(),
            ..target()
        };
        assert_eq!(
            sign(&keys(), &step("<b>x</b>")),
            Err(TokenError::BadStep("<b>x</b>".into()))
        );
        assert!(matches!(
            sign(&keys(), &step("Import Data")),
            Err(TokenError::BadStep(_))
        ));
        let no_nudge = DoneTarget {
            nudge_id: String::new(),
            ..target()
        };
        assert_eq!(sign(&keys(), &no_nudge), Err(TokenError::MissingId));
        let long = DoneTarget {
            nudge_id: "n".repeat(MAX_TOKEN_LEN),
            ..target()
        };
        assert!(matches!(sign(&keys(), &long), Err(TokenError::TooLong(_))));
    }

    #[test]
    fn a_validly_signed_payload_with_a_bad_step_is_still_refused() {
        let payload = URL_SAFE_NO_PAD.encode(br#"["acme","u-7","<b>x</b>","n1"]"#);
        let signed = format!("v1.{payload}");
        let key = key(K1.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac_for(&key, &signed).finalize().into_bytes());
        assert_eq!(
            verify(&keys(), &format!("{signed}.{sig}")),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_event_id_is_the_same_for_every_use_of_a_token_and_differs_between_emails() {
        let a = verify(&keys(), &token()).unwrap();
        let b = verify(&keys(), &token()).unwrap();
        assert_eq!(a.event_id(), b.event_id());
        assert!(a.event_id().starts_with("done-"));
        assert_eq!(a.event_id().len(), "done-".len() + 32);
        let other_email = DoneTarget {
            nudge_id: "ob:2".into(),
            ..target()
        };
        assert_ne!(a.event_id(), other_email.event_id());
        let now = DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = a.event(now);
        // It satisfies the event contract, as a `POST /events` body would have to.
        assert_eq!(crate::events::parse_event(&e.to_wire(), now), Ok(e));
    }

    #[test]
    fn links_encode_the_token_as_a_query_value() {
        assert_eq!(
            link("https://api.example.com/", "v1.abc.d-e_f"),
            "https://api.example.com/steps/done?t=v1.abc.d-e_f"
        );
        assert_eq!(link("", "v1.a.b"), "/steps/done?t=v1.a.b");
        assert_eq!(
            link("https://x.example/prod", "a+b&c=d"),
            "https://x.example/prod/steps/done?t=a%2Bb%26c%3Dd"
        );
        let t = token();
        let url = link("https://api.example.com", &t);
        let query = url.split_once('?').unwrap().1;
        assert_eq!(
            super::super::pages::form_param(query, "t").as_deref(),
            Some(t.as_str())
        );
    }

    #[test]
    fn step_names_read_as_words_and_default_steps_have_japanese_names() {
        assert_eq!(step_label("import_data", Locale::En), "Import data");
        assert_eq!(step_label("first_report", Locale::En), "First report");
        assert_eq!(step_label("invite_users", Locale::Ja), "メンバーの招待");
        assert_eq!(step_label("import_data", Locale::Ja), "データの取り込み");
        assert_eq!(step_label("connect_crm", Locale::Ja), "Connect crm");
        assert_eq!(step_label("_", Locale::En), "");
    }

    fn body(resp: &Response<Body>) -> String {
        match resp.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        }
    }

    #[test]
    fn pages_keep_their_text_in_both_languages() {
        let ja = confirm_page(Locale::Ja, "import_data", "v1.p.s");
        assert_eq!(ja.status(), StatusCode::OK);
        assert_eq!(ja.headers()["cache-control"], "no-store");
        let ja = body(&ja);
        assert!(ja.starts_with("<!doctype html><html lang=\"ja\">"), "{ja}");
        assert!(
            ja.contains("<p>「データの取り込み」を完了として記録しますか？</p>"),
            "{ja}"
        );
        assert!(
            ja.contains(
                "<form method=\"post\"><input type=\"hidden\" name=\"t\" value=\"v1.p.s\"><button type=\"submit\">完了を記録する</button></form>"
            ),
            "{ja}"
        );
        let en = body(&confirm_page(Locale::En, "import_data", "v1.p.s"));
        assert!(en.contains("<p>Mark “Import data” as done?</p>"), "{en}");
        assert!(en.contains("<button type=\"submit\">I've done this</button>"));

        let done = body(&recorded_page(
            Locale::En,
            "import_data",
            Some("first_report"),
            false,
        ));
        assert!(done.contains("<title>Well done!</title>"), "{done}");
        assert!(done.contains("<p>Congratulations: “Import data” is recorded as done.</p>"));
        assert!(done.contains("<p>Next step: <strong>First report</strong></p>"));
        let again = body(&recorded_page(
            Locale::En,
            "import_data",
            Some("first_report"),
            true,
        ));
        assert!(again.contains("<title>Already recorded</title>"), "{again}");
        assert!(again.contains("was already recorded as done"));
        assert!(again.contains("Next step: <strong>First report</strong>"));
        let last = body(&recorded_page(Locale::En, "first_report", None, false));
        assert!(!last.contains("Next step"), "{last}");

        let ja = body(&recorded_page(
            Locale::Ja,
            "invite_users",
            Some("import_data"),
            false,
        ));
        assert!(ja.contains("<title>おつかれさまでした</title>"), "{ja}");
        assert!(ja.contains("「メンバーの招待」の完了を記録しました。"));
        assert!(ja.contains("<p>次のステップ: <strong>データの取り込み</strong></p>"));
        let ja = body(&recorded_page(Locale::Ja, "invite_users", None, true));
        assert!(ja.contains("<title>記録済みです</title>"), "{ja}");
        assert!(ja.contains("「メンバーの招待」はすでに完了として記録されています。"));

        let bad = invalid_page(StatusCode::BAD_REQUEST);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let bad = body(&bad);
        assert!(
            bad.contains("<title>Invalid link / 無効なリンク</title>"),
            "{bad}"
        );
        assert!(bad.contains("Nothing was recorded."), "{bad}");
        assert!(bad.contains("何も記録されていません。"), "{bad}");
    }

    #[test]
    fn page_values_are_html_escaped() {
        let p = body(&confirm_page(
            Locale::En,
            "x",
            "\"><script>alert(1)</script>",
        ));
        assert!(!p.contains("<script>"), "{p}");
        assert!(p.contains("value=\"&quot;&gt;&lt;script&gt;"), "{p}");
        let p = body(&recorded_page(
            Locale::En,
            "import_data",
            Some("<img src=x onerror=alert(1)>"),
            false,
        ));
        assert!(!p.contains("<img"), "{p}");
        assert!(p.contains("&lt;img src=x onerror=alert(1)&gt;"), "{p}");
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in ".{0,300}") {
            let _ = verify(&keys(), &s);
        }

        #[test]
        fn verify_never_panics_on_token_like_input(s in "v[0-9]\\.[A-Za-z0-9_.-]{0,200}") {
            let _ = verify(&keys(), &s);
        }

        #[test]
        fn any_single_character_change_is_rejected(idx in 0usize..300, c in "[A-Za-z0-9_.-]") {
            let t = token();
            let i = idx % t.len();
            let mut bytes = t.clone().into_bytes();
            let new = c.as_bytes()[0];
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(verify(&keys(), &altered).is_err());
        }
    }
}
