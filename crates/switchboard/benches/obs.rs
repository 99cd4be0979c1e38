//! OBS figures for switchboard, printed, not asserted:
//!
//! * **request round trip**, one request at a time: straight to OBS over a
//!   websocket (the connector's own client, no daemon), against the same
//!   request as a switchboard job (submit → outbox row → claim → invoke →
//!   result → `job.finished`), timed in process from the event stream. A
//!   read (`GetCurrentProgramScene` through `obs.request`) and a scene
//!   switch (`obs.set_scene`, which also publishes `obs.scene.changed`).
//! * **reconnect time**: OBS goes away (crash) and comes back on the same
//!   port after 1 s and after 5 s; the time from its port opening again to
//!   the connection being `connected`, with the daemon's default reconnect
//!   backoff (500 ms doubling to 60 s, full jitter).
//!
//! Against the OBS simulator always, and against real OBS Studio (headless
//! under Xvfb) when `obs` and `Xvfb` are installed.
//!
//! `cargo bench -p switchboard --bench obs`; `SWITCHBOARD_BENCH_OBS_ROUNDS`
//! sets the requests per figure (default 200).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::daemon;
use switchboard_connector_obs::client::{self, ClientConfig};
use switchboard_connector_obs::protocol::subscription;
use switchboard_core::StatusKind;
use switchboard_core::event::JOB_FINISHED;
use switchboard_runtime::{Engine, NewConnection, SubmitJob};
use switchboard_sim::obs::studio::{HeadlessObs, SCENES};
use switchboard_sim::obs::{ObsSim, ObsSimConfig};

const PASSWORD: &str = "bench-obs-password";
const DEFAULT_ROUNDS: usize = 200;

/// The OBS under test.
enum Target {
    Simulator(ObsSim),
    Real(Box<HeadlessObs>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Simulator(_) => "simulator",
            Target::Real(_) => "real OBS 29",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Target::Simulator(sim) => sim.port(),
            Target::Real(obs) => obs.port(),
        }
    }

    /// Two scene names to switch between.
    fn scenes(&self) -> [&'static str; 2] {
        match self {
            Target::Simulator(_) => ["Live", "Be Right Back"],
            Target::Real(_) => SCENES,
        }
    }

    /// OBS dies.
    async fn crash(&mut self) {
        match self {
            Target::Simulator(sim) => sim.crash().await,
            Target::Real(obs) => obs.kill(),
        }
    }

    /// OBS starts again; returns when its port accepts connections.
    async fn start_again(&mut self) -> anyhow::Result<()> {
        match self {
            Target::Simulator(sim) => sim.restart().await?,
            Target::Real(obs) => {
                obs.launch().await.map_err(anyhow::Error::msg)?;
            }
        }
        Ok(())
    }
}

fn rounds() -> usize {
    match std::env::var("SWITCHBOARD_BENCH_OBS_ROUNDS") {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("SWITCHBOARD_BENCH_OBS_ROUNDS must be a positive integer, not `{value}`");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_ROUNDS,
    }
}

#[tokio::main]
async fn main() {
    let rounds = rounds();
    println!("switchboard OBS bench ({rounds} requests per figure, one at a time)");
    let sim = ObsSim::start(ObsSimConfig {
        password: Some(PASSWORD.into()),
        ..ObsSimConfig::default()
    })
    .await
    .expect("the OBS simulator starts");
    report(Target::Simulator(sim), rounds).await;
    match HeadlessObs::start(PASSWORD).await {
        Ok(obs) => report(Target::Real(Box::new(obs)), rounds).await,
        Err(error) => println!("real OBS: skipped: {error}"),
    }
}

async fn report(mut target: Target, rounds: usize) {
    let name = target.name();
    match figures(&mut target, rounds).await {
        Ok(lines) => {
            for line in lines {
                println!("{name}: {line}");
            }
        }
        Err(error) => println!("{name}: FAILED: {error:#}"),
    }
}

/// p50 / p90 / max of microsecond samples, in milliseconds.
fn summary(mut us: Vec<u128>) -> String {
    us.sort_unstable();
    let at = |p: usize| us[((us.len() * p).div_ceil(100)).clamp(1, us.len()) - 1] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        at(50),
        at(90),
        *us.last().unwrap_or(&0) as f64 / 1000.0
    )
}

async fn figures(target: &mut Target, rounds: usize) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let password = SecretString::from(PASSWORD);
    let scenes = target.scenes();

    // Straight to OBS.
    let connection = client::open(
        &ClientConfig {
            host: "127.0.0.1".into(),
            port: target.port(),
            tls: false,
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(5),
            event_subscriptions: subscription::WANTED,
        },
        Some(&password),
    )
    .await
    .context("direct connection")?;
    let direct = &connection.client;
    let timeout = Duration::from_secs(10);
    let mut read_us = Vec::new();
    let mut switch_us = Vec::new();
    for i in 0..rounds + 20 {
        let start = Instant::now();
        let response = direct
            .request("GetCurrentProgramScene", None, timeout)
            .await?;
        if !response.request_status.result {
            bail!("GetCurrentProgramScene: {:?}", response.request_status);
        }
        if i >= 20 {
            read_us.push(start.elapsed().as_micros());
        }
        let data = json!({ "sceneName": scenes[i % 2] });
        let start = Instant::now();
        let response = direct
            .request("SetCurrentProgramScene", Some(&data), timeout)
            .await?;
        if !response.request_status.result {
            bail!("SetCurrentProgramScene: {:?}", response.request_status);
        }
        if i >= 20 {
            switch_us.push(start.elapsed().as_micros());
        }
    }
    drop(connection);
    lines.push(format!(
        "direct GetCurrentProgramScene: {}",
        summary(read_us)
    ));
    lines.push(format!(
        "direct SetCurrentProgramScene: {}",
        summary(switch_us)
    ));

    // Through switchboard (SQLite, default configuration).
    let dir = tempfile::tempdir()?;
    let settings = Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        database_url: None,
        ..Config::default()
    }
    .resolve()?;
    let running = daemon::start(&settings).await.context("the daemon")?;
    let engine = running.engine.clone();
    let result = through_switchboard(&engine, target, rounds, &mut lines).await;
    running.stop().await;
    result?;
    Ok(lines)
}

async fn wait_connected(engine: &Arc<Engine>, id: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match engine.supervisor().status(id) {
            Some(status) if status.kind == StatusKind::Connected => return Ok(()),
            status if Instant::now() > deadline => {
                bail!("not connected within {within:?}: {status:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Submit a job and wait for its `job.finished`; µs.
async fn job_round_trip(
    engine: &Arc<Engine>,
    events: &mut tokio::sync::broadcast::Receiver<Arc<switchboard_core::Event>>,
    connection_id: &str,
    action: &str,
    params: Value,
) -> anyhow::Result<u128> {
    let start = Instant::now();
    let (job, _) = engine
        .submit_job(SubmitJob {
            connection_id: connection_id.to_owned(),
            action: action.into(),
            params,
            idempotency_key: None,
            max_attempts: None,
        })
        .await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(event)
                    if event.kind == JOB_FINISHED && event.payload["job_id"] == job.id.as_str() =>
                {
                    return Ok(());
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => bail!("event stream ended: {error}"),
            }
        }
    })
    .await
    .context("a job did not finish within 10 s")??;
    let elapsed = start.elapsed().as_micros();
    let done = engine.get_job(&job.id).await?;
    if done.state != switchboard_core::JobState::Succeeded {
        bail!("{action} ended {}: {:?}", done.state, done.error);
    }
    Ok(elapsed)
}

async fn through_switchboard(
    engine: &Arc<Engine>,
    target: &mut Target,
    rounds: usize,
    lines: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut secrets = BTreeMap::new();
    secrets.insert("password".to_owned(), SecretString::from(PASSWORD));
    let id = engine
        .create_connection(NewConnection {
            connector: "obs".into(),
            label: "bench".into(),
            enabled: true,
            settings: json!({ "host": "127.0.0.1", "port": target.port() }),
            secrets,
        })
        .await?
        .connection
        .id;
    wait_connected(engine, &id, Duration::from_secs(10)).await?;
    let scenes = target.scenes();
    let mut events = engine.subscribe_events();
    let mut read_us = Vec::new();
    let mut switch_us = Vec::new();
    for i in 0..rounds + 20 {
        let read = job_round_trip(
            engine,
            &mut events,
            &id,
            "obs.request",
            json!({ "request_type": "GetCurrentProgramScene" }),
        )
        .await?;
        let switch = job_round_trip(
            engine,
            &mut events,
            &id,
            "obs.set_scene",
            json!({ "scene": scenes[i % 2] }),
        )
        .await?;
        if i >= 20 {
            read_us.push(read);
            switch_us.push(switch);
        }
    }
    lines.push(format!(
        "through switchboard obs.request GetCurrentProgramScene: {}",
        summary(read_us)
    ));
    lines.push(format!(
        "through switchboard obs.set_scene: {}",
        summary(switch_us)
    ));

    for down_for in [Duration::from_secs(1), Duration::from_secs(5)] {
        target.crash().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine
            .supervisor()
            .status(&id)
            .is_some_and(|s| s.kind == StatusKind::Connected)
        {
            if Instant::now() > deadline {
                bail!("the connection did not notice OBS going away");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(down_for).await;
        let launched = Instant::now();
        target.start_again().await?;
        let port_open = Instant::now();
        wait_connected(engine, &id, Duration::from_secs(120)).await?;
        lines.push(format!(
            "reconnect after {}s down: OBS start to listening {:.0} ms, port open to connected {:.0} ms",
            down_for.as_secs(),
            port_open.duration_since(launched).as_secs_f64() * 1000.0,
            port_open.elapsed().as_secs_f64() * 1000.0,
        ));
    }
    Ok(())
}
