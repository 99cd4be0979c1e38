//! The `webhook` connector: one connection per hook, received at
//! `POST /hooks/{name}` by the daemon (the API and the runtime's
//! `receive_webhook`), which reads the body, keeps the delivery history,
//! refuses replayed delivery ids and publishes `webhook.received`. This
//! connector decides only whether a delivery is authentic
//! ([`Connector::verify_inbound`], with `auth.rs`); its session does
//! nothing in the background and it has no actions.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, AuthKind, Connector, ConnectorError, ConnectorManifest,
    InboundRejection, InboundRequest, InboundVerdict, RuntimeContext, SecretSpec, Secrets, Session,
    TriggerSpec,
};

use crate::auth::{self, AuthMode, Check, Refusal, StandardHeaders};

/// The secret's name in the vault.
pub const SECRET: &str = "secret";
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Settings of a hook (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The URL segment: `POST /hooks/{name}`.
    pub name: String,
    pub auth: AuthMode,
    /// The header carrying the shared secret or the signature.
    pub header: Option<String>,
    pub tolerance_secs: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub keep_days: Option<u64>,
    pub keep_max: Option<u64>,
}

impl WebhookSettings {
    fn header(&self) -> Option<String> {
        self.header
            .clone()
            .or_else(|| auth::default_header(self.auth).map(str::to_owned))
    }
}

fn manifest() -> ConnectorManifest {
    ConnectorManifest {
        name: "webhook".into(),
        display_name: "Webhook".into(),
        description: "Receive signed HTTP deliveries at POST /hooks/{name} (no API token: the hook's own auth). Each delivery becomes a webhook.received event and is kept in the hook's history.".into(),
        auth: AuthKind::Secrets,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "auth"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "The URL segment: deliveries go to POST /hooks/{name}. Unique among hooks."},
                "auth": {"enum": ["none", "shared_secret", "hmac_sha256", "standard_webhooks"], "description": "shared_secret: the secret in a header (`header`, default X-Webhook-Secret). hmac_sha256: GitHub style, `X-Hub-Signature-256: sha256=<hex>` (or `header`). standard_webhooks: webhook-id, webhook-timestamp and webhook-signature with a `whsec_` secret. none: anyone with the URL."},
                "header": {"type": "string", "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$", "description": "The header of shared_secret or hmac_sha256."},
                "tolerance_secs": {"type": "integer", "minimum": 1, "maximum": 86400, "description": "standard_webhooks: how far webhook-timestamp may be from now (default 300)."},
                "max_body_bytes": {"type": "integer", "minimum": 1, "maximum": 16777216, "description": "Larger bodies get 413 (default 1048576)."},
                "keep_days": {"type": "integer", "minimum": 1, "maximum": 3650, "description": "Deliveries are kept this many days (default 7)."},
                "keep_max": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "At most this many deliveries are kept (default 1000)."}
            }
        }),
        secrets: vec![SecretSpec {
            name: SECRET.into(),
            description: "The shared secret, the HMAC key, or the `whsec_...` Standard Webhooks secret.".into(),
            required: false,
        }],
        triggers: vec![TriggerSpec {
            event_type: "webhook.received".into(),
            description: "An authentic delivery arrived at POST /hooks/{name}.".into(),
            payload_schema: json!({
                "type": "object",
                "properties": {
                    "hook": {"type": "string"},
                    "delivery_id": {"type": "string", "description": "The sender's id (webhook-id, X-GitHub-Delivery) or one given on receipt."},
                    "headers": {"type": "object", "description": "Header names in lower case; those carrying secrets removed."},
                    "body": {"description": "JSON when the body parses as JSON, else text."},
                    "received_at": {"type": "integer", "description": "Epoch milliseconds."}
                }
            }),
        }],
        actions: vec![],
    }
}

/// The checks of [`Connector::check_settings`] for `webhook`.
pub fn check_webhook_settings(settings: &WebhookSettings) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if settings.header.is_some()
        && matches!(settings.auth, AuthMode::None | AuthMode::StandardWebhooks)
    {
        errors.push((
            "header".into(),
            "only shared_secret and hmac_sha256 read a header of your choice".into(),
        ));
    }
    if settings.tolerance_secs.is_some() && settings.auth != AuthMode::StandardWebhooks {
        errors.push((
            "tolerance_secs".into(),
            "only standard_webhooks deliveries carry a timestamp".into(),
        ));
    }
    errors
}

pub struct WebhookConnector {
    manifest: ConnectorManifest,
}

impl Default for WebhookConnector {
    fn default() -> Self {
        WebhookConnector {
            manifest: manifest(),
        }
    }
}

impl WebhookConnector {
    pub fn new() -> WebhookConnector {
        WebhookConnector::default()
    }
}

fn parse_settings(value: &Value) -> Result<WebhookSettings, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("webhook settings: {e}"))
}

/// The sender's id of a delivery: Standard Webhooks' `webhook-id`, else
/// GitHub's `X-GitHub-Delivery`.
pub fn delivery_id(request: &InboundRequest<'_>) -> Option<String> {
    request
        .header("webhook-id")
        .or_else(|| request.header("x-github-delivery"))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

/// Verify one delivery under a hook's settings and secret.
pub fn verify(
    settings: &WebhookSettings,
    secret: Option<&str>,
    request: &InboundRequest<'_>,
) -> Result<(), Refusal> {
    if settings.auth == AuthMode::None {
        return Ok(());
    }
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| Refusal {
        check: Check::Secret,
        field: SECRET.into(),
        message: "this hook has no secret set; its owner must set one (PUT /api/v1/connections/{id}/secrets)".into(),
    })?;
    let header = settings.header().unwrap_or_default();
    match settings.auth {
        AuthMode::None => Ok(()),
        AuthMode::SharedSecret => {
            auth::verify_shared_secret(secret.as_bytes(), &header, request.header(&header))
        }
        AuthMode::HmacSha256 => auth::verify_hmac_sha256(
            secret.as_bytes(),
            &header,
            request.header(&header),
            request.body,
        ),
        AuthMode::StandardWebhooks => {
            let key = auth::standard_webhooks_key(secret).map_err(|message| Refusal {
                check: Check::Secret,
                field: SECRET.into(),
                message: format!("this hook's secret is unusable: {message}"),
            })?;
            auth::verify_standard_webhooks(
                &key,
                StandardHeaders {
                    id: request.header("webhook-id"),
                    timestamp: request.header("webhook-timestamp"),
                    signature: request.header("webhook-signature"),
                },
                request.body,
                request.received_at.div_euclid(1000),
                settings.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS) as i64,
            )
        }
    }
}

#[async_trait]
impl Connector for WebhookConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings = parse_settings(&ctx.settings).map_err(ConnectorError::Misconfigured)?;
        if settings.auth != AuthMode::None {
            let secret = ctx.secrets.get(SECRET).ok_or_else(|| {
                ConnectorError::Misconfigured(format!(
                    "set the `{SECRET}` secret: auth `{}` needs it",
                    serde_json::to_value(settings.auth)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ))
            })?;
            if settings.auth == AuthMode::StandardWebhooks {
                auth::standard_webhooks_key(secret.expose_secret()).map_err(|m| {
                    ConnectorError::Misconfigured(format!("the `{SECRET}` secret: {m}"))
                })?;
            }
        }
        Ok(Arc::new(WebhookSession { settings }))
    }

    fn check_settings(&self, settings: &Value) -> Result<(), Vec<(String, String)>> {
        let settings = parse_settings(settings).map_err(|e| vec![(String::new(), e)])?;
        let errors = check_webhook_settings(&settings);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn verify_inbound(
        &self,
        settings: &Value,
        secrets: &Secrets,
        request: &InboundRequest<'_>,
    ) -> InboundVerdict {
        let delivery_id = delivery_id(request);
        let rejection = match parse_settings(settings) {
            Err(message) => Some(InboundRejection {
                check: "settings".into(),
                field: "settings".into(),
                message,
            }),
            Ok(settings) => verify(
                &settings,
                secrets.get(SECRET).map(|s| s.expose_secret()),
                request,
            )
            .err()
            .map(|refusal| InboundRejection {
                check: refusal.check.as_str().into(),
                field: refusal.field,
                message: refusal.message,
            }),
        };
        InboundVerdict {
            delivery_id,
            rejection,
        }
    }
}

struct WebhookSession {
    settings: WebhookSettings,
}

#[async_trait]
impl Session for WebhookSession {
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        Err(ActionError::InvalidParams {
            field: "action".into(),
            message: format!("webhook has no action `{}`", call.action),
        })
    }

    /// A hook has no service to ask: its check is the settings check.
    async fn check(&self) -> Result<Value, ActionError> {
        crate::settings_checked(
            check_webhook_settings(&self.settings),
            serde_json::json!({
                "settings": "valid",
                "receives_at": format!("/hooks/{}", self.settings.name),
                "auth": self.settings.auth,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn request<'a>(headers: &'a [(String, String)], body: &'a [u8], at: i64) -> InboundRequest<'a> {
        InboundRequest {
            headers,
            body,
            received_at: at,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect()
    }

    fn secrets(value: &str) -> Secrets {
        [(SECRET.to_owned(), SecretString::from(value.to_owned()))].into()
    }

    #[test]
    fn verdicts_name_the_check_and_the_header() {
        let connector = WebhookConnector::new();
        let settings = json!({"name": "gh", "auth": "hmac_sha256"});
        let body = br#"{"action":"opened"}"#;
        let signature = auth::sign_hmac_sha256(b"k", body);
        let good = headers(&[
            ("X-Hub-Signature-256", &signature),
            ("X-GitHub-Delivery", "d-1"),
        ]);
        let verdict = connector.verify_inbound(&settings, &secrets("k"), &request(&good, body, 0));
        assert_eq!(verdict.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(verdict.rejection, None);

        let verdict =
            connector.verify_inbound(&settings, &secrets("other"), &request(&good, body, 0));
        let rejection = verdict.rejection.unwrap();
        assert_eq!(
            (rejection.check.as_str(), rejection.field.as_str()),
            ("signature", "X-Hub-Signature-256")
        );
        let verdict =
            connector.verify_inbound(&settings, &Secrets::new(), &request(&good, body, 0));
        assert_eq!(verdict.rejection.unwrap().check, "secret");

        let open = json!({"name": "open", "auth": "none"});
        let verdict = connector.verify_inbound(&open, &Secrets::new(), &request(&[], b"x", 0));
        assert_eq!(
            verdict,
            InboundVerdict {
                delivery_id: None,
                rejection: None
            }
        );
    }

    #[test]
    fn standard_webhooks_use_the_arrival_time() {
        let connector = WebhookConnector::new();
        let settings = json!({"name": "sw", "auth": "standard_webhooks", "tolerance_secs": 60});
        let key = auth::standard_webhooks_key("whsec_c2VjcmV0LWtleQ==").unwrap();
        let body = b"{}";
        let signature = auth::sign_standard_webhooks(&key, "msg_1", 1_000, body);
        let sent = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1000"),
            ("webhook-signature", &signature),
        ]);
        let secret = secrets("whsec_c2VjcmV0LWtleQ==");
        let on_time =
            connector.verify_inbound(&settings, &secret, &request(&sent, body, 1_030_000));
        assert_eq!(on_time.rejection, None);
        assert_eq!(on_time.delivery_id.as_deref(), Some("msg_1"));
        let late = connector.verify_inbound(&settings, &secret, &request(&sent, body, 1_061_000));
        assert_eq!(late.rejection.unwrap().check, "timestamp");
    }

    #[test]
    fn settings_that_cannot_apply_are_refused() {
        let connector = WebhookConnector::new();
        let errors = connector
            .check_settings(&json!({"name": "a", "auth": "standard_webhooks", "header": "X-Sig"}))
            .unwrap_err();
        assert_eq!(errors[0].0, "header");
        let errors = connector
            .check_settings(&json!({"name": "a", "auth": "hmac_sha256", "tolerance_secs": 5}))
            .unwrap_err();
        assert_eq!(errors[0].0, "tolerance_secs");
        assert!(
            connector
                .check_settings(&json!({"name": "a", "auth": "shared_secret", "header": "X-Token"}))
                .is_ok()
        );
    }
}
