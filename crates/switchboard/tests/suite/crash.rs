//! A daemon killed with SIGKILL while jobs are queued and running: after a
//! restart every job reaches a final state exactly once, except those the
//! crash interrupted mid-action (at-least-once, counted by `recovered`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Db, Fixture};
use crate::on_both_databases;

on_both_databases!(sigkill_with_500_jobs_loses_none_and_doubles_only_interrupted_ones);

const JOBS: usize = 500;
const WORKERS: usize = 16;

async fn sigkill_with_500_jobs_loses_none_and_doubles_only_interrupted_ones(db: Db) {
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_JOBS__WORKERS", &WORKERS.to_string());
    // The echo connector keeps its record file under `<data_dir>/echo/`.
    let record = fixture.data_dir().join("echo").join("executions.log");
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({
            "connector": "echo", "label": "crashy",
            "settings": { "record_file": "executions.log", "work_ms": 50 },
        }))
        .await;
    daemon.wait_status(&id, "connected").await;

    let mut job_ids = Vec::with_capacity(JOBS);
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(25) {
        let submits = chunk
            .iter()
            .map(|n| daemon.submit(&id, "echo.say", json!({ "message": format!("job {n}") })));
        for job in futures::future::join_all(submits).await {
            job_ids.push(job["id"].as_str().unwrap().to_owned());
        }
    }
    // Kill mid-flight: some jobs done, some running, most queued.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = daemon
            .get("/jobs?state=succeeded&limit=1000")
            .await
            .body
            .as_array()
            .unwrap()
            .len();
        if done >= 30 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs do not run\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill9();
    let executed_before_restart = std::fs::read_to_string(&record).unwrap().lines().count();
    assert!(
        executed_before_restart < JOBS,
        "the kill came too late to test anything"
    );

    let daemon = fixture.start().await;
    let mut jobs: HashMap<String, Value> = HashMap::new();
    for _ in 0..600 {
        jobs.clear();
        let mut before: Option<String> = None;
        loop {
            let path = match &before {
                Some(b) => format!("/jobs?limit=1000&before={b}"),
                None => "/jobs?limit=1000".to_owned(),
            };
            let page = daemon.get(&path).await.body.as_array().unwrap().clone();
            if page.is_empty() {
                break;
            }
            before = page.last().unwrap()["id"].as_str().map(str::to_owned);
            for job in page {
                jobs.insert(job["id"].as_str().unwrap().to_owned(), job);
            }
        }
        if jobs.len() == JOBS && jobs.values().all(|j| j["state"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(jobs.len(), JOBS);
    let unfinished: Vec<_> = jobs
        .values()
        .filter(|j| j["state"] != "succeeded")
        .collect();
    assert!(
        unfinished.is_empty(),
        "jobs not succeeded after restart: {unfinished:?}"
    );

    let mut executions: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&record).unwrap().lines() {
        let job_id = line.split('\t').next().unwrap().to_owned();
        *executions.entry(job_id).or_default() += 1;
    }
    let mut doubled = 0;
    for job_id in &job_ids {
        let count = executions.get(job_id).copied().unwrap_or(0);
        let job = &jobs[job_id];
        assert!(count >= 1, "job {job_id} never executed: {job}");
        if count > 1 {
            doubled += 1;
            assert_eq!(count, 2, "job {job_id} executed {count} times");
            assert!(
                job["recovered"].as_i64().unwrap() >= 1,
                "only crash-interrupted jobs may run twice: {job}"
            );
        }
    }
    let recovered = jobs
        .values()
        .filter(|j| j["recovered"].as_i64().unwrap() > 0)
        .count();
    assert!(
        recovered <= WORKERS,
        "at most the jobs running at the kill are recovered ({recovered})"
    );
    assert!(doubled <= recovered);
    eprintln!(
        "{db:?}: {executed_before_restart} executions before SIGKILL, {recovered} jobs recovered, {doubled} executed twice (at-least-once), none lost"
    );
}
