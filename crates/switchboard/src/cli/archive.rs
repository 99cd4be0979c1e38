//! `switchboard archive`: what a connection kept as it arrived (Twitch
//! followers, subscriptions, raids, cheers), as a table, JSON or CSV.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::client::Client;
use super::output::{self, table, text};

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The connection (id; for Twitch also its label).
    connection: String,
    /// The collection: followers, subscriptions, raids, cheers. Leave it
    /// out to see which the connection has and their sizes.
    kind: Option<String>,
    /// Only records since this time (RFC 3339, such as 2026-11-01T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print CSV (every record, for spreadsheets) instead of a table.
    #[arg(long)]
    csv: bool,
}

pub async fn archive(args: &ArchiveArgs, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let Some(kind) = &args.kind else {
        let counts: Value = client
            .get(&format!("/connections/{}/archive", args.connection))
            .await?;
        output::print(json, &counts, |list| {
            let mut t = table(&["KIND", "RECORDS"]);
            for c in list.as_array().into_iter().flatten() {
                t.add_row(vec![text(&c["kind"]), text(&c["records"])]);
            }
            t.to_string()
        });
        return Ok(ExitCode::SUCCESS);
    };
    // Twitch connections are also found by label.
    let path = match client
        .get::<Value>(&format!("/connections/{}", args.connection))
        .await
    {
        Ok(_) => format!("/connections/{}/archive/{kind}", args.connection),
        Err(_) => format!("/twitch/{}/{kind}", args.connection),
    };
    let mut query = vec![];
    if let Some(since) = &args.since {
        let at = humantime::parse_rfc3339_weak(since).map_err(|e| {
            anyhow::anyhow!("--since `{since}`: {e}; write it like 2026-11-01T00:00:00Z")
        })?;
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        query.push(("since", ms.to_string()));
    }
    if args.csv {
        query.push(("format", "csv".to_owned()));
        if args.limit != 100 {
            query.push(("limit", args.limit.to_string()));
        }
        print!("{}", client.get_text(&path, &query).await?);
        return Ok(ExitCode::SUCCESS);
    }
    query.push(("limit", args.limit.to_string()));
    let records: Value = client.get_query(&path, &query).await?;
    output::print(json, &records, records_table);
    Ok(ExitCode::SUCCESS)
}

/// Time, who, and the record's most telling fields.
fn records_table(list: &Value) -> String {
    let mut t = table(&["WHEN", "WHO", "DETAIL"]);
    for r in list.as_array().into_iter().flatten() {
        let record = &r["record"];
        let who = ["user_login", "from_broadcaster_user_login", "user_name"]
            .iter()
            .map(|k| &record[*k])
            .find(|v| v.is_string())
            .map(text)
            .unwrap_or_else(|| "-".into());
        let detail: Vec<String> = [
            "tier",
            "viewers",
            "bits",
            "total",
            "cumulative_months",
            "is_gift",
        ]
        .iter()
        .filter(|k| !record[**k].is_null())
        .map(|k| format!("{k}={}", text(&record[*k])))
        .collect();
        t.add_row(vec![output::time(&r["occurred_at"]), who, detail.join(" ")]);
    }
    t.to_string()
}
