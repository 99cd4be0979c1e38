//! The generic actions: `system.http_request`, `system.log`, `system.delay`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::ActionError;

use crate::client::{Allowlist, own_listeners};

/// The most of an answer's body kept in the result.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRequest {
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    json: Option<Value>,
    timeout_ms: Option<u64>,
}

fn invalid(field: &str, message: impl Into<String>) -> ActionError {
    ActionError::InvalidParams {
        field: field.into(),
        message: message.into(),
    }
}

/// The checks a schema cannot make, run before a job exists: a URL that
/// parses with a host, headers that are headers, one body at most.
pub(crate) fn check_http_request(params: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    match params["url"].as_str().map(url::Url::parse) {
        Some(Ok(url)) if url.host_str().is_none_or(str::is_empty) => {
            errors.push(("url".into(), "the URL has no host".into()))
        }
        Some(Ok(url)) if !url.username().is_empty() || url.password().is_some() => errors.push((
            "url".into(),
            "put credentials in `headers` (Authorization), not in the URL".into(),
        )),
        Some(Ok(_)) | None => {}
        Some(Err(e)) => errors.push(("url".into(), format!("not a URL: {e}"))),
    }
    if let Some(headers) = params["headers"].as_object() {
        for (name, value) in headers {
            let field = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push((field, "not a valid header name".into()));
            } else if name.eq_ignore_ascii_case("host") {
                errors.push((field, "the Host header comes from the URL".into()));
            } else if value
                .as_str()
                .is_some_and(|v| reqwest::header::HeaderValue::from_str(v).is_err())
            {
                errors.push((field, "not a valid header value (no line breaks)".into()));
            }
        }
    }
    if params.get("body").is_some() && params.get("json").is_some() {
        errors.push(("json".into(), "give `body` or `json`, not both".into()));
    }
    errors
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let mime = t.split(';').next().unwrap_or("").trim();
        mime == "application/json" || mime.ends_with("+json")
    })
}

/// Resolve the URL's host and check every address against the allowlist.
async fn resolve_checked(
    allow: &Allowlist,
    url: &url::Url,
) -> Result<(String, Vec<SocketAddr>), ActionError> {
    let host = url
        .host_str()
        .ok_or_else(|| invalid("params.url", "the URL has no host"))?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("params.url", "the URL has no port"))?;
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| ActionError::transient(format!("cannot resolve `{bare}`: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ActionError::transient(format!(
            "`{bare}` resolves to no address"
        )));
    }
    let own = own_listeners();
    for addr in &addrs {
        allow
            .check(&bare, addr.ip(), port, &own)
            .map_err(|message| invalid("params.url", message))?;
    }
    Ok((bare, addrs))
}

pub(crate) async fn http_request(allow: &Allowlist, params: &Value) -> Result<Value, ActionError> {
    let request: HttpRequest =
        serde_json::from_value(params.clone()).map_err(|e| invalid("params", e.to_string()))?;
    let url = url::Url::parse(&request.url)
        .map_err(|e| invalid("params.url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("params.url", "only http and https URLs"));
    }
    let (host, addrs) = resolve_checked(allow, &url).await?;
    let timeout = Duration::from_millis(request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
    // One client per request, pinned to the addresses just checked: no
    // second lookup, no redirect to somewhere unchecked, no proxy.
    let _ = rustls::crypto::ring::default_provider().install_default(); // no bundled TLS provider: ring, once
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)));
    if host.parse::<IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(&host, &addrs);
    }
    let client = builder
        .build()
        .map_err(|e| ActionError::Permanent(format!("cannot build an HTTP client: {e}")))?;
    let method = request.method.as_deref().unwrap_or("GET");
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| invalid("params.method", format!("`{method}` is not a method")))?;
    let mut call = client.request(method, url.clone());
    for (name, value) in &request.headers {
        call = call.header(name.as_str(), value.as_str());
    }
    if let Some(json) = &request.json {
        call = call.json(json);
    } else if let Some(body) = request.body {
        call = call.body(body);
    }
    let response = call.send().await.map_err(|e| {
        // reqwest's errors name the URL, never headers: no secret leaks here.
        ActionError::transient(format!("the request failed: {e}"))
    })?;
    let status = response.status();
    let mut headers = serde_json::Map::new();
    for (name, value) in response.headers() {
        if let Ok(value) = value.to_str() {
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    if let Value::String(s) = v {
                        s.push_str(", ");
                        s.push_str(value);
                    }
                })
                .or_insert_with(|| json!(value));
        }
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    let mut truncated = false;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ActionError::transient(format!("the answer broke off: {e}")))?;
        let room = MAX_RESPONSE_BYTES - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if is_json(content_type.as_deref()) && !truncated {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(text.clone()))
    } else {
        Value::String(text.clone())
    };
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        return Err(ActionError::Transient {
            message: format!("{url} answered HTTP {code}"),
            retry_after,
        });
    }
    if status.is_client_error() {
        let snippet: String = text.chars().take(300).collect();
        return Err(ActionError::Permanent(format!(
            "{url} answered HTTP {code}: {snippet}"
        )));
    }
    Ok(json!({
        "status": code,
        "headers": headers,
        "body": body,
        "truncated": truncated,
    }))
}

pub(crate) fn log(connection_id: &str, params: &Value) -> Result<Value, ActionError> {
    let message = params["message"].as_str().unwrap_or_default();
    match params["level"].as_str().unwrap_or("info") {
        "debug" => tracing::debug!(connection = %connection_id, "{message}"),
        "warn" => tracing::warn!(connection = %connection_id, "{message}"),
        "error" => tracing::error!(connection = %connection_id, "{message}"),
        _ => tracing::info!(connection = %connection_id, "{message}"),
    }
    Ok(json!({ "logged": true }))
}

pub(crate) async fn delay(params: &Value) -> Result<Value, ActionError> {
    let ms = params["ms"]
        .as_u64()
        .ok_or_else(|| invalid("params.ms", "give a number of milliseconds"))?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({ "waited_ms": ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(params: Value) -> Vec<String> {
        check_http_request(&params)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn request_params_are_checked_before_a_job_exists() {
        assert!(fields(json!({"url": "https://example.com/x"})).is_empty());
        assert_eq!(fields(json!({"url": "http://"})), ["url"]);
        assert_eq!(fields(json!({"url": "https://u:p@example.com"})), ["url"]);
        assert_eq!(
            fields(json!({"url": "https://example.com", "body": "a", "json": {}})),
            ["json"]
        );
        assert_eq!(
            fields(
                json!({"url": "https://example.com", "headers": {"Host": "x", "bad header": "y", "X-Ok": "line\nbreak"}})
            ),
            ["headers.Host", "headers.X-Ok", "headers.bad header"]
        );
    }

    #[tokio::test]
    async fn refused_destinations_make_no_request() {
        let allow = Allowlist::parse(&["*".to_owned()]).unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://127.0.0.1:1/",
            "http://0.0.0.0:80/",
        ] {
            let error = http_request(&allow, &json!({ "url": url }))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, ActionError::InvalidParams { field, .. } if field == "params.url"),
                "{url}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_daemons_own_port_is_refused_even_on_an_allowed_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let allow = Allowlist::parse(&["127.0.0.1".to_owned()]).unwrap();
        let error = http_request(&allow, &json!({ "url": format!("http://{addr}/") }))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("this daemon itself"), "{error}");
    }
}
