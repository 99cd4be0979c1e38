//! Signed webhooks: a delivery's headers and body through the real check
//! the runtime calls (`WebhookConnector::verify_inbound`), under each auth
//! mode: the shared-secret header, GitHub's `X-Hub-Signature-256`, and the
//! Standard Webhooks `webhook-id` / `webhook-timestamp` /
//! `webhook-signature` triple. No header value may make it panic.
//!
//! Input: byte 0 picks the mode, then newline-separated lines: the secret,
//! then `name: value` headers up to an empty line, then the body.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::json;
use switchboard_connector_system::WebhookConnector;
use switchboard_core::{Connector, InboundRequest, Secrets};

/// 2026-01-01T00:00:00Z, so timestamps in the corpus stay in the window.
const NOW_MS: i64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (auth, tolerance) = match mode % 4 {
        0 => ("shared_secret", None),
        1 => ("hmac_sha256", None),
        2 => ("standard_webhooks", None),
        // The largest tolerance the settings schema allows.
        _ => ("standard_webhooks", Some(86_400)),
    };
    let mut settings = json!({"name": "fuzz", "auth": auth});
    if let Some(tolerance) = tolerance {
        settings["tolerance_secs"] = json!(tolerance);
    }
    let text = String::from_utf8_lossy(rest);
    let (secret, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (head, body) = rest.split_once("\n\n").unwrap_or((rest, ""));
    let headers: Vec<(String, String)> = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.to_owned()))
        .collect();
    let secrets: Secrets = BTreeMap::from([(
        switchboard_connector_system::webhook::SECRET.to_owned(),
        SecretString::from(secret.to_owned()),
    )]);
    let connector = WebhookConnector::new();
    let request = InboundRequest {
        headers: &headers,
        body: body.as_bytes(),
        received_at: NOW_MS,
    };
    let _ = connector.verify_inbound(&settings, &secrets, &request);
});
