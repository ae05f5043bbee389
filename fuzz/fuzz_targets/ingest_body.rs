//! The ingest request as a sender controls it: the signature header (first line of the input)
//! and the raw body (the rest). Checked: verification and parsing never panic; a verified
//! request is exactly one the secret signed; every event that parses re-parses from its wire
//! form to the same event (what is stored raw can be replayed).
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use nudge_shared::events::{parse_batch, parse_event, sign, verify_any};

const SECRET: &[u8] = b"fuzz-signing-secret-0123456789";
const NOW: i64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let header = std::str::from_utf8(header).ok();
    if verify_any(&[SECRET], header, body, NOW).is_ok() {
        // Only a header this secret made over this body verifies.
        let t = header
            .and_then(|h| h.split(',').find_map(|p| p.trim().strip_prefix("t=")))
            .and_then(|t| t.trim().parse::<i64>().ok())
            .expect("a verified header has a timestamp");
        let expected = sign(SECRET, t, body);
        let v1 = expected
            .split_once(",v1=")
            .map(|(_, v)| v)
            .unwrap_or_default();
        assert!(
            header.is_some_and(|h| h.contains(v1)),
            "verified a forged signature"
        );
    }
    let now = DateTime::<Utc>::from_timestamp(NOW, 0).expect("a valid now");
    if let Ok(events) = parse_batch(body, now) {
        for event in events.into_iter().flatten() {
            let wire = event.to_wire();
            let again = parse_event(&wire, now).expect("an event's wire form parses again");
            assert_eq!(again.to_wire(), wire, "the wire form is stable");
        }
    }
});
