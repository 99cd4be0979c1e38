//! `switchboard demo`: the daemon on a throwaway SQLite database, with sample
//! connections and a few jobs, so everything can be tried with no account.

use std::path::PathBuf;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use switchboard_runtime::{NewConnection, SubmitJob};
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
    let echo =
        match existing
            .into_iter()
            .find(|c| c.connection.label == "demo-echo")
        {
            Some(c) => c,
            None => engine
                .create_connection(NewConnection {
                    connector: "echo".into(),
                    label: "demo-echo".into(),
                    enabled: true,
                    settings: json!({ "greeting": "hello from the demo:", "heartbeat_ms": 15000 }),
                    secrets: [("token".to_owned(), SecretString::from("demo-secret-token"))].into(),
                })
                .await?,
        };
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
  switchboard jobs list
  switchboard events tail

  curl -s -H "Authorization: Bearer $SWITCHBOARD_TOKEN" {url}/api/v1/connections
  curl -s {url}/api/v1/openapi.json

Press Ctrl-C to stop.
demo ready"#,
        data_dir = settings.data_dir.display(),
        token = token.expose_secret(),
    );
    daemon::stop_signal().await;
    running.stop().await;
    Ok(())
}
