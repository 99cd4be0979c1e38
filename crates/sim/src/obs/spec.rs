//! Request conformance against obs-websocket's protocol document
//! (`specs/obs-websocket-v5.protocol.json`, a copy of the one the
//! obs-websocket project generates from its source).
//!
//! [`check_request_against_spec`] answers what obs-websocket's request
//! handler would answer before doing any work: `204 UnknownRequestType` for
//! a request the protocol (at the simulated version) does not have, `300
//! MissingRequestField` for a required field left out, `401
//! InvalidRequestFieldType` for a field of the wrong JSON type, `402
//! RequestFieldOutOfRange` for a number outside the documented
//! restriction (`>= 0`, `<= 50000`, ...), `403 RequestFieldEmpty` for an
//! empty name. The simulator runs it on every request, so a client that
//! sends what the protocol does not describe gets OBS's error, as it would
//! from OBS.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const DOCUMENT: &str = include_str!("../../specs/obs-websocket-v5.protocol.json");

#[derive(Debug, Deserialize)]
struct Document {
    requests: Vec<RequestSpec>,
    events: Vec<EventSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestSpec {
    request_type: String,
    initial_version: String,
    request_fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventSpec {
    event_type: String,
    event_subscription: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldSpec {
    value_name: String,
    value_type: String,
    #[serde(default)]
    value_restrictions: Option<String>,
    #[serde(default)]
    value_optional: bool,
}

struct Spec {
    requests: HashMap<String, RequestSpec>,
    events: HashMap<String, String>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let document: Document =
            serde_json::from_str(DOCUMENT).expect("the bundled protocol document parses");
        Spec {
            requests: document
                .requests
                .into_iter()
                .map(|r| (r.request_type.clone(), r))
                .collect(),
            events: document
                .events
                .into_iter()
                .map(|e| (e.event_type, e.event_subscription))
                .collect(),
        }
    })
}

/// `5.1.0` → `(5, 1, 0)`; missing parts are 0.
pub(crate) fn version_tuple(version: &str) -> (u64, u64, u64) {
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// The request types obs-websocket `version` has, sorted.
pub fn available_requests(version: &str) -> Vec<String> {
    let at = version_tuple(version);
    let mut names: Vec<String> = spec()
        .requests
        .values()
        .filter(|r| version_tuple(&r.initial_version) <= at)
        .map(|r| r.request_type.clone())
        .collect();
    names.sort();
    names
}

/// The subscription category (`Scenes`, `Outputs`, ...) of an event type.
pub fn event_subscription(event_type: &str) -> Option<&'static str> {
    spec().events.get(event_type).map(String::as_str)
}

/// What obs-websocket answers a request that does not conform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A `RequestStatus` code.
    pub code: u16,
    /// The comment obs-websocket sends with it.
    pub comment: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.comment)
    }
}

fn violation(code: u16, comment: impl Into<String>) -> Violation {
    Violation {
        code,
        comment: comment.into(),
    }
}

fn type_matches(value_type: &str, value: &Value) -> bool {
    match value_type {
        "String" => value.is_string(),
        "Number" => value.is_number(),
        "Boolean" => value.is_boolean(),
        "Object" => value.is_object(),
        "Any" => true,
        t if t.starts_with("Array") => value.is_array(),
        _ => true,
    }
}

/// Check a number against restrictions such as `>= 0, <= 50000`.
fn in_range(restrictions: &str, number: f64) -> bool {
    restrictions.split(',').all(|part| {
        let part = part.trim();
        let (op, bound) = if let Some(b) = part.strip_prefix(">=") {
            (">=", b)
        } else if let Some(b) = part.strip_prefix("<=") {
            ("<=", b)
        } else if let Some(b) = part.strip_prefix('>') {
            (">", b)
        } else if let Some(b) = part.strip_prefix('<') {
            ("<", b)
        } else {
            return true;
        };
        let Ok(bound) = bound.trim().parse::<f64>() else {
            return true;
        };
        match op {
            ">=" => number >= bound,
            "<=" => number <= bound,
            ">" => number > bound,
            _ => number < bound,
        }
    })
}

/// Check one request (`requestType` and `requestData`) against the protocol
/// document as obs-websocket `version` knows it.
pub fn check_request_against_spec(
    request_type: &str,
    request_data: Option<&Value>,
    version: &str,
) -> Result<(), Violation> {
    let Some(request) = spec().requests.get(request_type) else {
        return Err(violation(204, "Your request type is not valid."));
    };
    if version_tuple(&request.initial_version) > version_tuple(version) {
        return Err(violation(204, "Your request type is not valid."));
    }
    let empty = Value::Object(Default::default());
    let data = request_data.unwrap_or(&empty);
    if !data.is_object() {
        return Err(violation(
            301,
            "Your request data is missing or invalid (non-object)",
        ));
    }
    for field in &request.request_fields {
        // Sub-fields (`inputSettings.x`) are described inside their object.
        if field.value_name.contains('.') {
            continue;
        }
        let value = data.get(&field.value_name);
        match value {
            None | Some(Value::Null) if !field.value_optional => {
                return Err(violation(
                    300,
                    format!("Your request is missing the `{}` field.", field.value_name),
                ));
            }
            None | Some(Value::Null) => {}
            Some(value) => {
                if !type_matches(&field.value_type, value) {
                    return Err(violation(
                        401,
                        format!(
                            "The field value of `{}` must be of type `{}`.",
                            field.value_name,
                            field.value_type.to_lowercase()
                        ),
                    ));
                }
                if let (Some(restrictions), Some(number)) =
                    (&field.value_restrictions, value.as_f64())
                    && !in_range(restrictions, number)
                {
                    return Err(violation(
                        402,
                        format!(
                            "The field value of `{}` is out of range ({restrictions}).",
                            field.value_name
                        ),
                    ));
                }
                if value.as_str() == Some("") && field.value_name.ends_with("Name") {
                    return Err(violation(
                        403,
                        format!("The field value of `{}` cannot be empty.", field.value_name),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn knows_requests_by_version() {
        assert!(check_request_against_spec("GetVersion", None, "5.1.0").is_ok());
        assert_eq!(
            check_request_against_spec("GetCanvasList", None, "5.1.0")
                .unwrap_err()
                .code,
            204
        );
        assert!(check_request_against_spec("GetCanvasList", None, "5.7.0").is_ok());
        assert_eq!(
            check_request_against_spec("MakeCoffee", None, "5.7.0")
                .unwrap_err()
                .code,
            204
        );
        let v51 = available_requests("5.1.0");
        assert!(v51.contains(&"SetCurrentProgramScene".to_owned()));
        assert!(!v51.contains(&"GetCanvasList".to_owned()));
    }

    #[test]
    fn checks_fields_like_obs() {
        let missing = check_request_against_spec(
            "SetSceneItemEnabled",
            Some(&json!({"sceneName": "A", "sceneItemEnabled": true})),
            "5.5.0",
        )
        .unwrap_err();
        assert_eq!(missing.code, 300);
        assert!(missing.comment.contains("sceneItemId"));
        let wrong_type = check_request_against_spec(
            "SetSceneItemEnabled",
            Some(&json!({"sceneName": "A", "sceneItemId": "3", "sceneItemEnabled": true})),
            "5.5.0",
        )
        .unwrap_err();
        assert_eq!(wrong_type.code, 401);
        let out_of_range = check_request_against_spec(
            "SetSceneItemEnabled",
            Some(&json!({"sceneName": "A", "sceneItemId": -1, "sceneItemEnabled": true})),
            "5.5.0",
        )
        .unwrap_err();
        assert_eq!(out_of_range.code, 402);
        let empty =
            check_request_against_spec("CreateScene", Some(&json!({"sceneName": ""})), "5.5.0")
                .unwrap_err();
        assert_eq!(empty.code, 403);
        assert!(
            check_request_against_spec(
                "SetSceneItemEnabled",
                Some(&json!({"sceneName": "A", "sceneItemId": 3, "sceneItemEnabled": false})),
                "5.5.0",
            )
            .is_ok()
        );
    }

    #[test]
    fn knows_event_categories() {
        assert_eq!(event_subscription("StreamStateChanged"), Some("Outputs"));
        assert_eq!(
            event_subscription("CurrentProgramSceneChanged"),
            Some("Scenes")
        );
        assert_eq!(event_subscription("ExitStarted"), Some("General"));
    }

    #[test]
    fn parses_versions() {
        assert!(version_tuple("5.1.0") < version_tuple("5.5.0"));
        assert!(version_tuple("5.10.0") > version_tuple("5.9.9"));
        assert_eq!(version_tuple("30.2"), (30, 2, 0));
    }
}
