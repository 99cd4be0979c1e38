//! `switchboard media ...` and `switchboard post`: files go up to the
//! daemon's media store (streamed, with a progress bar on a terminal), and a
//! post goes out on every chosen X account as one job per account.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use switchboard_core::is_media_id;

use super::client::Client;
use super::output;

#[derive(Debug, Subcommand)]
pub(crate) enum MediaCommand {
    /// Upload an image or a video (JPEG, PNG, WEBP, GIF, MP4, MOV); prints its id.
    Upload {
        file: std::path::PathBuf,
        /// The name to remember it by (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the uploaded files, newest first.
    List,
    /// Show one file.
    Show { id: String },
    /// Delete one file.
    #[command(visible_alias = "remove")]
    Rm { id: String },
}

#[derive(Debug, Args)]
pub(crate) struct PostArgs {
    /// The text of the post.
    text: String,
    /// Post from this X connection, by id or label (repeatable). Default:
    /// every enabled X connection.
    #[arg(long = "account", value_name = "CONNECTION")]
    accounts: Vec<String>,
    /// Attach a file (uploaded first) or an uploaded file's id (repeatable).
    #[arg(long = "media", value_name = "FILE_OR_ID")]
    media: Vec<String>,
    /// Reply to this post.
    #[arg(long, value_name = "POST_ID")]
    reply_to: Option<String>,
    /// Quote this post.
    #[arg(long, value_name = "POST_ID")]
    quote: Option<String>,
    /// Wait until every post is published or has failed, and print the post
    /// ids. A post waiting for an account that needs a person (to
    /// re-authorize or enable it) is not waited for.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, such as `90s` or `5m`.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub(crate) async fn media(
    cmd: &MediaCommand,
    client: &Client,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match cmd {
        MediaCommand::Upload { file, name } => {
            let stored = upload(client, file, name.as_deref()).await?;
            if json {
                output::print_json(&stored);
            } else {
                println!(
                    "{}",
                    output::escape(stored["id"].as_str().unwrap_or_default())
                );
            }
        }
        MediaCommand::List => {
            let list: Value = client.get("/media").await?;
            output::print(json, &list, output::media_table);
        }
        MediaCommand::Show { id } => {
            check_media_id(id)?;
            let media: Value = client.get(&format!("/media/{id}")).await?;
            output::print(json, &media, output::media_detail);
        }
        MediaCommand::Rm { id } => {
            check_media_id(id)?;
            client.delete(&format!("/media/{id}")).await?;
            if json {
                output::print_json(&json!({ "removed": id }));
            } else {
                println!("removed media {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_media_id(id: &str) -> anyhow::Result<()> {
    if !is_media_id(id) {
        bail!(
            "`{id}` is not a media id (32 lowercase hex characters, see `switchboard media list`)"
        );
    }
    Ok(())
}

/// Stream a file to the media store; returns the stored file's description.
async fn upload(client: &Client, path: &Path, name: Option<&str>) -> anyhow::Result<Value> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let length = file
        .metadata()
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let name = name
        .map(str::to_owned)
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("the progress template is valid")
            .progress_chars("=> "),
        );
        bar.set_message(format!("uploading {}", path.display()));
        bar
    } else {
        ProgressBar::hidden()
    };
    let counter = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file)
        .inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let mut query = Vec::new();
    if let Some(name) = name {
        query.push(("name", name));
    }
    let result: anyhow::Result<Value> = client
        .post_raw("/media", &query, length, reqwest::Body::wrap_stream(stream))
        .await
        .with_context(|| format!("uploading {} failed", path.display()));
    bar.finish_and_clear();
    result
}

/// A `--media` argument: a file to upload, or the id of an uploaded one.
async fn media_id(client: &Client, arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if path.is_file() {
        let stored = upload(client, path, None).await?;
        return stored["id"]
            .as_str()
            .map(str::to_owned)
            .context("the daemon's answer has no media id");
    }
    if is_media_id(arg) {
        return Ok(arg.to_owned());
    }
    bail!(
        "--media {arg}: there is no such file, and it is not a media id (32 lowercase hex characters, see `switchboard media list`)"
    )
}

/// The parameters of `x.post`; absent options are left out.
fn post_params(
    text: &str,
    media: Vec<String>,
    reply_to: Option<&str>,
    quote_of: Option<&str>,
) -> Value {
    let mut params = Map::new();
    params.insert("text".into(), json!(text));
    if !media.is_empty() {
        params.insert("media".into(), json!(media));
    }
    if let Some(reply_to) = reply_to {
        params.insert("reply_to".into(), json!(reply_to));
    }
    if let Some(quote_of) = quote_of {
        params.insert("quote_of".into(), json!(quote_of));
    }
    Value::Object(params)
}

fn is_final(job: &Value) -> bool {
    matches!(job["state"].as_str(), Some("succeeded" | "failed" | "dead"))
}

pub(crate) async fn post(args: &PostArgs, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut media = Vec::with_capacity(args.media.len());
    for arg in &args.media {
        media.push(media_id(client, arg).await?);
    }
    let params = post_params(
        &args.text,
        media,
        args.reply_to.as_deref(),
        args.quote.as_deref(),
    );
    let mut body = json!({ "params": params });
    let known: Vec<Value> = client.get("/connections").await?;
    let chosen: Vec<&Value> = if args.accounts.is_empty() {
        known
            .iter()
            .filter(|c| c["connector"] == "x" && c["enabled"] == true)
            .collect()
    } else {
        let mut chosen = Vec::new();
        for account in &args.accounts {
            let id = super::client::find_connection(&known, account)?;
            chosen.extend(known.iter().find(|c| c["id"] == id.as_str()));
        }
        chosen
    };
    // Accounts that cannot act now are skipped, not queued: a post must not
    // wait, unseen, for a person to reconnect an account.
    let (ready, skipped): (Vec<&Value>, Vec<&Value>) =
        chosen.into_iter().partition(|c| skip_reason(c).is_none());
    let skipped: Vec<Value> = skipped
        .into_iter()
        .map(|c| {
            let (status, fix) = skip_reason(c).unwrap_or_default();
            json!({ "connection_id": c["id"], "label": c["label"], "status": status, "fix": fix })
        })
        .collect();
    for skip in &skipped {
        eprintln!(
            "{}: {} — {} (skipped, nothing queued)",
            output::escape(skip["label"].as_str().unwrap_or("?")),
            skip["status"].as_str().unwrap_or_default(),
            skip["fix"].as_str().unwrap_or_default(),
        );
    }
    if ready.is_empty() && !skipped.is_empty() {
        if json {
            output::print_json(&json!({ "action": "x.post", "jobs": [], "skipped": skipped }));
        }
        eprintln!("nothing was posted: no chosen X account can post now");
        return Ok(ExitCode::FAILURE);
    }
    if !args.accounts.is_empty() || !skipped.is_empty() {
        let ids: Vec<&Value> = ready.iter().map(|c| &c["id"]).collect();
        body["connections"] = json!(ids);
    }
    let mut answer: Value = client.post("/actions/x.post", &body).await?;
    if args.wait {
        wait_for_jobs(client, &mut answer, args.timeout).await?;
    }
    answer["skipped"] = json!(skipped);
    output::print(json, &answer, output::action_jobs_table);
    // Exit 0 when at least one account posted (queued, or published with
    // `--wait`); the table and the skipped lines say what the others did.
    let any_posted = answer["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|entry| {
            entry["error"].is_null()
                && !entry["job"].is_null()
                && (!args.wait || entry["job"]["state"].as_str() == Some("succeeded"))
        });
    Ok(if any_posted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Why `post` skips a connection, as `(status, what to do)`, or None when
/// it can post now (connected, connecting, degraded).
fn skip_reason(connection: &Value) -> Option<(String, String)> {
    let id = connection["id"].as_str().unwrap_or_default();
    if connection["enabled"] != true {
        return Some((
            "disabled".into(),
            format!("enable it first (PATCH /api/v1/connections/{id} with {{\"enabled\": true}})"),
        ));
    }
    let status = connection["status"]["status"].as_str().unwrap_or_default();
    let reason = connection["status"]["reason"]
        .as_str()
        .map(|r| format!(" ({})", output::escape(r)))
        .unwrap_or_default();
    match status {
        "needs_reauth" => Some((
            status.into(),
            format!("reconnect this account: switchboard connections connect {id}{reason}"),
        )),
        "error" | "disconnected" => Some((
            status.into(),
            format!("it cannot post now{reason}; see switchboard connections status {id}"),
        )),
        _ => None,
    }
}

/// Follow each job of an action answer until it is final, or waits for a
/// connection that only a person can bring back (`needs_reauth`, disabled),
/// or `timeout` passes; each job is replaced in `answer` as it changes.
async fn wait_for_jobs(
    client: &Client,
    answer: &mut Value,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let entries = answer["jobs"]
        .as_array_mut()
        .context("the daemon's answer has no jobs")?;
    let mut settled: Vec<bool> = entries
        .iter()
        .map(|e| e["job"].is_null() || is_final(&e["job"]))
        .collect();
    let mut told: Vec<Option<String>> = vec![None; entries.len()];
    loop {
        for (i, entry) in entries.iter_mut().enumerate() {
            if settled[i] {
                continue;
            }
            let id = entry["job"]["id"].as_str().unwrap_or_default().to_owned();
            let job: Value = client.get(&format!("/jobs/{id}")).await?;
            settled[i] = is_final(&job);
            if let Some(reason) = job["waiting_reason"].as_str()
                && !settled[i]
            {
                let connection = entry["connection_id"].as_str().unwrap_or_default();
                let status: Value = client
                    .get(&format!("/connections/{connection}/status"))
                    .await?;
                if matches!(
                    status["status"].as_str(),
                    Some("needs_reauth" | "disconnected")
                ) {
                    settled[i] = true;
                } else if told[i].as_deref() != Some(reason) {
                    let label = entry["label"].as_str().unwrap_or("?");
                    eprintln!(
                        "{}: waiting: {}",
                        output::escape(label),
                        output::escape(reason)
                    );
                    told[i] = Some(reason.to_owned());
                }
            }
            entry["job"] = job;
        }
        if settled.iter().all(|s| *s) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!(
                "gave up waiting after {}; the jobs go on (see `switchboard jobs list`)",
                humantime::format_duration(timeout)
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_params_leave_out_what_was_not_given() {
        assert_eq!(
            post_params("hello", vec![], None, None),
            json!({ "text": "hello" })
        );
        assert_eq!(
            post_params("hi", vec!["a".repeat(32)], Some("1"), Some("2")),
            json!({ "text": "hi", "media": ["a".repeat(32)], "reply_to": "1", "quote_of": "2" })
        );
    }
}
