//! One-click unsubscribe (RFC 8058) with signed, per-contact, per-category tokens.
//!
//! Token: `base64url(JSON ["<account_id>","<contact_id>","<category>"]) "." hex(HMAC-SHA256(k,
//! payload))` where `k = HMAC-SHA256(signing secret, "nudge-unsubscribe-v1")`: a key of its own,
//! so an unsubscribe token can never be replayed as a request signature or the other way round.
//! Tokens do not expire (an unsubscribe link in a two-year-old email must still work) and carry
//! nothing secret. Verification is constant-time; a forged or altered token changes nothing.
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
    #[error("the unsubscribe token's signature does not match")]
    BadSignature,
}

/// What a token unsubscribes: one contact of one account from one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeTarget {
    pub account_id: String,
    pub contact_id: String,
    pub category: String,
}

fn key(secret: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

fn mac_for(secret: &[u8], payload: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&key(secret)).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// Signs a token for (account, contact, category).
pub fn sign(secret: &[u8], account_id: &str, contact_id: &str, category: &str) -> String {
    let json = serde_json::to_string(&[account_id, contact_id, category]).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json.as_bytes());
    let sig = hex::encode(mac_for(secret, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// Verifies a token (constant-time) and decodes its target.
pub fn verify(secret: &[u8], token: &str) -> Result<UnsubscribeTarget, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, sig_hex) = token.split_once('.').ok_or(TokenError::Malformed)?;
    // Lowercase hex only: one token has exactly one spelling.
    if !sig_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenError::Malformed);
    }
    let sig = hex::decode(sig_hex).map_err(|_| TokenError::Malformed)?;
    mac_for(secret, payload)
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
    let target = match verify(deps.secret.as_bytes(), &token) {
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

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    #[test]
    fn round_trips() {
        let t = sign(SECRET, "acme", "u-7", "reminders");
        assert_eq!(
            verify(SECRET, &t),
            Ok(UnsubscribeTarget {
                account_id: "acme".into(),
                contact_id: "u-7".into(),
                category: "reminders".into()
            })
        );
    }

    #[test]
    fn separators_in_ids_cannot_confuse_fields() {
        let t = sign(SECRET, "a|b", "c\",\"d", "success");
        let v = verify(SECRET, &t).unwrap();
        assert_eq!(v.account_id, "a|b");
        assert_eq!(v.contact_id, "c\",\"d");
    }

    #[test]
    fn altered_tokens_are_rejected() {
        let t = sign(SECRET, "acme", "u-7", "reminders");
        let (payload, sig) = t.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(br#"["acme","u-8","reminders"]"#);
        assert_eq!(
            verify(SECRET, &format!("{other}.{sig}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(b"another-secret-of-16", &t),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(SECRET, payload), Err(TokenError::Malformed));
        assert_eq!(verify(SECRET, ""), Err(TokenError::Missing));
        assert_eq!(
            verify(SECRET, &format!("{payload}.zz")),
            Err(TokenError::Malformed)
        );
        // A validly signed token for an unknown category is still refused.
        assert_eq!(
            verify(SECRET, &sign(SECRET, "a", "c", "csm")),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_unsubscribe_key_is_not_the_signing_secret() {
        let t = sign(SECRET, "acme", "u-7", "all");
        let (payload, sig) = t.split_once('.').unwrap();
        let mut plain = HmacSha256::new_from_slice(SECRET).unwrap();
        plain.update(payload.as_bytes());
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
            let _ = verify(SECRET, &s);
        }

        #[test]
        fn any_single_character_change_is_rejected(idx in 0usize..200, c in "[A-Za-z0-9_.-]") {
            let t = sign(SECRET, "acme", "u-7", "success");
            let i = idx % t.len();
            let mut bytes = t.clone().into_bytes();
            let new = c.as_bytes()[0];
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(verify(SECRET, &altered).is_err());
        }
    }
}
