//! `switchboard agents`: tokens for AI agents, each scoped to connections
//! (accepted at `/mcp` only), and `switchboard mcp`, the stdio MCP server.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, table, text, time};

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Create an agent token scoped to connections; the token is printed once.
    Create {
        /// A name to recognise the agent by.
        name: String,
        /// The connections it may act on, by id or label, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        connections: Vec<String>,
    },
    /// List agent tokens (never the tokens themselves).
    List,
    /// Revoke an agent token; its next request is refused.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Start a daemon in this process (data dir from the configuration)
    /// instead of relaying to the one at SWITCHBOARD_URL.
    #[arg(long)]
    pub embedded: bool,
}

pub async fn agents(cmd: &AgentsCommand, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentsCommand::Create { name, connections } => {
            let known: Vec<Value> = client.get("/connections").await?;
            let mut ids = Vec::new();
            for wanted in connections {
                ids.push(super::client::find_connection(&known, wanted)?);
            }
            let created: Value = client
                .post("/agents", &json!({ "name": name, "connections": ids }))
                .await?;
            if json {
                output::print_json(&created);
            } else {
                println!(
                    "agent `{}` ({}) may act on {} connection(s).\ntoken (shown once, give it to the agent as its bearer token for /mcp):\n  {}",
                    text(&created["name"]),
                    text(&created["id"]),
                    created["connections"].as_array().map_or(0, Vec::len),
                    text(&created["token"])
                );
            }
        }
        AgentsCommand::List => {
            let list: Value = client.get("/agents").await?;
            output::print(json, &list, agents_table);
        }
        AgentsCommand::Revoke { id } => {
            client.delete(&format!("/agents/{id}")).await?;
            if json {
                output::print_json(&json!({ "revoked": id }));
            } else {
                println!("revoked agent token {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn agents_table(list: &Value) -> String {
    let mut t = table(&["ID", "NAME", "CONNECTIONS", "CREATED", "REVOKED"]);
    for a in list.as_array().into_iter().flatten() {
        let connections: Vec<String> = a["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        t.add_row(vec![
            text(&a["id"]),
            text(&a["name"]),
            connections.join("\n"),
            time(&a["created_at"]),
            time(&a["revoked_at"]),
        ]);
    }
    t.to_string()
}
