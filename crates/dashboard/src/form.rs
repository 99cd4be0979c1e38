//! Settings forms generated from a connector's settings JSON schema (the one
//! the API validates with), so a new connector gets a form with no UI code.
//!
//! Every input carries `data-field` (the dotted path the API's problem+json
//! names, such as `settings.client_id`) and `data-kind` (how the browser
//! turns its text back into JSON: `string`, `integer`, `number`, `boolean`,
//! `json`). Enums become selects, booleans checkboxes, numbers number inputs,
//! objects with known properties nested fieldsets, and anything else (arrays,
//! free-form objects) a JSON textarea. Validation stays the API's job.

use maud::{Markup, html};
use serde_json::Value;

/// The fields of `schema` (an object schema) under the path `prefix`.
pub fn fields(schema: &Value, prefix: &str) -> Markup {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return html! {};
    };
    html! {
        @for (name, property) in properties {
            (field(&format!("{prefix}.{name}"), name, property, required.contains(&name.as_str())))
        }
    }
}

fn input_id(path: &str) -> String {
    format!("f-{}", path.replace('.', "-"))
}

fn kind_of(property: &Value) -> &str {
    if property.get("enum").is_some() {
        return "enum";
    }
    match property.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // ["string", "null"] and friends: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("json"),
        _ => "json",
    }
}

fn field(path: &str, name: &str, property: &Value, required: bool) -> Markup {
    let id = input_id(path);
    let description = property.get("description").and_then(Value::as_str);
    let help_id = format!("{id}-help");
    let error_id = format!("{id}-error");
    let described = if description.is_some() {
        format!("{help_id} {error_id}")
    } else {
        error_id.clone()
    };
    let kind = kind_of(property);
    if kind == "object" && property.get("properties").is_some() {
        return html! {
            fieldset.group data-field=(path) {
                legend { (name) }
                @if let Some(d) = description { p.help id=(help_id) { (d) } }
                (fields(property, path))
                p.field-error id=(error_id) role="alert" {}
            }
        };
    }
    let control = match kind {
        "enum" => {
            let options: Vec<String> = property["enum"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            html! {
                select id=(id) name=(path) data-field=(path) data-kind="string" aria-describedby=(described) {
                    @if !required { option value="" { "(default)" } }
                    @for option in &options { option value=(option) { (option) } }
                }
            }
        }
        "boolean" => html! {
            input type="checkbox" id=(id) name=(path) data-field=(path) data-kind="boolean" aria-describedby=(described);
        },
        "integer" | "number" => html! {
            input type="number" id=(id) name=(path) data-field=(path) data-kind=(kind)
                step=(if kind == "integer" { "1" } else { "any" })
                min=[property.get("minimum").map(Value::to_string)]
                max=[property.get("maximum").map(Value::to_string)]
                required[required] aria-describedby=(described);
        },
        "string" => html! {
            input type="text" id=(id) name=(path) data-field=(path) data-kind="string"
                maxlength=[property.get("maxLength").map(Value::to_string)]
                required[required] autocomplete="off" aria-describedby=(described);
        },
        _ => html! {
            textarea id=(id) name=(path) data-field=(path) data-kind="json" rows="3" spellcheck="false"
                placeholder=(if kind == "array" { "[ ]  (JSON)" } else { "{ }  (JSON)" })
                aria-describedby=(described) {}
        },
    };
    html! {
        div.field.(if kind == "boolean" { "check" } else { "" }) {
            label for=(id) { (name) @if required { span.req { " (required)" } } }
            (control)
            @if let Some(d) = description { p.help id=(help_id) { (d) } }
            p.field-error id=(error_id) role="alert" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_schema_type_gets_its_control() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "auth": {"enum": ["oauth2", "oauth1"], "description": "how <b>"},
                "name": {"type": "string", "maxLength": 10},
                "on": {"type": "boolean"},
                "every": {"type": "integer", "minimum": 1},
                "nested": {"type": "object", "properties": {"deep": {"type": "number"}}},
                "list": {"type": "array", "items": {"type": "string"}},
            }
        });
        let html = fields(&schema, "settings").into_string();
        assert!(html.contains(r#"<select id="f-settings-auth" name="settings.auth" data-field="settings.auth" data-kind="string""#), "{html}");
        assert!(html.contains(
            r#"<option value="">(default)</option><option value="oauth2">oauth2</option>"#
        ));
        assert!(html.contains("how &lt;b&gt;"), "descriptions are escaped");
        assert!(html.contains(r#"type="text" id="f-settings-name" name="settings.name" data-field="settings.name" data-kind="string" maxlength="10" required"#), "{html}");
        assert!(html.contains(r#"type="checkbox" id="f-settings-on""#));
        assert!(
            html.contains(r#"data-kind="integer" step="1" min="1""#),
            "{html}"
        );
        assert!(html.contains(
            r#"<fieldset class="group" data-field="settings.nested"><legend>nested</legend>"#
        ));
        assert!(html.contains(r#"id="f-settings-nested-deep" name="settings.nested.deep""#));
        assert!(html.contains(r#"<textarea id="f-settings-list" name="settings.list" data-field="settings.list" data-kind="json""#));
    }
}
