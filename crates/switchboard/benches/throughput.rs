//! Throughput and footprint figures for switchboard. A benchmark binary that
//! prints numbers and asserts nothing about them:
//!
//! * job throughput with the `echo` connector (`echo.say`), submit to
//!   `succeeded`, on SQLite and on PostgreSQL (`postgres://postgres@127.0.0.1:5432/postgres`,
//!   or `SWITCHBOARD_BENCH_POSTGRES_URL`; a throwaway `sb_bench_*` database is
//!   created and dropped; skipped when the server is unreachable);
//! * idle RSS of `switchboard serve` with 0 and 10 echo connections (needs the
//!   release binary: `cargo build --release`).
//!
//! `cargo bench -p switchboard --bench throughput`; `SWITCHBOARD_BENCH_JOBS`
//! sets the number of jobs per database (default 2000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use switchboard::config::Config;
use switchboard::daemon;
use switchboard_core::event::JOB_FINISHED;
use switchboard_core::{JobState, StatusKind};
use switchboard_runtime::{Engine, NewConnection, SubmitJob};
use switchboard_store::JobFilter;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;

const DEFAULT_JOBS: usize = 2000;
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Longest wait for all jobs of one run to finish.
const JOBS_DEADLINE: Duration = Duration::from_secs(30);
/// How often the job counts are polled.
const POLL: Duration = Duration::from_millis(20);
/// How long `serve` sits idle before its RSS is read.
const IDLE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    let jobs = match std::env::var("SWITCHBOARD_BENCH_JOBS") {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("SWITCHBOARD_BENCH_JOBS must be a positive integer, not `{value}`");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_JOBS,
    };
    println!("switchboard throughput bench");

    let line = match job_throughput(None, jobs).await {
        Ok(figures) => format!("jobs sqlite: {figures}"),
        Err(error) => format!("jobs sqlite: FAILED: {error:#}"),
    };
    println!("{line}");

    println!("{}", postgres_jobs(jobs).await);

    println!("{}", idle_rss_line().await);
}

// ---------------------------------------------------------------------------
// Job throughput

struct JobFigures {
    jobs: usize,
    submit: Duration,
    total: Duration,
    /// Jobs already succeeded when the last submit returned.
    done_at_submit: i64,
    latencies_ms: Vec<i64>,
    not_succeeded: Vec<(JobState, i64)>,
    /// (submit call, submit to `job.finished`), one job at a time on an
    /// idle daemon, in µs.
    sequential_us: Vec<(u128, u128)>,
    /// Round trips on an idle daemon, in µs: `SELECT 1` and reading one job.
    ping_us: Vec<u128>,
    get_job_us: Vec<u128>,
}

impl std::fmt::Display for JobFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.jobs as f64;
        let drain = self.total.saturating_sub(self.submit).as_secs_f64();
        let left = (self.jobs as i64 - self.done_at_submit).max(0);
        write!(
            f,
            "{} jobs, submit {:.0}/s ({} ms), end-to-end {:.0} jobs/s ({} ms), latency p50 {} ms p99 {} ms max {} ms",
            self.jobs,
            n / self.submit.as_secs_f64(),
            self.submit.as_millis(),
            n / self.total.as_secs_f64(),
            self.total.as_millis(),
            percentile(&self.latencies_ms, 50),
            percentile(&self.latencies_ms, 99),
            self.latencies_ms.last().copied().unwrap_or(0),
        )?;
        write!(f, "\n    {} done by the last submit", self.done_at_submit)?;
        if left > 0 && drain > 0.0 {
            write!(
                f,
                ", the other {left} drained at {:.0} jobs/s",
                left as f64 / drain
            )?;
        }
        if !self.sequential_us.is_empty() {
            write!(
                f,
                "\n    one job at a time on an idle daemon ({} jobs): submit to finished p50 {:.1} ms, of which the submit call {:.1} ms",
                self.sequential_us.len(),
                median_ms(self.sequential_us.iter().map(|t| t.1).collect()),
                median_ms(self.sequential_us.iter().map(|t| t.0).collect()),
            )?;
        }
        if !self.ping_us.is_empty() && !self.get_job_us.is_empty() {
            write!(
                f,
                "; store round trips p50: SELECT 1 {:.2} ms, get_job {:.2} ms",
                median_ms(self.ping_us.clone()),
                median_ms(self.get_job_us.clone()),
            )?;
        }
        if !self.not_succeeded.is_empty() {
            let states: Vec<String> = self
                .not_succeeded
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect();
            write!(f, " (NOT succeeded: {})", states.join(", "))?;
        }
        Ok(())
    }
}

/// Median of microsecond figures, in milliseconds.
fn median_ms(mut us: Vec<u128>) -> f64 {
    us.sort_unstable();
    us[(us.len() - 1) / 2] as f64 / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Start a daemon on a fresh data dir (SQLite there when `database_url` is
/// `None`), run the job load, stop it.
async fn job_throughput(database_url: Option<String>, jobs: usize) -> anyhow::Result<JobFigures> {
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let settings = Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        database_url,
        ..Config::default()
    }
    .resolve()?;
    let running = daemon::start(&settings)
        .await
        .context("the daemon did not start")?;
    let figures = run_jobs(&running.engine, jobs).await;
    running.stop().await;
    figures
}

async fn run_jobs(engine: &Arc<Engine>, jobs: usize) -> anyhow::Result<JobFigures> {
    let connection = engine
        .create_connection(NewConnection {
            connector: "echo".into(),
            label: "bench".into(),
            enabled: true,
            settings: json!({}),
            secrets: BTreeMap::new(),
        })
        .await
        .context("cannot create the echo connection")?
        .connection;
    let id = connection.id;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match engine.supervisor().status(&id) {
            Some(status) if status.kind == StatusKind::Connected => break,
            status if Instant::now() > deadline => {
                bail!("the echo connection did not connect within 10 s: {status:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }

    let start = Instant::now();
    let mut submits = JoinSet::new();
    for i in 0..jobs {
        let engine = engine.clone();
        let id = id.clone();
        submits.spawn(async move {
            engine
                .submit_job(SubmitJob {
                    connection_id: id,
                    action: "echo.say".into(),
                    params: json!({"message": format!("bench message {i}")}),
                    idempotency_key: None,
                    max_attempts: None,
                })
                .await
        });
    }
    let mut submit_errors = 0usize;
    let mut first_error = None;
    while let Some(result) = submits.join_next().await {
        if let Err(error) = result.context("a submit task panicked")? {
            submit_errors += 1;
            first_error.get_or_insert(error);
        }
    }
    let submit = start.elapsed();
    if let Some(error) = first_error {
        bail!("{submit_errors} of {jobs} submits failed; first: {error}");
    }
    let done_at_submit = succeeded(
        &engine
            .store()
            .count_jobs()
            .await
            .context("cannot count jobs")?,
    );

    let final_deadline = start + JOBS_DEADLINE;
    let (total, counts) = loop {
        let counts = engine
            .store()
            .count_jobs()
            .await
            .context("cannot count jobs")?;
        let finished: i64 = counts
            .iter()
            .filter(|(s, _)| s.is_final())
            .map(|(_, n)| n)
            .sum();
        if finished >= jobs as i64 {
            break (start.elapsed(), counts);
        }
        if Instant::now() > final_deadline {
            bail!(
                "jobs did not finish within {} s: {}",
                JOBS_DEADLINE.as_secs(),
                counts
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let not_succeeded: Vec<(JobState, i64)> = counts
        .into_iter()
        .filter(|(s, n)| *s != JobState::Succeeded && *n > 0)
        .collect();

    let mut latencies_ms = Vec::with_capacity(jobs);
    let mut before_id = None;
    loop {
        let page = engine
            .store()
            .list_jobs(&JobFilter {
                state: Some(JobState::Succeeded),
                connection_id: Some(id.clone()),
                before_id: before_id.take(),
                limit: 1000,
            })
            .await
            .context("cannot list jobs")?;
        latencies_ms.extend(
            page.iter()
                .filter_map(|job| job.finished_at.map(|at| at - job.created_at)),
        );
        match page.last() {
            Some(last) if page.len() == 1000 => before_id = Some(last.id.clone()),
            _ => break,
        }
    }
    latencies_ms.sort_unstable();

    let sequential_us = sequential(engine, &id).await?;
    let (ping_us, get_job_us) = round_trips(engine).await?;

    Ok(JobFigures {
        jobs,
        submit,
        total,
        done_at_submit,
        latencies_ms,
        not_succeeded,
        sequential_us,
        ping_us,
        get_job_us,
    })
}

/// Times (µs) of 50 `SELECT 1` and 50 reads of one job, one after the other.
async fn round_trips(engine: &Arc<Engine>) -> anyhow::Result<(Vec<u128>, Vec<u128>)> {
    let store = engine.store();
    let job = store
        .list_jobs(&JobFilter {
            limit: 1,
            ..JobFilter::default()
        })
        .await?
        .pop()
        .context("no job to read")?;
    let (mut ping, mut get_job) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let start = Instant::now();
        store.ping().await?;
        ping.push(start.elapsed().as_micros());
        let start = Instant::now();
        store.get_job(&job.id).await?;
        get_job.push(start.elapsed().as_micros());
    }
    Ok((ping, get_job))
}

fn succeeded(counts: &[(JobState, i64)]) -> i64 {
    counts
        .iter()
        .filter(|(s, _)| *s == JobState::Succeeded)
        .map(|(_, n)| n)
        .sum()
}

/// Times (µs) of the submit call and of submit to `job.finished`, for jobs
/// run one after the other, timed in process from the event stream.
async fn sequential(
    engine: &Arc<Engine>,
    connection_id: &str,
) -> anyhow::Result<Vec<(u128, u128)>> {
    const SEQUENTIAL_JOBS: usize = 20;
    let mut events = engine.subscribe_events();
    let mut times = Vec::with_capacity(SEQUENTIAL_JOBS);
    for i in 0..SEQUENTIAL_JOBS {
        let start = Instant::now();
        let (job, _) = engine
            .submit_job(SubmitJob {
                connection_id: connection_id.to_owned(),
                action: "echo.say".into(),
                params: json!({"message": format!("sequential {i}")}),
                idempotency_key: None,
                max_attempts: None,
            })
            .await
            .context("sequential submit")?;
        let submitted = start.elapsed().as_micros();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.recv().await {
                    Ok(event)
                        if event.kind == JOB_FINISHED
                            && event.payload["job_id"] == job.id.as_str() =>
                    {
                        return Ok(());
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(error) => bail!("event stream ended: {error}"),
                }
            }
        })
        .await
        .context("a sequential job did not finish within 5 s")??;
        times.push((submitted, start.elapsed().as_micros()));
    }
    Ok(times)
}

/// The PostgreSQL run, on a database created for it and dropped afterwards.
async fn postgres_jobs(jobs: usize) -> String {
    use sqlx::postgres::PgPoolOptions;

    let admin_url = std::env::var("SWITCHBOARD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let shown = switchboard_store::redact_url(&admin_url);
    let connect = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&admin_url);
    let admin = match tokio::time::timeout(Duration::from_secs(6), connect).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(error)) => {
            return format!("jobs postgres: skipped, cannot connect to {shown}: {error}");
        }
        Err(_) => return format!("jobs postgres: skipped, no answer from {shown} within 6 s"),
    };
    let name = format!(
        "sb_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
    {
        admin.close().await;
        return format!("jobs postgres: skipped, cannot create a database on {shown}: {error}");
    }

    let result = job_throughput(Some(with_database(&admin_url, &name)), jobs).await;

    let mut line = match result {
        Ok(figures) => format!("jobs postgres: {figures}"),
        Err(error) => format!("jobs postgres: FAILED: {error:#}"),
    };
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    let dropped = match dropped {
        // Before PostgreSQL 13 there is no FORCE.
        Err(_) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&admin)
            .await
        }
        ok => ok,
    };
    if let Err(error) = dropped {
        line.push_str(&format!(" [could not drop database {name}: {error}]"));
    }
    admin.close().await;
    line
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

// ---------------------------------------------------------------------------
// Idle RSS of `serve`

/// The `switchboard` binary of the same profile as this bench:
/// target/<profile>/deps/throughput-xxxx -> target/<profile>/switchboard.
fn server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe
        .parent()?
        .parent()?
        .join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
    binary.is_file().then_some(binary)
}

async fn idle_rss_line() -> String {
    let Some(binary) = server_binary() else {
        return "idle RSS serve: skipped, the switchboard binary is missing next to this bench; run `cargo build --release` first".into();
    };
    let mut figures = Vec::new();
    for connections in [0, 10] {
        match idle_rss(&binary, connections).await {
            Ok(mib) => figures.push(format!("{mib:.1} MiB ({connections} connections)")),
            Err(error) => figures.push(format!("FAILED with {connections} connections: {error:#}")),
        }
    }
    format!("idle RSS serve: {}", figures.join(", "))
}

/// Run `serve` on a fresh data dir, add `connections` echo connections over
/// the REST API, sit idle, read VmRSS (MiB).
async fn idle_rss(binary: &Path, connections: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // Default configuration: none of this environment's SWITCHBOARD_*
    // variables (SWITCHBOARD_BENCH_* would even be rejected as unknown keys).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    command.env("SWITCHBOARD_LOG", "warn");
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let result = measure_child(&mut child, connections).await;
    let _ = child.kill().await;
    result
}

async fn measure_child(
    child: &mut tokio::process::Child,
    connections: usize,
) -> anyhow::Result<f64> {
    let pid = child.id().context("the child exited at once")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();

    // The admin token line and the "listening on" line come in either order
    // (one write); the token is only printed at the first start.
    let token_of = |line: &str| {
        line.split_once("store it now): ")
            .map(|(_, t)| t.trim().to_owned())
    };
    let mut token = None;
    let addr = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, rest)) = line.split_once("listening on ") {
                return Ok(rest.trim().to_owned());
            }
            token = token.take().or_else(|| token_of(&line));
        }
        bail!("serve exited before listening")
    })
    .await
    .context("serve did not listen within 15 s")??;
    if token.is_none()
        && let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await
    {
        token = token_of(&line);
    }

    if connections > 0 {
        let token = token.context("serve printed no admin token")?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        for i in 0..connections {
            let response = client
                .post(format!("{addr}/api/v1/connections"))
                .bearer_auth(&token)
                .json(&json!({"connector": "echo", "label": format!("c{i}")}))
                .send()
                .await
                .context("POST /api/v1/connections")?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                bail!("POST /api/v1/connections answered {status}: {body}");
            }
        }
    }

    tokio::time::sleep(IDLE).await;
    if let Ok(Some(status)) = child.try_wait() {
        bail!("serve exited while idle: {status}");
    }
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("cannot read /proc/<pid>/status")?;
    let kib: f64 = proc_status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}
