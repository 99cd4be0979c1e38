//! The integration suite: every test boots a real daemon (see `common`) and
//! talks to it over HTTP or the CLI, on SQLite and on PostgreSQL.

mod common;

mod backup;
mod bad_input;
mod cli;
mod crash;
mod http_limits;
mod jobs;
mod lifecycle;
mod mcp;
mod media;
mod obs;
mod rules;
mod secrets;
mod system;
mod twitch;
mod vault;
mod x;
