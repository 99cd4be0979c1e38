//! Receiving webhooks: the path of one delivery to `POST /hooks/{name}`.
//!
//! 1. Find the `webhook` connection whose `settings.name` is `name`
//!    (enabled; names are unique among hooks, checked when settings change).
//! 2. Read the body up to the hook's `max_body_bytes`; a larger one is
//!    refused (413) and recorded without its body.
//! 3. Read the hook's secret from the vault and let the connector judge the
//!    delivery ([`Connector::verify_inbound`]: shared secret, HMAC,
//!    Standard Webhooks signature and timestamp). A refusal is recorded
//!    and answered 401 naming the check.
//! 4. Record it as accepted. The delivery id (the sender's, or a fresh one)
//!    is unique per hook among accepted deliveries, so a replayed id is
//!    refused (401, check `replay`) and recorded.
//! 5. Publish `webhook.received` on the event bus, where rules see it. If
//!    that fails the record is removed again, so the sender's retry is not
//!    taken for a replay.
//!
//! Headers are recorded and published without the ones that carry
//! credentials: `Authorization`, `Cookie`, `Proxy-Authorization`, and any
//! whose value contains one of the hook's secrets (a shared-secret header).
//! The history is kept per hook for `keep_days` and at most `keep_max`
//! deliveries, pruned by the engine's retention loop.

use futures::{Stream, StreamExt};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use switchboard_core::time::now_ms;
use switchboard_core::{Connection, InboundRequest, NewEvent, Secrets, new_id};
use switchboard_store::{Delivery, DeliveryFilter, Verdict};

use crate::engine::{Engine, EngineError, FieldError};

/// The connector whose connections are hooks.
pub const WEBHOOK_CONNECTOR: &str = "webhook";
/// The event an accepted delivery becomes.
pub const WEBHOOK_RECEIVED: &str = "webhook.received";
// Defaults of the webhook connector's settings (see its schema).
const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
const DEFAULT_KEEP_DAYS: u64 = 7;
const DEFAULT_KEEP_MAX: u64 = 1000;
/// Headers never recorded, whatever the hook.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("there is no enabled hook named `{0}`")]
    NotFound(String),
    #[error("the body is larger than this hook accepts ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the body could not be read: {0}")]
    BadBody(String),
    /// A check failed: `check` is a stable word (`signature`, `timestamp`,
    /// `replay`, `header`, `secret`), `field` the header at fault.
    #[error("{check}: {message}")]
    Rejected {
        check: String,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<switchboard_store::StoreError> for WebhookError {
    fn from(e: switchboard_store::StoreError) -> Self {
        WebhookError::Engine(e.into())
    }
}

/// An accepted delivery.
#[derive(Debug, Clone)]
pub struct WebhookReceipt {
    /// The record in the hook's history.
    pub id: String,
    pub delivery_id: String,
    /// The `webhook.received` event.
    pub event_id: i64,
}

fn setting_u64(settings: &Value, name: &str, default: u64) -> u64 {
    settings[name].as_u64().unwrap_or(default)
}

/// Header names in lower case to values (repeats joined with `, `), without
/// those carrying credentials or any of `secrets`.
fn recorded_headers(headers: &[(String, String)], secrets: &Secrets) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let carries_secret = CREDENTIAL_HEADERS.contains(&name.as_str())
            || secrets.values().any(|s| {
                let s = s.expose_secret();
                !s.is_empty() && value.contains(s)
            });
        if carries_secret {
            continue;
        }
        match map.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                map.insert(name, Value::String(value.clone()));
            }
        }
    }
    Value::Object(map)
}

/// The body as the event carries it: JSON when it parses, else text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

impl Engine {
    /// The hook named `name` (enabled or not).
    async fn hook_named(&self, name: &str) -> Result<Option<Connection>, EngineError> {
        Ok(self
            .store()
            .list_connections()
            .await?
            .into_iter()
            .find(|c| c.connector == WEBHOOK_CONNECTOR && c.settings["name"] == name))
    }

    /// Receive one delivery for the hook `name`: see the module doc.
    pub async fn receive_webhook<S, B, E>(
        &self,
        name: &str,
        headers: Vec<(String, String)>,
        body: &mut S,
    ) -> Result<WebhookReceipt, WebhookError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let received_at = now_ms();
        let hook = match self.hook_named(name).await? {
            Some(hook) if hook.enabled => hook,
            _ => return Err(WebhookError::NotFound(name.to_owned())),
        };
        let connector = self
            .registry()
            .connector(WEBHOOK_CONNECTOR)
            .cloned()
            .ok_or_else(|| WebhookError::NotFound(name.to_owned()))?;
        let limit = setting_u64(&hook.settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES);
        let secrets = self
            .vault
            .secrets(&hook.id)
            .await
            .map_err(EngineError::from)?;
        let recorded = recorded_headers(&headers, &secrets);
        let record = |verdict: Verdict, delivery_id: Option<String>| Delivery {
            id: new_id(),
            connection_id: hook.id.clone(),
            hook: name.to_owned(),
            delivery_id,
            received_at,
            verdict,
            failed_check: None,
            reason: None,
            headers: recorded.clone(),
            body: Some(Vec::new()),
            body_size: 0,
            event_id: None,
        };

        let mut bytes = Vec::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| WebhookError::BadBody(e.to_string()))?;
            let chunk = chunk.as_ref();
            size += chunk.len() as u64;
            if size > limit {
                let message =
                    format!("the body is larger than this hook's max_body_bytes ({limit})");
                let mut refused = record(Verdict::Rejected, None);
                refused.failed_check = Some("body_size".into());
                refused.reason = Some(message);
                refused.body_size = size as i64;
                self.store().insert_delivery(&refused).await?;
                tracing::info!(hook = %name, limit, "webhook refused: body too large");
                return Err(WebhookError::TooLarge { limit });
            }
            bytes.extend_from_slice(chunk);
        }

        let request = InboundRequest {
            headers: &headers,
            body: &bytes,
            received_at,
        };
        let verdict = connector.verify_inbound(&hook.settings, &secrets, &request);
        let mut delivery = record(Verdict::Accepted, verdict.delivery_id.clone());
        delivery.body = Some(bytes.clone());
        delivery.body_size = bytes.len() as i64;

        if let Some(rejection) = verdict.rejection {
            delivery.verdict = Verdict::Rejected;
            delivery.failed_check = Some(rejection.check.clone());
            delivery.reason = Some(rejection.message.clone());
            self.store().insert_delivery(&delivery).await?;
            tracing::info!(hook = %name, check = %rejection.check, "webhook refused");
            return Err(WebhookError::Rejected {
                check: rejection.check,
                field: rejection.field,
                message: rejection.message,
            });
        }

        let delivery_id = delivery.delivery_id.clone().unwrap_or_else(new_id);
        delivery.delivery_id = Some(delivery_id.clone());
        if !self.store().insert_delivery(&delivery).await? {
            let field = headers
                .iter()
                .find(|(_, v)| v.trim() == delivery_id)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| "delivery_id".into());
            let message = format!("delivery `{delivery_id}` was already accepted: a replay");
            delivery.id = new_id();
            delivery.verdict = Verdict::Rejected;
            delivery.failed_check = Some("replay".into());
            delivery.reason = Some(message.clone());
            self.store().insert_delivery(&delivery).await?;
            tracing::info!(hook = %name, delivery = %delivery_id, "webhook refused: replayed id");
            return Err(WebhookError::Rejected {
                check: "replay".into(),
                field,
                message,
            });
        }

        let payload = json!({
            "hook": name,
            "delivery_id": delivery_id,
            "headers": recorded,
            "body": body_value(&bytes),
            "received_at": received_at,
        });
        let event = match self
            .bus
            .publish(NewEvent::new(
                WEBHOOK_RECEIVED,
                Some(hook.id.clone()),
                payload,
            ))
            .await
        {
            Ok(event) => event,
            Err(error) => {
                if let Err(e) = self.store().delete_delivery(&delivery.id).await {
                    tracing::error!(error = %e, "could not withdraw an unpublished webhook delivery");
                }
                return Err(error.into());
            }
        };
        if let Err(error) = self
            .store()
            .set_delivery_event(&delivery.id, event.id)
            .await
        {
            tracing::warn!(%error, "could not link a webhook delivery to its event");
        }
        Ok(WebhookReceipt {
            id: delivery.id,
            delivery_id,
            event_id: event.id,
        })
    }

    async fn hook_connection(&self, connection_id: &str) -> Result<Connection, EngineError> {
        match self.store().get_connection(connection_id).await? {
            Some(c) if c.connector == WEBHOOK_CONNECTOR => Ok(c),
            _ => Err(EngineError::NotFound {
                what: "webhook connection",
                id: connection_id.to_owned(),
            }),
        }
    }

    /// A hook's deliveries, newest first (without bodies).
    pub async fn list_webhook_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, EngineError> {
        self.hook_connection(&filter.connection_id).await?;
        Ok(self.store().list_deliveries(filter).await?)
    }

    /// One delivery of a hook, with its body.
    pub async fn get_webhook_delivery(
        &self,
        connection_id: &str,
        id: &str,
    ) -> Result<Delivery, EngineError> {
        self.hook_connection(connection_id).await?;
        self.store()
            .get_delivery(connection_id, id)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "delivery",
                id: id.to_owned(),
            })
    }

    /// Retention of every hook's history (`keep_days`, `keep_max`).
    pub(crate) async fn prune_webhook_deliveries(&self) {
        let connections = match self.store().list_connections().await {
            Ok(connections) => connections,
            Err(error) => {
                tracing::warn!(%error, "could not list hooks for retention");
                return;
            }
        };
        for hook in connections
            .iter()
            .filter(|c| c.connector == WEBHOOK_CONNECTOR)
        {
            let days = setting_u64(&hook.settings, "keep_days", DEFAULT_KEEP_DAYS);
            let keep = setting_u64(&hook.settings, "keep_max", DEFAULT_KEEP_MAX);
            let older_than = now_ms() - (days * 86_400_000) as i64;
            match self
                .store()
                .prune_deliveries(&hook.id, older_than, keep as i64)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(hook = %hook.id, deliveries = n, "pruned webhook history"),
                Err(error) => {
                    tracing::warn!(%error, hook = %hook.id, "could not prune webhook history")
                }
            }
        }
    }

    /// A hook's name must not be taken by another hook.
    pub(crate) async fn check_hook_name(
        &self,
        settings: &Value,
        connection_id: Option<&str>,
    ) -> Result<Vec<FieldError>, EngineError> {
        let Some(name) = settings["name"].as_str() else {
            return Ok(Vec::new());
        };
        Ok(match self.hook_named(name).await? {
            Some(other) if Some(other.id.as_str()) != connection_id => vec![FieldError::new(
                "settings.name",
                format!(
                    "the hook name `{name}` is taken by connection `{}` ({}); choose another",
                    other.id, other.label
                ),
            )],
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn credentials_are_not_recorded() {
        let headers: Vec<(String, String)> = [
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer abc"),
            ("X-Webhook-Secret", "hunter2-hunter2"),
            ("X-Signature", "sha256=beef"),
            ("X-Many", "a"),
            ("x-many", "b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let secrets: Secrets = [(
            "secret".to_owned(),
            SecretString::from("hunter2-hunter2".to_owned()),
        )]
        .into();
        assert_eq!(
            recorded_headers(&headers, &secrets),
            json!({"content-type": "application/json", "x-signature": "sha256=beef", "x-many": "a, b"})
        );
    }

    #[test]
    fn bodies_are_json_when_they_parse() {
        assert_eq!(body_value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(body_value(b"a=1&b=2"), json!("a=1&b=2"));
        assert_eq!(body_value(b""), json!(""));
    }
}
