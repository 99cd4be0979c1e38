//! Global hotkeys (cargo feature `hotkeys`; Linux with an X11 display).
//!
//! `global-hotkey` delivers the hotkeys of the whole process through one
//! global event handler, and X11 lets a process grab a key combination
//! once. So this module keeps one process-wide hub: one
//! `GlobalHotKeyManager` (it runs its own X11 thread), an event handler
//! that routes presses by hotkey id to the sessions that registered them,
//! and a list of registrations per hotkey, so two connections may share a
//! combination. A session's registrations end with it: dropping a
//! [`Registration`] releases the grab when nobody else holds it.
//!
//! Hotkeys come from two places: the connection's settings (`hotkeys`),
//! and the actions `system.hotkey_register` / `system.hotkey_unregister`
//! ([`RuntimeHotkeys`]). Hotkeys registered by an action are kept in the
//! connection's durable state (`runtime_hotkeys`), so they are registered
//! again when the session restarts (daemon restart, settings change) until
//! an action unregisters them; both kinds fire the same `hotkey.pressed`.
//!
//! Without a display (`DISPLAY` unset) the connection is `degraded` with
//! the reason; nothing else is affected.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_core::{ActionError, RuntimeEnv};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use crate::HotkeySettings;
use crate::triggers::Health;

/// Parse `ctrl+shift+F9`, `alt+KeyS`, ...
pub(crate) fn parse(keys: &str) -> Result<HotKey, String> {
    keys.parse::<HotKey>().map_err(|e| {
        format!(
            "`{keys}` is not a hotkey ({e}); write modifiers and a key joined by `+`, such as `ctrl+shift+F9` or `alt+KeyS`"
        )
    })
}

/// A hotkey as the session knows it: what `hotkey.pressed` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pressed {
    #[serde(rename = "hotkey")]
    pub name: String,
    pub keys: String,
}

type Route = (u64, Pressed, UnboundedSender<Pressed>);

struct Hub {
    manager: GlobalHotKeyManager,
    /// Who gets each hotkey's presses. Locked only briefly, and never while
    /// calling `manager`: `manager.register`/`unregister` wait for the
    /// manager's X11 thread, and that thread runs the press handler, which
    /// takes this lock; holding it across the call could deadlock when a key
    /// is pressed during a registration.
    routes: Mutex<HashMap<u32, Vec<Route>>>,
    /// Serializes grabs and releases (the first route of a hotkey grabs it,
    /// the last one releases it). The X11 thread never takes this lock.
    grabs: Mutex<()>,
    next: AtomicU64,
}

static HUB: OnceLock<Hub> = OnceLock::new();

fn hub() -> Result<&'static Hub, String> {
    if let Some(hub) = HUB.get() {
        return Ok(hub);
    }
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        return Err(
            "global hotkeys need an X11 display and DISPLAY is not set (start the daemon in a desktop session)"
                .into(),
        );
    }
    let manager =
        GlobalHotKeyManager::new().map_err(|e| format!("cannot start global hotkeys: {e}"))?;
    let _ = HUB.set(Hub {
        manager,
        routes: Mutex::new(HashMap::new()),
        grabs: Mutex::new(()),
        next: AtomicU64::new(1),
    });
    GlobalHotKeyEvent::set_event_handler(Some(|event: GlobalHotKeyEvent| {
        if event.state != HotKeyState::Pressed {
            return;
        }
        if let Some(hub) = HUB.get()
            && let Ok(routes) = hub.routes.lock()
            && let Some(targets) = routes.get(&event.id)
        {
            for (_, pressed, sender) in targets {
                let _ = sender.send(pressed.clone());
            }
        }
    }));
    HUB.get()
        .ok_or_else(|| "global hotkeys did not start".into())
}

/// One session's hold on one hotkey.
pub(crate) struct Registration {
    hotkey: HotKey,
    token: u64,
}

impl Hub {
    fn register(
        &'static self,
        hotkey: HotKey,
        pressed: Pressed,
        sender: UnboundedSender<Pressed>,
    ) -> Result<Registration, String> {
        let _grabs = self.grabs.lock().map_err(|_| "hotkey grabs poisoned")?;
        let first = self
            .routes
            .lock()
            .map_err(|_| "hotkey routes poisoned")?
            .get(&hotkey.id())
            .is_none_or(Vec::is_empty);
        if first {
            self.manager
                .register(hotkey)
                .map_err(|e| format!("cannot grab it ({e}); another program may hold it"))?;
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.routes
            .lock()
            .map_err(|_| "hotkey routes poisoned")?
            .entry(hotkey.id())
            .or_default()
            .push((token, pressed, sender));
        Ok(Registration { hotkey, token })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(hub) = HUB.get() else { return };
        let Ok(_grabs) = hub.grabs.lock() else {
            return;
        };
        let id = self.hotkey.id();
        let last = {
            let Ok(mut routes) = hub.routes.lock() else {
                return;
            };
            match routes.get_mut(&id) {
                Some(entry) => {
                    entry.retain(|(token, _, _)| *token != self.token);
                    let empty = entry.is_empty();
                    if empty {
                        routes.remove(&id);
                    }
                    empty
                }
                None => false,
            }
        };
        // Released outside the routes lock (see `Hub::routes`).
        if last && let Err(error) = hub.manager.unregister(self.hotkey) {
            tracing::warn!(%error, "could not release a global hotkey");
        }
    }
}

/// The durable state key of the hotkeys registered by actions.
const STATE_KEY: &str = "runtime_hotkeys";

/// One hotkey registered by `system.hotkey_register`; `registration` is
/// `None` while it cannot be grabbed (restored, but another program holds it).
struct RuntimeEntry {
    keys: String,
    registration: Option<Registration>,
}

#[derive(Default)]
struct Held {
    /// Whether the durable list has been read into `entries` yet.
    restored: bool,
    entries: BTreeMap<String, RuntimeEntry>,
}

/// A session's hotkeys: where presses arrive, and the ones registered by
/// actions. Dropped with the session, which releases every grab.
pub(crate) struct RuntimeHotkeys {
    sender: UnboundedSender<Pressed>,
    presses: std::sync::Mutex<Option<UnboundedReceiver<Pressed>>>,
    held: tokio::sync::Mutex<Held>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterParams {
    name: String,
    keys: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnregisterParams {
    name: String,
}

fn invalid(field: &str, message: impl Into<String>) -> ActionError {
    ActionError::InvalidParams {
        field: field.into(),
        message: message.into(),
    }
}

impl RuntimeHotkeys {
    pub(crate) fn new() -> RuntimeHotkeys {
        let (sender, presses) = unbounded_channel();
        RuntimeHotkeys {
            sender,
            presses: std::sync::Mutex::new(Some(presses)),
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }

    /// Read the durable list once per session and grab what it names;
    /// returns the hotkeys that could not be grabbed, with why.
    async fn restore(
        &self,
        held: &mut Held,
        env: &dyn RuntimeEnv,
        hub: &'static Hub,
    ) -> Vec<String> {
        if held.restored {
            return Vec::new();
        }
        let saved: Vec<Pressed> = match env.load_state(STATE_KEY).await {
            Ok(Some(value)) => serde_json::from_value(value).unwrap_or_else(|error| {
                tracing::warn!(%error, "ignoring an unreadable list of registered hotkeys");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(error) => {
                // Try again next time rather than overwrite the list later.
                return vec![format!("cannot read the registered hotkeys: {error}")];
            }
        };
        held.restored = true;
        let mut problems = Vec::new();
        for hotkey in saved {
            let registration = parse(&hotkey.keys)
                .and_then(|key| hub.register(key, hotkey.clone(), self.sender.clone()));
            let registration = match registration {
                Ok(registration) => Some(registration),
                Err(problem) => {
                    problems.push(format!(
                        "hotkey `{}` ({}): {problem}",
                        hotkey.name, hotkey.keys
                    ));
                    None
                }
            };
            held.entries.insert(
                hotkey.name,
                RuntimeEntry {
                    keys: hotkey.keys,
                    registration,
                },
            );
        }
        problems
    }

    async fn save(held: &Held, env: &dyn RuntimeEnv) -> Result<(), ActionError> {
        let list: Vec<Pressed> = held
            .entries
            .iter()
            .map(|(name, entry)| Pressed {
                name: name.clone(),
                keys: entry.keys.clone(),
            })
            .collect();
        env.store_state(STATE_KEY, Some(json!(list)))
            .await
            .map_err(|e| ActionError::transient(format!("cannot keep the registered hotkeys: {e}")))
    }

    /// `system.hotkey_register`: grab `keys` now and after every restart.
    /// `configured` are the settings' hotkeys, whose names are taken.
    pub(crate) async fn register(
        &self,
        env: &dyn RuntimeEnv,
        configured: &[HotkeySettings],
        params: &Value,
    ) -> Result<Value, ActionError> {
        let params: RegisterParams =
            serde_json::from_value(params.clone()).map_err(|e| invalid("params", e.to_string()))?;
        if configured.iter().any(|h| h.name == params.name) {
            return Err(invalid(
                "name",
                format!(
                    "`{}` is a hotkey of this connection's settings (settings.hotkeys); choose another name or change the settings",
                    params.name
                ),
            ));
        }
        let hotkey = parse(&params.keys).map_err(|m| invalid("keys", m))?;
        let hub = hub().map_err(ActionError::Permanent)?;
        let mut held = self.held.lock().await;
        self.restore(&mut held, env, hub).await;
        if let Some(entry) = held.entries.get(&params.name)
            && entry.keys == params.keys
            && entry.registration.is_some()
        {
            return Ok(json!({ "hotkey": params.name, "keys": params.keys, "registered": true }));
        }
        let pressed = Pressed {
            name: params.name.clone(),
            keys: params.keys.clone(),
        };
        let registration = hub
            .register(hotkey, pressed, self.sender.clone())
            .map_err(|m| ActionError::Permanent(format!("hotkey `{}`: {m}", params.keys)))?;
        // Inserting drops the earlier grab of the same name, if any.
        held.entries.insert(
            params.name.clone(),
            RuntimeEntry {
                keys: params.keys.clone(),
                registration: Some(registration),
            },
        );
        Self::save(&held, env).await?;
        Ok(json!({ "hotkey": params.name, "keys": params.keys, "registered": true }))
    }

    /// `system.hotkey_unregister`: release a hotkey an action registered.
    pub(crate) async fn unregister(
        &self,
        env: &dyn RuntimeEnv,
        configured: &[HotkeySettings],
        params: &Value,
    ) -> Result<Value, ActionError> {
        let params: UnregisterParams =
            serde_json::from_value(params.clone()).map_err(|e| invalid("params", e.to_string()))?;
        if configured.iter().any(|h| h.name == params.name) {
            return Err(invalid(
                "name",
                format!(
                    "`{}` is a hotkey of this connection's settings; remove it from settings.hotkeys instead",
                    params.name
                ),
            ));
        }
        let hub = hub().map_err(ActionError::Permanent)?;
        let mut held = self.held.lock().await;
        self.restore(&mut held, env, hub).await;
        let removed = held.entries.remove(&params.name).is_some();
        if removed {
            Self::save(&held, env).await?;
        }
        Ok(json!({ "hotkey": params.name, "removed": removed }))
    }
}

/// Register this connection's hotkeys (the configured ones and those
/// actions registered earlier) and emit `hotkey.pressed` until `cancel`.
pub(crate) async fn run(
    env: Arc<dyn RuntimeEnv>,
    health: Arc<Health>,
    hotkeys: &[HotkeySettings],
    runtime: &RuntimeHotkeys,
    cancel: CancellationToken,
) {
    const KEY: &str = "hotkeys";
    let Some(mut presses) = runtime
        .presses
        .lock()
        .expect("hotkey presses poisoned")
        .take()
    else {
        cancel.cancelled().await;
        return;
    };
    let saved = env.load_state(STATE_KEY).await.ok().flatten();
    let has_saved = saved
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let mut registrations = Vec::new();
    if !hotkeys.is_empty() || has_saved {
        let hub = match hub() {
            Ok(hub) => hub,
            Err(problem) => {
                health.set(KEY, Some(problem)).await;
                cancel.cancelled().await;
                return;
            }
        };
        let mut problems = Vec::new();
        for hotkey in hotkeys {
            let pressed = Pressed {
                name: hotkey.name.clone(),
                keys: hotkey.keys.clone(),
            };
            let registered = parse(&hotkey.keys)
                .and_then(|key| hub.register(key, pressed, runtime.sender.clone()));
            match registered {
                Ok(registration) => registrations.push(registration),
                Err(problem) => problems.push(format!(
                    "hotkey `{}` ({}): {problem}",
                    hotkey.name, hotkey.keys
                )),
            }
        }
        let mut held = runtime.held.lock().await;
        problems.extend(runtime.restore(&mut held, env.as_ref(), hub).await);
        drop(held);
        health
            .set(KEY, (!problems.is_empty()).then(|| problems.join("; ")))
            .await;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            pressed = presses.recv() => match pressed {
                Some(pressed) => {
                    env.emit("hotkey.pressed", json!(pressed)).await;
                }
                // The session holds a sender: only its end closes this.
                None => break,
            },
        }
    }
    drop(registrations);
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn hotkeys_parse_or_say_how_to_write_them() {
        assert!(parse("ctrl+shift+F9").is_ok());
        assert!(parse("alt+KeyS").is_ok());
        let error = parse("ctrl+banana").unwrap_err();
        assert!(error.contains("ctrl+shift+F9"), "{error}");
    }
}
