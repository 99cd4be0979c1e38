//! `switchboard demo`: the daemon on a throwaway SQLite database, with sample
//! connections and a few jobs, so everything can be tried with no account.

use std::path::PathBuf;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use switchboard_runtime::{NewConnection, SubmitJob};
use switchboard_sim::x::{XSim, XSimConfig};
use switchboard_store::TokenRole;

use crate::config::Config;
use crate::daemon;

pub async fn run(mut config: Config, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    config.data_dir = match data_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new()
                .prefix("switchboard-demo-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    config.database_url = None;
    // The simulated X: real wire protocol on loopback, with a consent page a
    // person can click through.
    let x_sim = XSim::start(XSimConfig::default())
        .await
        .context("cannot start the X simulator")?;
    config
        .services
        .insert("x_api".into(), x_sim.base_url().to_owned());
    config.services.insert(
        "x_authorize".into(),
        format!("{}/i/oauth2/authorize", x_sim.base_url()),
    );
    let settings = config.resolve()?;
    daemon::init_logging(&settings.log_format);
    let running = daemon::start(&settings).await?;
    let engine = running.engine.clone();
    let token = match &running.new_admin_token {
        Some(token) => token.clone(),
        None => switchboard_api::auth::create_token(engine.store(), "demo", TokenRole::Admin)
            .await
            .context("cannot create a demo token")?,
    };

    let existing = engine.list_connections().await?;
    let find_or_create = |label: &'static str, new: NewConnection| {
        let engine = engine.clone();
        let found = existing
            .iter()
            .find(|c| c.connection.label == label)
            .cloned();
        async move {
            match found {
                Some(c) => Ok::<_, anyhow::Error>(c),
                None => Ok(engine.create_connection(new).await?),
            }
        }
    };
    let secrets = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
            .collect()
    };
    let echo = find_or_create(
        "demo-echo",
        NewConnection {
            connector: "echo".into(),
            label: "demo-echo".into(),
            enabled: true,
            settings: json!({ "greeting": "hello from the demo:", "heartbeat_ms": 15000 }),
            secrets: secrets(&[("token", "demo-secret-token")]),
        },
    )
    .await?;
    // Two X accounts entered directly (OAuth 1.0a), so "post to every
    // account" has somewhere to go at once; mentions are watched on the first.
    let x_demo = find_or_create(
        "demo-x",
        NewConnection {
            connector: "x".into(),
            label: "demo-x".into(),
            enabled: true,
            settings: json!({ "auth": "oauth1", "mentions": { "enabled": true, "interval_secs": 15 } }),
            secrets: secrets(&[
                ("api_key", "sim-consumer-key"),
                ("api_secret", "sim-consumer-secret"),
                ("access_token", "sim-demo-oauth1-token"),
                ("access_token_secret", "sim-demo-oauth1-secret"),
            ]),
        },
    )
    .await?;
    find_or_create(
        "demo-x-friend",
        NewConnection {
            connector: "x".into(),
            label: "demo-x-friend".into(),
            enabled: true,
            settings: json!({ "auth": "oauth1" }),
            secrets: secrets(&[
                ("api_key", "sim-consumer-key"),
                ("api_secret", "sim-consumer-secret"),
                ("access_token", "sim-friend-oauth1-token"),
                ("access_token_secret", "sim-friend-oauth1-secret"),
            ]),
        },
    )
    .await?;
    // One more that goes through the OAuth 2.0 consent page.
    let x_oauth2 = find_or_create(
        "demo-x-oauth2",
        NewConnection {
            connector: "x".into(),
            label: "demo-x-oauth2".into(),
            enabled: true,
            settings: json!({ "auth": "oauth2", "client_id": "sim-client-id" }),
            secrets: secrets(&[("oauth2_client_secret", "sim-client-secret")]),
        },
    )
    .await?;
    let id = echo.connection.id.clone();
    for n in 1..=3 {
        engine
            .submit_job(SubmitJob {
                connection_id: id.clone(),
                action: "echo.say".into(),
                params: json!({ "message": format!("sample job {n}") }),
                idempotency_key: None,
                max_attempts: None,
            })
            .await?;
    }
    engine
        .submit_job(SubmitJob {
            connection_id: x_demo.connection.id.clone(),
            action: "x.post".into(),
            params: json!({ "text": "hello from the switchboard demo" }),
            idempotency_key: Some("demo-first-post".into()),
            max_attempts: None,
        })
        .await?;
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", running.addr));
    let authorize = engine
        .begin_authorization(&x_oauth2.connection.id, &public_url)
        .await?;

    let url = format!("http://{}", running.addr);
    println!(
        r#"
switchboard demo is running at {url}
  data dir:   {data_dir} (throwaway unless --data-dir was given)
  token:      {token}

Try it (in another terminal):
  export SWITCHBOARD_URL={url} SWITCHBOARD_TOKEN={token}
  switchboard connections list
  switchboard jobs submit {id} echo.say --params '{{"message":"hi"}}'
  switchboard jobs submit {x_id} x.post --params '{{"text":"hi from the CLI"}}'
  switchboard jobs list
  switchboard events tail

The X simulator runs at {x_url}. Connect the OAuth 2.0 account by opening
this link and pressing "Authorize app" (it goes live at once, no restart):
  {authorize_url}

  curl -s -H "Authorization: Bearer $SWITCHBOARD_TOKEN" {url}/api/v1/connections
  curl -s {url}/api/v1/openapi.json

Press Ctrl-C to stop.
demo ready"#,
        data_dir = settings.data_dir.display(),
        token = token.expose_secret(),
        x_id = x_demo.connection.id,
        x_url = x_sim.base_url(),
        authorize_url = authorize.authorize_url,
    );
    daemon::stop_signal().await;
    running.stop().await;
    x_sim.stop().await;
    Ok(())
}
