//! Tools from the connector registry, with no per-connector code: one tool
//! per action (`x.post` → `x_post`) whose input schema is the action's
//! parameter schema plus the optional `account` / `connections` arguments,
//! and the built-in tools (`list_connections`, `connect`, `job_status`,
//! `upload_media`). Everything here is pure: it turns manifests and the
//! connections in scope into tools, and a call's arguments into what the
//! engine takes, with errors that name the field.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};
use switchboard_core::{ActionSpec, Connection, ConnectorManifest};
use switchboard_runtime::FieldError;

pub const LIST_CONNECTIONS: &str = "list_connections";
pub const CONNECT: &str = "connect";
pub const JOB_STATUS: &str = "job_status";
pub const UPLOAD_MEDIA: &str = "upload_media";

/// The argument naming one account (a connection id or label).
pub const ACCOUNT: &str = "account";
/// The argument naming several accounts.
pub const CONNECTIONS: &str = "connections";

/// The tool name of an action: `x.post` → `x_post`.
pub fn tool_name(action: &str) -> String {
    action.replace('.', "_")
}

/// How an account is shown to a model: `label (id)`.
fn account_list(connections: &[&Connection]) -> String {
    connections
        .iter()
        .map(|c| {
            let state = if c.enabled { "" } else { ", disabled" };
            format!("`{}` ({}{state})", c.label, c.id)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tool of one action, for the accounts of its connector in scope.
pub fn action_tool(
    manifest: &ConnectorManifest,
    action: &ActionSpec,
    accounts: &[&Connection],
) -> Tool {
    let mut schema = match &action.params_schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    schema.insert("type".into(), json!("object"));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        // An action that takes `account` itself keeps it; accounts are then
        // chosen with `connections` only.
        properties.entry(ACCOUNT).or_insert_with(|| {
            json!({
                "type": "string",
                "description": format!(
                    "The one {} account to use, by label or id. Leave out to use every enabled account.",
                    manifest.display_name
                ),
            })
        });
        properties.entry(CONNECTIONS).or_insert_with(|| {
            json!({
                "type": "array",
                "items": { "type": "string" },
                "description": format!(
                    "Several {} accounts to use, by label or id. Leave out to use every enabled account.",
                    manifest.display_name
                ),
            })
        });
    }
    let enabled = accounts.iter().filter(|c| c.enabled).count();
    let description = format!(
        "{what}\n\nRuns on your connected {service} accounts: {accounts}. With no `account` it runs on \
         every enabled one ({enabled} now), one job each; name one with `account` (label or id) to use \
         only that one. Returns one entry per account: `account`, `job_id`, `state` (`succeeded` with \
         `result`, or `failed` with `error`); an entry still `queued` or `running` after the wait can be \
         followed with `job_status`. An account that cannot act now gets no job and answers at once: \
         `needs_reauth` (with `authorize_url` to show the user), `disabled` or `unavailable`.",
        what = action.description.trim_end(),
        service = manifest.display_name,
        accounts = account_list(accounts),
    );
    Tool::new(
        Cow::Owned(tool_name(&action.name)),
        Cow::Owned(description),
        Arc::new(schema),
    )
    .with_title(format!("{}: {}", manifest.display_name, action.name))
}

fn object(schema: Value) -> Arc<JsonObject> {
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

/// The tools every agent has, whatever is connected.
pub fn builtin_tools(media_from_paths: bool) -> Vec<Tool> {
    let path_note = if media_from_paths {
        "Give `path` (a file under a directory the owner allowed) or `base64` (the bytes)."
    } else {
        "Give `base64` (the bytes); reading files by `path` is off unless the owner allows directories (`mcp.media_dirs`)."
    };
    vec![
        Tool::new(
            LIST_CONNECTIONS,
            "List the accounts and services you may act on (X accounts, Twitch channels, OBS, the local machine), \
             with their id, label, service and live status (`connected`, `needs_reauth`, ...). Use it first to \
             see what is connected; tools such as `x_post` take one of these labels or ids as `account`.",
            object(json!({ "type": "object", "properties": {} })),
        )
        .annotate(ToolAnnotations::new().read_only(true)),
        Tool::new(
            CONNECT,
            "Start the sign-in (OAuth) of an account that needs it (status `disconnected` or `needs_reauth`). \
             Returns `authorize_url`: show it to the user and ask them to open it; the account goes live the \
             moment they approve (the link works once, for 10 minutes). Accounts that use an API key or \
             password instead are refused, saying so.",
            object(json!({
                "type": "object",
                "required": [ACCOUNT],
                "properties": {
                    ACCOUNT: { "type": "string", "description": "The account to sign in, by label or id (see `list_connections`)." }
                }
            })),
        ),
        Tool::new(
            JOB_STATUS,
            "Look up a job by the `job_id` another tool returned: its `state` (`queued`, `running`, \
             `succeeded`, `failed`, `dead`), `result` when it succeeded, `error` when it failed, and why it \
             waits (`waiting_reason`). Use it for an action that was still running when its tool returned.",
            object(json!({
                "type": "object",
                "required": ["job_id"],
                "properties": { "job_id": { "type": "string", "description": "The id from a tool's result." } }
            })),
        )
        .annotate(ToolAnnotations::new().read_only(true)),
        Tool::new(
            UPLOAD_MEDIA,
            Cow::Owned(format!(
                "Store an image or video so posts can attach it. {path_note} Returns `media_id` (32 hex \
                 characters) to pass in `media` of `x_post`, with the detected `mime_type` and `size`. The \
                 same bytes always give the same id."
            )),
            object(json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string", "description": "An absolute path under an allowed directory." },
                    "base64": { "type": "string", "description": "The file's bytes, base64 encoded." },
                    "name": { "type": "string", "description": "A file name to remember it by (optional)." }
                }
            })),
        ),
    ]
}

/// Which accounts a call named.
#[derive(Debug, Clone, PartialEq)]
pub enum Accounts {
    /// None: every enabled account in scope.
    Every,
    /// These, by label or id, with the argument each came from.
    Named(Vec<(String, String)>),
}

/// A call's arguments split into the accounts and the action's parameters.
pub fn split_arguments(
    arguments: Option<JsonObject>,
    action_takes_account: bool,
) -> Result<(Accounts, Value), Vec<FieldError>> {
    let mut params = arguments.unwrap_or_default();
    let mut errors = Vec::new();
    let mut named = Vec::new();
    if !action_takes_account && let Some(account) = params.remove(ACCOUNT) {
        match account {
            Value::String(s) if !s.trim().is_empty() => named.push((ACCOUNT.to_owned(), s)),
            Value::Null => {}
            other => errors.push(FieldError::new(
                ACCOUNT,
                format!(
                    "give one account's label or id as a string, not {}",
                    kind_of(&other)
                ),
            )),
        }
    }
    if let Some(connections) = params.remove(CONNECTIONS) {
        match connections {
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => {
                            named.push((format!("{CONNECTIONS}[{i}]"), s))
                        }
                        other => errors.push(FieldError::new(
                            format!("{CONNECTIONS}[{i}]"),
                            format!("give an account's label or id, not {}", kind_of(&other)),
                        )),
                    }
                }
            }
            Value::Null => {}
            other => errors.push(FieldError::new(
                CONNECTIONS,
                format!(
                    "give a list of account labels or ids, not {}",
                    kind_of(&other)
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let accounts = if named.is_empty() {
        Accounts::Every
    } else {
        Accounts::Named(named)
    };
    Ok((accounts, Value::Object(params)))
}

/// The arguments the action's schema does not take, and the required ones
/// left out, each named (the schema validator would report both against
/// the whole object, as `params`, with an `anyOf` line).
pub fn check_arguments(schema: &Value, params: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(given) = params.as_object() else {
        return errors;
    };
    let properties = schema["properties"].as_object();
    if schema["additionalProperties"] == json!(false)
        && let Some(properties) = properties
    {
        let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
        known.extend([ACCOUNT, CONNECTIONS]);
        known.sort_unstable();
        known.dedup();
        for name in given.keys().filter(|k| !properties.contains_key(*k)) {
            errors.push(FieldError::new(
                name.as_str(),
                format!("unknown argument; this tool takes: {}", known.join(", ")),
            ));
        }
    }
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    for name in names(&schema["required"]) {
        if !given.contains_key(&name) {
            errors.push(FieldError::new(
                name.as_str(),
                "missing; this argument is required",
            ));
        }
    }
    // `anyOf: [{required: [a]}, {required: [b]}]`: one of them is needed.
    if let Some(choices) = schema["anyOf"].as_array() {
        let alternatives: Option<Vec<Vec<String>>> = choices
            .iter()
            .map(|choice| {
                let only_required = choice.as_object().is_some_and(|o| o.len() == 1);
                only_required.then(|| names(&choice["required"]))
            })
            .collect();
        if let Some(alternatives) = alternatives
            && !alternatives.is_empty()
            && !alternatives
                .iter()
                .any(|names| names.iter().all(|n| given.contains_key(n)))
            && let Some(first) = alternatives[0].iter().find(|n| !given.contains_key(*n))
        {
            let options: Vec<String> = alternatives
                .iter()
                .map(|names| {
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                })
                .collect();
            errors.push(FieldError::new(
                first.as_str(),
                format!("missing; give {}", options.join(" or ")),
            ));
        }
    }
    errors
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The engine's field names (`params.text`) as the tool's arguments (`text`).
pub fn argument_field(field: &str) -> String {
    field
        .strip_prefix("params.")
        .or_else(|| field.strip_prefix("params"))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(field)
        .to_owned()
}

/// A message for a model: every field at fault and how to fix it.
pub fn describe_field_errors(errors: &[FieldError]) -> String {
    let mut message = String::from("invalid arguments:");
    for error in errors {
        message.push_str(&format!(
            "\n- `{}`: {}",
            argument_field(&error.field),
            error.message
        ));
    }
    message
}

/// A string argument that must be present.
pub fn required_string(arguments: &JsonObject, field: &str) -> Result<String, FieldError> {
    match arguments.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        None | Some(Value::Null) => Err(FieldError::new(field, "missing; this field is required")),
        Some(Value::String(_)) => Err(FieldError::new(field, "must not be empty")),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a string, not {}", kind_of(other)),
        )),
    }
}

/// A string argument that may be left out.
pub fn optional_string(arguments: &JsonObject, field: &str) -> Result<Option<String>, FieldError> {
    match arguments.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a string, not {}", kind_of(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::{AuthKind, ConnectionStatus, StatusKind};

    use super::*;

    fn manifest() -> ConnectorManifest {
        ConnectorManifest {
            name: "x".into(),
            display_name: "X".into(),
            description: "X accounts".into(),
            auth: AuthKind::Oauth2,
            settings_schema: json!({ "type": "object" }),
            secrets: vec![],
            triggers: vec![],
            actions: vec![ActionSpec {
                name: "x.post".into(),
                description: "Post on X.".into(),
                params_schema: json!({
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": false,
                    "properties": { "text": { "type": "string" } }
                }),
                result_schema: json!({ "type": "object" }),
            }],
        }
    }

    fn connection(label: &str, enabled: bool) -> Connection {
        Connection {
            id: format!("id-{label}"),
            connector: "x".into(),
            label: label.into(),
            enabled,
            settings: json!({}),
            status: ConnectionStatus::new(StatusKind::Connected, None),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn an_action_becomes_a_tool_with_its_schema_and_the_account_arguments() {
        let manifest = manifest();
        let (me, off) = (connection("me", true), connection("old", false));
        let tool = action_tool(&manifest, &manifest.actions[0], &[&me, &off]);
        assert_eq!(tool.name, "x_post");
        let schema = Value::Object((*tool.input_schema).clone());
        assert_eq!(
            schema["required"],
            json!(["text"]),
            "the action's schema is kept"
        );
        assert_eq!(schema["properties"]["text"], json!({ "type": "string" }));
        assert_eq!(schema["properties"]["account"]["type"], "string");
        assert_eq!(schema["properties"]["connections"]["type"], "array");
        let description = tool.description.unwrap();
        assert!(description.starts_with("Post on X."), "{description}");
        assert!(description.contains("`me` (id-me)"), "{description}");
        assert!(
            description.contains("`old` (id-old, disabled)"),
            "{description}"
        );
        assert!(description.contains("(1 now)"), "{description}");
    }

    #[test]
    fn tool_names_replace_dots() {
        assert_eq!(tool_name("x.post"), "x_post");
        assert_eq!(tool_name("x.search_recent"), "x_search_recent");
        assert_eq!(tool_name("obs.set_scene"), "obs_set_scene");
    }

    #[test]
    fn arguments_split_into_accounts_and_params() {
        let args = |v: Value| Some(v.as_object().unwrap().clone());
        let (accounts, params) = split_arguments(args(json!({ "text": "hi" })), false).unwrap();
        assert_eq!(accounts, Accounts::Every);
        assert_eq!(params, json!({ "text": "hi" }));

        let (accounts, params) =
            split_arguments(args(json!({ "text": "hi", "account": "me" })), false).unwrap();
        assert_eq!(
            accounts,
            Accounts::Named(vec![("account".into(), "me".into())])
        );
        assert_eq!(
            params,
            json!({ "text": "hi" }),
            "`account` is not a parameter"
        );

        let (accounts, _) =
            split_arguments(args(json!({ "connections": ["a", "b"] })), false).unwrap();
        assert_eq!(
            accounts,
            Accounts::Named(vec![
                ("connections[0]".into(), "a".into()),
                ("connections[1]".into(), "b".into())
            ])
        );
    }

    #[test]
    fn wrong_account_arguments_name_the_field() {
        let args = |v: Value| Some(v.as_object().unwrap().clone());
        let fields = |v: Value| -> Vec<String> {
            split_arguments(args(v), false)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(json!({ "account": 7 })), ["account"]);
        assert_eq!(fields(json!({ "connections": "me" })), ["connections"]);
        assert_eq!(
            fields(json!({ "connections": ["me", 3] })),
            ["connections[1]"]
        );
    }

    #[test]
    fn unknown_and_missing_arguments_are_named() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "text": {}, "media": {}, "reply_to": {} },
            "anyOf": [{ "required": ["text"] }, { "required": ["media"] }]
        });
        let fields = |params: Value| -> Vec<(String, String)> {
            check_arguments(&schema, &params)
                .into_iter()
                .map(|e| (e.field, e.message))
                .collect()
        };
        let unknown = fields(json!({ "text": "hi", "colour": "red" }));
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert_eq!(unknown[0].0, "colour");
        assert!(
            unknown[0]
                .1
                .contains("account, connections, media, reply_to, text"),
            "{unknown:?}"
        );
        let missing = fields(json!({}));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].0, "text");
        assert!(missing[0].1.contains("`text` or `media`"), "{missing:?}");
        assert!(fields(json!({ "media": ["a"] })).is_empty());
        assert!(fields(json!({ "text": "hi" })).is_empty());

        let required = json!({ "type": "object", "required": ["id"], "properties": { "id": {} } });
        let errors = check_arguments(&required, &json!({ "other": 1 }));
        assert_eq!(
            errors.len(),
            1,
            "extra arguments pass when the schema allows them"
        );
        assert_eq!(errors[0].field, "id");
    }

    #[test]
    fn engine_fields_become_argument_names() {
        assert_eq!(argument_field("params.text"), "text");
        assert_eq!(argument_field("params.media[0]"), "media[0]");
        assert_eq!(argument_field("params"), "params");
        assert_eq!(argument_field("connections[1]"), "connections[1]");
        let message = describe_field_errors(&[
            FieldError::new("params.text", "\"text\" is a required property"),
            FieldError::new("params.reply_to", "7 is not of type \"string\""),
        ]);
        assert!(message.contains("- `text`: "), "{message}");
        assert!(message.contains("- `reply_to`: 7 is not"), "{message}");
    }

    #[test]
    fn builtin_arguments_are_checked_by_name() {
        let args = json!({ "job_id": 5 }).as_object().unwrap().clone();
        let error = required_string(&args, "job_id").unwrap_err();
        assert_eq!(error.field, "job_id");
        assert!(error.message.contains("not a number"), "{}", error.message);
        let error = required_string(&Map::new(), "job_id").unwrap_err();
        assert!(error.message.contains("required"));
        assert_eq!(optional_string(&Map::new(), "name").unwrap(), None);
    }
}
