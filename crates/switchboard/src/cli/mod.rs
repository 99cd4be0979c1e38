//! The command line: `serve` and `demo` run a daemon; the other verbs talk to
//! a running daemon over its REST API (`--url`, `--token`, or
//! `SWITCHBOARD_URL` / `SWITCHBOARD_TOKEN`). Human tables by default,
//! `--json` for scripts.

mod agents;
mod archive;
mod backup;
mod client;
mod media;
mod output;
mod rules;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_vault::{KeySource, MasterKey, Vault};

use crate::config::{Config, Settings};
use crate::daemon;
use client::Client;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Holds your connected accounts and makes them act.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Daemon to talk to.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_URL",
        default_value = "http://127.0.0.1:7700"
    )]
    url: String,
    /// API token (printed by the daemon at first start).
    #[arg(long, global = true, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(DaemonArgs),
    /// Run the daemon with sample connections on a throwaway SQLite database.
    Demo(DaemonArgs),
    /// Kinds of service this build can connect to.
    Connectors,
    /// Accounts and instances.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Durable action invocations.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Images and videos for actions to publish.
    #[command(subcommand)]
    Media(media::MediaCommand),
    /// Post on X from every enabled X account (or the ones named).
    Post(media::PostArgs),
    /// Automation: rules that turn events into jobs.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// The event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The secret store.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Tokens for AI agents, scoped to connections (used at /mcp).
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// The MCP server on stdin/stdout: relayed to the daemon at
    /// SWITCHBOARD_URL with SWITCHBOARD_TOKEN, or `--embedded`.
    Mcp(agents::McpArgs),
    /// What a connection kept as it arrived: Twitch followers,
    /// subscriptions, raids and cheers (`--csv` to export).
    Archive(archive::ArchiveArgs),
    /// Write a consistent backup of the data directory (database, media;
    /// the master key only with --with-key) while the daemon runs (SQLite).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new or empty data directory.
    Restore(backup::RestoreArgs),
}

#[derive(Debug, Args)]
struct DaemonArgs {
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ConnectionsCommand {
    /// List connections with their status.
    List,
    /// Add a connection.
    Add {
        /// Connector name, such as `echo`.
        connector: String,
        #[arg(long)]
        label: String,
        /// A setting, KEY=VALUE (VALUE is parsed as JSON when it can be). Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// A secret, NAME=SOURCE where SOURCE is `env:VAR`, `file:PATH` or `-` (stdin). Repeatable.
        #[arg(long = "secret", value_name = "NAME=SOURCE")]
        secrets: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Show one connection's status.
    #[command(visible_alias = "show")]
    Status {
        /// The connection's id or label.
        id: String,
    },
    /// Change settings (KEY=VALUE, VALUE parsed as JSON when it can be, `null`
    /// removes the key); merged into the current settings, checked whole by
    /// the daemon, and the connection restarts in place with them.
    Set {
        /// The connection's id or label.
        id: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
    },
    /// Run the connector's own check (X `users/me`, Twitch token validation,
    /// OBS `GetVersion`...) and print what the service said. Exits 1 when the
    /// check fails or the connection is not connected.
    Test {
        /// The connection's id or label.
        id: String,
    },
    /// Set or replace secrets (NAME=SOURCE as for `add`); the connection restarts with them.
    SetSecret {
        /// The connection's id or label.
        id: String,
        #[arg(value_name = "NAME=SOURCE", required = true)]
        secrets: Vec<String>,
    },
    /// Start the authorization flow (OAuth) of a connection: prints the link
    /// to open; the connection goes live the moment it is approved.
    Connect {
        /// The connection's id or label.
        id: String,
        /// Wait (up to 10 minutes) until the connection is connected.
        #[arg(long)]
        wait: bool,
    },
    /// Restart a connection's runtime.
    Restart {
        /// The connection's id or label.
        id: String,
    },
    /// Remove a connection with its secrets.
    Remove {
        /// The connection's id or label.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        /// Only this connection's jobs (id or label).
        #[arg(long)]
        connection: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one job.
    Show { id: String },
    /// Queue a failed or dead job again.
    Retry { id: String },
    /// Queue an action.
    Submit {
        /// The connection's id or label.
        connection: String,
        action: String,
        /// Parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print events as they happen.
    Tail {
        /// Only this type (`connection.` for a prefix).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this connection's events (id or label).
        #[arg(long)]
        connection: Option<String>,
        /// Replay the log after this event id first.
        #[arg(long)]
        after: Option<i64>,
        /// Print what is in the log and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Replace the master key and re-wrap every secret's data key.
    RotateKey {
        /// Rotate on the database directly, with the daemon stopped. Needed
        /// when the key comes from SWITCHBOARD_MASTER_KEY: then the new key is
        /// read from SWITCHBOARD_NEW_MASTER_KEY.
        #[arg(long)]
        offline: bool,
        /// Data directory of the stopped daemon (with --offline; overrides `data_dir`).
        #[arg(long, requires = "offline")]
        data_dir: Option<PathBuf>,
    },
}

impl Cli {
    /// `serve`, `demo` and `mcp --embedded` run a daemon in this process;
    /// the other verbs are clients of one.
    pub fn runs_a_daemon(&self) -> bool {
        match &self.command {
            Command::Serve(_) | Command::Demo(_) => true,
            Command::Mcp(args) => args.embedded,
            _ => false,
        }
    }
}

fn settings(cli_config: Option<&PathBuf>, args: Option<&DaemonArgs>) -> anyhow::Result<Settings> {
    let mut config = Config::load(cli_config.map(|p| p.as_path()))?;
    if let Some(args) = args {
        if let Some(listen) = &args.listen {
            config.listen = listen.clone();
        }
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.clone();
        }
    }
    Ok(config.resolve()?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = || Client::new(&cli.url, cli.token.clone());
    match &cli.command {
        Command::Serve(args) => serve(settings(cli.config.as_ref(), Some(args))?).await,
        Command::Demo(args) => {
            let mut config = Config::load(cli.config.as_deref())?;
            if let Some(listen) = &args.listen {
                config.listen = listen.clone();
            }
            crate::demo::run(config, args.data_dir.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors => {
            let connectors: Value = client()?.get("/connectors").await?;
            output::print(cli.json, &connectors, output::connectors_table);
            Ok(ExitCode::SUCCESS)
        }
        Command::Connections(cmd) => connections(cmd, &client()?, cli.json).await,
        Command::Jobs(cmd) => jobs(cmd, &client()?, cli.json).await,
        Command::Media(cmd) => media::media(cmd, &client()?, cli.json).await,
        Command::Post(args) => media::post(args, &client()?, cli.json).await,
        Command::Rules(cmd) => rules::rules(cmd, &client()?, cli.json).await,
        Command::Agents(cmd) => agents::agents(cmd, &client()?, cli.json).await,
        Command::Mcp(args) => mcp(&cli, args).await,
        Command::Archive(args) => archive::archive(args, &client()?, cli.json).await,
        Command::Events(EventsCommand::Tail {
            kind,
            connection,
            after,
            no_follow,
        }) => {
            tail(
                &client()?,
                cli.json,
                kind.clone(),
                connection.clone(),
                *after,
                *no_follow,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => {
            let settings = backup::settings_for(&cli, args.data_dir())?;
            backup::backup(settings, args, cli.json).await
        }
        Command::Restore(args) => {
            let settings = backup::settings_for(&cli, args.data_dir())?;
            backup::restore(settings, args, cli.json).await
        }
        Command::Vault(VaultCommand::RotateKey { offline, data_dir }) => {
            if *offline {
                rotate_offline(backup::settings_for(&cli, data_dir.clone())?).await?;
            } else {
                let result: Value = client()?
                    .post("/vault/rotate-key", &json!({}))
                    .await
                    .context("online rotation failed (is the daemon running? with it stopped, use --offline)")?;
                if cli.json {
                    output::print_json(&result);
                } else {
                    println!(
                        "master key rotated; {} data keys re-wrapped. The old key no longer opens the vault.",
                        result["data_keys_rewrapped"]
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    daemon::init_logging(&settings.log_format);
    let running = match daemon::start(&settings).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!(%error, "switchboard did not start");
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = std::io::stdout().lock();
    if let Some(token) = &running.new_admin_token {
        writeln!(
            out,
            "admin token (shown once, store it now): {}",
            token.expose_secret()
        )?;
    }
    writeln!(
        out,
        "dashboard: open {} to sign in (one-time link, valid 10 minutes)",
        running.dashboard.login_link()
    )?;
    // Printed last: scripts may wait for this line and find the token above it.
    writeln!(
        out,
        "switchboard {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    )?;
    out.flush()?;
    drop(out);
    tracing::info!(addr = %running.addr, database = if settings.is_sqlite() { "sqlite" } else { "postgres" }, "ready");
    daemon::stop_signal().await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// `switchboard mcp`: stdout carries only the protocol; logs go to stderr.
async fn mcp(cli: &Cli, args: &agents::McpArgs) -> anyhow::Result<ExitCode> {
    if args.embedded {
        let settings = settings(cli.config.as_ref(), None)?;
        daemon::init_logging(&settings.log_format);
        let running = daemon::start(&settings).await?;
        if let Some(token) = &running.new_admin_token {
            eprintln!(
                "admin token (shown once, store it now): {}",
                token.expose_secret()
            );
        }
        eprintln!("switchboard listening on http://{}", running.addr);
        let config = daemon::mcp_config(&settings, &running.public_url);
        let served = switchboard_mcp::serve_stdio(running.engine.clone(), config).await;
        running.stop().await;
        served?;
    } else {
        daemon::init_logging("pretty");
        let token = cli.token.as_deref().context(
            "no token: set SWITCHBOARD_TOKEN (an agent token from `switchboard agents create`, or the admin token), or use --embedded",
        )?;
        switchboard_mcp::relay::relay_stdio(&cli.url, token).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate_offline(settings: Settings) -> anyhow::Result<()> {
    // Only on an existing vault: a wrong or unset data dir creates nothing.
    let (store, _lock) = backup::open_existing(&settings, true).await?;
    match daemon::key_source(&settings.data_dir) {
        KeySource::Environment(current) => {
            let new = std::env::var("SWITCHBOARD_NEW_MASTER_KEY")
                .context("the current key comes from SWITCHBOARD_MASTER_KEY: put the new key in SWITCHBOARD_NEW_MASTER_KEY (32 bytes, base64)")?;
            let old = MasterKey::from_base64(current.expose_secret())?;
            let new = MasterKey::from_base64(&new)?;
            let count = switchboard_vault::rewrap_all(&store, &old, &new).await?;
            println!(
                "{count} data keys re-wrapped. Start the daemon with SWITCHBOARD_MASTER_KEY set to the new key."
            );
        }
        source @ KeySource::File(_) => {
            let (vault, _) = Vault::open(store.clone(), source).await?;
            let count = vault.rotate_master_key().await?;
            println!("master key rotated; {count} data keys re-wrapped.");
        }
    }
    store.close().await;
    Ok(())
}

/// `NAME=SOURCE` -> (name, secret value).
fn read_secret(spec: &str) -> anyhow::Result<(String, String)> {
    let (name, source) = spec.split_once('=').with_context(|| {
        format!("`{spec}`: write NAME=SOURCE, SOURCE being env:VAR, file:PATH or - (stdin)")
    })?;
    let value = if let Some(var) = source.strip_prefix("env:") {
        std::env::var(var)
            .with_context(|| format!("secret `{name}`: environment variable {var} is not set"))?
    } else if let Some(path) = source.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .with_context(|| format!("secret `{name}`: cannot read {path}"))?
    } else if source == "-" {
        if std::io::stdin().is_terminal() {
            eprint!("value of secret `{name}`: ");
        }
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value)?;
        value
    } else {
        bail!(
            "secret `{name}`: SOURCE must be env:VAR, file:PATH or - (stdin); values on the command line would land in your shell history"
        );
    };
    Ok((
        name.to_owned(),
        value.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn parse_setting(spec: &str) -> anyhow::Result<(String, Value)> {
    let (key, value) = spec
        .split_once('=')
        .with_context(|| format!("`{spec}`: write KEY=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

async fn connections(
    cmd: &ConnectionsCommand,
    client: &Client,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ConnectionsCommand::List => {
            let list: Value = client.get("/connections").await?;
            output::print(json, &list, output::connections_table);
        }
        ConnectionsCommand::Add {
            connector,
            label,
            settings,
            secrets,
            disabled,
        } => {
            let settings: serde_json::Map<String, Value> = settings
                .iter()
                .map(|s| parse_setting(s))
                .collect::<Result<_, _>>()?;
            let secrets: BTreeMap<String, String> = secrets
                .iter()
                .map(|s| read_secret(s))
                .collect::<Result<_, _>>()?;
            let body = json!({
                "connector": connector,
                "label": label,
                "enabled": !disabled,
                "settings": settings,
                "secrets": secrets,
            });
            let created: Value = client.post("/connections", &body).await?;
            output::print(json, &created, output::connection_detail);
        }
        ConnectionsCommand::Status { id } => {
            let id = client.connection_id(id).await?;
            let connection: Value = client.get(&format!("/connections/{id}")).await?;
            output::print(json, &connection, output::connection_detail);
        }
        ConnectionsCommand::Set { id, settings } => {
            let id = client.connection_id(id).await?;
            let current: Value = client.get(&format!("/connections/{id}")).await?;
            let mut merged = current["settings"].as_object().cloned().unwrap_or_default();
            for spec in settings {
                let (key, value) = parse_setting(spec)?;
                if value.is_null() {
                    merged.remove(&key);
                } else {
                    merged.insert(key, value);
                }
            }
            let updated: Value = client
                .patch(
                    &format!("/connections/{id}"),
                    &json!({ "settings": merged }),
                )
                .await?;
            output::print(json, &updated, output::connection_detail);
        }
        ConnectionsCommand::Test { id } => {
            let id = client.connection_id(id).await?;
            let check: Value = client
                .post(&format!("/connections/{id}/test"), &json!({}))
                .await?;
            output::print(json, &check, output::connection_test);
            if check["ok"] != true {
                return Ok(ExitCode::FAILURE);
            }
        }
        ConnectionsCommand::SetSecret { id, secrets } => {
            let id = client.connection_id(id).await?;
            let secrets: BTreeMap<String, String> = secrets
                .iter()
                .map(|s| read_secret(s))
                .collect::<Result<_, _>>()?;
            let updated: Value = client
                .put(&format!("/connections/{id}/secrets"), &json!(secrets))
                .await?;
            output::print(json, &updated, output::connection_detail);
        }
        ConnectionsCommand::Connect { id, wait } => {
            let id = client.connection_id(id).await?;
            let started: Value = client
                .post(&format!("/connections/{id}/connect"), &json!({}))
                .await?;
            let url = started["authorize_url"].as_str().unwrap_or_default();
            if json {
                output::print_json(&started);
            } else {
                println!(
                    "Open this link to approve access (it works once, for 10 minutes):\n  {}",
                    output::escape(url)
                );
            }
            if *wait {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
                loop {
                    let status: Value = client.get(&format!("/connections/{id}/status")).await?;
                    if status["status"] == "connected" {
                        if !json {
                            println!("connected");
                        }
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        anyhow::bail!(
                            "connection {id} is still {} after 10 minutes; run `switchboard connections connect {id}` again",
                            output::text(&status["status"])
                        );
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
        ConnectionsCommand::Restart { id } => {
            let id = client.connection_id(id).await?;
            let updated: Value = client
                .post(&format!("/connections/{id}/restart"), &json!({}))
                .await?;
            output::print(json, &updated, output::connection_detail);
        }
        ConnectionsCommand::Remove { id } => {
            let id = client.connection_id(id).await?;
            client.delete(&format!("/connections/{id}")).await?;
            if json {
                output::print_json(&json!({ "removed": id }));
            } else {
                println!("removed connection {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn jobs(cmd: &JobsCommand, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::List {
            state,
            connection,
            limit,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(state) = state {
                query.push(("state", state.clone()));
            }
            if let Some(connection) = connection {
                query.push(("connection_id", client.connection_id(connection).await?));
            }
            let list: Value = client.get_query("/jobs", &query).await?;
            output::print(json, &list, output::jobs_table);
        }
        JobsCommand::Show { id } => {
            let job: Value = client.get(&format!("/jobs/{id}")).await?;
            output::print(json, &job, output::job_detail);
        }
        JobsCommand::Retry { id } => {
            let job: Value = client
                .post(&format!("/jobs/{id}/retry"), &json!({}))
                .await?;
            output::print(json, &job, output::job_detail);
        }
        JobsCommand::Submit {
            connection,
            action,
            params,
            idempotency_key,
        } => {
            let params: Value =
                serde_json::from_str(params).context("--params must be a JSON object")?;
            let body = json!({
                "connection_id": client.connection_id(connection).await?,
                "action": action,
                "params": params,
                "idempotency_key": idempotency_key,
            });
            let job: Value = client.post("/jobs", &body).await?;
            output::print(json, &job, output::job_detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tail(
    client: &Client,
    json: bool,
    kind: Option<String>,
    connection: Option<String>,
    after: Option<i64>,
    no_follow: bool,
) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(kind) = kind {
        query.push(("type", kind));
    }
    if let Some(connection) = connection {
        query.push(("connection_id", client.connection_id(&connection).await?));
    }
    if no_follow {
        query.push(("after", after.unwrap_or(0).to_string()));
        query.push(("limit", "10000".into()));
        let events: Vec<Value> = client.get_query("/events", &query).await?;
        for event in &events {
            output::print_event(json, event);
        }
        return Ok(());
    }
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    let mut stream = client.stream("/events/stream", &query).await?;
    while let Some(item) = stream.next().await {
        let message = item.context("the event stream broke")?;
        if message.data.is_empty() {
            continue;
        }
        let event: Value =
            serde_json::from_str(&message.data).context("the daemon sent an unreadable event")?;
        output::print_event(json, &event);
    }
    Ok(())
}
