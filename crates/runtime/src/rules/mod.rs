//! The rules engine: when an event matches a rule, run the rule's actions as
//! durable jobs.
//!
//! # Shape
//!
//! * **The rule set** comes from two places, a rules file (YAML or TOML,
//!   watched and hot-reloaded when its text changes) and the API (stored in
//!   the database). Both go through one validation ([`compile`]) of the
//!   *whole* set: a bad rule rejects the change and the running rules stay
//!   as they were.
//! * **Matching** ([`runner`]) reads the event log in id order from a durable
//!   cursor (woken by the event bus), so an event that arrives while the
//!   daemon is busy or stopped is still seen. A rule matches on its event
//!   type (and connection; the account's own `is_self` events only with
//!   `on.include_self`), then its condition; then cooldown, debounce and
//!   variable updates apply, the action parameters are rendered, and a *run*
//!   is stored: `(rule, event)` is unique, so an event starts a rule at most
//!   once even with several processes reading the log.
//! * **Runs** execute their actions in order, each as one job per target
//!   connection (idempotency key `rule-run:{run}:{index}`, so a run resumed
//!   after a crash never submits twice), waiting for an action's jobs before
//!   the next. A run in a named queue waits until the queue's previous run
//!   finished (priority first, then arrival); queues can be paused.
//! * **Traceability**: `rule.matched`, `rule.skipped` and `rule.run.finished`
//!   events, and runs that list their jobs: event -> rule -> run -> jobs.
//!
//! Cooldowns start when a run is created, not when its jobs execute, so a
//! cooldown holds even while the run waits in a queue.

pub mod compile;
pub mod model;
mod runner;
pub mod template;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use switchboard_core::time::now_ms;
use switchboard_core::{Event, NewEvent};
use switchboard_store::{RuleRun, RunFilter};
use tokio::sync::Notify;

use crate::engine::{Engine, EngineError, FieldError, Result};
pub use compile::{CompiledRule, SELF_MARKED_EVENTS, SYSTEM_EVENTS};
pub use model::{
    ActionDef, CooldownDef, QueueDef, RuleDef, RuleError, RuleSource, RulesFormat, TriggerDef,
    parse_rules,
};

/// Where the rules file is, if any.
#[derive(Debug, Clone, Default)]
pub struct RulesConfig {
    /// A YAML (`.yaml`, `.yml`) or TOML (`.toml`) rules file, watched for changes.
    pub file: Option<PathBuf>,
}

/// The rules engine's in-memory state, part of the [`Engine`].
pub(crate) struct RulesState {
    set: RwLock<Arc<Vec<CompiledRule>>>,
    /// The file's last good text, for line numbers and `GET /rules`.
    file_rules: RwLock<Vec<RuleDef>>,
    /// The file's last problem, if its current text is rejected.
    file_error: RwLock<Option<Vec<RuleError>>>,
    /// Hash of the file text last applied or rejected: the watcher reloads
    /// only when the text differs from it.
    file_hash: Mutex<Option<u64>>,
    /// (scope, key) -> end of the cooldown.
    cooldowns: Mutex<HashMap<(String, String), Instant>>,
    /// rule -> generation of its pending debounce.
    debounce: Mutex<HashMap<String, u64>>,
    /// Wakes the run executor.
    pub(crate) runs_wake: Notify,
    /// Serializes changes to the rule set.
    apply_lock: tokio::sync::Mutex<()>,
}

/// A fingerprint of a rules text, to tell a real edit from a notification
/// that changed nothing (an access, a `touch`, a save of the same text).
fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl RulesState {
    /// Note `text` as the file's last applied or rejected text; whether it
    /// differs from the previous one.
    fn remember_file_text(&self, text: &str) -> bool {
        let hash = text_hash(text);
        let mut last = self.file_hash.lock().expect("rules lock poisoned");
        let changed = *last != Some(hash);
        *last = Some(hash);
        changed
    }

    pub(crate) fn new() -> RulesState {
        RulesState {
            set: RwLock::new(Arc::new(Vec::new())),
            file_rules: RwLock::new(Vec::new()),
            file_error: RwLock::new(None),
            file_hash: Mutex::new(None),
            cooldowns: Mutex::new(HashMap::new()),
            debounce: Mutex::new(HashMap::new()),
            runs_wake: Notify::new(),
            apply_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn current(&self) -> Arc<Vec<CompiledRule>> {
        self.set.read().expect("rules lock poisoned").clone()
    }
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    #[serde(flatten)]
    pub def: RuleDef,
    pub source: RuleSource,
}

/// What a dry run found for one rule.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunRule {
    pub rule: String,
    /// Whether the event type and connection match.
    pub triggered: bool,
    /// The condition's value (`None` without a condition or when not triggered).
    pub condition: Option<bool>,
    /// Whether a run would start.
    pub matched: bool,
    /// Why not, when it would not.
    pub reason: Option<String>,
    /// The jobs a run would create, with rendered parameters.
    pub jobs: Vec<DryRunJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DryRunJob {
    pub action: String,
    pub connection_id: Option<String>,
    pub label: Option<String>,
    pub params: Value,
}

/// One event's consequences.
#[derive(Debug, Clone)]
pub struct EventTrace {
    pub event: Event,
    pub runs: Vec<RunTrace>,
}

#[derive(Debug, Clone)]
pub struct RunTrace {
    pub run: RuleRun,
    pub jobs: Vec<switchboard_core::Job>,
}

/// A queue as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub name: String,
    pub waiting: i64,
    pub running: i64,
    pub paused: bool,
}

fn rule_errors(errors: Vec<RuleError>) -> EngineError {
    EngineError::Invalid(
        errors
            .into_iter()
            .map(|e| {
                let mut field = match &e.rule {
                    Some(rule) if e.field.is_empty() => format!("rules[{rule}]"),
                    Some(rule) => format!("rules[{rule}].{}", e.field),
                    None => "rules".to_owned(),
                };
                match (e.line, e.column) {
                    (Some(line), Some(column)) => {
                        field.push_str(&format!(" (line {line}, column {column})"))
                    }
                    (Some(line), None) => field.push_str(&format!(" (line {line})")),
                    _ => {}
                }
                FieldError::new(field, e.message)
            })
            .collect(),
    )
}

const PAUSED_PREFIX: &str = "queue.paused.";

impl Engine {
    /// Read the rules file (if any) and the API rules and make them the
    /// running set. A bad file is reported and left out, so the daemon
    /// still starts with its API rules.
    pub(crate) async fn load_rules(&self) -> Result<()> {
        if let Some(path) = self.rules_config().file.clone() {
            let parsed = match self.read_rules_text(&path).await {
                Ok(text) => {
                    self.rules().remember_file_text(&text);
                    parse_rules(&text, RulesFormat::of_path(&path))
                }
                Err(errors) => Err(errors),
            };
            match parsed {
                Ok(defs) => {
                    *self
                        .rules()
                        .file_rules
                        .write()
                        .expect("rules lock poisoned") = defs;
                }
                Err(errors) => {
                    tracing::error!(file = %path.display(), errors = %errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "), "the rules file is invalid; its rules are not loaded");
                    *self
                        .rules()
                        .file_error
                        .write()
                        .expect("rules lock poisoned") = Some(errors);
                }
            }
        }
        let file_rules = self
            .rules()
            .file_rules
            .read()
            .expect("rules lock poisoned")
            .clone();
        let api_rules = self.api_rules().await?;
        match self.compile_set(file_rules, api_rules, None).await {
            Ok(set) => {
                *self.rules().set.write().expect("rules lock poisoned") = Arc::new(set);
                Ok(())
            }
            Err(errors) => {
                // The connections a rule names may be gone: start with what compiles.
                tracing::error!(errors = %errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "), "some rules are invalid");
                Err(rule_errors(errors))
            }
        }
    }

    /// The rules file's text, once it is stable.
    async fn read_rules_text(
        &self,
        path: &std::path::Path,
    ) -> std::result::Result<String, Vec<RuleError>> {
        let read = || match std::fs::read_to_string(path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(vec![RuleError {
                rule: None,
                field: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
                line: None,
                column: None,
            }]),
        };
        // An editor (or `fs::write`) truncates the file before writing it:
        // a read in between sees an empty, valid rule set, and applying it
        // would drop every rule. Read until two reads agree.
        let mut text = read()?;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let again = read()?;
            if again == text {
                break;
            }
            text = again;
        }
        Ok(text)
    }

    async fn api_rules(&self) -> Result<Vec<RuleDef>> {
        let mut out = Vec::new();
        for stored in self.store().list_rules().await? {
            match serde_json::from_value::<RuleDef>(stored.definition) {
                Ok(def) => out.push(def),
                Err(e) => {
                    tracing::error!(rule = %stored.name, error = %e, "a stored rule cannot be read")
                }
            }
        }
        Ok(out)
    }

    async fn compile_set(
        &self,
        file_rules: Vec<RuleDef>,
        api_rules: Vec<RuleDef>,
        file_text: Option<(&str, RulesFormat)>,
    ) -> std::result::Result<Vec<CompiledRule>, Vec<RuleError>> {
        let connections = self.store().list_connections().await.map_err(|e| {
            vec![RuleError {
                rule: None,
                field: String::new(),
                message: format!("cannot read connections: {e}"),
                line: None,
                column: None,
            }]
        })?;
        let rules = file_rules
            .into_iter()
            .map(|d| (d, RuleSource::File))
            .chain(api_rules.into_iter().map(|d| (d, RuleSource::Api)))
            .collect();
        compile::compile(
            rules,
            self.registry(),
            &connections,
            self.template_env(),
            file_text,
        )
    }

    /// Re-read the rules file; on success it replaces the file's rules, on
    /// failure the running rules stay and `rules.rejected` says why. An
    /// explicit reload always applies the text, even an unchanged one (the
    /// connections it names may have changed).
    pub async fn reload_rules_file(&self) -> Result<usize> {
        Ok(self
            .reload_file(true)
            .await?
            .expect("a forced reload always applies"))
    }

    /// The watcher's reload: `None` when the text is the one last applied or
    /// rejected (nothing happens then: no event, no log).
    async fn reload_file(&self, force: bool) -> Result<Option<usize>> {
        let Some(path) = self.rules_config().file.clone() else {
            return Err(EngineError::Conflict(
                "no rules file is configured (set `rules.file`)".into(),
            ));
        };
        let _guard = self.rules().apply_lock.lock().await;
        let outcome = match self.read_rules_text(&path).await {
            Ok(text) => {
                if !self.rules().remember_file_text(&text) && !force {
                    return Ok(None);
                }
                match parse_rules(&text, RulesFormat::of_path(&path)) {
                    Ok(defs) => {
                        let api_rules = self.api_rules().await?;
                        let format = RulesFormat::of_path(&path);
                        self.compile_set(defs.clone(), api_rules, Some((&text, format)))
                            .await
                            .map(|set| (defs, set))
                    }
                    Err(errors) => Err(errors),
                }
            }
            Err(errors) => Err(errors),
        };
        match outcome {
            Ok((defs, set)) => {
                let count = defs.len();
                *self
                    .rules()
                    .file_rules
                    .write()
                    .expect("rules lock poisoned") = defs;
                *self
                    .rules()
                    .file_error
                    .write()
                    .expect("rules lock poisoned") = None;
                *self.rules().set.write().expect("rules lock poisoned") = Arc::new(set);
                tracing::info!(file = %path.display(), rules = count, "rules file loaded");
                self.publish_or_log(NewEvent::new(
                    "rules.reloaded",
                    None,
                    json!({ "file": path.display().to_string(), "rules": count }),
                ))
                .await;
                Ok(Some(count))
            }
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                tracing::error!(file = %path.display(), errors = %text.join("; "), "the edited rules file is invalid; the running rules stay");
                *self
                    .rules()
                    .file_error
                    .write()
                    .expect("rules lock poisoned") = Some(errors.clone());
                self.publish_or_log(NewEvent::new(
                    "rules.rejected",
                    None,
                    json!({ "file": path.display().to_string(), "errors": errors }),
                ))
                .await;
                Err(rule_errors(errors))
            }
        }
    }

    /// Every rule, file rules first.
    pub fn list_rules(&self) -> Vec<RuleView> {
        self.rules()
            .current()
            .iter()
            .map(|r| RuleView {
                def: r.def.clone(),
                source: r.source,
            })
            .collect()
    }

    /// The rules file's current problems, if its text is rejected.
    pub fn rules_file_errors(&self) -> Option<Vec<RuleError>> {
        self.rules()
            .file_error
            .read()
            .expect("rules lock poisoned")
            .clone()
    }

    pub fn get_rule(&self, name: &str) -> Result<RuleView> {
        self.list_rules()
            .into_iter()
            .find(|r| r.def.name == name)
            .ok_or_else(|| EngineError::NotFound {
                what: "rule",
                id: name.to_owned(),
            })
    }

    /// Create or replace an API rule; the whole set is validated first.
    pub async fn put_rule(&self, def: RuleDef) -> Result<(RuleView, bool)> {
        let _guard = self.rules().apply_lock.lock().await;
        if self
            .rules()
            .current()
            .iter()
            .any(|r| r.def.name == def.name && r.source == RuleSource::File)
        {
            return Err(EngineError::Conflict(format!(
                "rule `{}` comes from the rules file; change it there",
                def.name
            )));
        }
        let mut api_rules = self.api_rules().await?;
        let created = !api_rules.iter().any(|r| r.name == def.name);
        api_rules.retain(|r| r.name != def.name);
        api_rules.push(def.clone());
        let file_rules = self
            .rules()
            .file_rules
            .read()
            .expect("rules lock poisoned")
            .clone();
        let set = self
            .compile_set(file_rules, api_rules, None)
            .await
            .map_err(rule_errors)?;
        let stored = serde_json::to_value(&def).expect("a rule serializes");
        self.store().put_rule(&def.name, &stored, now_ms()).await?;
        *self.rules().set.write().expect("rules lock poisoned") = Arc::new(set);
        Ok((
            RuleView {
                def,
                source: RuleSource::Api,
            },
            created,
        ))
    }

    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        let _guard = self.rules().apply_lock.lock().await;
        let current = self.rules().current();
        match current.iter().find(|r| r.def.name == name) {
            None => {
                return Err(EngineError::NotFound {
                    what: "rule",
                    id: name.to_owned(),
                });
            }
            Some(r) if r.source == RuleSource::File => {
                return Err(EngineError::Conflict(format!(
                    "rule `{name}` comes from the rules file; remove it there"
                )));
            }
            Some(_) => {}
        }
        self.store().delete_rule(name).await?;
        let set: Vec<CompiledRule> = current
            .iter()
            .filter(|r| r.def.name != name)
            .cloned()
            .collect();
        *self.rules().set.write().expect("rules lock poisoned") = Arc::new(set);
        Ok(())
    }

    /// Enable or disable an API rule.
    pub async fn set_rule_enabled(&self, name: &str, enabled: bool) -> Result<RuleView> {
        let mut rule = self.get_rule(name)?;
        rule.def.enabled = enabled;
        Ok(self.put_rule(rule.def).await?.0)
    }

    /// Validate a rules text as if it replaced the rules file.
    pub async fn validate_rules_text(
        &self,
        text: &str,
        format: RulesFormat,
    ) -> Result<Vec<String>> {
        let defs = parse_rules(text, format).map_err(rule_errors)?;
        let names = defs.iter().map(|d| d.name.clone()).collect();
        let api_rules = self.api_rules().await?;
        let file_names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        // Rules of the text that share a name with an API rule are the
        // text's; compare against the other API rules.
        let api_rules: Vec<RuleDef> = api_rules
            .into_iter()
            .filter(|r| !file_names.contains(&r.name))
            .collect();
        self.compile_set(defs, api_rules, Some((text, format)))
            .await
            .map_err(rule_errors)?;
        Ok(names)
    }

    /// What the rules of `text` would do with `event`; nothing is sent,
    /// stored or counted (cooldowns and debounce are not applied).
    pub async fn dry_run_rules(
        &self,
        text: &str,
        format: RulesFormat,
        event: Event,
    ) -> Result<Vec<DryRunRule>> {
        let defs = parse_rules(text, format).map_err(rule_errors)?;
        let set = self
            .compile_set(defs, Vec::new(), Some((text, format)))
            .await
            .map_err(rule_errors)?;
        let vars = self.rule_vars().await?;
        let connections = self.store().list_connections().await?;
        let env = self.template_env();
        let event_json = runner::event_json(&event);
        let mut out = Vec::new();
        for rule in set.iter() {
            let scope = template::Scope {
                event: &event_json,
                vars: &vars,
                rule: &rule.def.name,
            };
            let triggered = rule.triggered_by(&event.kind, event.connection_id.as_deref());
            let mut entry = DryRunRule {
                rule: rule.def.name.clone(),
                triggered,
                condition: None,
                matched: false,
                reason: None,
                jobs: Vec::new(),
            };
            if !rule.def.enabled {
                entry.reason = Some("the rule is disabled".into());
            } else if triggered && rule.skips_self(&event) {
                entry.reason = Some(
                    "the event is the account's own (`is_self`); set `on.include_self: true` to start on it"
                        .into(),
                );
            } else if !triggered {
                entry.reason = Some(match &rule.def.on.connection {
                    Some(connection) => format!(
                        "it starts on `{}` from connection `{connection}`",
                        rule.def.on.event
                    ),
                    None => format!("it starts on `{}`", rule.def.on.event),
                });
            } else {
                let condition = match &rule.def.condition {
                    Some(c) => Some(template::evaluate(env, c, &scope).map_err(|e| {
                        EngineError::Invalid(vec![FieldError::new(
                            format!("rules[{}].if", rule.def.name),
                            e,
                        )])
                    })?),
                    None => None,
                };
                entry.condition = condition;
                if condition == Some(false) {
                    entry.reason = Some("the condition is false".into());
                } else {
                    entry.matched = true;
                    for (i, action) in rule.actions.iter().enumerate() {
                        let params = template::render_tree(
                            env,
                            &action.params,
                            &scope,
                            &format!("do[{i}].params"),
                        )
                        .map_err(|(field, e)| {
                            EngineError::Invalid(vec![FieldError::new(
                                format!("rules[{}].{field}", rule.def.name),
                                e,
                            )])
                        })?;
                        let targets: Vec<&switchboard_core::Connection> = match &action.connection {
                            Some(id) => connections.iter().filter(|c| &c.id == id).collect(),
                            None => {
                                let connector = action.action.split('.').next().unwrap_or("");
                                connections
                                    .iter()
                                    .filter(|c| c.connector == connector && c.enabled)
                                    .collect()
                            }
                        };
                        if targets.is_empty() {
                            entry.jobs.push(DryRunJob {
                                action: action.action.clone(),
                                connection_id: None,
                                label: None,
                                params,
                            });
                        } else {
                            for target in targets {
                                entry.jobs.push(DryRunJob {
                                    action: action.action.clone(),
                                    connection_id: Some(target.id.clone()),
                                    label: Some(target.label.clone()),
                                    params: params.clone(),
                                });
                            }
                        }
                    }
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// The rule variables.
    pub async fn rule_vars(&self) -> Result<Value> {
        Ok(serde_json::to_value(self.store().rule_vars().await?).expect("variables serialize"))
    }

    /// Set (`Some`) or delete (`None`) a rule variable.
    pub async fn set_rule_var(&self, name: &str, value: Option<Value>) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(EngineError::Invalid(vec![FieldError::new(
                "name",
                "variable names are letters, digits and `_`",
            )]));
        }
        Ok(self
            .store()
            .set_rule_var(name, value.as_ref(), now_ms())
            .await?)
    }

    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RuleRun>> {
        Ok(self.store().list_runs(filter).await?)
    }

    pub async fn get_run(&self, id: &str) -> Result<RuleRun> {
        self.store()
            .get_run(id)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "rule run",
                id: id.to_owned(),
            })
    }

    /// An event, the runs it started and their jobs.
    pub async fn trace_event(&self, id: i64) -> Result<EventTrace> {
        let event = self
            .store()
            .get_event(id)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "event",
                id: id.to_string(),
            })?;
        let runs = self
            .store()
            .list_runs(&RunFilter {
                event_id: Some(id),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let mut traces = Vec::new();
        for run in runs {
            let mut jobs = Vec::new();
            for job_id in runner::job_ids(&run.actions) {
                if let Some(job) = self.store().get_job(&job_id).await? {
                    jobs.push(job);
                }
            }
            traces.push(RunTrace { run, jobs });
        }
        Ok(EventTrace {
            event,
            runs: traces,
        })
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueView>> {
        let paused = self.paused_queues().await?;
        let mut views: Vec<QueueView> = self
            .store()
            .queue_counts()
            .await?
            .into_iter()
            .map(|(name, waiting, running)| QueueView {
                paused: paused.contains(&name),
                name,
                waiting,
                running,
            })
            .collect();
        for name in paused {
            if !views.iter().any(|v| v.name == name) {
                views.push(QueueView {
                    name,
                    waiting: 0,
                    running: 0,
                    paused: true,
                });
            }
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(views)
    }

    /// Pause (no new run starts; a running one finishes) or resume a queue.
    pub async fn set_queue_paused(&self, name: &str, paused: bool) -> Result<()> {
        let key = format!("{PAUSED_PREFIX}{name}");
        self.store()
            .set_rule_meta(&key, paused.then_some("1"))
            .await?;
        self.rules().runs_wake.notify_one();
        Ok(())
    }

    pub(crate) async fn paused_queues(&self) -> Result<Vec<String>> {
        Ok(self
            .store()
            .rule_meta_with_prefix(PAUSED_PREFIX)
            .await?
            .into_iter()
            .map(|(k, _)| k[PAUSED_PREFIX.len()..].to_owned())
            .collect())
    }

    /// Whether a cooldown scope/key is cooling; starts it when not.
    fn take_cooldown(&self, scope: &str, key: &str, secs: u64) -> Option<Duration> {
        let mut cooldowns = self.rules().cooldowns.lock().expect("cooldowns poisoned");
        let now = Instant::now();
        cooldowns.retain(|_, until| *until > now);
        let entry = (scope.to_owned(), key.to_owned());
        if let Some(until) = cooldowns.get(&entry) {
            return Some(*until - now);
        }
        cooldowns.insert(entry, now + Duration::from_secs(secs));
        None
    }

    /// Watch the rules file and reload it when its text changes (within
    /// about a second; editors that replace the file are seen too, since the
    /// directory is watched). Accesses and saves of the same text do nothing.
    pub(crate) async fn watch_rules_file(
        self: Arc<Self>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        use notify::{RecursiveMode, Watcher};
        let Some(path) = self.rules_config().file.clone() else {
            return;
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_owned());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher =
            match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Only changes count: reading the file (ours included) is
                // an access notification, and reacting to it would loop.
                let changes = |kind: &notify::EventKind| {
                    use notify::EventKind;
                    use notify::event::ModifyKind;
                    matches!(
                        kind,
                        EventKind::Create(_)
                            | EventKind::Remove(_)
                            | EventKind::Modify(
                                ModifyKind::Data(_)
                                    | ModifyKind::Name(_)
                                    | ModifyKind::Any
                                    | ModifyKind::Other
                            )
                    )
                };
                if let Ok(event) = event
                    && changes(&event.kind)
                    && event.paths.iter().any(|p| p.file_name() == name.as_deref())
                {
                    let _ = tx.send(());
                }
            }) {
                Ok(w) => w,
                Err(error) => {
                    tracing::error!(%error, "cannot watch the rules file; edits need a restart");
                    return;
                }
            };
        if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::error!(%error, dir = %dir.display(), "cannot watch the rules file's directory; edits need a restart");
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = rx.recv() => if changed.is_none() { return },
            }
            // Let the editor finish writing (several events per save).
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            // An unchanged text (a save without edits) reloads nothing.
            let _ = self.reload_file(false).await;
        }
    }
}
