//! What a rule is, as written in a rules file or sent to the API.
//!
//! ```yaml
//! rules:
//!   - name: thank-donors
//!     on: { event: webhook.received, connection: donations }
//!     if: "event.payload.body.amount >= 5"
//!     do:
//!       - action: obs.set_scene
//!         connection: studio
//!         params: { scene: Thanks }
//!       - action: twitch.send_chat
//!         params: { message: "Thank you {{ event.payload.body.name }}!" }
//!     cooldown: { secs: 30, key: "{{ event.payload.body.name }}", group: alerts }
//!     queue: { name: alerts, priority: 1 }
//!     set: { donations: "{{ (vars.donations or 0) + 1 }}" }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn enabled_by_default() -> bool {
    true
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Unique among all rules (file and API).
    pub name: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// What starts it.
    pub on: TriggerDef,
    /// A minijinja expression over `event` and `vars`; the rule runs when
    /// it is true.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The actions, run in order: each one's jobs finish before the next starts.
    #[serde(rename = "do")]
    pub actions: Vec<ActionDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<CooldownDef>,
    /// Wait this long after a matching event; a newer matching event in the
    /// meantime replaces it (only the last one runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_ms: Option<u64>,
    /// Run through a named blocking queue (one run at a time, in order,
    /// higher priority first) instead of in parallel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueDef>,
    /// Variables to set when the rule matches: name -> template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    /// Event type, such as `x.mention` or `webhook.received`.
    pub event: String,
    /// Only events of this connection (id or label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// Action name, such as `x.post`.
    pub action: String,
    /// The connection (id or label); without one, every enabled connection
    /// of the action's connector gets a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Parameters; every string may be a template. A string that is a
    /// single `{{ expression }}` keeps the expression's type.
    #[serde(default = "empty_params")]
    pub params: Value,
}

fn empty_params() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownDef {
    /// After a run starts, matching events are skipped for this long.
    pub secs: u64,
    /// A template: the cooldown is kept per rendered value (per chat user,
    /// for example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Rules with the same group share one cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDef {
    pub name: String,
    #[serde(default)]
    pub priority: i64,
}

/// A rules file: `rules: [...]` in YAML, `[[rules]]` in TOML.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

/// Where a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    File,
    Api,
}

/// The format of a rules text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesFormat {
    Yaml,
    Toml,
}

impl RulesFormat {
    /// By file extension (`.toml`, else YAML).
    pub fn of_path(path: &std::path::Path) -> RulesFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => RulesFormat::Toml,
            _ => RulesFormat::Yaml,
        }
    }
}

/// One problem with a rule set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    /// The rule's name, when the problem is inside one rule.
    pub rule: Option<String>,
    /// Dotted path inside the rule, such as `do[1].params.message`.
    pub field: String,
    pub message: String,
    /// 1-based line in the rules text, when known.
    pub line: Option<usize>,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Parse a rules text. Syntax errors carry the parser's line.
pub fn parse_rules(text: &str, format: RulesFormat) -> Result<Vec<RuleDef>, Vec<RuleError>> {
    let parsed: Result<RulesFile, RuleError> = match format {
        RulesFormat::Yaml => {
            if text.trim().is_empty() {
                Ok(RulesFile::default())
            } else {
                serde_norway::from_str(text).map_err(|e| RuleError {
                    rule: None,
                    field: String::new(),
                    line: e.location().map(|l| l.line()),
                    message: e.to_string(),
                })
            }
        }
        RulesFormat::Toml => toml::from_str(text).map_err(|e| RuleError {
            rule: None,
            field: String::new(),
            line: e.span().map(|span| {
                text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            }),
            message: e.message().to_owned(),
        }),
    };
    parsed.map(|f| f.rules).map_err(|e| vec![e])
}

/// Best-effort line of a rule's field in the text it came from: the line of
/// the rule's `name`, then the first line after it mentioning the field's
/// last key. (serde does not keep positions for semantic errors.)
pub fn locate(text: &str, rule: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let quoted = [format!("\"{rule}\""), format!("'{rule}'")];
    let start = lines.iter().position(|line| {
        line.contains("name")
            && (quoted.iter().any(|q| line.contains(q.as_str()))
                || line.trim_end().ends_with(&format!(" {rule}")))
    })?;
    let key = field
        .rsplit('.')
        .next()
        .unwrap_or(field)
        .split('[')
        .next()
        .unwrap_or_default();
    let key = match key {
        "condition" => "if",
        other => other,
    };
    if key.is_empty() {
        return Some(start + 1);
    }
    let next_rule = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| {
            let t = l.trim_start();
            t.starts_with("- name") || t.starts_with("[[rules]]")
        })
        .map(|(i, _)| i)
        .unwrap_or(lines.len());
    let found = lines[start..next_rule]
        .iter()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:"))
                || t.starts_with(&format!("{key} ="))
                || t.starts_with(&format!("{key}="))
                || t.contains(&format!("{key}:"))
                || t.contains(&format!("{key} ="))
        })
        .map(|i| start + i);
    Some(found.unwrap_or(start) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
rules:
  - name: thanks
    on: { event: webhook.received }
    if: "event.payload.body.amount >= 5"
    do:
      - action: echo.say
        params:
          message: "thanks {{ event.payload.body.name }}"
"#;

    #[test]
    fn yaml_and_toml_read_the_same_rule() {
        let yaml = parse_rules(YAML, RulesFormat::Yaml).unwrap();
        let toml = parse_rules(
            r#"
[[rules]]
name = "thanks"
on = { event = "webhook.received" }
if = "event.payload.body.amount >= 5"
[[rules.do]]
action = "echo.say"
params = { message = "thanks {{ event.payload.body.name }}" }
"#,
            RulesFormat::Toml,
        )
        .unwrap();
        assert_eq!(yaml, toml);
        assert!(yaml[0].enabled);
        assert_eq!(yaml[0].actions[0].action, "echo.say");
    }

    #[test]
    fn syntax_errors_and_unknown_fields_carry_a_line() {
        let errors =
            parse_rules("rules:\n  - name: a\n    onn: {}\n", RulesFormat::Yaml).unwrap_err();
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
        assert!(errors[0].message.contains("onn"), "{errors:?}");
        let errors =
            parse_rules("[[rules]]\nname = \"a\"\nbogus = 1\n", RulesFormat::Toml).unwrap_err();
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
    }

    #[test]
    fn fields_are_located_inside_their_rule() {
        assert_eq!(locate(YAML, "thanks", "do[0].action"), Some(7));
        assert_eq!(locate(YAML, "thanks", "condition"), Some(5));
        assert_eq!(locate(YAML, "thanks", ""), Some(3));
        assert_eq!(locate(YAML, "missing", "on"), None);
    }
}
