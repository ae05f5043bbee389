//! Raw MIME for SES v2 `Content::Raw`: the only content type through which custom headers
//! (`List-Unsubscribe`) survive everywhere, including the local moto emulator.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::OutgoingEmail;

/// Builds a multipart/alternative (text + HTML) message, UTF-8, base64 bodies.
pub fn build(email: &OutgoingEmail) -> Vec<u8> {
    let boundary = {
        let mut h = Sha256::new();
        h.update(email.to.as_bytes());
        h.update(email.subject.as_bytes());
        h.update(email.html.as_bytes());
        format!("nudge-{}", &hex::encode(h.finalize())[..24])
    };
    let mut out = String::new();
    header(&mut out, "From", &email.from);
    header(&mut out, "To", &email.to);
    header(&mut out, "Subject", &encode_word(&email.subject));
    header(&mut out, "MIME-Version", "1.0");
    for (k, v) in &email.headers {
        header(&mut out, k, v);
    }
    header(
        &mut out,
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{boundary}\""),
    );
    out.push_str("\r\n");
    for (ctype, body) in [("text/plain", &email.text), ("text/html", &email.html)] {
        out.push_str(&format!("--{boundary}\r\n"));
        header(&mut out, "Content-Type", &format!("{ctype}; charset=UTF-8"));
        header(&mut out, "Content-Transfer-Encoding", "base64");
        out.push_str("\r\n");
        let encoded = STANDARD.encode(body.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

/// Header values never carry CR/LF (header injection); addresses were validated at ingest,
/// this is the second line of defence.
fn header(out: &mut String, name: &str, value: &str) {
    let clean: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    out.push_str(name);
    out.push_str(": ");
    out.push_str(&clean);
    out.push_str("\r\n");
}

/// RFC 2047 encoded-word for non-ASCII header text (Japanese subjects).
pub fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            from: "nudge@example.com".into(),
            to: "a@example.jp".into(),
            subject: "期限まであと3日".into(),
            text: "hello".into(),
            html: "<p>hello</p>".into(),
            headers: vec![(
                "List-Unsubscribe".into(),
                "<https://x/unsubscribe?t=1>".into(),
            )],
            tags: vec![],
        }
    }

    #[test]
    fn japanese_subject_is_encoded_word() {
        let raw = String::from_utf8(build(&email())).unwrap();
        assert!(raw.contains("Subject: =?UTF-8?B?"));
        assert!(raw.contains("List-Unsubscribe: <https://x/unsubscribe?t=1>"));
        assert!(raw.ends_with("--\r\n"));
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        let mut e = email();
        e.to = "a@example.jp\r\nBcc: evil@example.com".into();
        let raw = String::from_utf8(build(&e)).unwrap();
        assert!(!raw.contains("\r\nBcc:"));
    }
}
