//! The MCP server end to end, driven by a third-party client: the official
//! Python `mcp` SDK (`tests/mcp_client.py`) against a real daemon and the X
//! simulator, over stdio (`switchboard mcp`, relaying to the daemon) and
//! streamable HTTP (`/mcp`), each in the SDK's default (2026-07-28) and
//! legacy `initialize` modes, with a scoped agent token.

use std::process::Command;

use serde_json::{Value, json};
use switchboard_sim::x::{XSim, XSimConfig};

use crate::common::{BIN, Daemon, Db, Fixture};
use crate::on_both_databases;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");

fn require_python_mcp() {
    let found = Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the MCP acceptance test needs the official Python `mcp` SDK: run `./test`, which installs it into .venv, or `python3 -m pip install mcp==2.3.0`"
    );
}

async fn x_connection(daemon: &Daemon, label: &str) -> String {
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": label,
            "settings": { "auth": "oauth1" },
            "secrets": {
                "api_key": "sim-consumer-key",
                "api_secret": "sim-consumer-secret",
                "access_token": "sim-demo-oauth1-token",
                "access_token_secret": "sim-demo-oauth1-secret",
            }
        }))
        .await;
    daemon.wait_status(&id, "connected").await;
    id
}

async fn python_sdk_over_every_transport(db: Db) {
    require_python_mcp();
    let sim = XSim::start(XSimConfig::default()).await.unwrap();
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_SERVICES__X_API", sim.base_url());
    let daemon = fixture.start().await;
    let mine = x_connection(&daemon, "mine").await;
    x_connection(&daemon, "theirs").await;

    for (transport, mode) in [
        ("http", "auto"),
        ("http", "legacy"),
        ("stdio", "auto"),
        ("stdio", "legacy"),
    ] {
        let echo = daemon
            .create_connection(
                json!({ "connector": "echo", "label": format!("echo-{transport}-{mode}") }),
            )
            .await;
        let agent = daemon
            .post(
                "/agents",
                json!({ "name": format!("py-{transport}-{mode}"), "connections": [mine, echo] }),
            )
            .await;
        assert_eq!(agent.status, 201, "{}", agent.body);
        // An agent token is refused by the admin REST API, saying where it works.
        let refused = daemon
            .send(
                daemon
                    .http
                    .get(daemon.api("/connections"))
                    .bearer_auth(agent.body["token"].as_str().unwrap()),
            )
            .await;
        assert_eq!(refused.status, 403);
        assert!(refused.body["detail"].as_str().unwrap().contains("/mcp"));

        let config = json!({
            "transport": transport, "mode": mode, "url": daemon.url, "binary": BIN,
            "admin_token": daemon.token,
            "agent_token": agent.body["token"], "agent_id": agent.body["id"],
            "echo_id": echo, "x_in": "mine", "x_out": "theirs",
        });
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(CLIENT)
                .arg(config.to_string())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the Python MCP client failed over {transport} ({mode}):\n{stdout}\n{}\n--- daemon ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            daemon.output()
        );
        let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let post_id = summary["post_ids"][0].as_str().unwrap();
        let post = sim
            .posts()
            .into_iter()
            .find(|p| p.id == post_id)
            .unwrap_or_else(|| panic!("post {post_id} is not on the simulator"));
        assert_eq!(post.text, format!("hello from {transport} {mode}"));
        assert_eq!(summary["list_changed"], true);
        if (transport, mode) == ("http", "legacy") {
            assert_eq!(summary["list_changed_on_add"], true, "{summary}");
        }
        assert!(summary["revoked"].is_string(), "{summary}");
        let agents = daemon.get("/agents").await;
        let listed = agents
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == agent.body["id"])
            .unwrap()
            .clone();
        assert!(listed["revoked_at"].is_i64(), "{listed}");
        assert!(
            listed.get("token").is_none(),
            "a listed agent never shows its token"
        );
    }
    sim.stop().await;
}

on_both_databases!(python_sdk_over_every_transport);

/// An OAuth 2.0 X account authorized through the simulator's consent page,
/// whose grant is then revoked: it ends in `needs_reauth`.
async fn revoked_x_connection(daemon: &Daemon, sim: &XSim, label: &str) -> String {
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": label,
            "settings": { "auth": "oauth2", "client_id": "sim-client-id" },
            "secrets": { "oauth2_client_secret": "sim-client-secret" }
        }))
        .await;
    let started = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    let authorize_url = started.body["authorize_url"].as_str().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let consent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{authorize_url}&auto_approve=1"))
        .send()
        .await
        .unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();
    daemon.http.get(&callback).send().await.unwrap();
    daemon.wait_status(&id, "connected").await;
    sim.revoke_refresh_tokens("switchboard_demo");
    sim.expire_access_tokens();
    daemon.submit(&id, "x.me", json!({})).await;
    daemon.wait_status(&id, "needs_reauth").await;
    id
}

async fn jobs_of(daemon: &Daemon, connection: &str) -> usize {
    let jobs = daemon
        .get(&format!("/jobs?connection_id={connection}"))
        .await
        .body;
    jobs.as_array().unwrap().len()
}

/// A call on two accounts, one of which needs re-authorization, answers
/// per account at once (and queues nothing for that one); argument errors
/// name the argument; a removed connection is announced at once, not at
/// the periodic recheck; closing the session leaves the SDK nothing to warn
/// about.
async fn per_account_answers_named_arguments_and_a_clean_close(db: Db) {
    require_python_mcp();
    let sim = XSim::start(XSimConfig::default()).await.unwrap();
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_SERVICES__X_API", sim.base_url())
        .with_env(
            "SWITCHBOARD_SERVICES__X_AUTHORIZE",
            &format!("{}/i/oauth2/authorize", sim.base_url()),
        )
        .with_env("SWITCHBOARD_MCP__TOOLS_RECHECK_SECS", "3600");
    let daemon = fixture.start().await;
    x_connection(&daemon, "steady").await;
    let revoked = revoked_x_connection(&daemon, &sim, "revoked").await;
    let echo = daemon
        .create_connection(json!({ "connector": "echo", "label": "echo-removed" }))
        .await;
    let jobs_before = jobs_of(&daemon, &revoked).await;

    let config = json!({
        "scenario": "accounts", "url": daemon.url, "admin_token": daemon.token,
        "x_ok": "steady", "x_reauth": "revoked", "echo_id": echo,
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(CLIENT)
            .arg(config.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python MCP client failed:\n{stdout}\n{stderr}\n--- daemon ---\n{}",
        daemon.output()
    );
    assert!(
        !stderr.to_lowercase().contains("warn") && !stderr.contains("termination failed"),
        "the SDK warned:\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let post_id = summary["post_id"].as_str().unwrap();
    assert!(
        sim.posts()
            .iter()
            .any(|p| p.id == post_id && p.text == "to both"),
        "{summary}"
    );
    assert_eq!(
        jobs_of(&daemon, &revoked).await,
        jobs_before,
        "nothing was queued for the account that needs re-authorization"
    );
    sim.stop().await;
}

on_both_databases!(per_account_answers_named_arguments_and_a_clean_close);
