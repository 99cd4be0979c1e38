//! A small client of the REST API for the CLI verbs. Problem+json answers
//! become errors that name the status, the detail and the fields at fault.

use anyhow::{Context, bail};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::output::escape;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default(); // no bundled TLS provider: ring, once
        Ok(Client {
            http: reqwest::Client::builder().build()?,
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            token,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let token = self.token.as_ref().context(
            "no API token: pass --token or set SWITCHBOARD_TOKEN (the daemon prints the admin token at first start)",
        )?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(serde_json::from_value(Value::Null)?);
            }
            return response
                .json()
                .await
                .context("the daemon sent an unreadable answer");
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let detail = escape(body["detail"].as_str().unwrap_or("no detail"));
        let mut message = format!("{status}: {detail}");
        if let Some(errors) = body["errors"].as_array() {
            for e in errors {
                message.push_str(&format!(
                    "\n  - {}: {}",
                    escape(e["field"].as_str().unwrap_or("?")),
                    escape(e["message"].as_str().unwrap_or(""))
                ));
            }
        }
        bail!(message)
    }

    /// The id of the connection `wanted` names: its id, or its label. The one
    /// place where the CLI turns a label into an id (a label can never look
    /// like an id: the daemon refuses such labels).
    pub async fn connection_id(&self, wanted: &str) -> anyhow::Result<String> {
        let known: Vec<Value> = self.get("/connections").await?;
        find_connection(&known, wanted)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(reqwest::Method::GET, path)?).await
    }

    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.send(self.request(reqwest::Method::GET, path)?.query(query))
            .await
    }

    /// GET a text answer (a CSV export) as it is.
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        let response = self
            .request(reqwest::Method::GET, path)?
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        if response.status().is_success() {
            return response
                .text()
                .await
                .context("the daemon sent an unreadable answer");
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        bail!(
            "{status}: {}",
            escape(body["detail"].as_str().unwrap_or("no detail"))
        )
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.request(reqwest::Method::POST, path)?.json(body))
            .await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.request(reqwest::Method::PUT, path)?.json(body))
            .await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.request(reqwest::Method::PATCH, path)?.json(body))
            .await
    }

    /// POST a raw body (a file, streamed) with its length.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        length: u64,
        body: reqwest::Body,
    ) -> anyhow::Result<T> {
        self.send(
            self.request(reqwest::Method::POST, path)?
                .query(query)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, length)
                .body(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let _: Value = self
            .send(self.request(reqwest::Method::DELETE, path)?)
            .await?;
        Ok(())
    }

    /// Open a Server-Sent Events stream.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<impl Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + use<>>
    {
        let response = self
            .request(reqwest::Method::GET, path)?
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!(
                "{status}: {}",
                escape(body["detail"].as_str().unwrap_or("no detail"))
            );
        }
        Ok(response.bytes_stream().eventsource().boxed())
    }
}

/// Find `wanted` among `known` connections by id, else by label (which must
/// name exactly one).
pub fn find_connection(known: &[Value], wanted: &str) -> anyhow::Result<String> {
    let wanted = wanted.trim();
    if let Some(found) = known.iter().find(|c| c["id"] == wanted) {
        return Ok(found["id"].as_str().unwrap_or_default().to_owned());
    }
    let by_label: Vec<&Value> = known.iter().filter(|c| c["label"] == wanted).collect();
    match by_label.as_slice() {
        [one] => Ok(one["id"].as_str().unwrap_or_default().to_owned()),
        [] => bail!(
            "no connection with id or label `{}`; see `switchboard connections list`",
            escape(wanted)
        ),
        many => bail!(
            "{} connections are labelled `{}`; name the one you mean by its id (see `switchboard connections list`)",
            many.len(),
            escape(wanted)
        ),
    }
}
