//! Signed link tokens (unsubscribe, "I've done this") as anyone can type them into a URL.
//! Checked: verification never panics; nothing but a token the key signed verifies; a token
//! signed for fuzzer-chosen ids verifies back to exactly those ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_shared::delivery::{done_link, unsubscribe};
use nudge_shared::deps::LinkKeys;

fuzz_target!(|data: &[u8]| {
    let keys = LinkKeys::parse(r#"{"current":"k1","k1":"fuzz-link-key-0123456789abcdef-0123456789abcdef-0123456789abcdef"}"#)
        .expect("a valid key set");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = unsubscribe::verify(&keys, text) {
        let again = unsubscribe::sign(&keys, &t.account_id, &t.contact_id, &t.category)
            .expect("signs under the current key");
        assert_eq!(again, text.trim(), "verified a token the key did not sign");
    }
    let _ = done_link::verify(&keys, text);
    // Round trip with ids the fuzzer picks (any text, separators included).
    let mut parts = text.splitn(3, '\u{1f}');
    let (a, c, cat) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let token = unsubscribe::sign(&keys, a, c, cat).expect("signs");
    let t = unsubscribe::verify(&keys, &token);
    if let Ok(t) = t {
        assert_eq!(
            (
                t.account_id.as_str(),
                t.contact_id.as_str(),
                t.category.as_str()
            ),
            (a, c, cat)
        );
    }
});
