//! Checks of a connection's settings beyond their JSON schema, run by
//! `Engine::create_connection` and `Engine::update_connection` before
//! anything is written: the connector's own checks
//! ([`Connector::check_settings`]: a cron expression that must parse, a
//! zone that must exist) and, for hooks, a name no other hook has.
//!
//! [`Connector::check_settings`]: switchboard_core::Connector::check_settings

use serde_json::Value;

use crate::engine::{Engine, EngineError, FieldError};
use crate::webhooks::WEBHOOK_CONNECTOR;

/// A connector's field (relative to the settings) under `settings`.
fn settings_field(field: &str) -> String {
    if field.is_empty() {
        "settings".to_owned()
    } else if field.starts_with('[') {
        format!("settings{field}")
    } else {
        format!("settings.{field}")
    }
}

impl Engine {
    /// Problems with `settings` for `connector` that its schema cannot
    /// catch; `connection_id` is the connection being changed, if any. Call
    /// only with settings that passed the schema.
    pub(crate) async fn check_connector_settings(
        &self,
        connector: &str,
        settings: &Value,
        connection_id: Option<&str>,
    ) -> Result<Vec<FieldError>, EngineError> {
        let mut errors = Vec::new();
        if let Some(connector) = self.registry().connector(connector)
            && let Err(problems) = connector.check_settings(settings)
        {
            errors.extend(
                problems
                    .into_iter()
                    .map(|(field, message)| FieldError::new(settings_field(&field), message)),
            );
        }
        if connector == WEBHOOK_CONNECTOR {
            errors.extend(self.check_hook_name(settings, connection_id).await?);
        }
        Ok(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::settings_field;

    #[test]
    fn fields_are_named_under_settings() {
        assert_eq!(settings_field(""), "settings");
        assert_eq!(
            settings_field("schedules[0].cron"),
            "settings.schedules[0].cron"
        );
        assert_eq!(settings_field("[0]"), "settings[0]");
    }
}
