//! Request conformance against X's official OpenAPI document.
//!
//! [`check_request_against_spec`] finds the operation for a recorded request
//! (path template and method), then validates its path parameters, query
//! parameters (unknown ones are errors, as on X) and its JSON or multipart body
//! against the document's schemas. Schemas are compiled with `jsonschema`
//! against a root made of the schema plus the document's `components`, so
//! `#/components/...` references resolve inside the document; compiled
//! validators are cached per schema.
//!
//! The OAuth endpoints are not in the v2 document (X documents them in prose),
//! so they get small built-in checks of the parameters X's docs require.
//!
//! The document names the post fields parameter of the REST endpoints
//! `post.fields` (with a list lacking `author_id`, `in_reply_to_user_id` and
//! `referenced_tweets`), where the deployed API and every client say
//! `tweet.fields`. Both are accepted: `post.fields` is checked against its own
//! list, `tweet.fields` against the list the same document gives that name on
//! its streaming endpoints.
//!
//! The simulator itself runs the same check on every API request and answers
//! `400 Invalid Request` when it fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value};

use super::RecordedRequest;
use super::media::parse_multipart;

const DOCUMENT: &str = include_str!("../../specs/x-api-v2.openapi.json");

/// Query parameter names the deployed API accepts for a documented name.
const QUERY_ALIASES: &[(&str, &str)] = &[("tweet.fields", "post.fields")];

/// What the check needs from a request.
pub(crate) struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub body_truncated: bool,
    pub authorization_scheme: Option<&'a str>,
}

/// Check one recorded request against the official X API v2 OpenAPI document.
/// `Err` says what does not conform, naming the parameter or body location.
pub fn check_request_against_spec(req: &RecordedRequest) -> Result<(), String> {
    check(&RequestView {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        content_type: req.header("content-type"),
        body: &req.body,
        body_truncated: req.body_truncated,
        authorization_scheme: req.header("authorization"),
    })
    .map_err(|e| format!("{} {}: {e}", req.method, req.path))
}

pub(crate) fn check(req: &RequestView<'_>) -> Result<(), String> {
    if let Some(result) = check_oauth_endpoint(req) {
        return result;
    }
    let doc = document();
    let (template, path_params) = find_path(doc, req.path)
        .ok_or_else(|| "no such path in the X API v2 document".to_owned())?;
    let operation = doc["paths"][template.as_str()]
        .get(req.method.to_ascii_lowercase())
        .ok_or_else(|| format!("method {} is not defined for {template}", req.method))?;

    let parameters: Vec<&Value> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|p| resolve(doc, p)).collect())
        .unwrap_or_default();

    for p in parameters.iter().filter(|p| p["in"] == "path") {
        let name = p["name"].as_str().unwrap_or_default();
        let value = path_params.get(name).cloned().unwrap_or_default();
        validate(&p["schema"], &Value::String(value))
            .map_err(|e| format!("path parameter {name}: {e}"))?;
    }

    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (name, value) in req.query {
        let documented = QUERY_ALIASES
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name.as_str(), |(_, doc_name)| doc_name);
        let param = parameters
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == documented)
            .ok_or_else(|| {
                format!("query parameter [{name}] is not one of the documented parameters")
            })?;
        if seen.insert(documented, value).is_some() {
            return Err(format!("query parameter [{name}] is given more than once"));
        }
        let schema = match name.as_str() {
            "tweet.fields" => documented_tweet_fields(doc).unwrap_or(&param["schema"]),
            _ => &param["schema"],
        };
        let typed = query_value(doc, schema, value);
        validate(schema, &typed).map_err(|e| format!("query parameter {name}={value}: {e}"))?;
    }
    for p in parameters
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
    {
        let name = p["name"].as_str().unwrap_or_default();
        if !seen.contains_key(name) {
            return Err(format!("required query parameter [{name}] is missing"));
        }
    }

    check_body(doc, operation, req)
}

fn check_body(doc: &Value, operation: &Value, req: &RequestView<'_>) -> Result<(), String> {
    let Some(request_body) = operation.get("requestBody").map(|b| resolve(doc, b)) else {
        return if req.body.is_empty() {
            Ok(())
        } else {
            Err("this operation takes no request body".to_owned())
        };
    };
    if req.body.is_empty() {
        return if request_body["required"] == true {
            Err("request body is required".to_owned())
        } else {
            Ok(())
        };
    }
    if req.body_truncated {
        // The recorded body was cut; a partial body cannot be judged.
        return Ok(());
    }
    let content_type = req.content_type.unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let content = &request_body["content"];
    let schema = content
        .get(&media_type)
        .map(|c| &c["schema"])
        .ok_or_else(|| {
            format!(
                "content type [{media_type}] is not accepted (the document allows {})",
                keys(content)
            )
        })?;
    let instance = match media_type.as_str() {
        "application/json" => serde_json::from_slice::<Value>(req.body)
            .map_err(|e| format!("body is not valid JSON: {e}"))?,
        "multipart/form-data" => multipart_instance(doc, schema, content_type, req.body)?,
        other => return Err(format!("cannot check a body of type {other}")),
    };
    validate(schema, &instance).map_err(|e| format!("body: {e}"))
}

/// A multipart body as a JSON object: text fields typed by the schema, file parts as strings.
fn multipart_instance(
    doc: &Value,
    schema: &Value,
    content_type: &str,
    body: &[u8],
) -> Result<Value, String> {
    let parts = parse_multipart(content_type, body)?;
    let schema = resolve(doc, schema);
    let mut object = Map::new();
    for part in parts {
        let property = &schema["properties"][part.name.as_str()];
        let value = if part.filename.is_some() {
            Value::String(String::new())
        } else {
            let text = String::from_utf8_lossy(&part.data).into_owned();
            query_value(doc, property, &text)
        };
        object.insert(part.name, value);
    }
    Ok(Value::Object(object))
}

/// Turn a query string value into the JSON value its schema expects
/// (`style: form, explode: false` arrays are comma-separated).
fn query_value(doc: &Value, schema: &Value, raw: &str) -> Value {
    let schema = resolve(doc, schema);
    match schema["type"].as_str() {
        Some("array") => Value::Array(
            raw.split(',')
                .map(|item| query_value(doc, &schema["items"], item))
                .collect(),
        ),
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Some("number") => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        _ => Value::String(raw.to_owned()),
    }
}

/// The OAuth endpoints, checked against the parameters X's docs require.
fn check_oauth_endpoint(req: &RequestView<'_>) -> Option<Result<(), String>> {
    let form = || -> Result<HashMap<String, String>, String> {
        let ct = req.content_type.unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(format!(
                "expected an application/x-www-form-urlencoded body, got [{ct}]"
            ));
        }
        Ok(super::auth::form_pairs(req.body).into_iter().collect())
    };
    let require = |params: &HashMap<String, String>, names: &[&str]| -> Result<(), String> {
        match names
            .iter()
            .find(|n| params.get(**n).is_none_or(|v| v.is_empty()))
        {
            Some(n) => Err(format!("required parameter [{n}] is missing")),
            None => Ok(()),
        }
    };
    let oauth1_signed = || match req.authorization_scheme {
        Some(s) if s.eq_ignore_ascii_case("OAuth") => Ok(()),
        _ => Err("expected an OAuth 1.0a Authorization header".to_owned()),
    };
    let result = match (req.method, req.path) {
        ("POST", "/2/oauth2/token") => form().and_then(|p| {
            const ALLOWED: &[&str] = &[
                "grant_type",
                "code",
                "redirect_uri",
                "code_verifier",
                "client_id",
                "refresh_token",
                "scope",
            ];
            if let Some(unknown) = p.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
                return Err(format!("unknown token parameter [{unknown}]"));
            }
            match p.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    require(&p, &["code", "redirect_uri", "code_verifier"])
                }
                Some("refresh_token") => require(&p, &["refresh_token"]),
                Some(other) => Err(format!("unsupported grant_type [{other}]")),
                None => Err("required parameter [grant_type] is missing".to_owned()),
            }
        }),
        ("POST", "/2/oauth2/revoke") => form().and_then(|p| require(&p, &["token"])),
        ("GET", "/i/oauth2/authorize") => {
            let p: HashMap<String, String> = req.query.iter().cloned().collect();
            require(
                &p,
                &[
                    "response_type",
                    "client_id",
                    "redirect_uri",
                    "scope",
                    "state",
                    "code_challenge",
                    "code_challenge_method",
                ],
            )
            .and_then(|()| match p["code_challenge_method"].as_str() {
                "S256" | "plain" => Ok(()),
                other => Err(format!(
                    "code_challenge_method [{other}] is not S256 or plain"
                )),
            })
            .and_then(|()| match p["response_type"].as_str() {
                "code" => Ok(()),
                other => Err(format!("response_type [{other}] is not code")),
            })
        }
        ("POST", "/i/oauth2/authorize") | ("POST", "/oauth/authorize") => Ok(()),
        ("GET", "/oauth/authorize") | ("GET", "/oauth/authenticate") => {
            let p: HashMap<String, String> = req.query.iter().cloned().collect();
            require(&p, &["oauth_token"])
        }
        ("POST", "/oauth/request_token") | ("POST", "/oauth/access_token") => oauth1_signed(),
        (_, path)
            if path.starts_with("/oauth/")
                || path.starts_with("/2/oauth2/")
                || path.starts_with("/i/oauth2/") =>
        {
            Err("method not allowed on this OAuth endpoint".to_owned())
        }
        _ => return None,
    };
    Some(result)
}

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::from_str(DOCUMENT).expect("the bundled OpenAPI document is valid JSON")
    })
}

/// The template matching `path` (literal segments beat `{params}`), and the parameter values.
fn find_path(doc: &Value, path: &str) -> Option<(String, HashMap<String, String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(usize, String, HashMap<String, String>)> = None;
    for template in doc["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let mut params = HashMap::new();
        let matched = parts.iter().zip(&segments).all(|(t, s)| {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                let decoded = percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned();
                params.insert(name.to_owned(), decoded);
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if matched && best.as_ref().is_none_or(|(l, _, _)| literal > *l) {
            best = Some((literal, template.clone(), params));
        }
    }
    best.map(|(_, t, p)| (t, p))
}

/// Follow a local `$ref` (one hop at a time until a non-reference).
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(pointer) = value.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match pointer.strip_prefix('#').and_then(|p| doc.pointer(p)) {
            Some(target) => value = target,
            None => break,
        }
    }
    value
}

/// The schema the document gives `tweet.fields` where it still uses that name
/// (the streaming endpoints): the classic list, with `author_id`,
/// `in_reply_to_user_id` and `referenced_tweets`.
fn documented_tweet_fields(doc: &Value) -> Option<&Value> {
    doc["paths"].as_object()?.values().find_map(|item| {
        item.as_object()?.values().find_map(|op| {
            op.get("parameters")?
                .as_array()?
                .iter()
                .find(|p| p["name"] == "tweet.fields")
                .map(|p| &p["schema"])
        })
    })
}

fn keys(object: &Value) -> String {
    object
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Validate `instance` against `schema`, resolving references inside the document.
fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = compiled(schema)?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{e} (at {at})")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn compiled(schema: &Value) -> Result<Arc<Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        other => return Err(format!("unsupported schema {other}")),
    };
    root.insert("components".into(), document()["components"].clone());
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&Value::Object(root))
        .map_err(|e| format!("schema does not compile: {e}"))?;
    let validator = Arc::new(validator);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, validator.clone());
    Ok(validator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> RecordedRequest {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        RecordedRequest {
            seq: 0,
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), "Bearer".into()),
            ],
            body,
            body_truncated: false,
            status: Some(200),
        }
    }

    #[test]
    fn a_valid_post_create_passes() {
        let req = request(
            "POST",
            "/2/tweets",
            &[],
            Some(json!({"text": "hello", "reply": {"in_reply_to_tweet_id": "1234567890"}})),
        );
        check_request_against_spec(&req).unwrap();
        let media = request(
            "POST",
            "/2/tweets",
            &[],
            Some(json!({"text": "", "media": {"media_ids": ["1"]}})),
        );
        check_request_against_spec(&media).unwrap();
    }

    #[test]
    fn an_unknown_field_fails() {
        let req = request(
            "POST",
            "/2/tweets",
            &[],
            Some(json!({"text": "hi", "colour": "red"})),
        );
        let err = check_request_against_spec(&req).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_wrong_type_fails() {
        let req = request("POST", "/2/tweets", &[], Some(json!({"text": 42})));
        assert!(check_request_against_spec(&req).is_err());
        let nested = request(
            "POST",
            "/2/tweets",
            &[],
            Some(json!({"text": "x", "quote_tweet_id": "abc"})),
        );
        assert!(check_request_against_spec(&nested).is_err());
        let too_many = request(
            "POST",
            "/2/tweets",
            &[],
            Some(json!({"text": "x", "media": {"media_ids": ["1", "2", "3", "4", "5"]}})),
        );
        assert!(check_request_against_spec(&too_many).is_err());
    }

    #[test]
    fn query_parameters_are_typed_and_known() {
        let ok = request(
            "GET",
            "/2/tweets/search/recent",
            &[
                ("query", "from:me"),
                ("max_results", "10"),
                ("tweet.fields", "created_at,author_id"),
            ],
            None,
        );
        check_request_against_spec(&ok).unwrap();
        let low = request(
            "GET",
            "/2/tweets/search/recent",
            &[("query", "x"), ("max_results", "5")],
            None,
        );
        assert!(check_request_against_spec(&low).is_err());
        let unknown = request(
            "GET",
            "/2/tweets/search/recent",
            &[("query", "x"), ("colour", "red")],
            None,
        );
        assert!(
            check_request_against_spec(&unknown)
                .unwrap_err()
                .contains("colour")
        );
        let missing = request("GET", "/2/tweets/search/recent", &[], None);
        assert!(check_request_against_spec(&missing).is_err());
        let bad_field = request("GET", "/2/users/me", &[("user.fields", "shoe_size")], None);
        assert!(check_request_against_spec(&bad_field).is_err());
    }

    #[test]
    fn path_templates_and_methods() {
        check_request_against_spec(&request("GET", "/2/users/me", &[], None)).unwrap();
        check_request_against_spec(&request("DELETE", "/2/tweets/123", &[], None)).unwrap();
        assert!(
            check_request_against_spec(&request("DELETE", "/2/tweets/abc", &[], None)).is_err()
        );
        assert!(check_request_against_spec(&request("PATCH", "/2/tweets/123", &[], None)).is_err());
        assert!(check_request_against_spec(&request("GET", "/2/nothing/here", &[], None)).is_err());
        let status = request(
            "GET",
            "/2/media/upload",
            &[("command", "STATUS"), ("media_id", "77")],
            None,
        );
        check_request_against_spec(&status).unwrap();
    }

    #[test]
    fn multipart_append_is_checked() {
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"segment_index\"\r\n\r\n0\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"blob\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--{boundary}--\r\n"
        );
        let mut req = request("POST", "/2/media/upload/123/append", &[], None);
        req.headers[0].1 = format!("multipart/form-data; boundary={boundary}");
        req.body = body.clone().into_bytes();
        check_request_against_spec(&req).unwrap();
        req.body = body.replace("segment_index", "segment").into_bytes();
        assert!(check_request_against_spec(&req).is_err());
    }

    #[test]
    fn oauth_endpoints_get_built_in_checks() {
        let mut token = request("POST", "/2/oauth2/token", &[], None);
        token.headers[0].1 = "application/x-www-form-urlencoded".into();
        token.body = b"grant_type=refresh_token&refresh_token=abc&client_id=x".to_vec();
        check_request_against_spec(&token).unwrap();
        token.body = b"grant_type=authorization_code&code=abc".to_vec();
        assert!(check_request_against_spec(&token).is_err());
    }
}
