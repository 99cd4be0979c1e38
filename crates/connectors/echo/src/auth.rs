//! The probe: the echo connector's stand-in for "check the credentials with
//! the service".

use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{ActionError, ConnectorError};

pub(crate) struct Probe {
    http: reqwest::Client,
    url: Option<String>,
    token: Option<SecretString>,
}

pub(crate) enum ProbeResult {
    Accepted(u16),
    Rejected(u16),
    Failed(String),
}

impl Probe {
    pub(crate) fn new(
        http: reqwest::Client,
        url: Option<String>,
        token: Option<SecretString>,
    ) -> Probe {
        Probe { http, url, token }
    }

    pub(crate) async fn call(&self) -> Option<ProbeResult> {
        let url = self.url.as_ref()?;
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        Some(match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => ProbeResult::Accepted(status),
                    401 | 403 => ProbeResult::Rejected(status),
                    other => ProbeResult::Failed(format!("probe answered HTTP {other}")),
                }
            }
            // reqwest errors carry the URL, never headers, so no token leaks here.
            Err(e) => ProbeResult::Failed(format!("probe unreachable: {e}")),
        })
    }

    /// Check the credentials at connect time.
    pub(crate) async fn check(&self) -> Result<(), ConnectorError> {
        match self.call().await {
            None | Some(ProbeResult::Accepted(_)) => Ok(()),
            Some(ProbeResult::Rejected(status)) => Err(ConnectorError::NeedsReauth(format!(
                "the probe answered HTTP {status} to the token"
            ))),
            Some(ProbeResult::Failed(message)) => Err(ConnectorError::Unavailable(message)),
        }
    }

    pub(crate) fn as_action_result(result: Option<ProbeResult>) -> Result<u16, ActionError> {
        match result {
            None => Err(ActionError::InvalidParams {
                field: "settings.probe_url".into(),
                message: "this connection has no probe_url".into(),
            }),
            Some(ProbeResult::Accepted(status)) => Ok(status),
            Some(ProbeResult::Rejected(status)) => Err(ActionError::NeedsReauth(format!(
                "the probe answered HTTP {status}"
            ))),
            Some(ProbeResult::Failed(message)) => Err(ActionError::transient(message)),
        }
    }
}
