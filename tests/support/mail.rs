//! Reading back the raw MIME messages moto accepted: headers as written, and the decoded
//! Subject and body parts (whichever transfer encoding `delivery::mime` chose).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

fn head(raw: &str) -> &str {
    &raw[..raw.find("\r\n\r\n").unwrap_or(raw.len())]
}

/// A top-level header's first line, exactly as written (`List-Unsubscribe` must be one line).
pub fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    head(raw)
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// A top-level header's value with its folded continuation lines joined.
pub fn unfolded_header(raw: &str, name: &str) -> Option<String> {
    let mut lines = head(raw).split("\r\n");
    let first = lines.find_map(|l| l.strip_prefix(&format!("{name}: ")))?;
    let mut value = first.to_string();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push_str(l);
    }
    Some(value)
}

/// The decoded Subject: plain text, or RFC 2047 encoded-words (B or Q, UTF-8).
pub fn subject(raw: &str) -> String {
    let value = unfolded_header(raw, "Subject").expect("Subject header");
    if !value.starts_with("=?") {
        return value;
    }
    // Whitespace between encoded-words is folding, not text.
    let mut out = Vec::new();
    for word in value.split_whitespace() {
        let inner = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .unwrap_or_else(|| panic!("not an encoded-word: {word}"));
        let mut parts = inner.splitn(3, '?');
        let (_charset, enc, text) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        match enc {
            "B" | "b" => out.extend(STANDARD.decode(text).expect("base64 encoded-word")),
            "Q" | "q" => out.extend(quoted_printable(&text.replace('_', " "))),
            _ => panic!("unknown encoding in {word}"),
        }
    }
    String::from_utf8(out).expect("UTF-8 subject")
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            let hex = s.get(i + 1..i + 3).expect("=XX");
            out.push(u8::from_str_radix(hex, 16).expect("=XX"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The decoded body of the part of a content type (`text/plain` or `text/html`), with line
/// breaks as `\n`.
pub fn part(raw: &str, ctype: &str) -> String {
    let start = raw
        .find(&format!("Content-Type: {ctype}"))
        .unwrap_or_else(|| panic!("no {ctype} part"));
    let (headers, body) = raw[start..].split_once("\r\n\r\n").expect("part body");
    let body = &body[..body.find("\r\n--").expect("part end")];
    let cte = headers
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Transfer-Encoding: "))
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "base64" => STANDARD
            .decode(body.split("\r\n").collect::<String>())
            .expect("base64 body"),
        "quoted-printable" => quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes)
        .expect("UTF-8 body")
        .replace("\r\n", "\n")
}
