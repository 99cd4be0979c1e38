//! The rules engine's two loops: matching events to rules (from a durable
//! cursor over the event log) and executing runs (in order, per queue).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::time::now_ms;
use switchboard_core::{Event, JobState, NewEvent, new_id};
use switchboard_store::{RuleRun, RunFilter};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::compile::CompiledRule;
use super::template::{self, Scope};
use crate::engine::{Engine, SubmitJob};

const CURSOR: &str = "cursor";
const BATCH: i64 = 500;

/// The event as templates see it.
pub(crate) fn event_json(event: &Event) -> Value {
    json!({
        "id": event.id,
        "type": event.kind,
        "connection_id": event.connection_id,
        "payload": event.payload,
        "at": event.at,
    })
}

/// Every job id a run's actions recorded.
pub(crate) fn job_ids(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["jobs"].as_array().cloned().unwrap_or_default())
        .filter_map(|j| j.as_str().map(str::to_owned))
        .collect()
}

impl Engine {
    /// Match events to rules until `cancel`.
    pub(crate) async fn match_events(self: Arc<Self>, cancel: CancellationToken) {
        let mut updates = self.subscribe_events();
        let mut cursor = match self.store().rule_meta(CURSOR).await {
            Ok(Some(value)) => value.parse::<i64>().unwrap_or(0),
            // First start: rules apply from now on, not to history.
            _ => self.store().last_event_id().await.unwrap_or(0),
        };
        loop {
            let events = match self
                .store()
                .list_events(&switchboard_store::EventFilter {
                    after_id: Some(cursor),
                    limit: BATCH,
                    ..Default::default()
                })
                .await
            {
                Ok(events) => events,
                Err(error) => {
                    tracing::error!(%error, "rules: cannot read the event log");
                    Vec::new()
                }
            };
            for event in &events {
                self.on_event(event).await;
                cursor = event.id;
            }
            if !events.is_empty()
                && let Err(error) = self
                    .store()
                    .set_rule_meta(CURSOR, Some(&cursor.to_string()))
                    .await
            {
                tracing::warn!(%error, "rules: cannot store the event cursor");
            }
            if events.len() as i64 == BATCH {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = updates.recv() => {
                    if let Err(RecvError::Closed) = received {
                        return;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn on_event(self: &Arc<Self>, event: &Event) {
        if event.kind.starts_with("rule.") || event.kind.starts_with("rules.") {
            return;
        }
        let rules = self.rules().current();
        let triggered: Vec<&CompiledRule> = rules
            .iter()
            .filter(|r| {
                r.def.enabled
                    && r.triggered_by(&event.kind, event.connection_id.as_deref())
                    && !r.skips_self(event)
            })
            .collect();
        if triggered.is_empty() {
            return;
        }
        let event_json = event_json(event);
        let mut vars: Option<Value> = None;
        for rule in triggered {
            if vars.is_none() || !rule.def.set.is_empty() {
                vars = Some(self.rule_vars().await.unwrap_or_else(|_| json!({})));
            }
            let vars = vars.clone().unwrap_or_default();
            let scope = Scope {
                event: &event_json,
                vars: &vars,
                rule: &rule.def.name,
            };
            if let Some(condition) = &rule.def.condition {
                match template::evaluate(self.template_env(), condition, &scope) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        self.rule_problem(rule, event, &format!("the condition failed: {error}"))
                            .await;
                        continue;
                    }
                }
            }
            match rule.def.debounce_ms {
                Some(ms) => self.debounce(rule.def.name.clone(), event.clone(), ms),
                None => self.admit(rule, event).await,
            }
        }
    }

    /// Run `event` through `rule` after `ms`, unless a newer event for the
    /// same rule comes first (then that one waits instead).
    fn debounce(self: &Arc<Self>, rule: String, event: Event, ms: u64) {
        let generation = {
            let mut pending = self.rules().debounce.lock().expect("debounce poisoned");
            let generation = pending.entry(rule.clone()).or_insert(0);
            *generation += 1;
            *generation
        };
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let current = engine
                .rules()
                .debounce
                .lock()
                .expect("debounce poisoned")
                .get(&rule)
                .copied();
            if current != Some(generation) {
                return;
            }
            let rules = engine.rules().current();
            if let Some(compiled) = rules.iter().find(|r| r.def.name == rule && r.def.enabled) {
                engine.admit(compiled, &event).await;
            }
        });
    }

    /// Cooldown, variables, rendering, and the run.
    async fn admit(self: &Arc<Self>, rule: &CompiledRule, event: &Event) {
        let event_json = event_json(event);
        let vars = self.rule_vars().await.unwrap_or_else(|_| json!({}));
        let scope = Scope {
            event: &event_json,
            vars: &vars,
            rule: &rule.def.name,
        };
        let env = self.template_env();
        if let Some(cooldown) = &rule.def.cooldown {
            let key = match &cooldown.key {
                Some(key) => match template::render_str(env, key, &scope) {
                    Ok(Value::String(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(error) => {
                        self.rule_problem(rule, event, &format!("cooldown.key: {error}"))
                            .await;
                        return;
                    }
                },
                None => String::new(),
            };
            let scope_name = cooldown
                .group
                .clone()
                .map(|g| format!("group:{g}"))
                .unwrap_or_else(|| format!("rule:{}", rule.def.name));
            if let Some(left) = self.take_cooldown(&scope_name, &key, cooldown.secs) {
                self.publish_or_log(NewEvent::new(
                    "rule.skipped",
                    event.connection_id.clone(),
                    json!({
                        "rule": rule.def.name,
                        "event_id": event.id,
                        "reason": "cooldown",
                        "key": key,
                        "retry_in_ms": left.as_millis() as u64,
                    }),
                ))
                .await;
                return;
            }
        }
        for (name, value) in &rule.def.set {
            match template::render_str(env, value, &scope) {
                Ok(rendered) => {
                    if let Err(error) = self.set_rule_var(name, Some(rendered)).await {
                        tracing::warn!(%error, rule = %rule.def.name, "cannot set a rule variable");
                    }
                }
                Err(error) => {
                    self.rule_problem(rule, event, &format!("set.{name}: {error}"))
                        .await;
                    return;
                }
            }
        }
        // Variables set by this rule are visible to its own actions.
        let vars = if rule.def.set.is_empty() {
            vars
        } else {
            self.rule_vars().await.unwrap_or(vars)
        };
        let scope = Scope {
            event: &event_json,
            vars: &vars,
            rule: &rule.def.name,
        };
        let mut actions = Vec::new();
        for (i, action) in rule.actions.iter().enumerate() {
            match template::render_tree(env, &action.params, &scope, &format!("do[{i}].params")) {
                Ok(params) => actions.push(json!({
                    "action": action.action,
                    "connection_id": action.connection,
                    "params": params,
                    "jobs": [],
                })),
                Err((field, error)) => {
                    self.rule_problem(rule, event, &format!("{field}: {error}"))
                        .await;
                    return;
                }
            }
        }
        let now = now_ms();
        let run = RuleRun {
            id: new_id(),
            rule: rule.def.name.clone(),
            event_id: event.id,
            queue: rule.def.queue.as_ref().map(|q| q.name.clone()),
            priority: rule.def.queue.as_ref().map_or(0, |q| q.priority),
            state: "queued".into(),
            actions: Value::Array(actions),
            next_action: 0,
            error: None,
            created_at: now,
            updated_at: now,
        };
        match self.store().insert_run(&run).await {
            Ok(true) => {
                self.publish_or_log(NewEvent::new(
                    "rule.matched",
                    event.connection_id.clone(),
                    json!({
                        "rule": run.rule,
                        "event_id": event.id,
                        "event_type": event.kind,
                        "run_id": run.id,
                        "queue": run.queue,
                    }),
                ))
                .await;
                self.rules().runs_wake.notify_one();
            }
            Ok(false) => {} // Another process (or an earlier pass) took this event.
            Err(error) => tracing::error!(%error, rule = %rule.def.name, "cannot store a rule run"),
        }
    }

    async fn rule_problem(&self, rule: &CompiledRule, event: &Event, message: &str) {
        tracing::warn!(rule = %rule.def.name, event = event.id, %message, "rule could not run");
        self.publish_or_log(NewEvent::new(
            "rule.skipped",
            event.connection_id.clone(),
            json!({
                "rule": rule.def.name,
                "event_id": event.id,
                "reason": "error",
                "message": message,
            }),
        ))
        .await;
    }

    /// Start runs as they become startable until `cancel`.
    pub(crate) async fn execute_runs(self: Arc<Self>, cancel: CancellationToken) {
        // Runs a stopped process left running continue where they were;
        // their jobs' idempotency keys keep them from being submitted twice.
        if let Ok(left) = self
            .store()
            .list_runs(&RunFilter {
                state: Some("running".into()),
                limit: 10_000,
                ..Default::default()
            })
            .await
        {
            for run in left {
                tokio::spawn(self.clone().drive(run, cancel.clone()));
            }
        }
        loop {
            let paused = self.paused_queues().await.unwrap_or_default();
            match self.store().startable_runs(&paused, 100).await {
                Ok(runs) => {
                    for run in runs {
                        match self.store().start_run(&run.id, now_ms()).await {
                            Ok(true) => {
                                tokio::spawn(self.clone().drive(run, cancel.clone()));
                            }
                            Ok(false) => {}
                            Err(error) => tracing::error!(%error, "cannot start a rule run"),
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read rule runs"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.rules().runs_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Run a run's remaining actions in order.
    async fn drive(self: Arc<Self>, run: RuleRun, cancel: CancellationToken) {
        let mut actions = run.actions.as_array().cloned().unwrap_or_default();
        let mut updates = self.subscribe_events();
        let mut outcome: Result<(), String> = Ok(());
        for index in run.next_action.max(0) as usize..actions.len() {
            let action = actions[index].clone();
            let name = action["action"].as_str().unwrap_or_default().to_owned();
            let key = format!("rule-run:{}:{index}", run.id);
            let mut jobs: Vec<String> = action["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j.as_str().map(str::to_owned))
                .collect();
            if jobs.is_empty() {
                match self.submit_rule_action(&action, &name, key).await {
                    Ok(ids) => jobs = ids,
                    Err(message) => {
                        outcome = Err(format!("action {index} ({name}): {message}"));
                        break;
                    }
                }
                actions[index]["jobs"] = json!(jobs);
                if let Err(error) = self
                    .store()
                    .update_run(
                        &run.id,
                        "running",
                        &Value::Array(actions.clone()),
                        index as i64,
                        None,
                        now_ms(),
                    )
                    .await
                {
                    tracing::error!(%error, run = %run.id, "cannot record a rule run's jobs");
                }
            }
            for job in &jobs {
                match self.wait_for_job(job, &mut updates, &cancel).await {
                    Some(JobState::Succeeded) => {}
                    Some(state) => {
                        let detail = match self.store().get_job(job).await {
                            Ok(Some(j)) => j.error.map(|e| e.message).unwrap_or_default(),
                            _ => String::new(),
                        };
                        outcome = Err(format!(
                            "action {index} ({name}): job {job} {state}: {detail}"
                        ));
                        break;
                    }
                    // Shutting down: the run continues at the next start.
                    None => return,
                }
            }
            if outcome.is_err() {
                break;
            }
            if let Err(error) = self
                .store()
                .update_run(
                    &run.id,
                    "running",
                    &Value::Array(actions.clone()),
                    index as i64 + 1,
                    None,
                    now_ms(),
                )
                .await
            {
                tracing::error!(%error, run = %run.id, "cannot record a rule run's progress");
            }
        }
        let (state, error) = match &outcome {
            Ok(()) => ("succeeded", None),
            Err(message) => ("failed", Some(message.as_str())),
        };
        let next = match &outcome {
            Ok(()) => actions.len() as i64,
            Err(_) => run.next_action,
        };
        if let Err(e) = self
            .store()
            .update_run(
                &run.id,
                state,
                &Value::Array(actions.clone()),
                next,
                error,
                now_ms(),
            )
            .await
        {
            tracing::error!(error = %e, run = %run.id, "cannot record a rule run's end");
        }
        self.publish_or_log(NewEvent::new(
            "rule.run.finished",
            None,
            json!({
                "rule": run.rule,
                "run_id": run.id,
                "event_id": run.event_id,
                "state": state,
                "error": error,
                "jobs": job_ids(&Value::Array(actions)),
            }),
        ))
        .await;
        self.rules().runs_wake.notify_one();
    }

    /// Submit one action's jobs; their ids.
    async fn submit_rule_action(
        &self,
        action: &Value,
        name: &str,
        key: String,
    ) -> Result<Vec<String>, String> {
        let params = action["params"].clone();
        match action["connection_id"].as_str() {
            Some(connection) => self
                .submit_job(SubmitJob {
                    connection_id: connection.to_owned(),
                    action: name.to_owned(),
                    params,
                    idempotency_key: Some(key),
                    max_attempts: None,
                })
                .await
                .map(|(job, _)| vec![job.id])
                .map_err(|e| e.to_string()),
            None => {
                let outcomes = self
                    .submit_to_connections(name, params, None, Some(key))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut ids = Vec::new();
                let mut problems = Vec::new();
                for outcome in outcomes {
                    match outcome.outcome {
                        Ok((job, _)) => ids.push(job.id),
                        Err(e) => problems.push(format!("{}: {e}", outcome.label)),
                    }
                }
                if ids.is_empty() {
                    return Err(problems.join("; "));
                }
                Ok(ids)
            }
        }
    }

    /// Wait until a job is final; `None` when shutting down.
    async fn wait_for_job(
        &self,
        id: &str,
        updates: &mut tokio::sync::broadcast::Receiver<Arc<Event>>,
        cancel: &CancellationToken,
    ) -> Option<JobState> {
        loop {
            if let Ok(Some(job)) = self.store().get_job(id).await
                && matches!(
                    job.state,
                    JobState::Succeeded | JobState::Failed | JobState::Dead
                )
            {
                return Some(job.state);
            }
            let deadline = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = &mut deadline => break,
                    received = updates.recv() => match received {
                        Ok(event) if event.kind == "job.finished" && event.payload["job_id"] == id => break,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_collected_in_order() {
        let actions = json!([
            {"action": "a", "jobs": ["1", "2"]},
            {"action": "b", "jobs": []},
            {"action": "c", "jobs": ["3"]}
        ]);
        assert_eq!(job_ids(&actions), vec!["1", "2", "3"]);
        assert!(job_ids(&json!(null)).is_empty());
    }
}
