//! What a rule is, as written in a rules file or sent to the API.
//!
//! ```yaml
//! rules:
//!   - name: thank-donors
//!     on: { event: webhook.received, connection: donations }
//!     # `include_self: true` would also start on the account's own chat
//!     # messages and posts (`is_self` events), skipped by default.
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
    /// Also start on the connected account's own messages and posts (events
    /// whose payload has `is_self: true`); skipped by default, so a rule
    /// that answers every chat message does not answer itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_self: bool,
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
    /// 1-based column (in characters) in the rules text, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
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
                    column: e.location().map(|l| l.column()),
                    message: e.to_string(),
                })
            }
        }
        RulesFormat::Toml => toml::from_str(text).map_err(|e| {
            let position = e.span().map(|span| line_column(text, span.start));
            RuleError {
                rule: None,
                field: String::new(),
                line: position.map(|(line, _)| line),
                column: position.map(|(_, column)| column),
                message: e.message().to_owned(),
            }
        }),
    };
    parsed.map(|f| f.rules).map_err(|e| vec![e])
}

/// One step of a field path such as `do[1].params.text`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `do[1].params.text` -> `do`, `[1]`, `params`, `text`.
fn steps(field: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            // Compile errors say `if` (the key), the model says `condition`.
            out.push(Step::Key(if key == "condition" { "if" } else { key }));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else { break };
            match inner[..close].parse() {
                Ok(index) => out.push(Step::Index(index)),
                Err(_) => return out,
            }
            rest = &inner[close + 1..];
        }
    }
    out
}

/// Where a field of the `index`-th rule of a rules text is written: the
/// 1-based line and column of its key (of the element, for a list index).
/// A field the text does not spell out (a missing `do`) is reported at its
/// closest written parent, the rule itself at worst. Uses the parsers'
/// own positions (libyaml's marks, TOML's spans), so nested fields and
/// flow mappings are found exactly.
pub fn locate(
    text: &str,
    format: RulesFormat,
    index: usize,
    field: &str,
) -> Option<(usize, usize)> {
    let mut path = vec![Step::Key("rules"), Step::Index(index)];
    path.extend(steps(field));
    match format {
        RulesFormat::Yaml => yaml_position(text, &path),
        RulesFormat::Toml => toml_position(text, &path),
    }
}

/// The message of the error [`Seek`] raises where it stops.
const FOUND: &str = "switchboard: position found";

/// Walks a YAML document along a path and fails on purpose where it ends:
/// serde_norway stamps a visitor's error with the mark of the node being
/// read, which is the position we want (serde keeps no positions otherwise).
struct Seek<'p, 'a> {
    path: &'p [Step<'a>],
}

impl<'de> serde::de::DeserializeSeed<'de> for Seek<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Even at the end of the path: the error must come from inside the
        // deserializer to carry this node's mark.
        d.deserialize_any(self)
    }
}

macro_rules! stop_at_scalar {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method<E: serde::de::Error>(self, _: $ty) -> Result<(), E> {
            Err(E::custom(FOUND))
        }
    )*};
}

impl<'de> serde::de::Visitor<'de> for Seek<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a rules document")
    }

    stop_at_scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(Step::Index(index)) = self.path.first() {
            for _ in 0..*index {
                if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                    return Err(serde::de::Error::custom(FOUND));
                }
            }
            seq.next_element_seed(Seek {
                path: &self.path[1..],
            })?;
        }
        // Not there: the list itself.
        Err(serde::de::Error::custom(FOUND))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some(Step::Key(key)) = self.path.first() {
            let last = self.path.len() == 1;
            while let Some(matched) = map.next_key_seed(KeyIs { key, stop: last })? {
                if matched {
                    map.next_value_seed(Seek {
                        path: &self.path[1..],
                    })?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        // Not there: the mapping itself.
        Err(serde::de::Error::custom(FOUND))
    }
}

/// A mapping key: whether it is `key`; stops on it when `stop`.
struct KeyIs<'a> {
    key: &'a str,
    stop: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        match v == self.key {
            true if self.stop => Err(E::custom(FOUND)),
            matched => Ok(matched),
        }
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

fn yaml_position(text: &str, path: &[Step<'_>]) -> Option<(usize, usize)> {
    use serde::de::DeserializeSeed;
    let error = Seek { path }
        .deserialize(serde_norway::Deserializer::from_str(text))
        .err()?;
    // (The message is prefixed with the path, such as `rules[0].do: `.)
    if !error.to_string().contains(FOUND) {
        return None;
    }
    error.location().map(|l| (l.line(), l.column()))
}

fn toml_position(text: &str, path: &[Step<'_>]) -> Option<(usize, usize)> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut table = Some(root.get_ref());
    let mut array = None;
    for (i, step) in path.iter().enumerate() {
        let value = match step {
            Step::Key(key) => {
                let Some((name, value)) =
                    table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key))
                else {
                    break;
                };
                if i + 1 == path.len() {
                    span = name.span();
                    break;
                }
                value
            }
            Step::Index(index) => match array.and_then(|a: &toml::de::DeArray<'_>| a.get(*index)) {
                Some(value) => value,
                None => break,
            },
        };
        span = value.span();
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    Some(line_column(text, span.start))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
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
    fn fields_are_located_at_their_key() {
        let at = |field| locate(YAML, RulesFormat::Yaml, 0, field);
        assert_eq!(at("do[0].action"), Some((7, 9)));
        assert_eq!(at("do[0].params.message"), Some((9, 11)));
        assert_eq!(at("condition"), Some((5, 5)));
        assert_eq!(at("if"), Some((5, 5)));
        assert_eq!(at("on.event"), Some((4, 11)));
        // Not written: the rule itself.
        assert_eq!(at(""), Some((3, 5)));
        assert_eq!(at("cooldown.secs"), Some((3, 5)));
        let two = "rules:\n  - name: a\n    on: { event: x }\n    do: []\n  - name: b\n    on: { event: x }\n    do:\n      - action: echo.say\n      - action: echo.say\n        params: { message: \"{{ oops\" }\n";
        assert_eq!(
            locate(two, RulesFormat::Yaml, 1, "do[1].params.message"),
            Some((10, 19))
        );
        assert_eq!(locate(two, RulesFormat::Yaml, 0, "do"), Some((4, 5)));
    }

    #[test]
    fn toml_fields_are_located_at_their_key() {
        let text = "[[rules]]\nname = \"a\"\non = { event = \"x\" }\n\n[[rules]]\nname = \"b\"\non = { event = \"x\" }\n[[rules.do]]\naction = \"echo.say\"\n[[rules.do]]\naction = \"echo.say\"\nparams = { message = \"{{ oops\" }\n";
        let at = |index, field| locate(text, RulesFormat::Toml, index, field);
        assert_eq!(at(1, "do[1].params.message"), Some((12, 12)));
        assert_eq!(at(1, "do[0].action"), Some((9, 1)));
        assert_eq!(at(1, "on.event"), Some((7, 8)));
        assert_eq!(at(0, "if").map(|(line, _)| line), Some(1));
    }
}
