//! `switchboard rules ...`: list, validate, test (dry run), enable, disable,
//! runs, trace, queues, vars.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, table, text};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List every rule (from the rules file and the API).
    List,
    /// Check a rules file without changing anything; every problem is
    /// printed with its rule, field and line.
    Validate { file: PathBuf },
    /// Dry run: which rules of FILE the event in EVENT.json starts, and the
    /// jobs they would create with rendered parameters. Nothing is sent.
    Test {
        file: PathBuf,
        /// A JSON file holding one event: a line of `events tail --json`
        /// as it is, the `event` of `rules trace --json`, or just
        /// {"type": "...", "connection_id": "...", "payload": {...}}.
        #[arg(long)]
        event: PathBuf,
    },
    /// Enable an API rule.
    Enable { name: String },
    /// Disable an API rule.
    Disable { name: String },
    /// Add or replace API rules from a file (YAML or TOML), all or nothing.
    Apply { file: PathBuf },
    /// Remove an API rule.
    Remove { name: String },
    /// Re-read the daemon's rules file now.
    Reload,
    /// Rule runs, newest first.
    Runs {
        #[arg(long)]
        rule: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// What an event caused: rule runs and their jobs.
    Trace { event_id: i64 },
    /// The rule queues.
    Queues,
    /// Stop starting runs from a queue (the running one finishes).
    Pause { queue: String },
    /// Start runs from a queue again.
    Resume { queue: String },
    /// The rule variables.
    Vars,
}

fn format_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => "toml",
        _ => "yaml",
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The event of a `rules test --event` file: one JSON event as the event
/// log prints it (or its minimal form), or a trace's `{"event": ..., "runs": ...}`.
fn event_file(path: &Path) -> anyhow::Result<Value> {
    let text = read(path)?;
    let values = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let event = match values.as_slice() {
        [one] => one.clone(),
        [] => anyhow::bail!("{} is empty; put one event in it", path.display()),
        many => anyhow::bail!(
            "{} holds {} events (one per line, as `events tail --json` prints them); keep the one to test",
            path.display(),
            many.len()
        ),
    };
    Ok(match event {
        Value::Object(mut trace)
            if !trace.contains_key("type") && trace.get("event").is_some_and(Value::is_object) =>
        {
            trace.remove("event").unwrap_or_default()
        }
        other => other,
    })
}

fn rules_table(answer: &Value) -> String {
    let mut t = table(&["name", "source", "enabled", "on", "actions"]);
    for rule in answer["rules"].as_array().into_iter().flatten() {
        let actions: Vec<String> = rule["do"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| text(&a["action"]))
            .collect();
        t.add_row(vec![
            text(&rule["name"]),
            text(&rule["source"]),
            text(&rule["enabled"]),
            text(&rule["on"]["event"]),
            actions.join(", "),
        ]);
    }
    let mut out = t.to_string();
    if let Some(errors) = answer["file_errors"].as_array() {
        out.push_str("\nthe rules file's current text is rejected (its previous rules run):");
        for e in errors {
            out.push_str(&format!("\n  - {}", error_line(e)));
        }
    }
    out
}

fn error_line(e: &Value) -> String {
    let mut line = String::new();
    match (e["line"].as_u64(), e["column"].as_u64()) {
        (Some(n), Some(c)) => line.push_str(&format!("line {n}, column {c}: ")),
        (Some(n), None) => line.push_str(&format!("line {n}: ")),
        _ => {}
    }
    if let Some(rule) = e["rule"].as_str() {
        line.push_str(&format!("rule `{rule}`: "));
    }
    if let Some(field) = e["field"].as_str().filter(|f| !f.is_empty()) {
        line.push_str(&format!("{field}: "));
    }
    line.push_str(&text(&e["message"]));
    line
}

fn dry_run_report(answer: &Value) -> String {
    let mut out = String::new();
    for r in answer["results"].as_array().into_iter().flatten() {
        if r["matched"] == true {
            out.push_str(&format!("MATCH  {}\n", text(&r["rule"])));
            for job in r["jobs"].as_array().into_iter().flatten() {
                let target = match job["label"].as_str() {
                    Some(label) => label.to_owned(),
                    None => "(no enabled connection)".into(),
                };
                out.push_str(&format!(
                    "       {} on {}: {}\n",
                    text(&job["action"]),
                    target,
                    job["params"]
                ));
            }
        } else {
            out.push_str(&format!(
                "skip   {}: {}\n",
                text(&r["rule"]),
                text(&r["reason"])
            ));
        }
    }
    if out.is_empty() {
        out.push_str("the file has no rules\n");
    }
    out.trim_end().to_owned()
}

fn runs_table(list: &Value) -> String {
    let mut t = table(&["run", "rule", "event", "state", "queue", "jobs", "error"]);
    for run in list.as_array().into_iter().flatten() {
        let jobs: usize = run["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["jobs"].as_array().map_or(0, |j| j.len()))
            .sum();
        t.add_row(vec![
            text(&run["id"]),
            text(&run["rule"]),
            text(&run["event_id"]),
            text(&run["state"]),
            text(&run["queue"]),
            jobs.to_string(),
            text(&run["error"]),
        ]);
    }
    t.to_string()
}

fn trace_report(trace: &Value) -> String {
    let event = &trace["event"];
    let mut out = format!(
        "event {} {} at {}\n",
        text(&event["id"]),
        text(&event["type"]),
        output::time(&event["at"])
    );
    let runs = trace["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        out.push_str("  no rule ran for it\n");
    }
    for r in runs {
        out.push_str(&format!(
            "  rule {} -> run {} {}\n",
            text(&r["run"]["rule"]),
            text(&r["run"]["id"]),
            text(&r["run"]["state"])
        ));
        for job in r["jobs"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    job {} {} {}\n",
                text(&job["id"]),
                text(&job["action"]),
                text(&job["state"])
            ));
        }
    }
    out.trim_end().to_owned()
}

fn queues_table(list: &Value) -> String {
    let mut t = table(&["queue", "waiting", "running", "paused"]);
    for q in list.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&q["name"]),
            text(&q["waiting"]),
            text(&q["running"]),
            text(&q["paused"]),
        ]);
    }
    t.to_string()
}

pub async fn rules(cmd: &RulesCommand, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::List => {
            let answer: Value = client.get("/rules").await?;
            output::print(json, &answer, rules_table);
        }
        RulesCommand::Validate { file } => {
            let body = json!({ "text": read(file)?, "format": format_of(file) });
            let answer: Value = client
                .post("/rules/validate", &body)
                .await
                .with_context(|| format!("{} is not valid", file.display()))?;
            if json {
                output::print_json(&answer);
            } else {
                let names = answer["rules"].as_array().map_or(0, |r| r.len());
                println!("{} is valid: {names} rule(s)", file.display());
            }
        }
        RulesCommand::Test { file, event } => {
            let event = event_file(event)?;
            let body = json!({ "text": read(file)?, "format": format_of(file), "event": event });
            let answer: Value = client.post("/rules/test", &body).await?;
            output::print(json, &answer, dry_run_report);
        }
        RulesCommand::Enable { name } | RulesCommand::Disable { name } => {
            let verb = if matches!(cmd, RulesCommand::Enable { .. }) {
                "enable"
            } else {
                "disable"
            };
            let rule: Value = client
                .post(&format!("/rules/{name}/{verb}"), &json!({}))
                .await?;
            if json {
                output::print_json(&rule);
            } else {
                println!("rule {name} {verb}d");
            }
        }
        RulesCommand::Apply { file } => {
            let text = read(file)?;
            let body = json!({ "text": text, "format": format_of(file) });
            // Validate all first so that nothing is half-applied.
            client
                .post::<Value>("/rules/validate", &body)
                .await
                .with_context(|| format!("{} is not valid; nothing was applied", file.display()))?;
            let parsed: Value = match format_of(file) {
                "toml" => serde_json::to_value(toml::from_str::<toml::Value>(&text)?)?,
                _ => serde_norway::from_str(&text)?,
            };
            let mut applied = Vec::new();
            for rule in parsed["rules"].as_array().into_iter().flatten() {
                let name = text_of(&rule["name"]);
                let _: Value = client.put(&format!("/rules/{name}"), rule).await?;
                applied.push(name);
            }
            if json {
                output::print_json(&json!({ "applied": applied }));
            } else {
                println!("applied {} rule(s): {}", applied.len(), applied.join(", "));
            }
        }
        RulesCommand::Remove { name } => {
            client.delete(&format!("/rules/{name}")).await?;
            if !json {
                println!("removed rule {name}");
            }
        }
        RulesCommand::Reload => {
            let answer: Value = client.post("/rules/reload", &json!({})).await?;
            output::print(json, &answer, |a| {
                format!("rules file loaded: {} rule(s)", text(&a["rules"]))
            });
        }
        RulesCommand::Runs { rule, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(rule) = rule {
                query.push(("rule", rule.clone()));
            }
            let runs: Value = client.get_query("/rules/runs", &query).await?;
            output::print(json, &runs, runs_table);
        }
        RulesCommand::Trace { event_id } => {
            let trace: Value = client.get(&format!("/events/{event_id}/trace")).await?;
            output::print(json, &trace, trace_report);
        }
        RulesCommand::Queues => {
            let queues: Value = client.get("/rules/queues").await?;
            output::print(json, &queues, queues_table);
        }
        RulesCommand::Pause { queue } | RulesCommand::Resume { queue } => {
            let verb = if matches!(cmd, RulesCommand::Pause { .. }) {
                "pause"
            } else {
                "resume"
            };
            client
                .post::<Value>(&format!("/rules/queues/{queue}/{verb}"), &json!({}))
                .await?;
            if !json {
                println!("queue {queue}: {verb}d");
            }
        }
        RulesCommand::Vars => {
            let vars: Value = client.get("/rules/vars").await?;
            output::print_json(&vars);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}
