//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), the one signer of every
//! request the hub sends to an in-house system (the HTTP eHR target, the approval bridge's
//! callbacks) and the verifier our tests and sandbox receivers check them with.
//!
//! Three headers: `webhook-id` (the message id: a retry of one message carries the same id, so
//! a receiver can deduplicate), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! = `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). The key is given as
//! `whsec_<base64>` (the standard's form) or as plain text used as bytes.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The message id header.
pub const ID_HEADER: &str = "webhook-id";
/// The Unix-seconds timestamp header.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The signature header (`v1,<base64>`, several separated by spaces).
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a timestamp may be from the receiver's clock, either way (the standard's 5 minutes).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A Standard Webhooks signing key. Its `Debug` output hides the key.
#[derive(Clone)]
pub struct WebhookSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSigner(..)")
    }
}

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header is absent (or not text).
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not Unix seconds.
    #[error("`webhook-timestamp` is not Unix seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    #[error(
        "`webhook-timestamp` is {skew_secs} s away from now, more than the {tolerance_secs} s allowed"
    )]
    OutsideTolerance { skew_secs: u64, tolerance_secs: u64 },
    /// No `v1,` signature in `webhook-signature` matches the key, id, timestamp and body.
    #[error("no `v1` signature in `webhook-signature` matches")]
    NoMatch,
}

impl WebhookSigner {
    /// `whsec_<base64>` is the Standard Webhooks form of a key; anything else is used as bytes.
    /// The error says what is wrong with the secret (for a configuration message).
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        match secret.strip_prefix("whsec_") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(|key| WebhookSigner { key })
                .map_err(|e| format!("the part after `whsec_` is not base64 ({e})")),
            None if secret.is_empty() => Err("it is empty".into()),
            None => Ok(WebhookSigner {
                key: secret.as_bytes().to_vec(),
            }),
        }
    }

    /// The three headers of one request: `webhook-id` = `id` (keep it for every retry of the
    /// message), `webhook-timestamp` = `timestamp_secs` (the time of this attempt) and
    /// `webhook-signature`.
    pub fn headers(
        &self,
        id: &str,
        timestamp_secs: u64,
        body: &[u8],
    ) -> [(&'static str, String); 3] {
        [
            (ID_HEADER, id.to_owned()),
            (TIMESTAMP_HEADER, timestamp_secs.to_string()),
            (SIGNATURE_HEADER, self.sign(id, timestamp_secs, body)),
        ]
    }

    /// The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, "{id}.{ts}.{body}")).
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp_secs.to_string(), body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        )
    }

    /// Checks a received request: `headers` are its (name, value) pairs (names compared
    /// without regard to case), `now_secs` the receiver's clock in Unix seconds, `tolerance`
    /// usually [`TOLERANCE`]. One of the space-separated signatures must be a matching `v1`
    /// one (the others may be of other keys or versions); the comparison is constant-time.
    pub fn verify<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: &[u8],
        now_secs: u64,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        let (mut id, mut timestamp, mut signatures) = (None, None, None);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(ID_HEADER) {
                id = Some(value);
            } else if name.eq_ignore_ascii_case(TIMESTAMP_HEADER) {
                timestamp = Some(value);
            } else if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
                signatures = Some(value);
            }
        }
        let id = id.ok_or(VerifyError::MissingHeader(ID_HEADER))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
        let signatures = signatures.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;

        let sent_at: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        let skew_secs = now_secs.abs_diff(sent_at);
        if skew_secs > tolerance.as_secs() {
            return Err(VerifyError::OutsideTolerance {
                skew_secs,
                tolerance_secs: tolerance.as_secs(),
            });
        }

        // The MAC covers the timestamp as sent.
        let expected = self.mac(id, timestamp.trim(), body);
        let mut matched = subtle::Choice::from(0);
        for candidate in signatures.split(' ') {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                continue;
            };
            matched |= expected.as_slice().ct_eq(&given);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (its libraries' `sign function works` test).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn signer(secret: &str) -> WebhookSigner {
        WebhookSigner::from_secret(secret).expect("valid secret")
    }

    fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn signs_the_reference_vector() {
        let s = signer(SECRET);
        assert_eq!(s.sign(ID, TS, BODY), SIGNATURE);
        let headers = s.headers(ID, TS, BODY);
        assert_eq!(
            headers,
            [
                ("webhook-id", ID.to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", SIGNATURE.to_owned()),
            ]
        );
        // The same message id and time give the same headers (a retry is recognisable).
        assert_eq!(s.headers(ID, TS, BODY), headers);
    }

    #[test]
    fn verifies_the_reference_vector_within_the_tolerance() {
        let s = signer(SECRET);
        let headers = [
            ("Webhook-Id", ID),
            ("webhook-timestamp", "1614265330"),
            ("WEBHOOK-SIGNATURE", SIGNATURE),
        ];
        assert_eq!(s.verify(headers, BODY, TS, TOLERANCE), Ok(()));
        assert_eq!(s.verify(headers, BODY, TS + 300, TOLERANCE), Ok(()));
        assert_eq!(s.verify(headers, BODY, TS - 300, TOLERANCE), Ok(()));
    }

    #[test]
    fn plain_text_secrets_are_bytes_and_bad_ones_are_refused() {
        let plain = signer("not-a-whsec-key");
        let headers = plain.headers("msg_1", TS, b"{}");
        assert_eq!(plain.verify(pairs(&headers), b"{}", TS, TOLERANCE), Ok(()));
        assert_ne!(
            plain.sign("msg_1", TS, b"{}"),
            signer(SECRET).sign("msg_1", TS, b"{}")
        );
        assert!(WebhookSigner::from_secret("").is_err());
        let e = WebhookSigner::from_secret("whsec_***").expect_err("not base64");
        assert!(e.contains("not base64"), "{e}");
        assert_eq!(format!("{plain:?}"), "WebhookSigner(..)");
    }

    #[test]
    fn a_wrong_key_is_refused() {
        let headers = signer(SECRET).headers(ID, TS, BODY);
        let other = signer("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(
            other.verify(pairs(&headers), BODY, TS, TOLERANCE),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_tampered_body_id_or_timestamp_is_refused() {
        let s = signer(SECRET);
        let headers = s.headers(ID, TS, BODY);
        assert_eq!(
            s.verify(pairs(&headers), br#"{"test": 2432232315}"#, TS, TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let other_id = [
            ("webhook-id", "msg_other"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            s.verify(other_id, BODY, TS, TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let other_ts = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265331"),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            s.verify(other_ts, BODY, TS, TOLERANCE),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let s = signer(SECRET);
        let headers = s.headers(ID, TS, BODY);
        assert_eq!(
            s.verify(pairs(&headers), BODY, TS + 301, TOLERANCE),
            Err(VerifyError::OutsideTolerance {
                skew_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            s.verify(pairs(&headers), BODY, TS - 301, TOLERANCE),
            Err(VerifyError::OutsideTolerance {
                skew_secs: 301,
                tolerance_secs: 300
            })
        );
        let bad = [
            ("webhook-id", ID),
            ("webhook-timestamp", "yesterday"),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            s.verify(bad, BODY, TS, TOLERANCE),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn one_matching_signature_among_several_suffices() {
        let s = signer(SECRET);
        let rotated = signer("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").sign(ID, TS, BODY);
        let several = format!("v1a,ignored-other-version {rotated} v1,not*base64 {SIGNATURE}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", several.as_str()),
        ];
        assert_eq!(s.verify(headers, BODY, TS, TOLERANCE), Ok(()));
        let first = format!("{SIGNATURE} {rotated}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", first.as_str()),
        ];
        assert_eq!(s.verify(headers, BODY, TS, TOLERANCE), Ok(()));
        let none_match = format!("{rotated} v1a,{}", &SIGNATURE[3..]);
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", none_match.as_str()),
        ];
        assert_eq!(
            s.verify(headers, BODY, TS, TOLERANCE),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let s = signer(SECRET);
        assert_eq!(
            s.verify(
                [("webhook-id", ID), ("webhook-timestamp", "1614265330")],
                BODY,
                TS,
                TOLERANCE
            ),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            s.verify([("webhook-signature", SIGNATURE)], BODY, TS, TOLERANCE),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }
}
