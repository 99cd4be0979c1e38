//! The `switchboard` command: the daemon (`serve`, `demo`) and the CLI verbs
//! that talk to a running daemon over its REST API.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = switchboard::cli::Cli::parse();
    if !cli.runs_a_daemon() {
        exit_quietly_on_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(switchboard::cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `switchboard connections list | head -1`: when the reader goes away, a
/// client verb ends quietly like any Unix tool instead of panicking in
/// `println!` with a backtrace. Rust ignores SIGPIPE, so writes fail with
/// EPIPE; putting the default action back makes the process end at the
/// first write into a closed pipe (what ripgrep and coreutils do). Not for
/// the daemon: it must never die because a log reader left.
#[cfg(unix)]
fn exit_quietly_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists;
    // `signal` with `SIG_DFL` only restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn exit_quietly_on_closed_pipe() {}
