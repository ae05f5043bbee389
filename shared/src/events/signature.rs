//! Request signatures: `X-Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<raw body>")>`. The timestamp is inside the MAC so a captured request cannot be replayed
//! outside the skew window. Several `v1=` parts are allowed so a secret can be rotated by
//! signing with both the old and the new one for a while; the server, for its part, accepts
//! the current and the previous secret ([`verify_any`]), so a rotation never refuses a sender
//! that still signs with the old one.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-nudge-signature";
/// Largest accepted difference between the signing time and "now", either direction.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a signature was refused (HTTP 401). Messages never contain the secret or the expected MAC.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Nudge-Signature header; sign the request (the nudge CLI does it for you)")]
    Missing,
    #[error("malformed X-Nudge-Signature header: {0}; expected t=<unix seconds>,v1=<hex>")]
    Malformed(String),
    #[error(
        "signature timestamp is {skew_secs} seconds away from the server clock; the limit is \
         {MAX_SKEW_SECS} seconds (check the sender's clock, or the request is a replay)"
    )]
    Stale { skew_secs: i64 },
    #[error("signature does not match: wrong secret, or the body changed after signing")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: &str, body: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed at `unix_secs`.
pub fn sign(secret: &[u8], unix_secs: i64, body: &[u8]) -> String {
    let t = unix_secs.to_string();
    let tag = mac(secret, &t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Check a request's signature header against its raw body. Unknown `k=v` parts are ignored
/// (room for future schemes); any one matching `v1` is enough.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    verify_any(&[secret], header, body, now_unix)
}

/// [`verify`] against several secrets (the current and the previous one): any one `v1`
/// matching under any one secret is enough. No secret at all matches nothing.
pub fn verify_any(
    secrets: &[&[u8]],
    header: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let mut t: Option<&str> = None;
    let mut candidates: Vec<&str> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" if t.is_some() => {
                return Err(SignatureError::Malformed("more than one t= part".into()));
            }
            "t" => t = Some(v.trim()),
            "v1" => candidates.push(v.trim()),
            _ => {}
        }
    }
    let t_text = t.ok_or_else(|| SignatureError::Malformed("missing t=<unix seconds>".into()))?;
    let ts: i64 = t_text
        .parse()
        .ok()
        .filter(|_| t_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| SignatureError::Malformed("t is not a unix time in seconds".into()))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed(
            "missing v1=<hex signature>".into(),
        ));
    }
    // Cheap check first: stale requests are refused without computing a MAC.
    let skew = now_unix.saturating_sub(ts);
    if skew.unsigned_abs() > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale { skew_secs: skew });
    }
    let expected: Vec<_> = secrets
        .iter()
        .map(|s| mac(s, t_text, body).finalize().into_bytes())
        .collect();
    let mut any_well_formed = false;
    let mut matched = subtle::Choice::from(0u8);
    for c in candidates {
        // Malformed candidates are skipped, not fatal: another v1 may still match.
        let Ok(given) = hex::decode(c) else { continue };
        if given.len() != 32 {
            continue;
        }
        any_well_formed = true;
        // Every secret is compared, matched or not: the time taken says nothing about which.
        for e in &expected {
            matched |= e.as_slice().ct_eq(&given);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else if any_well_formed {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::Malformed(
            "v1 must be 64 hex characters (HMAC-SHA256)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"events":[]}"#;
    const T: i64 = 1_763_600_000;

    #[test]
    fn sign_matches_an_independent_hmac_sha256() {
        // printf '%s' '1763600000.{"events":[]}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(SECRET, T, BODY),
            "t=1763600000,v1=35963d8df567af9386d9119786e4a9f005acb89cc068f769bab3f9a3b7ebdf35"
        );
    }

    #[test]
    fn valid_signature_passes() {
        let h = sign(SECRET, T, BODY);
        assert_eq!(verify(SECRET, Some(&h), BODY, T + 10), Ok(()));
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let h = sign(b"another secret", T, BODY);
        assert_eq!(
            verify(SECRET, Some(&h), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn altered_body_is_a_mismatch() {
        let h = sign(SECRET, T, BODY);
        let altered = br#"{"events":[{}]}"#;
        assert_eq!(
            verify(SECRET, Some(&h), altered, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn altered_timestamp_is_a_mismatch() {
        let h = sign(SECRET, T, BODY).replace("t=1763600000", "t=1763600001");
        assert_eq!(
            verify(SECRET, Some(&h), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_blank_header_is_missing() {
        assert_eq!(verify(SECRET, None, BODY, T), Err(SignatureError::Missing));
        assert_eq!(
            verify(SECRET, Some("  "), BODY, T),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let v1 = "v1=35963d8df567af9386d9119786e4a9f005acb89cc068f769bab3f9a3b7ebdf35";
        let cases = [
            ("garbage", "missing t="),
            (v1, "missing t="),
            ("t=1763600000", "missing v1="),
            (&format!("t=soon,{v1}") as &str, "t is not a unix time"),
            (&format!("t=-5,{v1}"), "t is not a unix time"),
            (&format!("t=1,t=2,{v1}"), "more than one t="),
            ("t=1763600000,v1=zz", "64 hex characters"),
            ("t=1763600000,v1=abcd", "64 hex characters"),
        ];
        for (header, want) in cases {
            match verify(SECRET, Some(header), BODY, T) {
                Err(SignatureError::Malformed(m)) => assert!(m.contains(want), "{header}: {m}"),
                other => panic!("{header}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn stale_in_either_direction_is_refused() {
        let h = sign(SECRET, T, BODY);
        assert_eq!(
            verify(SECRET, Some(&h), BODY, T + 301),
            Err(SignatureError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            verify(SECRET, Some(&h), BODY, T - 301),
            Err(SignatureError::Stale { skew_secs: -301 })
        );
    }

    #[test]
    fn skew_of_exactly_300_seconds_is_accepted() {
        let h = sign(SECRET, T, BODY);
        assert_eq!(verify(SECRET, Some(&h), BODY, T + 300), Ok(()));
        assert_eq!(verify(SECRET, Some(&h), BODY, T - 300), Ok(()));
    }

    #[test]
    fn extra_parts_and_several_v1_are_tolerated() {
        let good = sign(SECRET, T, BODY);
        let good_v1 = good.split(',').nth(1).unwrap_or_default();
        let old = sign(b"old secret", T, BODY);
        let old_v1 = old.split(',').nth(1).unwrap_or_default();
        let header = format!("t={T}, v0=legacy,{old_v1},v1=nothex,,junk, {good_v1},v2=future");
        assert_eq!(verify(SECRET, Some(&header), BODY, T), Ok(()));
        let upper = format!(
            "t={T},v1={}",
            good_v1.trim_start_matches("v1=").to_uppercase()
        );
        assert_eq!(verify(SECRET, Some(&upper), BODY, T), Ok(()));
    }

    #[test]
    fn the_previous_secret_is_accepted_beside_the_current_one() {
        let (current, previous): (&[u8], &[u8]) = (b"new secret", b"old secret");
        let both = [current, previous];
        for secret in both {
            let h = sign(secret, T, BODY);
            assert_eq!(verify_any(&both, Some(&h), BODY, T), Ok(()));
        }
        let neither = sign(b"a third secret", T, BODY);
        assert_eq!(
            verify_any(&both, Some(&neither), BODY, T),
            Err(SignatureError::Mismatch)
        );
        // Before any rotation there is no previous secret: the old one is refused.
        assert_eq!(
            verify_any(&[current], Some(&sign(previous, T, BODY)), BODY, T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_any(&[], Some(&sign(current, T, BODY)), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn error_messages_never_echo_the_secret_or_the_expected_mac() {
        let secret = b"s3cr3t-value";
        let expected_hex = sign(secret, T, BODY);
        let expected_hex = expected_hex.rsplit('=').next().unwrap_or_default();
        let headers = [
            format!("t={T},v1={}", "0".repeat(64)),
            format!("t={},v1={}", T - 1000, "0".repeat(64)),
            "t=x".to_string(),
        ];
        for h in headers {
            let err = verify(secret, Some(&h), BODY, T)
                .err()
                .map(|e| e.to_string());
            let msg = err.unwrap_or_default();
            assert!(!msg.is_empty());
            assert!(!msg.contains("s3cr3t"), "{msg}");
            assert!(!msg.contains(expected_hex), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics_on_arbitrary_headers(header in ".{0,200}", now in any::<i64>()) {
            let _ = verify(SECRET, Some(&header), BODY, now);
        }

        #[test]
        fn verify_never_panics_on_header_like_strings(
            t in prop_oneof![any::<i64>().prop_map(|t| t.to_string()), "[0-9+-]{0,25}"],
            v in "[0-9a-fA-F]{0,70}",
            extra in "[ ,=a-z0-9]{0,20}",
            now in any::<i64>(),
        ) {
            let header = format!("t={t},v1={v}{extra}");
            let _ = verify(SECRET, Some(&header), BODY, now);
        }

        #[test]
        fn signed_bodies_always_verify(body in proptest::collection::vec(any::<u8>(), 0..256), t in 0i64..4_000_000_000) {
            let h = sign(SECRET, t, &body);
            prop_assert_eq!(verify(SECRET, Some(&h), &body, t), Ok(()));
        }
    }
}
