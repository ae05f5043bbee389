//! One-click unsubscribe (RFC 8058) with signed, per-contact, per-category tokens.
//!
//! Token: `<key id> "." base64url(JSON ["<account_id>","<contact_id>","<category>"]) "."
//! hex(HMAC-SHA256(k, "<key id>.<payload>"))` where `k = HMAC-SHA256(link key <key id>,
//! "nudge-unsubscribe-v1")`. The link keys (`deps::LinkKeys`) are Nudge's own, never the
//! request-signing secret, so no event sender can mint a token; the label keeps an unsubscribe
//! token from ever passing as a done-link token under the same key. New tokens carry the
//! current key id; a token verifies under the key its id names for as long as that id is in
//! the set, and a token without a key id is refused. Tokens do not expire (an unsubscribe link
//! in a two-year-old email must still work: keep old key ids in the set) and carry nothing
//! secret. Verification is constant-time; a forged or altered token changes nothing.
//!
//! HTTP: `GET /unsubscribe?token=` shows a small confirmation page (ja/en) with a button; it
//! never unsubscribes by itself, because mail scanners prefetch links. `POST /unsubscribe?token=`
//! (the RFC 8058 one-click body `List-Unsubscribe=One-Click`, or the page's form) unsubscribes.
//!
//! Links are built from `config.public_base_url` (`NUDGE_PUBLIC_BASE_URL`). When it is unset,
//! the body link is relative (`/unsubscribe?token=...`) and the `List-Unsubscribe` headers are
//! left out (they must be absolute URLs); a warning is logged once per container. Set it in every
//! deployed stage.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use minijinja::context;
use sha2::Sha256;
use thiserror::Error;
use tracing::{info, warn};

use super::pages::{
    bilingual, body_text, form_param, html_page, method_not_allowed, page_locale, retry_later,
};
use crate::Deps;
use crate::deps::LinkKeys;
use crate::domain::{Locale, category};

type HmacSha256 = Hmac<Sha256>;

const KEY_LABEL: &[u8] = b"nudge-unsubscribe-v1";
/// Tokens longer than this are rejected before any work.
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("the unsubscribe token is missing")]
    Missing,
    #[error("the unsubscribe token is malformed")]
    Malformed,
    #[error("the unsubscribe token names an unknown key id")]
    UnknownKey,
    #[error("the unsubscribe token's signature does not match")]
    BadSignature,
    #[error("no link key is loaded to sign an unsubscribe token with")]
    NoKey,
}

/// What a token unsubscribes: one contact of one account from one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeTarget {
    pub account_id: String,
    pub contact_id: String,
    pub category: String,
}

/// The unsubscribe key under one link key.
fn key(link_key: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(link_key).expect("HMAC takes any key length");
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

fn mac_for(link_key: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&key(link_key)).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

/// Signs a token for (account, contact, category) under the current link key.
pub fn sign(
    keys: &LinkKeys,
    account_id: &str,
    contact_id: &str,
    category: &str,
) -> Result<String, TokenError> {
    let (key_id, link_key) = keys.current().ok_or(TokenError::NoKey)?;
    let json = serde_json::to_string(&[account_id, contact_id, category]).unwrap_or_default();
    let signed = format!("{key_id}.{}", URL_SAFE_NO_PAD.encode(json.as_bytes()));
    let sig = hex::encode(mac_for(link_key, &signed).finalize().into_bytes());
    Ok(format!("{signed}.{sig}"))
}

/// Verifies a token (constant-time) under the key its key id names and decodes its target.
pub fn verify(keys: &LinkKeys, token: &str) -> Result<UnsubscribeTarget, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    // Exactly three parts: a token without a key id (signed before link keys) is malformed.
    let mut parts = token.split('.');
    let (Some(key_id), Some(payload), Some(sig_hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let link_key = keys.get(key_id).ok_or(TokenError::UnknownKey)?;
    // Lowercase hex only: one token has exactly one spelling.
    if !sig_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenError::Malformed);
    }
    let sig = hex::decode(sig_hex).map_err(|_| TokenError::Malformed)?;
    let signed = &token[..key_id.len() + 1 + payload.len()];
    mac_for(link_key, signed)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let parts: Vec<String> = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    match parts.as_slice() {
        [a, c, cat] if !a.is_empty() && !c.is_empty() && valid_category(cat) => {
            Ok(UnsubscribeTarget {
                account_id: a.clone(),
                contact_id: c.clone(),
                category: cat.clone(),
            })
        }
        _ => Err(TokenError::Malformed),
    }
}

fn valid_category(c: &str) -> bool {
    c == category::ALL || category::CUSTOMER.contains(&c)
}

/// The link for a customer email's footer and `List-Unsubscribe` header. Relative when no
/// public base URL is configured (see the module docs).
pub fn link(base_url: &str, token: &str) -> String {
    format!(
        "{}/unsubscribe?token={}",
        base_url.trim_end_matches('/'),
        token
    )
}

/// `List-Unsubscribe` and `List-Unsubscribe-Post` headers (RFC 8058), only for absolute links.
pub fn headers(url: &str) -> Vec<(String, String)> {
    if url.starts_with("https://") || url.starts_with("http://") {
        vec![
            ("List-Unsubscribe".into(), format!("<{url}>")),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ]
    } else {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            warn!(
                "NUDGE_PUBLIC_BASE_URL is not set: unsubscribe links are relative and emails carry no List-Unsubscribe header"
            )
        });
        Vec::new()
    }
}

// ------------------------------------------------------------------------------------ HTTP --

fn category_label(cat: &str, lang: Locale) -> &'static str {
    match (cat, lang) {
        ("reminders", Locale::Ja) => "期限のリマインダー",
        ("reminders", Locale::En) => "deadline reminders",
        ("onboarding", Locale::Ja) => "導入のご案内",
        ("onboarding", Locale::En) => "onboarding guidance",
        ("success", Locale::Ja) => "活用のヒントとお知らせ",
        ("success", Locale::En) => "tips and updates",
        (_, Locale::Ja) => "すべてのメール",
        (_, Locale::En) => "all emails",
    }
}

/// The context of the confirmation and done pages.
fn page_ctx(lang: Locale, cat: &str, token: &str) -> minijinja::Value {
    context! {
        lang => lang.as_str(),
        label => category_label(cat, lang),
        token,
    }
}

/// Serves `GET` and `POST /unsubscribe`.
pub async fn handle_http(deps: &Deps, req: &Request) -> Response<Body> {
    let query = req.uri().query().unwrap_or_default();
    let body = body_text(req.body());
    let token = form_param(query, "token")
        .or_else(|| form_param(&body, "token"))
        .unwrap_or_default();
    let target = match verify(&deps.keys.links, &token) {
        Ok(t) => t,
        Err(e) => {
            info!(error = %e, "unsubscribe request with an invalid token");
            return html_page(StatusCode::BAD_REQUEST, "unsubscribe_invalid", bilingual());
        }
    };
    match *req.method() {
        Method::GET | Method::HEAD => {
            let lang = page_locale(deps, &target.account_id, &target.contact_id).await;
            html_page(
                StatusCode::OK,
                "unsubscribe_confirm",
                page_ctx(lang, &target.category, &token),
            )
        }
        Method::POST => {
            if let Err(e) = deps
                .store
                .unsubscribe(&target.account_id, &target.contact_id, &target.category)
                .await
            {
                warn!(account_id = %target.account_id, error = %e, "unsubscribe not stored");
                return retry_later();
            }
            info!(account_id = %target.account_id, category = %target.category, "contact unsubscribed");
            let lang = page_locale(deps, &target.account_id, &target.contact_id).await;
            html_page(
                StatusCode::OK,
                "unsubscribe_done",
                page_ctx(lang, &target.category, &token),
            )
        }
        _ => method_not_allowed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates;
    use proptest::prelude::*;

    const K1: &str = "k1-0123456789abcdef0123456789abcdef";
    const K2: &str = "k2-0123456789abcdef0123456789abcdef";

    /// The key set with `current` current: k1 alone, or k1 and k2.
    fn keys(current: &str) -> LinkKeys {
        let json = match current {
            "k1" => format!(r#"{{"current":"k1","k1":"{K1}"}}"#),
            _ => format!(r#"{{"current":"{current}","k1":"{K1}","k2":"{K2}"}}"#),
        };
        LinkKeys::parse(&json).unwrap()
    }

    fn sign1(account: &str, contact: &str, cat: &str) -> String {
        sign(&keys("k1"), account, contact, cat).unwrap()
    }

    #[test]
    fn round_trips() {
        let t = sign1("acme", "u-7", "reminders");
        assert!(t.starts_with("k1."), "{t}");
        assert_eq!(
            verify(&keys("k1"), &t),
            Ok(UnsubscribeTarget {
                account_id: "acme".into(),
                contact_id: "u-7".into(),
                category: "reminders".into()
            })
        );
    }

    #[test]
    fn a_token_keeps_verifying_after_another_key_becomes_current() {
        let old = sign1("acme", "u-7", "reminders");
        let rotated = keys("k2");
        let new = sign(&rotated, "acme", "u-7", "reminders").unwrap();
        assert!(new.starts_with("k2."), "{new}");
        assert_eq!(verify(&rotated, &old), verify(&keys("k1"), &old));
        assert!(verify(&rotated, &old).is_ok());
        assert!(verify(&rotated, &new).is_ok());
        // Until k2 reaches every container, one that knows only k1 refuses k2's tokens.
        assert_eq!(verify(&keys("k1"), &new), Err(TokenError::UnknownKey));
    }

    #[test]
    fn unknown_key_ids_tokens_without_one_and_swapped_ids_are_refused() {
        let t = sign1("acme", "u-7", "reminders");
        let (_, rest) = t.split_once('.').unwrap();
        assert_eq!(
            verify(&keys("k2"), &format!("k9.{rest}")),
            Err(TokenError::UnknownKey)
        );
        // The key id is signed: the same payload and MAC under another known id fails.
        assert_eq!(
            verify(&keys("k2"), &format!("k2.{rest}")),
            Err(TokenError::BadSignature)
        );
        // The format before link keys: payload and MAC, no key id.
        assert_eq!(verify(&keys("k1"), rest), Err(TokenError::Malformed));
        assert_eq!(
            sign(&LinkKeys::default(), "acme", "u-7", "all"),
            Err(TokenError::NoKey)
        );
        assert_eq!(
            verify(&LinkKeys::default(), &t),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn separators_in_ids_cannot_confuse_fields() {
        let t = sign1("a|b", "c\",\"d", "success");
        let v = verify(&keys("k1"), &t).unwrap();
        assert_eq!(v.account_id, "a|b");
        assert_eq!(v.contact_id, "c\",\"d");
    }

    #[test]
    fn altered_tokens_are_rejected() {
        let k = keys("k1");
        let t = sign1("acme", "u-7", "reminders");
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(br#"["acme","u-8","reminders"]"#);
        assert_eq!(
            verify(&k, &format!("k1.{other}.{sig}")),
            Err(TokenError::BadSignature)
        );
        let forged =
            LinkKeys::parse(r#"{"current":"k1","k1":"not-our-key-0123456789abcdef0123"}"#).unwrap();
        assert_eq!(verify(&forged, &t), Err(TokenError::BadSignature));
        assert_eq!(verify(&k, signed), Err(TokenError::Malformed));
        assert_eq!(verify(&k, ""), Err(TokenError::Missing));
        assert_eq!(
            verify(&k, &format!("{signed}.zz")),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify(&k, &format!("{t}.x")), Err(TokenError::Malformed));
        // A validly signed token for an unknown category is still refused.
        assert_eq!(
            verify(&k, &sign1("a", "c", "csm")),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_unsubscribe_key_is_not_the_link_key() {
        let t = sign1("acme", "u-7", "all");
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let mut plain = HmacSha256::new_from_slice(K1.as_bytes()).unwrap();
        plain.update(signed.as_bytes());
        assert_ne!(hex::encode(plain.finalize().into_bytes()), sig);
    }

    #[test]
    fn headers_follow_rfc_8058_for_absolute_links_only() {
        let url = link("https://api.example.com/", "tok");
        assert_eq!(url, "https://api.example.com/unsubscribe?token=tok");
        let h = headers(&url);
        assert_eq!(h[0].1, "<https://api.example.com/unsubscribe?token=tok>");
        assert_eq!(
            h[1],
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string()
            )
        );
        assert!(headers(&link("", "tok")).is_empty());
    }

    fn page(name: &str, ctx: minijinja::Value) -> String {
        templates::render_page(name, ctx).unwrap()
    }

    #[test]
    fn pages_keep_their_text_in_both_languages() {
        let ja = page(
            "unsubscribe_confirm",
            page_ctx(Locale::Ja, "reminders", "p.0a"),
        );
        assert!(ja.starts_with("<!doctype html><html lang=\"ja\">"), "{ja}");
        assert!(ja.contains("<title>配信停止の確認</title>"), "{ja}");
        assert!(ja.contains("<p>「期限のリマインダー」のメール配信を停止しますか？</p>"));
        assert!(ja.contains(
            "<form method=\"post\" action=\"?token=p.0a\"><input type=\"hidden\" name=\"token\" value=\"p.0a\"><button type=\"submit\">配信を停止する</button></form>"
        ));
        let en = page(
            "unsubscribe_confirm",
            page_ctx(Locale::En, "success", "p.0a"),
        );
        assert!(en.contains("<h1 style=\"font-size:1.3em\">Confirm unsubscribe</h1>"));
        assert!(en.contains("<p>Stop receiving tips and updates by email?</p>"));
        let done = page("unsubscribe_done", page_ctx(Locale::En, "all", "p.0a"));
        assert!(done.contains("<p>We will not send you all emails by email any more.</p>"));
        let done = page(
            "unsubscribe_done",
            page_ctx(Locale::Ja, "onboarding", "p.0a"),
        );
        assert!(done.contains("<title>配信を停止しました</title>"));
        assert!(done.contains("<p>「導入のご案内」のメールは今後お送りしません。</p>"));
        let bad = page("unsubscribe_invalid", bilingual());
        assert!(
            bad.contains("<title>Invalid link / 無効なリンク</title>"),
            "{bad}"
        );
        assert!(bad.contains("Nothing was changed.</p><p>この配信停止リンクは無効です。"));
        let retry = page("unsubscribe_retry", bilingual());
        assert!(retry.contains("Please try again in a minute."));
        assert!(page("method_not_allowed", bilingual()).contains("<p>Use GET or POST.</p>"));
    }

    #[test]
    fn page_values_are_html_escaped() {
        let p = page(
            "unsubscribe_confirm",
            page_ctx(Locale::En, "reminders", "\"><script>x</script>"),
        );
        assert!(!p.contains("<script>"), "{p}");
        assert!(p.contains("value=\"&quot;&gt;&lt;script&gt;"), "{p}");
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in ".{0,300}") {
            let _ = verify(&keys("k2"), &s);
        }

        #[test]
        fn any_single_character_change_is_rejected(idx in 0usize..200, c in "[A-Za-z0-9_.-]") {
            let t = sign1("acme", "u-7", "success");
            let i = idx % t.len();
            let mut bytes = t.clone().into_bytes();
            let new = c.as_bytes()[0];
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(verify(&keys("k2"), &altered).is_err());
        }
    }
}
