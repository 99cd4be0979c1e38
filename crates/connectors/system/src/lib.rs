//! The local machine as connectors. Two connectors live here:
//!
//! * **`system`** (this file): one connection holds the machine's triggers
//!   and generic actions.
//!   - `schedules`: cron expressions in a time zone (`schedule.rs`), fired
//!     as `cron.fired` (`triggers.rs`). The last fired slot is kept in the
//!     connection's durable state, so a restart neither fires a slot twice
//!     nor misses the latest one within `catch_up_secs`.
//!   - `watches`: a directory and a glob, debounced, fired as
//!     `file.created|modified|removed` (`triggers.rs`). A watched directory
//!     that is missing or disappears makes the connection `degraded` until
//!     it is back; nothing crashes.
//!   - `hotkeys`: global hotkeys (`hotkeys.rs`, cargo feature `hotkeys`,
//!     X11 on Linux), fired as `hotkey.pressed`; more can be registered at
//!     run time with the actions `system.hotkey_register` and
//!     `system.hotkey_unregister` (hotkey builds only; they are kept in the
//!     connection's durable state and survive restarts).
//!   - actions `system.http_request` (to hosts in `http_allow` only, see
//!     `client.rs`), `system.log`, `system.delay` (`actions.rs`).
//! * **`webhook`** (`webhook.rs`): one connection per hook, received at
//!   `POST /hooks/{name}` and verified by `auth.rs` (shared secret,
//!   GitHub-style HMAC-SHA256, Standard Webhooks).
//!
//! Settings are checked whole before a connection is created or changed
//! ([`Connector::check_settings`]): a cron expression that does not parse, a
//! zone that does not exist or a glob that does not compile is refused with
//! the field and the reason.

mod actions;
pub mod auth;
pub mod client;
#[cfg(all(feature = "hotkeys", target_os = "linux"))]
mod hotkeys;
pub mod schedule;
mod triggers;
pub mod webhook;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, ActionSpec, AuthKind, Connector, ConnectorError, ConnectorManifest,
    ParamsContext, RuntimeContext, Session, TriggerSpec,
};
use tokio_util::sync::CancellationToken;

pub use webhook::WebhookConnector;

/// Whether this build can register global hotkeys.
pub const HOTKEYS_SUPPORTED: bool = cfg!(all(feature = "hotkeys", target_os = "linux"));

/// Settings of a `system` connection (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SystemSettings {
    pub schedules: Vec<ScheduleSettings>,
    pub watches: Vec<WatchSettings>,
    pub hotkeys: Vec<HotkeySettings>,
    /// How old a missed slot may be and still fire once after a restart.
    pub catch_up_secs: Option<u64>,
    /// Where `system.http_request` may go (see `client.rs`).
    pub http_allow: Vec<String>,
}

/// The default catch-up window: a slot missed within the last day fires
/// once when the daemon is back (a laptop closed overnight runs its
/// morning's daily job when opened).
pub const DEFAULT_CATCH_UP_SECS: u64 = 86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub name: String,
    pub cron: String,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSettings {
    pub name: String,
    pub path: String,
    pub glob: Option<String>,
    #[serde(default)]
    pub recursive: bool,
    pub debounce_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotkeySettings {
    pub name: String,
    pub keys: String,
}

fn name_schema() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"})
}

fn manifest() -> ConnectorManifest {
    let mut manifest = base_manifest();
    // Only builds that can grab hotkeys offer the actions that do.
    if HOTKEYS_SUPPORTED {
        manifest.actions.extend(hotkey_actions());
    }
    manifest
}

/// `system.hotkey_register` and `system.hotkey_unregister`.
fn hotkey_actions() -> Vec<ActionSpec> {
    let hotkey_result = json!({
        "type": "object",
        "properties": {"hotkey": {"type": "string"}, "keys": {"type": "string"}, "registered": {"type": "boolean"}, "removed": {"type": "boolean"}}
    });
    vec![
        ActionSpec {
            name: "system.hotkey_register".into(),
            description: "Grab a global hotkey on this machine until it is unregistered: each press fires hotkey.pressed with this name, like the hotkeys in the connection's settings. Kept across restarts of the connection and the daemon. Registering a name again replaces its keys. Needs an X11 desktop session.".into(),
            params_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "keys"],
                "properties": {
                    "name": name_schema(),
                    "keys": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Such as `ctrl+shift+F9` or `alt+KeyS`."}
                }
            }),
            result_schema: hotkey_result.clone(),
        },
        ActionSpec {
            name: "system.hotkey_unregister".into(),
            description: "Release a hotkey registered with system.hotkey_register (hotkeys of the settings are changed in the settings). `removed` is false when no hotkey had that name.".into(),
            params_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {"name": name_schema()}
            }),
            result_schema: hotkey_result,
        },
    ]
}

fn base_manifest() -> ConnectorManifest {
    ConnectorManifest {
        name: "system".into(),
        display_name: "This machine".into(),
        description: "Cron schedules, file watches and global hotkeys as events; HTTP requests to allowed hosts, log lines and delays as actions. One connection holds them all.".into(),
        auth: AuthKind::None,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "schedules": {
                    "type": "array",
                    "maxItems": 100,
                    "description": "Each fires cron.fired at its times.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "cron"],
                        "properties": {
                            "name": name_schema(),
                            "cron": {"type": "string", "minLength": 1, "maxLength": 200, "description": "5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @yearly, @monthly, @weekly, @daily, @hourly."},
                            "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "description": "IANA zone such as Europe/Berlin (default UTC)."}
                        }
                    }
                },
                "watches": {
                    "type": "array",
                    "maxItems": 50,
                    "description": "Each fires file.created, file.modified and file.removed for matching files.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "path"],
                        "properties": {
                            "name": name_schema(),
                            "path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "An absolute path to a directory."},
                            "glob": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Matched against the path relative to the directory, such as `*.mp4` or `**/*.png` (default: every file)."},
                            "recursive": {"type": "boolean", "description": "Watch subdirectories too (default false)."},
                            "debounce_ms": {"type": "integer", "minimum": 50, "maximum": 60000, "description": "Quiet time before a change is reported (default 500)."}
                        }
                    }
                },
                "hotkeys": {
                    "type": "array",
                    "maxItems": 50,
                    "description": "Global hotkeys (desktop builds with the `hotkeys` feature; X11 on Linux). Each fires hotkey.pressed.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "keys"],
                        "properties": {
                            "name": name_schema(),
                            "keys": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Such as `ctrl+shift+F9` or `alt+KeyS`."}
                        }
                    }
                },
                "catch_up_secs": {"type": "integer", "minimum": 0, "maximum": 31536000, "description": "After a restart, the latest slot missed within this many seconds fires once (late); older ones are skipped. Default 86400; 0 turns catch-up off."},
                "http_allow": {
                    "type": "array",
                    "maxItems": 200,
                    "items": {"type": "string", "minLength": 1, "maxLength": 300},
                    "description": "Hosts system.http_request may call: `example.com`, `*.example.com`, `*` (any public host), `127.0.0.1`, `10.0.0.0/8`, optionally with `:port`. Private and loopback addresses need an entry naming them; link-local and metadata addresses and this daemon's own port need an address entry naming them exactly."
                }
            }
        }),
        secrets: vec![],
        triggers: vec![
            TriggerSpec {
                event_type: "cron.fired".into(),
                description: "A schedule's time came (or, after a restart, a slot missed within catch_up_secs: late = true).".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "schedule": {"type": "string"},
                        "cron": {"type": "string"},
                        "timezone": {"type": "string"},
                        "scheduled_at": {"type": "integer", "description": "The slot, epoch milliseconds."},
                        "scheduled_local": {"type": "string", "description": "The slot, RFC 3339 on the schedule's wall clock."},
                        "fired_at": {"type": "integer", "description": "When it fired, epoch milliseconds."},
                        "late": {"type": "boolean", "description": "Fired after its slot had been missed (restart, suspended machine)."}
                    }
                }),
            },
            file_trigger("file.created", "A matching file appeared (or was moved in)."),
            file_trigger("file.modified", "A matching file changed."),
            file_trigger("file.removed", "A matching file was deleted (or moved out)."),
            TriggerSpec {
                event_type: "hotkey.pressed".into(),
                description: "A global hotkey was pressed.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {"hotkey": {"type": "string"}, "keys": {"type": "string"}}
                }),
            },
        ],
        actions: vec![
            ActionSpec {
                name: "system.http_request".into(),
                description: "Send an HTTP request to a host allowed by this connection's http_allow and return the answer: {status, headers, body} (body as JSON when the answer is JSON, else text; at most 1 MiB). 2xx and 3xx succeed (redirects are not followed); 408, 429 and 5xx are retried; other 4xx fail. Requests to link-local or metadata addresses and to this daemon are refused unless named in http_allow.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["url"],
                    "properties": {
                        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], "description": "Default GET."},
                        "url": {"type": "string", "minLength": 1, "maxLength": 8192, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
                        "headers": {"type": "object", "maxProperties": 50, "additionalProperties": {"type": "string", "maxLength": 8192}},
                        "body": {"type": "string", "maxLength": 1048576, "description": "A text body."},
                        "json": {"description": "A JSON body (sets Content-Type: application/json). Give body or json, not both."},
                        "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "description": "Default 10000."}
                    }
                }),
                result_schema: json!({
                    "type": "object",
                    "properties": {
                        "status": {"type": "integer"},
                        "headers": {"type": "object"},
                        "body": {},
                        "truncated": {"type": "boolean"}
                    }
                }),
            },
            ActionSpec {
                name: "system.log".into(),
                description: "Write a line to the daemon's log at a level (debug, info, warn, error; default info). Returns {logged: true}.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string", "maxLength": 10000},
                        "level": {"enum": ["debug", "info", "warn", "error"]}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"logged": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "system.delay".into(),
                description: "Wait ms milliseconds (at most 15 minutes), then succeed: a pause between the actions of a rule.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["ms"],
                    "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 900000}}
                }),
                result_schema: json!({"type": "object", "properties": {"waited_ms": {"type": "integer"}}}),
            },
        ],
    }
}

fn file_trigger(event_type: &str, description: &str) -> TriggerSpec {
    TriggerSpec {
        event_type: event_type.into(),
        description: description.into(),
        payload_schema: json!({
            "type": "object",
            "properties": {
                "watch": {"type": "string"},
                "path": {"type": "string", "description": "Absolute path of the file."},
                "relative_path": {"type": "string", "description": "Path relative to the watched directory."},
                "size": {"type": ["integer", "null"], "description": "Bytes; null when removed."}
            }
        }),
    }
}

/// The checks of [`Connector::check_settings`] for `system`, as
/// `(field, message)` pairs.
pub fn check_system_settings(settings: &SystemSettings) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut unique = |kind: &str, names: Vec<&str>| {
        let mut seen = BTreeSet::new();
        for (i, name) in names.into_iter().enumerate() {
            if !seen.insert(name) {
                errors.push((
                    format!("{kind}[{i}].name"),
                    format!("the name `{name}` is used twice in {kind}"),
                ));
            }
        }
    };
    unique(
        "schedules",
        settings.schedules.iter().map(|s| s.name.as_str()).collect(),
    );
    unique(
        "watches",
        settings.watches.iter().map(|s| s.name.as_str()).collect(),
    );
    unique(
        "hotkeys",
        settings.hotkeys.iter().map(|s| s.name.as_str()).collect(),
    );
    for (i, entry) in settings.schedules.iter().enumerate() {
        match schedule::Schedule::parse(&entry.cron, entry.timezone.as_deref()) {
            Ok(_) => {}
            Err(schedule::ScheduleError::Cron(message)) => {
                errors.push((format!("schedules[{i}].cron"), message))
            }
            Err(schedule::ScheduleError::Timezone(message)) => {
                errors.push((format!("schedules[{i}].timezone"), message))
            }
        }
    }
    for (i, watch) in settings.watches.iter().enumerate() {
        if !Path::new(&watch.path).is_absolute() {
            errors.push((
                format!("watches[{i}].path"),
                format!(
                    "`{}` is not an absolute path; give the full path of the directory",
                    watch.path
                ),
            ));
        }
        if let Some(glob) = &watch.glob
            && let Err(e) = triggers::compile_glob(glob)
        {
            errors.push((format!("watches[{i}].glob"), e));
        }
    }
    for (i, hotkey) in settings.hotkeys.iter().enumerate() {
        if let Err(message) = check_hotkey(&hotkey.keys) {
            errors.push((format!("hotkeys[{i}].keys"), message));
        }
    }
    if let Err(bad) = client::Allowlist::parse(&settings.http_allow) {
        for (i, message) in bad {
            errors.push((format!("http_allow[{i}]"), message));
        }
    }
    errors
}

#[cfg(all(feature = "hotkeys", target_os = "linux"))]
fn check_hotkey(keys: &str) -> Result<(), String> {
    hotkeys::parse(keys).map(|_| ())
}

#[cfg(not(all(feature = "hotkeys", target_os = "linux")))]
fn check_hotkey(_keys: &str) -> Result<(), String> {
    Err("this build has no global hotkeys: they need a Linux desktop (X11) build with the `hotkeys` cargo feature".into())
}

pub struct SystemConnector {
    manifest: ConnectorManifest,
}

impl Default for SystemConnector {
    fn default() -> Self {
        SystemConnector {
            manifest: manifest(),
        }
    }
}

impl SystemConnector {
    pub fn new() -> SystemConnector {
        SystemConnector::default()
    }
}

fn parse_settings(value: &Value) -> Result<SystemSettings, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("system settings: {e}"))
}

#[async_trait]
impl Connector for SystemConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings = parse_settings(&ctx.settings).map_err(ConnectorError::Misconfigured)?;
        let problems = check_system_settings(&settings);
        if let Some((field, message)) = problems.first() {
            return Err(ConnectorError::Misconfigured(format!(
                "settings.{field}: {message}"
            )));
        }
        let allow = client::Allowlist::parse(&settings.http_allow)
            .map_err(|_| ConnectorError::Misconfigured("settings.http_allow".into()))?;
        // Watches start here, so a connection is watching once connected.
        let watchers = std::sync::Mutex::new(triggers::start_watches(&settings));
        Ok(Arc::new(SystemSession {
            settings,
            allow,
            watchers,
            #[cfg(all(feature = "hotkeys", target_os = "linux"))]
            hotkeys: hotkeys::RuntimeHotkeys::new(),
            ctx,
        }))
    }

    fn check_settings(&self, settings: &Value) -> Result<(), Vec<(String, String)>> {
        let settings = parse_settings(settings).map_err(|e| vec![(String::new(), e)])?;
        let errors = check_system_settings(&settings);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn check_params(
        &self,
        action: &str,
        params: &Value,
        _ctx: &dyn ParamsContext,
    ) -> Result<(), Vec<(String, String)>> {
        let errors = match action {
            "system.http_request" => actions::check_http_request(params),
            _ => Vec::new(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

struct SystemSession {
    settings: SystemSettings,
    allow: client::Allowlist,
    /// Watches started by `connect`, taken by `run`.
    watchers: std::sync::Mutex<Vec<Option<triggers::Watcher>>>,
    /// Hotkeys registered by actions, and where every press arrives.
    #[cfg(all(feature = "hotkeys", target_os = "linux"))]
    hotkeys: hotkeys::RuntimeHotkeys,
    ctx: RuntimeContext,
}

#[async_trait]
impl Session for SystemSession {
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let started = std::mem::take(&mut *self.watchers.lock().expect("watchers poisoned"));
        triggers::run(
            &self.ctx,
            &self.settings,
            started,
            #[cfg(all(feature = "hotkeys", target_os = "linux"))]
            &self.hotkeys,
            cancel,
        )
        .await
    }

    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        match call.action.as_str() {
            "system.http_request" => actions::http_request(&self.allow, &call.params).await,
            "system.log" => actions::log(&self.ctx.connection_id, &call.params),
            "system.delay" => actions::delay(&call.params).await,
            #[cfg(all(feature = "hotkeys", target_os = "linux"))]
            "system.hotkey_register" => {
                self.hotkeys
                    .register(self.ctx.env.as_ref(), &self.settings.hotkeys, &call.params)
                    .await
            }
            #[cfg(all(feature = "hotkeys", target_os = "linux"))]
            "system.hotkey_unregister" => {
                self.hotkeys
                    .unregister(self.ctx.env.as_ref(), &self.settings.hotkeys, &call.params)
                    .await
            }
            other => Err(ActionError::InvalidParams {
                field: "action".into(),
                message: format!("system has no action `{other}`"),
            }),
        }
    }

    /// The local machine has no service to ask: its check is the settings
    /// check, run again (watched paths and the like may have changed).
    async fn check(&self) -> Result<Value, ActionError> {
        settings_checked(
            check_system_settings(&self.settings),
            serde_json::json!({ "settings": "valid" }),
        )
    }
}

/// The answer of a settings-only check: `ok`, or every problem named.
fn settings_checked(problems: Vec<(String, String)>, ok: Value) -> Result<Value, ActionError> {
    if problems.is_empty() {
        return Ok(ok);
    }
    let problems: Vec<String> = problems
        .iter()
        .map(|(field, message)| format!("settings.{field}: {message}"))
        .collect();
    Err(ActionError::Permanent(problems.join("; ")))
}

#[cfg(test)]
mod hotkey_manifest_tests {
    use super::*;

    #[test]
    fn hotkey_actions_are_offered_only_by_builds_that_can_grab_hotkeys() {
        let manifest = manifest();
        for action in ["system.hotkey_register", "system.hotkey_unregister"] {
            assert_eq!(
                manifest.action(action).is_some(),
                HOTKEYS_SUPPORTED,
                "{action}"
            );
        }
    }
}
