//! Webhook authentication: how a hook knows a delivery comes from who it
//! says. Pure functions over the request's headers and body; every
//! comparison of secret-derived bytes is constant-time (`Mac::verify_slice`).
//!
//! * **Shared secret**: a header (default `X-Webhook-Secret`) carries the
//!   secret itself. Compared by MAC-ing both values under a fixed message,
//!   so neither the content nor the length of the secret leaks by timing.
//! * **HMAC-SHA256** (GitHub style): `X-Hub-Signature-256: sha256=<hex>`,
//!   the HMAC of the raw body under the secret. GitHub signs no timestamp;
//!   replays are caught by the delivery id (`X-GitHub-Delivery`), which the
//!   signature does not cover.
//! * **Standard Webhooks** (standardwebhooks.com): `webhook-id`,
//!   `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64>`,
//!   several separated by spaces during a key rotation), the HMAC of
//!   `{id}.{timestamp}.{body}` under the base64 key of a `whsec_` secret. The
//!   timestamp must be within the tolerance either way; the id, being signed,
//!   makes replay protection exact.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// How a hook authenticates its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone who knows the URL may deliver.
    None,
    SharedSecret,
    HmacSha256,
    StandardWebhooks,
}

/// The header a mode reads when the settings name none.
pub fn default_header(mode: AuthMode) -> Option<&'static str> {
    match mode {
        AuthMode::SharedSecret => Some("X-Webhook-Secret"),
        AuthMode::HmacSha256 => Some("X-Hub-Signature-256"),
        AuthMode::None | AuthMode::StandardWebhooks => None,
    }
}

/// Which check refused a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The hook has no usable secret.
    Secret,
    /// A header the mode needs is missing or malformed.
    Header,
    Signature,
    Timestamp,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Secret => "secret",
            Check::Header => "header",
            Check::Signature => "signature",
            Check::Timestamp => "timestamp",
        }
    }
}

/// A refused delivery: the check, the header at fault, and a message that
/// helps the sender without revealing anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub check: Check,
    pub field: String,
    pub message: String,
}

impl Refusal {
    fn new(check: Check, field: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            check,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// Compare a presented shared secret with the expected one, in constant time.
pub fn verify_shared_secret(
    expected: &[u8],
    header: &str,
    presented: Option<&str>,
) -> Result<(), Refusal> {
    let presented = presented.ok_or_else(|| {
        Refusal::new(
            Check::Header,
            header,
            format!("send the hook's secret in the `{header}` header"),
        )
    })?;
    const MESSAGE: &[u8] = b"switchboard shared secret";
    let mut expected_mac = mac(expected);
    expected_mac.update(MESSAGE);
    let expected_tag = expected_mac.finalize().into_bytes();
    let mut presented_mac = mac(presented.trim().as_bytes());
    presented_mac.update(MESSAGE);
    presented_mac
        .verify_slice(&expected_tag)
        .map_err(|_| Refusal::new(Check::Signature, header, "the shared secret does not match"))
}

/// The GitHub-style signature of `body`: `sha256=<hex HMAC-SHA256>`.
pub fn sign_hmac_sha256(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Check a GitHub-style signature header (`sha256=<hex>`; the bare hex is
/// accepted too) against the body.
pub fn verify_hmac_sha256(
    secret: &[u8],
    header: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let signature = signature.ok_or_else(|| {
        Refusal::new(
            Check::Header,
            header,
            format!("send `{header}: sha256=<hex HMAC-SHA256 of the body>`"),
        )
    })?;
    let signature = signature.trim();
    let hex_part = signature.strip_prefix("sha256=").unwrap_or(signature);
    let bytes = hex::decode(hex_part).map_err(|_| {
        Refusal::new(
            Check::Header,
            header,
            "the signature is not `sha256=` followed by 64 hex digits",
        )
    })?;
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&bytes).map_err(|_| {
        Refusal::new(
            Check::Signature,
            header,
            "the signature does not match the body (HMAC-SHA256 of the raw body under the hook's secret)",
        )
    })
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_` (the
/// prefix is optional, as in the reference libraries).
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the secret is not `whsec_` followed by base64".to_owned())?;
    if key.is_empty() {
        return Err("the secret's key is empty".into());
    }
    Ok(key)
}

/// The Standard Webhooks signature: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
pub fn sign_standard_webhooks(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(key);
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verify a Standard Webhooks delivery at `now` (Unix seconds): headers
/// present, timestamp within `tolerance_secs` either way, and one `v1`
/// signature matching.
pub fn verify_standard_webhooks(
    key: &[u8],
    headers: StandardHeaders<'_>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Refusal> {
    let missing = |name: &str| {
        Refusal::new(
            Check::Header,
            name,
            format!("a Standard Webhooks delivery carries `{name}`"),
        )
    };
    let id = headers.id.ok_or_else(|| missing("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or_else(|| missing("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .ok_or_else(|| missing("webhook-signature"))?;
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| {
        Refusal::new(
            Check::Header,
            "webhook-timestamp",
            "the timestamp is not a number of seconds since 1970",
        )
    })?;
    // Saturating: the header may hold any i64, and `now - i64::MIN`
    // overflows.
    if timestamp < now.saturating_sub(tolerance_secs) {
        return Err(Refusal::new(
            Check::Timestamp,
            "webhook-timestamp",
            format!(
                "the delivery is {}s old; this hook accepts at most {tolerance_secs}s",
                now.saturating_sub(timestamp)
            ),
        ));
    }
    if timestamp > now.saturating_add(tolerance_secs) {
        return Err(Refusal::new(
            Check::Timestamp,
            "webhook-timestamp",
            format!(
                "the delivery is dated {}s ahead; this hook accepts at most {tolerance_secs}s (check the sender's clock)",
                timestamp.saturating_sub(now)
            ),
        ));
    }
    let mut m = mac(key);
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    let matches = signatures.split_whitespace().any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        match STANDARD.decode(encoded) {
            Ok(bytes) => m.clone().verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    });
    if matches {
        Ok(())
    } else {
        Err(Refusal::new(
            Check::Signature,
            "webhook-signature",
            "no `v1` signature matches (HMAC-SHA256 of `id.timestamp.body` under the hook's secret)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GITHUB_SECRET: &[u8] = b"It's a Secret to Everybody";

    #[test]
    fn github_example_signature() {
        // The example in GitHub's "Validating webhook deliveries".
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_hmac_sha256(GITHUB_SECRET, b"Hello, World!"), expected);
        let header = "X-Hub-Signature-256";
        assert_eq!(
            verify_hmac_sha256(GITHUB_SECRET, header, Some(expected), b"Hello, World!"),
            Ok(())
        );
        let refusal = verify_hmac_sha256(GITHUB_SECRET, header, Some(expected), b"Hello, World?")
            .unwrap_err();
        assert_eq!(refusal.check, Check::Signature);
        assert_eq!(refusal.field, header);
        assert_eq!(
            verify_hmac_sha256(GITHUB_SECRET, header, None, b"x")
                .unwrap_err()
                .check,
            Check::Header
        );
        assert_eq!(
            verify_hmac_sha256(GITHUB_SECRET, header, Some("sha256=zz"), b"x")
                .unwrap_err()
                .check,
            Check::Header
        );
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks specification.
        let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let signature = sign_standard_webhooks(&key, id, timestamp, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let ts = timestamp.to_string();
        let headers = StandardHeaders {
            id: Some(id),
            timestamp: Some(&ts),
            signature: Some(&format!("v1,bm90IGl0 {signature}")),
        };
        assert_eq!(
            verify_standard_webhooks(&key, headers, body, timestamp + 10, 300),
            Ok(()),
            "one matching signature among several is enough"
        );
        let stale =
            verify_standard_webhooks(&key, headers, body, timestamp + 301, 300).unwrap_err();
        assert_eq!(
            (stale.check, stale.field.as_str()),
            (Check::Timestamp, "webhook-timestamp")
        );
        let early =
            verify_standard_webhooks(&key, headers, body, timestamp - 301, 300).unwrap_err();
        assert_eq!(early.check, Check::Timestamp);
        let tampered =
            verify_standard_webhooks(&key, headers, b"{\"test\": 1}", timestamp, 300).unwrap_err();
        assert_eq!(tampered.check, Check::Signature);
        let other_id = StandardHeaders {
            id: Some("msg_other"),
            ..headers
        };
        assert_eq!(
            verify_standard_webhooks(&key, other_id, body, timestamp, 300)
                .unwrap_err()
                .check,
            Check::Signature,
            "the id is signed"
        );
        for (without, name) in [
            (
                StandardHeaders {
                    id: None,
                    ..headers
                },
                "webhook-id",
            ),
            (
                StandardHeaders {
                    timestamp: None,
                    ..headers
                },
                "webhook-timestamp",
            ),
            (
                StandardHeaders {
                    signature: None,
                    ..headers
                },
                "webhook-signature",
            ),
        ] {
            let refusal =
                verify_standard_webhooks(&key, without, body, timestamp, 300).unwrap_err();
            assert_eq!(
                (refusal.check, refusal.field.as_str()),
                (Check::Header, name)
            );
        }
    }

    /// Found by the `webhook_signature` fuzz target: a timestamp at either
    /// end of i64 overflowed the age arithmetic (a panic in debug builds, a
    /// wrapped age in release ones). It is a stale or future delivery.
    #[test]
    fn extreme_timestamps_are_refused_not_overflowed() {
        let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let now = 1_767_225_600;
        for (timestamp, tolerance) in [
            (i64::MIN.to_string(), 300),
            (i64::MAX.to_string(), 300),
            (i64::MIN.to_string(), i64::MAX),
            (" -9223372036854775808 ".to_owned(), 86_400),
        ] {
            let headers = StandardHeaders {
                id: Some("msg"),
                timestamp: Some(&timestamp),
                signature: Some("v1,AAAA"),
            };
            let refusal =
                verify_standard_webhooks(&key, headers, b"{}", now, tolerance).unwrap_err();
            assert_eq!(
                (refusal.check, refusal.field.as_str()),
                (Check::Timestamp, "webhook-timestamp"),
                "{timestamp} with tolerance {tolerance}"
            );
        }
    }

    #[test]
    fn standard_webhooks_keys() {
        assert_eq!(standard_webhooks_key("whsec_AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(standard_webhooks_key("AQID").unwrap(), vec![1, 2, 3]);
        assert!(standard_webhooks_key("whsec_not base64!").is_err());
        assert!(standard_webhooks_key("whsec_").is_err());
    }

    #[test]
    fn shared_secrets() {
        let header = "X-Webhook-Secret";
        assert_eq!(
            verify_shared_secret(b"s3cret", header, Some("s3cret")),
            Ok(())
        );
        assert_eq!(
            verify_shared_secret(b"s3cret", header, Some(" s3cret ")),
            Ok(())
        );
        for wrong in ["s3cre", "s3crett", "", "S3CRET"] {
            assert_eq!(
                verify_shared_secret(b"s3cret", header, Some(wrong))
                    .unwrap_err()
                    .check,
                Check::Signature,
                "{wrong:?}"
            );
        }
        assert_eq!(
            verify_shared_secret(b"s3cret", header, None)
                .unwrap_err()
                .check,
            Check::Header
        );
    }

    proptest! {
        #[test]
        fn standard_webhooks_sign_then_verify(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            id in "[a-zA-Z0-9_]{1,40}",
            timestamp in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<usize>(),
        ) {
            let signature = sign_standard_webhooks(&key, &id, timestamp, &body);
            let ts = timestamp.to_string();
            let headers = StandardHeaders { id: Some(&id), timestamp: Some(&ts), signature: Some(&signature) };
            prop_assert_eq!(verify_standard_webhooks(&key, headers, &body, timestamp, 300), Ok(()));
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip % changed.len();
                changed[i] ^= 0x01;
                prop_assert_eq!(
                    verify_standard_webhooks(&key, headers, &changed, timestamp, 300).unwrap_err().check,
                    Check::Signature
                );
            }
        }

        #[test]
        fn hmac_sign_then_verify(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            other in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let signature = sign_hmac_sha256(&secret, &body);
            prop_assert_eq!(verify_hmac_sha256(&secret, "h", Some(&signature), &body), Ok(()));
            if other != secret {
                prop_assert_eq!(
                    verify_hmac_sha256(&other, "h", Some(&signature), &body).unwrap_err().check,
                    Check::Signature
                );
            }
        }
    }
}
