//! Assembling and running the daemon: data dir, database, vault, connectors,
//! engine, HTTP server. `serve`, `demo`, the tests and the benchmarks all
//! start a daemon through [`start`].

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use switchboard_api::ApiOptions;
use switchboard_connector_echo::EchoConnector;
use switchboard_connector_obs::ObsConnector;
use switchboard_connector_system::{SystemConnector, WebhookConnector};
use switchboard_connector_twitch::auth::IdEndpoints as TwitchIdEndpoints;
use switchboard_connector_twitch::{TwitchConnector, TwitchEndpoints};
use switchboard_connector_x::XConnector;
use switchboard_connector_x::auth::AuthEndpoints as XAuthEndpoints;
use switchboard_runtime::{Engine, Registry};
use switchboard_store::{Store, StoreError, redact_url};
use switchboard_vault::{KeySource, Opened, Vault, VaultError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot use the data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    #[error(
        "another switchboard process is using {path}. SQLite allows one daemon per data directory; stop the other one, \
         or use PostgreSQL (database_url = \"postgres://...\") to run several"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the database {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error("refusing to start: {0}")]
    Vault(#[from] VaultError),
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("{0}")]
    Start(String),
}

/// The connectors of this build, pointed at the configured services; the
/// echo test connector keeps its files under `<data_dir>/echo/`.
pub fn registry(services: &BTreeMap<String, String>, data_dir: &Path) -> Registry {
    let services = crate::config::resolve_services(services);
    let service = |name: &str| {
        services
            .get(name)
            .cloned()
            .expect("every service has a default")
    };
    let mut registry = Registry::new();
    registry
        .register(Arc::new(EchoConnector::with_data_dir(data_dir)))
        .expect("built-in connector manifests are valid");
    registry
        .register(Arc::new(XConnector::with_endpoints(
            &service("x_api"),
            XAuthEndpoints {
                oauth2_authorize: service("x_authorize"),
                oauth2_token: service("x_token"),
                oauth1_request_token: service("x_oauth1_request_token"),
                oauth1_authorize: service("x_oauth1_authorize"),
                oauth1_access_token: service("x_oauth1_access_token"),
            },
        )))
        .expect("built-in connector manifests are valid");
    registry
        .register(Arc::new(TwitchConnector::with_id_endpoints(
            TwitchEndpoints {
                helix: service("twitch_helix"),
                id: service("twitch_id"),
                irc: service("twitch_irc"),
                eventsub: service("twitch_eventsub"),
            },
            TwitchIdEndpoints {
                authorize: service("twitch_authorize"),
                token: service("twitch_token"),
                validate: service("twitch_validate"),
            },
        )))
        .expect("built-in connector manifests are valid");
    registry
        .register(Arc::new(SystemConnector::new()))
        .expect("built-in connector manifests are valid");
    registry
        .register(Arc::new(WebhookConnector::new()))
        .expect("built-in connector manifests are valid");
    // OBS runs on the creator's machine: host and port are connection
    // settings (default 127.0.0.1:4455), not a service base URL.
    registry
        .register(Arc::new(ObsConnector::new()))
        .expect("built-in connector manifests are valid");
    registry
}

/// Where the master key comes from: `SWITCHBOARD_MASTER_KEY`, else the key
/// file in the data dir.
pub fn key_source(data_dir: &Path) -> KeySource {
    match std::env::var("SWITCHBOARD_MASTER_KEY") {
        Ok(key) if !key.trim().is_empty() => KeySource::Environment(SecretString::from(key)),
        _ => KeySource::File(data_dir.join("master.key")),
    }
}

/// Create the data directory (mode 0700) if needed.
pub fn prepare_data_dir(path: &Path) -> Result<(), DaemonError> {
    let fail = |e: std::io::Error| DaemonError::DataDir {
        path: path.to_owned(),
        message: e.to_string(),
    };
    fs::create_dir_all(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// Hold an exclusive lock on the data dir while the SQLite database is open,
/// so a second process cannot share the file (and mistake our running jobs
/// for a crash's orphans).
pub fn lock_data_dir(path: &Path) -> Result<fs::File, DaemonError> {
    let lock_path = path.join("switchboard.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DaemonError::DataDir {
            path: lock_path.clone(),
            message: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(DaemonError::Locked {
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(DaemonError::DataDir {
            path: lock_path,
            message: e.to_string(),
        }),
    }
}

/// Open the database, taking the data-dir lock first for SQLite.
pub async fn open_store(settings: &Settings) -> Result<(Store, Option<fs::File>), DaemonError> {
    prepare_data_dir(&settings.data_dir)?;
    let lock = if settings.is_sqlite() {
        Some(lock_data_dir(&settings.data_dir)?)
    } else {
        None
    };
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|source| DaemonError::Database {
            url: redact_url(&settings.database_url),
            source,
        })?;
    Ok((store, lock))
}

/// The MCP server's options from the settings.
pub fn mcp_config(settings: &Settings, public_url: &str) -> switchboard_mcp::McpConfig {
    let mut config = switchboard_mcp::McpConfig::new(public_url);
    config.media_dirs = settings.mcp_media_dirs.clone();
    if let Some(recheck) = settings.mcp_tools_recheck {
        config.tools_recheck = recheck;
    }
    config
}

/// A running daemon.
pub struct Running {
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    /// The URL browsers reach the daemon at (OAuth links).
    pub public_url: String,
    /// The admin token, when this start created it (first start only).
    pub new_admin_token: Option<SecretString>,
    /// The web dashboard (mints the one-time login links `serve` prints).
    pub dashboard: switchboard_dashboard::Dashboard,
    pub vault_opened: Opened,
    server: JoinHandle<()>,
    stop_server: CancellationToken,
    _lock: Option<fs::File>,
}

/// Start everything and begin serving.
pub async fn start(settings: &Settings) -> Result<Running, DaemonError> {
    let (store, lock) = open_store(settings).await?;
    let (vault, vault_opened) = Vault::open(store.clone(), key_source(&settings.data_dir)).await?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(vault),
        registry(&settings.services, &settings.data_dir),
        settings.runtime.clone(),
    );
    let new_admin_token = switchboard_api::auth::bootstrap_admin_token(&store)
        .await
        .map_err(|e| DaemonError::Start(format!("cannot create the admin token: {e}")))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| DaemonError::Listen {
            addr: settings.listen,
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| DaemonError::Listen {
        addr: settings.listen,
        message: e.to_string(),
    })?;
    engine
        .start()
        .await
        .map_err(|e| DaemonError::Start(format!("cannot start connection runtimes: {e}")))?;
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let stop_server = CancellationToken::new();
    let dashboard = switchboard_dashboard::Dashboard::new(
        engine.clone(),
        switchboard_dashboard::DashboardOptions {
            public_url: public_url.clone(),
        },
    );
    let router = switchboard_api::router(
        engine.clone(),
        ApiOptions {
            body_limit: settings.body_limit,
            public_url: public_url.clone(),
            mcp: Some(mcp_config(settings, &public_url)),
            shutdown: stop_server.clone(),
        },
    );
    // The dashboard's pages and its session-checked proxy to the API.
    let router = dashboard.router(router);
    let stop = stop_server.clone();
    let limits = settings.http.clone();
    let server = tokio::spawn(async move {
        switchboard_api::serve(listener, router, limits, stop).await;
    });
    Ok(Running {
        engine,
        addr,
        public_url,
        new_admin_token,
        dashboard,
        vault_opened,
        server,
        stop_server,
        _lock: lock,
    })
}

impl Running {
    /// Stop serving, finish running jobs (within their grace period), stop
    /// every connection runtime, close the database.
    pub async fn stop(self) {
        self.stop_server.cancel();
        // Live event streams never end by themselves; give ordinary requests
        // a moment, then cut the rest.
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        self.engine.shutdown().await;
        self.engine.store().close().await;
    }
}

/// Resolve when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Install the log subscriber: `pretty` or `json` lines on stderr, filtered
/// by `SWITCHBOARD_LOG` (or `RUST_LOG`), default `info`.
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SWITCHBOARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
