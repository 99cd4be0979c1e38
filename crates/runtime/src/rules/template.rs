//! Conditions and templated parameters (minijinja).
//!
//! Every string in an action's `params` may be a template over `event` (the
//! event: `type`, `connection_id`, `payload`, `id`, `at`), `vars` (the
//! persistent rule variables) and `rule` (its name). A string that is one
//! `{{ expression }}` and nothing else evaluates to the expression's own type
//! (a number stays a number); any other string renders to a string.
//! Undefined values chain (`event.payload.missing.deeper` is undefined, not
//! an error), so conditions can test for fields that may be absent.
//!
//! Rendering does no IO; it is pure and cheap enough to compile on use.
//! Each evaluation or render runs on a fuel budget ([`FUEL`]): a template
//! that would loop for hours or ask for gigabytes (`'%99999999999d' |
//! format(1)`, which aborted the process) fails with "out of fuel" instead.

use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue};
use serde_json::{Map, Value};

/// The work one evaluation or render may do: about a million VM
/// instructions, or 64 MB of output (minijinja's fuel). Rule templates use a
/// tiny fraction of it.
pub const FUEL: u64 = 1_000_000;

/// The template environment every rule uses.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env
}

/// What templates see.
pub struct Scope<'a> {
    pub event: &'a Value,
    pub vars: &'a Value,
    pub rule: &'a str,
}

impl Scope<'_> {
    fn context(&self) -> JinjaValue {
        minijinja::context! {
            event => JinjaValue::from(minijinja::value::Serde(self.event)),
            vars => JinjaValue::from(minijinja::value::Serde(self.vars)),
            rule => self.rule,
        }
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// `Some(expression)` when `text` is exactly one `{{ ... }}`.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

fn describe(e: &minijinja::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    message
}

/// Check that a condition compiles.
pub fn check_expression(env: &Environment<'static>, source: &str) -> Result<(), String> {
    env.compile_expression(source)
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// Check every template in a JSON tree; `(path, message)` per problem.
pub fn check_tree(env: &Environment<'static>, value: &Value, path: &str) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    walk(value, path, &mut |path, text| {
        if let Some(expression) = single_expression(text) {
            if let Err(e) = env.compile_expression(expression) {
                errors.push((path.to_owned(), describe(&e)));
            }
        } else if is_template(text)
            && let Err(e) = env.template_from_str(text)
        {
            errors.push((path.to_owned(), describe(&e)));
        }
    });
    errors
}

fn walk(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), visit);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                walk(item, &format!("{path}.{key}"), visit);
            }
        }
        _ => {}
    }
}

/// True when any string in the tree is a template.
pub fn has_templates(value: &Value) -> bool {
    let mut found = false;
    walk(value, "", &mut |_, text| found |= is_template(text));
    found
}

/// Evaluate a condition.
pub fn evaluate(
    env: &Environment<'static>,
    source: &str,
    scope: &Scope<'_>,
) -> Result<bool, String> {
    let expression = env.compile_expression(source).map_err(|e| describe(&e))?;
    expression
        .eval(scope.context())
        .map(|v| v.is_true())
        .map_err(|e| describe(&e))
}

/// Render one string.
pub fn render_str(
    env: &Environment<'static>,
    text: &str,
    scope: &Scope<'_>,
) -> Result<Value, String> {
    if let Some(expression) = single_expression(text) {
        let value = env
            .compile_expression(expression)
            .map_err(|e| describe(&e))?
            .eval(scope.context())
            .map_err(|e| describe(&e))?;
        if value.is_undefined() || value.is_none() {
            return Ok(Value::Null);
        }
        return serde_json::to_value(&value).map_err(|e| e.to_string());
    }
    if !is_template(text) {
        return Ok(Value::String(text.to_owned()));
    }
    env.render_str(text, scope.context())
        .map(Value::String)
        .map_err(|e| describe(&e))
}

/// Render every string of a JSON tree.
pub fn render_tree(
    env: &Environment<'static>,
    value: &Value,
    scope: &Scope<'_>,
    path: &str,
) -> Result<Value, (String, String)> {
    Ok(match value {
        Value::String(text) => render_str(env, text, scope).map_err(|e| (path.to_owned(), e))?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_tree(env, item, scope, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                out.insert(
                    key.clone(),
                    render_tree(env, item, scope, &format!("{path}.{key}"))?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope<'a>(event: &'a Value, vars: &'a Value) -> Scope<'a> {
        Scope {
            event,
            vars,
            rule: "r",
        }
    }

    /// Found by the `template` fuzz target: a huge `format` width made
    /// minijinja allocate 88 GB and the process abort. Runaway loops are
    /// bounded the same way. Both fail like any template error.
    #[test]
    fn runaway_templates_run_out_of_fuel_instead_of_aborting() {
        let env = environment();
        let (event, vars) = (json!({}), json!({}));
        for text in [
            "{{ '%88888888805d' | format(3) }}",
            "x{{ '%.99999999999f' | format(1.5) }}",
            "{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}",
        ] {
            let error = render_str(&env, text, &scope(&event, &vars)).unwrap_err();
            assert!(error.contains("fuel"), "{text}: {error}");
        }
        // An ordinary template is far inside the budget.
        let text = "{% for i in range(1000) %}{{ i }},{% endfor %}";
        assert!(render_str(&env, text, &scope(&event, &vars)).is_ok());
    }

    #[test]
    fn single_expressions_keep_their_type_and_text_renders() {
        let env = environment();
        let event = json!({"payload": {"amount": 7, "name": "Ada"}});
        let vars = json!({"count": 2});
        let s = scope(&event, &vars);
        let params = json!({
            "amount": "{{ event.payload.amount * 2 }}",
            "message": "thanks {{ event.payload.name }}!",
            "count": "{{ (vars.count or 0) + 1 }}",
            "plain": "no template",
            "nested": ["{{ rule }}", 3],
            "missing": "{{ event.payload.nothing.deeper }}"
        });
        let out = render_tree(&env, &params, &s, "params").unwrap();
        assert_eq!(
            out,
            json!({
                "amount": 14,
                "message": "thanks Ada!",
                "count": 3,
                "plain": "no template",
                "nested": ["r", 3],
                "missing": null
            })
        );
    }

    #[test]
    fn conditions_are_truthy_and_tolerate_absent_fields() {
        let env = environment();
        let event = json!({"payload": {"amount": 7}});
        let vars = json!({});
        let s = scope(&event, &vars);
        assert!(evaluate(&env, "event.payload.amount >= 5", &s).unwrap());
        assert!(!evaluate(&env, "event.payload.amount > 10", &s).unwrap());
        assert!(!evaluate(&env, "event.payload.user.name == 'x'", &s).unwrap());
    }

    #[test]
    fn broken_templates_are_reported_with_their_path() {
        let env = environment();
        assert!(check_expression(&env, "event.payload.amount >=").is_err());
        let errors = check_tree(
            &env,
            &json!({"a": "{{ broken", "b": ["ok", "{% if %}"], "c": "{{ 1 + }}"}),
            "params",
        );
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["params.a", "params.b[1]", "params.c"]);
        assert!(has_templates(&json!({"x": ["{{ y }}"]})));
        assert!(!has_templates(&json!({"x": ["plain"]})));
    }
}
