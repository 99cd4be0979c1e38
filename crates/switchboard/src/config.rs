//! Configuration, in two phases: [`Config`] is parsed (defaults, then a TOML
//! file, then `SWITCHBOARD_*` environment variables, `__` for nesting) with
//! no side effects; [`Config::resolve`] checks it and produces the
//! [`Settings`] the daemon runs with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use switchboard_runtime::RuntimeConfig;
use switchboard_runtime::jobs::JobsConfig;
use switchboard_runtime::supervisor::SupervisorConfig;

/// Top-level configuration keys. Other `SWITCHBOARD_*` variables (the CLI's
/// `SWITCHBOARD_URL`, `SWITCHBOARD_TOKEN`, the master key, a test's own
/// variables) are not configuration and must not make `serve` refuse to start.
const CONFIG_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "public_url",
    "database_url",
    "log_format",
    "jobs",
    "events",
    "limits",
    "http",
    "supervisor",
    "rules",
    "services",
    "mcp",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database, the master key and other state live.
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    pub listen: String,
    /// The daemon's URL as a browser reaches it (OAuth callbacks go to
    /// `<public_url>/oauth/<connector>/callback`); default `http://<listen>`.
    pub public_url: Option<String>,
    /// `sqlite://PATH` or `postgres://...`; default: `switchboard.db` in the data dir.
    pub database_url: Option<String>,
    /// `pretty` or `json`.
    pub log_format: String,
    pub jobs: JobsSection,
    pub events: EventsSection,
    pub limits: LimitsSection,
    pub http: HttpSection,
    pub supervisor: SupervisorSection,
    pub rules: RulesSection,
    /// Base URLs of external services, so the same code talks to the real
    /// services or to the simulators.
    pub services: BTreeMap<String, String>,
    pub mcp: McpSection,
}

/// The MCP server (stdio and `/mcp`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// Directories `upload_media` may read files from; none by default
    /// (agents then send the bytes as base64).
    pub media_dirs: Vec<PathBuf>,
    /// How often a session re-checks its tool list besides on connection
    /// events (default 10).
    pub tools_recheck_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    pub workers: usize,
    pub lease_secs: u64,
    pub poll_ms: u64,
    pub max_attempts: i64,
    pub retry_base_ms: u64,
    pub retry_cap_secs: u64,
    /// How long a job may wait for its connection's re-authorization before
    /// it is given up as `dead` (default 86400: 24 h).
    pub reauth_expiry_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    pub retention_days: u64,
    pub max_rows: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest accepted request body (JSON).
    pub body_bytes: usize,
    /// Largest media file accepted by the media store (uploads are
    /// streamed to disk, not held in memory).
    pub media_bytes: u64,
}

/// Bounds of the HTTP server against slow or stalled clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Time a connection has to send a request's headers, from connecting
    /// or from its previous response (so also the keep-alive idle time).
    pub header_timeout_ms: u64,
    /// Longest pause while a request body arrives; then 408.
    pub body_timeout_ms: u64,
    /// A connection moving no byte either way for this long is closed.
    pub idle_timeout_ms: u64,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        let limits = switchboard_api::HttpLimits::default();
        HttpSection {
            header_timeout_ms: limits.header_timeout.as_millis() as u64,
            body_timeout_ms: limits.body_timeout.as_millis() as u64,
            idle_timeout_ms: limits.idle_timeout.as_millis() as u64,
            max_connections: limits.max_connections,
        }
    }
}

/// The rules file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// A YAML or TOML rules file, watched and hot-reloaded.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorSection {
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub drain_grace_ms: u64,
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/share/switchboard"),
        None => PathBuf::from("switchboard-data"),
    }
}

impl Default for Config {
    fn default() -> Self {
        let jobs = JobsConfig::default();
        let runtime = RuntimeConfig::default();
        let supervisor = SupervisorConfig::default();
        Config {
            data_dir: default_data_dir(),
            listen: "127.0.0.1:7700".into(),
            public_url: None,
            database_url: None,
            log_format: "pretty".into(),
            jobs: JobsSection {
                workers: jobs.workers,
                lease_secs: jobs.lease.as_secs(),
                poll_ms: jobs.poll.as_millis() as u64,
                max_attempts: runtime.default_max_attempts,
                retry_base_ms: jobs.retry_base.as_millis() as u64,
                retry_cap_secs: jobs.retry_cap.as_secs(),
                reauth_expiry_secs: jobs.reauth_expiry.as_secs(),
            },
            events: EventsSection {
                retention_days: 7,
                max_rows: runtime.event_max_rows,
            },
            limits: LimitsSection {
                body_bytes: 1024 * 1024,
                media_bytes: runtime.media_max_bytes,
            },
            http: HttpSection::default(),
            supervisor: SupervisorSection {
                reconnect_min_ms: supervisor.reconnect_min.as_millis() as u64,
                reconnect_max_ms: supervisor.reconnect_max.as_millis() as u64,
                drain_grace_ms: supervisor.drain_grace.as_millis() as u64,
            },
            services: default_services(),
            rules: RulesSection::default(),
            mcp: McpSection::default(),
        }
    }
}

impl Default for JobsSection {
    fn default() -> Self {
        Config::default().jobs
    }
}

impl Default for EventsSection {
    fn default() -> Self {
        Config::default().events
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Config::default().limits
    }
}

impl Default for SupervisorSection {
    fn default() -> Self {
        Config::default().supervisor
    }
}

/// Endpoints whose default derives from another key (the base they live
/// under at the real service): `(key, base key, path)`. Each can be set on
/// its own, for a self-hosted OAuth proxy or a test authorization server.
const DERIVED_SERVICES: &[(&str, &str, &str)] = &[
    ("x_token", "x_api", "/2/oauth2/token"),
    ("x_oauth1_request_token", "x_api", "/oauth/request_token"),
    ("x_oauth1_authorize", "x_api", "/oauth/authorize"),
    ("x_oauth1_access_token", "x_api", "/oauth/access_token"),
    ("twitch_authorize", "twitch_id", "/oauth2/authorize"),
    ("twitch_token", "twitch_id", "/oauth2/token"),
    ("twitch_validate", "twitch_id", "/oauth2/validate"),
];

/// Every external endpoint: the configured ones over the defaults, with the
/// derived endpoints (`x_token`, ...) filled in from their configured base
/// unless set themselves.
pub fn resolve_services(configured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut services = default_services();
    services.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, base, path) in DERIVED_SERVICES {
        if !configured.contains_key(*key) {
            let base = services[*base].trim_end_matches('/').to_owned();
            services.insert((*key).to_owned(), format!("{base}{path}"));
        }
    }
    services
}

/// The real services' base URLs; each can be pointed at a simulator. The
/// endpoints derived from them are in `DERIVED_SERVICES`.
pub fn default_services() -> BTreeMap<String, String> {
    [
        ("x_api", "https://api.x.com"),
        ("x_authorize", "https://x.com/i/oauth2/authorize"),
        ("twitch_helix", "https://api.twitch.tv/helix"),
        ("twitch_id", "https://id.twitch.tv"),
        ("twitch_irc", "wss://irc-ws.chat.twitch.tv:443"),
        ("twitch_eventsub", "wss://eventsub.wss.twitch.tv/ws"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: `{field}` {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// What the daemon runs with, after checking.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub database_url: String,
    pub log_format: String,
    pub runtime: RuntimeConfig,
    pub body_limit: usize,
    /// The HTTP server's timeouts and connection cap.
    pub http: switchboard_api::HttpLimits,
    pub services: BTreeMap<String, String>,
    /// Directories MCP `upload_media` may read files from.
    pub mcp_media_dirs: Vec<PathBuf>,
    /// `mcp.tools_recheck_secs`, when set.
    pub mcp_tools_recheck: Option<Duration>,
}

impl Settings {
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

impl Config {
    /// Defaults, then `file` (if given; a missing file is an error), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    field: "--config",
                    message: format!("file {} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("SWITCHBOARD_")
                .filter(|key| {
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    CONFIG_KEYS.iter().any(|k| top.eq_ignore_ascii_case(k))
                })
                .split("__"),
        );
        figment
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| ConfigError::Invalid {
            field: "listen",
            message: format!("must be an address like 127.0.0.1:7700 ({e})"),
        })?;
        let database_url = match self.database_url {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://") =>
            {
                url
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    field: "database_url",
                    message: "must start with sqlite:// or postgres://".into(),
                });
            }
            None => format!(
                "sqlite://{}",
                self.data_dir.join("switchboard.db").display()
            ),
        };
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(ConfigError::Invalid {
                field: "log_format",
                message: "must be `pretty` or `json`".into(),
            });
        }
        if self.jobs.workers == 0 || self.jobs.workers > 1024 {
            return Err(ConfigError::Invalid {
                field: "jobs.workers",
                message: "must be between 1 and 1024".into(),
            });
        }
        if self.jobs.lease_secs < 1 {
            return Err(ConfigError::Invalid {
                field: "jobs.lease_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.jobs.reauth_expiry_secs < 1 {
            return Err(ConfigError::Invalid {
                field: "jobs.reauth_expiry_secs",
                message: "must be at least 1 (seconds a job waits for a re-authorization)".into(),
            });
        }
        if !(1..=100).contains(&self.jobs.max_attempts) {
            return Err(ConfigError::Invalid {
                field: "jobs.max_attempts",
                message: "must be between 1 and 100".into(),
            });
        }
        let http = self.http.resolve()?;
        if self.limits.media_bytes == 0 {
            return Err(ConfigError::Invalid {
                field: "limits.media_bytes",
                message: "must be at least 1".into(),
            });
        }
        let is_sqlite = database_url.starts_with("sqlite:");
        let runtime = RuntimeConfig {
            supervisor: SupervisorConfig {
                reconnect_min: Duration::from_millis(self.supervisor.reconnect_min_ms.max(1)),
                reconnect_max: Duration::from_millis(
                    self.supervisor
                        .reconnect_max_ms
                        .max(self.supervisor.reconnect_min_ms.max(1)),
                ),
                drain_grace: Duration::from_millis(self.supervisor.drain_grace_ms),
            },
            jobs: JobsConfig {
                workers: self.jobs.workers,
                lease: Duration::from_secs(self.jobs.lease_secs),
                poll: Duration::from_millis(self.jobs.poll_ms.max(10)),
                retry_base: Duration::from_millis(self.jobs.retry_base_ms.max(1)),
                retry_cap: Duration::from_secs(self.jobs.retry_cap_secs.max(1)),
                reauth_expiry: Duration::from_secs(self.jobs.reauth_expiry_secs),
                exclusive_database: is_sqlite,
                ..JobsConfig::default()
            },
            default_max_attempts: self.jobs.max_attempts,
            event_retention: Duration::from_secs(self.events.retention_days.max(1) * 24 * 3600),
            event_max_rows: self.events.max_rows.max(1000),
            media_dir: self.data_dir.join("media"),
            media_max_bytes: self.limits.media_bytes,
            rules: switchboard_runtime::rules::RulesConfig {
                file: self.rules.file.clone(),
            },
        };
        let services = resolve_services(&self.services);
        Ok(Settings {
            data_dir: self.data_dir,
            listen,
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            database_url,
            log_format: self.log_format,
            runtime,
            body_limit: self.limits.body_bytes.max(1024),
            http,
            services,
            mcp_media_dirs: self.mcp.media_dirs,
            mcp_tools_recheck: self
                .mcp
                .tools_recheck_secs
                .map(|secs| Duration::from_secs(secs.max(1))),
        })
    }
}

impl HttpSection {
    fn resolve(&self) -> Result<switchboard_api::HttpLimits, ConfigError> {
        let timeout = |field: &'static str, ms: u64| {
            if ms == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1 (milliseconds)".into(),
                });
            }
            Ok(Duration::from_millis(ms))
        };
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(ConfigError::Invalid {
                field: "http.max_connections",
                message: "must be between 1 and 1000000".into(),
            });
        }
        Ok(switchboard_api::HttpLimits {
            header_timeout: timeout("http.header_timeout_ms", self.header_timeout_ms)?,
            body_timeout: timeout("http.body_timeout_ms", self.body_timeout_ms)?,
            idle_timeout: timeout("http.idle_timeout_ms", self.idle_timeout_ms)?,
            max_connections: self.max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_to_sqlite_in_the_data_dir() {
        let settings = Config {
            data_dir: PathBuf::from("/tmp/sb"),
            ..Config::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(settings.database_url, "sqlite:///tmp/sb/switchboard.db");
        assert!(settings.is_sqlite());
        assert!(settings.runtime.jobs.exclusive_database);
        assert_eq!(settings.services["x_api"], "https://api.x.com");
        assert_eq!(settings.runtime.media_dir, PathBuf::from("/tmp/sb/media"));
        assert_eq!(settings.runtime.media_max_bytes, 512 * 1024 * 1024);
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = Config {
            listen: "nowhere".into(),
            ..Config::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
        let err = Config {
            database_url: Some("mysql://x".into()),
            ..Config::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("`database_url`"), "{err}");
        let err = Config {
            limits: LimitsSection {
                media_bytes: 0,
                ..LimitsSection::default()
            },
            ..Config::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("`limits.media_bytes`"), "{err}");
    }

    #[test]
    fn a_toml_file_and_the_environment_layer_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\n[jobs]\nworkers = 3\n[services]\nx_api = \"http://127.0.0.1:1234\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.jobs.workers, 3);
        let settings = config.resolve().unwrap();
        assert_eq!(settings.services["x_api"], "http://127.0.0.1:1234");
        assert_eq!(
            settings.services["twitch_helix"],
            "https://api.twitch.tv/helix"
        );

        std::fs::write(&path, "lisen = \"typo\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
