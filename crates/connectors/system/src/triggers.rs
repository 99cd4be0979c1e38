//! The `system` triggers: cron schedules and file watches (and hotkeys, in
//! `hotkeys.rs`), each a task inside the connection's session, so they stop
//! and start with its runtime.
//!
//! # Cron
//! Each schedule keeps the last slot it handled in the connection's durable
//! state (`cron.<name>`: `{"last": epoch ms}`; at first start, the time it
//! started). One loop serves the ordinary fire and the catch-up: wake up,
//! ask [`schedule::resume`] for the latest slot between the last handled one
//! and now, fire it if it is recent enough, remember it, sleep until the
//! next. The slot is stored before the event is emitted, and the loop is
//! only cancelled while asleep, so a restart never fires a slot twice; a
//! daemon that was down fires the latest slot it missed once, `late`, if
//! it is within `catch_up_secs`. Sleeps are at most a minute long and the
//! wall clock is read again after each, so a suspended machine or a clock
//! change is noticed.
//!
//! # File watches
//! `notify` with the full debouncer: bursts of events for one file become
//! one `file.created`, `file.modified` or `file.removed` after
//! `debounce_ms` of quiet. A directory that is missing or disappears makes
//! the connection `degraded` (through [`Health`]), and the watch waits for
//! it to come back; nothing crashes and the session stays up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache, new_debouncer,
};
use serde_json::json;
use switchboard_core::time::now_ms;
use switchboard_core::{ConnectorError, RuntimeContext, RuntimeEnv, StatusKind};
use tokio_util::sync::CancellationToken;

use crate::schedule::{self, Resume, Schedule};
use crate::{DEFAULT_CATCH_UP_SECS, ScheduleSettings, SystemSettings, WatchSettings};

/// A slot fired within this long of its time is on time (not `late`), and
/// is fired even when catch-up is off.
const ON_TIME_MS: i64 = 2_000;
/// The longest sleep before the wall clock is read again.
const MAX_SLEEP_MS: i64 = 60_000;
/// How often a watch checks that its directory is still there (or back).
const WATCH_RECHECK: Duration = Duration::from_secs(2);
const DEFAULT_DEBOUNCE_MS: u64 = 500;

/// A glob matched against paths relative to the watched directory; `*`
/// does not cross `/` (write `**/*.png` for any depth).
pub(crate) fn compile_glob(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{glob}` is not a glob: {e}"))
}

/// The connection's status as the sum of its triggers' problems: `degraded`
/// (listing them) while any has one, `connected` when none has.
pub(crate) struct Health {
    env: Arc<dyn RuntimeEnv>,
    problems: tokio::sync::Mutex<BTreeMap<String, String>>,
}

impl Health {
    pub(crate) fn new(env: Arc<dyn RuntimeEnv>) -> Health {
        Health {
            env,
            problems: Default::default(),
        }
    }

    /// Set (`Some`) or clear (`None`) one trigger's problem.
    pub(crate) async fn set(&self, key: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().await;
        let changed = match problem {
            Some(problem) => {
                problems.insert(key.to_owned(), problem.clone()).as_ref() != Some(&problem)
            }
            None => problems.remove(key).is_some(),
        };
        if !changed {
            return;
        }
        if problems.is_empty() {
            self.env.report_status(StatusKind::Connected, None).await;
        } else {
            let reason = problems.values().cloned().collect::<Vec<_>>().join("; ");
            self.env
                .report_status(StatusKind::Degraded, Some(reason))
                .await;
        }
    }
}

/// A live watch of one directory: the debouncer (dropping it stops it) and
/// the channel its batches arrive on.
pub(crate) struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    receiver: tokio::sync::mpsc::UnboundedReceiver<DebounceEventResult>,
}

fn watch_mode(watch: &WatchSettings) -> RecursiveMode {
    if watch.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    }
}

/// Start watching `watch.path`.
pub(crate) fn start_watch(watch: &WatchSettings) -> Result<Watcher, String> {
    let root = Path::new(&watch.path);
    if !root.is_dir() {
        return Err(format!(
            "watch `{}`: {} is not a directory (missing?); waiting for it",
            watch.name,
            root.display()
        ));
    }
    let debounce = Duration::from_millis(watch.debounce_ms.unwrap_or(DEFAULT_DEBOUNCE_MS));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let _ = sender.send(result);
    })
    .and_then(|mut debouncer| debouncer.watch(root, watch_mode(watch)).map(|()| debouncer))
    .map_err(|error| {
        format!(
            "watch `{}`: cannot watch {}: {error}; retrying",
            watch.name,
            root.display()
        )
    })?;
    Ok(Watcher {
        _debouncer: debouncer,
        receiver,
    })
}

/// Start every watch that can start now, so that a connection is watching
/// by the time it is `connected`; the others are retried by [`run`].
pub(crate) fn start_watches(settings: &SystemSettings) -> Vec<Option<Watcher>> {
    settings
        .watches
        .iter()
        .map(|watch| start_watch(watch).ok())
        .collect()
}

/// Run every configured trigger until `cancel`. `started` are the watches
/// [`start_watches`] started, in the order of `settings.watches`.
pub(crate) async fn run(
    ctx: &RuntimeContext,
    settings: &SystemSettings,
    started: Vec<Option<Watcher>>,
    #[cfg(all(feature = "hotkeys", target_os = "linux"))]
    runtime_hotkeys: &crate::hotkeys::RuntimeHotkeys,
    cancel: CancellationToken,
) -> Result<(), ConnectorError> {
    let health = Arc::new(Health::new(ctx.env.clone()));
    let window_ms = settings.catch_up_secs.unwrap_or(DEFAULT_CATCH_UP_SECS) as i64 * 1000;
    let mut tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for entry in &settings.schedules {
        tasks.push(Box::pin(run_schedule(
            ctx.env.clone(),
            entry,
            window_ms,
            cancel.clone(),
        )));
    }
    let mut started = started.into_iter();
    for watch in &settings.watches {
        tasks.push(Box::pin(run_watch(
            ctx.env.clone(),
            health.clone(),
            watch,
            started.next().flatten(),
            cancel.clone(),
        )));
    }
    // Always, in hotkey builds: `system.hotkey_register` may add one later.
    #[cfg(all(feature = "hotkeys", target_os = "linux"))]
    tasks.push(Box::pin(crate::hotkeys::run(
        ctx.env.clone(),
        health.clone(),
        &settings.hotkeys,
        runtime_hotkeys,
        cancel.clone(),
    )));
    if tasks.is_empty() {
        cancel.cancelled().await;
    } else {
        futures::future::join_all(tasks).await;
    }
    Ok(())
}

fn state_key(entry: &ScheduleSettings) -> String {
    format!("cron.{}", entry.name)
}

async fn remember(env: &Arc<dyn RuntimeEnv>, key: &str, slot: i64) {
    if let Err(error) = env.store_state(key, Some(json!({ "last": slot }))).await {
        tracing::warn!(%error, %key, "could not remember the last cron slot");
    }
}

async fn run_schedule(
    env: Arc<dyn RuntimeEnv>,
    entry: &ScheduleSettings,
    window_ms: i64,
    cancel: CancellationToken,
) {
    let schedule = match Schedule::parse(&entry.cron, entry.timezone.as_deref()) {
        Ok(schedule) => schedule,
        Err(error) => {
            // Settings are checked before they are stored; this is a bug.
            tracing::error!(%error, schedule = %entry.name, "invalid schedule");
            return;
        }
    };
    let key = state_key(entry);
    let stored = match env.load_state(&key).await {
        Ok(value) => value.and_then(|v| v["last"].as_i64()),
        Err(error) => {
            tracing::warn!(%error, %key, "could not read the last cron slot; starting from now");
            None
        }
    };
    let mut last = match stored {
        Some(last) => last,
        None => {
            // First start: slots from now on are ours to fire.
            let now = now_ms();
            remember(&env, &key, now).await;
            now
        }
    };
    let window_ms = window_ms.max(ON_TIME_MS);
    // A slot that passed before this session started was missed, however
    // recently: the first catch-up is late.
    let mut starting = true;
    loop {
        let now = now_ms();
        let resumed = schedule::resume(&schedule, Some(last), now, window_ms);
        let late_anyway = std::mem::take(&mut starting);
        match resumed {
            Resume::CatchUp(slot) => {
                last = slot;
                remember(&env, &key, slot).await;
                let payload = json!({
                    "schedule": entry.name,
                    "cron": entry.cron,
                    "timezone": schedule.zone().name(),
                    "scheduled_at": slot,
                    "scheduled_local": schedule.format(slot),
                    "fired_at": now,
                    "late": late_anyway || now - slot > ON_TIME_MS,
                });
                env.emit("cron.fired", payload).await;
                continue;
            }
            Resume::Skip(slot) => {
                tracing::info!(
                    schedule = %entry.name,
                    slot = %schedule.format(slot),
                    "skipping a missed cron slot older than catch_up_secs"
                );
                last = slot;
                remember(&env, &key, slot).await;
            }
            Resume::Nothing => {}
        }
        let wait = match schedule.next_after(last.max(now)) {
            Some(next) => (next - now_ms()).clamp(0, MAX_SLEEP_MS),
            None => {
                tracing::info!(schedule = %entry.name, "the schedule has no future slot");
                cancel.cancelled().await;
                return;
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
    }
}

/// What happened to one path over a debounced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Created,
    Modified,
    Removed,
}

impl Change {
    fn event_type(self) -> &'static str {
        match self {
            Change::Created => "file.created",
            Change::Modified => "file.modified",
            Change::Removed => "file.removed",
        }
    }
}

/// The raw changes of one notify event, path by path.
fn raw_changes(kind: &EventKind, paths: &[PathBuf]) -> Vec<(PathBuf, Change)> {
    let all = |change: Change| paths.iter().map(|p| (p.clone(), change)).collect();
    match kind {
        EventKind::Create(_) => all(Change::Created),
        EventKind::Remove(_) => all(Change::Removed),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => vec![
            (paths[0].clone(), Change::Removed),
            (paths[1].clone(), Change::Created),
        ],
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => all(Change::Removed),
        EventKind::Modify(ModifyKind::Name(_)) => paths
            .iter()
            .map(|p| {
                let change = if p.exists() {
                    Change::Created
                } else {
                    Change::Removed
                };
                (p.clone(), change)
            })
            .collect(),
        // Permissions and timestamps alone are not a change of the file.
        EventKind::Modify(ModifyKind::Metadata(_)) => Vec::new(),
        EventKind::Modify(_) => all(Change::Modified),
        _ => Vec::new(),
    }
}

/// One change per path for a debounced batch, in the order paths first
/// appeared: created-then-written is `created`, created-then-removed is
/// nothing, anything ending in removal is `removed`.
fn summarize(events: &[DebouncedEvent]) -> Vec<(PathBuf, Change)> {
    let mut order: Vec<PathBuf> = Vec::new();
    let mut seen: BTreeMap<PathBuf, (Change, Change)> = BTreeMap::new();
    for event in events {
        for (path, change) in raw_changes(&event.kind, &event.paths) {
            match seen.get_mut(&path) {
                Some((_, last)) => *last = change,
                None => {
                    order.push(path.clone());
                    seen.insert(path, (change, change));
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|path| {
            let (first, last) = seen[&path];
            let change = match (first, last) {
                (Change::Created, Change::Removed) => return None,
                (_, Change::Removed) => Change::Removed,
                (Change::Created, _) => Change::Created,
                (_, last) => last,
            };
            Some((path, change))
        })
        .collect()
}

async fn emit_changes(
    env: &Arc<dyn RuntimeEnv>,
    watch: &WatchSettings,
    root: &Path,
    glob: Option<&GlobMatcher>,
    events: &[DebouncedEvent],
) {
    for (path, change) in summarize(events) {
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let size = match change {
            Change::Removed => None,
            _ => match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(meta) => Some(meta.len()),
                // Gone again already: its removal comes in a later batch.
                Err(_) => continue,
            },
        };
        if let Some(glob) = glob
            && !glob.is_match(relative)
        {
            continue;
        }
        env.emit(
            change.event_type(),
            json!({
                "watch": watch.name,
                "path": path.to_string_lossy(),
                "relative_path": relative.to_string_lossy(),
                "size": size,
            }),
        )
        .await;
    }
}

async fn run_watch(
    env: Arc<dyn RuntimeEnv>,
    health: Arc<Health>,
    watch: &WatchSettings,
    mut started: Option<Watcher>,
    cancel: CancellationToken,
) {
    let glob = match watch.glob.as_deref().map(compile_glob).transpose() {
        Ok(glob) => glob,
        Err(error) => {
            tracing::error!(%error, watch = %watch.name, "invalid glob");
            return;
        }
    };
    let root = PathBuf::from(&watch.path);
    let key = format!("watch.{}", watch.name);
    loop {
        let mut watcher = match started.take().map(Ok).unwrap_or_else(|| start_watch(watch)) {
            Ok(watcher) => watcher,
            Err(problem) => {
                health.set(&key, Some(problem)).await;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_RECHECK) => continue,
                }
            }
        };
        health.set(&key, None).await;
        let mut recheck = tokio::time::interval(WATCH_RECHECK);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = watcher.receiver.recv() => match received {
                    Some(Ok(events)) => {
                        emit_changes(&env, watch, &root, glob.as_ref(), &events).await;
                    }
                    Some(Err(errors)) => {
                        for error in errors {
                            tracing::warn!(%error, watch = %watch.name, "file watch error");
                        }
                    }
                    None => break,
                },
                _ = recheck.tick() => {
                    if !root.is_dir() {
                        break;
                    }
                }
            }
        }
        // The directory went away (or the watcher stopped): drop this
        // watcher and wait for the directory again.
        drop(watcher);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use notify::Event;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> DebouncedEvent {
        let mut event = Event::new(kind);
        for p in paths {
            event = event.add_path(PathBuf::from(p));
        }
        DebouncedEvent::new(event, Instant::now())
    }

    #[test]
    fn a_batch_becomes_one_change_per_path() {
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let batch = [
            event(EventKind::Create(CreateKind::File), &["/w/a"]),
            event(write, &["/w/a"]),
            event(write, &["/w/b"]),
            event(EventKind::Create(CreateKind::File), &["/w/tmp"]),
            event(EventKind::Remove(RemoveKind::File), &["/w/tmp"]),
            event(EventKind::Remove(RemoveKind::File), &["/w/c"]),
            event(
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
                &["/w/d"],
            ),
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/w/e", "/w/f"],
            ),
        ];
        let changes: Vec<(String, Change)> = summarize(&batch)
            .into_iter()
            .map(|(p, c)| (p.to_string_lossy().into_owned(), c))
            .collect();
        assert_eq!(
            changes,
            [
                ("/w/a".to_owned(), Change::Created),
                ("/w/b".to_owned(), Change::Modified),
                ("/w/c".to_owned(), Change::Removed),
                ("/w/e".to_owned(), Change::Removed),
                ("/w/f".to_owned(), Change::Created),
            ]
        );
    }

    #[test]
    fn globs_match_relative_paths_and_stars_stay_in_one_directory() {
        let top = compile_glob("*.mp4").unwrap();
        assert!(top.is_match("clip.mp4"));
        assert!(!top.is_match("sub/clip.mp4"));
        let deep = compile_glob("**/*.mp4").unwrap();
        assert!(deep.is_match("sub/clip.mp4"));
        assert!(deep.is_match("clip.mp4"));
        assert!(compile_glob("[a-").is_err());
    }
}
