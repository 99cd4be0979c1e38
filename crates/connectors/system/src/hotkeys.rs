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
//! Without a display (`DISPLAY` unset) the connection is `degraded` with
//! the reason; nothing else is affected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};
use serde_json::json;
use switchboard_core::RuntimeEnv;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
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

type Route = (u64, usize, UnboundedSender<usize>);

struct Hub {
    manager: GlobalHotKeyManager,
    routes: Mutex<HashMap<u32, Vec<Route>>>,
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
            for (_, index, sender) in targets {
                let _ = sender.send(*index);
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
        index: usize,
        sender: UnboundedSender<usize>,
    ) -> Result<Registration, String> {
        let mut routes = self.routes.lock().map_err(|_| "hotkey routes poisoned")?;
        let entry = routes.entry(hotkey.id()).or_default();
        if entry.is_empty() {
            self.manager
                .register(hotkey)
                .map_err(|e| format!("cannot grab it ({e}); another program may hold it"))?;
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        entry.push((token, index, sender));
        Ok(Registration { hotkey, token })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(hub) = HUB.get() else { return };
        let Ok(mut routes) = hub.routes.lock() else {
            return;
        };
        let id = self.hotkey.id();
        if let Some(entry) = routes.get_mut(&id) {
            entry.retain(|(token, _, _)| *token != self.token);
            if entry.is_empty() {
                routes.remove(&id);
                if let Err(error) = hub.manager.unregister(self.hotkey) {
                    tracing::warn!(%error, "could not release a global hotkey");
                }
            }
        }
    }
}

/// Register this connection's hotkeys and emit `hotkey.pressed` until `cancel`.
pub(crate) async fn run(
    env: Arc<dyn RuntimeEnv>,
    health: Arc<Health>,
    hotkeys: &[HotkeySettings],
    cancel: CancellationToken,
) {
    const KEY: &str = "hotkeys";
    let hub = match hub() {
        Ok(hub) => hub,
        Err(problem) => {
            health.set(KEY, Some(problem)).await;
            cancel.cancelled().await;
            return;
        }
    };
    let (sender, mut presses) = unbounded_channel();
    let mut registrations = Vec::new();
    let mut problems = Vec::new();
    for (index, hotkey) in hotkeys.iter().enumerate() {
        let registered =
            parse(&hotkey.keys).and_then(|key| hub.register(key, index, sender.clone()));
        match registered {
            Ok(registration) => registrations.push(registration),
            Err(problem) => problems.push(format!(
                "hotkey `{}` ({}): {problem}",
                hotkey.name, hotkey.keys
            )),
        }
    }
    drop(sender);
    health
        .set(KEY, (!problems.is_empty()).then(|| problems.join("; ")))
        .await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            pressed = presses.recv() => match pressed {
                Some(index) => {
                    let hotkey = &hotkeys[index];
                    env.emit("hotkey.pressed", json!({ "hotkey": hotkey.name, "keys": hotkey.keys }))
                        .await;
                }
                None => {
                    // Nothing registered: nothing will ever arrive.
                    cancel.cancelled().await;
                    break;
                }
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
