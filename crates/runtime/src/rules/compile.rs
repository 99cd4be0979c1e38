//! Validation of a whole rule set: every rule is checked against the
//! connectors this build has (their trigger event types, actions and
//! parameter schemas) and the connections that exist, and every condition
//! and template must compile. One bad rule rejects the set; the errors name
//! the rule, the field and, for a file, the line. Pure: no IO.

use std::collections::BTreeSet;

use minijinja::Environment;
use serde_json::Value;
use switchboard_core::Connection;

use super::model::{RuleDef, RuleError, RuleSource, RulesFormat, locate};
use super::template;
use crate::registry::Registry;

/// Events the daemon itself publishes that rules may react to.
pub const SYSTEM_EVENTS: &[&str] = &[
    "connection.status",
    "connection.authorized",
    "job.queued",
    "job.finished",
];

/// A rule ready to run: connections resolved to ids.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub def: RuleDef,
    pub source: RuleSource,
    /// `on.connection` as an id.
    pub trigger_connection: Option<String>,
    pub actions: Vec<CompiledAction>,
}

#[derive(Debug, Clone)]
pub struct CompiledAction {
    pub action: String,
    /// `None`: every enabled connection of the connector.
    pub connection: Option<String>,
    pub params: Value,
}

/// Event types whose payload marks the connected account's own messages and
/// posts with `is_self`.
pub const SELF_MARKED_EVENTS: &[&str] = &["twitch.chat.message", "x.mention", "x.search.match"];

impl CompiledRule {
    /// Whether the event is the account's own (`is_self`) and the rule does
    /// not ask for those.
    pub fn skips_self(&self, event: &switchboard_core::Event) -> bool {
        !self.def.on.include_self && event.payload["is_self"] == Value::Bool(true)
    }

    /// Whether an event of this type (and connection) starts the rule.
    pub fn triggered_by(&self, kind: &str, connection_id: Option<&str>) -> bool {
        let event = &self.def.on.event;
        let type_ok = match event.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => kind == event,
        };
        type_ok
            && self
                .trigger_connection
                .as_deref()
                .is_none_or(|c| Some(c) == connection_id)
    }
}

fn resolve<'a>(connections: &'a [Connection], reference: &str) -> Option<&'a Connection> {
    connections
        .iter()
        .find(|c| c.id == reference)
        .or_else(|| connections.iter().find(|c| c.label == reference))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
}

/// Every event type this build can publish.
pub fn known_event_types(registry: &Registry) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = SYSTEM_EVENTS.iter().map(|s| (*s).to_owned()).collect();
    for manifest in registry.manifests() {
        for trigger in &manifest.triggers {
            types.insert(trigger.event_type.clone());
        }
    }
    types
}

/// Check and resolve a whole rule set. `text` is the file the `File` rules
/// came from (in order), for line numbers.
pub fn compile(
    rules: Vec<(RuleDef, RuleSource)>,
    registry: &Registry,
    connections: &[Connection],
    env: &Environment<'static>,
    text: Option<(&str, RulesFormat)>,
) -> Result<Vec<CompiledRule>, Vec<RuleError>> {
    let event_types = known_event_types(registry);
    let mut errors = Vec::new();
    let mut seen: Vec<(String, RuleSource)> = Vec::new();
    let mut compiled = Vec::new();
    let mut file_index = 0;
    for (def, source) in rules {
        // Its position among the file's rules, to find it in the text.
        let index = file_index;
        if source == RuleSource::File {
            file_index += 1;
        }
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut problem = |field: &str, message: String| problems.push((field.to_owned(), message));

        if !valid_name(&def.name) {
            problem(
                "name",
                "give a name of 1 to 100 letters, digits, spaces, `-`, `_` or `.`".into(),
            );
        }
        if let Some((_, other)) = seen.iter().find(|(n, _)| *n == def.name) {
            problem(
                "name",
                format!(
                    "another rule is already named `{}` (in the {}); names must be unique",
                    def.name,
                    match other {
                        RuleSource::File => "rules file",
                        RuleSource::Api => "API rules",
                    }
                ),
            );
        }
        seen.push((def.name.clone(), source));

        let event = def.on.event.as_str();
        if event.starts_with("rule.") || event.starts_with("rules.") {
            problem(
                "on.event",
                "rules cannot start on the rules engine's own events (that would loop)".into(),
            );
        } else if let Some(prefix) = event.strip_suffix('*') {
            if !event_types.iter().any(|t| t.starts_with(prefix)) {
                problem(
                    "on.event",
                    format!("no known event type starts with `{prefix}`"),
                );
            }
        } else if !event_types.contains(event) {
            problem(
                "on.event",
                format!(
                    "unknown event type `{event}`; known: {}",
                    event_types.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if def.on.include_self
            && !SELF_MARKED_EVENTS
                .iter()
                .any(|t| match event.strip_suffix('*') {
                    Some(prefix) => t.starts_with(prefix),
                    None => *t == event,
                })
        {
            problem(
                "on.include_self",
                format!(
                    "`{event}` events never come from the account itself; include_self applies to {} (remove it)",
                    SELF_MARKED_EVENTS.join(", ")
                ),
            );
        }
        let trigger_connection = match &def.on.connection {
            Some(reference) => match resolve(connections, reference) {
                Some(c) => Some(c.id.clone()),
                None => {
                    problem(
                        "on.connection",
                        format!("no connection has the id or label `{reference}`"),
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(condition) = &def.condition
            && let Err(e) = template::check_expression(env, condition)
        {
            problem("if", format!("the condition does not compile: {e}"));
        }
        if def.actions.is_empty() {
            problem("do", "give at least one action".into());
        }
        if def.actions.len() > 20 {
            problem("do", "a rule runs at most 20 actions".into());
        }
        let mut actions = Vec::new();
        for (i, action) in def.actions.iter().enumerate() {
            let field = format!("do[{i}]");
            let connector = action.action.split_once('.').map(|(c, _)| c).unwrap_or("");
            let Some(manifest) = registry.manifest(connector) else {
                problem(
                    &format!("{field}.action"),
                    format!(
                        "unknown action `{}`; actions are named `connector.action` and the connectors are {}",
                        action.action,
                        registry.names().join(", ")
                    ),
                );
                continue;
            };
            if manifest.action(&action.action).is_none() {
                problem(
                    &format!("{field}.action"),
                    format!(
                        "unknown action `{}`; `{connector}` has {}",
                        action.action,
                        manifest
                            .actions
                            .iter()
                            .map(|a| a.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            }
            let connection = match &action.connection {
                Some(reference) => match resolve(connections, reference) {
                    Some(c) if c.connector == connector => Some(c.id.clone()),
                    Some(c) => {
                        problem(
                            &format!("{field}.connection"),
                            format!(
                                "`{reference}` is a {} connection; `{}` needs a {connector} one",
                                c.connector, action.action
                            ),
                        );
                        None
                    }
                    None => {
                        problem(
                            &format!("{field}.connection"),
                            format!("no connection has the id or label `{reference}`"),
                        );
                        None
                    }
                },
                None => None,
            };
            if !action.params.is_object() {
                problem(
                    &format!("{field}.params"),
                    "give the parameters as an object".into(),
                );
            } else if template::has_templates(&action.params) {
                for (path, message) in
                    template::check_tree(env, &action.params, &format!("{field}.params"))
                {
                    problem(&path, format!("the template does not compile: {message}"));
                }
            } else if let Err(field_errors) =
                registry.validate_params(connector, &action.action, &action.params)
            {
                for e in field_errors {
                    problem(&format!("{field}.{}", e.field), e.message);
                }
            }
            actions.push(CompiledAction {
                action: action.action.clone(),
                connection,
                params: action.params.clone(),
            });
        }
        if let Some(cooldown) = &def.cooldown {
            if cooldown.secs == 0 || cooldown.secs > 7 * 24 * 3600 {
                problem("cooldown.secs", "give 1 to 604800 seconds".into());
            }
            if let Some(key) = &cooldown.key {
                for (path, message) in
                    template::check_tree(env, &Value::String(key.clone()), "cooldown.key")
                {
                    problem(&path, format!("the template does not compile: {message}"));
                }
            }
            if cooldown.group.as_deref().is_some_and(|g| !valid_name(g)) {
                problem(
                    "cooldown.group",
                    "give a group name like a rule name".into(),
                );
            }
        }
        if def.debounce_ms.is_some_and(|ms| ms == 0 || ms > 3_600_000) {
            problem("debounce_ms", "give 1 to 3600000 milliseconds".into());
        }
        if let Some(queue) = &def.queue
            && !valid_name(&queue.name)
        {
            problem("queue.name", "give a queue name like a rule name".into());
        }
        for (name, value) in &def.set {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                problem(
                    &format!("set.{name}"),
                    "variable names are letters, digits and `_`".into(),
                );
            }
            for (path, message) in
                template::check_tree(env, &Value::String(value.clone()), &format!("set.{name}"))
            {
                problem(&path, format!("the template does not compile: {message}"));
            }
        }
        if problems.is_empty() {
            compiled.push(CompiledRule {
                def,
                source,
                trigger_connection,
                actions,
            });
        } else {
            for (field, message) in problems {
                let position = match (source, text) {
                    (RuleSource::File, Some((text, format))) => locate(text, format, index, &field),
                    _ => None,
                };
                errors.push(RuleError {
                    rule: Some(def.name.clone()),
                    field,
                    message,
                    line: position.map(|(line, _)| line),
                    column: position.map(|(_, column)| column),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(errors)
    }
}
