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

/// A value for a terminal: a string as it is, anything else as compact
/// JSON; either way with control and bidi characters [escaped](escape).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

/// Make text from the daemon safe to print on a terminal: control
/// characters (C0, DEL, C1: newline, ESC, NUL...), line separators and bidi
/// controls are shown as visible escapes (`\n`, `\u{1b}`, `\u{202e}`), so a
/// crafted label, reason or payload cannot fake a table row, move the
/// cursor, clear the screen or make text read backwards. Everything else is
/// kept as it is. Hand-rolled: `char::escape_debug` would also escape quotes
/// and backslashes, and `escape_default` every non-ASCII letter.
pub(crate) fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
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
        text(&c["settings"]),
        secrets,
    )
}

/// The answer of `connections test`: passed or not, why, and what the
/// service said.
pub fn connection_test(check: &Value) -> String {
    let verdict = if check["ok"] == true { "ok" } else { "FAILED" };
    let mut out = format!(
        "{verdict}: {}\nstatus: {}",
        text(&check["detail"]),
        text(&check["status"])
    );
    if let Some(result) = check["result"].as_object() {
        for (key, value) in result {
            out.push_str(&format!("\n{}: {}", escape(key), text(value)));
        }
    }
    out
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
            format!("{}/{}", text(&j["attempts"]), text(&j["max_attempts"])),
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
        text(&j["attempts"]),
        text(&j["max_attempts"]),
        text(&j["recovered"]),
        time(&j["created_at"]),
        time(&j["finished_at"]),
        text(&j["params"]),
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
            text(&event["id"]),
            time(&event["at"]),
            text(&event["type"]),
            text(&event["connection_id"]),
            text(&event["payload"])
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
        text(&m["size"]),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_control_and_bidi_characters_and_keeps_the_rest() {
        assert_eq!(escape("plain label, été 🎥"), "plain label, été 🎥");
        assert_eq!(escape(r#"C:\dir\file 'q' "x""#), r#"C:\dir\file 'q' "x""#);
        assert_eq!(escape("a\nb\r\tc"), r"a\nb\r\tc");
        assert_eq!(
            escape("\u{1b}[2J\0\u{7f}\u{9b}"),
            r"\u{1b}[2J\u{0}\u{7f}\u{9b}"
        );
        assert_eq!(
            escape("\u{202e}exe.txt\u{2066}\u{200f}\u{61c}\u{2028}"),
            r"\u{202e}exe.txt\u{2066}\u{200f}\u{61c}\u{2028}"
        );
    }

    #[test]
    fn a_crafted_label_cannot_fake_a_table_row() {
        let list = serde_json::json!([{
            "id": "c1", "connector": "echo", "label": "ok\n│ c2 │ x │ evil │\u{1b}[2J",
            "enabled": true, "status": {"status": "connected", "reason": "r\u{202e}"}
        }]);
        let table = connections_table(&list);
        assert_eq!(
            table.lines().count(),
            5,
            "header, separators and one row:\n{table}"
        );
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{202e}'),
            "{table}"
        );
        assert!(
            table.contains(r"ok\n│ c2") && table.contains(r"\u{1b}[2J"),
            "{table}"
        );
    }
}
