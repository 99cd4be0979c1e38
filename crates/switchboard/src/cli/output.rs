//! Human output: tables and detail views; `--json` prints the API's JSON.

use std::time::{Duration, UNIX_EPOCH};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn print(json: bool, value: &Value, human: fn(&Value) -> String) {
    if json {
        print_json(value);
    } else {
        println!("{}", human(value));
    }
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Epoch milliseconds as an RFC 3339 UTC timestamp.
pub fn time(value: &Value) -> String {
    match value.as_i64() {
        Some(ms) if ms >= 0 => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64))
                .to_string()
        }
        _ => "-".into(),
    }
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

pub fn connectors_table(list: &Value) -> String {
    let mut t = table(&["NAME", "AUTH", "ACTIONS", "TRIGGERS"]);
    for c in list.as_array().into_iter().flatten() {
        let names = |key: &str, field: &str| {
            c[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| text(&a[field]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.add_row(vec![
            text(&c["name"]),
            text(&c["auth"]),
            names("actions", "name"),
            names("triggers", "event_type"),
        ]);
    }
    t.to_string()
}

pub fn connections_table(list: &Value) -> String {
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no connections yet; add one with `switchboard connections add CONNECTOR --label NAME`".into();
    }
    let mut t = table(&["ID", "CONNECTOR", "LABEL", "ENABLED", "STATUS", "REASON"]);
    for c in rows {
        t.add_row(vec![
            text(&c["id"]),
            text(&c["connector"]),
            text(&c["label"]),
            text(&c["enabled"]),
            text(&c["status"]["status"]),
            text(&c["status"]["reason"]),
        ]);
    }
    t.to_string()
}

pub fn connection_detail(c: &Value) -> String {
    let secrets = c["secrets_set"]
        .as_array()
        .map(|s| s.iter().map(text).collect::<Vec<_>>().join(", "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    format!(
        "id:        {}\nconnector: {}\nlabel:     {}\nenabled:   {}\nstatus:    {} (since {})\nreason:    {}\nsettings:  {}\nsecrets:   {} (values are never shown)",
        text(&c["id"]),
        text(&c["connector"]),
        text(&c["label"]),
        text(&c["enabled"]),
        text(&c["status"]["status"]),
        time(&c["status"]["since"]),
        text(&c["status"]["reason"]),
        c["settings"],
        secrets,
    )
}

pub fn jobs_table(list: &Value) -> String {
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no jobs".into();
    }
    let mut t = table(&[
        "ID",
        "ACTION",
        "STATE",
        "ATTEMPTS",
        "CREATED",
        "ERROR / WAITING",
    ]);
    for j in rows {
        let note = if !j["waiting_reason"].is_null() {
            text(&j["waiting_reason"])
        } else {
            text(&j["error"]["message"])
        };
        t.add_row(vec![
            text(&j["id"]),
            text(&j["action"]),
            text(&j["state"]),
            format!("{}/{}", j["attempts"], j["max_attempts"]),
            time(&j["created_at"]),
            note,
        ]);
    }
    t.to_string()
}

pub fn job_detail(j: &Value) -> String {
    format!(
        "id:          {}\nconnection:  {}\naction:      {}\nstate:       {}\nattempts:    {}/{}\nrecovered:   {}\ncreated:     {}\nfinished:    {}\nparams:      {}\nresult:      {}\nerror:       {}\nwaiting:     {}",
        text(&j["id"]),
        text(&j["connection_id"]),
        text(&j["action"]),
        text(&j["state"]),
        j["attempts"],
        j["max_attempts"],
        j["recovered"],
        time(&j["created_at"]),
        time(&j["finished_at"]),
        j["params"],
        text(&j["result"]),
        text(&j["error"]["message"]),
        text(&j["waiting_reason"]),
    )
}

pub fn print_event(json: bool, event: &Value) {
    if json {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
    } else {
        println!(
            "#{:<6} {} {:<22} {} {}",
            event["id"],
            time(&event["at"]),
            text(&event["type"]),
            text(&event["connection_id"]),
            event["payload"]
        );
    }
}

fn size(value: &Value) -> String {
    match value.as_u64() {
        Some(bytes) => indicatif::HumanBytes(bytes).to_string(),
        None => "-".into(),
    }
}

pub fn media_table(list: &Value) -> String {
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no media yet; upload a file with `switchboard media upload FILE`".into();
    }
    let mut t = table(&["ID", "TYPE", "SIZE", "NAME", "CREATED"]);
    for m in rows {
        t.add_row(vec![
            text(&m["id"]),
            text(&m["mime_type"]),
            size(&m["size"]),
            text(&m["name"]),
            time(&m["created_at"]),
        ]);
    }
    t.to_string()
}

pub fn media_detail(m: &Value) -> String {
    format!(
        "id:       {}\ntype:     {}\nsize:     {} ({} bytes)\nname:     {}\ncreated:  {}",
        text(&m["id"]),
        text(&m["mime_type"]),
        size(&m["size"]),
        m["size"],
        text(&m["name"]),
        time(&m["created_at"]),
    )
}

/// The jobs of one action on several connections: one row per account,
/// with the result's `id` (such as a post id) once it succeeded, or why not.
pub fn action_jobs_table(answer: &Value) -> String {
    let rows = answer["jobs"].as_array().cloned().unwrap_or_default();
    let mut t = table(&["ACCOUNT", "JOB", "STATE", "RESULT / ERROR"]);
    for entry in rows {
        let job = &entry["job"];
        let (state, note) = if job.is_null() {
            ("not queued".to_owned(), text(&entry["error"]["detail"]))
        } else if job["state"] == "succeeded" {
            let result = &job["result"];
            let note = if result["id"].is_null() {
                text(result)
            } else {
                text(&result["id"])
            };
            (text(&job["state"]), note)
        } else if !job["error"].is_null() {
            (text(&job["state"]), text(&job["error"]["message"]))
        } else {
            (text(&job["state"]), text(&job["waiting_reason"]))
        };
        t.add_row(vec![text(&entry["label"]), text(&job["id"]), state, note]);
    }
    t.to_string()
}
