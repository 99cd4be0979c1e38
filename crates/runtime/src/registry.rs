//! The connector registry: which connectors exist, with their settings and
//! action-parameter schemas compiled once, so validation is cheap and every
//! entry point (API, CLI, rules, MCP) validates the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use switchboard_core::{Connector, ConnectorManifest};

use crate::engine::FieldError;

struct Entry {
    connector: Arc<dyn Connector>,
    settings: jsonschema::Validator,
    actions: BTreeMap<String, jsonschema::Validator>,
}

#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Add a connector. Fails if its name is taken or a schema does not compile.
    pub fn register(&mut self, connector: Arc<dyn Connector>) -> Result<(), String> {
        let manifest = connector.manifest();
        let name = manifest.name.clone();
        if self.entries.contains_key(&name) {
            return Err(format!("connector `{name}` is registered twice"));
        }
        let settings = jsonschema::validator_for(&manifest.settings_schema)
            .map_err(|e| format!("connector `{name}`: settings schema: {e}"))?;
        let mut actions = BTreeMap::new();
        for action in &manifest.actions {
            if !action.name.starts_with(&format!("{name}.")) {
                return Err(format!(
                    "connector `{name}`: action `{}` must start with `{name}.`",
                    action.name
                ));
            }
            let validator = jsonschema::validator_for(&action.params_schema)
                .map_err(|e| format!("connector `{name}`: action `{}`: {e}", action.name))?;
            actions.insert(action.name.clone(), validator);
        }
        self.entries.insert(
            name,
            Entry {
                connector,
                settings,
                actions,
            },
        );
        Ok(())
    }

    pub fn connector(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.entries.get(name).map(|e| &e.connector)
    }

    pub fn manifest(&self, name: &str) -> Option<&ConnectorManifest> {
        self.entries.get(name).map(|e| e.connector.manifest())
    }

    pub fn manifests(&self) -> impl Iterator<Item = &ConnectorManifest> {
        self.entries.values().map(|e| e.connector.manifest())
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Validate settings against the connector's schema; field names are
    /// prefixed with `prefix` (for example `settings`).
    pub fn validate_settings(
        &self,
        connector: &str,
        settings: &Value,
        prefix: &str,
    ) -> Result<(), Vec<FieldError>> {
        let entry = self.entries.get(connector).ok_or_else(|| {
            vec![FieldError::new(
                "connector",
                format!(
                    "unknown connector `{connector}`; known: {}",
                    self.names().join(", ")
                ),
            )]
        })?;
        check(&entry.settings, settings, prefix)
    }

    /// Validate action parameters against the action's schema.
    pub fn validate_params(
        &self,
        connector: &str,
        action: &str,
        params: &Value,
    ) -> Result<(), Vec<FieldError>> {
        let entry = self.entries.get(connector).ok_or_else(|| {
            vec![FieldError::new(
                "connector",
                format!("unknown connector `{connector}`"),
            )]
        })?;
        let validator = entry.actions.get(action).ok_or_else(|| {
            vec![FieldError::new(
                "action",
                format!(
                    "connector `{connector}` has no action `{action}`; it has: {}",
                    entry.actions.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )]
        })?;
        check(validator, params, "params")
    }
}

fn check(
    validator: &jsonschema::Validator,
    instance: &Value,
    prefix: &str,
) -> Result<(), Vec<FieldError>> {
    let errors: Vec<FieldError> = validator
        .iter_errors(instance)
        .map(|error| {
            let mut field = prefix.to_owned();
            for segment in error
                .instance_path()
                .to_string()
                .split('/')
                .filter(|s| !s.is_empty())
            {
                field.push('.');
                field.push_str(segment);
            }
            if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind() {
                field.push('.');
                field.push_str(property.as_str().unwrap_or_default());
            }
            FieldError::new(field, error.to_string())
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
