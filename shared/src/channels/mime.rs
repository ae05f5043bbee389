//! Raw MIME for SES v2 `Content::Raw`: the only content type through which custom headers
//! (`List-Unsubscribe`) survive everywhere, including the local moto emulator.
//!
//! `mail-builder` writes the message: it folds headers (a long Japanese subject becomes several
//! RFC 2047 encoded-words, no line over 78 characters) and picks each body's transfer encoding.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::OutgoingEmail;

/// Builds a multipart/alternative (text + HTML) message, UTF-8, with `Date` and `Message-ID`.
pub fn build(email: &OutgoingEmail) -> Vec<u8> {
    let mut message = MessageBuilder::new()
        .from(address(&email.from))
        .to(address(&email.to))
        .subject(Text::new(one_line(&email.subject)))
        .date(Date::new(email.date.timestamp()))
        .message_id(MessageId::new(one_line(&email.message_id)));
    if let Some(reply_to) = &email.reply_to {
        message = message.reply_to(address(reply_to));
    }
    for (name, value) in &email.headers {
        if !is_field_name(name) {
            warn!(header = %name, "extra header with an invalid name left out");
            continue;
        }
        // Raw: written as given (URLs in `<...>` stay exactly as they are), folded only at
        // whitespace.
        message = message.header(name.as_str(), Raw::new(one_line(value)));
    }
    let mut out = Vec::new();
    message
        .text_body(email.text.as_str())
        .html_body(email.html.as_str())
        .serialize(&mut out);
    out
}

/// The `Message-ID` (without angle brackets) of a nudge's email: the same for every attempt
/// at the same nudge, different for every nudge. The ids are hashed as a JSON pair so that
/// no choice of ids can make two pairs hash the same input; 128 bits of the hash keep the
/// header line under 78 characters.
pub fn message_id(account_id: &str, nudge_id: &str, from: &str) -> String {
    let pair = serde_json::json!([account_id, nudge_id]).to_string();
    let hash = hex::encode(&Sha256::digest(pair.as_bytes())[..16]);
    let domain: String = split_address(from)
        .1
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let domain = if domain.is_empty() {
        "localhost"
    } else {
        &domain
    };
    format!("{hash}@{domain}")
}

/// Header values never carry CR/LF (header injection); addresses were validated at ingest,
/// this is the second line of defence.
fn one_line(value: &str) -> Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        Cow::Owned(value.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(value)
    }
}

/// RFC 5322 field names: printable ASCII except `:`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// `a@b` or `Name <a@b>` (a configured sender may carry a display name).
fn split_address(s: &str) -> (Option<&str>, &str) {
    let s = s.trim();
    match s.strip_suffix('>').and_then(|rest| rest.rsplit_once('<')) {
        Some((name, addr)) => {
            let name = name.trim().trim_matches('"').trim();
            ((!name.is_empty()).then_some(name), addr.trim())
        }
        None => (None, s),
    }
}

fn address(s: &str) -> Address<'_> {
    let (name, addr) = split_address(s);
    Address::new_address(name.map(one_line), one_line(addr))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use chrono::{TimeZone, Utc};

    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            from: "nudge@example.com".into(),
            to: "a@example.jp".into(),
            reply_to: None,
            subject: "期限まであと3日".into(),
            text: "こんにちは\nhttps://x/unsubscribe?t=1\n".into(),
            html: "<p>こんにちは</p>".into(),
            headers: vec![
                (
                    "List-Unsubscribe".into(),
                    "<https://x/unsubscribe?t=1>".into(),
                ),
                (
                    "List-Unsubscribe-Post".into(),
                    "List-Unsubscribe=One-Click".into(),
                ),
            ],
            tags: vec![],
            date: Utc.with_ymd_and_hms(2026, 11, 20, 9, 5, 0).unwrap(),
            message_id: message_id("acme", "dl:d1:final", "nudge@example.com"),
        }
    }

    fn raw(e: &OutgoingEmail) -> String {
        String::from_utf8(build(e)).unwrap()
    }

    fn head(raw: &str) -> &str {
        &raw[..raw.find("\r\n\r\n").unwrap()]
    }

    /// The unfolded value of a top-level header.
    fn header(raw: &str, name: &str) -> Option<String> {
        let mut lines = head(raw).split("\r\n");
        let first = lines.find_map(|l| l.strip_prefix(&format!("{name}: ")))?;
        let mut value = first.to_string();
        for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
            value.push_str(l);
        }
        Some(value)
    }

    /// Decodes a header value made of RFC 2047 encoded-words (B or Q, UTF-8); whitespace
    /// between encoded-words is not part of the text.
    fn decode_words(value: &str) -> String {
        let mut out = Vec::new();
        for word in value.split_whitespace() {
            let inner = word
                .strip_prefix("=?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap_or_else(|| panic!("not an encoded-word: {word}"));
            let mut parts = inner.splitn(3, '?');
            let (charset, enc, text) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            assert!(charset.eq_ignore_ascii_case("utf-8"), "{word}");
            match enc {
                "B" | "b" => out.extend(STANDARD.decode(text).unwrap()),
                "Q" | "q" => out.extend(qp_decode(&text.replace('_', " "))),
                _ => panic!("unknown encoding in {word}"),
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn qp_decode(s: &str) -> Vec<u8> {
        let s = s.replace("=\r\n", "");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    /// The decoded body of the `ctype` part.
    fn part(raw: &str, ctype: &str) -> String {
        let start = raw.find(&format!("Content-Type: {ctype}")).unwrap();
        let part = &raw[start..];
        let (headers, body) = part.split_once("\r\n\r\n").unwrap();
        let body = &body[..body.find("\r\n--").unwrap()];
        let bytes = if headers.contains("Content-Transfer-Encoding: base64") {
            STANDARD
                .decode(body.split("\r\n").collect::<String>())
                .unwrap()
        } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
            qp_decode(body)
        } else {
            body.as_bytes().to_vec()
        };
        String::from_utf8(bytes).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn japanese_subject_is_encoded_word() {
        let raw = raw(&email());
        let subject = header(&raw, "Subject").unwrap();
        assert!(
            subject.to_ascii_uppercase().starts_with("=?UTF-8?B?"),
            "{raw}"
        );
        assert_eq!(decode_words(&subject), "期限まであと3日");
    }

    #[test]
    fn a_long_japanese_subject_is_folded_into_short_lines_and_decodes_back() {
        let mut e = email();
        e.subject = "【本日締切】四半期レポートの提出期限が近づいています。".repeat(15);
        assert!(e.subject.chars().count() >= 400);
        let raw = raw(&e);
        // RFC 5322: lines MUST be at most 998 characters and SHOULD be at most 78.
        for line in raw.split("\r\n") {
            assert!(line.len() <= 78, "{} chars: {line}", line.len());
        }
        let subject = header(&raw, "Subject").unwrap();
        assert!(subject.matches("=?").count() > 1, "several encoded-words");
        assert_eq!(decode_words(&subject), e.subject);
    }

    #[test]
    fn multipart_alternative_utf8_text_and_html() {
        let raw = raw(&email());
        let ctype = header(&raw, "Content-Type").unwrap();
        assert!(ctype.starts_with("multipart/alternative;"), "{ctype}");
        assert!(raw.contains("Content-Type: text/plain; charset=\"utf-8\"\r\n"));
        assert!(raw.contains("Content-Type: text/html; charset=\"utf-8\"\r\n"));
        assert_eq!(
            part(&raw, "text/plain"),
            "こんにちは\nhttps://x/unsubscribe?t=1\n"
        );
        assert_eq!(part(&raw, "text/html"), "<p>こんにちは</p>");
        assert_eq!(header(&raw, "MIME-Version").as_deref(), Some("1.0"));
        assert!(raw.ends_with("--\r\n"));
    }

    #[test]
    fn date_and_message_id_come_from_the_email() {
        let raw = raw(&email());
        assert_eq!(
            header(&raw, "Date").as_deref(),
            Some("Fri, 20 Nov 2026 09:05:00 +0000")
        );
        let id = header(&raw, "Message-ID").unwrap();
        assert_eq!(id, format!("<{}>", email().message_id));
    }

    #[test]
    fn message_ids_are_per_nudge_and_use_the_sender_domain() {
        let a = message_id("acme", "dl:d1:final", "Nudge <nudge@mail.example.com>");
        assert_eq!(a.len(), 32 + "@mail.example.com".len());
        assert!(a.ends_with("@mail.example.com"));
        assert_eq!(
            a,
            message_id("acme", "dl:d1:final", "nudge@mail.example.com")
        );
        assert_ne!(
            a,
            message_id("acme", "dl:d1:t_minus_1d", "nudge@mail.example.com")
        );
        // The pair is hashed unambiguously: moving a separator changes the id.
        assert_ne!(
            message_id("a/b", "c", "n@x.com"),
            message_id("a", "b/c", "n@x.com")
        );
        assert!(message_id("a", "b", "no-domain").ends_with("@localhost"));
    }

    #[test]
    fn reply_to_names_the_csm_and_only_when_asked() {
        let mut e = email();
        assert_eq!(header(&raw(&e), "Reply-To"), None);
        e.reply_to = Some("Sato Hanako <sato@vendor.example>".into());
        let got = header(&raw(&e), "Reply-To").expect("a Reply-To header");
        assert!(got.ends_with("<sato@vendor.example>"), "{got}");
        assert!(got.contains("Sato Hanako"), "{got}");
        e.reply_to = Some("x <sato@vendor.example>\r\nBcc: evil@example.com".into());
        assert!(!head(&raw(&e)).contains("\r\nBcc:"), "no header injection");
    }

    #[test]
    fn extra_headers_come_through_exactly() {
        let mut e = email();
        let long = format!(
            "<https://api.example.com/unsubscribe?token={}>",
            "t".repeat(300)
        );
        e.headers[0].1 = long.clone();
        let raw = raw(&e);
        let lines: Vec<&str> = head(&raw).split("\r\n").collect();
        assert!(
            lines.contains(&format!("List-Unsubscribe: {long}").as_str()),
            "{raw}"
        );
        assert!(lines.contains(&"List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    }

    #[test]
    fn a_display_name_in_the_sender_is_kept() {
        let mut e = email();
        e.from = "Nudge <nudge@example.com>".into();
        let from = header(&raw(&e), "From").unwrap();
        assert_eq!(from, "\"Nudge\" <nudge@example.com>");
        assert_eq!(
            header(&raw(&email()), "To").as_deref(),
            Some("<a@example.jp>")
        );
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        let mut e = email();
        e.to = "a@example.jp\r\nBcc: evil@example.com".into();
        e.subject = "hi\r\nBcc: evil@example.com".into();
        e.headers[0].1 = "<https://x/u>\r\nBcc: evil@example.com".into();
        e.message_id = "x@y>\r\nBcc: evil@example.com".into();
        e.headers
            .push(("X-Evil\r\nBcc".into(), "evil@example.com".into()));
        let raw = raw(&e);
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(!raw.contains("\nBcc:"), "{raw}");
    }
}
