//! `switchboard demo`: the daemon on a throwaway SQLite database, with sample
//! connections and a few jobs, so everything can be tried with no account.

use std::path::PathBuf;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use switchboard_runtime::{NewConnection, SubmitJob, UpdateConnection};
use switchboard_sim::obs::{ObsSim, ObsSimConfig};
use switchboard_sim::twitch::{TwitchSim, TwitchSimConfig};
use switchboard_sim::x::{XSim, XSimConfig};
use switchboard_store::TokenRole;

use crate::config::Config;
use crate::daemon;

/// The demo hook's secret and a body the printed curl line sends, signed.
const DEMO_HOOK_SECRET: &str = "demo-hook-secret";
const DEMO_HOOK_BODY: &str = r#"{"hello":"webhook"}"#;

pub async fn run(mut config: Config, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    config.data_dir = match data_dir {
        Some(dir) => {
            // A dir that does not exist yet is created (mode 0700), as `serve` does.
            daemon::prepare_data_dir(&dir)?;
            dir
        }
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
    // The simulated Twitch: OAuth, Helix, chat over IRC/WebSocket and
    // EventSub on loopback, with scripted chatters, follows, subs and raids.
    let twitch_sim = TwitchSim::start(TwitchSimConfig::default())
        .await
        .context("cannot start the Twitch simulator")?;
    for (key, url) in [
        ("twitch_id", twitch_sim.base_url().to_owned()),
        ("twitch_helix", twitch_sim.helix_url()),
        ("twitch_irc", twitch_sim.irc_url()),
        ("twitch_eventsub", twitch_sim.eventsub_url()),
    ] {
        config.services.insert(key.into(), url);
    }
    // The simulated OBS Studio: obs-websocket v5 on loopback, with a password.
    let obs_sim = ObsSim::start(ObsSimConfig {
        password: Some(DEMO_OBS_PASSWORD.into()),
        ..ObsSimConfig::default()
    })
    .await
    .context("cannot start the OBS simulator")?;
    // Sample rules, watched: edit the file while the demo runs. They name
    // the demo's connections, so on a first run the file is written once
    // those exist (below); written now, the daemon would start by reporting
    // every sample rule invalid (two ERROR lines) before the demo fixed it.
    let rules_file = config.data_dir.join("rules.yaml");
    let write_sample_rules = !rules_file.exists();
    config.rules.file = Some(rules_file.clone());
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
    let x_friend = find_or_create(
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
    // Twitch: the streamer's account with a token pair as the Twitch CLI
    // mints them (pasted, no browser needed); `connections connect` runs
    // the OAuth flow instead.
    let twitch = find_or_create(
        "demo-twitch",
        NewConnection {
            connector: "twitch".into(),
            label: "demo-twitch".into(),
            enabled: true,
            settings: json!({ "client_id": "sim-twitch-client" }),
            secrets: secrets(&[
                ("client_secret", "sim-twitch-secret"),
                ("access_token", "sim-demo-twitch-access"),
                ("refresh_token", "sim-demo-twitch-refresh"),
            ]),
        },
    )
    .await?;
    twitch_sim.start_demo_script();
    // The machine: a schedule every minute and a watched folder; and a
    // webhook signed GitHub-style (HMAC-SHA256).
    let inbox = settings.data_dir.join("inbox");
    std::fs::create_dir_all(&inbox).context("cannot create the demo inbox")?;
    find_or_create(
        "demo-system",
        NewConnection {
            connector: "system".into(),
            label: "demo-system".into(),
            enabled: true,
            settings: json!({
                "schedules": [{ "name": "every-minute", "cron": "* * * * *" }],
                "watches": [{ "name": "inbox", "path": inbox.to_string_lossy() }],
                "http_allow": ["127.0.0.1"]
            }),
            secrets: Default::default(),
        },
    )
    .await?;
    find_or_create(
        "demo-hook",
        NewConnection {
            connector: "webhook".into(),
            label: "demo-hook".into(),
            enabled: true,
            settings: json!({ "name": "demo", "auth": "hmac_sha256" }),
            secrets: secrets(&[("secret", DEMO_HOOK_SECRET)]),
        },
    )
    .await?;
    // OBS: host and port are settings; the simulator's port changes per run.
    let obs_settings = json!({ "host": "127.0.0.1", "port": obs_sim.port() });
    let obs = find_or_create(
        "demo-obs",
        NewConnection {
            connector: "obs".into(),
            label: "demo-obs".into(),
            enabled: true,
            settings: obs_settings.clone(),
            secrets: secrets(&[("password", DEMO_OBS_PASSWORD)]),
        },
    )
    .await?;
    if obs.connection.settings != obs_settings {
        engine
            .update_connection(
                &obs.connection.id,
                UpdateConnection {
                    settings: Some(obs_settings),
                    ..UpdateConnection::default()
                },
            )
            .await?;
    }
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
    // The sample rules name the connections created above.
    if write_sample_rules {
        std::fs::write(&rules_file, SAMPLE_RULES).context("cannot write the sample rules")?;
    }
    engine
        .reload_rules_file()
        .await
        .context("the sample rules do not load")?;
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
dashboard: open {login_link} to sign in (one-time link, valid 10 minutes)

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

Rules ({rules_file}, watched: edit it and save):
  a mention of @switchboard_demo that says "switchboard" gets a reply. Try:
  switchboard jobs submit {friend_id} x.post --params '{{"text":"hey @switchboard_demo, switchboard works"}}'
  switchboard rules runs     # within ~15 s (the mention poll interval)

OBS (simulated at {obs_url}): switch scenes, watch obs.scene.changed:
  switchboard jobs submit {obs_id} obs.set_scene --params '{{"scene":"Live"}}'
  switchboard jobs submit {obs_id} obs.list_scenes --params '{{"include_sources":true}}'
  switchboard events tail --type obs.

The X simulator runs at {x_url}. Connect the OAuth 2.0 account by opening
this link and pressing "Authorize app" (it goes live at once, no restart):
  {authorize_url}

Twitch (simulated at {twitch_url}): scripted chatters talk in #simstreamer,
and a follow, a sub and a raid arrive early on. Say `!hello` for a reply:
  switchboard events tail --type twitch.
  switchboard jobs submit {twitch_id} twitch.send_chat --params '{{"text":"hello chat"}}'
  switchboard jobs submit {twitch_id} twitch.update_channel --params '{{"title":"Live from the demo","category":"Just Chatting"}}'
  switchboard jobs submit {twitch_id} twitch.create_clip
  switchboard archive demo-twitch followers        # subscriptions, raids, cheers; --csv

System and webhooks: cron.fired every minute; drop a file into {inbox} for
file.created; send a signed webhook (HMAC-SHA256 of the body, GitHub style):
  curl -s -X POST {url}/hooks/demo -H 'X-Hub-Signature-256: {hook_signature}' -d '{hook_body}'
  switchboard events tail --type webhook.

  curl -s -H "Authorization: Bearer $SWITCHBOARD_TOKEN" {url}/api/v1/connections
  curl -s {url}/api/v1/openapi.json

Press Ctrl-C to stop.
demo ready"#,
        data_dir = settings.data_dir.display(),
        login_link = running.dashboard.login_link(),
        token = token.expose_secret(),
        x_id = x_demo.connection.id,
        x_url = x_sim.base_url(),
        obs_id = obs.connection.id,
        twitch_id = twitch.connection.id,
        twitch_url = twitch_sim.base_url(),
        obs_url = obs_sim.url(),
        friend_id = x_friend.connection.id,
        rules_file = rules_file.display(),
        authorize_url = authorize.authorize_url,
        inbox = inbox.display(),
        hook_body = DEMO_HOOK_BODY,
        hook_signature = switchboard_connector_system::auth::sign_hmac_sha256(
            DEMO_HOOK_SECRET.as_bytes(),
            DEMO_HOOK_BODY.as_bytes()
        ),
    );
    daemon::stop_signal().await;
    running.stop().await;
    x_sim.stop().await;
    obs_sim.stop().await;
    twitch_sim.stop().await;
    Ok(())
}

/// The simulated OBS's websocket password (a demo value, not a secret).
const DEMO_OBS_PASSWORD: &str = "demo-obs-password";

/// The demo's rules file.
const SAMPLE_RULES: &str = r#"# switchboard rules: edit and save, the daemon reloads within a second.
rules:
  - name: reply-to-mentions
    on: { event: x.mention, connection: demo-x }
    if: "'switchboard' in (event.payload.text | lower)"
    do:
      - action: x.post
        connection: demo-x
        params:
          text: "Thanks for the mention! (reply #{{ vars.mention_replies }})"
          reply_to: "{{ event.payload.id }}"
    cooldown: { secs: 30, key: "{{ event.payload.author_id }}" }
    set:
      mention_replies: "{{ (vars.mention_replies or 0) + 1 }}"
  - name: hello-chat
    on: { event: twitch.chat.message, connection: demo-twitch }
    if: "event.payload.text is startingwith('!hello')"
    do:
      - action: twitch.send_chat
        connection: demo-twitch
        params:
          text: "Hi {{ event.payload.display_name }}, welcome in!"
          reply_to: "{{ event.payload.id }}"
    cooldown: { secs: 10, key: "{{ event.payload.user_id }}" }
  - name: thank-raiders
    on: { event: twitch.raid, connection: demo-twitch }
    do:
      - action: twitch.send_chat
        connection: demo-twitch
        params:
          text: "Thanks for the raid, {{ event.payload.from_broadcaster_user_name }} and {{ event.payload.viewers }} friends!"
      - action: twitch.shoutout
        connection: demo-twitch
        params: { to: "{{ event.payload.from_broadcaster_user_login }}" }
"#;
